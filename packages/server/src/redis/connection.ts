// Redis connections: the one module that imports ioredis. Every connection reconnects by itself
// (ioredis retries forever, backing off to 2 s); commands issued meanwhile wait in its offline
// queue, so a Redis restart delays writes and loses none.
import { Redis } from "ioredis";

export type { Redis };

export interface RedisOptions {
  /**
   * `worker` connections wait as long as Redis is away (BullMQ requires it); `gateway` ones give
   * up a request after about 10 s, so an HTTP client gets 503 (queue_unavailable) rather than hanging.
   */
  kind: "gateway" | "worker";
  log?: (level: "info" | "warn" | "error", msg: string) => void;
}

export function connectRedis(url: string, opts: RedisOptions): Redis {
  const redis = new Redis(url, {
    maxRetriesPerRequest: opts.kind === "worker" ? null : 5,
    retryStrategy: (times) => Math.min(times * 100, 2000),
    enableReadyCheck: true,
    lazyConnect: false,
  });
  let down = false;
  redis.on("error", (err: Error) => {
    if (!down) opts.log?.("warn", `redis ${redact(url)}: ${err.message}; reconnecting`);
    down = true;
  });
  redis.on("ready", () => {
    if (down) opts.log?.("info", `redis ${redact(url)}: connected again`);
    down = false;
  });
  return redis;
}

/** Whether `err` says Redis could not be reached (rather than that a command was wrong). */
export function isRedisUnavailable(err: unknown): boolean {
  const e = err as { name?: string; message?: string };
  return (
    e?.name === "MaxRetriesPerRequestError" ||
    /Connection is closed|ECONNREFUSED|ECONNRESET|Stream isn't writeable/.test(e?.message ?? "")
  );
}

/** The URL without its password, for logs. */
export function redact(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, "//$1:***@");
}
