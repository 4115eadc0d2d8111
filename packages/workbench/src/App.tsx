// The workbench: the request form (from the model's schema), live runs, sweeps, comparisons,
// edit chains and the history. State lives here; what it means lives in lib/ (plain modules).
import { type FormEvent, useCallback, useEffect, useMemo, useReducer, useRef, useState } from "react";
import { ChainStrip } from "./features/chain/ChainStrip.js";
import { CodeDialog } from "./features/code/CodeDialog.js";
import { type CompareItem, ComparePanel } from "./features/compare/ComparePanel.js";
import { FieldControl } from "./features/form/FieldControl.js";
import { ImageInput, type InputImage } from "./features/form/ImageInput.js";
import { HistoryPanel } from "./features/history/HistoryPanel.js";
import { GenerationCard, type ResultActions } from "./features/run/GenerationCard.js";
import { SweepControls, SweepGrid } from "./features/sweep/Sweep.js";
import {
  ApiFailure,
  blobToDataUri,
  cancelGeneration,
  getApiKey,
  getHealth,
  getHistory,
  getModel,
  type Health,
  listActive,
  type ModelInfo,
  onAnyCompleted,
  openEventStream,
  setApiKey,
  submitToQueue,
  urlToDataUri,
} from "./lib/api.js";
import { type ChainStep, chainReducer, chainSteps, NO_CHAIN } from "./lib/chain.js";
import { type FormErrors, formErrors, NO_ERRORS } from "./lib/errors.js";
import { Follower } from "./lib/follow.js";
import { type HistoryItem, reuseParams } from "./lib/history.js";
import { outputSize } from "./lib/outputSize.js";
import { anyActive, trackReducer } from "./lib/progress.js";
import {
  defaultValues,
  type Field,
  type FormValues,
  fieldsOf,
  PRIMARY_FIELDS,
  requestBody,
  valuesFrom,
} from "./lib/schemaForm.js";
import { type SweepSpec, sweepCells } from "./lib/sweep.js";

/** Width and height of an image URL as the browser decodes it (null when it cannot). */
function measure(url: string): Promise<{ width: number; height: number } | null> {
  return new Promise((resolve) => {
    const img = new Image();
    img.onload = () => resolve({ width: img.naturalWidth, height: img.naturalHeight });
    img.onerror = () => resolve(null);
    img.src = url;
  });
}

/** 401: the server has API keys on and this browser's key is missing or wrong. */
const unauthorized = (err: unknown) => err instanceof ApiFailure && err.status === 401;

/** Re-renders every 100 ms while `active`, for elapsed times. */
function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 100);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

interface Run {
  ids: string[];
  prompt: string;
}

interface Sweep {
  spec: SweepSpec;
  ids: Array<string | undefined>;
}

