// A worker's own small HTTP server (KONTEXT_ROLE=worker has no API): GET /metrics (Prometheus
// text: the generations this worker ran, its engines) and GET /healthz (200 while an engine is
// ready). Built here, listened on by main.ts (KONTEXT_METRICS_PORT), by tests on their own port.
import { createServer, type Server } from "node:http";
import { enginesGauge, overallState } from "./api/health.js";
import type { Engines } from "./engine/supervisor.js";
import type { Metrics } from "./metrics.js";

export interface MetricsListenerDeps {
  metrics: Metrics;
  engines: Engines;
  /** False once the worker is stopping: /healthz answers 503. */
  accepting: () => boolean;
}

/** The listener, not yet listening. */
export function metricsListener(deps: MetricsListenerDeps): Server {
  return createServer((req, res) => {
    const url = (req.url ?? "/").split("?")[0];
    const send = (status: number, type: string, body: string) => {
      res.writeHead(status, { "content-type": type, "content-length": Buffer.byteLength(body) });
      res.end(req.method === "HEAD" ? undefined : body);
    };
    if (req.method !== "GET" && req.method !== "HEAD") {
      res.setHeader("allow", "GET, HEAD");
      return send(405, "text/plain; charset=utf-8", "method not allowed\n");
    }
    const engines = deps.engines.status();
    if (url === "/metrics") {
      return send(
        200,
        "text/plain; version=0.0.4; charset=utf-8",
        deps.metrics.render([enginesGauge(engines)]),
      );
    }
    if (url === "/healthz") {
      const state = deps.accepting() ? overallState(engines) : "stopping";
      const ok = state === "ready" || state === "busy";
      const body = {
        status: ok ? "ok" : "unavailable",
        state,
        engines: engines.map((e) => ({ device: e.device, state: e.state })),
      };
      return send(ok ? 200 : 503, "application/json; charset=utf-8", JSON.stringify(body));
    }
    send(404, "text/plain; charset=utf-8", "not found: this worker serves only /metrics and /healthz\n");
  });
}
