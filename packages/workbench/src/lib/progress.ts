// A generation's progress, folded from its event stream (GET /api/ai/queue/:id/events):
// queued (position) → started → progress (step i/N, preview) → completed. Plain state and a
// reducer, so the component only draws it; `now` comes in as an argument for the same reason.

export type Phase = "queued" | "processing" | "succeeded" | "failed" | "cancelled";

export interface GenerationProgress {
  id: string;
  phase: Phase;
  /** generations ahead of this one (0: it runs next); null once it runs */
  queuePosition: number | null;
  step: number;
  totalSteps: number | null;
  /** the latest step preview, a data URI */
  preview: string | null;
  seed: number | null;
  width: number | null;
  height: number | null;
  resultUrl: string | null;
  error: string | null;
  timings: { queue: number; inference: number; encode: number } | null;
  /** the prompt's T5 tokens and how many were used (T5 keeps 512); null when not reported */
  promptTokens: { total: number; used: number; truncated: boolean } | null;
  submittedAt: number;
  startedAt: number | null;
  finishedAt: number | null;
}

export interface ServerEvent {
  event: string;
  data: Record<string, unknown>;
}

export function queued(id: string, now: number, totalSteps: number | null = null): GenerationProgress {
  return {
    id,
    phase: "queued",
    queuePosition: null,
    step: 0,
    totalSteps,
    preview: null,
    seed: null,
    width: null,
    height: null,
    resultUrl: null,
    error: null,
    timings: null,
    promptTokens: null,
    submittedAt: now,
    startedAt: null,
    finishedAt: null,
  };
}

const num = (v: unknown): number | null => (typeof v === "number" && Number.isFinite(v) ? v : null);
const str = (v: unknown): string | null => (typeof v === "string" ? v : null);

export const isFinal = (p: GenerationProgress) =>
  p.phase === "succeeded" || p.phase === "failed" || p.phase === "cancelled";

export function applyEvent(p: GenerationProgress, e: ServerEvent, now: number): GenerationProgress {
  if (isFinal(p)) return p; // a replayed or late event never reopens a finished generation
  const d = e.data;
  switch (e.event) {
    case "media_generation_queued":
      // also sent again when a generation is retried after its engine died
      return { ...p, phase: "queued", queuePosition: num(d.queue_position), step: 0, preview: null };
    case "media_generation_started":
      return {
        ...p,
        phase: "processing",
        queuePosition: null,
        startedAt: now,
        seed: num(d.seed) ?? p.seed,
        width: num(d.width) ?? p.width,
        height: num(d.height) ?? p.height,
        totalSteps: num(d.total_steps) ?? p.totalSteps,
      };
    case "media_generation_progress":
      return {
        ...p,
        phase: "processing",
        queuePosition: null,
        startedAt: p.startedAt ?? now,
        step: Math.max(p.step, num(d.step) ?? 0),
        totalSteps: num(d.total_steps) ?? p.totalSteps,
        preview: str(d.preview) ?? p.preview,
      };
    case "media_generation_completed": {
      const status = d.status;
      const phase: Phase = status === "succeeded" || status === "cancelled" ? status : "failed";
      const done: GenerationProgress = { ...p, phase, finishedAt: now, queuePosition: null };
      if (phase === "succeeded") {
        done.resultUrl = str(d.url);
        done.seed = num(d.seed) ?? p.seed;
        done.width = num(d.width) ?? p.width;
        done.height = num(d.height) ?? p.height;
        done.step = p.totalSteps ?? p.step;
        const t = d.timings as Record<string, unknown> | null | undefined;
        if (t)
          done.timings = {
            queue: num(t.queue) ?? 0,
            inference: num(t.inference) ?? 0,
            encode: num(t.encode) ?? 0,
          };
        const pt = d.prompt_tokens as Record<string, unknown> | null | undefined;
        const total = num(pt?.t5);
        const max = num(pt?.t5_max);
        if (pt && total !== null && max !== null)
          done.promptTokens = { total, used: Math.min(total, max), truncated: pt.truncated === true };
      } else {
        done.error = str(d.error) ?? (phase === "cancelled" ? "cancelled" : "failed");
      }
      return done;
    }
    default:
      return p;
  }
}

/** 0–1: the share of steps done (1 once succeeded). */
export function fraction(p: GenerationProgress): number {
  if (p.phase === "succeeded") return 1;
  return p.totalSteps ? Math.min(1, p.step / p.totalSteps) : 0;
}

export function elapsedMs(p: GenerationProgress, now: number): number {
  return Math.max(0, (p.finishedAt ?? now) - p.submittedAt);
}

export function formatSeconds(ms: number): string {
  return ms < 60_000
    ? `${(ms / 1000).toFixed(1)} s`
    : `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}

/** "prompt truncated: 512 of 731 tokens used" when the text encoder cut the prompt, else null. */
export function truncationNote(p: Pick<GenerationProgress, "promptTokens">): string | null {
  const t = p.promptTokens;
  return t?.truncated ? `prompt truncated: ${t.used} of ${t.total} tokens used` : null;
}

/** One line a person reads: where the generation is. */
export function statusText(p: GenerationProgress): string {
  switch (p.phase) {
    case "queued":
      if (p.queuePosition === null) return "Queued";
      return p.queuePosition === 0 ? "Queued: runs next" : `Queued: ${p.queuePosition} ahead`;
    case "processing":
      return p.step === 0 || !p.totalSteps ? "Starting" : `Step ${p.step} of ${p.totalSteps}`;
    case "succeeded":
      return "Done";
    case "cancelled":
      return "Cancelled";
    case "failed":
      return `Failed: ${p.error ?? "unknown error"}`;
  }
}

/** Every generation the page follows (runs and sweeps), by id. */
export type Tracked = Record<string, GenerationProgress>;

export type TrackAction =
  | { type: "submitted"; ids: readonly string[]; now: number; totalSteps: number | null }
  | { type: "event"; id: string; event: ServerEvent; now: number };

export function trackReducer(state: Tracked, action: TrackAction): Tracked {
  switch (action.type) {
    case "submitted": {
      const next = { ...state };
      for (const id of action.ids) next[id] ??= queued(id, action.now, action.totalSteps);
      return next;
    }
    case "event": {
      const p = state[action.id];
      if (!p) return state;
      const q = applyEvent(p, action.event, action.now);
      return q === p ? state : { ...state, [action.id]: q };
    }
  }
}

/** True while any of `ids` is queued or processing. */
export function anyActive(state: Tracked, ids: readonly string[]): boolean {
  return ids.some((id) => {
    const p = state[id];
    return p !== undefined && !isFinal(p);
  });
}
