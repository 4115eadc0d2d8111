// A sweep: one axis (a parameter's values, or prompt variants) × seeds, each cell its own
// generation with the form's other values, shown as a labelled grid whose cells can be enlarged,
// compared, continued and downloaded.
import type { EditRequest } from "@kontext/client";
import { Store } from "../../app/store.js";
import type { Field } from "../form/schemaForm.js";

export const MAX_SWEEP_CELLS = 16;
/** The axis that varies the prompt (one variant per line). */
export const PROMPT_AXIS = "prompt";

export interface SweepSpec {
  /** the swept field ("prompt" for prompt variants); null sweeps seeds only */
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

/**
 * Axes a sweep can vary: numbers with a range and choices, and the prompt. Not the seed (it has
 * its own axis) nor num_generations (each cell is one generation).
 */
export function sweepableFields(fields: readonly Field[]): Field[] {
  const numeric = fields.filter(
    (f) => !["seed", "num_generations"].includes(f.name) && (f.kind === "range" || f.kind === "select"),
  );
  const prompt = fields.find((f) => f.name === PROMPT_AXIS);
  return prompt ? [prompt, ...numeric] : numeric;
}

/** The axis a new sweep starts on: guidance when the schema has it. */
export function defaultAxis(fields: readonly Field[]): string {
  const options = sweepableFields(fields);
  return (
    (options.find((f) => f.name === "guidance") ?? options.find((f) => f.name !== PROMPT_AXIS))?.name ?? ""
  );
}

/** "1.5, 2.5 3.5" → values; prompt variants are one per line. An error says which item is wrong. */
export function parseValues(
  text: string,
  field: Field | null,
): { values: Array<number | string>; error: string | null } {
  if (field?.name === PROMPT_AXIS) {
    const lines = text
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l !== "");
    if (lines.length === 0) return { values: [], error: "give at least one prompt, one per line" };
    return { values: [...new Set(lines)], error: null };
  }
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

const short = (s: string) => (s.length > 40 ? `${s.slice(0, 39)}…` : s);

export function sweepLabels(spec: SweepSpec): { rows: string[]; cols: string[] } {
  const rows = !spec.param
    ? ["form values"]
    : spec.param === PROMPT_AXIS
      ? spec.values.map((v) => `“${short(String(v))}”`)
      : spec.values.map((v) => `${spec.param} ${v}`);
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

export interface SweepState {
  spec: SweepSpec | null;
  /** generation ids by cell, row-major; undefined while a cell is being submitted */
  ids: Array<string | undefined>;
  error: string | null;
}

export interface SweepDeps {
  /** submits one cell (its body has num_generations 1) and follows it */
  submitOne(body: EditRequest): Promise<string | undefined>;
  cancel(ids: readonly string[]): Promise<void>;
}

export class Sweep extends Store<SweepState> {
  constructor(private readonly deps: SweepDeps) {
    super({ spec: null, ids: [], error: null });
  }

  /** Runs every cell over `base` (the form's request); stops at the first refusal and throws it. */
  async run(spec: SweepSpec, base: EditRequest): Promise<void> {
    const cells = sweepCells(spec);
    const ids: Array<string | undefined> = cells.map(() => undefined);
    this.update({ spec, ids: [...ids], error: null });
    for (const [i, cell] of cells.entries()) {
      ids[i] = await this.deps.submitOne({ ...base, ...cell.overrides, num_generations: 1 } as EditRequest);
      this.update({ ids: [...ids] });
    }
  }

  restore(spec: SweepSpec, ids: Array<string | undefined>): void {
    this.update({ spec, ids });
  }

  cancel(): Promise<void> {
    return this.deps.cancel(this.state.ids.filter((i): i is string => !!i));
  }

  clear(): void {
    this.update({ spec: null, ids: [], error: null });
  }
}
