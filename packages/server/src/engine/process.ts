// One engine child process: spawns it, reads its message pipe (fd 3) line by line, keeps the
// tail of its log (stderr) for error reports. The engine's stdout and stderr are logs only.
import { type ChildProcess, spawn } from "node:child_process";
import { EventEmitter } from "node:events";
import type { Readable, Writable } from "node:stream";
import {
  encodeToEngine,
  type FromEngine,
  ProtocolError,
  parseEngineLine,
  type ToEngine,
} from "./protocol.js";

export interface EngineCommand {
  file: string;
  args: string[];
  cwd: string;
  env?: NodeJS.ProcessEnv;
}

export interface EngineProcessEvents {
  message: [FromEngine];
  protocolError: [ProtocolError];
  log: [string];
  exit: [{ code: number | null; signal: NodeJS.Signals | null }];
}

const MAX_LINE = 64 * 1024 * 1024; // a result or progress line is small; this only bounds memory

export class EngineProcess extends EventEmitter<EngineProcessEvents> {
  private readonly child: ChildProcess;
  private readonly logTail: string[] = [];
  exited = false;

  constructor(command: EngineCommand) {
    super();
    this.child = spawn(command.file, command.args, {
      cwd: command.cwd,
      env: command.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe", "pipe"],
    });
    const events = this.child.stdio[3] as Readable;
    readLines(events, (line) => {
      try {
        this.emit("message", parseEngineLine(line));
      } catch (err) {
        this.emit("protocolError", err instanceof ProtocolError ? err : new ProtocolError(String(err)));
      }
    });
    for (const s of [this.child.stdout, this.child.stderr]) {
      if (s)
        readLines(s, (line) => {
          this.logTail.push(line);
          if (this.logTail.length > 40) this.logTail.shift();
          this.emit("log", line);
        });
    }
    (this.child.stdin as Writable).on("error", () => {}); // EPIPE after the engine died: the exit event reports it
    this.child.on("error", (err) => {
      this.logTail.push(`spawn failed: ${err.message}`);
      this.markExit(null, null);
    });
    this.child.on("exit", (code, signal) => this.markExit(code, signal));
  }

  private markExit(code: number | null, signal: NodeJS.Signals | null): void {
    if (this.exited) return;
    this.exited = true;
    this.emit("exit", { code, signal });
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** The last lines the engine logged, for error messages. */
  recentLog(lines = 5): string {
    return this.logTail.slice(-lines).join(" | ");
  }

  send(msg: ToEngine): void {
    if (this.exited) return;
    this.child.stdin?.write(encodeToEngine(msg));
  }

  kill(signal: NodeJS.Signals = "SIGKILL"): void {
    if (!this.exited) this.child.kill(signal);
  }

  /** Asks the engine to stop; kills it if it has not exited after `graceMs`. */
  async shutdown(graceMs = 10_000): Promise<void> {
    if (this.exited) return;
    const exited = new Promise<void>((resolve) => this.once("exit", () => resolve()));
    this.send({ v: 1, type: "shutdown" });
    this.child.stdin?.end();
    const timer = setTimeout(() => this.kill("SIGKILL"), graceMs);
    await exited;
    clearTimeout(timer);
  }
}

function readLines(stream: Readable, onLine: (line: string) => void): void {
  let buf = "";
  stream.setEncoding("utf8");
  stream.on("data", (chunk: string) => {
    buf += chunk;
    let nl = buf.indexOf("\n");
    while (nl >= 0) {
      const line = buf.slice(0, nl).trimEnd();
      buf = buf.slice(nl + 1);
      if (line.length > 0) onLine(line);
      nl = buf.indexOf("\n");
    }
    if (buf.length > MAX_LINE) buf = "";
  });
  stream.on("error", () => {});
}
