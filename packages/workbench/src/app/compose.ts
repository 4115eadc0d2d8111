// The one place the workbench is put together with the browser's real dependencies.
import { Form } from "../features/form/form.js";
import { browserImages } from "../features/form/image.js";
import { Gallery } from "../features/gallery/gallery.js";
import { Loras } from "../features/loras/loras.js";
import { Mask } from "../features/mask/mask.js";
import { CanvasSurface } from "../features/mask/surface.js";
import { Queue } from "../features/queue/queue.js";
import { Runs } from "../features/run/runs.js";
import { apiKey, browserApi } from "../features/session/api.js";
import { Session } from "../features/session/session.js";
import { Sweep } from "../features/sweep/sweep.js";
import { indexedDbBlobs } from "../features/workspace/blobs.js";
import { Workbench } from "../features/workspace/workbench.js";
import { browserStorage, browserTimers } from "./store.js";

export function compose(): Workbench {
  const storage = browserStorage;
  const timers = browserTimers;
  const api = browserApi(window.location.origin, apiKey.get(storage));
  const runs = new Runs({ api, timers });
  return new Workbench(
    {
      session: new Session({ api, storage, timers, reload: () => window.location.reload() }),
      form: new Form({ images: browserImages, blobs: indexedDbBlobs, fetchBlob: (url) => api.blob(url) }),
      runs,
      sweep: new Sweep({ submitOne: (b) => runs.submitOne(b), cancel: (ids) => runs.cancel(ids) }),
      gallery: new Gallery(api),
      queue: new Queue(api, timers),
      loras: new Loras(api),
      mask: new Mask({
        surface: (size) => new CanvasSurface(size),
        blobs: indexedDbBlobs,
        timers,
        dataUri: browserImages.dataUri,
      }),
    },
    { api, storage, timers },
  );
}
