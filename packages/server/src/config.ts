// One typed configuration: defaults, then an optional JSON file (KONTEXT_CONFIG), then the
// environment. Every setting is listed once in SETTINGS with its env name and description;
// README's configuration table is checked against this list by a test.
import { readFileSync } from "node:fs";
import path from "node:path";

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** Weights directory; null means "generate and use the tiny demo model". */
  modelDir: string | null;
  /** One engine per entry; an empty list runs one engine on the engine's default device. */
  devices: string[];
  python: string | null;
  safetyCheckerDir: string | null;
  safetyChecker: boolean;
  precision: string;
  /** auto: on with CUDA, off on the CPU (the engine decides). */
  compile: boolean | "auto";
  warmupBuckets: string;
  lowMemory: boolean;
  /** LoRA adapters (.safetensors) requests may name; null: none. */
  loraDir: string | null;
  /** Cap on the condition images' tokens together (the engine's --max-condition-tokens). */
  maxConditionTokens: number;
  maxQueue: number;
  resultTtlHours: number;
  publicUrl: string | null;
  /** Origins (scheme://host[:port]) whose pages may call the API from the browser (CORS). */
  corsOrigins: string[];
  bodyLimitBytes: number;
  maxInputPixels: number;
  fetchTimeoutMs: number;
  fetchMaxBytes: number;
  fetchMaxRedirects: number;
  fetchAllow: string[];
  engineReadyTimeoutS: number;
  engineRestartDelayMs: number;
  sseKeepAliveS: number;
  logLevel: string;
  apiKeys: string[];
  /** null: keys are required exactly when `host` is not a loopback address. */
  requireApiKey: boolean | null;
  keySubmitsPerMinute: number;
  keyMaxActiveJobs: number;
  webhookSecret: string | null;
  storageCapMb: number;
  shutdownGraceS: number;
  /** all: gateway and local engines; gateway: HTTP only; worker: engines pulling jobs from Redis. */
  role: "all" | "gateway" | "worker";
  /** Set: the queue is BullMQ on this Redis (scale-out); null: the embedded SQLite queue. */
  redisUrl: string | null;
  /** Where inputs and results live (a path every machine mounts); null: DATA_DIR. */
  sharedDir: string | null;
  /** Set: inputs and results live in this S3-compatible bucket instead of a path (with Redis). */
  s3Bucket: string | null;
  s3Endpoint: string | null;
  s3Region: string;
  s3Prefix: string | null;
  jobLockS: number;
  /** A worker's GET /metrics and /healthz listener (on `host`); 0: none. */
  metricsPort: number;
}

type Kind = "string" | "int" | "bool" | "autoBool" | "list" | "path";
interface Setting {
  key: keyof Config;
  env: string;
  kind: Kind;
  default: Config[keyof Config];
  nullable?: boolean;
  min?: number;
  /** For strings: the values allowed. */
  choices?: readonly string[];
  description: string;
}

