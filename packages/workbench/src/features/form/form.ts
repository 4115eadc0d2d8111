// The form controller: fields from the model's schema, their values, the input image (picked,
// dropped, pasted, a URL or an image on this server), the browser's check against the schema
// before anything is sent, and the request body. No React here: unit-tested with fakes.
import type { EditRequest } from "@kontext/client";
import { Store } from "../../app/store.js";
import type { BlobStore } from "../workspace/blobs.js";
import { type FormErrors, formErrors, hasErrors, NO_ERRORS } from "./errors.js";
import {
  ACCEPTED_TYPES,
  type ImageDeps,
  type ImageRef,
  type InputImage,
  MAX_SEND_BYTES,
  refusal,
  sniffType,
} from "./image.js";
import {
  asFormSchema,
  crossFieldErrors,
  defaultValues,
  type Field,
  type FormValues,
  fieldsOf,
  type JsonObjectSchema,
  requestBody,
  valuesFrom,
} from "./schemaForm.js";
import { validateRequest } from "./validate.js";

/** edit: an input image and what to change; generate: text-to-image, from the prompt alone. */
export type FormMode = "edit" | "generate";

export interface FormState {
  modelId: string | null;
  mode: FormMode;
  /** the model serves text-to-image (its models entry has a generate schema) */
  canGenerate: boolean;
  schema: (JsonObjectSchema & Record<string, unknown>) | null;
  fields: Field[];
  values: FormValues;
  image: InputImage | null;
  /** the reference images beside the input, by field (input_image_2…4): those the schema has and are set */
  refs: Record<string, InputImage>;
  /** an image is being read or fetched */
  loadingImage: boolean;
  errors: FormErrors;
  /** counts refused runs: each time, the form shows the summary and focuses the first invalid field */
  attempt: number;
}

export interface FormDeps {
  images: ImageDeps;
  blobs: BlobStore;
  /** an image on this server, with credentials */
  fetchBlob(url: string): Promise<Blob>;
}

/** The IndexedDB key of the form's local file. */
export const LOCAL_KEY = "form-input";
/** The IndexedDB key of a reference slot's local file (input_image_2 → "form-input_image_2"). */
export const refKey = (field: string) => `form-${field}`;

/** What copied code sends as input_image: a local file, a URL, or an image it downloads first. */
export type CodeImage =
  /** note: what the code says about the file (default: put it in the current directory) */
  | { kind: "file"; name: string; type: string; note?: string }
  | { kind: "url"; url: string }
  | { kind: "download"; url: string; type: string | null };

export class Form extends Store<FormState> {
  private blob: Blob | null = null;
  /** the reference slots' bytes, by field */
  private readonly refBlobs = new Map<string, Blob>();
  /** each mode's schema as the models endpoint serves it */
  private readonly raw: Record<FormMode, Record<string, unknown> | null> = { edit: null, generate: null };
  /** each mode's values as it was left (its aspect ratio, the edit's strength …) */
  private readonly stash: Partial<Record<FormMode, FormValues>> = {};

  constructor(private readonly deps: FormDeps) {
    super({
      modelId: null,
      mode: "edit",
      canGenerate: false,
      schema: null,
      fields: [],
      values: {},
      image: null,
      refs: {},
      loadingImage: false,
      errors: NO_ERRORS,
      attempt: 0,
    });
  }

  get fieldNames(): string[] {
    return ["input_image", ...this.state.fields.map((f) => f.name)];
  }

  /** The reference slots the model's schema has (input_image_2…4), in order. */
  get refFields(): Field[] {
    return this.state.fields.filter((f) => f.kind === "reference");
  }

  /** Whether the model's schema has this field. */
  has(name: string): boolean {
    return this.state.fields.some((f) => f.name === name);
  }

  /**
   * The model's schemas make the fields (the edit's, and text-to-image's when the model has one);
   * values already there (a restored workspace) are kept.
   */
  setSchema(
    modelId: string,
    raw: Record<string, unknown>,
    restored?: FormValues,
    generate?: Record<string, unknown> | null,
    mode: FormMode = "edit",
  ): void {
    this.raw.edit = raw;
    this.raw.generate = generate ?? null;
    const m = generate ? mode : "edit";
    this.update({ modelId, mode: m, canGenerate: !!generate });
    this.build(this.raw[m] ?? raw, restored);
  }

