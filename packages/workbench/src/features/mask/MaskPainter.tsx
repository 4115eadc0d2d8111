// The mask painter: the input image with the mask over it as a translucent overlay, a brush
// and an eraser drawn with the pointer (mouse, pen or finger), brush size, feather (previewed as
// the blur the export applies), invert, clear. MaskThumb shows the same overlay on the form's
// thumbnail.
import { type PointerEvent, useEffect, useRef, useState } from "react";
import { useStore } from "../../app/store.js";
import { BRUSH_MAX, BRUSH_MIN, FEATHER_MAX, type Mask, type Point } from "./mask.js";
import type { CanvasSurface } from "./surface.js";

/** The surface's own canvas, placed in `host` (it is the painting itself, not a copy). */
function usePlacedCanvas(surface: CanvasSurface | null, host: React.RefObject<HTMLElement | null>) {
  useEffect(() => {
    const el = host.current;
    const canvas = surface?.canvas;
    if (!el || !canvas) return;
    canvas.className = "mask-paint";
    canvas.setAttribute("data-testid", "mask-paint");
    el.appendChild(canvas);
    return () => canvas.remove();
  }, [surface, host]);
}

/** The painted mask over the form's thumbnail (redrawn when the mask changes). */
export function MaskThumb({ mask }: { mask: Mask }) {
  const { version, painted, size } = useStore(mask);
  const ref = useRef<HTMLCanvasElement>(null);
  useEffect(() => {
    const c = ref.current;
    const src = (mask.surface as CanvasSurface | null)?.canvas;
    if (!c || !src || !size) return;
    const scale = Math.min(1, 360 / Math.max(size.width, size.height));
    c.width = Math.round(size.width * scale);
    c.height = Math.round(size.height * scale);
    const g = c.getContext("2d");
    g?.clearRect(0, 0, c.width, c.height);
    g?.drawImage(src, 0, 0, c.width, c.height);
    void version; // drawn again with every change of the pixels
  }, [mask, version, size]);
  if (!painted) return null;
  return <canvas ref={ref} className="mask-thumb" data-testid="mask-thumb" />;
}

