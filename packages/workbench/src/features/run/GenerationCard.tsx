// One generation as it runs and once done: status, step i/N, elapsed time, the latest step
// preview, then the result with what can be done with it.
import {
  elapsedMs,
  formatSeconds,
  fraction,
  type GenerationProgress,
  statusText,
  truncationNote,
} from "../../lib/progress.js";

export interface ResultActions {
  onContinue: (id: string) => void;
  onToggleCompare: (id: string) => void;
  compared: readonly string[];
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
  const truncated = done ? truncationNote(p) : null;
  return (
    <article
      className={`generation phase-${p.phase}${compact ? " compact" : ""}`}
      aria-label={label}
      data-generation={p.id}
    >
      <div className="frame">
        {image ? (
          <img
            src={image}
            alt={done ? `Result: ${label}` : `Preview at step ${p.step}: ${label}`}
            className={done ? "result" : "preview"}
          />
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
          {!compact && (
            <div className="actions">
              <button
                type="button"
                aria-label={`Continue editing: ${label}`}
                onClick={() => actions.onContinue(p.id)}
              >
                Continue editing
              </button>
              {p.resultUrl && (
                <a className="button secondary" href={p.resultUrl} download aria-label={`Download: ${label}`}>
                  Download
                </a>
              )}
              <label className="checkbox">
                <input
                  type="checkbox"
                  aria-label={`Compare: ${label}`}
                  checked={actions.compared.includes(p.id)}
                  onChange={() => actions.onToggleCompare(p.id)}
                />
                Compare
              </label>
            </div>
          )}
        </div>
      )}
    </article>
  );
}
