// The edit chain the form's input belongs to: the original, then each step's result; any
// step is one click from being the input again.
import type { ChainStep } from "../../lib/chain.js";
import { AuthImage } from "../AuthImage.js";

interface Props {
  steps: readonly ChainStep[];
  onGoTo: (step: ChainStep) => void;
}

export function ChainStrip({ steps, onGoTo }: Props) {
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
              onClick={() => onGoTo(s)}
            >
              {s.imageUrl && <AuthImage src={s.imageUrl} alt="" width={64} height={64} />}
              <span>{s.label}</span>
            </button>
          </li>
        ))}
      </ol>
    </nav>
  );
}
