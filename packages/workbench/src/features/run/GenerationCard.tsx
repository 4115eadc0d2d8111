// One generation as it runs and once done: status, step i/N, elapsed time, the latest step
// preview, then the result with what can be done with it (enlarge, compare, continue, download).
import {
  elapsedMs,
  formatSeconds,
  fraction,
  type GenerationProgress,
  statusText,
  truncationNote,
} from "./progress.js";

export interface ResultActions {
  onContinue: (id: string) => void;
  onView: (id: string) => void;
  onToggleCompare: (key: string) => void;
  onCancel: (id: string) => void;
  compared: readonly string[];
  /** whether the generation had an input to compare with (text-to-image has none) */
  hasInput?: (id: string) => boolean;
}

interface Props {
  progress: GenerationProgress;
  now: number;
  label: string;
  actions: ResultActions;
  compact?: boolean;
}

export function GenerationCard({ progress: p, now, label, actions, compact }: Props) {
  const pct = Math.round(fraction(p) * 100);
  const image = p.resultUrl ?? p.preview;
  const done = p.phase === "succeeded";
  const live = p.phase === "queued" || p.phase === "processing";
  const truncated = done ? truncationNote(p) : null;
  const key = `result:${p.id}`;
  return (
    <article
      className={`generation phase-${p.phase}${compact ? " compact" : ""}`}
      aria-label={label}
      data-generation={p.id}
    >
      <div className="frame">
        {image ? (
          done ? (
            <button
              type="button"
              className="image-button"
              onClick={() => actions.onView(p.id)}
              aria-label={`Enlarge: ${label}`}
            >
              <img src={image} alt={`Result: ${label}`} className="result" />
            </button>
          ) : (
            <img src={image} alt={`Preview at step ${p.step}: ${label}`} className="preview" />
          )
        ) : (
          <div className="placeholder" aria-hidden="true" />
        )}
      </div>
      <div className="status-row">
        <progress
          max={100}
          value={pct}
          aria-label={`Progress of ${label}`}
          aria-valuetext={statusText(p)}
          data-step={p.step}
        />
        <span className="status" role="status">
          {statusText(p)}
        </span>
        <span className="elapsed" title="Elapsed since submission">
          {formatSeconds(elapsedMs(p, now))}
        </span>
        {live && compact && (
          <button
            type="button"
            className="danger small"
            aria-label={`Cancel: ${label}`}
            onClick={() => actions.onCancel(p.id)}
          >
            ✕
          </button>
        )}
      </div>
      {done && (
        <div className="result-meta">
          <span>
            seed {p.seed} · {p.width}×{p.height}
            {p.timings ? ` · engine ${formatSeconds(p.timings.inference)}` : ""}
          </span>
          {truncated && (
            <span className="truncated" role="note" title="The text encoder (T5) reads at most 512 tokens">
              {truncated}
            </span>
          )}
          <div className="actions">
            <button
              type="button"
              className={compact ? "secondary small" : undefined}
              aria-label={`Continue editing: ${label}`}
              onClick={() => actions.onContinue(p.id)}
            >
              {compact ? "Continue" : "Continue editing"}
            </button>
            {!compact && (actions.hasInput?.(p.id) ?? true) && (
              <button
                type="button"
                className="secondary"
                aria-label={`Before and after: ${label}`}
                onClick={() => actions.onView(p.id)}
              >
                Before/after
              </button>
            )}
            {p.resultUrl && (
              <a
                className={`button secondary${compact ? " small" : ""}`}
                href={p.resultUrl}
                download
                aria-label={`Download: ${label}`}
              >
                {compact ? "↓" : "Download"}
              </a>
            )}
            <label className="checkbox">
              <input
                type="checkbox"
                aria-label={`Compare: ${label}`}
                checked={actions.compared.includes(key)}
                onChange={() => actions.onToggleCompare(key)}
              />
              Compare
            </label>
          </div>
        </div>
      )}
    </article>
  );
}
