// Sweep controls (one parameter's values × seeds) and the labelled grid of its results.
import { useState } from "react";
import type { GenerationProgress } from "../../lib/progress.js";
import type { Field } from "../../lib/schemaForm.js";
import {
  MAX_SWEEP_CELLS,
  parseValues,
  type SweepSpec,
  sweepableFields,
  sweepLabels,
} from "../../lib/sweep.js";
import { GenerationCard, type ResultActions } from "../run/GenerationCard.js";

interface ControlsProps {
  fields: readonly Field[];
  busy: boolean;
  onRun: (spec: SweepSpec) => void;
}

export function SweepControls({ fields, busy, onRun }: ControlsProps) {
  const options = sweepableFields(fields);
  const [param, setParam] = useState<string>(options.find((f) => f.name === "guidance")?.name ?? "");
  const [valuesText, setValuesText] = useState("1.5, 2.5, 3.5");
  const [seedsText, setSeedsText] = useState("1, 2, 3");
  const [error, setError] = useState<string | null>(null);
  const field = options.find((f) => f.name === param) ?? null;
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
      <summary>Sweep: a grid across one parameter and seeds</summary>
      <div className="field">
        <label htmlFor="sweep-param">Parameter</label>
        <select id="sweep-param" value={param} onChange={(e) => setParam(e.target.value)}>
          <option value="">(seeds only)</option>
          {options.map((f) => (
            <option key={f.name} value={f.name}>
              {f.label}
            </option>
          ))}
        </select>
      </div>
      {field && (
        <div className="field">
          <label htmlFor="sweep-values">{field.label} values</label>
          <input id="sweep-values" value={valuesText} onChange={(e) => setValuesText(e.target.value)} />
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
  /** generation ids by cell, row-major; missing while a cell is being submitted */
  ids: ReadonlyArray<string | undefined>;
  tracked: Readonly<Record<string, GenerationProgress>>;
  now: number;
  actions: ResultActions;
  onCancel: () => void;
  active: boolean;
}

export function SweepGrid({ spec, ids, tracked, now, actions, onCancel, active }: GridProps) {
  const { rows, cols } = sweepLabels(spec);
  return (
    <section className="panel sweep" aria-labelledby="sweep-title">
      <div className="panel-head">
        <h2 id="sweep-title">
          Sweep: {rows.length} × {cols.length}
        </h2>
        {active && (
          <button type="button" className="danger" onClick={onCancel}>
            Cancel sweep
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
