// The typed Kontext client. Requests and responses are typed by src/generated/openapi.ts, which is
// generated from the server's committed openapi.json; openapi-fetch does the HTTP.
import createClient, { type Client } from "openapi-fetch";
import type { components, paths } from "./generated/openapi.js";
import { parseEventStream } from "./sse.js";

type Schemas = components["schemas"];
export type EditRequest = Schemas["FluxKontextDevRequest"];
/** A text-to-image request (POST /api/ai/images/generate): no input image. */
export type GenerateRequest = Schemas["FluxKontextDevGenerateRequest"];
export type EditResponse = Schemas["EditResponse"];
export type Generation = Schemas["Generation"];
export type GenerationList = Schemas["GenerationList"];
export type CancelResponse = Schemas["CancelResponse"];
export type Model = Schemas["Model"];
export type ErrorEnvelope = Schemas["Error"];
export type GenerationStatus = Generation["status"];
export type HistoryItem = Schemas["HistoryItem"];
export type DeleteResponse = Schemas["DeleteResponse"];

/** GET /api/history's filters. */
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

/** One Server-Sent Event of a generation, typed by its name. */
export type KontextEvent =
  | { id: number; event: "media_generation_queued"; data: Schemas["QueuedEvent"] }
  | { id: number; event: "media_generation_started"; data: Schemas["StartedEvent"] }
  | { id: number; event: "media_generation_progress"; data: Schemas["ProgressEvent"] }
  | { id: number; event: "media_generation_completed"; data: Schemas["CompletedEvent"] };

export const FINAL_STATUSES: readonly GenerationStatus[] = ["succeeded", "failed", "cancelled"];

export interface KontextOptions {
  /** The server, e.g. https://kontext.example.com. Default: KONTEXT_URL, else http://127.0.0.1:8080. */
  baseUrl?: string;
  /** Sent as `Authorization: Bearer <key>`. Default: KONTEXT_API_KEY (none when unset). */
  apiKey?: string;
  /** A fetch to use instead of the global one. */
  fetch?: typeof fetch;
}

export interface CallOptions {
  signal?: AbortSignal;
}

/** An error the server answered with: its HTTP status, the catalogue code and the message. */
export class KontextError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** The request fields the server named, when the request was invalid. */
    readonly fields: string[] = [],
  ) {
    super(message);
    this.name = "KontextError";
  }

  static from(response: Response, body: unknown): KontextError {
    const env = body as Partial<ErrorEnvelope> | undefined;
    if (env?.error && typeof env.error.detail === "string") {
      return new KontextError(response.status, env.error.type, env.error.detail, env.error.fields ?? []);
    }
    const text = typeof body === "string" ? body : JSON.stringify(body ?? "");
    return new KontextError(response.status, "http_error", `HTTP ${response.status}: ${text.slice(0, 300)}`);
  }
}

const env = (name: string): string | undefined =>
  typeof process !== "undefined" ? process.env[name] || undefined : undefined;

export class Kontext {
  readonly baseUrl: string;
  private readonly api: Client<paths>;
  private readonly authorization: string | undefined;
  private readonly fetch: typeof fetch;

  constructor(options: KontextOptions = {}) {
    this.baseUrl = (options.baseUrl ?? env("KONTEXT_URL") ?? "http://127.0.0.1:8080").replace(/\/+$/, "");
    const apiKey = options.apiKey ?? env("KONTEXT_API_KEY");
    this.authorization = apiKey ? `Bearer ${apiKey}` : undefined;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    const init: Parameters<typeof createClient>[0] = { baseUrl: this.baseUrl, fetch: this.fetch };
    if (this.authorization) init.headers = { authorization: this.authorization };
    this.api = createClient<paths>(init);
  }

