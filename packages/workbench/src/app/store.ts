// A controller's state as a small external store: plain TypeScript that unit tests drive without
// React, and that components read with useStore (useSyncExternalStore).
import { useSyncExternalStore } from "react";

export class Store<S extends object> {
  private readonly listeners = new Set<() => void>();
  protected state: S;

  constructor(initial: S) {
    this.state = initial;
  }

  readonly get = (): S => this.state;

  readonly subscribe = (fn: () => void): (() => void) => {
    this.listeners.add(fn);
    return () => {
      this.listeners.delete(fn);
    };
  };

  protected update(patch: Partial<S>): void {
    this.state = { ...this.state, ...patch };
    for (const l of [...this.listeners]) l();
  }
}

export function useStore<S extends object>(store: Store<S>): S {
  return useSyncExternalStore(store.subscribe, store.get);
}

/** Timers, injected so controllers run on a fake clock in unit tests. */
export interface Timers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  setInterval(fn: () => void, ms: number): unknown;
  clearInterval(handle: unknown): void;
}

export const browserTimers: Timers = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => window.setTimeout(fn, ms),
  clearTimeout: (h) => window.clearTimeout(h as number),
  setInterval: (fn, ms) => window.setInterval(fn, ms),
  clearInterval: (h) => window.clearInterval(h as number),
};

/** A key-value store (localStorage in the browser, a Map in tests). */
export interface KeyValue {
  get(key: string): string | null;
  set(key: string, value: string | null): void;
}

export const browserStorage: KeyValue = {
  get: (k) => {
    try {
      return localStorage.getItem(k);
    } catch {
      return null;
    }
  },
  set: (k, v) => {
    try {
      if (v === null) localStorage.removeItem(k);
      else localStorage.setItem(k, v);
    } catch {
      // full or disabled: the workspace is not kept, the page still works
    }
  },
};

export function memoryStorage(): KeyValue & { map: Map<string, string> } {
  const map = new Map<string, string>();
  return {
    map,
    get: (k) => map.get(k) ?? null,
    set: (k, v) => {
      if (v === null) map.delete(k);
      else map.set(k, v);
    },
  };
}
