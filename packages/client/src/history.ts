// The workbench's history (GET/PATCH/DELETE /api/history, thumbnails): the generations of every
// status with their chain link, input image and star. Not part of the hosted API, so not in the
// OpenAPI document; typed here from Generation, beside the rest of the client.
import { type Generation, KontextError } from "./client.js";

export type HistoryItem = Generation & {
  parent_generation_id: string | null;
  /** the input image as it was sent (its original bytes) */
  input_url: string;
  input_width: number;
  input_height: number;
  /** a small WebP of the result (null unless succeeded and kept); `?size=64..512` */
  thumbnail_url?: string | null;
  input_thumbnail_url?: string | null;
  starred?: boolean;
  timings?: { queue: number; inference: number; encode: number } | null;
  /** every request parameter kept with the generation (guidance, num_inference_steps, ...) */
  [param: string]: unknown;
};

export interface HistoryQuery {
  /** prompt contains (any case) */
  q?: string;
  /** older than this generation id: the next page */
  before?: string;
  limit?: number;
  /** comma-separated statuses */
  status?: string;
  starred?: boolean;
}

type Fetch = (input: string, init?: RequestInit) => Promise<Response>;

async function json<T>(res: Response): Promise<T> {
  const text = await res.text();
  let body: unknown = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {}
  if (!res.ok) throw KontextError.from(res, body);
  return body as T;
}

/** The history endpoints over a fetch that carries the caller's credentials. */
export function historyApi(baseUrl: string, fetch: Fetch) {
  const base = baseUrl.replace(/\/+$/, "");
  const at = (id: string) => `${base}/api/history/${encodeURIComponent(id)}`;
  return {
    async list(query: HistoryQuery = {}): Promise<HistoryItem[]> {
      const p = new URLSearchParams({ limit: String(query.limit ?? 200) });
      if (query.q?.trim()) p.set("q", query.q.trim());
      if (query.before) p.set("before", query.before);
      if (query.status) p.set("status", query.status);
      if (query.starred) p.set("starred", "true");
      return (await json<{ generations: HistoryItem[] }>(await fetch(`${base}/api/history?${p}`)))
        .generations;
    },
    async remove(id: string): Promise<void> {
      await json(await fetch(at(id), { method: "DELETE" }));
    },
    async star(id: string, starred: boolean): Promise<void> {
      await json(
        await fetch(at(id), {
          method: "PATCH",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ starred }),
        }),
      );
    },
  };
}
