// Who is calling. When keys are on (auth/keys.ts decides when), every route needs a key except
// the few listed in OPEN_ROUTES. The decision is made from the route the router matched, never
// from the URL's text, so percent-encoded, mixed-case or absolute-form spellings of a protected
// path cannot skip it; a route nobody listed is protected (fail closed). The caller's key id
// becomes req.owner and the routes show a caller only its own generations.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { AppContext } from "../context.js";
import { ApiError } from "../errors.js";
import type { QueuedGeneration } from "../jobs/job-queue.js";
import type { Generation } from "../jobs/types.js";

declare module "fastify" {
  interface FastifyRequest {
    /** The caller's API key id; null when keys are off, or on an open route without a key. */
    owner: string | null;
  }
}

/**
 * Routes that answer without a key: health (its per-engine detail only with a key), the API
 * description, the workbench's files (it asks for a key itself) and result files (whose names
 * hold 128 random bits).
 */
export const OPEN_ROUTES: ReadonlySet<string> = new Set([
  "/healthz",
  "/openapi.json",
  "/docs",
  "/",
  "/assets/:name",
  "/results/:name",
]);

export function registerAuth(app: FastifyInstance, ctx: AppContext): void {
  app.decorateRequest("owner", null);
  app.addHook("onRequest", async (req) => {
    if (!ctx.keys.enabled) return;
    const route = req.routeOptions.url; // the matched route's pattern; undefined: no route (404)
    if (route === undefined) return;
    if (OPEN_ROUTES.has(route)) {
      // A key is optional here; a valid one shows more (/healthz), an invalid one is ignored.
      req.owner = ctx.keys.identifyOptional(req.headers.authorization);
      return;
    }
    req.owner = ctx.keys.identify(req.headers.authorization);
  });
}

/** The owner filter for listing the caller's generations: everyone's only when keys are off. */
export function ownerScope(ctx: AppContext, req: FastifyRequest): { owner?: string } {
  if (!ctx.keys.enabled) return {};
  if (req.owner === null) throw ctx.keys.refusal("this server requires an API key");
  return { owner: req.owner };
}

/** Whether the caller may see this generation: its own, or any when keys are off. */
export function visibleTo<G extends Generation>(ctx: AppContext, req: FastifyRequest, g: G | null): g is G {
  if (g === null) return false;
  if (!ctx.keys.enabled) return true;
  return req.owner !== null && g.owner === req.owner;
}

/** The caller's generation, or 404 as if it did not exist. */
export async function ownGeneration(
  ctx: AppContext,
  req: FastifyRequest,
  id: string,
): Promise<QueuedGeneration> {
  const g = await ctx.queue.get(id);
  if (!visibleTo(ctx, req, g)) throw new ApiError("generation_not_found", { id });
  return g;
}
