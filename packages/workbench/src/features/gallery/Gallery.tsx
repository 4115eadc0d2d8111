// The history as a thumbnail grid (small thumbnails from the server, only the visible rows
// rendered), filtered by status, star and prompt text, paged past the first page. A tile opens
// the viewer, where every action is (reuse, continue, compare, download, delete).
import type { HistoryItem } from "@kontext/client";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useEffect, useRef, useState } from "react";
import { AuthImage } from "../../app/AuthImage.js";
import { useStore } from "../../app/store.js";
import type { Workbench } from "../workspace/workbench.js";
import { FILTERS, type StatusFilter } from "./gallery.js";
import { chainDepth } from "./history.js";

const GAP = 6; // px between tiles
const MIN_TILE = 84;

/** The tile's picture; null for a text-to-image generation with no result (nothing to show). */
export function thumbOf(h: HistoryItem): string | null {
  return h.thumbnail_url ?? h.input_thumbnail_url ?? h.result_url ?? h.input_url;
}

export function GalleryPanel({ wb }: { wb: Workbench }) {
  const gallery = wb.parts.gallery;
  const s = useStore(gallery);
  const { chain } = useStore(wb);
  const [query, setQuery] = useState(s.query);
  const scroller = useRef<HTMLDivElement>(null);
  const [{ cols, tile }, setGrid] = useState({ cols: 3, tile: 96 });
  useEffect(() => {
    const el = scroller.current;
    if (!el) return;
    const ro = new ResizeObserver(() => {
      const width = el.clientWidth;
      const n = Math.max(2, Math.floor((width + GAP) / (MIN_TILE + GAP)));
      setGrid({ cols: n, tile: Math.floor((width - GAP * (n - 1)) / n) });
    });
    ro.observe(el);
    return () => ro.disconnect();
  }, []);
  // The search goes to the server (the whole history), a moment after typing stops.
  useEffect(() => {
    if (query === gallery.get().query) return;
    const t = setTimeout(() => {
      gallery.setQuery(query);
      void gallery.refresh().catch(() => undefined);
    }, 250);
    return () => clearTimeout(t);
  }, [query, gallery]);
  const rows = Math.ceil(s.items.length / cols);
  const virtual = useVirtualizer({
    count: rows + (s.more ? 1 : 0),
    getScrollElement: () => scroller.current,
    estimateSize: () => tile + GAP,
    overscan: 3,
  });
  // biome-ignore lint/correctness/useExhaustiveDependencies: rows are re-measured when the tile size changes
  useEffect(() => virtual.measure(), [tile, virtual]);
  const last = virtual.getVirtualItems().at(-1);
  useEffect(() => {
    if (s.more && !s.loading && last && last.index >= rows) void gallery.loadMore();
  }, [last, rows, s.more, s.loading, gallery]);

  return (
    <section className="panel gallery" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <div className="gallery-filters">
        <label htmlFor="history-search" className="visually-hidden">
          Search history by prompt
        </label>
        <input
          id="history-search"
          type="search"
          placeholder="Search prompts…"
          value={query}
          onChange={(e) => setQuery(e.target.value)}
        />
        <label htmlFor="history-filter" className="visually-hidden">
          Show
        </label>
        <select
          id="history-filter"
          className="filter-select"
          value={s.filter}
          onChange={(e) => {
            gallery.setFilter(e.target.value as StatusFilter);
            void gallery.refresh().catch(() => undefined);
          }}
        >
          {Object.entries(FILTERS).map(([k, label]) => (
            <option key={k} value={k}>
              {label}
            </option>
          ))}
        </select>
      </div>
      {s.error && (
        <p className="field-error" role="alert">
          The history could not be loaded: {s.error}
        </p>
      )}
      {s.items.length === 0 && !s.loading && (
        <p className="empty">
          {s.query || s.filter !== "all" ? "Nothing matches." : "Nothing yet: run an edit."}
        </p>
      )}
      <div ref={scroller} className="gallery-scroll" data-testid="gallery" data-count={s.items.length}>
        <ul className="gallery-grid" style={{ height: virtual.getTotalSize() }}>
          {virtual.getVirtualItems().map((row) =>
            row.index >= rows ? (
              <li key="more" className="gallery-more" style={{ transform: `translateY(${row.start}px)` }}>
                {s.loading ? "Loading…" : ""}
              </li>
            ) : (
              s.items.slice(row.index * cols, row.index * cols + cols).map((h, i) => (
                <Tile
                  key={h.generation_id}
                  item={h}
                  depth={chainDepth(s.known, h.generation_id)}
                  current={chain.baseId === h.generation_id}
                  style={{
                    transform: `translate(${i * (tile + GAP)}px, ${row.start}px)`,
                    width: tile,
                    height: tile,
                  }}
                  onOpen={() =>
                    wb.view(
                      h.status === "succeeded" && h.result_url
                        ? `result:${h.generation_id}`
                        : `input:${h.generation_id}`,
                    )
                  }
                  onStar={() => void wb.star(h.generation_id, !h.starred)}
                />
              ))
            ),
          )}
        </ul>
      </div>
    </section>
  );
}

function Tile(props: {
  item: HistoryItem;
  depth: number;
  current: boolean;
  style: React.CSSProperties;
  onOpen: () => void;
  onStar: () => void;
}) {
  const { item: h, depth } = props;
  const label = `${h.prompt} (seed ${h.seed})`;
  return (
    <li
      className={`tile status-${h.status}${props.current ? " current" : ""}`}
      style={props.style}
      data-generation={h.generation_id}
      data-depth={depth}
      aria-label={`History: ${h.prompt}`}
    >
      <button
        type="button"
        className="tile-open"
        onClick={props.onOpen}
        aria-label={`Open: ${label}`}
        title={`${h.prompt} · ${h.status}`}
      >
        {thumbOf(h) !== null && (
          <AuthImage src={thumbOf(h) as string} alt="" loading="lazy" width={96} height={96} />
        )}
      </button>
      {h.status !== "succeeded" && <span className={`tile-status ${h.status}`}>{h.status}</span>}
      {depth > 1 && <span className="tile-step">step {depth}</span>}
      <button
        type="button"
        className={`tile-star${h.starred ? " on" : ""}`}
        aria-pressed={h.starred === true}
        aria-label={`Star: ${label}`}
        onClick={props.onStar}
      >
        {h.starred ? "★" : "☆"}
      </button>
    </li>
  );
}
