// Copy as code: the current form as cURL, TypeScript or Python, for sync, async and SSE calls.
import { useEffect, useRef, useState } from "react";
import {
  abbreviate,
  generateCode,
  LANGUAGE_LABELS,
  LANGUAGES,
  type Language,
  MODE_LABELS,
  MODES,
  type Mode,
} from "../../lib/code.js";

interface Props {
  open: boolean;
  onClose: () => void;
  baseUrl: string;
  body: Record<string, unknown>;
  /** the server has API keys on: the code sends the key from KONTEXT_API_KEY */
  auth: boolean;
}

export function CodeDialog({ open, onClose, baseUrl, body, auth }: Props) {
  const ref = useRef<HTMLDialogElement>(null);
  const [language, setLanguage] = useState<Language>("curl");
  const [mode, setMode] = useState<Mode>("sync");
  const [copied, setCopied] = useState<string | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (open && !d.open) d.showModal();
    if (!open && d.open) d.close();
  }, [open]);
  const code = generateCode(language, mode, baseUrl, body, auth);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(code);
      setCopied(`Copied ${LANGUAGE_LABELS[language]} (${MODE_LABELS[mode]}) to the clipboard.`);
    } catch (err) {
      setCopied(`Could not copy: ${(err as Error).message}. Select the code and copy it by hand.`);
    }
  };
  return (
    <dialog ref={ref} className="code-dialog" aria-labelledby="code-title" onClose={onClose}>
      <div className="panel-head">
        <h2 id="code-title">Copy as code</h2>
        <button type="button" className="secondary" onClick={onClose}>
          Close
        </button>
      </div>
      <fieldset className="tabs">
        <legend>Language</legend>
        {LANGUAGES.map((l) => (
          <label key={l} className="tab">
            <input
              type="radio"
              name="code-language"
              checked={language === l}
              onChange={() => setLanguage(l)}
            />
            {LANGUAGE_LABELS[l]}
          </label>
        ))}
      </fieldset>
      <fieldset className="tabs">
        <legend>Call</legend>
        {MODES.map((m) => (
          <label key={m} className="tab">
            <input type="radio" name="code-mode" checked={mode === m} onChange={() => setMode(m)} />
            {MODE_LABELS[m]}
          </label>
        ))}
      </fieldset>
      {auth && (
        <p className="description">
          The code sends your API key from the <code>KONTEXT_API_KEY</code> environment variable.
        </p>
      )}
      <figure className="code-figure">
        <figcaption className="visually-hidden">
          {LANGUAGE_LABELS[language]} code, {MODE_LABELS[mode]}
        </figcaption>
        <pre className="code">
          <code>{abbreviate(code)}</code>
        </pre>
      </figure>
      <div className="actions">
        <button type="button" onClick={copy}>
          Copy
        </button>
        <span role="status">{copied}</span>
      </div>
    </dialog>
  );
}
