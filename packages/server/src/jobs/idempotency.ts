// Idempotency-Key on submit: the same key with the same body (and endpoint) gives back the
// generations the first request made; with a different body, 409. The key is written in the same
// transaction as its generations (the queue's submit), so a crash cannot leave one without the
// other; requests with the same key that overlap in time wait for the first one here.
import { createHash } from "node:crypto";
import { ApiError, fieldInvalid } from "../errors.js";
import type { JobQueue } from "./job-queue.js";
import type { Generation } from "./types.js";

/** Keys are forgotten after a day, as payment APIs do. */
export const IDEMPOTENCY_TTL_MS = 24 * 3_600_000;
const KEY = /^[\x21-\x7e]{1,255}$/; // visible ASCII

/** A hash of the request that does not depend on the order of its fields. */
export function requestHash(endpoint: string, body: unknown): string {
  const canonical = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(canonical);
    if (v && typeof v === "object") {
      return Object.fromEntries(
        Object.keys(v)
          .sort()
          .map((k) => [k, canonical((v as Record<string, unknown>)[k])]),
      );
    }
    return v;
  };
  return createHash("sha256")
    .update(`${endpoint}\n${JSON.stringify(canonical(body))}`)
    .digest("hex");
}

/** The Idempotency-Key header, checked; undefined when absent. */
export function idempotencyKeyOf(header: string | string[] | undefined): string | undefined {
  if (header === undefined) return undefined;
  const key = Array.isArray(header) ? header[0] : header;
  if (key === undefined || !KEY.test(key)) {
    throw fieldInvalid(
      "Idempotency-Key",
      "must be 1 to 255 visible ASCII characters",
      JSON.stringify(key),
      false,
    );
  }
  return key;
}

export class Idempotency {
  private readonly inflight = new Map<string, Promise<unknown>>();
  constructor(private readonly queue: Pick<JobQueue, "idempotent" | "get">) {}

  /**
   * Returns the generations this key already made, or runs `create` (which must record the key
   * with its generations) once.
   */
  async once(
    owner: string | null,
    key: string,
    hash: string,
    create: () => Promise<Generation[]>,
  ): Promise<Generation[]> {
    const slot = `${owner ?? ""}\n${key}`;
    for (let p = this.inflight.get(slot); p; p = this.inflight.get(slot)) await p.catch(() => undefined);
    const prior = await this.queue.idempotent(owner, key);
    if (prior) {
      if (prior.requestHash !== hash) throw new ApiError("idempotency_conflict", { key });
      const gens = await Promise.all(prior.ids.map((id) => this.queue.get(id)));
      return gens.filter((g) => g !== null);
    }
    const run = create();
    this.inflight.set(slot, run);
    try {
      return await run;
    } finally {
      this.inflight.delete(slot);
    }
  }
}
