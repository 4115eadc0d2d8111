// The page's controller: what ties the features together. Submit → follow → refresh; sweeps;
// edit chains (continue, back, the step just run); reuse from the history; the viewer and the
// comparison; the workspace saved and restored across reloads, with running generations
// followed again. Every dependency comes in (compose.ts builds the real ones), so the unit tests
// run it against a fake server.
import { type KeyValue, Store, type Timers } from "../../app/store.js";
import { type ChainAction, type ChainState, chainReducer, NO_CHAIN, tipOf } from "../chain/chain.js";
import type { Form } from "../form/form.js";
import type { Gallery } from "../gallery/gallery.js";
import { type HistoryItem, reuseParams } from "../gallery/history.js";
import type { Loras } from "../loras/loras.js";
import type { Mask } from "../mask/mask.js";
import type { Queue } from "../queue/queue.js";
import type { Runs } from "../run/runs.js";
import { type Api, isUnauthorized } from "../session/api.js";
import type { Session } from "../session/session.js";
import type { Sweep, SweepSpec } from "../sweep/sweep.js";
import { inputItem, resultItem, type ViewItem } from "../viewer/compare.js";
import { loadWorkspace, saveWorkspace } from "./persist.js";

export type ViewMode = "single" | "before-after" | "side-by-side" | "toggle";

export interface ViewerState {
  items: ViewItem[];
  index: number;
  mode: ViewMode;
}

export interface WorkbenchState {
  ready: boolean;
  chain: ChainState;
  /** keys of the items compared ("result:<id>", "input:<id>") */
  compared: string[];
  viewer: ViewerState | null;
  notice: string | null;
  codeOpen: boolean;
  shortcutsOpen: boolean;
}

export interface Parts {
  session: Session;
  form: Form;
  runs: Runs;
  sweep: Sweep;
  gallery: Gallery;
  queue: Queue;
  loras: Loras;
  mask: Mask;
}

export interface WorkbenchDeps {
  api: Pick<Api, "onCompleted" | "blob">;
  storage: KeyValue;
  timers: Timers;
}

export class Workbench extends Store<WorkbenchState> {
  private readonly stops: Array<() => void> = [];
  private saveTimer: unknown = null;
  private refreshTimer: unknown = null;
  /** run id → the chain step its input was (undefined: not from a chain) */
  private readonly runBase = new Map<string, { base: string | null; imageRef: unknown }>();
  /** text-to-image generations run from this page (no input to compare with) */
  private readonly generated = new Set<string>();
  /** the input picture the mask was painted on (its preview URL) */
  private maskImage: string | null = null;

  constructor(
    readonly parts: Parts,
    private readonly deps: WorkbenchDeps,
  ) {
    super({
      ready: false,
      chain: NO_CHAIN,
      compared: [],
      viewer: null,
      notice: null,
      codeOpen: false,
      shortcutsOpen: false,
    });
  }

  private chainDo(action: ChainAction): void {
    this.update({ chain: chainReducer(this.state.chain, action) });
  }

  /** Loads the model, restores the workspace, follows what still runs, and keeps it all fresh. */
  async init(): Promise<void> {
    const { session, form, runs, sweep, gallery, queue, loras } = this.parts;
    session.watchHealth();
    const model = await session.load();
    const ws = loadWorkspace(this.deps.storage);
    if (model)
      form.setSchema(
        model.id,
        model.json_request_schema,
        ws?.values,
        // a server before text-to-image has no such schema: no Generate mode then
        model.json_generate_request_schema ?? null,
        ws?.mode,
      );
    // the LoRA picker's listing, when the model takes adapters (not awaited: it may be slow)
    if (form.get().fields.some((f) => f.kind === "adapters")) void loras.load();
    if (ws) {
      this.update({ chain: ws.chain ?? NO_CHAIN, compared: ws.compared ?? [] });
      if (ws.sweep)
        sweep.restore(
          ws.sweep.spec,
          ws.sweep.ids.map((i) => i ?? undefined),
        );
      const ids = [...(ws.run?.ids ?? []), ...(ws.sweep?.ids ?? []).filter((i): i is string => !!i)];
      await Promise.all([
        ws.image ? form.restoreImage(ws.image).catch(() => undefined) : undefined,
        ws.refs ? form.restoreRefs(ws.refs).catch(() => undefined) : undefined,
        runs.resume(ids, ws.run).catch((err) => this.fail(err)),
      ]);
    }
    this.syncMask();
    const image = form.get().image;
    if (ws?.mask && image?.width && image.height)
      await this.parts.mask
        .restore(ws.mask, { width: image.width, height: image.height })
        .catch(() => undefined);
    this.stops.push(form.subscribe(() => this.syncMask()));
    // a refusal of the mask (nothing to change) goes once the mask changes
    this.stops.push(this.parts.mask.subscribe(() => form.clearError("mask_image")));
    this.stops.push(runs.onFinished((p) => this.finished(p.id, p.phase === "succeeded")));
    this.stops.push(this.deps.api.onCompleted(() => this.refreshSoon()));
    for (const s of [form, runs, sweep, this, this.parts.mask] as const)
      this.stops.push(s.subscribe(() => this.saveSoon()));
    queue.start();
    this.update({ ready: true });
    await gallery.refresh().catch((err) => this.fail(err));
  }

