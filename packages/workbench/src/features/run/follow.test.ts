import { describe, expect, it } from "vitest";
import { succeededEvent } from "./fixtures.js";
import { type FollowDeps, Follower, MAX_STREAMS } from "./follow.js";
import type { ServerEvent } from "./progress.js";

/** Streams and the queue listing, played by hand. */
function fakes() {
  const open = new Map<string, (e: ServerEvent) => void>();
  const closed: string[] = [];
  let active: Array<{ generation_id: string; status: string; queue_position: number | null }> = [];
  let timers = 0;
  const deps: FollowDeps = {
    openStream: (id, onEvent) => {
      open.set(id, onEvent);
      return () => {
        open.delete(id);
        closed.push(id);
      };
    },
    listActive: async () => active as Awaited<ReturnType<FollowDeps["listActive"]>>,
    timers: {
      setInterval: () => ++timers,
      clearInterval: () => {
        timers = 0;
      },
    },
  };
  const seen: Array<[string, string, unknown]> = [];
  const follower = new Follower((id, e) => seen.push([id, e.event, e.data.queue_position]), deps);
  return {
    follower,
    open,
    closed,
    seen,
    setActive: (a: typeof active) => {
      active = a;
    },
    timers: () => timers,
    complete: (id: string) => open.get(id)?.(succeededEvent(id)),
  };
}

describe("following many generations over few connections", () => {
  it(`streams at most ${MAX_STREAMS} at once, oldest first, and the next when one completes`, () => {
    const f = fakes();
    f.follower.follow(["a", "b", "c", "d"]);
    expect(f.follower.streaming).toEqual(["a", "b"]);
    expect(f.timers()).toBe(1); // polling for the waiting ones
    f.complete("a");
    expect(f.closed).toEqual(["a"]);
    expect(f.follower.streaming).toEqual(["b", "c"]);
    f.complete("b");
    f.complete("c");
    expect(f.follower.streaming).toEqual(["d"]);
    expect(f.timers()).toBe(0); // nothing waits: polling stops
    f.follower.follow(["d"]); // already followed: nothing new
    expect(f.follower.streaming).toEqual(["d"]);
  });

  it("counts the waiting ones' queue positions down, and streams at once one that is no longer queued", async () => {
    const f = fakes();
    f.follower.follow(["a", "b", "c", "d"]);
    f.setActive([
      { generation_id: "a", status: "processing", queue_position: null },
      { generation_id: "b", status: "queued", queue_position: 0 },
      { generation_id: "c", status: "queued", queue_position: 1 },
      // d is not active any more: cancelled by someone else, say
    ]);
    await f.follower.poll();
    expect(f.seen).toEqual([["c", "media_generation_queued", 1]]);
    expect(f.follower.streaming).toEqual(["a", "b", "d"]);
  });

  it("closes every stream it holds", () => {
    const f = fakes();
    f.follower.follow(["a", "b", "c"]);
    f.follower.close();
    expect(f.closed.sort()).toEqual(["a", "b"]);
    expect(f.timers()).toBe(0);
  });
});
