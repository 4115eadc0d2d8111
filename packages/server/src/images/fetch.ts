// Fetches an input_image URL without letting it reach a refused address: the host is resolved
// here, every resolved address is checked, the connection is pinned to a checked address (no
// second lookup to rebind), and each redirect goes through the same checks.
import { lookup } from "node:dns/promises";
import http from "node:http";
import https from "node:https";
import { isIP, type LookupFunction } from "node:net";
import { ApiError } from "../errors.js";
import type { AddressPolicy } from "./address.js";

export interface FetchLimits {
  timeoutMs: number;
  maxBytes: number;
  maxRedirects: number;
}

export type PinnedAddress = { address: string; family: number };

/** What resolving a URL's host under the policy gave: an address to pin, or why not. */
export type AddressCheck =
  | { ok: true; pinned: PinnedAddress }
  | { ok: false; refused: { address: string; range: string } }
  | { ok: false; unresolvable: string };

/**
 * Resolves the URL's host and checks every address it resolves to. Shared by input_image
 * fetches and webhook deliveries: the one guard for every URL the server calls.
 */
export async function checkAddress(url: URL, policy: AddressPolicy): Promise<AddressCheck> {
  const host = url.hostname.replace(/^\[|\]$/g, "");
  let addresses: PinnedAddress[];
  if (isIP(host)) addresses = [{ address: host, family: isIP(host) }];
  else {
    try {
      addresses = await lookup(host, { all: true, verbatim: true });
    } catch (err) {
      return {
        ok: false,
        unresolvable: `cannot resolve ${host} (${(err as NodeJS.ErrnoException).code ?? "error"})`,
      };
    }
  }
  for (const a of addresses) {
    const range = policy.refusedRange(a.address);
    if (range) return { ok: false, refused: { address: a.address, range } };
  }
  const first = addresses[0];
  if (!first) return { ok: false, unresolvable: `no address for ${host}` };
  return { ok: true, pinned: first };
}

/** A `lookup` for http(s).request that answers the checked address: no second DNS query to rebind. */
export function pinnedLookup(pinned: PinnedAddress): LookupFunction {
  return (_host, options, cb) => {
    if ((options as { all?: boolean }).all) {
      (cb as unknown as (e: null, a: PinnedAddress[]) => void)(null, [pinned]);
    } else cb(null, pinned.address, pinned.family);
  };
}

async function resolveChecked(url: URL, policy: AddressPolicy): Promise<PinnedAddress> {
  const check = await checkAddress(url, policy);
  if (check.ok) return check.pinned;
  if ("refused" in check) throw new ApiError("input_image_refused", { url: url.href, ...check.refused });
  throw new ApiError("input_image_fetch_failed", { url: url.href, reason: check.unresolvable });
}

function getOnce(
  url: URL,
  pinned: PinnedAddress,
  limits: FetchLimits,
  signal: AbortSignal,
): Promise<{ status: number; location?: string; body?: Buffer }> {
  const pin = pinnedLookup(pinned);
  const mod = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const req = mod.get(
      url,
      { lookup: pin, signal, headers: { accept: "image/*", "user-agent": "kontext" } },
      (res) => {
        const status = res.statusCode ?? 0;
        if (status >= 300 && status < 400 && res.headers.location) {
          res.resume();
          resolve({ status, location: res.headers.location });
          return;
        }
        if (status !== 200) {
          res.resume();
          reject(new ApiError("input_image_fetch_failed", { url: url.href, reason: `HTTP ${status}` }));
          return;
        }
        const declared = Number(res.headers["content-length"] ?? 0);
        if (declared > limits.maxBytes) {
          res.destroy();
          reject(tooLarge(url, limits));
          return;
        }
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (c: Buffer) => {
          size += c.length;
          if (size > limits.maxBytes) {
            res.destroy();
            reject(tooLarge(url, limits));
            return;
          }
          chunks.push(c);
        });
        res.on("end", () => resolve({ status, body: Buffer.concat(chunks) }));
        res.on("error", (err) => reject(failed(url, err, signal)));
      },
    );
    req.on("error", (err) => reject(failed(url, err, signal)));
  });
}

const tooLarge = (url: URL, limits: FetchLimits) =>
  new ApiError("input_image_too_large", {
    reason: `${url.href} is larger than ${limits.maxBytes} bytes (KONTEXT_FETCH_MAX_BYTES)`,
  });

function failed(url: URL, err: Error, signal: AbortSignal): ApiError {
  if (err instanceof ApiError) return err;
  const reason = signal.aborted ? "timed out (KONTEXT_FETCH_TIMEOUT_MS)" : err.message;
  return new ApiError("input_image_fetch_failed", { url: url.href, reason });
}

/**
 * The URL `href` stands for (relative to `base` for a redirect's Location), or null when it does
 * not parse: a zone id, a %-escaped control character, a port over 65535.
 */
export function parseUrl(href: string, base?: URL): URL | null {
  try {
    return new URL(href, base);
  } catch {
    return null;
  }
}

/** A value quoted for a message: at most 200 characters. */
const quoted = (s: string) => JSON.stringify(s.length > 200 ? `${s.slice(0, 197)}...` : s);

/** GETs an http(s) URL under the address policy and the limits; returns the body. */
export async function fetchImage(href: string, policy: AddressPolicy, limits: FetchLimits): Promise<Buffer> {
  const signal = AbortSignal.timeout(limits.timeoutMs);
  const first = parseUrl(href);
  if (!first) {
    throw new ApiError(
      "input_image_invalid",
      { reason: `not a valid URL (a malformed host, port or %-escape), got ${quoted(href)}` },
      { fields: ["input_image"] },
    );
  }
  let url = first;
  for (let redirects = 0; ; redirects++) {
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new ApiError("input_image_invalid", {
        reason: `only http and https URLs are fetched, got ${url.protocol}`,
      });
    }
    const pinned = await resolveChecked(url, policy);
    if (signal.aborted) throw failed(url, new Error("timeout"), signal);
    // a URL that parsed but that http.get refuses (it throws) is a failed fetch, not a crash
    const res = await getOnce(url, pinned, limits, signal).catch((err: Error) => {
      throw failed(url, err, signal);
    });
    if (res.body) return res.body;
    if (redirects >= limits.maxRedirects) {
      throw new ApiError("input_image_fetch_failed", {
        url: href,
        reason: `more than ${limits.maxRedirects} redirects (KONTEXT_FETCH_MAX_REDIRECTS)`,
      });
    }
    const next = parseUrl(res.location ?? "", url);
    if (!next) {
      throw new ApiError(
        "input_image_invalid",
        {
          reason: `${url.href} redirects to a malformed URL (Location: ${quoted(res.location ?? "")}), which cannot be fetched`,
        },
        { fields: ["input_image"] },
      );
    }
    url = next;
  }
}
