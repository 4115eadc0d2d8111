// The history's thumbnails, kept in memory: a small LRU bounded by bytes, keyed by the file a
// thumbnail is made from and its size. A file never changes under its name (inputs are named by
// the hash of their bytes, results by their generation id and random bits), so a cached thumbnail
// is never stale; whether the file is still kept is for the caller to check first.

/** What the cache holds at most (a 256 px WebP is 5–20 KB: a few thousand of them). */
export const THUMBNAIL_CACHE_BYTES = 32 * 1024 * 1024;

export class ThumbnailCache {
  /** Least recently used first. */
  private readonly entries = new Map<string, Buffer>();
  private bytes = 0;
  /** Thumbnails being made: a second request for one waits for the first. */
  private readonly making = new Map<string, Promise<Buffer | null>>();

  constructor(private readonly maxBytes = THUMBNAIL_CACHE_BYTES) {}

  /** The cached thumbnail under `key`, or what `make` gives (null: its file is gone; not cached). */
  get(key: string, make: () => Promise<Buffer | null>): Promise<Buffer | null> {
    const hit = this.entries.get(key);
    if (hit) {
      this.entries.delete(key); // now the most recently used
      this.entries.set(key, hit);
      return Promise.resolve(hit);
    }
    let pending = this.making.get(key);
    if (!pending) {
      pending = make()
        .then((made) => {
          if (made) this.put(key, made);
          return made;
        })
        .finally(() => this.making.delete(key));
      this.making.set(key, pending);
    }
    return pending;
  }

  /** Bytes held now. */
  size(): number {
    return this.bytes;
  }

  private put(key: string, value: Buffer): void {
    if (value.length > this.maxBytes) return;
    const prior = this.entries.get(key);
    if (prior) {
      this.entries.delete(key);
      this.bytes -= prior.length;
    }
    this.entries.set(key, value);
    this.bytes += value.length;
    for (const [k, v] of this.entries) {
      if (this.bytes <= this.maxBytes) break;
      this.entries.delete(k);
      this.bytes -= v.length;
    }
  }
}
