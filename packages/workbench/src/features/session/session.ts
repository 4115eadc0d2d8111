// The session: the model (its schema makes the form), the engine's health, and the API key
// this browser sends when the server has keys on.
import type { Model } from "@kontext/client";
import { type KeyValue, Store, type Timers } from "../../app/store.js";
import { type Api, apiKey, type Health, isUnauthorized, MODEL_ID } from "./api.js";

export interface SessionState {
  model: Model | null;
  health: Health | null;
  /** the server wants a key this browser does not have (or has a wrong one) */
  needKey: boolean;
  hasKey: boolean;
  loadError: string | null;
}

export interface SessionDeps {
  api: Pick<Api, "model" | "health">;
  storage: KeyValue;
  timers: Timers;
  /** reloads the page (a new key means new connections everywhere) */
  reload(): void;
}

export class Session extends Store<SessionState> {
  private timer: unknown = null;

  constructor(private readonly deps: SessionDeps) {
    super({
      model: null,
      health: null,
      needKey: false,
      hasKey: apiKey.get(deps.storage) !== null,
      loadError: null,
    });
  }

  get demo(): boolean {
    return this.state.health?.demo === true || this.state.model?.demo === true;
  }

  async load(): Promise<Model | null> {
    try {
      const model = await this.deps.api.model(MODEL_ID);
      this.update({ model, loadError: null });
      return model;
    } catch (err) {
      if (isUnauthorized(err)) this.update({ needKey: true });
      else this.update({ loadError: `The model could not be loaded: ${(err as Error).message}` });
      return null;
    }
  }

  /** 401 anywhere: ask for a key. */
  unauthorized(): void {
    this.update({ needKey: true });
  }

  watchHealth(everyMs = 5000): void {
    const poll = async () => {
      try {
        this.update({ health: await this.deps.api.health() });
      } catch {
        this.update({ health: null });
      }
    };
    void poll();
    this.timer = this.deps.timers.setInterval(() => void poll(), everyMs);
  }

  setKey(key: string | null): void {
    apiKey.set(this.deps.storage, key?.trim() || null);
    this.deps.reload();
  }

  close(): void {
    this.deps.timers.clearInterval(this.timer);
  }
}
