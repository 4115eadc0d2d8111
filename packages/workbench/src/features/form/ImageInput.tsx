// The input image: upload, drag and drop, paste (page-wide, see useShortcuts) or an http(s) URL.
import { type DragEvent, type ReactNode, useState } from "react";
import { controlId } from "./FieldControl.js";
import type { InputImage } from "./image.js";
import type { Field } from "./schemaForm.js";

interface Props {
  field: Field;
  image: InputImage | null;
  loading: boolean;
  error: string | undefined;
  onFile: (file: File) => void;
  onUrl: (url: string) => void;
  onView: (() => void) | null;
  /** drawn over the thumbnail, at its size (the painted mask) */
  overlay?: ReactNode;
  /** under the image (the mask's buttons) */
  children?: ReactNode;
}

const kb = (n: number) =>
  n > 1024 * 1024 ? `${(n / 1024 / 1024).toFixed(1)} MB` : `${Math.round(n / 1024)} KB`;

export function ImageInput({
  field,
  image,
  loading,
  error,
  onFile,
  onUrl,
  onView,
  overlay,
  children,
}: Props) {
  const id = controlId(field.name);
  const [dragging, setDragging] = useState(false);
  const [url, setUrl] = useState("");
  const drop = (e: DragEvent) => {
    e.preventDefault();
    e.stopPropagation(); // the page's own drop handler is for drops elsewhere
    setDragging(false);
    const file = e.dataTransfer.files[0];
    if (file) onFile(file);
    else {
      const text = e.dataTransfer.getData("text/uri-list") || e.dataTransfer.getData("text/plain");
      if (/^https?:\/\//i.test(text.trim())) onUrl(text.trim());
    }
  };
  const name = image ? image.ref.name : "";
  return (
    <fieldset className={`field field-image${error ? " invalid" : ""}`} data-field={field.name}>
      <legend>
        {field.label}
        {field.required && <span className="required"> (required)</span>}
      </legend>
      <section
        className={`dropzone${dragging ? " dragging" : ""}`}
        aria-label="Input image: drop an image file here"
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={drop}
      >
        {image ? (
          <figure>
            <span className="thumb-frame">
              {onView ? (
                <button
                  type="button"
                  className="image-button"
                  onClick={onView}
                  aria-label={`View the input image: ${name}`}
                >
                  <img src={image.previewUrl} alt={`Input image: ${name}`} decoding="async" />
                </button>
              ) : (
                <img src={image.previewUrl} alt={`Input image: ${name}`} decoding="async" />
              )}
              {overlay}
            </span>
            <figcaption>
              {name}
              {image.width && image.height ? ` · ${image.width}×${image.height}` : ""}
              {image.bytes ? ` · ${kb(image.bytes)}` : ""}
            </figcaption>
          </figure>
        ) : (
          <p>
            {loading ? "Loading the image…" : "Drop an image here, paste one (Ctrl+V), or choose a file."}
          </p>
        )}
        <label className="button secondary" htmlFor={`${id}-file`}>
          Upload image
        </label>
        <input
          id={`${id}-file`}
          className="visually-hidden"
          type="file"
          accept="image/png,image/jpeg,image/webp,image/gif"
          aria-describedby={error ? `${id}-error` : undefined}
          onChange={(e) => {
            const file = e.target.files?.[0];
            if (file) onFile(file);
            e.target.value = "";
          }}
        />
      </section>
      <div className="url-row">
        <label htmlFor={`${id}-url`} className="visually-hidden">
          Image URL
        </label>
        <input
          id={`${id}-url`}
          type="url"
          placeholder="or an image URL: https://…"
          value={url}
          onChange={(e) => setUrl(e.target.value)}
          onKeyDown={(e) => {
            if (e.key === "Enter" && !e.ctrlKey && !e.metaKey) {
              e.preventDefault(); // the URL, not the whole form
              if (url.trim()) onUrl(url.trim());
            }
          }}
        />
        <button type="button" className="secondary" onClick={() => url.trim() && onUrl(url.trim())}>
          Use URL
        </button>
      </div>
      {children}
      {field.description && <p className="description">{field.description}</p>}
      {error && (
        <p className="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      )}
    </fieldset>
  );
}