  /** Edits an image and waits for the result (POST /api/ai/images/edit). */
  async edit(params: EditRequest, opts: CallOptions = {}): Promise<EditResponse> {
    const { data, error, response } = await this.api.POST("/api/ai/images/edit", {
      body: { ...params, stream: false },
      headers: { accept: "application/json" },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data as EditResponse;
  }

  /**
   * Generates an image from the prompt alone and waits for the result (POST
   * /api/ai/images/generate): the edit's answer, its size from aspect_ratio (default 1:1).
   */
  async generate(params: GenerateRequest, opts: CallOptions = {}): Promise<EditResponse> {
    const { data, error, response } = await this.api.POST("/api/ai/images/generate", {
      body: { ...params, stream: false },
      headers: { accept: "application/json" },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data as EditResponse;
  }

  /**
   * Queues an edit, or a text-to-image generation when `params` has no input_image
   * (num_generations 1–4), and returns the generation ids (POST /api/ai/queue).
   */
  async submit(params: EditRequest | GenerateRequest, opts: CallOptions = {}): Promise<string[]> {
    const { data, error, response } = await this.api.POST("/api/ai/queue", {
      body: params,
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data.generations.map((g) => g.generation_id);
  }

  /** A generation's current state (GET /api/ai/queue/:id). */
  async get(id: string, opts: CallOptions = {}): Promise<Generation> {
    const { data, error, response } = await this.api.GET("/api/ai/queue/{id}", {
      params: { path: { id } },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data;
  }

  /** Generations, newest first; active ones only unless `status` says otherwise ("all", "failed,cancelled"). */
  async list(
    query: { status?: string; model?: string; limit?: number } = {},
    opts: CallOptions = {},
  ): Promise<GenerationList> {
    const q: { status?: string; model?: string; limit?: string } = {};
    if (query.status) q.status = query.status;
    if (query.model) q.model = query.model;
    if (query.limit !== undefined) q.limit = String(query.limit);
    const { data, error, response } = await this.api.GET("/api/ai/queue", {
      params: { query: q },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data;
  }

  /** Cancels a queued generation, or stops a processing one between two steps. */
  async cancel(id: string, opts: CallOptions = {}): Promise<CancelResponse> {
    const { data, error, response } = await this.api.DELETE("/api/ai/queue/{id}", {
      params: { path: { id } },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data;
  }

  /**
   * The events of one generation, in order, ending with media_generation_completed:
   * - `stream(id)` follows a queued generation (GET /api/ai/queue/:id/events), from the start or
   *   after `lastEventId`;
   * - `stream(params)` submits an edit and streams it (POST /api/ai/images/edit as SSE), or, for
   *   params without input_image, a text-to-image generation (POST /api/ai/images/generate).
   */
  async *stream(
    target: string | EditRequest | GenerateRequest,
    opts: CallOptions & { lastEventId?: number } = {},
  ): AsyncGenerator<KontextEvent> {
    const headers: Record<string, string> = { accept: "text/event-stream" };
    const { data, error, response } =
      typeof target === "string"
        ? await this.api.GET("/api/ai/queue/{id}/events", {
            params: { path: { id: target } },
            headers: opts.lastEventId ? { ...headers, "last-event-id": String(opts.lastEventId) } : headers,
            parseAs: "stream",
            signal: opts.signal,
          })
        : "input_image" in target
          ? await this.api.POST("/api/ai/images/edit", {
              body: { ...target, stream: true },
              headers,
              parseAs: "stream",
              signal: opts.signal,
            })
          : await this.api.POST("/api/ai/images/generate", {
              body: { ...target, stream: true },
              headers,
              parseAs: "stream",
              signal: opts.signal,
            });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    for await (const raw of parseEventStream(data as ReadableStream<Uint8Array>)) {
      const event = { id: Number(raw.id), event: raw.event, data: JSON.parse(raw.data) } as KontextEvent;
      yield event;
      if (event.event === "media_generation_completed") return;
    }
  }

  /**
   * Resolves with the generation once it is final (succeeded, failed or cancelled: check
   * `status`). Follows its event stream, resuming from the last event if the connection drops.
   */
  async wait(
    id: string,
    opts: CallOptions & { onEvent?: (e: KontextEvent) => void } = {},
  ): Promise<Generation> {
    let lastEventId = 0;
    for (;;) {
      try {
        for await (const e of this.stream(id, { signal: opts.signal, lastEventId })) {
          lastEventId = e.id;
          opts.onEvent?.(e);
        }
      } catch (err) {
        if (err instanceof KontextError || opts.signal?.aborted) throw err;
        // a dropped connection: look, then resume from the last event
      }
      const g = await this.get(id, opts);
      if (FINAL_STATUSES.includes(g.status)) return g;
      await new Promise((r) => setTimeout(r, 500));
    }
  }

  /**
   * The history, newest first (GET /api/history): generations of every status with their chain
   * link, input, thumbnails and star.
   */
  async history(query: HistoryQuery = {}, opts: CallOptions = {}): Promise<HistoryItem[]> {
    const q: { q?: string; before?: string; limit?: string; status?: string; starred?: "true" | "false" } =
      {};
    if (query.q?.trim()) q.q = query.q.trim();
    if (query.before) q.before = query.before;
    if (query.limit !== undefined) q.limit = String(query.limit);
    if (query.status) q.status = query.status;
    if (query.starred !== undefined) q.starred = query.starred ? "true" : "false";
    const { data, error, response } = await this.api.GET("/api/history", {
      params: { query: q },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data.generations;
  }

  /** Deletes a finished generation's files and record (DELETE /api/history/:id; 409 while active). */
  async deleteGeneration(id: string, opts: CallOptions = {}): Promise<DeleteResponse> {
    const { data, error, response } = await this.api.DELETE("/api/history/{id}", {
      params: { path: { id } },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data;
  }

  /** Stars or unstars a generation in the history (PATCH /api/history/:id). */
  async star(id: string, starred: boolean, opts: CallOptions = {}): Promise<HistoryItem> {
    const { data, error, response } = await this.api.PATCH("/api/history/{id}", {
      params: { path: { id } },
      body: { starred },
      signal: opts.signal,
    });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data;
  }

  /** Served models with their request schema (GET /api/ai/models). */
  async models(opts: CallOptions = {}): Promise<Model[]> {
    const { data, error, response } = await this.api.GET("/api/ai/models", { signal: opts.signal });
    if (error !== undefined || !data) throw KontextError.from(response, error);
    return data.data;
  }

  /** The server's health (GET /healthz): state, and each engine's model and device. */
  async health(opts: CallOptions = {}): Promise<Record<string, unknown>> {
    const { data, response } = await this.api.GET("/healthz", { signal: opts.signal, parseAs: "json" });
    return (data as Record<string, unknown> | undefined) ?? { status: response.status };
  }

  /** Downloads a result (or any URL on this server) with this client's credentials. */
  async download(url: string, opts: CallOptions = {}): Promise<Uint8Array> {
    const headers: Record<string, string> = {};
    if (this.authorization && url.startsWith(`${this.baseUrl}/`)) headers.authorization = this.authorization;
    const res = await this.fetch(url, { headers, signal: opts.signal ?? null });
    if (!res.ok) throw KontextError.from(res, await res.text());
    return new Uint8Array(await res.arrayBuffer());
  }
}