  close(): void {
    for (const s of this.stops.splice(0)) s();
    this.parts.queue.stop();
    this.parts.runs.close();
    this.parts.session.close();
  }

  private fail(err: unknown): void {
    if (isUnauthorized(err)) this.parts.session.unauthorized();
    else this.update({ notice: (err as Error).message });
  }

  private refreshSoon(): void {
    this.deps.timers.clearTimeout(this.refreshTimer);
    this.refreshTimer = this.deps.timers.setTimeout(() => {
      void this.parts.gallery.refresh().catch(() => undefined);
      this.parts.queue.kick();
    }, 200);
  }

  private saveSoon(): void {
    if (!this.state.ready) return; // nothing restored yet: do not overwrite the saved workspace
    this.deps.timers.clearTimeout(this.saveTimer);
    this.saveTimer = this.deps.timers.setTimeout(() => this.save(), 250);
  }

  /** Writes a pending save now (the page is going away); nothing before the workspace is restored. */
  flush(): void {
    if (!this.state.ready) return;
    this.deps.timers.clearTimeout(this.saveTimer);
    this.save();
    void this.parts.mask.savePixels();
  }

  /**
   * The mask follows the input picture: painted for one picture, it goes when another becomes
   * the input (the server's copy after a run is the same picture: its preview stays).
   */
  private syncMask(): void {
    const { mask, form } = this.parts;
    const image = form.get().image;
    const url = image?.previewUrl ?? null;
    if (url !== this.maskImage) {
      if (this.maskImage !== null) mask.reset();
      this.maskImage = url;
    }
    mask.setInput(image?.width && image.height ? { width: image.width, height: image.height } : null);
  }

  save(): void {
    const { form, runs, sweep } = this.parts;
    const s = sweep.get();
    saveWorkspace(this.deps.storage, {
      v: 1,
      mode: form.get().mode,
      values: form.get().values,
      image: form.get().image?.ref ?? null,
      refs: form.refRefs(),
      mask: this.parts.mask.meta(),
      chain: this.state.chain,
      run: runs.get().run,
      sweep: s.spec ? { spec: s.spec, ids: s.ids.map((i) => i ?? null) } : null,
      compared: this.state.compared,
    });
  }

  private async finished(id: string, ok: boolean): Promise<void> {
    await this.parts.gallery.refresh().catch(() => undefined);
    this.parts.queue.kick();
    const from = this.runBase.get(id);
    this.runBase.delete(id);
    // The step just run is the chain's new tip, if the form's input is still the image it ran on.
    if (
      ok &&
      from &&
      from.imageRef === this.parts.form.get().image?.ref &&
      from.base === this.state.chain.baseId
    )
      this.chainDo({ type: "ran", id });
  }

  // --- running

  /** Checks the form, then submits it and follows the run. */
  async submit(): Promise<void> {
    const { form, runs, queue } = this.parts;
    if (runs.get().submitting || runs.runActive) return;
    if (!form.check(this.maskCheck())) return;
    this.update({ notice: null });
    try {
      const body = await this.body();
      // text-to-image sends no input: its result starts a chain of its own
      const image = "input_image" in body ? form.get().image : null;
      const ids = await runs.start(body);
      for (const id of ids)
        if (image) this.runBase.set(id, { base: this.state.chain.baseId, imageRef: image.ref });
        else this.generated.add(id);
      const first = ids[0];
      if (first && image?.ref.kind === "local") {
        const ref = {
          kind: "server" as const,
          url: `/api/history/${first}/input`,
          name: image.ref.name,
          generationId: first,
          role: "input" as const,
        };
        form.rebase(ref);
        for (const id of ids)
          this.runBase.set(id, { base: this.state.chain.baseId, imageRef: form.get().image?.ref });
      }
      form.clearErrors();
      queue.kick();
    } catch (err) {
      if (isUnauthorized(err)) this.parts.session.unauthorized();
      else form.refused(err);
    }
  }

