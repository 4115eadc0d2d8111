// The one error catalogue: every error a client sees has a code, an HTTP status, a title and a
// message template. Nothing else builds error strings for responses.

export const ERRORS = {
  invalid_request: { status: 400, title: "Invalid request", template: "{detail}" },
  invalid_json: {
    status: 400,
    title: "Invalid JSON",
    template: "the request body is not valid JSON: {reason}",
  },
  unsupported_media_type: {
    status: 415,
    title: "Unsupported media type",
    template: "send the request body as application/json, got {contentType}",
  },
  multipart_required: {
    status: 415,
    title: "Unsupported media type",
    template:
      "send the request body as multipart/form-data (image, prompt, ...) as the OpenAI SDKs do, got {contentType}",
  },
  input_image_invalid: { status: 400, title: "Invalid input image", template: "input_image: {reason}" },
  input_image_refused: {
    status: 400,
    title: "Input image address refused",
    template:
      "input_image: {url} resolves to {address}, a {range} address; allow it with KONTEXT_FETCH_ALLOW",
  },
  input_image_fetch_failed: {
    status: 422,
    title: "Input image could not be fetched",
    template: "input_image: fetching {url} failed: {reason}",
  },
  input_image_too_large: { status: 413, title: "Input image too large", template: "input_image: {reason}" },
  input_image_undecodable: {
    status: 422,
    title: "Input image could not be decoded",
    template: "input_image: {reason}",
  },
  model_not_found: { status: 404, title: "Not found", template: "Model not found: {model}" },
  generation_not_found: { status: 404, title: "Not found", template: "Generation not found: {id}" },
  result_not_found: { status: 404, title: "Not found", template: "Result not found: {name}" },
  route_not_found: { status: 404, title: "Not found", template: "No route {method} {url}" },
  path_param_too_long: {
    status: 404,
    title: "Not found",
    template: "{method} {url}: a path parameter is longer than {limit} characters, so nothing has that name",
  },
  request_timeout: {
    status: 408,
    title: "Request timeout",
    template: "the request was not received in time; send it again",
  },
  headers_too_large: {
    status: 431,
    title: "Request header fields too large",
    template: "the request's headers are larger than the server accepts (16 KiB)",
  },
  generation_finished: {
    status: 409,
    title: "Conflict",
    template: "generation {id} is already {status} and cannot be cancelled",
  },
  generation_finishing: {
    status: 409,
    title: "Conflict",
    template:
      "generation {id} has run all {steps} steps and its image is being saved: it can no longer be cancelled",
  },
  generation_active: {
    status: 409,
    title: "Conflict",
    template:
      "generation {id} is {status}: cancel it first (DELETE /api/ai/queue/{id}), then delete it once it has ended",
  },
  body_too_large: {
    status: 413,
    title: "Request body too large",
    template: "the request body is larger than {limit} bytes (KONTEXT_BODY_LIMIT_BYTES)",
  },
  queue_full: {
    status: 429,
    title: "Queue full",
    template: "{queued} generations are queued, the limit is {limit}; retry after {retryAfter} s",
  },
  unauthorized: {
    status: 401,
    title: "Unauthorized",
    template: "{reason}; send Authorization: Bearer <key> with a key from KONTEXT_API_KEYS",
  },
  cross_site_refused: {
    status: 403,
    title: "Forbidden",
    template:
      "a page at {origin} may not call this server from a browser ({header}); list its origin in KONTEXT_CORS_ORIGINS to allow it",
  },
  host_refused: {
    status: 403,
    title: "Forbidden",
    template:
      "Host {host} is not this server's name: with API keys off only a loopback name, an IP address or the host of KONTEXT_PUBLIC_URL is answered",
  },
  rate_limited: {
    status: 429,
    title: "Too many requests",
    template:
      "this API key made {limit} submissions in the last minute (KONTEXT_KEY_SUBMITS_PER_MINUTE); retry after {retryAfter} s",
  },
  too_many_active: {
    status: 429,
    title: "Too many active generations",
    template:
      "this API key has {active} generations queued or processing and asked for {count} more, the limit is {limit} (KONTEXT_KEY_MAX_ACTIVE_JOBS); retry after {retryAfter} s",
  },
  idempotency_conflict: {
    status: 409,
    title: "Idempotency key reused",
    template:
      "Idempotency-Key {key} was first used with a different request body (or endpoint); use a new key for a new request",
  },
  webhook_invalid: { status: 400, title: "Invalid webhook", template: "webhook: {reason}" },
  webhook_refused: {
    status: 400,
    title: "Webhook address refused",
    template: "webhook: {url} resolves to {address}, a {range} address; allow it with KONTEXT_FETCH_ALLOW",
  },
  storage_full: {
    status: 507,
    title: "Insufficient storage",
    template: "storage is full: {reason}",
  },
  shutting_down: {
    status: 503,
    title: "Service unavailable",
    template:
      "the server is shutting down and takes no new generations; retry on another instance or after the restart",
  },
  engine_not_ready: { status: 503, title: "Service unavailable", template: "no engine is ready: {reason}" },
  queue_unavailable: {
    status: 503,
    title: "Service unavailable",
    template: "the job queue (Redis) cannot be reached: {reason}; retry in a few seconds",
  },
  storage_unavailable: {
    status: 503,
    title: "Service unavailable",
    template: "the file store ({where}) cannot be reached: {reason}; retry in a few seconds",
  },
  generation_failed: { status: 500, title: "Generation failed", template: "{reason}" },
  content_flagged: { status: 422, title: "Content flagged", template: "{reason}" },
  generation_cancelled: {
    status: 409,
    title: "Generation cancelled",
    template: "generation {id} was cancelled",
  },
  workbench_not_built: {
    status: 503,
    title: "Workbench not built",
    template:
      "the workbench is not built ({dir} has no index.html): run npm start, or npm run build -w @kontext/workbench",
  },
  internal: { status: 500, title: "Internal server error", template: "{reason}" },
} as const satisfies Record<string, { status: number; title: string; template: string }>;

export type ErrorCode = keyof typeof ERRORS;

/** An error answered to the client in the hosted error envelope. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly headers: Record<string, string>;
  constructor(
    readonly code: ErrorCode,
    readonly params: Record<string, string | number> = {},
    extra: { headers?: Record<string, string>; fields?: string[] } = {},
  ) {
    const e = ERRORS[code];
    super(e.template.replace(/\{(\w+)\}/g, (_, k: string) => String(params[k] ?? `{${k}}`)));
    this.status = e.status;
    this.title = e.title;
    this.headers = extra.headers ?? {};
    this.fields = extra.fields;
  }
  readonly fields: string[] | undefined;

  /** The hosted envelope: {error: {type, title, detail}, status: "error", status_message}. */
  toBody(): ErrorBody {
    const error: ErrorBody["error"] = { type: this.code, title: this.title, detail: this.message };
    if (this.fields) error.fields = this.fields;
    return { error, status: "error", status_message: this.message };
  }
}

export interface ErrorBody {
  error: { type: string; title: string; detail: string; fields?: string[] };
  status: "error";
  status_message: string;
}
