// Who is calling: every /api, /v1 and /metrics request carries an API key when keys are on
// (auth/keys.ts decides when). The caller's key id becomes req.owner; the routes show a caller
// only its own generations. /healthz, /openapi.json, /docs, the workbench's files and result files
// (whose names hold 128 random bits) stay open.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AppContext } from "../app.js";
import { ApiError } from "../errors.js";
import type { QueuedGeneration } from "../jobs/job-queue.js";
import type { Generation } from "../jobs/types.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's API key id; null when keys are off. */
    owner: string | null;
  }
}

const PROTECTED = /^\/(api|v1)(\/|$)|^\/metrics$/;

export function registerAuth(app: FastifyInstance, ctx: AppContext): void {
  app.decorateRequest("owner", null);
  app.addHook("onRequest", async (req) => {
    const path = req.url.split("?")[0] ?? "";
    if (!ctx.keys.enabled || !PROTECTED.test(path)) return;
    req.owner = ctx.keys.identify(req.headers.authorization);
  });
}

/** Whether the caller may see this generation (everything, when keys are off). */
export function visibleTo<G extends Generation>(req: FastifyRequest, g: G | null): g is G {
  return g !== null && (req.owner === null || g.owner === req.owner);
}

/** The caller's generation, or 404 as if it did not exist. */
export async function ownGeneration(
  ctx: AppContext,
  req: FastifyRequest,
  id: string,
): Promise<QueuedGeneration> {
  const g = await ctx.queue.get(id);
  if (!visibleTo(req, g)) throw new ApiError("generation_not_found", { id });
  return g;
}
