// Server-Sent Events: one writer per open stream, with ids for Last-Event-ID and keep-alive
// comments. Routes hand it the reply; it takes over the raw socket (reply.hijack()).
import type { FastifyReply, FastifyRequest } from "fastify";

export class SseStream {
  private readonly timer: NodeJS.Timeout;
  closed = false;
  private readonly onCloseCbs: Array<() => void> = [];

  constructor(req: FastifyRequest, reply: FastifyReply, keepAliveS: number) {
    reply.hijack();
    reply.raw.writeHead(200, {
      "content-type": "text/event-stream; charset=utf-8",
      "cache-control": "no-cache, no-transform",
      connection: "keep-alive",
      "x-accel-buffering": "no",
    });
    reply.raw.write(": connected\n\n");
    this.timer = setInterval(() => this.comment("keep-alive"), keepAliveS * 1000);
    const close = () => this.close();
    req.raw.on("close", close);
    reply.raw.on("close", close);
    this.raw = reply.raw;
  }
  private readonly raw: FastifyReply["raw"];

  /** One event; `id` null for one that is not stored (no `id:` line: Last-Event-ID stays put). */
  send(id: number | string | null, event: string, data: unknown): void {
    if (this.closed) return;
    const idLine = id === null ? "" : `id: ${id}\n`;
    this.raw.write(`${idLine}event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
  }

  comment(text: string): void {
    if (!this.closed) this.raw.write(`: ${text}\n\n`);
  }

  onClose(cb: () => void): void {
    if (this.closed) cb();
    else this.onCloseCbs.push(cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.timer);
    for (const cb of this.onCloseCbs.splice(0)) cb();
    this.raw.end();
  }
}

/** The Last-Event-ID a reconnecting client sent (header, or `last_event_id` query), else 0. */
export function lastEventId(req: FastifyRequest): number {
  const h = req.headers["last-event-id"];
  const q = (req.query as Record<string, unknown> | undefined)?.last_event_id;
  const raw = (Array.isArray(h) ? h[0] : h) ?? (typeof q === "string" ? q : undefined);
  const n = Number(raw);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

export function wantsEventStream(req: FastifyRequest): boolean {
  return (req.headers.accept ?? "").includes("text/event-stream");
}
