// Where webhook deliveries wait to be sent: the outbox. The sender (sender.ts) takes due
// deliveries, sends them and records the outcome; the outbox decides how deliveries get in.
//   SqliteOutbox: rows in the embedded job store, added as this process's queue emits events.
//   RedisOutbox: added by the same Lua script that writes the event (redis-records.ts), so a
//     delivery exists exactly when its event does; any gateway may send it, each claimed by one.
import type { EventEmitter } from "node:events";
import type { QueueEvents } from "../jobs/job-queue.js";
import type { RedisRecords } from "../jobs/redis-records.js";
import { WEBHOOKS_DUE, webhookKey, webhooksOfKey } from "../jobs/redis-records.js";
import type { SqliteRecords } from "../jobs/sqlite-records.js";
import type { Generation, StoredEvent } from "../jobs/types.js";

export interface Delivery {
  /** The outbox's handle for this delivery. */
  key: string;
  messageId: string;
  url: string;
  body: string;
  /** Attempts made so far. */
  attempts: number;
}

/** A delivery's state, for operators and tests. */
export interface DeliveryRecord {
  message_id: string;
  attempts: number;
  done_at: number | null;
  outcome: string | null;
  last_error: string | null;
}

export interface WebhookOutbox {
  /** Calls `wake` whenever deliveries may have become due; returns what stops it. */
  follow(wake: () => void): () => void;
  /** Deliveries due at `now`, at most `limit`, none of those in `busy` (being sent here). */
  due(now: number, busy: readonly string[], limit: number): Promise<Delivery[]>;
  /** When the next delivery is due, or null when none waits. */
  nextAt(): Promise<number | null>;
  done(d: Delivery, outcome: "delivered" | "gave_up", error: string | null, at: number): Promise<void>;
  retry(d: Delivery, nextAt: number, error: string): Promise<void>;
  deliveriesOf(generationId: string): Promise<DeliveryRecord[]>;
}

const FILTER_OF: Partial<Record<StoredEvent["event"], "start" | "progress" | "completed">> = {
  media_generation_started: "start",
  media_generation_progress: "progress",
  media_generation_completed: "completed",
};

/** What a receiver gets for one event; `at` is when the delivery was first made. */
export function deliveryBody(g: Generation, e: StoredEvent, at: number): string {
  const { preview: _preview, ...data } = e.data; // previews stay on the event streams
  if (typeof data.url === "string" && data.url.startsWith("/")) data.url = `${g.baseUrl ?? ""}${data.url}`;
  if (typeof data.change_mask_url === "string" && data.change_mask_url.startsWith("/"))
    data.change_mask_url = `${g.baseUrl ?? ""}${data.change_mask_url}`;
  return JSON.stringify({ type: e.event, timestamp: new Date(at).toISOString(), data });
}

/** Whether `g` asked for a webhook on this event (webhook_events_filter; completed by default). */
export function wantsWebhook(g: Generation, e: StoredEvent): boolean {
  const kind = FILTER_OF[e.event];
  return !!kind && !!g.params.webhook && (g.params.webhook_events_filter ?? ["completed"]).includes(kind);
}

/** The embedded default: deliveries are rows in the SQLite job store. */
export class SqliteOutbox implements WebhookOutbox {
  constructor(
    private readonly store: SqliteRecords,
    private readonly events: EventEmitter<QueueEvents>,
  ) {}

  follow(wake: () => void): () => void {
    const onEvent = (e: StoredEvent) => {
      const g = this.store.get(e.generationId);
      if (!g?.params.webhook || !wantsWebhook(g, e)) return;
      this.store.addDelivery(
        `msg_${g.id}_${e.id}`,
        g.id,
        g.params.webhook,
        deliveryBody(g, e, Date.now()),
        Date.now(),
      );
      wake();
    };
    this.events.on("event", onEvent);
    return () => this.events.off("event", onEvent);
  }

  async due(now: number, busy: readonly string[], limit: number): Promise<Delivery[]> {
    return this.store.dueDeliveries(now, busy.map(Number), limit).map((d) => ({
      key: String(d.id),
      messageId: d.messageId,
      url: d.url,
      body: d.body,
      attempts: d.attempts,
    }));
  }

  async nextAt(): Promise<number | null> {
    return this.store.nextDeliveryAt();
  }

  async done(d: Delivery, outcome: "delivered" | "gave_up", error: string | null, at: number): Promise<void> {
    this.store.deliveryDone(Number(d.key), outcome, error, at);
  }

  async retry(d: Delivery, nextAt: number, error: string): Promise<void> {
    this.store.deliveryRetry(Number(d.key), nextAt, error);
  }

  async deliveriesOf(generationId: string): Promise<DeliveryRecord[]> {
    return this.store.deliveriesOf(generationId);
  }
}