  /**
   * Switches between editing and text-to-image. What both have (prompt, steps, seed, LoRAs …)
   * carries over; each keeps its own aspect ratio (match_input_image is the edit's only) and what
   * only it has. The input image stays for the way back.
   */
  setMode(mode: FormMode): void {
    const raw = this.raw[mode];
    if (mode === this.state.mode || !raw || !this.state.modelId) return;
    const leaving = this.state.values;
    this.stash[this.state.mode] = leaving;
    const back = this.stash[mode] ?? {};
    const { aspect_ratio: _own, ...shared } = leaving;
    this.update({ mode, errors: NO_ERRORS });
    this.build(raw, { ...back, ...shared, aspect_ratio: back.aspect_ratio });
  }

  private build(raw: Record<string, unknown>, restored?: FormValues): void {
    const modelId = this.state.modelId as string;
    const schema = { ...raw, ...asFormSchema(raw) };
    const fields = fieldsOf(schema);
    const values = restored ? valuesFrom(fields, restored) : defaultValues(fields);
    // a slot the new schema lacks goes (text-to-image has no references)
    const refs = Object.fromEntries(
      Object.entries(this.state.refs).filter(([k]) => fields.some((f) => f.name === k)),
    );
    this.update({ modelId, schema, fields, values, refs });
  }

  setValue(name: string, value: unknown): void {
    const { [name]: _gone, ...rest } = this.state.errors.fields;
    this.update({
      values: { ...this.state.values, [name]: value },
      errors: { ...this.state.errors, fields: rest },
    });
  }

  /** Values from a stored request (reuse): every field from it, the defaults for the rest. */
  fill(params: Record<string, unknown>): void {
    this.update({ values: valuesFrom(this.state.fields, params), errors: NO_ERRORS });
  }

  private setImageError(message: string | null, field = "input_image"): void {
    const { [field]: _gone, ...rest } = this.state.errors.fields;
    this.update({
      errors: { ...this.state.errors, fields: message ? { ...rest, [field]: message } : rest },
    });
  }

  /** Reads a picked file's type, or says (beside `field`) why the server could not read it. */
  private async accepted(file: Blob & { name?: string }, field: string): Promise<string | null> {
    const name = file.name || "pasted image";
    const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    const sniffed = sniffType(head);
    const why = refusal(name, file.type, sniffed);
    if (why) {
      this.setImageError(why, field);
      return null;
    }
    return sniffed ?? file.type;
  }

  private async show(ref: ImageRef, blob: Blob | null, type: string | null): Promise<void> {
    const old = this.state.image;
    if (old?.previewUrl.startsWith("blob:")) this.deps.images.revoke(old.previewUrl);
    this.blob = blob;
    const previewUrl = blob ? this.deps.images.objectUrl(blob) : (ref as { url: string }).url;
    const image: InputImage = { ref, previewUrl, width: null, height: null, type, bytes: blob?.size ?? null };
    this.update({ image, loadingImage: false });
    this.setImageError(null); // a valid pick ends an earlier "not an image"
    const size = blob ? await this.deps.images.measure(blob) : await this.deps.images.measureUrl(previewUrl);
    if (this.state.image === image)
      this.update({ image: { ...image, width: size?.width ?? null, height: size?.height ?? null } });
  }

  /** A file from this computer (upload, drop, paste); refused at once if the server cannot read it. */
  async pickFile(file: Blob & { name?: string }): Promise<boolean> {
    const name = file.name || "pasted image";
    const type = await this.accepted(file, "input_image");
    if (type === null) return false;
    await this.show({ kind: "local", key: LOCAL_KEY, name, type }, file, type);
    await this.deps.blobs.put(LOCAL_KEY, file).catch(() => undefined); // kept for a reload
    return true;
  }

  async pickUrl(url: string): Promise<void> {
    await this.show({ kind: "url", url, name: url }, null, null);
  }

  /** An image on this server (a result, or a generation's input) becomes the input. */
  async takeServerImage(ref: Extract<ImageRef, { kind: "server" }>): Promise<void> {
    this.update({ loadingImage: true });
    try {
      const blob = await this.deps.fetchBlob(ref.url);
      await this.show(ref, blob, blob.type || null);
    } catch (err) {
      this.update({ loadingImage: false });
      throw err;
    }
  }

