// One form control, chosen by the field's kind (lib/schemaForm.ts): every control has a label,
// its description, its range, and the server's error beside it.
import type { ReactNode } from "react";
import { type Field, parseNumber } from "./schemaForm.js";

interface Props {
  field: Field;
  value: unknown;
  error: string | undefined;
  onChange: (value: unknown) => void;
  /** a line about what the field's value costs or means now (true guidance: twice the time) */
  notice?: string | undefined;
}

export const controlId = (name: string) => `f-${name}`;

function rangeHint(f: Field): string | null {
  if (f.exclusiveMin && f.min !== undefined && f.max !== undefined) return `above ${f.min}, up to ${f.max}`;
  if (f.min !== undefined && f.max !== undefined && f.max - f.min <= 1_000_000) return `${f.min}–${f.max}`;
  if (f.min !== undefined) return `≥ ${f.min}`;
  return null;
}

/** The field's explanation: its one-line note (the schema's description as a tooltip) or the description. */
export function Description({ field: f }: { field: Field }) {
  if (!f.note && !f.description) return null;
  return (
    <p className="description" id={`${controlId(f.name)}-desc`} title={f.note ? f.description : undefined}>
      {f.note ?? f.description}
    </p>
  );
}

export function FieldShell(props: {
  field: Field;
  error: string | undefined;
  children: ReactNode;
  asFieldset?: boolean;
  labelFor?: string;
  notice?: string | undefined;
}) {
  const { field: f, error } = props;
  const hint = rangeHint(f);
  const label = (
    <>
      {f.label}
      {f.required && <span className="required"> (required)</span>}
      {hint && <span className="hint"> {hint}</span>}
    </>
  );
  const after = (
    <>
      <Description field={f} />
      {props.notice && (
        <p className="field-notice" id={`${controlId(f.name)}-notice`}>
          {props.notice}
        </p>
      )}
      {error && (
        <p className="field-error" id={`${controlId(f.name)}-error`} role="alert">
          {error}
        </p>
      )}
    </>
  );
  if (props.asFieldset) {
    return (
      <fieldset className={`field field-${f.kind}${error ? " invalid" : ""}`}>
        <legend>{label}</legend>
        {props.children}
        {after}
      </fieldset>
    );
  }
  return (
    <div className={`field field-${f.kind}${error ? " invalid" : ""}`} data-field={f.name}>
      <label htmlFor={props.labelFor ?? controlId(f.name)}>{label}</label>
      {props.children}
      {after}
    </div>
  );
}

export function FieldControl({ field: f, value, error, onChange, notice }: Props) {
  const id = controlId(f.name);
  const describedBy = [
    f.note || f.description ? `${id}-desc` : "",
    notice ? `${id}-notice` : "",
    error ? `${id}-error` : "",
  ]
    .filter(Boolean)
    .join(" ");
  const common = {
    id,
    name: f.name,
    "aria-describedby": describedBy || undefined,
    "aria-invalid": error ? true : undefined,
  };
  switch (f.kind) {
    case "textarea":
      return (
        <FieldShell field={f} error={error} notice={notice}>
          <textarea
            {...common}
            rows={3}
            value={String(value ?? "")}
            onChange={(e) => onChange(e.target.value)}
          />
        </FieldShell>
      );
    case "text":
      return (
        <FieldShell field={f} error={error}>
          <input
            {...common}
            type="text"
            value={String(value ?? "")}
            onChange={(e) => onChange(e.target.value || undefined)}
          />
        </FieldShell>
      );
    case "select":
      return (
        <FieldShell field={f} error={error}>
          <select {...common} value={String(value ?? "")} onChange={(e) => onChange(e.target.value)}>
            {f.options?.map((o) => (
              <option key={o} value={o}>
                {o}
              </option>
            ))}
          </select>
        </FieldShell>
      );
    case "boolean":
      return (
        <div className={`field field-boolean${error ? " invalid" : ""}`} data-field={f.name}>
          <label htmlFor={id} className="checkbox">
            <input
              {...common}
              type="checkbox"
              checked={value === true}
              onChange={(e) => onChange(e.target.checked)}
            />
            {f.label}
          </label>
          <Description field={f} />
          {error && (
            <p className="field-error" id={`${id}-error`} role="alert">
              {error}
            </p>
          )}
        </div>
      );
    case "range": {
      // an exclusive bound (strength: above 0) is not a value the slider may take
      const sliderMin = f.exclusiveMin && f.min !== undefined ? f.min + (f.step ?? 0.01) : f.min;
      return (
        <FieldShell field={f} error={error} notice={notice}>
          <div className="range-row">
            <input
              type="range"
              aria-label={`${f.label} slider`}
              min={sliderMin}
              max={f.max}
              step={f.step}
              value={typeof value === "number" && Number.isFinite(value) ? value : (sliderMin ?? 0)}
              onChange={(e) => onChange(Number(e.target.value))}
            />
            <input
              {...common}
              type="number"
              min={f.min}
              max={f.max}
              step={f.step}
              value={
                value === undefined || (typeof value === "number" && Number.isNaN(value)) ? "" : String(value)
              }
              onChange={(e) => onChange(parseNumber(e.target.value))}
            />
          </div>
        </FieldShell>
      );
    }
    case "number":
      return (
        <FieldShell field={f} error={error}>
          <div className="range-row">
            <input
              {...common}
              type="number"
              min={f.min}
              max={f.max}
              step={f.step}
              placeholder={f.default === undefined ? "random" : undefined}
              value={value === undefined ? "" : String(value)}
              onChange={(e) => onChange(parseNumber(e.target.value))}
            />
            {f.integer && f.default === undefined && (
              <button
                type="button"
                className="secondary"
                aria-label={`Pick a random ${f.label.toLowerCase()}`}
                onClick={() => onChange(Math.floor(Math.random() * 2 ** 31))}
              >
                Random
              </button>
            )}
          </div>
        </FieldShell>
      );
    case "choices": {
      const chosen = Array.isArray(value) ? (value as string[]) : [];
      return (
        <FieldShell field={f} error={error} asFieldset>
          <div className="choices">
            {f.options?.map((o) => (
              <label key={o} className="checkbox">
                <input
                  type="checkbox"
                  name={f.name}
                  checked={chosen.includes(o)}
                  onChange={(e) =>
                    onChange(e.target.checked ? [...chosen, o] : chosen.filter((c) => c !== o))
                  }
                />
                {o}
              </label>
            ))}
          </div>
        </FieldShell>
      );
    }
    case "image":
    case "adapters":
      return null; // ImageInput and the LoRA picker draw them
  }
}
