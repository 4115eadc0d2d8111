// GET /healthz (200 only while an engine is ready) and GET /metrics (Prometheus text).
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.js";
import type { EngineStatus } from "../engine/supervisor.js";

export type HealthState = "ready" | "busy" | "starting" | "failed" | "stopping";

export function overallState(engines: EngineStatus[]): HealthState {
  if (engines.some((e) => e.state === "idle")) return "ready";
  if (engines.some((e) => e.state === "busy")) return "busy";
  if (engines.some((e) => e.state === "starting")) return "starting";
  return "failed";
}

/** The `kontext_engines` gauge: engines by state (the gateway's and a worker's /metrics). */
export function enginesGauge(engines: EngineStatus[]) {
  return {
    name: "kontext_engines",
    help: "Engines by state.",
    values: (["starting", "idle", "busy", "failed"] as const).map((s): [Record<string, string>, number] => [
      { state: s },
      engines.filter((e) => e.state === s).length,
    ]),
  };
}

export function registerHealth(app: FastifyInstance, ctx: AppContext): void {
  app.get("/healthz", async (req, reply) => {
    const engines = ctx.engine.status();
    // While shutting down: 503, so a load balancer sends new work elsewhere.
    const state = ctx.queue.accepting() ? overallState(engines) : "stopping";
    const loaded = engines.find((e) => e.model)?.model ?? null;
    // With keys on, anyone may ask whether the server is up; only a caller with a key sees engine
    // detail (pids, problems), and generation ids only of its own generations.
    const detailed = !ctx.keys.enabled || req.owner !== null;
    const ownJob = async (id: string | null) =>
      id !== null && (!ctx.keys.enabled || (await ctx.queue.get(id))?.owner === req.owner) ? id : null;
    const body = {
      status: state === "ready" || state === "busy" ? "ok" : "unavailable",
      state,
      model: loaded ? loaded.name : null,
      demo: loaded?.demo ?? null,
      note: loaded?.demo
        ? "the tiny demo model is loaded: its output is noise (set KONTEXT_MODEL_DIR)"
        : undefined,
      device: engines.find((e) => e.model)?.device ?? null,
      engines: await Promise.all(
        engines.map(async (e) =>
          detailed
            ? {
                device: e.device,
                state: e.state,
                pid: e.pid,
                model: e.model,
                dtype: e.dtype,
                precision: e.precision,
                compiled: e.compiled,
                safety_checker: e.safetyChecker,
                environment: e.environment, // torch, CUDA build, driver, GPU, capability, attention
                generation_id: await ownJob(e.jobId),
                restarts: e.restarts,
                problem: e.problem,
              }
            : { device: e.device, state: e.state },
        ),
      ),
      queue: await ctx.queue.depth(),
    };
    return reply.code(body.status === "ok" ? 200 : 503).send(body);
  });

  app.get("/metrics", async (_req, reply) => {
    const engines = ctx.engine.status();
    const depth = await ctx.queue.depth();
    const text = ctx.metrics.render([
      {
        name: "kontext_queue_depth",
        help: "Generations waiting or running, by status.",
        values: [
          [{ status: "queued" }, depth.queued],
          [{ status: "processing" }, depth.processing],
        ],
      },
      enginesGauge(engines),
    ]);
    return reply.header("content-type", "text/plain; version=0.0.4; charset=utf-8").send(text);
  });
}
