// GET /api/events: every generation's media_generation_completed, as hosted, with ids so a
// reconnecting client (Last-Event-ID) gets what it missed.
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.js";
import type { StoredEvent } from "../jobs/types.js";
import { ownerScope, visibleTo } from "./auth.js";
import { renderEvent } from "./render.js";
import { lastEventId, SseStream } from "./sse.js";

export function registerEvents(app: FastifyInstance, ctx: AppContext): void {
  app.get("/api/events", async (req, reply) => {
    ownerScope(ctx, req); // fails closed: keys on and no caller is 401, before the stream opens
    const sse = new SseStream(req, reply, ctx.config.sseKeepAliveS);
    const base = ctx.baseUrl(req);
    let chain = Promise.resolve();
    let lastSent = lastEventId(req);
    let reading = 0;
    const waiting: StoredEvent[] = [];
    const push = (e: StoredEvent) => {
      if (e.id <= lastSent || e.event !== "media_generation_completed") return;
      lastSent = e.id;
      chain = chain.then(async () => {
        if (!visibleTo(ctx, req, await ctx.queue.get(e.generationId))) return; // others' jobs
        sse.send(e.id, e.event, await renderEvent(e, base, ctx, false));
      });
    };
    const onEvent = (e: StoredEvent) => {
      if (reading > 0) waiting.push(e);
      else push(e);
    };
    // Replays what a reconnecting client missed (and, on resync, what this gateway missed).
    const catchUp = async () => {
      reading++;
      try {
        for (const e of await ctx.queue.completedEventsSince(lastSent)) push(e);
      } catch {
        sse.close();
      } finally {
        reading--;
        if (reading === 0) for (const e of waiting.splice(0)) push(e);
      }
    };
    const onResync = () => {
      if (lastSent > 0) void catchUp();
    };
    ctx.queue.on("event", onEvent);
    ctx.queue.on("resync", onResync);
    sse.onClose(() => {
      ctx.queue.off("event", onEvent);
      ctx.queue.off("resync", onResync);
    });
    if (lastSent > 0) void catchUp();
    return reply;
  });
}
