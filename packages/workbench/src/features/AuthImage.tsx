// An <img> for a URL under /api: with API keys on, those need the Authorization header, which an
// <img> cannot send, so the image is fetched and shown from a blob URL. Other URLs load directly.
import { type ImgHTMLAttributes, useEffect, useState } from "react";
import { authHeaders, getApiKey } from "../lib/api.js";

export function AuthImage({ src, ...rest }: ImgHTMLAttributes<HTMLImageElement> & { src: string }) {
  const needsKey = src.includes("/api/") && getApiKey() !== null;
  const [blobUrl, setBlobUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!needsKey) return;
    let url: string | null = null;
    let cancelled = false;
    void fetch(src, { headers: authHeaders() })
      .then((r) => (r.ok ? r.blob() : null))
      .then((b) => {
        if (!b || cancelled) return;
        url = URL.createObjectURL(b);
        setBlobUrl(url);
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
      if (url) URL.revokeObjectURL(url);
    };
  }, [src, needsKey]);
  // biome-ignore lint/a11y/useAltText: alt comes in with the other attributes
  return <img {...rest} src={needsKey ? (blobUrl ?? undefined) : src} />;
}