  /** The painted mask counts in the form's check (mask_image as the schema has it). */
  private maskCheck(): Record<string, string> {
    return this.parts.form.has("mask_image") && this.parts.mask.get().painted ? { mask_image: "mask" } : {};
  }

  /** The form's request with the painted mask, when the model takes one and something is painted. */
  private async body() {
    const body = await this.parts.form.body();
    if (!this.parts.form.has("mask_image")) return body;
    const mask = await this.parts.mask.dataUri();
    return mask ? { ...body, mask_image: mask } : body;
  }

  /** An image on this server, with this browser's credentials. */
  fetchBlob(url: string): Promise<Blob> {
    return this.deps.api.blob(url);
  }

  cancelRun(): Promise<void> {
    return this.parts.runs.cancelRun();
  }

  async runSweep(spec: SweepSpec): Promise<void> {
    const { form, sweep } = this.parts;
    if (!form.check(this.maskCheck())) return;
    try {
      await sweep.run(spec, await this.body());
      this.parts.queue.kick();
    } catch (err) {
      if (isUnauthorized(err)) this.parts.session.unauthorized();
      else form.refused(err);
    }
  }

  // --- the image and the chain

  private item(id: string): HistoryItem | undefined {
    return this.parts.gallery.get().known.get(id);
  }

  resultUrlOf(id: string): string | null {
    return this.parts.runs.get().tracked[id]?.resultUrl ?? this.item(id)?.result_url ?? null;
  }

  promptOf(id: string): string {
    const run = this.parts.runs.get().run;
    return this.item(id)?.prompt ?? (run?.ids.includes(id) ? run.prompt : "");
  }

  async pickFile(file: File): Promise<void> {
    if (await this.parts.form.pickFile(file)) this.chainDo({ type: "leave" });
  }

  async pickUrl(url: string): Promise<void> {
    await this.parts.form.pickUrl(url);
    this.chainDo({ type: "leave" });
  }

  /** Whether a generation had an input image (text-to-image has none: no before/after). */
  hasInput(id: string): boolean {
    const h = this.item(id);
    return h ? !!h.input_url : !this.generated.has(id);
  }

  /**
   * A result becomes the next input (its exact bytes, so the server links the next step to it);
   * a text-to-image result too: the form turns to editing it.
   */
  async continueFrom(id: string): Promise<void> {
    const url = this.resultUrlOf(id);
    if (!url) return;
    try {
      this.parts.form.setMode("edit");
      await this.parts.form.takeServerImage({
        kind: "server",
        url,
        name: `result of “${this.promptOf(id)}”`,
        generationId: id,
        role: "result",
      });
      this.chainDo({ type: "continue", id });
      this.update({ notice: "The result is now the input: describe the next edit and run.", viewer: null });
      await this.parts.gallery.refresh().catch(() => undefined);
    } catch (err) {
      this.fail(err);
    }
  }

  async goToStep(id: string | null, imageUrl: string | null, label: string): Promise<void> {
    try {
      const url = id === null ? imageUrl : this.resultUrlOf(id);
      if (url)
        await this.parts.form.takeServerImage({
          kind: "server",
          url,
          name: label,
          generationId: id ?? this.firstOfChain(),
          role: id === null ? "input" : "result",
        });
      this.chainDo({ type: "back", id });
    } catch (err) {
      this.fail(err);
    }
  }

  private firstOfChain(): string | null {
    let cur = this.state.chain.tipId ? this.item(this.state.chain.tipId) : undefined;
    while (cur?.parent_generation_id && this.item(cur.parent_generation_id))
      cur = this.item(cur.parent_generation_id);
    return cur?.generation_id ?? null;
  }

  /** Shows another branch of the chain (its newest step). */
  showBranch(id: string): void {
    this.chainDo({ type: "tip", id: tipOf(this.parts.gallery.get().known, id) });
  }

