// The lifecycle's every transition, as pure functions: what each happening does to a generation.
// The runner that carries them out is covered on both backends by queue-conformance.test.ts.
import { describe, expect, it } from "vitest";
import { ApiError } from "../src/errors.js";
import {
  beforeRun,
  checkAdmission,
  claimFields,
  finished,
  inputUnavailable,
  newGenerations,
  onCancel,
  onEngineError,
  onResult,
  onStored,
  onStoreFailed,
  onWorkerLost,
  progressFields,
  startedFields,
} from "../src/jobs/lifecycle.js";
import type { Generation } from "../src/jobs/types.js";
import { generateWithDefaults, withDefaults } from "../src/schema/flux-kontext-dev.js";

const gen = (over: Partial<Generation> = {}): Generation => ({
  id: "g1",
  seq: 1,
  model: "flux-kontext-dev",
  status: "processing",
  params: { ...withDefaults({ input_image: "x", prompt: "p" }), num_inference_steps: 8 } as never,
  input: { hash: "h", path: "p", width: 64, height: 64 },
  references: [],
  mask: null,
  seed: 1,
  attempts: 1,
  enqueuedAt: 1000,
  startedAt: 2000,
  completedAt: null,
  width: null,
  height: null,
  step: 0,
  totalSteps: null,
  resultFile: null,
  errorCode: null,
  errorMessage: null,
  timings: null,
  cancelRequested: false,
  owner: null,
  baseUrl: null,
  expiredAt: null,
  resultHash: null,
  parentId: null,
  starred: false,
  maskFile: null,
  changedFraction: null,
  wholeFrame: null,
  loraReport: null,
  ...over,
});
const running = { maxAttempts: 2, stopping: false };
const stopping = { maxAttempts: 2, stopping: true };

describe("claim and before the run", () => {
  it("a claim counts one more attempt and starts at step 0", () => {
    expect(claimFields(gen({ status: "queued", attempts: 1 }), 5000)).toEqual({
      status: "processing",
      attempts: 2,
      startedAt: 5000,
      step: 0,
    });
  });
  it("a cancel that came while the input was decoded ends it cancelled; a shutdown requeues it uncounted", () => {
    expect(beforeRun(gen({ cancelRequested: true }), running)).toMatchObject({
      kind: "finish",
      status: "cancelled",
      fields: { errorCode: "cancelled" },
    });
    expect(beforeRun(gen({ attempts: 1 }), stopping)).toEqual({
      kind: "requeue",
      retry: false,
      fields: { status: "queued", startedAt: null, step: 0, attempts: 0 },
    });
    expect(beforeRun(gen(), running)).toEqual({ kind: "continue" });
  });
  it("an input no longer stored fails with its code and message", () => {
    expect(inputUnavailable("input_missing", "gone")).toEqual({
      kind: "finish",
      status: "failed",
      fields: { errorCode: "input_missing", errorMessage: "gone" },
    });
  });
});

describe("engine events", () => {
  it("started writes the output size and the steps; progress the step", () => {
    expect(startedFields(gen(), 1024, 768)).toEqual({ width: 1024, height: 768, totalSteps: 8 });
    expect(progressFields(3, 8)).toEqual({ step: 3, totalSteps: 8 });
  });
  it("a result is stored next, unless a cancel was answered 200 before the last step (then dropped)", () => {
    expect(onResult(gen(), true)).toEqual({ kind: "continue" });
    expect(onResult(gen({ cancelRequested: true, step: 7, totalSteps: 8 }), true)).toMatchObject({
      kind: "finish",
      status: "cancelled",
    });
    expect(onResult(gen(), false)).toMatchObject({
      kind: "finish",
      status: "failed",
      fields: { errorCode: "encode_failed" },
    });
  });
  it("cancel during the encode: the cancel is refused 409 once every step ran, so the result is kept", () => {
    const encoding = gen({ step: 8, totalSteps: 8 });
    expect(() => onCancel(encoding, "g1")).toThrowError(
      expect.objectContaining({ code: "generation_finishing", status: 409 }),
    );
    expect(onStored({ resultFile: "g1.webp", width: 8, height: 8, timings: null, resultHash: "r" })).toEqual({
      kind: "finish",
      status: "succeeded",
      fields: { resultFile: "g1.webp", width: 8, height: 8, timings: null, resultHash: "r" },
    });
  });
  it("a stored change mask (output_resolution input) is kept with the result", () => {
    const change = { maskFile: "g1-x-mask.png", changedFraction: 0.04, wholeFrame: false };
    const stored = { resultFile: "g1-x.png", width: 4000, height: 3000, timings: null, resultHash: "r" };
    expect(onStored({ ...stored, change })).toMatchObject({ fields: { ...stored, ...change } });
  });
  it("the engine's LoRA report is kept with the result; a run without LoRAs keeps none", () => {
    const stored = { resultFile: "g1-x.png", width: 8, height: 8, timings: null, resultHash: "r" };
    const loras = [
      {
        name: "styles/demo",
        scale: 0.5,
        sha256: "a".repeat(64),
        size_bytes: 1234,
        format: "bfl" as const,
        matched: 24,
        total: 24,
        unmatched_prefixes: [],
        text_encoder_modules: 0,
      },
    ];
    expect(onStored({ ...stored, loras })).toMatchObject({ fields: { loraReport: loras } });
    expect(onStored({ ...stored, loras: undefined })).not.toHaveProperty("fields.loraReport");
  });
  it("a store failure is storage_full for the disk cap, encode_failed otherwise", () => {
    expect(onStoreFailed(new ApiError("storage_full", { reason: "cap" }))).toMatchObject({
      fields: { errorCode: "storage_full" },
    });
    expect(onStoreFailed(new Error("sharp: bad"))).toMatchObject({
      status: "failed",
      fields: { errorCode: "encode_failed" },
    });
  });
});

