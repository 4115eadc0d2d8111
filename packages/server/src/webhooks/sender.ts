// Webhooks: a generation submitted with `webhook` has its start, progress and completed events
// POSTed there, signed per Standard Webhooks. Deliveries are rows in the job store (an outbox):
// writing one is all the job's path does, so a slow or dead receiver never delays a job, and a
// restart resumes what was not yet delivered. Each attempt goes through the same address guard
// as input_image URLs (resolved, checked, pinned); failures are retried with backoff.

import type { EventEmitter } from "node:events";
import http from "node:http";
import https from "node:https";
import { ApiError } from "../errors.js";
import type { AddressPolicy } from "../images/address.js";
import { checkAddress, pinnedLookup } from "../images/fetch.js";
import type { QueueEvents } from "../jobs/job-queue.js";
import type { JobStore, WebhookDelivery } from "../jobs/store.js";
import type { StoredEvent } from "../jobs/types.js";
import { secretKey, sign } from "./signature.js";

const FILTER_OF: Partial<Record<StoredEvent["event"], "start" | "progress" | "completed">> = {
  media_generation_started: "start",
  media_generation_progress: "progress",
  media_generation_completed: "completed",
};

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
  private readonly busy = new Set<number>();
  private readonly aborts = new Set<AbortController>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private readonly retryDelays: readonly number[];
  private readonly onEvent = (e: StoredEvent) => this.enqueue(e);

  constructor(
    private readonly store: JobStore,
    private readonly events: EventEmitter<QueueEvents>,
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
    const url = new URL(href); // the schema's `uri` format already made sure it parses
    const check = await checkAddress(url, this.options.policy);
    if (check.ok) return;
    if ("refused" in check) throw new ApiError("webhook_refused", { url: url.href, ...check.refused });
    throw new ApiError("webhook_invalid", { reason: `${url.href}: ${check.unresolvable}` });
  }

  /** Follows the queue's events and sends what earlier runs left undelivered. */
  start(): this {
    if (this.running) return this;
    this.running = true;
    this.events.on("event", this.onEvent);
    this.pump();
    return this;
  }

  /** Stops sending; deliveries in flight are abandoned and sent again after a restart. */
  stop(): void {
    this.running = false;
    this.events.off("event", this.onEvent);
    if (this.timer) clearTimeout(this.timer);
    for (const a of this.aborts) a.abort();
  }

  private enqueue(e: StoredEvent): void {
    const kind = FILTER_OF[e.event];
    if (!kind) return;
    const g = this.store.get(e.generationId);
    const url = g?.params.webhook;
    if (!g || !url || !(g.params.webhook_events_filter ?? ["completed"]).includes(kind)) return;
    const { preview: _preview, ...data } = e.data; // previews stay on the event streams
    if (typeof data.url === "string" && data.url.startsWith("/")) data.url = `${g.baseUrl ?? ""}${data.url}`;
    const body = JSON.stringify({ type: e.event, timestamp: new Date().toISOString(), data });
    this.store.addDelivery(`msg_${g.id}_${e.id}`, g.id, url, body, Date.now());
    this.pump();
  }

  private pump(): void {
    if (!this.running) return;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    const now = Date.now();
    const free = (this.options.concurrency ?? 8) - this.busy.size;
    if (free > 0) {
      for (const d of this.store.dueDeliveries(now, [...this.busy], free)) {
        this.busy.add(d.id);
        void this.attempt(d).finally(() => {
          this.busy.delete(d.id);
          this.pump();
        });
      }
    }
    const next = this.store.nextDeliveryAt();
    if (next !== null && next > now) {
      this.timer = setTimeout(() => this.pump(), next - now);
      this.timer.unref();
    }
  }

  private async attempt(d: WebhookDelivery): Promise<void> {
    let outcome: { ok: true } | { ok: false; error: string; final?: boolean };
    try {
      outcome = await this.post(d);
    } catch (err) {
      outcome = { ok: false, error: (err as Error).message };
    }
    if (!this.running) return; // stopped meanwhile: the row stays due and is sent after a restart
    const attempts = d.attempts + 1;
    if (outcome.ok) {
      this.store.deliveryDone(d.id, "delivered", null, Date.now());
      return;
    }
    const delay = this.retryDelays[d.attempts];
    if (outcome.final || delay === undefined) {
      this.store.deliveryDone(d.id, "gave_up", outcome.error, Date.now());
      this.options.log?.(
        "warn",
        `webhook ${d.messageId} to ${d.url}: gave up after ${attempts} attempt(s): ${outcome.error}`,
      );
    } else {
      this.store.deliveryRetry(d.id, Date.now() + delay, outcome.error);
    }
  }

  private async post(
    d: WebhookDelivery,
  ): Promise<{ ok: true } | { ok: false; error: string; final?: boolean }> {
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