export const SETTINGS: readonly Setting[] = [
  { key: "host", env: "HOST", kind: "string", default: "127.0.0.1", description: "Address to listen on." },
  { key: "port", env: "PORT", kind: "int", default: 8080, min: 0, description: "Port to listen on." },
  {
    key: "dataDir",
    env: "KONTEXT_DATA_DIR",
    kind: "path",
    default: "./data",
    description: "Jobs database, input images, results and the generated tiny model live here.",
  },
  {
    key: "modelDir",
    env: "KONTEXT_MODEL_DIR",
    kind: "path",
    default: null,
    nullable: true,
    description:
      "FLUX.1 Kontext [dev] weights (Hugging Face layout). Unset: the tiny demo model in DATA_DIR/models/flux-kontext-tiny (its output is noise).",
  },
  {
    key: "devices",
    env: "KONTEXT_DEVICES",
    kind: "list",
    default: [],
    description:
      "Comma-separated devices, one engine each (e.g. `cuda:0,cuda:1`). Unset: one engine on its default device.",
  },
  {
    key: "python",
    env: "KONTEXT_PYTHON",
    kind: "path",
    default: null,
    nullable: true,
    description:
      "Python interpreter of the engine's environment. Unset: the one scripts/python-env.sh prints.",
  },
  {
    key: "safetyCheckerDir",
    env: "KONTEXT_SAFETY_CHECKER_DIR",
    kind: "path",
    default: null,
    nullable: true,
    description: "Safety classifier directory. Unset: the model directory's `safety_checker/`.",
  },
  {
    key: "safetyChecker",
    env: "KONTEXT_SAFETY_CHECKER",
    kind: "bool",
    default: true,
    description: "`false` starts the engine without a safety checker (`--no-safety-checker`).",
  },
  {
    key: "precision",
    env: "KONTEXT_PRECISION",
    kind: "string",
    default: "auto",
    choices: ["auto", "fp32", "bf16", "fp8", "fp8-weights"],
    description:
      "Transformer precision: `auto` is fp8 (e4m3 linear layers) on GPUs with FP8 tensor cores (Ada, Hopper); on other GPUs bf16 where the model fits in bf16 (40 GB and up), else fp8-weights (e.g. a 24 GB RTX 3090 or A10G); fp32 on CPU. `fp8-weights`: e4m3 weights with bf16 compute on any CUDA GPU, the whole model in 17.3 GB (24 GB cards). Both FP8 modes keep T5's weights in e4m3 too. A mode that cannot fit the GPU stops the engine at start, naming a setting that would (docs/performance.md has the memory per mode). `/healthz` reports what runs.",
  },
  {
    key: "compile",
    env: "KONTEXT_COMPILE",
    kind: "autoBool",
    default: "auto",
    description:
      "Compile the transformer blocks with torch.compile: `auto` is on with a CUDA GPU and off on the CPU; `true` or `false` to choose. The first start compiles during warm-up (the engine logs each run); kernels are kept in DATA_DIR/compile-cache and reused by later starts.",
  },
  {
    key: "warmupBuckets",
    env: "KONTEXT_WARMUP_BUCKETS",
    kind: "string",
    default: "auto",
    description:
      "Output sizes run (at batch 1 and 2) before the engine says ready, so compilation happens at start and never inside a request: `auto` (1024x1024 when compiled; every size shares its kernels), `none`, `all` (the 17 trained sizes) or `WxH,…` (e.g. `1024x1024,1392x752`).",
  },
  {
    key: "lowMemory",
    env: "KONTEXT_LOW_MEMORY",
    kind: "bool",
    default: false,
    description:
      "`true` for 16 GB cards: the transformer, CLIP and the VAE stay on the GPU, T5's blocks stay in pinned host memory and stream in while a new prompt is encoded, and the VAE decodes one generation at a time; with fp8 or fp8-weights about 14.3 GB at peak. A new prompt costs one pass of T5's weights over PCIe.",
  },
  {
    key: "loraDir",
    env: "KONTEXT_LORA_DIR",
    kind: "path",
    default: null,
    nullable: true,
    description:
      "A directory of LoRA adapters (`.safetensors`, subfolders allowed) that requests name in `loras` (relative, without `.safetensors`); nothing outside it is read. GET /api/ai/models/flux-kontext-dev/loras lists it. Unset: no LoRAs.",
  },
  {
    key: "maxConditionTokens",
    env: "KONTEXT_MAX_CONDITION_TOKENS",
    kind: "int",
    default: 12288,
    min: 4150,
    description:
      "Cap on the condition images' tokens together (input_image and references; about 4096 tokens per 1 MP image; at least 4150, the largest bucket; more references than fit are scaled down, not refused). Attention grows with the square of the sequence: each 4096 tokens more makes a step markedly slower and needs more memory (docs/references.md has the figures).",
  },
  {
    key: "maxQueue",
    env: "KONTEXT_MAX_QUEUE",
    kind: "int",
    default: 100,
    min: 1,
    description: "Queued generations allowed at once; beyond it submissions get 429 with Retry-After.",
  },
  {
    key: "resultTtlHours",
    env: "KONTEXT_RESULT_TTL_HOURS",
    kind: "int",
    default: 168,
    min: 1,
    description:
      "Input and result files of finished generations are kept this long (default 7 days); the generations stay listed, without their files.",
  },
  {
    key: "publicUrl",
    env: "KONTEXT_PUBLIC_URL",
    kind: "string",
    default: null,
    nullable: true,
    description:
      "Base of result URLs (e.g. `https://kontext.example.com`). Unset: taken from the request's Host. With keys off, requests must name this host, a loopback name or an IP address in `Host` (DNS rebinding).",
  },
  {
    key: "corsOrigins",
    env: "KONTEXT_CORS_ORIGINS",
    kind: "list",
    default: [],
    description:
      "Origins of other web pages allowed to call the API from a browser (comma-separated, e.g. `https://app.example.com,http://localhost:5173`): CORS is on for them. Unset: requests a browser marks as cross-site (`Origin`, `Sec-Fetch-Site`) get 403.",
  },
  {
    key: "bodyLimitBytes",
    env: "KONTEXT_BODY_LIMIT_BYTES",
    kind: "int",
    default: 32 * 1024 * 1024,
    min: 1024,
    description: "Largest request body; larger ones get 413.",
  },
  {
    key: "maxInputPixels",
    env: "KONTEXT_MAX_INPUT_PIXELS",
    kind: "int",
    default: 40_000_000,
    min: 1,
    description: "Largest input image (width × height) decoded; guards against decompression bombs.",
  },
  {
    key: "fetchTimeoutMs",
    env: "KONTEXT_FETCH_TIMEOUT_MS",
    kind: "int",
    default: 15_000,
    min: 1,
    description: "Time limit for fetching an `input_image` URL, redirects included.",
  },
  {
    key: "fetchMaxBytes",
    env: "KONTEXT_FETCH_MAX_BYTES",
    kind: "int",
    default: 25 * 1024 * 1024,
    min: 1,
    description: "Largest image fetched from a URL.",
  },
  {
    key: "fetchMaxRedirects",
    env: "KONTEXT_FETCH_MAX_REDIRECTS",
    kind: "int",
    default: 5,
    min: 0,
    description: "Redirects followed when fetching an `input_image` URL.",
  },
  {
    key: "fetchAllow",
    env: "KONTEXT_FETCH_ALLOW",
    kind: "list",
    default: [],
    description:
      "Private, loopback or link-local addresses that URLs may reach anyway: comma-separated IPs or CIDRs (e.g. `127.0.0.1,10.0.0.0/8`). Unset: none.",
  },
  {
    key: "engineReadyTimeoutS",
    env: "KONTEXT_ENGINE_READY_TIMEOUT_S",
    kind: "int",
    default: 1800,
    min: 1,
    description: "How long an engine may take to load the model before it is restarted.",
  },
  {
    key: "engineRestartDelayMs",
    env: "KONTEXT_ENGINE_RESTART_DELAY_MS",
    kind: "int",
    default: 1000,
    min: 0,
    description: "Pause before restarting a dead engine (doubles after each failed start, up to 60 s).",
  },
  {
    key: "sseKeepAliveS",
    env: "KONTEXT_SSE_KEEPALIVE_S",
    kind: "int",
    default: 15,
    min: 1,
    description: "Seconds between `: keep-alive` comments on event streams.",
  },
  {
    key: "logLevel",
    env: "KONTEXT_LOG_LEVEL",
    kind: "string",
    default: "info",
    description: "fatal, error, warn, info, debug or trace.",
  },
  {
    key: "apiKeys",
    env: "KONTEXT_API_KEYS",
    kind: "list",
    default: [],
    description:
      "Comma-separated API keys clients send as `Authorization: Bearer <key>`, each at least 16 characters; an entry may be `sha256:<hex>` (the key's SHA-256, 64 hex digits) so the key itself is not written down. A shorter key or a malformed `sha256:` entry stops the server at start (naming the entry by position). Held hashed in memory.",
  },
  {
    key: "requireApiKey",
    env: "KONTEXT_REQUIRE_API_KEY",
    kind: "bool",
    default: null,
    nullable: true,
    description:
      "Unset: keys are required when HOST is not a loopback address (the server refuses to start without any), and whenever keys are configured. `false` turns keys off even then (e.g. behind a proxy that authenticates).",
  },
  {
    key: "keySubmitsPerMinute",
    env: "KONTEXT_KEY_SUBMITS_PER_MINUTE",
    kind: "int",
    default: 60,
    min: 1,
    description: "Submissions one API key may make per minute; beyond it 429 with Retry-After.",
  },
  {
    key: "keyMaxActiveJobs",
    env: "KONTEXT_KEY_MAX_ACTIVE_JOBS",
    kind: "int",
    default: 20,
    min: 1,
    description:
      "Generations one API key may have queued or processing at once; beyond it 429 with Retry-After.",
  },
  {
    key: "webhookSecret",
    env: "KONTEXT_WEBHOOK_SECRET",
    kind: "string",
    default: null,
    nullable: true,
    description:
      "Secret webhooks are signed with (Standard Webhooks: `whsec_` + base64, or any other string used as-is). Unset: requests with a `webhook` are refused.",
  },
  {
    key: "storageCapMb",
    env: "KONTEXT_STORAGE_CAP_MB",
    kind: "int",
    default: 10240,
    min: 1,
    description:
      "Disk the input and result files may take; beyond it the oldest finished generations' files are deleted first, and submissions get 507 while nothing can be freed.",
  },
  {
    key: "shutdownGraceS",
    env: "KONTEXT_SHUTDOWN_GRACE_S",
    kind: "int",
    default: 60,
    min: 0,
    description:
      "On SIGTERM: seconds running generations get to finish before the engines stop; the rest run again after the restart.",
  },
  {
    key: "role",
    env: "KONTEXT_ROLE",
    kind: "string",
    default: "all",
    choices: ["all", "gateway", "worker"],
    description:
      "`all`: the HTTP API and local engines in one process. `gateway`: the HTTP API only, `worker`: engines that pull jobs (both need KONTEXT_REDIS_URL). See docs/deploy.md.",
  },
  {
    key: "redisUrl",
    env: "KONTEXT_REDIS_URL",
    kind: "string",
    default: null,
    nullable: true,
    description:
      "Redis (e.g. `redis://10.0.0.5:6379/0`) that gateways and workers share: the queue is BullMQ on it, and generations and their events live there. Unset: the embedded SQLite queue. Run Redis with AOF and `maxmemory-policy noeviction`.",
  },
  {
    key: "sharedDir",
    env: "KONTEXT_SHARED_DIR",
    kind: "path",
    default: null,
    nullable: true,
    description:
      "Input and result files, on a path every gateway and worker mounts (NFS, CephFS, …) when scaled out. Unset: DATA_DIR.",
  },
  {
    key: "s3Bucket",
    env: "KONTEXT_S3_BUCKET",
    kind: "string",
    default: null,
    nullable: true,
    description:
      "With KONTEXT_REDIS_URL: input and result files live in this S3-compatible bucket (AWS S3, MinIO, Ceph, R2, …) instead of KONTEXT_SHARED_DIR; credentials from `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` (or the AWS SDK's other sources). Each machine keeps a local copy of the inputs its engines read (at most 1 GiB).",
  },
  {
    key: "s3Endpoint",
    env: "KONTEXT_S3_ENDPOINT",
    kind: "string",
    default: null,
    nullable: true,
    description:
      "The S3-compatible service's URL (e.g. `http://10.0.0.9:9000`; path-style requests). Unset: AWS S3.",
  },
  {
    key: "s3Region",
    env: "KONTEXT_S3_REGION",
    kind: "string",
    default: "us-east-1",
    description: "The bucket's region.",
  },
  {
    key: "s3Prefix",
    env: "KONTEXT_S3_PREFIX",
    kind: "string",
    default: null,
    nullable: true,
    description:
      "Prepended to every object name (e.g. `kontext/`), so deployments can share a bucket. Unset: none.",
  },
  {
    key: "jobLockS",
    env: "KONTEXT_JOB_LOCK_S",
    kind: "int",
    default: 30,
    min: 1,
    description:
      "With Redis: a worker renews its claim on a running job within this time; a job whose worker died runs again on another worker after at most twice this.",
  },
  {
    key: "metricsPort",
    env: "KONTEXT_METRICS_PORT",
    kind: "int",
    default: 9464,
    min: 0,
    description:
      "With KONTEXT_ROLE=worker (which has no HTTP API): the port, on HOST, of the worker's own GET /metrics (Prometheus: the generations it ran, its engines) and GET /healthz. `0`: none. Gateways serve both on PORT.",
  },
];

