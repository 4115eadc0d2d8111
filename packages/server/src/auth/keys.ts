// API keys: who is calling, and how much they may ask for. Keys are held only as SHA-256 hashes;
// a caller is known by its key's id (the first 16 hex digits of the hash), which is what job rows
// record as their owner. Limits per key: submissions per minute and generations active at once.
import { createHash } from "node:crypto";
import { isIP } from "node:net";
import type { Config } from "../config.js";
import { ConfigError, checkApiKeyEntries } from "../config.js";
import { ApiError } from "../errors.js";

const sha256 = (s: string) => createHash("sha256").update(s, "utf8").digest("hex");

/** The id a key is known by in job rows and logs (never the key itself). */
export const keyId = (keyHash: string) => keyHash.slice(0, 16);

export function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  const h = host.replace(/^\[|\]$/g, "");
  if (isIP(h) === 4) return h.startsWith("127.");
  return h === "::1";
}

/** Whether requests must carry a key; throws ConfigError when they must and none is configured. */
export function authRequired(config: Pick<Config, "host" | "apiKeys" | "requireApiKey">): boolean {
  if (config.requireApiKey === false) return false;
  const required = config.requireApiKey === true || !isLoopback(config.host) || config.apiKeys.length > 0;
  if (required && config.apiKeys.length === 0) {
    throw new ConfigError(
      config.requireApiKey === true
        ? "KONTEXT_REQUIRE_API_KEY is true but KONTEXT_API_KEYS is empty"
        : `HOST ${config.host} is not a loopback address, so API keys are required: set KONTEXT_API_KEYS (or KONTEXT_REQUIRE_API_KEY=false behind a proxy that authenticates)`,
    );
  }
  return required;
}

export interface KeyLimits {
  submitsPerMinute: number;
  maxActiveJobs: number;
}

export class ApiKeys {
  /** sha256(key) → key id */
  private readonly hashes = new Map<string, string>();
  /** key id → times (ms) of its submissions in the last minute */
  private readonly recent = new Map<string, number[]>();
  /** key id → generations admitted but not yet in the store */
  private readonly pending = new Map<string, number>();
  readonly enabled: boolean;

  constructor(
    config: Pick<Config, "host" | "apiKeys" | "requireApiKey">,
    private readonly limits: KeyLimits,
  ) {
    this.enabled = authRequired(config);
    checkApiKeyEntries(config.apiKeys); // loadConfig checked them too; a config built in code is checked here
    for (const entry of config.apiKeys) {
      const m = /^sha256:([0-9a-f]{64})$/i.exec(entry);
      const hash = m?.[1] ? m[1].toLowerCase() : sha256(entry);
      this.hashes.set(hash, keyId(hash));
    }
  }

  /** The 401 a caller without a valid key gets. */
  refusal(reason: string): ApiError {
    return new ApiError(
      "unauthorized",
      { reason },
      { headers: { "www-authenticate": 'Bearer realm="kontext"' } },
    );
  }

  /** The caller's key id when it sent a valid one, else null (for routes open to anyone). */
  identifyOptional(authorization: string | undefined): string | null {
    try {
      return authorization ? this.identify(authorization) : null;
    } catch {
      return null;
    }
  }

  /** The caller's key id from an Authorization header; null when keys are off. Throws 401. */
  identify(authorization: string | undefined): string | null {
    if (!this.enabled) return null;
    const refuse = (reason: string) => this.refusal(reason);
    if (!authorization) throw refuse("this server requires an API key");
    const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization);
    if (!m?.[1]) throw refuse("the Authorization header is not `Bearer <key>`");
    const id = this.hashes.get(sha256(m[1]));
    if (!id) throw refuse("the API key is not valid");
    return id;
  }

  /**
   * Admits `count` new generations for `owner` or throws 429 with Retry-After. `active` is how
   * many the owner has queued or processing in the store; admitted ones count as active too until
   * `release` is called (once they are in the store, or refused later). Without keys, no limits.
   */
  admit(owner: string | null, count: number, active: number, now = Date.now()): () => void {
    if (owner === null) return () => undefined;
    const { submitsPerMinute, maxActiveJobs } = this.limits;
    const pending = this.pending.get(owner) ?? 0;
    if (active + pending + count > maxActiveJobs) {
      const retryAfter = 5; // a generation takes seconds; look again soon
      throw new ApiError(
        "too_many_active",
        { active: active + pending, count, limit: maxActiveJobs, retryAfter },
        { headers: { "retry-after": String(retryAfter) } },
      );
    }
    const times = (this.recent.get(owner) ?? []).filter((t) => t > now - 60_000);
    this.recent.set(owner, times);
    if (times.length >= submitsPerMinute) {
      const oldest = times[0] ?? now;
      const retryAfter = Math.max(1, Math.ceil((oldest + 60_000 - now) / 1000));
      throw new ApiError(
        "rate_limited",
        { limit: submitsPerMinute, retryAfter },
        { headers: { "retry-after": String(retryAfter) } },
      );
    }
    times.push(now);
    this.pending.set(owner, pending + count);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.pending.get(owner) ?? count) - count;
      if (left > 0) this.pending.set(owner, left);
      else this.pending.delete(owner);
    };
  }
}
