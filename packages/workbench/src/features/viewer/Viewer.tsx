// The viewer: a large view of a result or an input with zoom and pan; before/after against the
// input with a slider dragged on the image itself; side by side; a toggle. Captions name what
// differs between the images. The open item's actions live here too.
import { useEffect, useRef, useState } from "react";
import { ReactCompareSlider, ReactCompareSliderImage } from "react-compare-slider";
import { TransformComponent, TransformWrapper } from "react-zoom-pan-pinch";
import { AuthImage, useAuthUrl } from "../../app/AuthImage.js";
import { useStore } from "../../app/store.js";
import type { ViewMode, Workbench } from "../workspace/workbench.js";
import { type ChangeMask, diffLabels, maskCaption, type ViewItem } from "./compare.js";

const MODES: Record<ViewMode, string> = {
  single: "Zoom",
  "before-after": "Before/after",
  "side-by-side": "Side by side",
  toggle: "Toggle",
};

export function Viewer({ wb }: { wb: Workbench }) {
  const { viewer, compared } = useStore(wb);
  const gallery = useStore(wb.parts.gallery);
  const ref = useRef<HTMLDialogElement>(null);
  const [flip, setFlip] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);
  const [showMask, setShowMask] = useState(false);
  useEffect(() => {
    const d = ref.current;
    if (!d) return;
    if (viewer && !d.open) d.showModal();
    if (!viewer && d.open) d.close();
    setConfirmDelete(false);
  }, [viewer]);
  const items = viewer?.items ?? [];
  const labels = diffLabels(items);
  const index = viewer?.index ?? 0;
  const current = items[index];
  const mode = viewer?.mode ?? "single";
  const pairable = items.length >= 2;
  const [a, b] = [items[0], items[1]];
  const aLabel = labels[0] ?? "";
  const bLabel = labels[1] ?? "";
  const history = current ? gallery.known.get(current.generationId) : undefined;

  return (
    <dialog
      ref={ref}
      className="viewer"
      aria-labelledby="viewer-title"
      onClose={() => wb.setViewer(null)}
      onKeyDown={(e) => {
        if ((e.target as HTMLElement).closest("input, select, textarea")) return;
        if (e.key === "t" && mode === "toggle") setFlip(!flip);
        if (e.key === "m" && current?.mask && (mode === "single" || !pairable)) setShowMask(!showMask);
        if (mode === "single" && items.length > 1 && (e.key === "ArrowRight" || e.key === "ArrowLeft"))
          wb.setViewer({ index: (index + (e.key === "ArrowRight" ? 1 : items.length - 1)) % items.length });
      }}
    >
      {viewer && current && (
        <>
          <div className="panel-head">
            <h2 id="viewer-title">{history?.prompt ?? labels[index]}</h2>
            <fieldset className="viewer-modes">
              <legend className="visually-hidden">View</legend>
              {(Object.keys(MODES) as ViewMode[]).map((m) => (
                <button
                  key={m}
                  type="button"
                  className={mode === m ? "" : "secondary"}
                  aria-pressed={mode === m}
                  disabled={m !== "single" && !pairable}
                  onClick={() => wb.setViewer({ mode: m })}
                >
                  {MODES[m]}
                </button>
              ))}
            </fieldset>
            <button type="button" className="secondary" onClick={() => wb.setViewer(null)}>
              Close
            </button>
          </div>
          <div className="viewer-stage">
            {mode === "single" || !pairable || !a || !b ? (
              <Zoom
                item={current}
                label={labels[index] ?? ""}
                showMask={showMask}
                onMask={current.mask ? () => setShowMask(!showMask) : null}
              />
            ) : mode === "before-after" ? (
              <BeforeAfter before={b} after={a} beforeLabel={bLabel} afterLabel={aLabel} />
            ) : mode === "side-by-side" ? (
              <div className="viewer-side">
                {items.map((it, i) => (
                  <figure key={it.key} data-compare={it.key}>
                    <AuthImage src={it.url} alt={`Compared: ${labels[i]}`} />
                    <figcaption>{labels[i]}</figcaption>
                  </figure>
                ))}
              </div>
            ) : (
              <figure className="viewer-toggle">
                <AuthImage src={(flip ? b : a).url} alt={`Showing: ${flip ? bLabel : aLabel}`} />
                <figcaption>
                  <button type="button" onClick={() => setFlip(!flip)} aria-keyshortcuts="t">
                    Show {flip ? aLabel : bLabel} <kbd>T</kbd>
                  </button>{" "}
                  now: {flip ? bLabel : aLabel}
                </figcaption>
              </figure>
            )}
          </div>
          {items.length > 1 && mode === "single" && (
            <fieldset className="viewer-pick">
              <legend className="visually-hidden">Image</legend>
              {items.map((it, i) => (
                <button
                  key={it.key}
                  type="button"
                  className={i === index ? "" : "secondary"}
                  aria-pressed={i === index}
                  onClick={() => wb.setViewer({ index: i })}
                >
                  {labels[i]}
                </button>
              ))}
            </fieldset>
          )}
          <div className="actions viewer-actions">
            {history && (
              <button type="button" className="secondary" onClick={() => void wb.reuse(history)}>
                Reuse parameters
              </button>
            )}
            {current.kind === "result" && (
              <button type="button" onClick={() => void wb.continueFrom(current.generationId)}>
                Continue editing
              </button>
            )}
            <a className="button secondary" href={current.url} download>
              Download
            </a>
            <label className="checkbox">
              <input
                type="checkbox"
                checked={compared.includes(current.key)}
                onChange={() => wb.toggleCompare(current.key)}
              />
              Compare
            </label>
            {history && (
              <button
                type="button"
                className="secondary"
                aria-pressed={history.starred === true}
                onClick={() => void wb.star(history.generation_id, !history.starred)}
              >
                {history.starred ? "★ Starred" : "☆ Star"}
              </button>
            )}
            {history &&
              (confirmDelete ? (
                <>
                  <button
                    type="button"
                    className="danger"
                    onClick={() => void wb.remove(history.generation_id)}
                  >
                    Delete for good
                  </button>
                  <button type="button" className="secondary" onClick={() => setConfirmDelete(false)}>
                    Keep
                  </button>
                </>
              ) : (
                <button
                  type="button"
                  className="danger"
                  disabled={history.status === "queued" || history.status === "processing"}
                  onClick={() => setConfirmDelete(true)}
                >
                  Delete
                </button>
              ))}
          </div>
          {current.mask && (
            <p className="mask-caption" data-testid="mask-caption">
              Change mask: {maskCaption(current.mask)}
            </p>
          )}
          {history && (
            <p className="description">{describe(history as unknown as Record<string, unknown>)}</p>
          )}
        </>
      )}
    </dialog>
  );
}