describe("engine errors and deaths", () => {
  it("the engine's cancel, and a crash after a cancel, end cancelled", () => {
    expect(onEngineError(gen(), "cancelled", "at step 3", running)).toMatchObject({ status: "cancelled" });
    expect(onEngineError(gen({ cancelRequested: true }), "engine_crashed", "died", running)).toMatchObject({
      status: "cancelled",
    });
  });
  it("a shutdown (the engine's, or a crash while stopping) requeues it without counting the run", () => {
    for (const [code, policy] of [
      ["shutting_down", running],
      ["engine_crashed", stopping],
    ] as const) {
      expect(onEngineError(gen({ attempts: 2 }), code, "x", policy)).toEqual({
        kind: "requeue",
        retry: false,
        fields: { status: "queued", startedAt: null, step: 0, attempts: 1 },
      });
    }
  });
  it("engine death during the last step: retried once, then failed engine_crashed with the retries", () => {
    const last = gen({ attempts: 1, step: 7, totalSteps: 8 });
    expect(onEngineError(last, "engine_crashed", "exit 137", running)).toEqual({
      kind: "requeue",
      retry: true,
      fields: { status: "queued", startedAt: null, step: 0 },
    });
    const again = onEngineError({ ...last, attempts: 2 }, "engine_crashed", "exit 137", running);
    expect(again).toMatchObject({
      kind: "finish",
      status: "failed",
      fields: { errorCode: "engine_crashed" },
    });
    expect((again as { fields: { errorMessage: string } }).fields.errorMessage).toContain("exit 137");
  });
  it("any other engine code fails with that code", () => {
    expect(onEngineError(gen(), "content_flagged", "nsfw 0.9", running)).toMatchObject({
      status: "failed",
      fields: { errorCode: "content_flagged" },
    });
  });
  it("a worker that died mid-run: run again while attempts remain, then worker_lost", () => {
    expect(onWorkerLost(gen({ attempts: 1 }), running)).toMatchObject({ kind: "requeue", retry: true });
    expect(onWorkerLost(gen({ attempts: 2 }), running)).toMatchObject({
      kind: "finish",
      status: "failed",
      fields: { errorCode: "worker_lost" },
    });
  });
});

describe("a client's cancel", () => {
  it("unknown 404, final 409 generation_finished, queued ends now, processing is signalled", () => {
    expect(() => onCancel(null, "nope")).toThrowError(
      expect.objectContaining({ code: "generation_not_found" }),
    );
    expect(() => onCancel(gen({ status: "succeeded" }), "g1")).toThrowError(
      expect.objectContaining({ code: "generation_finished" }),
    );
    expect(onCancel(gen({ status: "queued" }), "g1")).toMatchObject({ kind: "finish", status: "cancelled" });
    expect(onCancel(gen({ step: 3, totalSteps: 8 }), "g1")).toEqual({ kind: "signal" });
  });
  it("the final generation carries its status, completion time and a cleared cancel flag", () => {
    const done = finished(gen({ cancelRequested: true }), "cancelled", { errorCode: "cancelled" }, 9000);
    expect(done).toMatchObject({ status: "cancelled", completedAt: 9000, cancelRequested: false });
  });
});

describe("admission and submission", () => {
  it("503 while stopping; 429 with Retry-After when the queue would overflow", () => {
    const a = { stopping: false, queued: 9, count: 2, maxQueue: 10, engines: 2 };
    expect(() => checkAdmission({ ...a, stopping: true })).toThrowError(
      expect.objectContaining({ code: "shutting_down" }),
    );
    try {
      checkAdmission(a);
      expect.unreachable("the 10th and 11th generation do not fit a queue of 10 holding 9");
    } catch (err) {
      expect(err).toMatchObject({ code: "queue_full", status: 429, headers: { "retry-after": "9" } });
    }
    expect(() => checkAdmission({ ...a, count: 1 })).not.toThrow();
  });
  it("new generations keep every request field but the request-only ones, and count seeds up", () => {
    const params = {
      ...withDefaults({ input_image: "data:x", prompt: "p", seed: 7, num_generations: 2, stream: true }),
      some_future_field: 3,
    } as never;
    const gens = newGenerations(params, { hash: "h", path: "x", width: 1, height: 1 } as never, 2);
    expect(gens.map((g) => g.seed)).toEqual([7, 8]);
    const stored = gens[0]?.params as unknown as Record<string, unknown>;
    expect(stored.some_future_field).toBe(3); // reaches the engine without a list to edit
    for (const k of ["input_image", "seed", "num_generations", "stream"])
      expect(stored).not.toHaveProperty(k);
  });
  it("text-to-image generations have no input, and none of the edit-only fields", () => {
    const params = generateWithDefaults({
      prompt: "a fox",
      aspect_ratio: "16:9",
      num_generations: 2,
      seed: 1,
    });
    const gens = newGenerations(params, null, 2);
    expect(gens.map((g) => [g.input, g.seed])).toEqual([
      [null, 1],
      [null, 2],
    ]);
    expect(gens[0]?.params).toMatchObject({ prompt: "a fox", aspect_ratio: "16:9", num_inference_steps: 28 });
    for (const k of ["input_image", "strength", "reference_method", "output_resolution", "preserve_unedited"])
      expect(gens[0]?.params).not.toHaveProperty(k);
  });
});