  /** The image a restored workspace refers to; a missing one leaves the form without an image. */
  async restoreImage(ref: ImageRef): Promise<void> {
    if (ref.kind === "url") return this.pickUrl(ref.url);
    if (ref.kind === "server") return this.takeServerImage(ref).catch(() => undefined);
    const blob = await this.deps.blobs.get(ref.key).catch(() => null);
    if (blob) await this.show(ref, blob, ref.type);
  }

  /** After a run: the input is now on the server, as that generation's input. */
  rebase(ref: Extract<ImageRef, { kind: "server" }>): void {
    const image = this.state.image;
    if (image && image.ref.kind === "local") this.update({ image: { ...image, ref } });
  }

  // --- reference images (input_image_2…4): each picked, dropped or given by URL like the input

  private async showRef(field: string, ref: ImageRef, blob: Blob | null, type: string | null): Promise<void> {
    const old = this.state.refs[field];
    if (old?.previewUrl.startsWith("blob:")) this.deps.images.revoke(old.previewUrl);
    if (blob) this.refBlobs.set(field, blob);
    else this.refBlobs.delete(field);
    const previewUrl = blob ? this.deps.images.objectUrl(blob) : (ref as { url: string }).url;
    const image: InputImage = { ref, previewUrl, width: null, height: null, type, bytes: blob?.size ?? null };
    this.update({ refs: { ...this.state.refs, [field]: image } });
    this.setImageError(null, field);
    const size = blob ? await this.deps.images.measure(blob) : await this.deps.images.measureUrl(previewUrl);
    if (this.state.refs[field] === image)
      this.update({
        refs: {
          ...this.state.refs,
          [field]: { ...image, width: size?.width ?? null, height: size?.height ?? null },
        },
      });
  }

  /** A file for a reference slot; refused at once (beside the slot) if the server cannot read it. */
  async pickRefFile(field: string, file: Blob & { name?: string }): Promise<boolean> {
    if (!this.has(field)) return false;
    const type = await this.accepted(file, field);
    if (type === null) return false;
    const key = refKey(field);
    await this.showRef(field, { kind: "local", key, name: file.name || "pasted image", type }, file, type);
    await this.deps.blobs.put(key, file).catch(() => undefined); // kept for a reload
    return true;
  }

  async pickRefUrl(field: string, url: string): Promise<void> {
    if (this.has(field)) await this.showRef(field, { kind: "url", url, name: url }, null, null);
  }

  /** An image on this server (a result) as a reference. */
  async takeServerRef(field: string, ref: Extract<ImageRef, { kind: "server" }>): Promise<void> {
    const blob = await this.deps.fetchBlob(ref.url);
    await this.showRef(field, ref, blob, blob.type || null);
  }

  /**
   * Empties a slot; the ones after it move up (the server needs input_image_3 only with
   * input_image_2: no gap in the order).
   */
  async clearRef(field: string): Promise<void> {
    const old = this.state.refs[field];
    if (!old) return;
    if (old.previewUrl.startsWith("blob:")) this.deps.images.revoke(old.previewUrl);
    const names = this.refFields.map((f) => f.name);
    const refs = { ...this.state.refs };
    const moves: Array<Promise<void>> = [];
    for (let i = names.indexOf(field); i >= 0 && i < names.length; i++) {
      const [to, from] = [names[i] as string, names[i + 1]];
      const next = from ? refs[from] : undefined;
      const blob = from ? this.refBlobs.get(from) : undefined;
      if (!next) {
        delete refs[to];
        this.refBlobs.delete(to);
        moves.push(this.deps.blobs.delete(refKey(to)).catch(() => undefined));
        break;
      }
      const ref = next.ref.kind === "local" ? { ...next.ref, key: refKey(to) } : next.ref;
      refs[to] = { ...next, ref };
      if (blob) {
        this.refBlobs.set(to, blob);
        if (ref.kind === "local") moves.push(this.deps.blobs.put(ref.key, blob).catch(() => undefined));
      } else this.refBlobs.delete(to);
    }
    this.update({ refs });
    this.setImageError(null, field);
    await Promise.all(moves);
  }

  /** The references a restored workspace refers to (a missing one leaves its slot empty). */
  async restoreRefs(refs: Record<string, ImageRef>): Promise<void> {
    await Promise.all(
      Object.entries(refs).map(async ([field, ref]) => {
        if (!this.has(field)) return;
        if (ref.kind === "url") return this.pickRefUrl(field, ref.url);
        if (ref.kind === "server") return this.takeServerRef(field, ref).catch(() => undefined);
        const blob = await this.deps.blobs.get(ref.key).catch(() => null);
        if (blob) await this.showRef(field, ref, blob, ref.type);
      }),
    );
  }

