// The request form: generated from the model's schema (primary fields first, the rest under
// "More options"), the input image, prompt help, the output size, and a Run bar that stays in
// view with an error summary that names and focuses what to fix.
import { type FormEvent, useEffect, useRef, useState } from "react";
import { useStore } from "../../app/store.js";
import { LoraPicker } from "../loras/LoraPicker.js";
import { MaskControls, MaskPainter, MaskThumb } from "../mask/MaskPainter.js";
import { PromptHelp } from "../prompt/PromptHelp.js";
import type { Runs } from "../run/runs.js";
import { SweepControls } from "../sweep/Sweep.js";
import type { Workbench } from "../workspace/workbench.js";
import { controlId, FieldControl } from "./FieldControl.js";
import type { FormMode } from "./form.js";
import { ImageInput } from "./ImageInput.js";
import { outputSize } from "./outputSize.js";
import { RefSlots } from "./RefSlots.js";
import { displayOrder, type Field, IMAGE_KINDS, isShown, PRIMARY_FIELDS, shownValue } from "./schemaForm.js";

/** What a field's current value costs, said beside it. */
function noticeOf(f: Field, values: Record<string, unknown>): string | undefined {
  if (f.name === "negative_prompt" && typeof values.true_cfg_scale === "number" && values.true_cfg_scale > 1)
    return `True guidance is on (${values.true_cfg_scale}): the model runs twice per step, so a run takes about twice the time.`;
  return undefined;
}

export function FormPanel({ wb }: { wb: Workbench }) {
  const { form, runs } = wb.parts;
  const s = useStore(form);
  const [moreOpen, setMoreOpen] = useState(false);
  const ref = useRef<HTMLFormElement>(null);
  const fields = s.fields;
  const imageField = fields.find((f) => f.kind === "image");
  const maskField = fields.find((f) => f.kind === "mask");
  const refFields = fields.filter((f) => f.kind === "reference");
  const shown = displayOrder(fields).filter(
    (f) => !IMAGE_KINDS.includes(f.kind) && isShown(f, fields, s.values),
  );
  const primary = shown.filter((f) => PRIMARY_FIELDS.includes(f.name));
  const more = shown.filter((f) => !PRIMARY_FIELDS.includes(f.name));
  const invalid = Object.keys(s.errors.fields);
  const moreInvalid = more.some((f) => s.errors.fields[f.name]);

  // A refused run: open what hides the first invalid field, then focus it.
  useEffect(() => {
    if (s.attempt === 0) return;
    if (moreInvalid) setMoreOpen(true);
    requestAnimationFrame(() => {
      const root = ref.current;
      const el =
        root?.querySelector<HTMLElement>('[aria-invalid="true"]') ??
        root?.querySelector<HTMLElement>(".field.invalid input");
      (el ?? document.getElementById("run-errors"))?.focus();
      el?.scrollIntoView({ block: "center" });
    });
  }, [s.attempt, moreInvalid]);

  const control = (f: Field) =>
    f.kind === "adapters" ? (
      <LoraPicker
        key={f.name}
        field={f}
        loras={wb.parts.loras}
        value={s.values[f.name]}
        error={s.errors.fields[f.name]}
        onChange={(v) => form.setValue(f.name, v)}
      />
    ) : (
      <FieldControl
        key={f.name}
        field={f}
        value={shownValue(f, s.values)}
        error={s.errors.fields[f.name]}
        notice={noticeOf(f, s.values)}
        onChange={(v) => form.setValue(f.name, v)}
      />
    );
  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    void wb.submit();
  };
  const aspect = typeof s.values.aspect_ratio === "string" ? s.values.aspect_ratio : "match_input_image";
  const input = s.image?.width && s.image.height ? { width: s.image.width, height: s.image.height } : null;
  const size = outputSize(aspect, input);
  const atInput =
    s.values.output_resolution === "input" && fields.some((f) => f.name === "output_resolution");
  const labelOf = (name: string) =>
    name === "input_image" ? "Input image" : (fields.find((f) => f.name === name)?.label ?? name);
  const generationId = s.image?.ref.kind === "server" ? s.image.ref.generationId : null;
  const generating = s.mode === "generate";

  return (
    <form
      ref={ref}
      className="panel request"
      aria-label={generating ? "Generate request" : "Edit request"}
      onSubmit={onSubmit}
      noValidate
    >
      <div className="request-body">
        {s.canGenerate && <ModeSwitch mode={s.mode} onMode={(m) => form.setMode(m)} />}
        {imageField && (
          <ImageInput
            field={imageField}
            image={s.image}
            loading={s.loadingImage}
            error={s.errors.fields[imageField.name]}
            onFile={(f) => void wb.pickFile(f)}
            onUrl={(u) => void wb.pickUrl(u)}
            onView={
              generationId && s.image?.ref.kind === "server"
                ? () =>
                    wb.view(
                      `${s.image?.ref.kind === "server" && s.image.ref.role === "result" ? "result" : "input"}:${generationId}`,
                    )
                : null
            }
            overlay={maskField ? <MaskThumb mask={wb.parts.mask} /> : null}
          >
            {maskField && s.image && (
              <MaskControls mask={wb.parts.mask} field={maskField} error={s.errors.fields.mask_image} />
            )}
          </ImageInput>
        )}
        {imageField && maskField && s.image && (
          <MaskPainter mask={wb.parts.mask} imageUrl={s.image.previewUrl} imageName={s.image.ref.name} />
        )}
        <RefSlots
          fields={refFields}
          refs={s.refs}
          errors={s.errors.fields}
          onFile={(name, f) => void form.pickRefFile(name, f)}
          onUrl={(name, u) => void form.pickRefUrl(name, u)}
          onClear={(name) => void form.clearRef(name)}
        />
        {primary.map((f) =>
          f.name === "prompt" ? (
            <div key={f.name}>
              {control(f)}
              <PromptHelp
                onExample={(ex) => {
                  form.setValue("prompt", ex.prompt);
                  for (const [k, v] of Object.entries(ex.values ?? {})) form.setValue(k, v);
                  document.getElementById(controlId("prompt"))?.focus();
                }}
              />
            </div>
          ) : (
            control(f)
          ),
        )}
        <p className="output-size" aria-live="polite">
          Output size:{" "}
          <strong data-testid="output-size">
            {atInput
              ? input
                ? `${input.width} × ${input.height}`
                : "the input image's size"
              : size
                ? `${size.width} × ${size.height}`
                : "choose an input image"}
          </strong>
          {atInput && size && (
            <span className="hint">
              {" "}
              (the model edits at {size.width} × {size.height})
            </span>
          )}
        </p>
        <details
          className="more-options"
          open={moreOpen || moreInvalid}
          onToggle={(e) => setMoreOpen((e.target as HTMLDetailsElement).open)}
        >
          <summary>More options</summary>
          {more.map(control)}
        </details>
        <SweepControls fields={fields} busy={!s.modelId} onRun={(spec) => void wb.runSweep(spec)} />
      </div>
      <RunBar
        wb={wb}
        runs={runs}
        invalid={invalid}
        general={s.errors.general}
        labelOf={labelOf}
        ready={!!s.modelId}
      />
    </form>
  );
}

