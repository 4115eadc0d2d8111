// GET /api/events: every generation's media_generation_completed, as hosted, with ids so a
// reconnecting client (Last-Event-ID) gets what it missed.
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../app.js";
import type { StoredEvent } from "../jobs/types.js";
import { renderEvent } from "./render.js";
import { lastEventId, SseStream } from "./sse.js";

export function registerEvents(app: FastifyInstance, ctx: AppContext): void {
  app.get("/api/events", async (req, reply) => {
    const sse = new SseStream(req, reply, ctx.config.sseKeepAliveS);
    const base = ctx.baseUrl(req);
    let chain = Promise.resolve();
    let lastSent = lastEventId(req);
    const push = (e: StoredEvent) => {
      if (e.id <= lastSent || e.event !== "media_generation_completed") return;
      if (req.owner !== null && ctx.store.get(e.generationId)?.owner !== req.owner) return; // others' jobs
      lastSent = e.id;
      chain = chain.then(async () => sse.send(e.id, e.event, await renderEvent(e, base, ctx, false)));
    };
    ctx.queue.on("event", push);
    sse.onClose(() => ctx.queue.off("event", push));
    if (lastSent > 0) for (const e of ctx.store.completedEventsSince(lastSent)) push(e);
    return reply;
  });
}
