// The gallery controller: the history, newest first, filtered by status, star and prompt text,
// paged past the first page (`before`), starred and deleted on the server. Every item ever loaded
// stays known by id, so edit chains and their depths do not depend on the current filter.
import type { HistoryItem, HistoryQuery } from "@kontext/client";
import { Store } from "../../app/store.js";
import type { Api } from "../session/api.js";

export const PAGE = 100;

export type StatusFilter = "all" | "succeeded" | "failed" | "starred";

export const FILTERS: Record<StatusFilter, string> = {
  all: "All",
  succeeded: "Succeeded",
  failed: "Failed or cancelled",
  starred: "Starred",
};

export interface GalleryState {
  items: HistoryItem[];
  query: string;
  filter: StatusFilter;
  loading: boolean;
  /** a page came back full: there may be older ones */
  more: boolean;
  error: string | null;
  /** every item loaded so far, by id (for chains) */
  known: ReadonlyMap<string, HistoryItem>;
}

export function queryOf(filter: StatusFilter, q: string, before?: string): HistoryQuery {
  const out: HistoryQuery = { limit: PAGE };
  if (q.trim()) out.q = q.trim();
  if (before) out.before = before;
  if (filter === "succeeded") out.status = "succeeded";
  if (filter === "failed") out.status = "failed,cancelled";
  if (filter === "starred") out.starred = true;
  return out;
}

export class Gallery extends Store<GalleryState> {
  private generation = 0;

  constructor(private readonly api: Pick<Api, "history" | "remove" | "star">) {
    super({
      items: [],
      query: "",
      filter: "all",
      loading: false,
      more: false,
      error: null,
      known: new Map(),
    });
  }

  private remember(items: readonly HistoryItem[]): ReadonlyMap<string, HistoryItem> {
    const known = new Map(this.state.known);
    for (const i of items) known.set(i.generation_id, i);
    return known;
  }

  /** The first page for the current filter (again). */
  async refresh(): Promise<void> {
    const mine = ++this.generation;
    this.update({ loading: true });
    try {
      const items = await this.api.history(queryOf(this.state.filter, this.state.query));
      if (mine !== this.generation) return; // a newer filter won
      // keep the pages already loaded below the first
      const fresh = new Set(items.map((i) => i.generation_id));
      const last = items.at(-1)?.enqueued_at ?? "";
      const older =
        items.length === PAGE
          ? this.state.items.filter((i) => !fresh.has(i.generation_id) && i.enqueued_at < last)
          : [];
      this.update({
        items: [...items, ...older],
        loading: false,
        more: older.length > 0 ? this.state.more : items.length === PAGE,
        error: null,
        known: this.remember(items),
      });
    } catch (err) {
      if (mine === this.generation) this.update({ loading: false, error: (err as Error).message });
      throw err;
    }
  }

  async loadMore(): Promise<void> {
    const last = this.state.items.at(-1);
    if (!last || this.state.loading) return;
    const mine = ++this.generation;
    this.update({ loading: true });
    try {
      const page = await this.api.history(queryOf(this.state.filter, this.state.query, last.generation_id));
      if (mine !== this.generation) return;
      this.update({
        items: [...this.state.items, ...page],
        loading: false,
        more: page.length === PAGE,
        known: this.remember(page),
      });
    } catch (err) {
      if (mine === this.generation) this.update({ loading: false, error: (err as Error).message });
    }
  }

  setQuery(query: string): void {
    this.update({ query, items: [], more: false });
  }

  setFilter(filter: StatusFilter): void {
    this.update({ filter, items: [], more: false });
  }

  /** Stars or unstars at once, then on the server (undone if it refuses). */
  async star(id: string, starred: boolean): Promise<void> {
    const patch = (v: boolean) => {
      const items = this.state.items.map((i) => (i.generation_id === id ? { ...i, starred: v } : i));
      this.update({ items, known: this.remember(items.filter((i) => i.generation_id === id)) });
    };
    patch(starred);
    try {
      await this.api.star(id, starred);
      if (this.state.filter === "starred" && !starred)
        this.update({ items: this.state.items.filter((i) => i.generation_id !== id) });
    } catch (err) {
      patch(!starred);
      throw err;
    }
  }

  /** Deletes a generation's files and row on the server, then drops it from the list. */
  async remove(id: string): Promise<void> {
    await this.api.remove(id);
    const known = new Map(this.state.known);
    known.delete(id);
    this.update({ items: this.state.items.filter((i) => i.generation_id !== id), known });
  }
}