export class ConfigError extends Error {}

/** The shortest API key accepted: a short key can be guessed. */
export const MIN_API_KEY_LENGTH = 16;

/**
 * Refuses API key entries that cannot be what was meant: `sha256:` not followed by 64 hex digits
 * (it would silently become a literal key), and keys shorter than MIN_API_KEY_LENGTH. The entry is
 * named by its position, never by its value.
 */
export function checkApiKeyEntries(entries: readonly string[]): void {
  entries.forEach((entry, i) => {
    const where = `KONTEXT_API_KEYS entry ${i + 1}`;
    if (/^sha256:/i.test(entry)) {
      if (!/^sha256:[0-9a-f]{64}$/i.test(entry)) {
        throw new ConfigError(
          `${where} starts with sha256: but is not sha256: followed by the 64 hex digits of the key's SHA-256`,
        );
      }
    } else if (entry.length < MIN_API_KEY_LENGTH) {
      throw new ConfigError(
        `${where} is shorter than ${MIN_API_KEY_LENGTH} characters; use a long random key (e.g. openssl rand -hex 24)`,
      );
    }
  });
}

function parseValue(s: Setting, raw: unknown, origin: string): unknown {
  if (raw === null || raw === "") {
    if (s.nullable) return null;
    if (s.kind === "list") return [];
    throw new ConfigError(`${origin}: ${s.env} must not be empty`);
  }
  switch (s.kind) {
    case "string":
    case "path": {
      const v = String(raw);
      if (s.choices && !s.choices.includes(v)) {
        throw new ConfigError(
          `${origin}: ${s.env} must be one of ${s.choices.join(", ")}, got ${JSON.stringify(raw)}`,
        );
      }
      return v;
    }
    case "int": {
      const n = typeof raw === "number" ? raw : Number(String(raw).trim());
      if (!Number.isInteger(n) || n < (s.min ?? Number.NEGATIVE_INFINITY)) {
        throw new ConfigError(
          `${origin}: ${s.env} must be an integer ≥ ${s.min ?? "-∞"}, got ${JSON.stringify(raw)}`,
        );
      }
      return n;
    }
    case "autoBool":
    case "bool": {
      if (s.kind === "autoBool" && String(raw).toLowerCase() === "auto") return "auto";
      if (typeof raw === "boolean") return raw;
      const v = String(raw).toLowerCase();
      if (["1", "true", "yes", "on"].includes(v)) return true;
      if (["0", "false", "no", "off"].includes(v)) return false;
      const allowed = s.kind === "autoBool" ? "auto, true or false" : "true or false";
      throw new ConfigError(`${origin}: ${s.env} must be ${allowed}, got ${JSON.stringify(raw)}`);
    }
    case "list":
      if (Array.isArray(raw)) return raw.map(String);
      return String(raw)
        .split(",")
        .map((x) => x.trim())
        .filter((x) => x.length > 0);
  }
}

