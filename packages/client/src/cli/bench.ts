// `kontext bench`: a small benchmark of the API path. It sends sync edits and splits each
// request's wall time (seen by the client) into the server's queue, inference and encode times;
// what is left is the API's own cost (HTTP, validation, image ingest, result transfer). The
// generation's timestamps split that cost further: before it was queued, around the engine's own
// time (the job message, the input and raw output files, the job rows), and after it finished.
import { readFile } from "node:fs/promises";
import type { EditRequest, Kontext } from "../client.js";
import { UsageError } from "./params.js";
import { gradientPng } from "./png.js";

export interface BenchOptions {
  requests: number;
  warmup: number;
  concurrency: number;
  steps: number;
  size: string;
  input?: string;
  aspectRatio: string;
  responseFormat: "url" | "b64_json";
}

interface Sample {
  wall: number;
  queue: number;
  inference: number;
  encode: number;
  overhead: number;
  beforeQueue: number;
  aroundEngine: number;
  afterDone: number;
}

const KEYS = [
  "wall",
  "queue",
  "inference",
  "encode",
  "overhead",
  "beforeQueue",
  "aroundEngine",
  "afterDone",
] as const;

function quantile(sorted: number[], q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[i] as number;
}

export async function runBench(kontext: Kontext, opts: BenchOptions) {
  if (!(opts.requests >= 1 && opts.concurrency >= 1 && opts.warmup >= 0)) {
    throw new UsageError("--requests and --concurrency must be at least 1, --warmup at least 0");
  }
  let inputDesc: string;
  let image: string;
  if (opts.input) {
    image = (await readFile(opts.input)).toString("base64");
    inputDesc = opts.input;
  } else {
    const m = /^(\d+)x(\d+)$/.exec(opts.size);
    if (!m) throw new UsageError(`--size takes WIDTHxHEIGHT, got ${JSON.stringify(opts.size)}`);
    image = gradientPng(Number(m[1]), Number(m[2])).toString("base64");
    inputDesc = `${opts.size} PNG`;
  }
  const health = await kontext.health();
  const engines = (health.engines as Array<Record<string, unknown>> | undefined) ?? [];
  const body = {
    input_image: image,
    prompt: "make the sky purple",
    num_inference_steps: opts.steps,
    aspect_ratio: opts.aspectRatio,
    response_format: opts.responseFormat,
    seed: 1,
  } as EditRequest;

  const one = async (): Promise<Sample> => {
    const sent = Date.now();
    const t0 = performance.now();
    const res = await kontext.edit(body);
    const wall = performance.now() - t0;
    const received = sent + wall;
    const t = res.timings;
    const g = await kontext.get(res.generation_id); // after the clock stopped
    const [queued, started, done] = [g.enqueued_at, g.started_at, g.completed_at].map((x) =>
      x ? Date.parse(x) : Number.NaN,
    ) as [number, number, number];
    return {
      wall,
      ...t,
      overhead: wall - t.queue - t.inference - t.encode,
      beforeQueue: queued - sent,
      aroundEngine: done - started - t.inference - t.encode,
      afterDone: received - done,
    };
  };
  for (let i = 0; i < opts.warmup; i++) await one();

  const samples: Sample[] = [];
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: Math.min(opts.concurrency, opts.requests) }, async () => {
      while (next < opts.requests) {
        next++;
        samples.push(await one());
      }
    }),
  );
  const elapsed = (performance.now() - t0) / 1000;
  const stats = Object.fromEntries(
    KEYS.map((k) => {
      const sorted = samples.map((s) => s[k]).sort((a, b) => a - b);
      const mean = sorted.reduce((a, b) => a + b, 0) / sorted.length;
      return [k, { p50: quantile(sorted, 0.5), p95: quantile(sorted, 0.95), mean }];
    }),
  ) as Record<(typeof KEYS)[number], { p50: number; p95: number; mean: number }>;
  return {
    date: new Date().toISOString(),
    server: kontext.baseUrl,
    model: health.model ?? null,
    demo: health.demo ?? null,
    device: health.device ?? null,
    dtype: engines[0]?.dtype ?? null,
    engines: engines.length,
    request: {
      endpoint: "POST /api/ai/images/edit",
      input: inputDesc,
      steps: opts.steps,
      aspect_ratio: opts.aspectRatio,
      response_format: opts.responseFormat,
      requests: opts.requests,
      warmup: opts.warmup,
      concurrency: opts.concurrency,
    },
    ms: stats,
    images_per_minute: (opts.requests / elapsed) * 60,
  };
}

export type BenchResult = Awaited<ReturnType<typeof runBench>>;

export function formatBench(r: BenchResult): string {
  const ms = (v: number) => v.toFixed(v < 100 ? 1 : 0).padStart(8);
  const rows: Array<[string, keyof BenchResult["ms"], string]> = [
    ["wall (client)", "wall", "request sent → response read"],
    ["queue", "queue", "waiting for an engine"],
    ["inference", "inference", "the engine's own time"],
    ["encode", "encode", "encoding and storing the output"],
    ["API overhead", "overhead", "wall − queue − inference − encode, of which:"],
    ["  before queue", "beforeQueue", "request → generation queued (HTTP, validation, input ingest)"],
    ["  around engine", "aroundEngine", "job message, input and raw output files, job rows"],
    ["  after done", "afterDone", "generation done → response read"],
  ];
  const model = `${r.model ?? "?"}${r.demo ? " (tiny demo model)" : ""}`;
  return [
    `Kontext API-path benchmark, ${r.date}`,
    `server   ${r.server}: ${model} on ${r.device ?? "?"} (${r.dtype ?? "?"}), ${r.engines} engine(s)`,
    `request  ${r.request.endpoint}: ${r.request.input} in, ${r.request.steps} steps, aspect ${r.request.aspect_ratio}, response_format ${r.request.response_format}`,
    `runs     ${r.request.requests} measured after ${r.request.warmup} warm-up, concurrency ${r.request.concurrency}`,
    "",
    `${"ms".padEnd(16)}${"p50".padStart(8)}${"p95".padStart(8)}${"mean".padStart(8)}`,
    ...rows.map(([label, k, note]) => {
      const s = r.ms[k];
      return `${label.padEnd(16)}${ms(s.p50)}${ms(s.p95)}${ms(s.mean)}   ${note}`;
    }),
    "(the three parts use the server's clock, in whole ms: meaningful when client and server share a machine)",
    "",
    `throughput  ${r.images_per_minute.toFixed(1)} images/min`,
  ].join("\n");
}
