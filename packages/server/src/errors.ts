// The one error catalogue: every error a client sees has a code, an HTTP status, a title and a
// message template. Nothing else builds error strings for responses.

export const ERRORS = {
  // The generic escape hatch, for a refusal composed of several others (the schema validator's).
  invalid_request: { status: 400, title: "Invalid request", template: "{detail}" },
  // Refusals of one part of a request; clients see them as invalid_request (`type`).
  field_invalid: {
    status: 400,
    title: "Invalid request",
    template: "{field}: {rule}, got {got}",
    type: "invalid_request",
  },
  field_repeated: {
    status: 400,
    title: "Invalid request",
    template: "{field}: given {count} times, send it once",
    type: "invalid_request",
  },
  body_not_object: {
    status: 400,
    title: "Invalid request",
    template: "the request body must be a JSON object, got {got}",
    type: "invalid_request",
  },
  form_unreadable: {
    status: 400,
    title: "Invalid request",
    template: "the multipart/form-data body could not be read: {reason}",
    type: "invalid_request",
  },
  url_malformed: {
    status: 400,
    title: "Invalid request",
    template: "the URL {url} has a malformed %-escape (a % must be followed by two hex digits of UTF-8)",
    type: "invalid_request",
  },
  http_unparseable: {
    status: 400,
    title: "Invalid request",
    template: "the HTTP request could not be parsed ({reason})",
    type: "invalid_request",
  },
  body_length_mismatch: {
    status: 400,
    title: "Invalid request",
    template: "the request body has {received} bytes, its Content-Length says {declared}",
    type: "invalid_request",
  },
  body_too_deep: {
    status: 400,
    title: "Invalid request",
    template: "the request body is nested more than {limit} levels deep",
    type: "invalid_request",
  },
  field_too_deep: {
    status: 400,
    title: "Invalid request",
    template: "{field}: nested more than {limit} levels deep",
    type: "invalid_request",
  },
  body_too_many_members: {
    status: 400,
    title: "Invalid request",
    template: "the request body has more than {limit} fields (a request has a few dozen at most)",
    type: "invalid_request",
  },
  field_too_many_members: {
    status: 400,
    title: "Invalid request",
    template: "{field}: more than {limit} list items and fields",
    type: "invalid_request",
  },
  form_too_many_parts: {
    status: 400,
    title: "Invalid request",
    template: "the form has too many parts: {reason}",
    type: "invalid_request",
  },
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
  // The input_image_* entries serve every image field (input_image, input_image_2..4, mask_image):
  // `field` names it (images/ingest.ts; input_image unless given).
  input_image_invalid: {
    status: 400,
    title: "Invalid input image",
    template: "{field}: {reason}",
    defaults: { field: "input_image" },
  },
  input_image_refused: {
    status: 400,
    title: "Input image address refused",
    template: "{field}: {url} resolves to {address}, a {range} address; allow it with KONTEXT_FETCH_ALLOW",
    defaults: { field: "input_image" },
  },
  input_image_fetch_failed: {
    status: 422,
    title: "Input image could not be fetched",
    template: "{field}: fetching {url} failed: {reason}",
    defaults: { field: "input_image" },
  },
  input_image_too_large: {
    status: 413,
    title: "Input image too large",
    template: "{field}: {reason}",
    defaults: { field: "input_image" },
  },
  input_image_undecodable: {
    status: 422,
    title: "Input image could not be decoded",
    template: "{field}: {reason}",
    defaults: { field: "input_image" },
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
  lora_refused: { status: 400, title: "LoRA adapter refused", template: "{reason}" },
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
} as const satisfies Record<string, CatalogueEntry>;

/** `defaults`: template parameters a thrower may leave out. */
interface CatalogueEntry {
  status: number;
  title: string;
  template: string;
  type?: string;
  defaults?: Record<string, string>;
}

/** A catalogue entry's name (what the code throws). */
export type ErrorEntry = keyof typeof ERRORS;
/** The code clients see (`error.type`): an entry's name, or the `type` it is answered as. */
export type ErrorCode = {
  [K in ErrorEntry]: (typeof ERRORS)[K] extends { type: infer T extends ErrorEntry } ? T : K;
}[ErrorEntry];

const fill = (template: string, params: Record<string, string | number>) =>
  template.replace(/\{(\w+)\}/g, (_, k: string) => String(params[k] ?? `{${k}}`));

/** An error answered to the client in the hosted error envelope. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly headers: Record<string, string>;
  /** The code clients see (`error.type`). */
  readonly code: ErrorCode;
  constructor(
    readonly entry: ErrorEntry,
    readonly params: Record<string, string | number> = {},
    extra: { headers?: Record<string, string>; fields?: string[] } = {},
  ) {
    const e: CatalogueEntry = ERRORS[entry];
    super(fill(e.template, { ...e.defaults, ...params }));
    this.code = (e.type ?? entry) as ErrorCode;
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

/**
 * An image error (the input_image_* entries) as it applies to one image field of the request:
 * the same code and status, the message and `error.fields` naming the field. Other errors pass.
 */
export function forImageField(err: unknown, field: string): unknown {
  if (!(err instanceof ApiError) || !err.entry.startsWith("input_image_")) return err;
  return new ApiError(err.entry, { ...err.params, field }, { headers: err.headers, fields: [field] });
}

/**
 * 400 invalid_request refusing one field (or header): "{field}: {rule}, got {got}", `got` as the
 * caller shows it (JSON, a count). The field is named in `error.fields` unless `named` is false.
 */
export function fieldInvalid(field: string, rule: string, got: string | number, named = true): ApiError {
  return new ApiError("field_invalid", { field, rule, got }, named ? { fields: [field] } : {});
}

// Why a generation failed (or was cancelled): its `error_code` and the message template of its
// `error_message`. The HTTP entries above are what a request is answered; these are what a
// generation's record says once it has ended (GET /api/ai/queue/:id, webhooks, the history).
// `answer` is the HTTP entry a request waiting for it (the sync edit) gets: generation_failed
// unless named.
export const GENERATION_ERRORS = {
  cancelled: { title: "Cancelled", template: "cancelled by the client" },
  worker_lost: {
    title: "Worker lost",
    template: "the worker running it stopped {attempts} time(s) during the run, so it is not retried again",
  },
  engine_crashed: {
    title: "Engine crashed",
    template: "{reason}; it was already retried {retries} time(s), so it is not retried again",
  },
  encode_failed: { title: "Encoding failed", template: "encoding the result failed: {reason}" },
  storage_full: { title: "Storage full", template: "storing the result failed: {reason}" },
  input_missing: { title: "Input missing", template: "{reason}" },
  input_image_undecodable: {
    title: "Input image could not be decoded",
    template: "the stored input image could not be decoded: {reason}",
  },
  content_flagged: { title: "Content flagged", template: "{reason}", answer: "content_flagged" },
  lora_refused: { title: "LoRA adapter refused", template: "{reason}", answer: "lora_refused" },
  shutting_down: { title: "Shutting down", template: "{reason}" },
  internal: { title: "Internal error", template: "{reason}" },
} as const satisfies Record<string, { title: string; template: string; answer?: ErrorEntry }>;

export type GenerationErrorCode = keyof typeof GENERATION_ERRORS;

/** A generation's error_code and error_message, the message filled from the catalogue's template. */
export function generationError(
  code: GenerationErrorCode,
  params: Record<string, string | number> = {},
): { code: GenerationErrorCode; message: string } {
  return { code, message: fill(GENERATION_ERRORS[code].template, params) };
}

/**
 * The HTTP error for a request that waited for a generation which did not succeed (409
 * generation_cancelled, or the failure's `answer`), or null when it did not fail.
 */
export function generationFailure(g: {
  id: string;
  status: string;
  errorCode: string | null;
  errorMessage: string | null;
}): ApiError | null {
  if (g.status === "cancelled") return new ApiError("generation_cancelled", { id: g.id });
  if (g.status !== "failed") return null;
  const entries: Record<string, { title: string; answer?: ErrorEntry }> = GENERATION_ERRORS;
  const entry = Object.hasOwn(entries, g.errorCode ?? "") ? entries[g.errorCode as string] : undefined;
  return new ApiError(entry?.answer ?? "generation_failed", {
    reason: `generation ${g.id} failed: ${g.errorMessage ?? "unknown error"}`,
  });
}

/**
 * The engine's codes (engine/kontext_engine/errors.py `ErrorCode`, and the fatal codes of
 * __main__.py), each with the generation error_code a client is told. The engine refusing a job
 * the gateway built is not the client's fault, so the protocol codes become `internal`. A test
 * checks this table against the Python files.
 */
export const ENGINE_ERRORS = {
  malformed_message: "internal",
  unsupported_version: "internal",
  unknown_type: "internal",
  invalid_request: "internal",
  input_missing: "input_missing",
  duplicate_job: "internal",
  cancelled: "cancelled",
  shutting_down: "shutting_down",
  content_flagged: "content_flagged",
  // a requested adapter is missing, unreadable or matches too few layers (engine/kontext_engine/lora.py)
  lora_not_found: "lora_refused",
  lora_invalid: "lora_refused",
  lora_unmatched: "lora_refused",
  internal: "internal",
  // the gateway's own, for an engine process that exited mid-job
  engine_crashed: "engine_crashed",
} as const satisfies Record<string, GenerationErrorCode>;

/** The codes of the engine's `fatal` message (it could not start); shown by /healthz, not per job. */
export const ENGINE_FATAL_CODES = ["config_invalid", "device_unavailable", "load_failed"] as const;
