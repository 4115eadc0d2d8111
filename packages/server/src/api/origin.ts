// Which web pages may talk to this server. Browsers let any page send a form POST to any
// address, and DNS rebinding lets a page read answers under its own name; both reach a server
// on loopback with keys off (the default). So, before anything else runs:
// - a request a browser marks as coming from another site (`Origin`, `Sec-Fetch-Site`) is 403,
//   unless its origin is listed in KONTEXT_CORS_ORIGINS (CORS is then on for it). Navigations
//   (following a link to the workbench) and GETs of open routes (result files) stay allowed:
//   they change nothing and the page cannot read the answer.
// - with keys off, a `Host` that names some other domain is 403. Rebinding needs a domain name,
//   so loopback names, IP literals and the host of KONTEXT_PUBLIC_URL are answered.
// CORS is a few headers here rather than @fastify/cors, whose own hook and OPTIONS route would
// have to be ordered against these checks and the key check.
import { isIP } from "node:net";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ConfigError } from "../config.js";
import type { AppContext } from "../context.js";
import { ApiError } from "../errors.js";
import { OPEN_ROUTES } from "./auth.js";

const ALLOWED_HEADERS = "authorization, content-type, idempotency-key, last-event-id, accept";
const EXPOSED_HEADERS = "retry-after, location";

/** Origins from KONTEXT_CORS_ORIGINS, normalised (scheme://host[:port]); ConfigError when malformed. */
export function parseOrigins(entries: readonly string[]): Set<string> {
  const out = new Set<string>();
  entries.forEach((entry, i) => {
    let url: URL | null = null;
    try {
      url = new URL(entry);
    } catch {
      url = null;
    }
    if (!url || !/^https?:$/.test(url.protocol) || url.pathname !== "/" || url.search || url.hash) {
      throw new ConfigError(
        `KONTEXT_CORS_ORIGINS entry ${i + 1} must be an origin such as https://app.example.com (scheme, host and optional port), got ${JSON.stringify(entry)}`,
      );
    }
    out.add(url.origin);
  });
  return out;
}

const hostOf = (origin: string): string | null => {
  try {
    return new URL(origin).host;
  } catch {
    return null;
  }
};

/** A Host a DNS-rebinding page cannot produce: loopback names, IP literals, or our public name. */
function hostAllowed(hostname: string, publicHost: string | null): boolean {
  const h = hostname.toLowerCase().replace(/\.$/, "");
  if (h === "" || h === "localhost" || h.endsWith(".localhost")) return true;
  if (isIP(h.replace(/^\[|\]$/g, "")) !== 0) return true;
  return publicHost !== null && h === publicHost;
}

export function registerOrigin(app: FastifyInstance, ctx: AppContext): void {
  const allowed = parseOrigins(ctx.config.corsOrigins);
  const publicUrl = ctx.config.publicUrl ? new URL(ctx.config.publicUrl) : null;
  const publicHostname = publicUrl?.hostname.toLowerCase() ?? null;

  app.addHook("onRequest", async (req: FastifyRequest, reply: FastifyReply) => {
    if (!ctx.keys.enabled && !hostAllowed(req.hostname, publicHostname)) {
      throw new ApiError("host_refused", { host: JSON.stringify(req.hostname.slice(0, 100)) });
    }
    const origin = typeof req.headers.origin === "string" ? req.headers.origin : null;
    if (origin !== null && allowed.has(origin)) {
      void reply
        .header("access-control-allow-origin", origin)
        .header("vary", "Origin")
        .header("access-control-expose-headers", EXPOSED_HEADERS);
      if (req.method === "OPTIONS" && req.headers["access-control-request-method"]) {
        return reply
          .code(204)
          .header("access-control-allow-methods", "GET, HEAD, POST, DELETE")
          .header("access-control-allow-headers", ALLOWED_HEADERS)
          .header("access-control-max-age", "600")
          .send();
      }
      return;
    }
    const site = req.headers["sec-fetch-site"];
    const ownHosts = [req.host.toLowerCase(), publicUrl?.host.toLowerCase()];
    const foreignOrigin = origin !== null && !ownHosts.includes(hostOf(origin)?.toLowerCase());
    const foreignSite = site === "cross-site" || site === "same-site";
    if (!foreignOrigin && !foreignSite) return;
    const reading = req.method === "GET" || req.method === "HEAD";
    if (reading && req.headers["sec-fetch-mode"] === "navigate") return;
    if (reading && OPEN_ROUTES.has(req.routeOptions.url ?? "")) return;
    throw new ApiError("cross_site_refused", {
      origin: JSON.stringify((origin ?? "another site").slice(0, 200)),
      header: foreignOrigin ? `Origin: ${origin?.slice(0, 200)}` : `Sec-Fetch-Site: ${site}`,
    });
  });
}
