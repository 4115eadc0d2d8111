// Queue-path throughput on Redis + BullMQ: one gateway and 1, then 2, workers (separate
// processes, the real engine on the tiny model, one CPU thread each: each stands for a GPU
// machine), N jobs of 4 steps submitted at once; the time until the last one succeeded.
// Prints a markdown table for docs/performance.md.
//   npx tsx packages/server/scripts/queue-bench.ts [--jobs 12] [--workers 1,2]
import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { Cluster, generation, type Proc, submit, until } from "../test/cluster.js";
import { startRedis } from "../test/redis.js";

const arg = (name: string, dflt: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const jobs = Number(arg("jobs", "12"));
const workerCounts = arg("workers", "1,2").split(",").map(Number);

const repoRoot = path.resolve(import.meta.dirname, "../../..");
const venv = execFileSync("bash", [path.join(repoRoot, "scripts/python-env.sh")], {
  encoding: "utf8",
}).trim();
const python = path.join(venv, "bin", "python");
const modelRoot = mkdtempSync(path.join(tmpdir(), "kontext-bench-model-"));
const modelDir = path.join(modelRoot, "flux-kontext-tiny");
execFileSync(python, ["-m", "kontext_engine.tiny", modelDir], {
  cwd: path.join(repoRoot, "engine"),
  stdio: "ignore",
});

const png = await sharp({
  create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 30 } },
})
  .png()
  .toBuffer();
const body = {
  input_image: `data:image/png;base64,${png.toString("base64")}`,
  prompt: "make it blue",
  num_inference_steps: 4,
};

async function runAll(gw: Proc, n: number): Promise<number> {
  const t0 = performance.now();
  const ids = await Promise.all(Array.from({ length: n }, () => submit(gw, body)));
  const left = new Set(ids);
  await until(
    async () => {
      for (const id of [...left]) {
        const g = await generation(gw, id);
        if (g.status === "succeeded") left.delete(id);
        else if (g.status !== "queued" && g.status !== "processing") throw new Error(`${id} ${g.status}`);
      }
      return left.size === 0;
    },
    1_800_000,
    "jobs",
  );
  return (performance.now() - t0) / 1000;
}

const redis = await startRedis();
const rows: string[] = [];
try {
  for (const w of workerCounts) {
    const cluster = new Cluster({ redisUrl: redis.url, python, modelDir, engineThreads: 1 });
    try {
      const gw = await cluster.gateway();
      for (let i = 0; i < w; i++) await cluster.worker(gw);
      await runAll(gw, w); // warm-up: one job per worker
      const load0 = loadavg()[0] ?? 0;
      const s = await runAll(gw, jobs);
      const load1 = loadavg()[0] ?? 0;
      const perMin = (jobs / s) * 60;
      rows.push(
        `| ${w} | ${jobs} | ${s.toFixed(1)} s | ${perMin.toFixed(1)} | ${(s / jobs).toFixed(2)} s | ${load0.toFixed(1)} → ${load1.toFixed(1)} |`,
      );
      process.stderr.write(`${w} worker(s): ${jobs} jobs in ${s.toFixed(1)} s\n`);
    } finally {
      await cluster.stop();
    }
  }
} finally {
  await redis.stop();
  rmSync(modelRoot, { recursive: true, force: true });
}
console.log(
  `${cpus().length} CPUs (${cpus()[0]?.model ?? "?"}), ${new Date().toISOString().slice(0, 10)}, ${jobs} jobs of 4 steps, 64×48 PNG in (4:3, about 1 MP out)\n`,
);
console.log("| workers | jobs | all done in | jobs/min | s/job | load average (1 min) |");
console.log("|---|---|---|---|---|---|");
for (const r of rows) console.log(r);