/** The PNG that is sent, saved as mask.png (what copied code reads). */
async function download(mask: Mask): Promise<void> {
  const png = await mask.png();
  if (!png) return;
  const a = document.createElement("a");
  a.href = URL.createObjectURL(png);
  a.download = "mask.png";
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

interface Props {
  mask: Mask;
  imageUrl: string;
  imageName: string;
}

export function MaskPainter({ mask, imageUrl, imageName }: Props) {
  const s = useStore(mask);
  const dialog = useRef<HTMLDialogElement>(null);
  const stage = useRef<HTMLDivElement>(null);
  const last = useRef<Point | null>(null);
  const [cursor, setCursor] = useState<{ x: number; y: number } | null>(null);
  const [stageWidth, setStageWidth] = useState(0);
  usePlacedCanvas(mask.surface as CanvasSurface | null, stage);

  useEffect(() => {
    const d = dialog.current;
    if (!d) return;
    if (s.open && !d.open) d.showModal();
    if (!s.open && d.open) d.close();
  }, [s.open]);

  useEffect(() => {
    const el = stage.current;
    if (!el) return;
    const ro = new ResizeObserver(() => setStageWidth(el.getBoundingClientRect().width));
    ro.observe(el);
    return () => ro.disconnect();
  }, []);

  const size = s.size;
  /** working px per screen px */
  const scale = size && stageWidth > 0 ? size.width / stageWidth : 1;
  const at = (e: PointerEvent): Point => {
    const r = (stage.current as HTMLDivElement).getBoundingClientRect();
    return { x: (e.clientX - r.left) * scale, y: (e.clientY - r.top) * scale };
  };
  const down = (e: PointerEvent<HTMLDivElement>) => {
    if (!size || e.button > 0) return;
    e.currentTarget.setPointerCapture(e.pointerId);
    const p = at(e);
    last.current = p;
    mask.stroke([p], scale);
  };
  const move = (e: PointerEvent<HTMLDivElement>) => {
    const r = e.currentTarget.getBoundingClientRect();
    setCursor({ x: e.clientX - r.left, y: e.clientY - r.top });
    const from = last.current;
    if (!from) return;
    const p = at(e);
    mask.stroke([from, p], scale);
    last.current = p;
  };
  const up = () => {
    last.current = null;
  };
  const ratio = size ? size.width / size.height : 4 / 3;
  const featherPx = scale > 0 ? s.feather / scale : 0;

  return (
    <dialog
      ref={dialog}
      className="mask-dialog"
      aria-labelledby="mask-title"
      onClose={() => mask.setOpen(false)}
    >
      <div className="panel-head">
        <h2 id="mask-title">Mask: paint what to change</h2>
        <button type="button" onClick={() => mask.setOpen(false)}>
          Done
        </button>
      </div>
      <p className="description">
        Painted parts may change; the rest of {imageName || "the image"} is kept. Sent as mask_image only when
        something is painted.
      </p>
      <div className="mask-tools">
        <fieldset className="mask-mode">
          <legend className="visually-hidden">Tool</legend>
          <label className="tab">
            <input type="radio" name="mask-tool" checked={!s.erase} onChange={() => mask.setErase(false)} />
            Brush
          </label>
          <label className="tab">
            <input type="radio" name="mask-tool" checked={s.erase} onChange={() => mask.setErase(true)} />
            Erase
          </label>
        </fieldset>
        <label className="mask-slider">
          <span>Size {s.brush} px</span>
          <input
            type="range"
            min={BRUSH_MIN}
            max={BRUSH_MAX}
            step={1}
            value={s.brush}
            aria-label="Brush size"
            onChange={(e) => mask.setBrush(Number(e.target.value))}
          />
        </label>
        <label className="mask-slider">
          <span>Feather {s.feather} px</span>
          <input
            type="range"
            min={0}
            max={FEATHER_MAX}
            step={1}
            value={s.feather}
            aria-label="Feather"
            aria-describedby="mask-feather-desc"
            onChange={(e) => mask.setFeather(Number(e.target.value))}
          />
        </label>
        <span id="mask-feather-desc" className="visually-hidden">
          How far the mask's edge is blurred before it is sent.
        </span>
        <div className="mask-buttons">
          <button type="button" className="secondary" onClick={() => mask.invert()} disabled={!size}>
            Invert
          </button>
          <button type="button" className="danger" onClick={() => mask.clear()} disabled={!s.painted}>
            Clear
          </button>
          <button
            type="button"
            className="secondary"
            onClick={() => void download(mask)}
            disabled={!s.painted}
          >
            Download mask
          </button>
        </div>
      </div>
      <div className="mask-area">
        <div
          ref={stage}
          className={`mask-stage${s.erase ? " erasing" : ""}`}
          style={
            {
              "--ratio": ratio,
              "--feather": `${featherPx.toFixed(1)}px`,
            } as React.CSSProperties
          }
          data-testid="mask-stage"
          onPointerDown={down}
          onPointerMove={move}
          onPointerUp={up}
          onPointerCancel={up}
          onPointerLeave={() => setCursor(null)}
        >
          <img src={imageUrl} alt={`The input image, to paint on: ${imageName}`} draggable={false} />
          {cursor && (
            <span
              className="mask-cursor"
              aria-hidden="true"
              style={{ left: cursor.x, top: cursor.y, width: s.brush * 2, height: s.brush * 2 }}
            />
          )}
        </div>
      </div>
      <p className="mask-status" role="status" data-testid="mask-status">
        {s.painted
          ? "Painted: only the coloured part may change."
          : "Nothing painted: the whole image may change."}
      </p>
    </dialog>
  );
}

/** Under the input's thumbnail: open the painter, and what is painted now. */
export function MaskControls({
  mask,
  field,
  error,
}: {
  mask: Mask;
  field: { label: string; description: string };
  /** the server's (or the form's) word on mask_image */
  error?: string | undefined;
}) {
  const s = useStore(mask);
  return (
    <div className={`mask-controls${error ? " invalid" : ""}`} data-field="mask_image">
      <button
        type="button"
        id="f-mask_image"
        aria-describedby={error ? "f-mask_image-error" : undefined}
        className="secondary small"
        onClick={() => mask.setOpen(true)}
        disabled={!s.size}
        title={field.description}
      >
        {s.painted ? "Edit mask" : "Paint mask"}
      </button>
      {s.painted && (
        <>
          <span className="mask-state" data-testid="mask-state">
            Mask: only the painted part changes
          </span>
          <button type="button" className="danger small" onClick={() => mask.clear()}>
            Clear mask
          </button>
        </>
      )}
      {error && (
        <p className="field-error" id="f-mask_image-error" role="alert">
          {field.label}: {error}
        </p>
      )}
    </div>
  );
}
