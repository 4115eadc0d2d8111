// A sweep: one parameter's values (rows) × seeds (columns), each cell its own generation with
// the form's other values, shown as a labelled grid.
import type { Field } from "./schemaForm.js";

export const MAX_SWEEP_CELLS = 16;

export interface SweepSpec {
  /** the swept field; null sweeps seeds only */
  param: string | null;
  values: Array<number | string>;
  seeds: number[];
}

export interface SweepCell {
  row: number;
  col: number;
  label: string;
  overrides: Record<string, unknown>;
}

/** Fields a sweep can vary: numbers with a range, and choices (seed has its own axis). */
export function sweepableFields(fields: readonly Field[]): Field[] {
  return fields.filter((f) => f.name !== "seed" && (f.kind === "range" || f.kind === "select"));
}

/** "1.5, 2.5 3.5" → values, or an error that says which item is wrong. */
export function parseValues(
  text: string,
  field: Field | null,
): { values: Array<number | string>; error: string | null } {
  const items = text.split(/[\s,;]+/).filter((s) => s !== "");
  if (items.length === 0) return { values: [], error: "give at least one value" };
  const values: Array<number | string> = [];
  for (const item of items) {
    if (field && field.kind === "select") {
      if (!field.options?.includes(item))
        return { values, error: `${item} is not one of ${field.options?.join(", ")}` };
      values.push(item);
      continue;
    }
    const n = Number(item);
    const integer = field ? field.integer : true;
    if (!Number.isFinite(n) || (integer && !Number.isInteger(n)))
      return { values, error: `${item} is not ${integer ? "an integer" : "a number"}` };
    if (field?.min !== undefined && n < field.min) return { values, error: `${item} is below ${field.min}` };
    if (field?.max !== undefined && n > field.max) return { values, error: `${item} is above ${field.max}` };
    if (!field && n < 0) return { values, error: `${item} is below 0` };
    values.push(n);
  }
  return { values: [...new Set(values)], error: null };
}

export function sweepLabels(spec: SweepSpec): { rows: string[]; cols: string[] } {
  const rows = spec.param ? spec.values.map((v) => `${spec.param} ${v}`) : ["form values"];
  return { rows, cols: spec.seeds.map((s) => `seed ${s}`) };
}

export function sweepCells(spec: SweepSpec): SweepCell[] {
  const rowValues: Array<number | string | null> = spec.param ? spec.values : [null];
  const { rows, cols } = sweepLabels(spec);
  const cells: SweepCell[] = [];
  rowValues.forEach((value, row) => {
    spec.seeds.forEach((seed, col) => {
      const overrides: Record<string, unknown> = { seed };
      if (spec.param && value !== null) overrides[spec.param] = value;
      cells.push({ row, col, label: `${rows[row]}, ${cols[col]}`, overrides });
    });
  });
  return cells;
}
