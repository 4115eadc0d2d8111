// Kontext scaled out on this machine, as docs/deploy.md lays it out across machines: gateway and
// worker processes (src/main.ts with KONTEXT_ROLE) sharing a Redis and a file store path (or an
// S3-compatible bucket), each with its own data dir. Workers run the real engine on the tiny model. Used by scale.test.ts and
// scripts/queue-bench.ts.
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, startServer, waitFor } from "./support.js";

export interface Proc {
  role: "gateway" | "worker";
  proc: ChildProcess;
  /** The gateway's base URL. */
  url: string;
  /** A worker's /metrics and /healthz listener (KONTEXT_METRICS_PORT), null for a gateway. */
  metricsUrl: string | null;
  log: string[];
}

export class Cluster {
  readonly root = mkdtempSync(path.join(tmpdir(), "kontext-cluster-"));
  readonly shared = path.join(this.root, "shared");
  readonly procs: Proc[] = [];
  private n = 0;

  constructor(
    private readonly env: {
      redisUrl: string;
      python: string;
      modelDir: string;
      lockS?: number;
      /** CPU threads per worker's engine: 1 keeps two engines on 2 cores from fighting (a GPU each, in production). */
      engineThreads?: number;
      /** Files in this bucket instead of the shared path (with the tests' S3 credentials). */
      s3?: { endpoint: string; bucket: string; credentials: Record<string, string> };
    },
  ) {
    mkdirSync(this.shared, { recursive: true });
  }

  private async spawn(role: "gateway" | "worker"): Promise<Proc> {
    const port = role === "gateway" ? await freePort() : 0;
    const metricsPort = role === "worker" ? await freePort() : 0;
    const dataDir = path.join(this.root, `${role}-${++this.n}`);
    const server = startServer({
      dataDir,
      port,
      detached: true, // its own process group: killing it takes its engine along, as a machine dying would
      env: {
        KONTEXT_ROLE: role,
        KONTEXT_REDIS_URL: this.env.redisUrl,
        ...(this.env.s3
          ? {
              KONTEXT_S3_BUCKET: this.env.s3.bucket,
              KONTEXT_S3_ENDPOINT: this.env.s3.endpoint,
              ...this.env.s3.credentials,
            }
          : { KONTEXT_SHARED_DIR: this.shared }),
        KONTEXT_MODEL_DIR: this.env.modelDir,
        KONTEXT_PYTHON: this.env.python,
        KONTEXT_DEVICES: "cpu",
        KONTEXT_JOB_LOCK_S: String(this.env.lockS ?? 3),
        OMP_NUM_THREADS: String(this.env.engineThreads ?? 1),
        KONTEXT_METRICS_PORT: String(metricsPort),
      },
    });
    const p: Proc = {
      role,
      proc: server.proc,
      url: server.url,
      metricsUrl: metricsPort ? `http://127.0.0.1:${metricsPort}` : null,
      log: server.log,
    };
    this.procs.push(p);
    return p;
  }

  async gateway(): Promise<Proc> {
    const g = await this.spawn("gateway");
    await until(
      async () => (await fetch(`${g.url}/api/ai/models`)).ok,
      60_000,
      `gateway up\n${g.log.join("")}`,
      g,
    );
    return g;
  }

  /** Starts a worker; `via` (a gateway) tells when its engine is ready. */
  async worker(via: Proc): Promise<Proc> {
    const before = await readyEngines(via);
    const w = await this.spawn("worker");
    await until(
      async () => (await readyEngines(via)) > before,
      120_000,
      `worker ready\n${w.log.join("")}`,
      w,
    );
    return w;
  }

  /** SIGKILL to the process and its engine: the machine is gone. */
  kill(p: Proc): void {
    if (p.proc.pid && p.proc.exitCode === null) process.kill(-p.proc.pid, "SIGKILL");
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.procs.map(async (p) => {
        if (p.proc.exitCode !== null || p.proc.signalCode !== null || !p.proc.pid) return;
        const exited = new Promise((r) => p.proc.once("exit", r));
        process.kill(-p.proc.pid, "SIGTERM");
        const t = setTimeout(() => p.proc.pid && process.kill(-p.proc.pid, "SIGKILL"), 20_000);
        await exited;
        clearTimeout(t);
      }),
    );
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Engines the gateway's /healthz lists as idle or busy (workers report every 2 s). */
export async function readyEngines(g: Proc): Promise<number> {
  try {
    const h = (await (await fetch(`${g.url}/healthz`)).json()) as { engines: Array<{ state: string }> };
    return h.engines.filter((e) => e.state === "idle" || e.state === "busy").length;
  } catch {
    return 0;
  }
}

/** Polls `cond` (errors count as not yet) until it holds; gives up if `proc` exits. */
export async function until(
  cond: () => Promise<boolean>,
  timeoutMs: number,
  what: string,
  proc?: Proc,
): Promise<void> {
  await waitFor(cond, timeoutMs, what, {
    intervalMs: 100,
    retryErrors: true,
    giveUpIf: () => (proc && proc.proc.exitCode !== null ? "exited" : null),
  });
}

export async function submit(g: Proc, body: Record<string, unknown>): Promise<string> {
  const res = await fetch(`${g.url}/api/ai/queue`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const json = (await res.json()) as { generations?: Array<{ generation_id: string }> };
  const id = json.generations?.[0]?.generation_id;
  if (!res.ok || !id) throw new Error(`submit: HTTP ${res.status} ${JSON.stringify(json)}`);
  return id;
}

export interface GenView {
  generation_id: string;
  status: string;
  step: number;
  attempts: number;
  error_message: string | null;
}

export async function generation(g: Proc, id: string): Promise<GenView> {
  const res = await fetch(`${g.url}/api/ai/queue/${id}`);
  if (!res.ok) throw new Error(`GET ${id}: HTTP ${res.status}`);
  return (await res.json()) as GenView;
}
