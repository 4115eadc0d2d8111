// A one-line progress bar on stderr. On a terminal it redraws in place; elsewhere (logs, CI,
// pipes) it writes a line whenever the text changes, so the progress stays visible there too.

export interface ProgressOutput {
  write(s: string): unknown;
  isTTY?: boolean;
}

export function renderBar(fraction: number, width = 24): string {
  const f = Math.min(1, Math.max(0, fraction));
  const full = Math.round(f * width);
  return `[${"█".repeat(full)}${"░".repeat(width - full)}] ${String(Math.round(f * 100)).padStart(3)}%`;
}

export class ProgressBar {
  private last = "";
  private readonly started = Date.now();

  constructor(private readonly out: ProgressOutput = process.stderr) {}

  /** A status line without a bar (queued, started). */
  status(text: string): void {
    this.draw(text);
  }

  /** The bar at `done` of `total`. */
  update(done: number, total: number, label = "step"): void {
    const secs = ((Date.now() - this.started) / 1000).toFixed(1);
    this.draw(`${renderBar(total > 0 ? done / total : 0)} ${label} ${done}/${total}  ${secs}s`);
  }

  /** Ends the bar's line with a final message. */
  finish(text: string): void {
    if (this.out.isTTY) this.out.write(`\r\x1b[2K${text}\n`);
    else this.out.write(`${text}\n`);
    this.last = "";
  }

  private draw(line: string): void {
    if (line === this.last) return;
    this.last = line;
    if (this.out.isTTY) this.out.write(`\r\x1b[2K${line}`);
    else this.out.write(`${line}\n`);
  }
}
