// The input image: upload, drag and drop, paste (handled page-wide in App) or an http(s) URL.
import { type DragEvent, useState } from "react";
import type { Field } from "../../lib/schemaForm.js";
import { controlId } from "./FieldControl.js";

export interface InputImage {
  /** what is sent as input_image: a data URI or an http(s) URL */
  value: string;
  /** where it came from, in words ("photo.png", "result of step 2", a URL) */
  name: string;
  /** shown in the form; the data URI itself, or the URL */
  previewUrl: string;
  width: number | null;
  height: number | null;
}

interface Props {
  field: Field;
  image: InputImage | null;
  error: string | undefined;
  onFile: (file: File) => void;
  onUrl: (url: string) => void;
}

export function ImageInput({ field, image, error, onFile, onUrl }: Props) {
  const id = controlId(field.name);
  const [dragging, setDragging] = useState(false);
  const [url, setUrl] = useState("");
  const drop = (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    const file = [...e.dataTransfer.files].find((f) => f.type.startsWith("image/"));
    if (file) onFile(file);
    else {
      const text = e.dataTransfer.getData("text/uri-list") || e.dataTransfer.getData("text/plain");
      if (/^https?:\/\//i.test(text.trim())) onUrl(text.trim());
    }
  };
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
            <img src={image.previewUrl} alt={`Input image: ${image.name}`} />
            <figcaption>
              {image.name}
              {image.width && image.height ? ` · ${image.width}×${image.height}` : ""}
            </figcaption>
          </figure>
        ) : (
          <p>Drop an image here, paste one (Ctrl+V), or choose a file.</p>
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
      {field.description && <p className="description">{field.description}</p>}
      {error && (
        <p className="field-error" id={`${id}-error`} role="alert">
          {error}
        </p>
      )}
    </fieldset>
  );
}
