// The real server process, as `npm start` runs it (main.ts: the gateway, the workbench at `/`,
// the engine on the tiny demo model it generates in the data directory on first start).
import { type ChildProcess, spawn } from "node:child_process";
import { createServer } from "node:net";
import path from "node:path";

const repoRoot = path.resolve(import.meta.dirname, "../../../..");

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export interface Server {
  url: string;
  log: string[];
  stop(): Promise<void>;
}

export async function startServer(opts: {
  dataDir: string;
  port: number;
  python: string;
  env?: Record<string, string>;
}): Promise<Server> {
  const proc: ChildProcess = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: path.join(repoRoot, "packages/server"),
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(opts.port),
      KONTEXT_DATA_DIR: opts.dataDir,
      KONTEXT_PYTHON: opts.python,
      KONTEXT_DEVICES: "cpu",
      KONTEXT_LOG_LEVEL: "warn",
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  for (const s of [proc.stdout, proc.stderr]) s?.on("data", (d: Buffer) => log.push(d.toString()));
  const url = `http://127.0.0.1:${opts.port}`;
  const end = Date.now() + 240_000;
  for (;;) {
    try {
      if ((await fetch(`${url}/healthz`)).status === 200) break;
    } catch {}
    if (Date.now() > end || proc.exitCode !== null) {
      proc.kill("SIGKILL");
      throw new Error(`the server did not become healthy:\n${log.join("").slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return {
    url,
    log,
    stop: async () => {
      if (proc.exitCode !== null) return;
      const exited = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(timer);
    },
  };
}
