import { describe, expect, it } from "vitest";
import { startedEvent } from "../run/fixtures.js";
import { applyEvent, queued } from "../run/progress.js";
import { fakeApi, fakeTimers, generation } from "../session/fakes.js";
import { BUSY_POLL_MS, IDLE_POLL_MS, Queue, queueRows, tabTitle } from "./queue.js";

describe("the queue", () => {
  it("lists the server's active generations with the live progress of followed ones", () => {
    const items = [
      generation("g1", { status: "processing", step: 1, total_steps: 28, prompt: "a" }),
      generation("g2", { status: "queued", queue_position: 0, prompt: "b" }),
    ];
    const live = applyEvent(queued("g1", 0), startedEvent("g1"), 1);
    const rows = queueRows(items, { g1: { ...live, step: 3 } });
    expect(rows.map((r) => [r.id, r.phase, r.step, r.totalSteps, r.queuePosition])).toEqual([
      ["g1", "processing", 3, 4, null],
      ["g2", "queued", 0, 4, 0],
    ]);
    expect(tabTitle(rows)).toBe("(2) Step 3/4 · Kontext workbench");
    expect(tabTitle([])).toBe("Kontext workbench");
  });

  it("polls often while anything is active, rarely when idle", async () => {
    const server = fakeApi();
    const timers = fakeTimers();
    const q = new Queue(server.api, timers);
    server.generations.set("g1", generation("g1"));
    q.start();
    await Promise.resolve();
    await Promise.resolve();
    expect(q.get().items.length).toBe(1);
    server.generations.clear();
    timers.advance(BUSY_POLL_MS);
    await Promise.resolve();
    await Promise.resolve();
    expect(q.get().items.length).toBe(0);
    q.stop();
    expect(IDLE_POLL_MS).toBeGreaterThan(BUSY_POLL_MS);
  });
});
