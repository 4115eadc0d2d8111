// The reference images beside the input (input_image_2…4, as many as the model's schema has):
// each dropped or chosen, cleared, and sent as input_image is. Filled slots show, and the next
// empty one.
import { type DragEvent, useState } from "react";
import { controlId } from "./FieldControl.js";
import type { InputImage } from "./image.js";
import type { Field } from "./schemaForm.js";

interface Props {
  fields: Field[];
  refs: Record<string, InputImage>;
  errors: Record<string, string>;
  onFile: (field: string, file: File) => void;
  onUrl: (field: string, url: string) => void;
  onClear: (field: string) => void;
}

export function RefSlots({ fields, refs, errors, onFile, onUrl, onClear }: Props) {
  if (fields.length === 0) return null;
  const firstEmpty = fields.find((f) => !refs[f.name])?.name;
  const shown = fields.filter((f) => refs[f.name] || f.name === firstEmpty || errors[f.name]);
  const first = fields[0];
  return (
    <fieldset className="field refs" data-field="references">
      <legend>
        Reference images <span className="hint">up to {fields.length}, optional</span>
      </legend>
      <div className="ref-slots">
        {shown.map((f) => (
          <Slot
            key={f.name}
            field={f}
            image={refs[f.name] ?? null}
            error={errors[f.name]}
            onFile={(file) => onFile(f.name, file)}
            onUrl={(url) => onUrl(f.name, url)}
            onClear={() => onClear(f.name)}
          />
        ))}
      </div>
      {first && (first.note || first.description) && (
        <p className="description" title={first.note ? first.description : undefined}>
          {first.note ?? first.description}
        </p>
      )}
      {shown.map((f) =>
        errors[f.name] ? (
          <p key={f.name} className="field-error" id={`${controlId(f.name)}-error`} role="alert">
            {f.label}: {errors[f.name]}
          </p>
        ) : null,
      )}
    </fieldset>
  );
}

function Slot(props: {
  field: Field;
  image: InputImage | null;
  error: string | undefined;
  onFile: (file: File) => void;
  onUrl: (url: string) => void;
  onClear: () => void;
}) {
  const { field, image, error } = props;
  const id = controlId(field.name);
  const [dragging, setDragging] = useState(false);
  const drop = (e: DragEvent) => {
    e.preventDefault();
    e.stopPropagation(); // the page's own drop handler sets the input image
    setDragging(false);
    const file = e.dataTransfer.files[0];
    if (file) return props.onFile(file);
    const text = (e.dataTransfer.getData("text/uri-list") || e.dataTransfer.getData("text/plain")).trim();
    if (/^https?:\/\//i.test(text)) props.onUrl(text);
  };
  return (
    <section
      className={`ref-slot${dragging ? " dragging" : ""}${error ? " invalid" : ""}`}
      data-field={field.name}
      aria-label={`${field.label}: drop an image file here`}
      onDragOver={(e) => {
        e.preventDefault();
        setDragging(true);
      }}
      onDragLeave={() => setDragging(false)}
      onDrop={drop}
    >
      {image ? (
        <img
          src={image.previewUrl}
          alt={`${field.label}: ${image.ref.name}`}
          title={`${image.ref.name}${image.width && image.height ? ` · ${image.width}×${image.height}` : ""}`}
          decoding="async"
        />
      ) : (
        <span className="ref-empty">{field.label}</span>
      )}
      <div className="ref-actions">
        <label className="button secondary small" htmlFor={`${id}-file`}>
          {image ? "Replace" : "Choose"}
          <span className="visually-hidden"> {field.label}</span>
        </label>
        {image && (
          <button type="button" className="danger small" onClick={props.onClear}>
            Clear<span className="visually-hidden"> {field.label}</span>
          </button>
        )}
      </div>
      <input
        id={`${id}-file`}
        className="visually-hidden"
        type="file"
        accept="image/png,image/jpeg,image/webp,image/gif"
        aria-describedby={error ? `${id}-error` : undefined}
        onChange={(e) => {
          const file = e.target.files?.[0];
          if (file) props.onFile(file);
          e.target.value = "";
        }}
      />
    </section>
  );
}
