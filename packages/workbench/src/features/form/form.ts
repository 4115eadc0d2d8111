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

export interface FormState {
  modelId: string | null;
  schema: (JsonObjectSchema & Record<string, unknown>) | null;
  fields: Field[];
  values: FormValues;
  image: InputImage | null;
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

/** What copied code sends as input_image: a local file, a URL, or an image it downloads first. */
export type CodeImage =
  | { kind: "file"; name: string; type: string }
  | { kind: "url"; url: string }
  | { kind: "download"; url: string; type: string | null };

export class Form extends Store<FormState> {
  private blob: Blob | null = null;

  constructor(private readonly deps: FormDeps) {
    super({
      modelId: null,
      schema: null,
      fields: [],
      values: {},
      image: null,
      loadingImage: false,
      errors: NO_ERRORS,
      attempt: 0,
    });
  }

  get fieldNames(): string[] {
    return ["input_image", ...this.state.fields.map((f) => f.name)];
  }

  /** The model's schema makes the fields; values already there (a restored workspace) are kept. */
  setSchema(modelId: string, raw: Record<string, unknown>, restored?: FormValues): void {
    const schema = { ...raw, ...asFormSchema(raw) };
    const fields = fieldsOf(schema).filter((f) => f.kind !== "image" || f.name === "input_image");
    const values = restored ? valuesFrom(fields, restored) : defaultValues(fields);
    this.update({ modelId, schema, fields, values });
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

  private setImageError(message: string | null): void {
    const { input_image: _gone, ...rest } = this.state.errors.fields;
    this.update({
      errors: { ...this.state.errors, fields: message ? { ...rest, input_image: message } : rest },
    });
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
    const head = new Uint8Array(await file.slice(0, 16).arrayBuffer());
    const sniffed = sniffType(head);
    const why = refusal(name, file.type, sniffed);
    if (why) {
      this.setImageError(why);
      return false;
    }
    const type = sniffed ?? file.type;
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

  /** The body without its image: what the form stands for. */
  plainBody(): FormValues {
    const { modelId, fields, values } = this.state;
    return modelId ? requestBody(modelId, fields, values) : {};
  }

  /**
   * Checks the form against the model's schema. Refused: the errors are shown beside their
   * fields and summarised by Run, and `attempt` moves so the first invalid field gets focus.
   */
  check(): boolean {
    const { schema, image } = this.state;
    if (!schema) return false;
    const body = { ...this.plainBody(), ...(image ? { input_image: image.previewUrl || "image" } : {}) };
    const fields = { ...crossFieldErrors(body), ...validateRequest(schema, body) };
    const imageError = this.state.errors.fields.input_image;
    if (imageError && !image) fields.input_image = imageError;
    const errors: FormErrors = { fields, general: null };
    this.update({ errors, attempt: hasErrors(errors) ? this.state.attempt + 1 : this.state.attempt });
    return !hasErrors(errors);
  }

  /** The server refused the run: its words, beside the fields it names. */
  refused(err: unknown): void {
    this.update({ errors: formErrors(err, this.fieldNames), attempt: this.state.attempt + 1 });
  }

  clearErrors(): void {
    this.update({ errors: NO_ERRORS });
  }

  /** The request to send, with the image's bytes as a data URI (re-encoded if too large). */
  async body(): Promise<EditRequest> {
    const image = this.state.image;
    const body = this.plainBody() as unknown as EditRequest;
    if (!image) return body;
    if (image.ref.kind === "url") return { ...body, input_image: image.ref.url };
    let blob = this.blob;
    if (!blob) throw new Error("the input image is not loaded yet");
    if (blob.size > MAX_SEND_BYTES || !ACCEPTED_TYPES.includes(blob.type || image.type || ""))
      blob = await this.deps.images.reencode(blob);
    return { ...body, input_image: await this.deps.images.dataUri(blob) };
  }

  /** What copied code reads the image from (never the bytes themselves). */
  codeImage(origin: string): CodeImage | null {
    const image = this.state.image;
    if (!image) return null;
    const ref = image.ref;
    if (ref.kind === "url") return { kind: "url", url: ref.url };
    if (ref.kind === "local") return { kind: "file", name: ref.name, type: ref.type };
    return { kind: "download", url: new URL(ref.url, origin).href, type: image.type };
  }
}
