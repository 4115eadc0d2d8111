// The edit chain the form's input belongs to: the original, then each step's result, the step
// just run included; any step is one click from being the input again, and a step that other
// edits branched from says so and shows them.
import { AuthImage } from "../../app/AuthImage.js";
import type { ChainStep } from "./chain.js";

interface Props {
  steps: readonly ChainStep[];
  onGoTo: (step: ChainStep) => void;
  onBranch: (id: string) => void;
}

export function ChainStrip({ steps, onGoTo, onBranch }: Props) {
  if (steps.length === 0) return null;
  return (
    <nav className="panel chain" aria-label="Edit chain">
      <h2>Edit chain</h2>
      <ol>
        {steps.map((s) => (
          <li key={s.index} className={s.current ? "current" : undefined}>
            <button
              type="button"
              className="chain-step"
              aria-current={s.current ? "step" : undefined}
              aria-label={`Go back to ${s.label}`}
              title={s.label}
              onClick={() => onGoTo(s)}
            >
              {s.thumbUrl && <AuthImage src={s.thumbUrl} alt="" width={64} height={64} />}
              <span>{s.label}</span>
            </button>
            {s.branches.length > 0 && (
              <details className="branches">
                <summary>
                  {s.branches.length} other {s.branches.length === 1 ? "branch" : "branches"}
                </summary>
                <ul>
                  {s.branches.map((b) => (
                    <li key={b.generation_id}>
                      <button type="button" className="link" onClick={() => onBranch(b.generation_id)}>
                        {b.prompt}
                      </button>
                    </li>
                  ))}
                </ul>
              </details>
            )}
          </li>
        ))}
      </ol>
    </nav>
  );
}
