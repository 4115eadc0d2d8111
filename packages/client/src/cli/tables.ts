// Plain-text tables for `kontext jobs ls` and `kontext models`.
import type { Generation, Model } from "../client.js";

export function table(rows: string[][]): string {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length))) ?? [];
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i] ?? 0))
        .join("  ")
        .trimEnd(),
    )
    .join("\n");
}

const short = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

export function generationsTable(gens: readonly Generation[]): string {
  return table([
    ["ID", "STATUS", "PROGRESS", "ENQUEUED", "PROMPT"],
    ...gens.map((g) => [
      g.generation_id,
      g.status,
      g.status === "processing"
        ? `${g.step}/${g.total_steps}`
        : g.status === "queued"
          ? `#${g.queue_position}`
          : "",
      g.enqueued_at.replace("T", " ").replace(/\.\d+Z$/, "Z"),
      short(g.prompt.replace(/\s+/g, " "), 50),
    ]),
  ]);
}

export function modelsTable(models: readonly Model[]): string {
  return table([["ID", "NAME", "OWNED BY"], ...models.map((m) => [m.id, m.display_name, m.owned_by])]);
}
