// Copy as code: the current form as cURL, TypeScript or Python, for sync, async and SSE calls,
// shown exactly as copied (runnable as shown: the image is read from a file or a URL).
import { useEffect, useRef, useState } from "react";
import { useStore } from "../../app/store.js";
import type { Workbench } from "../workspace/workbench.js";
import { copyText } from "./clipboard.js";
import {
  EDIT_ENDPOINT,
  GENERATE_ENDPOINT,
  generateCode,
  LANGUAGE_LABELS,
  LANGUAGES,
  type Language,
  MODE_LABELS,
  MODES,
  type Mode,
} from "./code.js";

/** The painted mask in copied code: a file, saved from the painter (Download mask). */
const MASK_FILE = {
  field: "mask_image",
  image: {
    kind: "file" as const,
    name: "mask.png",
    type: "image/png",
    note: "Reads mask.png from the current directory: the painted mask, saved with Download mask in the mask painter.",
  },
};

export function CodeDialog({ wb }: { wb: Workbench }) {
  const { codeOpen } = useStore(wb);
  const form = useStore(wb.parts.form);
  const { hasKey } = useStore(wb.parts.session);
  const mask = useStore(wb.parts.mask);
  const ref = useRef<HTMLDialogElement>(null);
  const [language, setLanguage] = useState<Language>("curl");
  const [mode, setMode] = useState<Mode>("sync");
  const [copied, setCopied] = useState<string | null>(null);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (codeOpen && !d.open) d.showModal();
    if (!codeOpen && d.open) d.close();
    setCopied(null);
  }, [codeOpen]);
  // Only while open: the code is built from the form's values, never from image bytes.
  const code = codeOpen
    ? generateCode({
        language,
        mode,
        baseUrl: window.location.origin,
        body: wb.parts.form.plainBody(),
        image: wb.parts.form.codeImage(window.location.origin),
        more: [
          ...wb.parts.form.codeRefs(window.location.origin),
          ...(mask.painted && wb.parts.form.has("mask_image") ? [MASK_FILE] : []),
        ],
        auth: hasKey,
        endpoint: form.mode === "generate" ? GENERATE_ENDPOINT : EDIT_ENDPOINT,
      })
    : "";
  const copy = async () => {
    try {
      await copyText(code, ref.current ?? document.body);
      setCopied(`Copied ${LANGUAGE_LABELS[language]} (${MODE_LABELS[mode]}).`);
    } catch (err) {
      setCopied(
        `Could not copy (${(err as Error).message}): select the code below and copy it by hand; it is complete.`,
      );
    }
  };
  return (
    <dialog ref={ref} className="code-dialog" aria-labelledby="code-title" onClose={() => wb.openCode(false)}>
      <div className="panel-head">
        <h2 id="code-title">Copy as code</h2>
        <button type="button" className="secondary" onClick={() => wb.openCode(false)}>
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
      {hasKey && (
        <p className="description">
          The code sends your API key from the <code>KONTEXT_API_KEY</code> environment variable.
        </p>
      )}
      <figure className="code-figure">
        <figcaption className="visually-hidden">
          {LANGUAGE_LABELS[language]} code, {MODE_LABELS[mode]}
        </figcaption>
        <pre className="code">
          <code>{code}</code>
        </pre>
      </figure>
      <div className="actions">
        <button type="button" onClick={() => void copy()}>
          Copy
        </button>
        <span role="status">{copied}</span>
      </div>
    </dialog>
  );
}
