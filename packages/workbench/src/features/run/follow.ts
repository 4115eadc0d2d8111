// Follows many generations over few connections. A browser opens at most six HTTP/1.1
// connections per server, and an event stream holds one for as long as it is open; a 3 × 3
// sweep with a stream per cell would leave none for anything else. So at most MAX_STREAMS
// generations are streamed at once, oldest first (the queue runs oldest first, so the one
// running is among them); the others wait, and one poll of GET /api/ai/queue counts their
// queue positions down. A stream replays a generation's events (with its current queue
// position), so nothing is missed by opening it late.
import type { Generation } from "@kontext/client";
import type { Timers } from "../../app/store.js";
import type { ServerEvent } from "./progress.js";

export const MAX_STREAMS = 2;
export const POLL_MS = 2000;

export interface FollowDeps {
  /** Opens the event stream of one generation; returns a function that closes it. */
  openStream(id: string, onEvent: (e: ServerEvent) => void): () => void;
  /** Queued and processing generations (GET /api/ai/queue). */
  listActive(): Promise<Array<Pick<Generation, "generation_id" | "status" | "queue_position">>>;
  timers: Pick<Timers, "setInterval" | "clearInterval">;
}

export class Follower {
  private readonly waiting: string[] = [];
  private readonly streams = new Map<string, () => void>();
  private timer: unknown = null;

  constructor(
    private readonly onEvent: (id: string, e: ServerEvent) => void,
    private readonly deps: FollowDeps,
  ) {}

  follow(ids: readonly string[]): void {
    for (const id of ids) if (!this.streams.has(id) && !this.waiting.includes(id)) this.waiting.push(id);
    this.pump();
  }

  /** Generations streamed now. */
  get streaming(): string[] {
    return [...this.streams.keys()];
  }

  close(): void {
    for (const stop of this.streams.values()) stop();
    this.streams.clear();
    this.waiting.length = 0;
    this.pump();
  }

  private pump(): void {
    while (this.streams.size < MAX_STREAMS && this.waiting.length > 0)
      this.open(this.waiting.shift() as string);
    if (this.waiting.length > 0 && this.timer === null) {
      this.timer = this.deps.timers.setInterval(() => void this.poll(), POLL_MS);
    } else if (this.waiting.length === 0 && this.timer !== null) {
      this.deps.timers.clearInterval(this.timer);
      this.timer = null;
    }
  }

  private open(id: string): void {
    let done = false;
    const stop = this.deps.openStream(id, (e) => {
      this.onEvent(id, e);
      if (e.event === "media_generation_completed" && !done) {
        done = true;
        this.streams.get(id)?.();
        this.streams.delete(id);
        this.pump();
      }
    });
    if (done) stop();
    else this.streams.set(id, stop);
  }

  /** Counts the waiting ones' queue positions down; streams at once those no longer queued. */
  async poll(): Promise<void> {
    if (this.waiting.length === 0) return;
    let active: Awaited<ReturnType<FollowDeps["listActive"]>>;
    try {
      active = await this.deps.listActive();
    } catch {
      return; // the next poll tries again
    }
    const byId = new Map(active.map((g) => [g.generation_id, g]));
    for (const id of [...this.waiting]) {
      const g = byId.get(id);
      if (g?.status === "queued") {
        this.onEvent(id, {
          id: 0,
          event: "media_generation_queued",
          data: { generation_id: id, status: "queued", model: "", queue_position: g.queue_position },
        });
      } else {
        // running or already finished: its stream has what matters, whatever the limit
        this.waiting.splice(this.waiting.indexOf(id), 1);
        this.open(id);
      }
    }
    this.pump();
  }
}
