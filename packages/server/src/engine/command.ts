// The command line and environment of one local engine process (`python -m kontext_engine serve`).
import path from "node:path";
import type { Config } from "../config.js";
import type { EngineCommand } from "./process.js";

/**
 * The device an engine process is given, and its CUDA_VISIBLE_DEVICES: an engine for `cuda:N`
 * sees only that GPU (as its cuda:0), so nothing it allocates on the default device lands on
 * another engine's GPU. N counts the GPUs this process sees: when CUDA_VISIBLE_DEVICES is set
 * already (e.g. `2,3`), `cuda:1` is its second entry (`3`). Other devices (`cpu`, `cuda`, unset)
 * are passed as they are.
 */
export function engineDevice(
  device: string | null,
  env: NodeJS.ProcessEnv,
): { device: string | null; env: NodeJS.ProcessEnv } {
  const m = device ? /^cuda:(\d+)$/.exec(device.trim()) : null;
  if (!m) return { device, env };
  const index = Number(m[1]);
  const visible = env.CUDA_VISIBLE_DEVICES?.trim();
  const listed = visible ? visible.split(",").map((s) => s.trim()) : null;
  if (listed && index >= listed.length) return { device, env }; // the engine's fatal names what it sees
  return { device: "cuda:0", env: { ...env, CUDA_VISIBLE_DEVICES: listed ? listed[index] : String(index) } };
}

/** `python -m kontext_engine serve …` for one engine on `device` (null: the engine's default). */
export function engineCommand(
  config: Config,
  python: string,
  modelDir: string,
  engineDir: string,
  device: string | null,
  env: NodeJS.ProcessEnv = process.env,
): EngineCommand {
  const seen = engineDevice(device, env);
  const args = ["-m", "kontext_engine", "serve", "--model-dir", modelDir];
  if (seen.device) args.push("--device", seen.device);
  if (!config.safetyChecker) args.push("--no-safety-checker");
  else if (config.safetyCheckerDir) args.push("--safety-checker-dir", config.safetyCheckerDir);
  args.push("--precision", config.precision, "--warmup-buckets", config.warmupBuckets);
  // auto: the engine compiles on CUDA (not on the CPU); kernels are cached in DATA_DIR.
  const compile = config.compile === "auto" ? "auto" : config.compile ? "on" : "off";
  args.push("--compile", compile);
  if (compile !== "off") args.push("--compile-cache", path.join(config.dataDir, "compile-cache"));
  if (config.lowMemory) args.push("--low-memory");
  if (config.loraDir) args.push("--lora-dir", config.loraDir);
  args.push("--max-condition-tokens", String(config.maxConditionTokens));
  return { file: python, args, cwd: engineDir, env: seen.env };
}
