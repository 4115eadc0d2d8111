// Test doubles for the controllers' dependencies: a server played by hand and a manual clock.
import type { EditRequest, Generation, HistoryItem, HistoryQuery, KontextEvent } from "@kontext/client";
import type { Timers } from "../../app/store.js";
import type { Api, Health } from "./api.js";

export function fakeTimers(): Timers & { advance(ms: number): void; pending(): number } {
  let now = 1_000_000;
  let next = 1;
  const timers = new Map<number, { at: number; fn: () => void; every: number | null }>();
  return {
    now: () => now,
    setTimeout: (fn, ms) => {
      timers.set(next, { at: now + ms, fn, every: null });
      return next++;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    setInterval: (fn, ms) => {
      timers.set(next, { at: now + ms, fn, every: ms });
      return next++;
    },
    clearInterval: (h) => void timers.delete(h as number),
    advance(ms) {
      const end = now + ms;
      for (;;) {
        const due = [...timers.entries()].filter(([, t]) => t.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
        if (!due) break;
        const [id, t] = due;
        now = t.at;
        if (t.every) t.at += t.every;
        else timers.delete(id);
        t.fn();
      }
      now = end;
    },
    pending: () => timers.size,
  };
}

export function generation(id: string, extra: Partial<Generation> = {}): Generation {
  return {
    generation_id: id,
    model_name: "flux-kontext-dev",
    prompt: `prompt of ${id}`,
    media_type: "image",
    status: "queued",
    result_url: null,
    error_message: null,
    enqueued_at: "2026-01-01T00:00:00.000Z",
    started_at: null,
    completed_at: null,
    queue_position: 0,
    progress: 0,
    step: 0,
    total_steps: 4,
    preview_url: null,
    seed: 1,
    width: 1184,
    height: 880,
    ...extra,
  } as Generation;
}

export function historyItem(
  id: string,
  parent: string | null = null,
  extra: Partial<HistoryItem> = {},
): HistoryItem {
  return {
    ...generation(id, { status: "succeeded", result_url: `/results/${id}.webp`, queue_position: null }),
    prompt: id,
    parent_generation_id: parent,
    input_url: `/api/history/${id}/input`,
    input_width: 64,
    input_height: 48,
    thumbnail_url: `/api/history/${id}/thumbnail`,
    input_thumbnail_url: `/api/history/${id}/input/thumbnail`,
    starred: false,
    num_inference_steps: 4,
    guidance: 2.5,
    ...extra,
  } as HistoryItem;
}

/** A server played by hand: what was called, and streams the test pushes events into. */
export function fakeApi() {
  const calls: string[] = [];
  const submitted: EditRequest[] = [];
  const streams = new Map<string, (e: KontextEvent) => void>();
  const generations = new Map<string, Generation>();
  let items: HistoryItem[] = [];
  let nextId = 1;
  const completed: Array<(id: string) => void> = [];
  let listing: unknown = { object: "list", data: [] };
  const api: Api = {
    model: async () => {
      throw new Error("no model in this fake");
    },
    health: async (): Promise<Health> => ({ state: "ready", device: "cpu", demo: true }),
    submit: async (body) => {
      submitted.push(body);
      const n = body.num_generations ?? 1;
      const ids = Array.from({ length: n }, () => `g${nextId++}`);
      for (const id of ids) generations.set(id, generation(id, { prompt: body.prompt }));
      calls.push(`submit ${ids.join(",")}`);
      return ids;
    },
    cancel: async (id) => {
      calls.push(`cancel ${id}`);
    },
    get: async (id) => {
      const g = generations.get(id);
      if (!g) throw new Error(`no ${id}`);
      return g;
    },
    active: async () =>
      [...generations.values()].filter((g) => g.status === "queued" || g.status === "processing"),
    follow: (id, onEvent) => {
      calls.push(`follow ${id}`);
      streams.set(id, onEvent);
      return () => {
        streams.delete(id);
        calls.push(`unfollow ${id}`);
      };
    },
    onCompleted: (cb) => {
      completed.push(cb);
      return () => undefined;
    },
    history: async (q: HistoryQuery) => {
      calls.push(`history ${JSON.stringify(q)}`);
      let out = items;
      if (q.q) out = out.filter((i) => i.prompt.includes(q.q as string));
      if (q.starred) out = out.filter((i) => i.starred);
      if (q.before) out = out.slice(out.findIndex((i) => i.generation_id === q.before) + 1);
      return out.slice(0, q.limit ?? 200);
    },
    remove: async (id) => {
      calls.push(`remove ${id}`);
      items = items.filter((i) => i.generation_id !== id);
    },
    star: async (id, starred) => {
      calls.push(`star ${id} ${starred}`);
      items = items.map((i) => (i.generation_id === id ? { ...i, starred } : i));
    },
    blob: async (url) => {
      calls.push(`blob ${url}`);
      return new Blob([new Uint8Array([0xff, 0xd8, 0xff, 0])], { type: "image/jpeg" });
    },
    loras: async () => {
      calls.push("loras");
      if (listing instanceof Error) throw listing;
      return listing;
    },
  };
  return {
    api,
    calls,
    submitted,
    streams,
    generations,
    setItems: (list: HistoryItem[]) => {
      items = list;
    },
    /** what GET .../loras answers (an Error: it fails) */
    setLoras: (body: unknown) => {
      listing = body;
    },
    push: (id: string, e: KontextEvent) => streams.get(id)?.(e),
    fireCompleted: (id: string) => {
      for (const cb of completed) cb(id);
    },
  };
}