/** Builds the config from defaults, the optional KONTEXT_CONFIG file and the environment. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): Config {
  const out: Record<string, unknown> = {};
  for (const s of SETTINGS) out[s.key] = s.default;
  const file = env.KONTEXT_CONFIG;
  if (file) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(readFileSync(file, "utf8"));
    } catch (err) {
      throw new ConfigError(`KONTEXT_CONFIG ${file}: ${(err as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new ConfigError(`KONTEXT_CONFIG ${file}: must hold a JSON object`);
    }
    for (const [k, v] of Object.entries(parsed)) {
      const s = SETTINGS.find((x) => x.key === k);
      if (!s) throw new ConfigError(`KONTEXT_CONFIG ${file}: unknown setting "${k}"`);
      out[k] = parseValue(s, v, `KONTEXT_CONFIG ${file}`);
    }
  }
  for (const s of SETTINGS) {
    const v = env[s.env];
    if (v !== undefined) out[s.key] = parseValue(s, v, "environment");
  }
  for (const s of SETTINGS) {
    if (s.kind === "path" && typeof out[s.key] === "string")
      out[s.key] = path.resolve(cwd, out[s.key] as string);
  }
  checkApiKeyEntries(out.apiKeys as string[]);
  return out as unknown as Config;
}

/** The defaults alone, for tests: every setting as if the environment were empty. */
export function defaultConfig(overrides: Partial<Config> = {}): Config {
  return { ...loadConfig({}), ...overrides };
}
