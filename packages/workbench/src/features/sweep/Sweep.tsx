// Sweep controls (one axis: a parameter's values or prompt variants, × seeds) and the labelled
// grid of its results, every cell actionable.
import { useEffect, useRef, useState } from "react";
import type { Field } from "../form/schemaForm.js";
import { GenerationCard, type ResultActions } from "../run/GenerationCard.js";
import type { Tracked } from "../run/progress.js";
import {
  defaultAxis,
  MAX_SWEEP_CELLS,
  PROMPT_AXIS,
  parseValues,
  type SweepSpec,
  sweepableFields,
  sweepLabels,
} from "./sweep.js";

interface ControlsProps {
  fields: readonly Field[];
  busy: boolean;
  onRun: (spec: SweepSpec) => void;
}

const EXAMPLE_VALUES: Record<string, string> = {
  guidance: "1.5, 2.5, 3.5",
  num_inference_steps: "8, 16, 28",
};

export function SweepControls({ fields, busy, onRun }: ControlsProps) {
  const options = sweepableFields(fields);
  const [param, setParam] = useState<string | null>(null);
  const [texts, setTexts] = useState<Record<string, string>>({});
  const [seedsText, setSeedsText] = useState("1, 2, 3");
  const [error, setError] = useState<string | null>(null);
  // The default axis comes with the schema (fields arrive after the first render).
  const axis = param ?? defaultAxis(fields);
  const field = options.find((f) => f.name === axis) ?? null;
  const valuesText =
    texts[axis] ??
    (axis === PROMPT_AXIS
      ? ""
      : (EXAMPLE_VALUES[axis] ?? (field?.options ? field.options.slice(0, 3).join(", ") : "")));
  const run = () => {
    const seeds = parseValues(seedsText, null);
    if (seeds.error) return setError(`Seeds: ${seeds.error}`);
    let values: Array<number | string> = [];
    if (field) {
      const parsed = parseValues(valuesText, field);
      if (parsed.error) return setError(`${field.label}: ${parsed.error}`);
      values = parsed.values;
    }
    const cells = (field ? values.length : 1) * seeds.values.length;
    if (cells > MAX_SWEEP_CELLS)
      return setError(`${cells} images is more than ${MAX_SWEEP_CELLS}; give fewer values`);
    setError(null);
    onRun({ param: field?.name ?? null, values, seeds: seeds.values as number[] });
  };
  return (
    <details className="sweep-controls">
      <summary>Sweep: a grid across prompts or a parameter, and seeds</summary>
      <div className="field">
        <label htmlFor="sweep-param">Axis</label>
        <select
          id="sweep-param"
          value={axis}
          onChange={(e) => {
            setParam(e.target.value);
            setError(null);
          }}
        >
          <option value="">(seeds only)</option>
          {options.map((f) => (
            <option key={f.name} value={f.name}>
              {f.name === PROMPT_AXIS ? "Prompt variants" : f.label}
            </option>
          ))}
        </select>
      </div>
      {field && (
        <div className="field">
          <label htmlFor="sweep-values">
            {field.name === PROMPT_AXIS ? "Prompt variants (one per line)" : `${field.label} values`}
          </label>
          {field.name === PROMPT_AXIS ? (
            <textarea
              id="sweep-values"
              rows={3}
              value={valuesText}
              onChange={(e) => setTexts({ ...texts, [axis]: e.target.value })}
            />
          ) : (
            <input
              id="sweep-values"
              value={valuesText}
              onChange={(e) => setTexts({ ...texts, [axis]: e.target.value })}
            />
          )}
        </div>
      )}
      <div className="field">
        <label htmlFor="sweep-seeds">Seeds</label>
        <input id="sweep-seeds" value={seedsText} onChange={(e) => setSeedsText(e.target.value)} />
      </div>
      {error && (
        <p className="field-error" role="alert">
          {error}
        </p>
      )}
      <button type="button" onClick={run} disabled={busy}>
        Run sweep
      </button>
    </details>
  );
}

interface GridProps {
  spec: SweepSpec;
  ids: ReadonlyArray<string | undefined>;
  tracked: Tracked;
  now: number;
  actions: ResultActions;
  onCancel: () => void;
  onClose: () => void;
  active: boolean;
}

export function SweepGrid({ spec, ids, tracked, now, actions, onCancel, onClose, active }: GridProps) {
  const { rows, cols } = sweepLabels(spec);
  const ref = useRef<HTMLElement>(null);
  // A new sweep comes into view (it sits below the latest result).
  useEffect(() => {
    if (spec) ref.current?.scrollIntoView?.({ block: "nearest", behavior: "smooth" });
  }, [spec]);
  return (
    <section ref={ref} className="panel sweep" aria-labelledby="sweep-title">
      <div className="panel-head">
        <h2 id="sweep-title">
          Sweep: {rows.length} × {cols.length}
        </h2>
        {active ? (
          <button type="button" className="danger" onClick={onCancel}>
            Cancel sweep
          </button>
        ) : (
          <button type="button" className="secondary" onClick={onClose}>
            Close sweep
          </button>
        )}
      </div>
      <div className="grid-scroll">
        <table className="sweep-grid">
          <thead>
            <tr>
              <td />
              {cols.map((c) => (
                <th key={c} scope="col">
                  {c}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {rows.map((r, row) => (
              <tr key={r}>
                <th scope="row">{r}</th>
                {cols.map((c, col) => {
                  const id = ids[row * cols.length + col];
                  const p = id ? tracked[id] : undefined;
                  return (
                    <td key={c}>
                      {p ? (
                        <GenerationCard
                          progress={p}
                          now={now}
                          label={`${r}, ${c}`}
                          actions={actions}
                          compact
                        />
                      ) : (
                        <span className="status">Submitting</span>
                      )}
                    </td>
                  );
                })}
              </tr>
            ))}
          </tbody>
        </table>
      </div>
    </section>
  );
}
