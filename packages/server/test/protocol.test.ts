// The engine protocol's golden examples (docs/protocol/examples/), shared with the engine's tests.
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { encodeToEngine, ProtocolError, parseEngineLine, type ToEngine } from "../src/engine/protocol.js";
import { messageProblem } from "../src/engine/protocol-schema.js";
import { fakeEngine, makeHarness, pngDataUri, repoRoot, waitFor } from "./helpers.js";

const dir = path.join(repoRoot, "docs/protocol/examples");
const files = (sub: string) => readdirSync(path.join(dir, sub)).filter((f) => f.endsWith(".json"));
const read = (sub: string, f: string) => readFileSync(path.join(dir, sub, f), "utf8").trim();

describe("engine → gateway golden examples", () => {
  it.each(files("from_engine"))("parses %s", (f) => {
    const line = read("from_engine", f);
    const msg = parseEngineLine(line);
    expect(msg).toEqual(JSON.parse(line));
    expect(f.startsWith(msg.type)).toBe(true);
  });

  it("refuses what is not a message", () => {
    expect(() => parseEngineLine("{nope")).toThrow(ProtocolError);
    expect(() => parseEngineLine('{"v": 2, "type": "ready"}')).toThrow(/version/);
    expect(() => parseEngineLine('{"v": 1, "type": "dance"}')).toThrow(/unknown message type/);
    expect(() =>
      parseEngineLine('{"v": 1, "type": "progress", "job_id": "a", "step": "1", "total_steps": 4}'),
    ).toThrow(/step/);
  });
});

describe("gateway → engine golden examples", () => {
  it.each(files("to_engine"))("encodes %s as one line with the same content", (f) => {
    const msg = JSON.parse(read("to_engine", f)) as ToEngine;
    const line = encodeToEngine(msg);
    expect(line.endsWith("\n")).toBe(true);
    expect(line.trimEnd()).not.toContain("\n");
    expect(JSON.parse(line)).toEqual(msg);
  });

  it("a text-to-image generation's job has no input, and is valid against the schema", async () => {
    const { jobMessage } = await import("../src/jobs/run.js");
    const { generateWithDefaults } = await import("../src/schema/flux-kontext-dev.js");
    const params = generateWithDefaults({
      prompt: "a lighthouse at dusk, oil painting",
      aspect_ratio: "16:9",
    });
    const g = { id: "gen_04", seed: 7, input: null, params } as never;
    const job = jobMessage(g, null, "/var/lib/kontext/tmp/gen_04") as unknown as Record<string, unknown>;
    expect(job).not.toHaveProperty("input");
    expect(job).toMatchObject({
      job_id: "gen_04",
      aspect_ratio: "16:9",
      seeds: [7],
      num_inference_steps: 28,
    });
    expect(messageProblem("to_engine", job)).toBeNull();
  });

  it("the job the queue builds has exactly the fields of the golden job", async () => {
    const golden = JSON.parse(read("to_engine", "job.json")) as Record<string, unknown>;
    const { SqliteJobQueue } = await import("../src/jobs/sqlite-queue.js");
    let sent: Record<string, unknown> | null = null;
    const engines = {
      status: () => [{ state: "idle" }] as never, // a job is claimed only for an idle engine
      run: (job: unknown) => {
        sent = job as Record<string, unknown>;
        return true;
      },
      cancel: () => {},
      on: () => engines,
      off: () => engines,
      stop: async () => {},
    };
    const { SqliteRecords } = await import("../src/jobs/sqlite-records.js");
    const { FileStore } = await import("../src/storage/files.js");
    const { Metrics } = await import("../src/metrics.js");
    const { mkdtempSync } = await import("node:fs");
    const { tmpdir } = await import("node:os");
    const files = new FileStore(mkdtempSync(path.join(tmpdir(), "kontext-proto-")));
    const store = new SqliteRecords(":memory:");
    const q = new SqliteJobQueue(store, files, engines, new Metrics(), { maxQueue: 10 });
    // The stored original (an 800×600 PNG) is decoded into the job's tmp dir for the engine.
    const sharp = (await import("sharp")).default;
    const png = await sharp({ create: { width: 800, height: 600, channels: 3, background: "#123456" } })
      .png()
      .toBuffer();
    const input = await files.putInput("3f2a".padEnd(64, "0"), png, {
      width: 800,
      height: 600,
      format: "png",
    });
    await q.submit(
      {
        model: "flux-kontext-dev",
        input_image: "data:",
        prompt: "make the sky purple",
        aspect_ratio: "match_input_image",
        num_inference_steps: 28,
        guidance: 2.5,
        seed: 42,
        output_format: "webp",
        output_quality: 80,
        disable_safety_checker: false,
        fast: false,
        true_cfg_scale: 1,
        strength: 1,
        reference_method: "offset",
        loras: [],
        output_resolution: "bucket",
        response_format: "url",
        num_generations: 1,
        stream: false,
      },
      input,
      1,
    );
    // submit dispatches on the next tick; the decode takes a moment
    await waitFor(() => sent !== null, 10_000, "the job message to be sent");
    const job = sent as unknown as Record<string, unknown> & { input: { path: string }; output_dir: string };
    expect(Object.keys(job).sort()).toEqual(Object.keys(golden).sort());
    expect(messageProblem("to_engine", job)).toBeNull(); // valid against docs/protocol/protocol.schema.json
    expect(path.dirname(job.input.path)).toBe(path.join(path.dirname(job.output_dir), "decoded")); // kept for the next run on it
    expect(statSync(job.input.path).size).toBe(800 * 600 * 3);
    expect({
      ...job,
      job_id: "gen_01",
      input: { ...job.input, path: "/var/lib/kontext/inputs/3f/3f2a.rgb" },
      output_dir: "/var/lib/kontext/tmp/gen_01",
    }).toEqual(golden);
    await q.settled();
    store.close();
  });
});

describe("a result the gateway cannot read (fake engine)", () => {
  it("fails that generation as internal, naming the problem, instead of leaving it processing; the engine serves the next", async () => {
    const h = await makeHarness({
      command: fakeEngine({ FAKE_STEP_MS: "2", FAKE_BAD_RESULT_PROMPT: "newer" }),
    });
    try {
      const png = await pngDataUri();
      const edit = (prompt: string) =>
        h.app.inject({
          method: "POST",
          url: "/api/ai/images/edit",
          payload: { input_image: png, prompt, num_inference_steps: 4 },
        });
      const bad = await edit("from a newer engine");
      expect(bad.statusCode, bad.body).toBe(500);
      expect(bad.json().error.detail).toMatch(
        /result message could not be read: result: unknown field from_a_newer_engine/,
      );
      const active = (await h.app.inject({ url: "/api/ai/queue" })).json();
      expect(active.generations ?? active.data).toEqual([]); // nothing left processing
      const [g] = h.store.list({ statuses: ["failed"], limit: 10 }) as Array<{ errorCode: string }>;
      expect(g?.errorCode).toBe("internal");
      const next = await edit("a plain edit");
      expect(next.statusCode, next.body).toBe(200);
    } finally {
      await h.close();
    }
  });
});
