// The workspace kept across reloads, in local storage: the form's values, the images by reference
// (a local file's bytes are in IndexedDB, a server image by its URL; never a data URI), the
// painted mask (its pixels in IndexedDB too), the edit
// chain, the latest run and sweep (followed again after a reload) and the comparison.
import type { KeyValue } from "../../app/store.js";
import type { ChainState } from "../chain/chain.js";
import type { FormMode } from "../form/form.js";
import type { ImageRef } from "../form/image.js";
import type { FormValues } from "../form/schemaForm.js";
import type { MaskMeta } from "../mask/mask.js";
import type { Run } from "../run/runs.js";
import type { SweepSpec } from "../sweep/sweep.js";

export const WORKSPACE_KEY = "kontext.workspace";

export interface Workspace {
  v: 1;
  /** edit or text-to-image (absent: edit) */
  mode?: FormMode;
  values: FormValues;
  image: ImageRef | null;
  /** the reference images by field (input_image_2…4), each by reference like the input */
  refs?: Record<string, ImageRef>;
  /** the painted mask (its pixels in IndexedDB), null when nothing is painted */
  mask?: MaskMeta | null;
  chain: ChainState;
  run: Run | null;
  sweep: { spec: SweepSpec; ids: Array<string | null> } | null;
  compared: string[];
}

export function loadWorkspace(kv: KeyValue): Workspace | null {
  try {
    const raw = kv.get(WORKSPACE_KEY);
    const ws = raw ? (JSON.parse(raw) as Workspace) : null;
    return ws?.v === 1 ? ws : null;
  } catch {
    return null;
  }
}

/** Writes the workspace; a data URI never goes in (an image is kept by reference only). */
export function saveWorkspace(kv: KeyValue, ws: Workspace): void {
  const text = JSON.stringify(ws);
  if (text.includes(";base64,") && text.length > 100_000) return; // never megabytes of image data
  kv.set(WORKSPACE_KEY, text);
}