/** Edit an image, or make one from the prompt alone (text-to-image: its own schema and endpoint). */
function ModeSwitch({ mode, onMode }: { mode: FormMode; onMode: (m: FormMode) => void }) {
  return (
    <>
      <fieldset className="mode-switch" aria-describedby="mode-hint">
        <legend className="visually-hidden">What to do</legend>
        {(
          [
            ["edit", "Edit an image"],
            ["generate", "Generate"],
          ] as const
        ).map(([m, label]) => (
          <label key={m} className={`mode-option${mode === m ? " chosen" : ""}`}>
            <input type="radio" name="form-mode" checked={mode === m} onChange={() => onMode(m)} />
            {label}
          </label>
        ))}
      </fieldset>
      <p className="description mode-hint" id="mode-hint">
        {mode === "generate"
          ? "A new image from the prompt alone (text-to-image); Continue editing makes it the next input."
          : "Change an input image as the prompt says."}
      </p>
    </>
  );
}

function RunBar(props: {
  wb: Workbench;
  runs: Runs;
  invalid: string[];
  general: string | null;
  labelOf: (n: string) => string;
  ready: boolean;
}) {
  const { wb, runs, invalid, general, labelOf, ready } = props;
  const r = useStore(runs);
  const active = runs.runActive;
  return (
    <div className="run-bar">
      {(invalid.length > 0 || general) && (
        <div id="run-errors" className="error-summary" role="alert" tabIndex={-1}>
          {invalid.length > 0 && (
            <p>
              Not run: {invalid.length === 1 ? "one field needs" : `${invalid.length} fields need`} a fix:{" "}
              {invalid.map((name, i) => (
                <span key={name}>
                  {i > 0 && ", "}
                  <a
                    href={`#${controlId(name)}`}
                    onClick={(e) => {
                      e.preventDefault();
                      const el = document.getElementById(
                        /^input_image(_\d+)?$/.test(name) ? `${controlId(name)}-file` : controlId(name),
                      );
                      el?.scrollIntoView({ block: "center" });
                      el?.focus();
                    }}
                  >
                    {labelOf(name)}
                  </a>
                </span>
              ))}
            </p>
          )}
          {general && <p>{general}</p>}
        </div>
      )}
      <div className="run-buttons">
        <button
          type="submit"
          className="run"
          disabled={!ready || r.submitting || active}
          aria-keyshortcuts="Control+Enter"
        >
          {r.submitting ? "Sending…" : "Run"} <kbd>Ctrl</kbd>+<kbd>Enter</kbd>
        </button>
        <button
          type="button"
          className="danger"
          onClick={() => void wb.cancelRun()}
          disabled={!active}
          aria-keyshortcuts="Escape"
        >
          Cancel
        </button>
        <button type="button" className="secondary" onClick={() => wb.openCode(true)} disabled={!ready}>
          Copy as code
        </button>
      </div>
    </div>
  );
}
