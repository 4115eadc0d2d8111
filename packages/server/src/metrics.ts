// Prometheus metrics, kept by hand (a few counters and histograms need no library).

type Labels = Record<string, string>;
const key = (labels: Labels) =>
  Object.entries(labels)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}="${v.replace(/["\\\n]/g, "_")}"`)
    .join(",");

class Counter {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
  ) {}
  inc(labels: Labels = {}, by = 1): void {
    const k = key(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} counter`];
    for (const [k, v] of this.values) out.push(`${this.name}${k ? `{${k}}` : ""} ${v}`);
    return out;
  }
}

class Histogram {
  private readonly series = new Map<string, { counts: number[]; sum: number; count: number }>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly buckets: number[],
  ) {}
  observe(value: number, labels: Labels = {}): void {
    const k = key(labels);
    let s = this.series.get(k);
    if (!s) {
      s = { counts: this.buckets.map(() => 0), sum: 0, count: 0 };
      this.series.set(k, s);
    }
    for (let i = 0; i < this.buckets.length; i++)
      if (value <= (this.buckets[i] as number)) s.counts[i] = (s.counts[i] ?? 0) + 1;
    s.sum += value;
    s.count += 1;
  }
  render(): string[] {
    const out = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} histogram`];
    for (const [k, s] of this.series) {
      const sep = k ? `${k},` : "";
      this.buckets.forEach((b, i) => {
        out.push(`${this.name}_bucket{${sep}le="${b}"} ${s.counts[i]}`);
      });
      out.push(`${this.name}_bucket{${sep}le="+Inf"} ${s.count}`);
      out.push(`${this.name}_sum${k ? `{${k}}` : ""} ${s.sum}`);
      out.push(`${this.name}_count${k ? `{${k}}` : ""} ${s.count}`);
    }
    return out;
  }
}

export class Metrics {
  readonly jobs = new Counter("kontext_generations_total", "Generations finished, by final status.");
  readonly errors = new Counter(
    "kontext_errors_total",
    "Errors by code: API errors answered and generations failed.",
  );
  readonly engineRestarts = new Counter(
    "kontext_engine_restarts_total",
    "Engines restarted after they exited.",
  );
  readonly jobSeconds = new Histogram(
    "kontext_generation_duration_seconds",
    "From enqueue to final status, by status.",
    [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600],
  );
  readonly inferenceSeconds = new Histogram(
    "kontext_inference_duration_seconds",
    "The engine's time per generation.",
    [0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300],
  );
  readonly stepSeconds = new Histogram(
    "kontext_step_duration_seconds",
    "Time between two progress steps of the engine.",
    [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
  );

  /** The whole exposition; gauges are read at scrape time. */
  render(gauges: Array<{ name: string; help: string; values: Array<[Labels, number]> }>): string {
    const lines: string[] = [];
    for (const g of gauges) {
      lines.push(`# HELP ${g.name} ${g.help}`, `# TYPE ${g.name} gauge`);
      for (const [labels, v] of g.values) {
        const k = key(labels);
        lines.push(`${g.name}${k ? `{${k}}` : ""} ${v}`);
      }
    }
    for (const m of [
      this.jobs,
      this.errors,
      this.engineRestarts,
      this.jobSeconds,
      this.inferenceSeconds,
      this.stepSeconds,
    ]) {
      lines.push(...m.render());
    }
    return `${lines.join("\n")}\n`;
  }
}
