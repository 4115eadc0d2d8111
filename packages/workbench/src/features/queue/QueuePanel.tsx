// Running and pending generations (this caller's, whoever submitted them): live position,
// step i/N and Cancel for each.
import type { QueueRow } from "./queue.js";

export function QueuePanel({
  rows,
  onCancel,
}: {
  rows: readonly QueueRow[];
  onCancel: (id: string) => void;
}) {
  return (
    <section className="panel queue" aria-labelledby="queue-title">
      <h2 id="queue-title">
        Queue <span className="count">{rows.length}</span>
      </h2>
      {rows.length === 0 ? (
        <p className="empty">Nothing running.</p>
      ) : (
        <ol className="queue-list">
          {rows.map((r) => {
            const where =
              r.phase === "processing"
                ? r.totalSteps && r.step > 0
                  ? `Step ${r.step} of ${r.totalSteps}`
                  : "Starting"
                : r.queuePosition === null
                  ? "Queued"
                  : r.queuePosition === 0
                    ? "Runs next"
                    : `${r.queuePosition} ahead`;
            return (
              <li key={r.id} data-generation={r.id} className={`queue-item queue-${r.phase}`}>
                <span className="queue-prompt" title={r.prompt}>
                  {r.prompt}
                </span>
                <span className="queue-where" data-testid="queue-where">
                  {where}
                </span>
                {r.phase === "processing" && r.totalSteps ? (
                  <progress max={r.totalSteps} value={r.step} aria-label={`Progress of “${r.prompt}”`} />
                ) : null}
                <button
                  type="button"
                  className="danger small"
                  onClick={() => onCancel(r.id)}
                  aria-label={`Cancel “${r.prompt}”`}
                >
                  Cancel
                </button>
              </li>
            );
          })}
        </ol>
      )}
    </section>
  );
}
