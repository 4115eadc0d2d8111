// An <img> for a URL under /api: with API keys on, those need the Authorization header, which an
// <img> cannot send, so the image is fetched and shown from a blob URL. Other URLs load directly.
import { createContext, type ImgHTMLAttributes, useContext, useEffect, useState } from "react";

/** Fetches a URL with this browser's credentials (null: no key, load URLs directly). */
export const AuthFetch = createContext<((url: string) => Promise<Blob>) | null>(null);

/** The URL to put in an <img>: `src` itself, or a blob: URL of it fetched with the key. */
export function useAuthUrl(src: string): string | undefined {
  const fetchBlob = useContext(AuthFetch);
  const needsKey = fetchBlob !== null && src.includes("/api/");
  const [blobUrl, setBlobUrl] = useState<string | null>(null);
  useEffect(() => {
    if (!needsKey || !fetchBlob) return;
    let url: string | null = null;
    let cancelled = false;
    void fetchBlob(src)
      .then((b) => {
        if (cancelled) return;
        url = URL.createObjectURL(b);
        setBlobUrl(url);
      })
      .catch(() => undefined);
    return () => {
      cancelled = true;
      if (url) URL.revokeObjectURL(url);
      setBlobUrl(null);
    };
  }, [src, needsKey, fetchBlob]);
  return needsKey ? (blobUrl ?? undefined) : src;
}

export function AuthImage({ src, ...rest }: ImgHTMLAttributes<HTMLImageElement> & { src: string }) {
  const url = useAuthUrl(src);
  // biome-ignore lint/a11y/useAltText: alt comes in with the other attributes
  return <img {...rest} src={url} />;
}