function describe(h: Record<string, unknown>): string {
  const parts = ["seed", "guidance", "num_inference_steps", "aspect_ratio"]
    .filter((k) => h[k] !== undefined && h[k] !== null)
    .map((k) => `${k === "num_inference_steps" ? "steps" : k} ${String(h[k])}`);
  if (h.width && h.height) parts.push(`${String(h.width)}×${String(h.height)}`);
  return `${String(h.status)} · ${parts.join(" · ")}`;
}

function Zoom(props: { item: ViewItem; label: string; showMask: boolean; onMask: (() => void) | null }) {
  const { item, label, showMask, onMask } = props;
  return (
    <TransformWrapper minScale={0.5} maxScale={16} centerOnInit>
      {({ zoomIn, zoomOut, resetTransform }) => (
        <div className="zoom">
          <fieldset className="zoom-controls">
            <legend className="visually-hidden">Zoom</legend>
            <button type="button" className="secondary" onClick={() => zoomIn()} aria-label="Zoom in">
              +
            </button>
            <button type="button" className="secondary" onClick={() => zoomOut()} aria-label="Zoom out">
              −
            </button>
            <button type="button" className="secondary" onClick={() => resetTransform()}>
              Fit
            </button>
            {onMask && (
              <button
                type="button"
                className={showMask ? "" : "secondary"}
                aria-pressed={showMask}
                aria-keyshortcuts="m"
                onClick={onMask}
              >
                Change mask <kbd>M</kbd>
              </button>
            )}
            <span className="description">Scroll or pinch to zoom, drag to pan</span>
          </fieldset>
          <TransformComponent wrapperClass="zoom-wrapper" contentClass="zoom-content">
            <div className="mask-frame">
              <AuthImage src={item.url} alt={`${item.kind === "input" ? "Input" : "Result"}: ${label}`} />
              {showMask && item.mask && <MaskOverlay mask={item.mask} />}
            </div>
          </TransformComponent>
        </div>
      )}
    </TransformWrapper>
  );
}

/** The changed region tinted over the image: the mask's grey levels as the tint's coverage. */
function MaskOverlay({ mask }: { mask: ChangeMask }) {
  const url = useAuthUrl(mask.url);
  if (!url) return null;
  const image = `url("${url}")`;
  return (
    <div
      className="change-mask"
      data-testid="change-mask"
      role="img"
      aria-label={`Change mask: ${maskCaption(mask)}`}
      style={{ maskImage: image, WebkitMaskImage: image }}
    />
  );
}

function BeforeAfter(props: { before: ViewItem; after: ViewItem; beforeLabel: string; afterLabel: string }) {
  const before = useAuthUrl(props.before.url);
  const after = useAuthUrl(props.after.url);
  return (
    <figure className="before-after" data-testid="before-after">
      <ReactCompareSlider
        className="compare-slider"
        itemOne={<ReactCompareSliderImage src={before} alt={`Before: ${props.beforeLabel}`} />}
        itemTwo={<ReactCompareSliderImage src={after} alt={`After: ${props.afterLabel}`} />}
      />
      <figcaption>
        <span>◀ {props.beforeLabel}</span>
        <span>{props.afterLabel} ▶</span>
      </figcaption>
    </figure>
  );
}
