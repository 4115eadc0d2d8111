// A real redis-server (Debian's package; installed with apt-get when /usr/bin/redis-server is
// missing) on a free loopback port, with its data in a temporary directory. Started with the
// settings docs/deploy.md asks for (AOF fsynced on every write, noeviction), so a restart keeps
// every accepted job.
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createConnection } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { freePort, sleep, waitFor } from "./support.js";

const REDIS_SERVER = "/usr/bin/redis-server";

export interface RedisServer {
  url: string;
  port: number;
  /** Stops it cleanly (the AOF is complete) and starts it again on the same port and data. */
  restart(downMs?: number): Promise<void>;
  stop(): Promise<void>;
}

/** Installs Debian's redis-server when /usr/bin/redis-server is missing. */
export function ensureRedisInstalled(): void {
  if (existsSync(REDIS_SERVER)) return;
  process.stderr.write("redis tests: installing Debian's redis-server\n");
  const sudo = process.getuid?.() === 0 ? [] : ["sudo"];
  const run = (args: string[]) => {
    const [cmd = "", ...rest] = [...sudo, ...args];
    execFileSync(cmd, rest, {
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
    });
  };
  run(["apt-get", "update", "-qq"]);
  run(["apt-get", "install", "-y", "-qq", "redis-server"]);
}

async function answersPing(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createConnection({ host: "127.0.0.1", port });
    s.on("error", () => resolve(false));
    s.on("connect", () => s.write("PING\r\n"));
    s.on("data", (d) => {
      resolve(d.toString().startsWith("+PONG"));
      s.destroy();
    });
  });
}

export async function startRedis(): Promise<RedisServer> {
  ensureRedisInstalled();
  const dir = mkdtempSync(path.join(tmpdir(), "kontext-redis-"));
  const port = await freePort();
  let proc: ChildProcess | null = null;
  const launch = async () => {
    const p = spawn(
      REDIS_SERVER,
      [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--appendonly",
        "yes",
        "--appendfsync",
        "always",
        "--maxmemory-policy",
        "noeviction",
        "--save",
        "",
        "--daemonize",
        "no",
      ],
      { stdio: ["ignore", "ignore", "pipe"] },
    );
    proc = p;
    await waitFor(() => answersPing(port), 15_000, `redis-server to answer PING on ${port}`, {
      intervalMs: 50,
      giveUpIf: () => (p.exitCode !== null ? `redis-server exited with ${p.exitCode}` : null),
    });
  };
  const halt = async () => {
    const p = proc;
    if (!p || p.exitCode !== null) return;
    const exited = new Promise((r) => p.once("exit", r));
    p.kill("SIGTERM"); // redis-server finishes the AOF and exits
    await exited;
  };
  await launch();
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    async restart(downMs = 1000) {
      await halt();
      await sleep(downMs);
      await launch();
    },
    async stop() {
      await halt();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
