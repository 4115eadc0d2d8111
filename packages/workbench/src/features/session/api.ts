// The server as the workbench calls it: @kontext/client (generated types, its event parser) with
// this browser's API key. Controllers take an `Api`, so their tests pass a fake one.
import {
  type EditRequest,
  type Generation,
  type HistoryItem,
  type HistoryQuery,
  Kontext,
  KontextError,
  type KontextEvent,
  type Model,
  parseEventStream,
} from "@kontext/client";
import type { KeyValue } from "../../app/store.js";

export const MODEL_ID = "flux-kontext-dev";

/** What the page shows of /healthz (its body is not typed by the API: read defensively). */
export interface Health {
  state: string;
  device: string | null;
  demo: boolean;
}

export interface Api {
  model(id: string): Promise<Model>;
  health(): Promise<Health>;
  submit(body: EditRequest): Promise<string[]>;
  /** 409 (already final) is not an error here */
  cancel(id: string): Promise<void>;
  get(id: string): Promise<Generation>;
  /** this caller's queued and processing generations, oldest first */
  active(): Promise<Generation[]>;
  /** one generation's events until its last, resuming after drops; returns a stop function */
  follow(id: string, onEvent: (e: KontextEvent) => void): () => void;
  /** calls back with the id of every generation that finishes (GET /api/events) */
  onCompleted(cb: (id: string) => void): () => void;
  history(q: HistoryQuery): Promise<HistoryItem[]>;
  remove(id: string): Promise<void>;
  star(id: string, starred: boolean): Promise<void>;
  /** an image on this server, with credentials */
  blob(url: string): Promise<Blob>;
  /** the model's LoRA listing as the server answers it ({ loras: [...] }) */
  loras(): Promise<unknown>;
}

const KEY = "kontext.apiKey";
export const apiKey = {
  get: (kv: KeyValue) => kv.get(KEY),
  set: (kv: KeyValue, key: string | null) => kv.set(KEY, key),
};

export const isUnauthorized = (err: unknown) => err instanceof KontextError && err.status === 401;

const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    const t = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(t);
      resolve();
    });
  });

const FINAL = new Set(["succeeded", "failed", "cancelled"]);

/** The completed event a final generation would have sent (for a stream that closed early). */
export function completedFrom(g: Generation): KontextEvent {
  return {
    id: 0,
    event: "media_generation_completed",
    data: {
      generation_id: g.generation_id,
      status: g.status as "succeeded" | "failed" | "cancelled",
      media_type: "image",
      model: g.model_name,
      ...(g.result_url ? { url: g.result_url } : {}),
      seed: g.seed,
      ...(g.width !== null ? { width: g.width } : {}),
      ...(g.height !== null ? { height: g.height } : {}),
      error: g.error_message,
      ...(g.prompt_tokens ? { prompt_tokens: g.prompt_tokens } : {}),
    },
  };
}

export function browserApi(baseUrl: string, key: string | null): Api {
  const kontext = new Kontext({ baseUrl, ...(key ? { apiKey: key } : {}) });
  const authed = (url: string, init: RequestInit = {}) => {
    const headers = new Headers(init.headers);
    if (key && (url.startsWith("/") || url.startsWith(`${baseUrl}/`)))
      headers.set("authorization", `Bearer ${key}`);
    return fetch(url, { ...init, headers });
  };
  return {
    async model(id) {
      const models = await kontext.models();
      const m = models.find((x) => x.id === id) ?? models[0];
      if (!m) throw new Error("the server serves no model");
      return m;
    },
    async health() {
      const h = await kontext.health();
      return {
        state: typeof h.state === "string" ? h.state : String(h.status ?? "unknown"),
        device: typeof h.device === "string" ? h.device : null,
        demo: h.demo === true,
      };
    },
    submit: (body) => kontext.submit(body),
    async cancel(id) {
      try {
        await kontext.cancel(id);
      } catch (err) {
        if (!(err instanceof KontextError && err.status === 409)) throw err;
      }
    },
    get: (id) => kontext.get(id),
    async active() {
      const list = await kontext.list({ limit: 1000 });
      return [...list.generations].sort((a, b) => a.enqueued_at.localeCompare(b.enqueued_at));
    },
    follow(id, onEvent) {
      const abort = new AbortController();
      void (async () => {
        let last = 0;
        while (!abort.signal.aborted) {
          try {
            for await (const e of kontext.stream(id, { signal: abort.signal, lastEventId: last })) {
              if (Number.isFinite(e.id) && e.id > 0) last = e.id;
              onEvent(e);
              if (e.event === "media_generation_completed") return;
            }
            // closed before the last event: ask where it is
            const g = await kontext.get(id);
            if (FINAL.has(g.status)) return onEvent(completedFrom(g));
          } catch (err) {
            if (abort.signal.aborted) return;
            if (err instanceof KontextError && err.status === 404) return;
          }
          await sleep(1000, abort.signal);
        }
      })();
      return () => abort.abort();
    },
    onCompleted(cb) {
      const abort = new AbortController();
      void (async () => {
        let last: string | null = null;
        while (!abort.signal.aborted) {
          try {
            const headers: Record<string, string> = { accept: "text/event-stream" };
            if (last) headers["last-event-id"] = last;
            const res = await authed(`${baseUrl}/api/events`, { headers, signal: abort.signal });
            if (res.ok && res.body) {
              for await (const e of parseEventStream(res.body)) {
                if (e.id) last = e.id;
                if (e.event !== "media_generation_completed") continue;
                try {
                  cb(String((JSON.parse(e.data) as { generation_id?: unknown }).generation_id ?? ""));
                } catch {}
              }
            }
          } catch {
            if (abort.signal.aborted) return;
          }
          await sleep(3000, abort.signal);
        }
      })();
      return () => abort.abort();
    },
    history: (q) => kontext.history(q),
    async remove(id) {
      await kontext.deleteGeneration(id);
    },
    async star(id, starred) {
      await kontext.star(id, starred);
    },
    async blob(url) {
      const res = await authed(url);
      if (!res.ok) throw KontextError.from(res, await res.text());
      return res.blob();
    },
    async loras() {
      const res = await authed(`${baseUrl}/api/ai/models/${MODEL_ID}/loras`);
      if (!res.ok) throw KontextError.from(res, await res.text());
      return res.json();
    },
  };
}
