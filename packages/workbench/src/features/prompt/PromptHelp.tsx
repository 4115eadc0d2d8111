// Prompting tips beside the prompt, and example edits that fill the form.
import { EXAMPLES, type Example, TIPS } from "./examples.js";

export function PromptHelp({ onExample }: { onExample: (e: Example) => void }) {
  return (
    <details className="prompt-help">
      <summary>Prompt tips and examples</summary>
      <ul className="tips">
        {TIPS.map((t) => (
          <li key={t}>{t}</li>
        ))}
      </ul>
      <p className="description">Examples (fill the prompt):</p>
      <div className="examples">
        {EXAMPLES.map((e) => (
          <button
            key={e.title}
            type="button"
            className="secondary chip"
            title={e.prompt}
            onClick={() => onExample(e)}
          >
            {e.title}
          </button>
        ))}
      </div>
    </details>
  );
}
