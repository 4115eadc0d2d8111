// A generation's progress, folded from its event stream (GET /api/ai/queue/:id/events):
// queued (position, counting down) → started → progress (step i/N, preview) → completed. Plain
// state and a reducer over @kontext/client's typed events; `now` comes in as an argument.
import type { Generation, KontextEvent } from "@kontext/client";

export type Phase = "queued" | "processing" | "succeeded" | "failed" | "cancelled";

export interface GenerationProgress {
  id: string;
  phase: Phase;
  /** generations ahead of this one (0: it runs next); null once it runs or while unknown */
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

/** An event as the page folds it: the client's typed events (the SSE id does not matter here). */
export type ServerEvent = KontextEvent;

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

/** A generation as GET /api/ai/queue/:id has it now (after a reload: where to pick it up). */
export function fromGeneration(g: Generation, now: number): GenerationProgress {
  const p = queued(g.generation_id, now, g.total_steps || null);
  const submitted = Date.parse(g.enqueued_at);
  p.submittedAt = Number.isFinite(submitted) ? submitted : now;
  p.seed = g.seed;
  p.width = g.width;
  p.height = g.height;
  if (g.status === "queued") return { ...p, queuePosition: g.queue_position };
  const started = g.started_at ? Date.parse(g.started_at) : Number.NaN;
  p.startedAt = Number.isFinite(started) ? started : null;
  if (g.status === "processing") return { ...p, phase: "processing", step: g.step };
  const completed = g.completed_at ? Date.parse(g.completed_at) : Number.NaN;
  p.finishedAt = Number.isFinite(completed) ? completed : now;
  if (g.status === "succeeded")
    return { ...p, phase: "succeeded", step: p.totalSteps ?? g.step, resultUrl: g.result_url };
  return { ...p, phase: g.status, step: g.step, error: g.error_message ?? g.status };
}

export const isFinal = (p: GenerationProgress) =>
  p.phase === "succeeded" || p.phase === "failed" || p.phase === "cancelled";

export function applyEvent(p: GenerationProgress, e: ServerEvent, now: number): GenerationProgress {
  if (isFinal(p)) return p; // a replayed or late event never reopens a finished generation
  switch (e.event) {
    case "media_generation_queued": {
      const d = e.data;
      const retry = d.retry === true; // queued again after its engine died: starts over
      if (!retry && p.phase === "processing") return p; // a stale position from before it started
      const pos = d.queue_position;
      // Positions only count down: a late replay or poll never moves one back.
      if (!retry && p.queuePosition !== null && (pos === null || pos > p.queuePosition)) return p;
      return { ...p, phase: "queued", queuePosition: pos, step: 0, preview: retry ? null : p.preview };
    }
    case "media_generation_started": {
      const d = e.data;
      return {
        ...p,
        phase: "processing",
        queuePosition: null,
        startedAt: now,
        seed: d.seed ?? p.seed,
        width: d.width ?? p.width,
        height: d.height ?? p.height,
        totalSteps: d.total_steps ?? p.totalSteps,
      };
    }
    case "media_generation_progress": {
      const d = e.data;
      return {
        ...p,
        phase: "processing",
        queuePosition: null,
        startedAt: p.startedAt ?? now,
        step: Math.max(p.step, d.step),
        totalSteps: d.total_steps ?? p.totalSteps,
        preview: d.preview ?? p.preview,
      };
    }
    case "media_generation_completed": {
      const d = e.data;
      const done: GenerationProgress = { ...p, phase: d.status, finishedAt: now, queuePosition: null };
      if (d.status !== "succeeded") {
        done.error = d.error ?? d.status;
        return done;
      }
      done.resultUrl = d.url ?? null;
      done.seed = d.seed ?? p.seed;
      done.width = d.width ?? p.width;
      done.height = d.height ?? p.height;
      done.step = p.totalSteps ?? p.step;
      if (d.timings) done.timings = { ...d.timings };
      const pt = d.prompt_tokens;
      if (pt) done.promptTokens = { total: pt.t5, used: Math.min(pt.t5, pt.t5_max), truncated: pt.truncated };
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
export type Tracked = Readonly<Record<string, GenerationProgress>>;

/** True while any of `ids` is queued or processing. */
export function anyActive(state: Tracked, ids: readonly (string | undefined)[]): boolean {
  return ids.some((id) => {
    const p = id ? state[id] : undefined;
    return p !== undefined && !isFinal(p);
  });
}