  /** A history item's parameters into the form, and its input (or its parent's result) as the image. */
  async reuse(item: HistoryItem): Promise<void> {
    const { form } = this.parts;
    const parent = item.parent_generation_id ? this.item(item.parent_generation_id) : undefined;
    // made from the prompt alone: back to text-to-image, the input image left as it is
    const textToImage = !item.input_url && !parent && form.get().canGenerate;
    form.setMode(textToImage ? "generate" : "edit");
    const { input_image: url, ...rest } = reuseParams(item, form.fieldNames);
    form.fill(rest);
    try {
      if (textToImage) this.chainDo({ type: "leave" });
      else if (typeof url === "string" && /^https?:/.test(url)) await this.pickUrl(url);
      else if (parent?.result_url) {
        await form.takeServerImage({
          kind: "server",
          url: parent.result_url,
          name: `result of “${parent.prompt}”`,
          generationId: parent.generation_id,
          role: "result",
        });
        this.chainDo({ type: "continue", id: parent.generation_id });
      } else if (item.input_url) {
        await form.takeServerImage({
          kind: "server",
          url: item.input_url,
          name: `input of “${item.prompt}”`,
          generationId: item.generation_id,
          role: "input",
        });
        this.chainDo({ type: "leave" });
      }
      await this.reuseReferences(item);
      this.update({
        notice: `Parameters of “${item.prompt}” (seed ${item.seed}) are in the form.`,
        viewer: null,
      });
    } catch (err) {
      this.fail(err);
    }
  }

  /** The reference images a history item was run with (the history serves each), in their slots. */
  private async reuseReferences(item: HistoryItem): Promise<void> {
    const { form } = this.parts;
    const refs = (item as { references?: Array<{ field: string; url: string }> }).references ?? [];
    for (const f of [...form.refFields].reverse())
      if (!refs.some((r) => r.field === f.name)) await form.clearRef(f.name);
    await Promise.all(
      refs.map((r) =>
        form.takeServerRef(r.field, {
          kind: "server",
          url: r.url,
          name: `${r.field} of “${item.prompt}”`,
          generationId: item.generation_id,
          role: "input",
        }),
      ),
    );
  }

  // --- gallery actions

  async remove(id: string): Promise<void> {
    try {
      await this.parts.gallery.remove(id);
      const keep = (k: string) => !k.endsWith(`:${id}`);
      const viewer = this.state.viewer;
      const items = viewer?.items.filter((i) => keep(i.key)) ?? [];
      this.update({
        compared: this.state.compared.filter(keep),
        viewer:
          viewer && items.length > 0
            ? { ...viewer, items, index: Math.min(viewer.index, items.length - 1) }
            : null,
        notice: "Deleted: its image files and its record are gone from the server.",
      });
    } catch (err) {
      this.fail(err);
    }
  }

  async star(id: string, starred: boolean): Promise<void> {
    await this.parts.gallery.star(id, starred).catch((err) => this.fail(err));
  }

  // --- viewer and comparison

  /** The viewer's item for a key, from the history or (not listed yet) a followed generation. */
  viewItem(key: string): ViewItem | null {
    const [kind, id = ""] = key.split(":") as ["result" | "input", string];
    const h = this.item(id);
    if (h) return kind === "input" ? inputItem(h) : resultItem(h);
    const p = this.parts.runs.get().tracked[id];
    if (kind === "result" && p?.resultUrl)
      return {
        key,
        kind,
        generationId: id,
        url: p.resultUrl,
        params: { prompt: this.promptOf(id), seed: p.seed },
        width: p.width,
        height: p.height,
      };
    return null;
  }

  toggleCompare(key: string): void {
    const c = this.state.compared;
    this.update({ compared: c.includes(key) ? c.filter((k) => k !== key) : [...c, key] });
  }

  clearCompare(): void {
    this.update({ compared: [] });
  }

  /** Opens the viewer on one result (with its input, for before/after) or on the comparison. */
  view(key: string, mode: ViewMode = "single"): void {
    const item = this.viewItem(key);
    if (!item) return;
    const input = item.kind === "result" ? this.viewItem(`input:${item.generationId}`) : null;
    this.update({ viewer: { items: input ? [item, input] : [item], index: 0, mode } });
  }

  viewCompared(): void {
    const items = this.state.compared.map((k) => this.viewItem(k)).filter((i): i is ViewItem => i !== null);
    if (items.length > 0)
      this.update({ viewer: { items, index: 0, mode: items.length > 1 ? "side-by-side" : "single" } });
  }

  setViewer(patch: Partial<ViewerState> | null): void {
    const v = this.state.viewer;
    this.update({ viewer: patch === null || !v ? null : { ...v, ...patch } });
  }

  setNotice(notice: string | null): void {
    this.update({ notice });
  }

  openCode(open: boolean): void {
    this.update({ codeOpen: open });
  }

  openShortcuts(open: boolean): void {
    this.update({ shortcutsOpen: open });
  }
}
