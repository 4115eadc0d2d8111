// The server's API as the workbench uses it. Same origin: the gateway serves the workbench.
import type { ErrorEnvelope } from "./errors.js";
import type { HistoryItem } from "./history.js";
import type { ServerEvent } from "./progress.js";
import type { JsonObjectSchema } from "./schemaForm.js";
import { streamEvents } from "./sse.js";

export const MODEL_ID = "flux-kontext-dev";

export interface ModelInfo {
  id: string;
  display_name: string;
  description: string;
  demo?: boolean;
  json_request_schema: JsonObjectSchema;
}

export interface Health {
  status: string;
  state: string;
  model: string | null;
  demo: boolean | null;
  note?: string;
  device: string | null;
}

/** A refused request: the HTTP status and the hosted error envelope. */
export class ApiFailure extends Error {
  constructor(
    readonly status: number,
    readonly envelope: ErrorEnvelope,
  ) {
    super(envelope.error?.detail ?? envelope.status_message ?? `HTTP ${status}`);
  }
}

// The API key (when the server has keys on), kept in this browser only.
const KEY_STORAGE = "kontext.apiKey";
export const getApiKey = (): string | null => localStorage.getItem(KEY_STORAGE);
export function setApiKey(key: string | null): void {
  if (key) localStorage.setItem(KEY_STORAGE, key);
  else localStorage.removeItem(KEY_STORAGE);
}
export function authHeaders(extra?: HeadersInit): Headers {
  const h = new Headers(extra);
  const key = getApiKey();
  if (key) h.set("Authorization", `Bearer ${key}`);
  return h;
}

async function call<T>(path: string, init?: RequestInit): Promise<T> {
  const res = await fetch(path, { ...init, headers: authHeaders(init?.headers) });
  const text = await res.text();
  let body: unknown = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { status_message: text.slice(0, 300) };
  }
  if (!res.ok) throw new ApiFailure(res.status, (body ?? {}) as ErrorEnvelope);
  return body as T;
}

export const getModel = (id = MODEL_ID) => call<ModelInfo>(`/api/ai/models/${encodeURIComponent(id)}`);

/** /healthz answers 503 while no engine is ready; its body still says why. */
export async function getHealth(): Promise<Health> {
  const res = await fetch("/healthz");
  return (await res.json()) as Health;
}

export async function submitToQueue(body: Record<string, unknown>): Promise<string[]> {
  const out = await call<{ generations: Array<{ generation_id: string }> }>("/api/ai/queue", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  return out.generations.map((g) => g.generation_id);
}

export async function cancelGeneration(id: string): Promise<void> {
  try {
    await call(`/api/ai/queue/${encodeURIComponent(id)}`, { method: "DELETE" });
  } catch (err) {
    if (!(err instanceof ApiFailure && err.status === 409)) throw err; // 409: already finished
  }
}

export async function getHistory(query = "", limit = 200): Promise<HistoryItem[]> {
  const params = new URLSearchParams({ limit: String(limit) });
  if (query.trim()) params.set("q", query.trim());
  return (await call<{ generations: HistoryItem[] }>(`/api/history?${params}`)).generations;
}

/** One generation's event stream, until its final event (replayed from the start). */
export function openEventStream(id: string, onEvent: (e: ServerEvent) => void): () => void {
  return streamEvents(`/api/ai/queue/${encodeURIComponent(id)}/events`, onEvent, {
    headers: () => authHeaders(),
    done: (e) => e.event === "media_generation_completed",
  });
}

export async function listActive(): Promise<
  Array<{ generation_id: string; status: string; queue_position: number | null }>
> {
  const out = await call<{
    generations: Array<{ generation_id: string; status: string; queue_position: number | null }>;
  }>("/api/ai/queue?limit=1000");
  return out.generations;
}

/** Calls back on every generation that finishes, whoever made it (GET /api/events). */
export function onAnyCompleted(cb: () => void): () => void {
  return streamEvents(
    "/api/events",
    (e) => {
      if (e.event === "media_generation_completed") cb();
    },
    { headers: () => authHeaders(), retryMs: 3000 },
  );
}

/** An image URL (same origin) as a data URI of its exact bytes. */
export async function urlToDataUri(url: string): Promise<string> {
  const res = await fetch(url, { headers: authHeaders() });
  if (!res.ok) throw new Error(`fetching ${url} failed: HTTP ${res.status}`);
  return blobToDataUri(await res.blob());
}

export function blobToDataUri(blob: Blob): Promise<string> {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error ?? new Error("the file could not be read"));
    reader.readAsDataURL(blob);
  });
}
