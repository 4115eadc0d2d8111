// The LoRA catalogue (KONTEXT_LORA_DIR): what GET /api/ai/models/flux-kontext-dev/loras lists, and
// the check a request's `loras` passes before anything is queued. The listing is the engine's own
// (`python -m kontext_engine.lora list`: the doctor's report of every file, docs/loras.md), run
// with the engine's Python and model directory, and kept until the directory's file names, sizes
// or modification times change.
import { execFile } from "node:child_process";
import { readdir, stat } from "node:fs/promises";
import path from "node:path";
import { ApiError } from "../errors.js";
import type { EngineCommand } from "./process.js";

/** One LoRA file as the engine's doctor reports it. */
export interface LoraEntry {
  name: string;
  size_bytes: number;
  format: string | null;
  matched: number;
  total: number;
  unmatched_prefixes: string[];
  text_encoder_modules: number;
  ok: boolean;
  error: string | null;
}

const LIST_TIMEOUT_MS = 120_000;

/** The engine's Python, model directory and working directory, read from its command line. */
function listerOf(command: EngineCommand): {
  python: string;
  modelDir: string;
  cwd: string;
  env?: NodeJS.ProcessEnv;
} {
  const i = command.args.indexOf("--model-dir");
  const modelDir = i >= 0 ? command.args[i + 1] : undefined;
  if (!modelDir) throw new Error("the engine command has no --model-dir");
  return { python: command.file, modelDir, cwd: command.cwd, env: command.env };
}

/** Every .safetensors file under `dir` with its size and mtime: the listing's cache key. */
async function fingerprint(dir: string): Promise<string> {
  const out: string[] = [];
  const walk = async (at: string, depth: number): Promise<void> => {
    if (depth > 8) return;
    for (const e of await readdir(at, { withFileTypes: true })) {
      const full = path.join(at, e.name);
      if (e.isDirectory()) await walk(full, depth + 1);
      else if (e.name.endsWith(".safetensors")) {
        const s = await stat(full);
        out.push(`${path.relative(dir, full)}\0${s.size}\0${s.mtimeMs}`);
      }
    }
  };
  await walk(dir, 0);
  return out.sort().join("\n");
}

export class LoraCatalogue {
  private cached: { key: string; entries: LoraEntry[] } | null = null;
  private pending: Promise<LoraEntry[]> | null = null;

  /**
   * `dir`: KONTEXT_LORA_DIR (null: no LoRAs). `command`: the local engine's command line (null in
   * the gateway role: no engine here to ask, so nothing is listed and the workers' engines refuse
   * a bad LoRA themselves, as the generation error lora_refused).
   */
  constructor(
    private readonly dir: string | null,
    private readonly command: ((device: string | null) => EngineCommand) | null,
  ) {}

  get enabled(): boolean {
    return this.dir !== null && this.command !== null;
  }

  async list(): Promise<LoraEntry[]> {
    if (!this.dir || !this.command) return [];
    const key = await fingerprint(this.dir).catch(() => null);
    if (key === null) throw new ApiError("lora_refused", { reason: `the LoRA directory cannot be read` });
    if (this.cached?.key === key) return this.cached.entries;
    this.pending ??= this.run(key).finally(() => {
      this.pending = null;
    });
    return this.pending;
  }

  private async run(key: string): Promise<LoraEntry[]> {
    const l = listerOf((this.command as (d: string | null) => EngineCommand)(null));
    const stdout = await new Promise<string>((resolve, reject) => {
      execFile(
        l.python,
        ["-m", "kontext_engine.lora", "list", "--lora-dir", this.dir as string, "--model-dir", l.modelDir],
        { cwd: l.cwd, env: l.env ?? process.env, timeout: LIST_TIMEOUT_MS, maxBuffer: 16 << 20 },
        (err, out, errOut) =>
          err ? reject(new Error(`LoRA listing failed: ${errOut.trim() || err.message}`)) : resolve(out),
      );
    });
    const entries = JSON.parse(stdout) as LoraEntry[];
    this.cached = { key, entries };
    return entries;
  }

  /**
   * 400 lora_refused naming `loras` when a requested adapter is not listed or the doctor refused it
   * (for a poor match, with the unmatched prefixes). Nothing to check without a catalogue.
   */
  async check(specs: readonly { name: string }[] | undefined): Promise<void> {
    if (!specs || specs.length === 0) return;
    if (!this.dir) throw refused("no LoRA directory is configured (KONTEXT_LORA_DIR)");
    if (!this.command) return;
    const entries = new Map((await this.list()).map((e) => [e.name, e]));
    for (const [i, s] of specs.entries()) {
      const e = entries.get(s.name);
      if (!e)
        throw refused(
          `loras[${i}]: no LoRA named ${JSON.stringify(s.name)} (GET /api/ai/models/flux-kontext-dev/loras lists them)`,
        );
      if (!e.ok) {
        const prefixes = e.unmatched_prefixes.length
          ? `; unmatched prefixes: ${e.unmatched_prefixes.join(", ")}`
          : "";
        throw refused(
          `loras[${i}]: ${JSON.stringify(s.name)} is refused: ${e.error ?? `only ${e.matched} of ${e.total} modules match the model's layers`}${prefixes}`,
        );
      }
    }
  }
}

const refused = (reason: string) => new ApiError("lora_refused", { reason }, { fields: ["loras"] });
