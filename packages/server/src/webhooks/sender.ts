// Webhooks: a generation submitted with `webhook` has its start, progress and completed events
// POSTed there, signed per Standard Webhooks. Deliveries wait in an outbox (outbox.ts: SQLite
// rows, or Redis when scaled out): writing one is all the job's path does, so a slow or dead
// receiver never delays a job, and a restart resumes what was not yet delivered. Each attempt goes
// through the same address guard as input_image URLs (resolved, checked, pinned); failures are
// retried with backoff.

import http from "node:http";
import https from "node:https";
import { ApiError } from "../errors.js";
import type { AddressPolicy } from "../images/address.js";
import { checkAddress, parseUrl, pinnedLookup } from "../images/fetch.js";
import type { Delivery, WebhookOutbox } from "./outbox.js";
import { secretKey, sign } from "./signature.js";

/** Standard Webhooks' suggested schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h. */
export const RETRY_DELAYS_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000];

export interface WebhookOptions {
  secret: string | null;
  policy: AddressPolicy;
  /** Pause before each retry; its length is how many retries there are. */
  retryDelaysMs?: readonly number[];
  /** Time limit of one attempt, response included. */
  timeoutMs?: number;
  /** Deliveries in flight at once. */
  concurrency?: number;
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

export class Webhooks {
  private readonly key: Buffer | null;
  private readonly busy = new Set<string>();
  private readonly aborts = new Set<AbortController>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private pumping = false;
  private again = false;
  private unfollow: (() => void) | null = null;
  private readonly retryDelays: readonly number[];

  constructor(
    readonly outbox: WebhookOutbox,
    private readonly options: WebhookOptions,
  ) {
    this.key = options.secret ? secretKey(options.secret) : null;
    this.retryDelays = options.retryDelaysMs ?? RETRY_DELAYS_MS;
  }

  /** Checks a submitted webhook URL: 400 when it cannot or may not be called. */
  async check(href: string): Promise<void> {
    if (!this.key) {
      throw new ApiError("webhook_invalid", {
        reason: "this server has no KONTEXT_WEBHOOK_SECRET, and webhooks are always signed",
      });
    }
    const url = parseUrl(href); // the schema's `uri` format already checked it; never a 500 if not
    if (!url) {
      throw new ApiError(
        "webhook_invalid",
        { reason: "not a valid URL (a malformed host, port or %-escape)" },
        { fields: ["webhook"] },
      );
    }
    const check = await checkAddress(url, this.options.policy);
    if (check.ok) return;
    if ("refused" in check) throw new ApiError("webhook_refused", { url: url.href, ...check.refused });
    throw new ApiError("webhook_invalid", { reason: `${url.href}: ${check.unresolvable}` });
  }

  /** Follows the outbox and sends what earlier runs left undelivered. */
  start(): this {
    if (this.running) return this;
    this.running = true;
    this.unfollow = this.outbox.follow(() => this.pump());
    this.pump();
    return this;
  }

  /** Stops sending; deliveries in flight are abandoned and sent again after a restart. */
  stop(): void {
    this.running = false;
    this.unfollow?.();
    if (this.timer) clearTimeout(this.timer);
    for (const a of this.aborts) a.abort();
  }

  /** Starts the deliveries that are due; one pass at a time, another one after it when woken meanwhile. */
  private pump(): void {
    if (!this.running) return;
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pass()
      .catch((err: Error) => this.options.log?.("warn", `webhooks: ${err.message}`))
      .finally(() => {
        this.pumping = false;
        if (this.again) {
          this.again = false;
          this.pump();
        }
      });
  }

  private async pass(): Promise<void> {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const now = Date.now();
    const free = (this.options.concurrency ?? 8) - this.busy.size;
    if (free > 0) {
      for (const d of await this.outbox.due(now, [...this.busy], free)) {
        this.busy.add(d.key);
        void this.attempt(d)
          .catch((err: Error) => this.options.log?.("warn", `webhook ${d.messageId}: ${err.message}`))
          .finally(() => {
            this.busy.delete(d.key);
            this.pump();
          });
      }
    }
    const next = await this.outbox.nextAt();
    if (this.running && next !== null && next > now) {
      this.timer = setTimeout(() => this.pump(), next - now);
      this.timer.unref();
    }
  }

  private async attempt(d: Delivery): Promise<void> {
    let outcome: { ok: true } | { ok: false; error: string; final?: boolean };
    try {
      outcome = await this.post(d);
    } catch (err) {
      outcome = { ok: false, error: (err as Error).message };
    }
    if (!this.running) return; // stopped meanwhile: the row stays due and is sent after a restart
    const attempts = d.attempts + 1;
    if (outcome.ok) {
      await this.outbox.done(d, "delivered", null, Date.now());
      return;
    }
    const delay = this.retryDelays[d.attempts];
    if (outcome.final || delay === undefined) {
      await this.outbox.done(d, "gave_up", outcome.error, Date.now());
      this.options.log?.(
        "warn",
        `webhook ${d.messageId} to ${d.url}: gave up after ${attempts} attempt(s): ${outcome.error}`,
      );
    } else {
      await this.outbox.retry(d, Date.now() + delay, outcome.error);
    }
  }

  private async post(d: Delivery): Promise<{ ok: true } | { ok: false; error: string; final?: boolean }> {
    const key = this.key;
    if (!key) return { ok: false, final: true, error: "KONTEXT_WEBHOOK_SECRET is no longer set" };
    const url = new URL(d.url);
    const check = await checkAddress(url, this.options.policy);
    if (!check.ok) {
      // A host that now resolves to a refused address is not tried again.
      if ("refused" in check)
        return {
          ok: false,
          final: true,
          error: `resolves to ${check.refused.address}, a ${check.refused.range} address`,
        };
      return { ok: false, error: check.unresolvable };
    }
    const timestamp = Math.floor(Date.now() / 1000);
    const abort = new AbortController();
    this.aborts.add(abort);
    const timeout = setTimeout(() => abort.abort(), this.options.timeoutMs ?? 10_000);
    try {
      const status = await new Promise<number>((resolve, reject) => {
        const req = (url.protocol === "https:" ? https : http).request(url, {
          method: "POST",
          lookup: pinnedLookup(check.pinned),
          signal: abort.signal,
          headers: {
            "content-type": "application/json",
            "user-agent": "kontext-webhooks",
            "webhook-id": d.messageId,
            "webhook-timestamp": String(timestamp),
            "webhook-signature": sign(key, d.messageId, timestamp, d.body),
          },
        });
        req.on("response", (res) => {
          res.resume(); // the body is not needed; reading it lets the socket close
          res.on("end", () => resolve(res.statusCode ?? 0));
          res.on("error", reject);
        });
        req.on("error", reject);
        req.end(d.body);
      });
      if (status >= 200 && status < 300) return { ok: true };
      return { ok: false, error: `HTTP ${status}` };
    } catch (err) {
      return { ok: false, error: abort.signal.aborted ? "timed out" : (err as Error).message };
    } finally {
      clearTimeout(timeout);
      this.aborts.delete(abort);
    }
  }
}