/** How long a gateway holds a delivery it is sending before another may take it (a dead gateway's). */
const CLAIM_MS = 60_000;
/** A finished delivery's record is kept this long. */
const RECORD_TTL_S = 7 * 24 * 3600;

// KEYS: the due set. ARGV: now, limit, claim until. Takes due deliveries by moving them past now.
const CLAIM = `
local items = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
for _, m in ipairs(items) do redis.call('ZADD', KEYS[1], ARGV[3], m) end
return items
`;

/**
 * Scaled out: deliveries in Redis. `kontext:webhooks:due` holds `<generation id>:<event id>` by
 * due time; `kontext:webhook:<that>` its attempts and outcome. The body is made from the stored
 * event when the delivery is first taken, and kept for its retries.
 */
export class RedisOutbox implements WebhookOutbox {
  constructor(
    private readonly store: RedisRecords,
    private readonly events: EventEmitter<QueueEvents>,
    private readonly pollMs = 1_000,
  ) {}

  follow(wake: () => void): () => void {
    // Events tell this gateway when something may be due; the poll covers events it did not hear.
    const onEvent = (e: StoredEvent) => {
      if (FILTER_OF[e.event]) wake();
    };
    this.events.on("event", onEvent);
    const timer = setInterval(wake, this.pollMs);
    timer.unref();
    return () => {
      this.events.off("event", onEvent);
      clearInterval(timer);
    };
  }

  async due(now: number, _busy: readonly string[], limit: number): Promise<Delivery[]> {
    const redis = this.store.redis;
    const items = (await redis.eval(CLAIM, 1, WEBHOOKS_DUE, now, limit, now + CLAIM_MS)) as string[];
    const out: Delivery[] = [];
    for (const item of items) {
      const rec = await redis.hgetall(webhookKey(item));
      let body = rec.body;
      let url = rec.url;
      if (!body || !url) {
        const d = await this.firstTake(item, now);
        if (!d) continue;
        ({ body, url } = d);
      }
      const [generationId, eventId] = splitItem(item);
      out.push({
        key: item,
        messageId: `msg_${generationId}_${eventId}`,
        url,
        body,
        attempts: Number(rec.attempts ?? 0),
      });
    }
    return out;
  }

  /** Makes and keeps a delivery's body from its event; null (and dropped) when that is gone. */
  private async firstTake(item: string, now: number): Promise<{ body: string; url: string } | null> {
    const [generationId, eventId] = splitItem(item);
    const g = await this.store.get(generationId);
    const e = (await this.store.eventsOf(generationId, eventId - 1)).find((x) => x.id === eventId);
    if (!g?.params.webhook || !e) {
      await this.store.redis.zrem(WEBHOOKS_DUE, item);
      return null;
    }
    const body = deliveryBody(g, e, now);
    await this.store.redis.hset(webhookKey(item), { body, url: g.params.webhook });
    return { body, url: g.params.webhook };
  }

  async nextAt(): Promise<number | null> {
    const first = await this.store.redis.zrange(WEBHOOKS_DUE, 0, 0, "WITHSCORES");
    return first[1] === undefined ? null : Number(first[1]);
  }

  async done(d: Delivery, outcome: "delivered" | "gave_up", error: string | null, at: number): Promise<void> {
    const key = webhookKey(d.key);
    await this.store.redis
      .multi()
      .zrem(WEBHOOKS_DUE, d.key)
      .hset(key, { attempts: d.attempts + 1, done_at: at, outcome, last_error: error ?? "" })
      .hdel(key, "body") // sent: the record is what is left
      .expire(key, RECORD_TTL_S)
      .exec();
  }

  async retry(d: Delivery, nextAt: number, error: string): Promise<void> {
    await this.store.redis
      .multi()
      .hset(webhookKey(d.key), { attempts: d.attempts + 1, last_error: error })
      .zadd(WEBHOOKS_DUE, nextAt, d.key)
      .exec();
  }

  async deliveriesOf(generationId: string): Promise<DeliveryRecord[]> {
    const items = await this.store.redis.lrange(webhooksOfKey(generationId), 0, -1);
    return Promise.all(
      items.map(async (item) => {
        const rec = await this.store.redis.hgetall(webhookKey(item));
        const [, eventId] = splitItem(item);
        return {
          message_id: `msg_${generationId}_${eventId}`,
          attempts: Number(rec.attempts ?? 0),
          done_at: rec.done_at ? Number(rec.done_at) : null,
          outcome: rec.outcome || null,
          last_error: rec.last_error || null,
        };
      }),
    );
  }
}

function splitItem(item: string): [string, number] {
  const i = item.lastIndexOf(":");
  return [item.slice(0, i), Number(item.slice(i + 1))];
}
