// Files picked from this computer, kept in IndexedDB (not local storage, which holds strings and
// a few MB) so the workspace survives a reload before the image is ever sent.
export interface BlobStore {
  put(key: string, blob: Blob): Promise<void>;
  get(key: string): Promise<Blob | null>;
  delete(key: string): Promise<void>;
}

const DB = "kontext-workbench";
const STORE = "images";

function open(): Promise<IDBDatabase> {
  return new Promise((resolve, reject) => {
    const req = indexedDB.open(DB, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(STORE);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

async function tx<T>(mode: IDBTransactionMode, fn: (s: IDBObjectStore) => IDBRequest<T>): Promise<T> {
  const db = await open();
  try {
    return await new Promise<T>((resolve, reject) => {
      const req = fn(db.transaction(STORE, mode).objectStore(STORE));
      req.onsuccess = () => resolve(req.result);
      req.onerror = () => reject(req.error);
    });
  } finally {
    db.close();
  }
}

export const indexedDbBlobs: BlobStore = {
  put: async (key, blob) => {
    await tx("readwrite", (s) => s.put(blob, key));
  },
  get: async (key) => ((await tx("readonly", (s) => s.get(key))) as Blob | undefined) ?? null,
  delete: async (key) => {
    await tx("readwrite", (s) => s.delete(key));
  },
};

export function memoryBlobs(): BlobStore & { map: Map<string, Blob> } {
  const map = new Map<string, Blob>();
  return {
    map,
    put: async (k, b) => {
      map.set(k, b);
    },
    get: async (k) => map.get(k) ?? null,
    delete: async (k) => {
      map.delete(k);
    },
  };
}
