// The embedded queue's cost per step: every progress event is stored (streams replay each), but
// the generation's row is written with its step at most once a second; readers see the latest
// step at once, and a cancel after the last step is refused.
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import sharp from "sharp";
import { describe, expect, it } from "vitest";
import type { JobListener } from "../src/engine/supervisor.js";
import { ImageIngest } from "../src/images/ingest.js";
import { SqliteJobQueue } from "../src/jobs/sqlite-queue.js";
import { SqliteRecords } from "../src/jobs/sqlite-records.js";
import { Metrics } from "../src/metrics.js";
import { withDefaults } from "../src/schema/flux-kontext-dev.js";
import { FileStore } from "../src/storage/files.js";
import { waitFor } from "./helpers.js";

describe("progress on the embedded queue", () => {
  it("stores every step's event, writes the row's step at most once a second, shows the latest at once", async () => {
    const files = new FileStore(mkdtempSync(path.join(tmpdir(), "kontext-progress-")));
    const store = new SqliteRecords(":memory:");
    let listener: JobListener | null = null;
    const engines = {
      status: () => [{ state: listener ? "busy" : "idle" }] as never,
      run: (_job: never, l: JobListener) => {
        listener = l;
        return true;
      },
      cancel: () => {},
      on: () => engines,
      off: () => engines,
      stop: async () => {},
    };
    const queue = new SqliteJobQueue(store, files, engines, new Metrics(), { maxQueue: 10 });
    await queue.start();
    const png = await sharp({ create: { width: 32, height: 32, channels: 3, background: "#345" } })
      .png()
      .toBuffer();
    const ingest = new ImageIngest(files, {
      maxPixels: 1e8,
      fetchAllow: [],
      timeoutMs: 1000,
      maxBytes: 1e7,
      maxRedirects: 0,
    });
    const params = withDefaults({ input_image: "x", prompt: "p", num_inference_steps: 50 });
    const [g] = await ingest.withInput(png, (input) => queue.submit(params, input, 1));
    const id = g?.id as string;
    await waitFor(() => listener !== null, 10_000, "the run to reach the engine");
    const engine = listener as unknown as JobListener;

    const rowWrites: number[] = [];
    const apply = store.apply.bind(store);
    store.apply = (gid, expect, fields, event) => {
      if (fields.step !== undefined) rowWrites.push(fields.step);
      return apply(gid, expect, fields, event);
    };
    engine.started({ v: 1, type: "started", job_id: id, width: 32, height: 32, seeds: [1] });
    for (let step = 1; step <= 49; step++)
      engine.progress({ v: 1, type: "progress", job_id: id, step, total_steps: 50 });
    await waitFor(async () => (await queue.get(id))?.step === 49, 5_000, "step 49 shown");
    expect(
      rowWrites.length,
      `row writes for 49 steps in well under a second: ${rowWrites}`,
    ).toBeLessThanOrEqual(2);
    expect(store.get(id)?.step, "the row lags behind").toBeLessThan(49);
    expect((await queue.get(id))?.step, "what a reader sees").toBe(49);
    const events = await queue.eventsOf(id);
    expect(events.filter((e) => e.event === "media_generation_progress")).toHaveLength(49);

    engine.progress({ v: 1, type: "progress", job_id: id, step: 50, total_steps: 50 });
    await waitFor(() => store.get(id)?.step === 50, 5_000, "the last step written to the row");
    await expect(queue.cancel(id)).rejects.toMatchObject({ code: "generation_finishing", status: 409 });
    queue.stop();
    store.close();
  });
});
