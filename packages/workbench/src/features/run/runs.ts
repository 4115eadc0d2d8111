// The runs controller: submits the form's request, follows every generation the page cares about
// (the latest run, sweep cells, ones picked up again after a reload) through one Follower, and
// cancels them. Its dependencies come in, so the unit tests drive it with a fake server.
import type { EditRequest } from "@kontext/client";
import { Store, type Timers } from "../../app/store.js";
import type { Api } from "../session/api.js";
import { Follower } from "./follow.js";
import {
  anyActive,
  applyEvent,
  fromGeneration,
  type GenerationProgress,
  isFinal,
  queued,
  type ServerEvent,
  type Tracked,
} from "./progress.js";

export interface Run {
  ids: string[];
  prompt: string;
}

export interface RunsState {
  tracked: Tracked;
  /** the form's latest run (what the Result panel shows) */
  run: Run | null;
  submitting: boolean;
}

export interface RunsDeps {
  api: Pick<Api, "submit" | "cancel" | "follow" | "active" | "get">;
  timers: Timers;
}

export class Runs extends Store<RunsState> {
  private readonly follower: Follower;
  private readonly finished = new Set<(p: GenerationProgress) => void>();

  constructor(private readonly deps: RunsDeps) {
    super({ tracked: {}, run: null, submitting: false });
    this.follower = new Follower((id, e) => this.apply(id, e), {
      openStream: (id, onEvent) => deps.api.follow(id, onEvent),
      listActive: () => deps.api.active(),
      timers: deps.timers,
    });
  }

  /** Calls back once for each followed generation that reaches a final status. */
  onFinished(fn: (p: GenerationProgress) => void): () => void {
    this.finished.add(fn);
    return () => this.finished.delete(fn);
  }

  get runActive(): boolean {
    return this.state.run !== null && anyActive(this.state.tracked, this.state.run.ids);
  }

  private apply(id: string, e: ServerEvent): void {
    const p = this.state.tracked[id];
    if (!p) return;
    const q = applyEvent(p, e, this.deps.timers.now());
    if (q === p) return;
    this.update({ tracked: { ...this.state.tracked, [id]: q } });
    if (isFinal(q)) for (const fn of [...this.finished]) fn(q);
  }

  /** Starts following `ids` (newly submitted: queued with `totalSteps`). */
  follow(ids: readonly string[], totalSteps: number | null): void {
    const now = this.deps.timers.now();
    const tracked = { ...this.state.tracked };
    for (const id of ids) tracked[id] ??= queued(id, now, totalSteps);
    this.update({ tracked });
    this.follower.follow(ids);
  }

  /** Submits the form's request as the latest run. Throws what the server refused. */
  async start(body: EditRequest): Promise<string[]> {
    if (this.state.submitting || this.runActive) return [];
    this.update({ submitting: true });
    try {
      const ids = await this.deps.api.submit(body);
      this.update({ run: { ids, prompt: body.prompt } });
      this.follow(ids, body.num_inference_steps ?? null);
      return ids;
    } finally {
      this.update({ submitting: false });
    }
  }

  /** Submits one more generation (a sweep cell), followed but not the latest run. */
  async submitOne(body: EditRequest): Promise<string | undefined> {
    const [id] = await this.deps.api.submit({ ...body, num_generations: 1 });
    if (id) this.follow([id], body.num_inference_steps ?? null);
    return id;
  }

  /**
   * After a reload: the generations as the server has them now; the ones still queued or
   * processing are followed again (so progress shows and Cancel works).
   */
  async resume(ids: readonly string[], run: Run | null): Promise<void> {
    const now = this.deps.timers.now();
    const found = await Promise.all(ids.map((id) => this.deps.api.get(id).catch(() => null)));
    const tracked = { ...this.state.tracked };
    const live: string[] = [];
    for (const g of found) {
      if (!g) continue;
      const p = tracked[g.generation_id] ?? fromGeneration(g, now);
      tracked[g.generation_id] = p;
      if (!isFinal(p)) live.push(g.generation_id);
    }
    const known = run ? { ...run, ids: run.ids.filter((id) => tracked[id]) } : null;
    this.update({ tracked, ...(known && known.ids.length > 0 ? { run: known } : {}) });
    this.follower.follow(live);
  }

  /** Cancels those of `ids` still queued or processing. */
  async cancel(ids: readonly string[]): Promise<void> {
    const live = ids.filter((id) => anyActive(this.state.tracked, [id]));
    await Promise.all(live.map((id) => this.deps.api.cancel(id)));
  }

  /** Cancels any generation of this caller's (the queue panel's), followed or not. */
  cancelAny(id: string): Promise<void> {
    return this.deps.api.cancel(id);
  }

  cancelRun(): Promise<void> {
    return this.cancel(this.state.run?.ids ?? []);
  }

  close(): void {
    this.follower.close();
  }
}
