// The LoRA picker: the server's listing (format and matched layers; files it refuses greyed out
// with their reason), up to the schema's limit of chosen adapters each with a scale slider, and
// what to do when the folder is empty. Its value is the form's `loras` field.
import { type ReactNode, useEffect, useState } from "react";
import { useStore } from "../../app/store.js";
import { controlId } from "../form/FieldControl.js";
import type { Field } from "../form/schemaForm.js";
import {
  addLora,
  type ChosenLora,
  chosenOf,
  clampScale,
  type Loras,
  matchLabel,
  refusalOf,
  removeLora,
  type ScaleRule,
  scaleRule,
  setScale,
  sizeLabel,
} from "./loras.js";

interface Props {
  field: Field;
  loras: Loras;
  value: unknown;
  error: string | undefined;
  onChange: (value: ChosenLora[]) => void;
}

export function LoraPicker({ field, loras, value, error, onChange }: Props) {
  const s = useStore(loras);
  const chosen = chosenOf(value);
  const rule = scaleRule(field.itemProps, field.maxItems);
  const full = chosen.length >= rule.maxItems;
  const id = controlId(field.name);
  return (
    <fieldset
      className={`field field-adapters loras${error ? " invalid" : ""}`}
      data-field={field.name}
      aria-describedby={`${id}-desc`}
    >
      <legend>
        LoRA adapters <span className="hint">up to {rule.maxItems}</span>
      </legend>
      <p className="description" id={`${id}-desc`} title={field.description}>
        Adapters from the server’s LoRA folder, each with its weight, for this run only.
      </p>
      {chosen.length > 0 && (
        <ul className="lora-chosen" aria-label="Chosen LoRA adapters">
          {chosen.map((l, i) => {
            const file = loras.file(l.name);
            return (
              <li key={l.name} data-lora={l.name}>
                <div className="lora-head">
                  <strong className="lora-name">{l.name}</strong>
                  {file && <span className="hint">{matchLabel(file)}</span>}
                </div>
                <ScaleRow
                  lora={l}
                  rule={rule}
                  first={i === 0 ? id : undefined}
                  onScale={(v) => onChange(setScale(chosen, i, v))}
                >
                  <button
                    type="button"
                    className="secondary"
                    aria-label={`Remove LoRA ${l.name}`}
                    onClick={() => onChange(removeLora(chosen, i))}
                  >
                    Remove
                  </button>
                </ScaleRow>
                {s.files && !file && (
                  <p className="field-error">Not in the server’s listing: the run will be refused.</p>
                )}
              </li>
            );
          })}
        </ul>
      )}
      <Listing
        loras={loras}
        chosen={chosen}
        full={full}
        rule={rule}
        onAdd={(name) => onChange(addLora(chosen, name, rule))}
      />
      {full && (
        <p className="description">
          {rule.maxItems} of {rule.maxItems} chosen: remove one to add another.
        </p>
      )}
      {error && (
        <p className="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      )}
    </fieldset>
  );
}

function ScaleRow(props: {
  lora: ChosenLora;
  rule: ScaleRule;
  first: string | undefined;
  onScale: (v: number) => void;
  children: ReactNode;
}) {
  const { lora, rule, onScale } = props;
  // the number box keeps what is typed ("-", "0.") until it is a number
  const [text, setText] = useState(String(lora.scale));
  useEffect(() => {
    setText((t) => (Number(t) === lora.scale ? t : String(lora.scale)));
  }, [lora.scale]);
  return (
    <div className="range-row">
      <input
        type="range"
        aria-label={`Scale of ${lora.name}`}
        min={rule.min}
        max={rule.max}
        step={rule.step}
        value={Number.isFinite(lora.scale) ? lora.scale : rule.default}
        onChange={(e) => onScale(clampScale(Number(e.target.value), rule))}
      />
      <input
        type="number"
        id={props.first}
        aria-label={`Scale of ${lora.name}, as a number`}
        min={rule.min}
        max={rule.max}
        step={rule.step}
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          const n = Number(e.target.value);
          if (e.target.value.trim() !== "" && Number.isFinite(n)) onScale(n);
        }}
        onBlur={() => setText(String(lora.scale))}
      />
      {props.children}
    </div>
  );
}

function Listing(props: {
  loras: Loras;
  chosen: ChosenLora[];
  full: boolean;
  rule: ScaleRule;
  onAdd: (name: string) => void;
}) {
  const s = useStore(props.loras);
  if (s.files === null) {
    if (s.error)
      return (
        <p className="lora-empty" role="status">
          The server’s LoRA list could not be read: {s.error}{" "}
          <button type="button" className="link" onClick={() => void props.loras.load()}>
            Try again
          </button>
        </p>
      );
    return (
      <p className="lora-empty" role="status">
        Listing the server’s LoRA files…
      </p>
    );
  }
  if (s.files.length === 0)
    return (
      <div className="lora-empty" role="status">
        <p>
          No LoRA files on this server yet. To add some, put <code>.safetensors</code> files in the folder
          named by <code>KONTEXT_LORA_DIR</code> on the server (subfolders are fine), then list again.
        </p>
        <button type="button" className="secondary" onClick={() => void props.loras.load()}>
          List again
        </button>
      </div>
    );
  return (
    <ul className="lora-files" aria-label="LoRA files on the server">
      {s.files.map((f) => {
        const why = refusalOf(f);
        const taken = props.chosen.some((c) => c.name === f.name);
        return (
          <li key={f.name} className={why ? "refused" : undefined} data-lora-file={f.name}>
            <div className="lora-file-text">
              <span className="lora-name">{f.name}</span>
              <span className="hint">
                {[sizeLabel(f.sizeBytes), matchLabel(f)].filter(Boolean).join(" · ")}
              </span>
              {why && <span className="lora-refusal">Cannot be used: {why}</span>}
            </div>
            <button
              type="button"
              className="secondary"
              aria-label={`Add LoRA ${f.name}`}
              disabled={why !== null || taken || props.full}
              onClick={() => props.onAdd(f.name)}
            >
              {taken ? "Added" : "Add"}
            </button>
          </li>
        );
      })}
    </ul>
  );
}
