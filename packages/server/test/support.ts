// What the server's tests share to drive processes and to wait: a free port, main.ts as a child
// process and its /healthz, polling that names what it waits for, and an SSE body parser. Only
// node built-ins, so redis.ts, s3.ts, cluster.ts and global-setup.ts use it as well; helpers.ts
// re-exports it, so a test file imports both from one place.
import { type ChildProcess, spawn } from "node:child_process";
import { type AddressInfo, createServer } from "node:net";
import path from "node:path";

const serverDir = path.resolve(import.meta.dirname, "..");

/** A TCP port free on 127.0.0.1 just now. */
export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", r));
  const port = (srv.address() as AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export interface PollOptions {
  /** default 10 s */
  timeoutMs?: number;
  /** between two calls; default 20 ms */
  intervalMs?: number;
  /** A call that throws counts as "not yet" (a server still starting) instead of failing the wait. */
  retryErrors?: boolean;
  /** Why waiting on is pointless (a process exited), or null; checked after each call. */
  giveUpIf?: () => string | null;
}

const shown = (v: unknown) => {
  try {
    return (JSON.stringify(v) ?? String(v)).slice(0, 500);
  } catch {
    return String(v);
  }
};

/**
 * Calls `fn` until `until` holds for what it returns, and returns that value. Fails naming
 * `what` and the last value (or error) when `timeoutMs` passes first.
 */
export async function poll<T>(
  fn: () => T | Promise<T>,
  until: (value: T) => boolean,
  what: string,
  opts: PollOptions = {},
): Promise<T> {
  const timeoutMs = opts.timeoutMs ?? 10_000;
  const end = Date.now() + timeoutMs;
  let last = "nothing yet";
  for (;;) {
    try {
      const value = await fn();
      if (until(value)) return value;
      last = shown(value);
    } catch (err) {
      if (!opts.retryErrors) throw err;
      last = `error: ${(err as Error).message}`;
    }
    const reason = opts.giveUpIf?.();
    if (reason) throw new Error(`${reason} while waiting for ${what}; last: ${last}`);
    if (Date.now() > end)
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last: ${last}`);
    await sleep(opts.intervalMs ?? 20);
  }
}

/** Waits until `cond` is true (poll without a value). */
export async function waitFor(
  cond: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = "condition",
  opts: Omit<PollOptions, "timeoutMs"> = {},
): Promise<void> {
  await poll(cond, (ok) => ok, what, { ...opts, timeoutMs });
}

/** src/main.ts running as a child process, as `npm start` runs it. */
export interface ServerProcess {
  proc: ChildProcess;
  /** its base URL (meaningless for a worker, which listens nowhere) */
  url: string;
  /** its stdout and stderr */
  log: string[];
  exited: Promise<number | null>;
}

/**
 * Spawns src/main.ts on 127.0.0.1:`port` with `dataDir`, warn-level logs and no worker metrics
 * listener; `env` adds to that (the engine, the role, a KONTEXT_METRICS_PORT). `detached` gives it its own process group, so that killing the group
 * takes its engine along, as a machine dying would.
 */
export function startServer(opts: {
  dataDir: string;
  port: number;
  env?: Record<string, string>;
  detached?: boolean;
}): ServerProcess {
  const proc = spawn(process.execPath, ["--import", "tsx", "src/main.ts"], {
    cwd: serverDir,
    detached: opts.detached ?? false,
    env: {
      ...process.env,
      HOST: "127.0.0.1",
      PORT: String(opts.port),
      KONTEXT_DATA_DIR: opts.dataDir,
      KONTEXT_LOG_LEVEL: "warn",
      KONTEXT_METRICS_PORT: "0", // a worker's listener only where a test asks for it (on a port of its own)
      ...opts.env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const log: string[] = [];
  for (const s of [proc.stdout, proc.stderr]) s?.on("data", (d: Buffer) => log.push(d.toString()));
  const exited = new Promise<number | null>((r) => proc.once("exit", (code) => r(code)));
  return { proc, url: `http://127.0.0.1:${opts.port}`, log, exited };
}

/** Waits for 200 from the server's /healthz and returns its body; fails with its log if it exits. */
export async function waitHealthy(s: ServerProcess, timeoutMs = 60_000): Promise<Record<string, unknown>> {
  try {
    const res = await poll(
      () => fetch(`${s.url}/healthz`),
      (r) => r.status === 200,
      `${s.url}/healthz to answer 200`,
      {
        timeoutMs,
        intervalMs: 100,
        retryErrors: true,
        giveUpIf: () => (s.proc.exitCode !== null ? `the server exited with ${s.proc.exitCode}` : null),
      },
    );
    return (await res.json()) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`server not healthy: ${(err as Error).message}\n${s.log.join("").slice(-3000)}`);
  }
}

export interface SseEvent {
  id?: string;
  event?: string;
  data?: unknown;
}

/** Parses an SSE body into events (data as JSON; comments and keep-alives skipped). */
export function parseSse(text: string): SseEvent[] {
  const out: SseEvent[] = [];
  for (const block of text.split("\n\n")) {
    const ev: SseEvent = {};
    let any = false;
    for (const line of block.split("\n")) {
      if (line.startsWith("id: ")) ev.id = line.slice(4);
      else if (line.startsWith("event: ")) ev.event = line.slice(7);
      else if (line.startsWith("data: ")) ev.data = JSON.parse(line.slice(6));
      else continue;
      any = true;
    }
    if (any) out.push(ev);
  }
  return out;
}

/**
 * Reads a streamed body (an SSE stream, say) until `until` holds for the text so far, or it ends;
 * fails naming `what` (with the text read) when `timeoutMs` passes first. Cancels the reader.
 */
export async function readUntil(
  body: ReadableStream<Uint8Array> | null,
  until: (text: string) => boolean,
  what: string,
  timeoutMs = 120_000,
): Promise<string> {
  if (!body) throw new Error(`no body to read ${what} from`);
  const reader = body.getReader();
  const dec = new TextDecoder();
  let text = "";
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`timed out after ${timeoutMs} ms reading ${what}; read: ${text.slice(-500)}`)),
      timeoutMs,
    );
  });
  try {
    while (!until(text)) {
      const { value, done } = await Promise.race([reader.read(), timedOut]);
      if (done) break;
      text += dec.decode(value, { stream: true });
    }
    return text;
  } finally {
    clearTimeout(timer);
    void reader.cancel().catch(() => {});
  }
}