  /** What the workspace keeps of the references: each by reference, never its bytes. */
  refRefs(): Record<string, ImageRef> {
    return Object.fromEntries(Object.entries(this.state.refs).map(([k, v]) => [k, v.ref]));
  }

  /** An image's bytes as the request sends them: a data URI (re-encoded if too large or unreadable). */
  private async send(blob: Blob, type: string | null): Promise<string> {
    let b = blob;
    if (b.size > MAX_SEND_BYTES || !ACCEPTED_TYPES.includes(b.type || type || ""))
      b = await this.deps.images.reencode(b);
    return this.deps.images.dataUri(b);
  }

  /** The body without its image: what the form stands for. */
  plainBody(): FormValues {
    const { modelId, fields, values } = this.state;
    return modelId ? requestBody(modelId, fields, values) : {};
  }

  /**
   * Checks the form against the model's schema. Refused: the errors are shown beside their
   * fields and summarised by Run, and `attempt` moves so the first invalid field gets focus.
   */
  check(extra: Record<string, string> = {}): boolean {
    const { schema, image, refs } = this.state;
    if (!schema) return false;
    const body: Record<string, unknown> = {
      ...this.plainBody(),
      ...(image && this.has("input_image") ? { input_image: image.previewUrl || "image" } : {}),
      ...Object.fromEntries(Object.entries(refs).map(([k, v]) => [k, v.previewUrl || "image"])),
      ...extra,
    };
    const fields = { ...crossFieldErrors(body), ...validateRequest(schema, body) };
    const imageError = this.state.errors.fields.input_image;
    if (imageError && !image && this.has("input_image")) fields.input_image = imageError;
    const errors: FormErrors = { fields, general: null };
    this.update({ errors, attempt: hasErrors(errors) ? this.state.attempt + 1 : this.state.attempt });
    return !hasErrors(errors);
  }

  /** The server refused the run: its words, beside the fields it names. */
  refused(err: unknown): void {
    this.update({ errors: formErrors(err, this.fieldNames), attempt: this.state.attempt + 1 });
  }

  /** A field's error goes (what it was about changed). */
  clearError(name: string): void {
    if (this.state.errors.fields[name] !== undefined) this.setImageError(null, name);
  }

  clearErrors(): void {
    this.update({ errors: NO_ERRORS });
  }

  /** The request to send, with the images' bytes as data URIs (re-encoded if too large). */
  async body(): Promise<EditRequest> {
    const { image, refs } = this.state;
    const body = this.plainBody() as unknown as EditRequest & Record<string, unknown>;
    if (image && this.has("input_image")) {
      if (image.ref.kind === "url") body.input_image = image.ref.url;
      else {
        if (!this.blob) throw new Error("the input image is not loaded yet");
        body.input_image = await this.send(this.blob, image.type);
      }
    }
    for (const f of this.refFields) {
      const r = refs[f.name];
      if (!r) continue;
      const blob = this.refBlobs.get(f.name);
      if (r.ref.kind === "url") body[f.name] = r.ref.url;
      else if (blob) body[f.name] = await this.send(blob, r.type);
      else throw new Error(`${f.label} is not loaded yet`);
    }
    return body;
  }

  /** What copied code reads the image from (never the bytes themselves). */
  codeImage(origin: string): CodeImage | null {
    return this.state.image && this.has("input_image") ? codeImageOf(this.state.image, origin) : null;
  }

  /** What copied code reads each reference from, in slot order. */
  codeRefs(origin: string): Array<{ field: string; image: CodeImage }> {
    return this.refFields.flatMap((f) => {
      const r = this.state.refs[f.name];
      return r ? [{ field: f.name, image: codeImageOf(r, origin) }] : [];
    });
  }
}

function codeImageOf(image: InputImage, origin: string): CodeImage {
  const ref = image.ref;
  if (ref.kind === "url") return { kind: "url", url: ref.url };
  if (ref.kind === "local") return { kind: "file", name: ref.name, type: ref.type };
  return { kind: "download", url: new URL(ref.url, origin).href, type: image.type };
}
