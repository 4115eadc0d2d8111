// What the client's tests share: a free loopback port and waiting for a server's /healthz. Only
// node built-ins (global-setup.ts uses it too). The server package has its own (packages/server/test/support.ts).
import type { ChildProcess } from "node:child_process";
import { createServer } from "node:net";

/** A TCP port free on 127.0.0.1 just now (nobody listens on it once this resolves). */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as { port: number }).port;
  await new Promise((r) => srv.close(r));
  return port;
}

/**
 * Waits for 200 from `url`/healthz; fails with the server's `log` when `proc` exits or
 * `timeoutMs` passes first (and kills it).
 */
export async function waitHealthy(
  url: string,
  proc: ChildProcess,
  log: string[],
  timeoutMs: number,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(`${url}/healthz`).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    if (Date.now() > end || proc.exitCode !== null) {
      proc.kill("SIGKILL");
      const why =
        proc.exitCode !== null ? `exited with ${proc.exitCode}` : `not healthy after ${timeoutMs} ms`;
      throw new Error(`the server ${why}:\n${log.join("").slice(-3000)}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
}
