import type { EditRequest } from "@kontext/client";
import { describe, expect, it } from "vitest";
import { fakeApi, fakeTimers, generation } from "../session/fakes.js";
import { progressEvent, queuedEvent, startedEvent, succeededEvent } from "./fixtures.js";
import { statusText } from "./progress.js";
import { Runs } from "./runs.js";

const body = {
  model: "flux-kontext-dev",
  input_image: "data:image/png;base64,AA",
  prompt: "a hat",
  num_inference_steps: 4,
} as EditRequest;

function setup() {
  const server = fakeApi();
  const timers = fakeTimers();
  const runs = new Runs({ api: server.api, timers });
  const finished: string[] = [];
  runs.onFinished((p) => finished.push(`${p.id} ${p.phase}`));
  return { server, timers, runs, finished };
}

describe("the runs controller", () => {
  it("submits, follows the run's stream to its result, and says when it finished", async () => {
    const { server, runs, finished } = setup();
    const ids = await runs.start(body);
    expect(ids).toEqual(["g1"]);
    expect(runs.get().run).toEqual({ ids: ["g1"], prompt: "a hat" });
    expect(runs.runActive).toBe(true);
    expect(server.calls).toEqual(["submit g1", "follow g1"]);
    server.push("g1", queuedEvent(1));
    server.push("g1", startedEvent());
    server.push("g1", progressEvent(2));
    expect(statusText(runs.get().tracked.g1 ?? ({} as never))).toBe("Step 2 of 4");
    server.push("g1", succeededEvent());
    expect(runs.runActive).toBe(false);
    expect(finished).toEqual(["g1 succeeded"]);
    expect(server.calls.at(-1)).toBe("unfollow g1");
  });

  it("does not submit twice while a run is active or sending", async () => {
    const { server, runs } = setup();
    const a = runs.start(body);
    const b = runs.start(body);
    expect(await b).toEqual([]);
    await a;
    expect(await runs.start(body)).toEqual([]);
    expect(server.submitted.length).toBe(1);
  });

  it("throws what the server refused, and is ready again", async () => {
    const { server, runs } = setup();
    server.api.submit = async () => {
      throw new Error("queue full");
    };
    await expect(runs.start(body)).rejects.toThrow("queue full");
    expect(runs.get().submitting).toBe(false);
  });

  it("after a reload, picks up the run where the server has it, follows it again and can cancel it", async () => {
    const { server, runs } = setup();
    server.generations.set("g7", generation("g7", { status: "processing", step: 20, total_steps: 50 }));
    server.generations.set("g8", generation("g8", { status: "succeeded", result_url: "/r/g8.webp" }));
    await runs.resume(["g7", "g8", "gone"], { ids: ["g7"], prompt: "long" });
    expect(statusText(runs.get().tracked.g7 ?? ({} as never))).toBe("Step 20 of 50");
    expect(runs.get().tracked.g8?.phase).toBe("succeeded");
    expect(runs.get().run).toEqual({ ids: ["g7"], prompt: "long" });
    expect(server.calls).toEqual(["follow g7"]); // the finished one is not streamed
    server.push("g7", progressEvent(21));
    await runs.cancelRun();
    expect(server.calls).toContain("cancel g7");
  });

  it("follows sweep cells beside the run, with num_generations 1 each", async () => {
    const { server, runs } = setup();
    const id = await runs.submitOne({ ...body, num_generations: 3 } as EditRequest);
    expect(id).toBe("g1");
    expect(server.submitted[0]?.num_generations).toBe(1);
    expect(runs.get().run).toBeNull();
    expect(runs.get().tracked.g1?.phase).toBe("queued");
  });
});
