// Two or more results side by side, and any two of them as a slider overlay.
import { useState } from "react";

export interface CompareItem {
  id: string;
  url: string;
  label: string;
}

interface Props {
  items: readonly CompareItem[];
  onRemove: (id: string) => void;
  onClear: () => void;
}

export function ComparePanel({ items, onRemove, onClear }: Props) {
  const [aId, setA] = useState<string | null>(null);
  const [bId, setB] = useState<string | null>(null);
  const [split, setSplit] = useState(50);
  const a = items.find((i) => i.id === aId) ?? items[0];
  const b = items.find((i) => i.id === bId && i.id !== a?.id) ?? items.find((i) => i.id !== a?.id);
  return (
    <section className="panel compare" aria-labelledby="compare-title">
      <div className="panel-head">
        <h2 id="compare-title">Compare ({items.length})</h2>
        <button type="button" className="secondary" onClick={onClear}>
          Clear comparison
        </button>
      </div>
      {items.length < 2 && <p className="empty">Tick “Compare” on one more result.</p>}
      <div className="side-by-side">
        {items.map((i) => (
          <figure key={i.id} data-compare={i.id}>
            <img src={i.url} alt={`Compared: ${i.label}`} />
            <figcaption>
              {i.label}{" "}
              <button
                type="button"
                className="link"
                aria-label={`Remove from comparison: ${i.label}`}
                onClick={() => onRemove(i.id)}
              >
                remove
              </button>
            </figcaption>
          </figure>
        ))}
      </div>
      {a && b && (
        <div className="slider-compare">
          <div className="slider-pick">
            <label htmlFor="compare-a">Left</label>
            <select id="compare-a" value={a.id} onChange={(e) => setA(e.target.value)}>
              {items.map((i) => (
                <option key={i.id} value={i.id}>
                  {i.label}
                </option>
              ))}
            </select>
            <label htmlFor="compare-b">Right</label>
            <select id="compare-b" value={b.id} onChange={(e) => setB(e.target.value)}>
              {items
                .filter((i) => i.id !== a.id)
                .map((i) => (
                  <option key={i.id} value={i.id}>
                    {i.label}
                  </option>
                ))}
            </select>
          </div>
          <div className="overlay" data-testid="compare-overlay">
            <img src={b.url} alt={`Right: ${b.label}`} />
            <img
              src={a.url}
              alt={`Left: ${a.label}`}
              className="top"
              style={{ clipPath: `inset(0 ${100 - split}% 0 0)` }}
            />
            <div className="divider" style={{ left: `${split}%` }} aria-hidden="true" />
          </div>
          <label htmlFor="compare-split" className="slider-label">
            Slider position
          </label>
          <input
            id="compare-split"
            type="range"
            min={0}
            max={100}
            value={split}
            onChange={(e) => setSplit(Number(e.target.value))}
          />
        </div>
      )}
    </section>
  );
}