export function App() {
  const [model, setModel] = useState<ModelInfo | null>(null);
  const [loadError, setLoadError] = useState<string | null>(null);
  const [health, setHealth] = useState<Health | null>(null);
  const fields = useMemo(() => (model ? fieldsOf(model.json_request_schema) : []), [model]);
  const fieldNames = useMemo(() => fields.map((f) => f.name), [fields]);
  const [values, setValues] = useState<FormValues>({});
  const [image, setImage] = useState<InputImage | null>(null);
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const [tracked, track] = useReducer(trackReducer, {});
  const [run, setRun] = useState<Run | null>(null);
  const [submitting, setSubmitting] = useState(false);
  const [sweep, setSweep] = useState<Sweep | null>(null);
  const [history, setHistory] = useState<HistoryItem[]>([]);
  const [query, setQuery] = useState("");
  const [compared, setCompared] = useState<string[]>([]);
  const [chain, chainDo] = useReducer(chainReducer, NO_CHAIN);
  const [codeOpen, setCodeOpen] = useState(false);
  const [moreOpen, setMoreOpen] = useState(false);
  const [needKey, setNeedKey] = useState(false);

  const [notice, setNotice] = useState<string | null>(null);

  // --- loading: the model (its schema makes the form), the engine's health, the history
  useEffect(() => {
    getModel()
      .then((m) => {
        setModel(m);
        setValues(defaultValues(fieldsOf(m.json_request_schema)));
      })
      .catch((err: unknown) => {
        if (unauthorized(err)) setNeedKey(true);
        else setLoadError(`The model could not be loaded: ${(err as Error).message}`);
      });
  }, []);
  useEffect(() => {
    let stop = false;
    const poll = async () => {
      try {
        const h = await getHealth();
        if (!stop) setHealth(h);
      } catch {
        if (!stop) setHealth(null);
      }
    };
    void poll();
    const t = setInterval(poll, 5000);
    return () => {
      stop = true;
      clearInterval(t);
    };
  }, []);

  const queryRef = useRef(query);
  queryRef.current = query;
  const refreshHistory = useCallback(async () => {
    try {
      setHistory(await getHistory(queryRef.current));
    } catch (err) {
      if (unauthorized(err)) setNeedKey(true);
      else setNotice(`The history could not be loaded: ${(err as Error).message}`);
    }
  }, []);
  useEffect(() => {
    const t = setTimeout(() => void refreshHistory(), query ? 250 : 0);
    return () => clearTimeout(t);
  }, [query, refreshHistory]);
  useEffect(() => {
    let t: ReturnType<typeof setTimeout> | undefined;
    const stop = onAnyCompleted(() => {
      clearTimeout(t);
      t = setTimeout(() => void refreshHistory(), 200);
    });
    return () => {
      clearTimeout(t);
      stop();
    };
  }, [refreshHistory]);
  // --- following generations (runs and sweeps share one map of progress and one Follower)
  const refreshRef = useRef(refreshHistory);
  refreshRef.current = refreshHistory;
  const follower = useMemo(
    () =>
      new Follower(
        (id, event) => {
          track({ type: "event", id, event, now: Date.now() });
          if (event.event === "media_generation_completed") void refreshRef.current();
        },
        {
          openStream: openEventStream,
          listActive,
          setInterval: (fn, ms) => window.setInterval(fn, ms),
          clearInterval: (h) => window.clearInterval(h as number),
        },
      ),
    [],
  );
  useEffect(() => () => follower.close(), [follower]);
  const follow = useCallback(
    (ids: readonly string[], totalSteps: number | null) => {
      track({ type: "submitted", ids, now: Date.now(), totalSteps });
      follower.follow(ids);
    },
    [follower],
  );

  const body = useMemo(
    () => (model ? requestBody(model.id, fields, { ...values, input_image: image?.value }) : {}),
    [model, fields, values, image],
  );
  const steps = typeof body.num_inference_steps === "number" ? body.num_inference_steps : null;
  const runActive = run ? anyActive(tracked, run.ids) : false;
  const sweepActive = sweep
    ? anyActive(
        tracked,
        sweep.ids.filter((i): i is string => !!i),
      )
    : false;
  const now = useNow(runActive || sweepActive);

  const showError = (err: unknown) => {
    if (unauthorized(err)) return setNeedKey(true);
    if (err instanceof ApiFailure) setErrors(formErrors(err.envelope, err.status, fieldNames));
    else setErrors({ fields: {}, general: (err as Error).message });
  };

  const submit = async () => {
    if (!model || submitting || runActive) return;
    setErrors(NO_ERRORS);
    setSubmitting(true);
    try {
      const ids = await submitToQueue(body);
      setRun({ ids, prompt: String(body.prompt ?? "") });
      follow(ids, steps);
    } catch (err) {
      showError(err);
    } finally {
      setSubmitting(false);
    }
  };
  const submitRef = useRef(submit);
  submitRef.current = submit;

  const cancelRun = () => {
    for (const id of run?.ids ?? []) {
      const p = tracked[id];
      if (p && (p.phase === "queued" || p.phase === "processing")) void cancelGeneration(id).catch(showError);
    }
  };

  const runSweep = async (spec: SweepSpec) => {
    if (!model) return;
    setErrors(NO_ERRORS);
    const cells = sweepCells(spec);
    const ids: Array<string | undefined> = cells.map(() => undefined);
    setSweep({ spec, ids: [...ids] });
    for (const [i, cell] of cells.entries()) {
      try {
        const [id] = await submitToQueue({ ...body, ...cell.overrides, num_generations: 1 });
        ids[i] = id;
        setSweep({ spec, ids: [...ids] });
        if (id) follow([id], steps);
      } catch (err) {
        showError(err);
        return;
      }
    }
  };
  const cancelSweep = () => {
    for (const id of sweep?.ids ?? [])
      if (id && tracked[id] && anyActive(tracked, [id])) void cancelGeneration(id);
  };

  // --- the input image
  const pickFile = async (file: File) => {
    if (!file.type.startsWith("image/")) {
      setErrors({
        fields: { input_image: `${file.name} is not an image (${file.type || "unknown type"})` },
        general: null,
      });
      return;
    }
    const dataUri = await blobToDataUri(file);
    const size = await measure(dataUri);
    setImage({ value: dataUri, name: file.name || "pasted image", previewUrl: dataUri, ...sizeOf(size) });
    chainDo({ type: "leave" });
  };
  const pickUrl = async (url: string) => {
    setImage({ value: url, name: url, previewUrl: url, width: null, height: null });
    chainDo({ type: "leave" });
    const size = await measure(url);
    setImage((cur) => (cur?.value === url ? { ...cur, ...sizeOf(size) } : cur));
  };
  /** A result (its exact bytes, so the server links the next edit to it) becomes the input. */
  const takeResult = async (url: string, name: string) => {
    const dataUri = await urlToDataUri(url);
    const size = await measure(dataUri);
    setImage({ value: dataUri, name, previewUrl: dataUri, ...sizeOf(size) });
  };

  const resultUrlOf = (id: string) =>
    tracked[id]?.resultUrl ?? history.find((h) => h.generation_id === id)?.result_url ?? null;
  const promptOf = (id: string) =>
    history.find((h) => h.generation_id === id)?.prompt ?? (run?.ids.includes(id) ? run.prompt : "");

  const continueFrom = async (id: string) => {
    const url = resultUrlOf(id);
    if (!url) return;
    try {
      await takeResult(url, `result of “${promptOf(id)}”`);
      chainDo({ type: "continue", id });
      setNotice("The result is now the input: describe the next edit and run.");
      await refreshHistory();
      document.getElementById("f-prompt")?.focus();
    } catch (err) {
      showError(err);
    }
  };
  const goToStep = async (step: ChainStep) => {
    try {
      if (step.id === null) {
        if (step.imageUrl) await takeResult(step.imageUrl, "the chain's original image");
      } else {
        const url = resultUrlOf(step.id);
        if (url) await takeResult(url, step.label);
      }
      chainDo({ type: "back", id: step.id });
    } catch (err) {
      showError(err);
    }
  };
  const reuse = async (item: HistoryItem) => {
    const params = reuseParams(item, fieldNames);
    const { input_image: url, ...rest } = params;
    setValues(valuesFrom(fields, rest));
    setErrors(NO_ERRORS);
    try {
      const parent = history.find((h) => h.generation_id === item.parent_generation_id);
      if (typeof url === "string") await pickUrl(url);
      else if (parent?.result_url) {
        await takeResult(parent.result_url, `result of “${parent.prompt}”`);
        chainDo({ type: "continue", id: parent.generation_id });
      } else {
        await takeResult(item.input_url, `input of “${item.prompt}”`);
        chainDo({ type: "leave" });
      }
      setNotice(`Parameters of “${item.prompt}” (seed ${item.seed}) are in the form.`);
    } catch (err) {
      showError(err);
    }
  };

  const toggleCompare = (id: string) =>
    setCompared((c) => (c.includes(id) ? c.filter((x) => x !== id) : [...c, id]));
  const compareItems: CompareItem[] = compared.flatMap((id) => {
    const url = resultUrlOf(id);
    const item = history.find((h) => h.generation_id === id);
    const seed = item?.seed ?? tracked[id]?.seed;
    return url ? [{ id, url, label: `${promptOf(id) || "result"} · seed ${seed ?? "?"}` }] : [];
  });
  const actions: ResultActions = {
    onContinue: (id) => void continueFrom(id),
    onToggleCompare: toggleCompare,
    compared,
  };

  // --- keyboard and clipboard: Ctrl/Cmd+Enter runs; pasting an image (or a URL) sets the input
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        void submitRef.current();
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);
  const fileRef = useRef(pickFile);
  fileRef.current = pickFile;
  const urlRef = useRef(pickUrl);
  urlRef.current = pickUrl;
  useEffect(() => {
    const onPaste = (e: ClipboardEvent) => {
      const file = [...(e.clipboardData?.files ?? [])].find((f) => f.type.startsWith("image/"));
      if (file) {
        e.preventDefault();
        void fileRef.current(file);
        return;
      }
      const target = e.target as HTMLElement | null;
      const editing = target?.closest("input, textarea, [contenteditable]");
      const text = e.clipboardData?.getData("text/plain").trim() ?? "";
      if (!editing && /^https?:\/\/\S+$/i.test(text)) void urlRef.current(text);
    };
    window.addEventListener("paste", onPaste);
    return () => window.removeEventListener("paste", onPaste);
  }, []);

  const onSubmit = (e: FormEvent) => {
    e.preventDefault();
    void submit();
  };
  const demo = health?.demo === true || model?.demo === true;
  const aspect = typeof values.aspect_ratio === "string" ? values.aspect_ratio : "match_input_image";
  const size = outputSize(
    aspect,
    image?.width && image.height ? { width: image.width, height: image.height } : null,
  );
  const imageField = fields.find((f) => f.kind === "image");
  const moreFields = fields.filter((f) => f.kind !== "image" && !PRIMARY_FIELDS.includes(f.name));
  const control = (f: Field) => (
    <FieldControl
      key={f.name}
      field={f}
      value={values[f.name]}
      error={errors.fields[f.name]}
      onChange={(v) => setValues((cur) => ({ ...cur, [f.name]: v }))}
    />
  );
  const steps_ = chainSteps(history, chain);

  return (
    <>
      <header className="top">
        <h1>Kontext workbench</h1>
        <p className="model">
          {model?.display_name ?? "loading the model…"}
          {getApiKey() && (
            <button
              type="button"
              className="link"
              onClick={() => {
                setApiKey(null);
                window.location.reload();
              }}
            >
              forget API key
            </button>
          )}
          {health && (
            <span className={`engine engine-${health.state}`}>
              {" "}
              · engine {health.state}
              {health.device ? ` on ${health.device}` : ""}
            </span>
          )}
        </p>
      </header>
      {needKey && (
        <form
          className="banner key"
          aria-label="API key"
          onSubmit={(e) => {
            e.preventDefault();
            const key = new FormData(e.currentTarget).get("api-key");
            if (typeof key === "string" && key.trim()) {
              setApiKey(key.trim());
              window.location.reload();
            }
          }}
        >
          <label htmlFor="api-key">
            {getApiKey()
              ? "The server did not accept this browser's API key; give another:"
              : "This server wants an API key (one of KONTEXT_API_KEYS):"}
          </label>
          <input id="api-key" name="api-key" type="password" autoComplete="off" />
          <button type="submit">Use key</button>
        </form>
      )}
      {demo && (
        <div className="banner" role="alert">
          <strong>Demo model.</strong> The tiny random-weight model is loaded: everything works, but its
          output is noise. Set <code>KONTEXT_MODEL_DIR</code> to the FLUX.1 Kontext [dev] weights for real
          edits.
        </div>
      )}
      {loadError && (
        <div className="banner error" role="alert">
          {loadError}
        </div>
      )}
      <main className="layout">
        <form className="panel request" aria-label="Edit request" onSubmit={onSubmit} noValidate>
          {imageField && (
            <ImageInput
              field={imageField}
              image={image}
              error={errors.fields[imageField.name]}
              onFile={(f) => void pickFile(f)}
              onUrl={(u) => void pickUrl(u)}
            />
          )}
          {fields.filter((f) => f.kind !== "image" && PRIMARY_FIELDS.includes(f.name)).map(control)}
          <p className="output-size" aria-live="polite">
            Output size:{" "}
            <strong data-testid="output-size">
              {size ? `${size.width} × ${size.height}` : "choose an input image"}
            </strong>
          </p>
          <details
            className="more-options"
            open={moreOpen || moreFields.some((f) => errors.fields[f.name])}
            onToggle={(e) => setMoreOpen((e.target as HTMLDetailsElement).open)}
          >
            <summary>More options</summary>
            {moreFields.map(control)}
          </details>
          {errors.general && (
            <p className="field-error general" role="alert">
              {errors.general}
            </p>
          )}
          <div className="run-row">
            <button type="submit" disabled={!model || submitting || runActive}>
              Run <kbd>Ctrl</kbd>+<kbd>Enter</kbd>
            </button>
            <button type="button" className="danger" onClick={cancelRun} disabled={!runActive}>
              Cancel
            </button>
            <button type="button" className="secondary" onClick={() => setCodeOpen(true)} disabled={!model}>
              Copy as code
            </button>
          </div>
          <SweepControls fields={fields} busy={!model || sweepActive} onRun={(s) => void runSweep(s)} />
        </form>

        <div className="workspace">
          {notice && (
            <p className="notice" role="status">
              {notice}{" "}
              <button type="button" className="link" onClick={() => setNotice(null)}>
                dismiss
              </button>
            </p>
          )}
          <ChainStrip steps={steps_} onGoTo={(s) => void goToStep(s)} />
          <section className="panel run" aria-labelledby="run-title">
            <h2 id="run-title">Result</h2>
            {!run && <p className="empty">Choose an image, describe the edit, and run.</p>}
            <div className="results">
              {run?.ids.map((id, i) => {
                const p = tracked[id];
                const label = run.ids.length > 1 ? `“${run.prompt}” #${i + 1}` : `“${run.prompt}”`;
                return p ? (
                  <GenerationCard key={id} progress={p} now={now} label={label} actions={actions} />
                ) : null;
              })}
            </div>
          </section>
          {sweep && (
            <SweepGrid
              spec={sweep.spec}
              ids={sweep.ids}
              tracked={tracked}
              now={now}
              actions={actions}
              onCancel={cancelSweep}
              active={sweepActive}
            />
          )}
          {compared.length > 0 && (
            <ComparePanel items={compareItems} onRemove={toggleCompare} onClear={() => setCompared([])} />
          )}
        </div>

        <HistoryPanel
          items={history}
          query={query}
          onQuery={setQuery}
          onReuse={(item) => void reuse(item)}
          onContinue={(id) => void continueFrom(id)}
          onToggleCompare={toggleCompare}
          compared={compared}
          currentBaseId={chain.baseId}
        />
      </main>
      <CodeDialog
        open={codeOpen}
        onClose={() => setCodeOpen(false)}
        baseUrl={window.location.origin}
        body={body}
        auth={getApiKey() !== null}
      />
    </>
  );
}

function sizeOf(size: { width: number; height: number } | null): {
  width: number | null;
  height: number | null;
} {
  return { width: size?.width ?? null, height: size?.height ?? null };
}
