// The page's header: the model, the engine's state, the API key (asked for when the server
// wants one) and the demo-model banner.
import { useStore } from "../../app/store.js";
import type { Session } from "./session.js";

export function Header({
  session,
  onShortcuts,
  queueCount,
}: {
  session: Session;
  onShortcuts: () => void;
  queueCount: number;
}) {
  const s = useStore(session);
  return (
    <>
      <header className="top">
        <h1>Kontext workbench</h1>
        <p className="model">
          {s.model?.display_name ?? "loading the model…"}
          {s.health && (
            <span className={`engine engine-${s.health.state}`}>
              {" "}
              · engine {s.health.state}
              {s.health.device ? ` on ${s.health.device}` : ""}
            </span>
          )}
        </p>
        <div className="top-actions">
          {queueCount > 0 && (
            <a className="badge" href="#queue-title" aria-label={`${queueCount} in the queue`}>
              {queueCount} in queue
            </a>
          )}
          {s.hasKey && (
            <button type="button" className="link" onClick={() => session.setKey(null)}>
              forget API key
            </button>
          )}
          <button type="button" className="link" onClick={onShortcuts} aria-keyshortcuts="?">
            Shortcuts <kbd>?</kbd>
          </button>
        </div>
      </header>
      {s.needKey && (
        <form
          className="banner key"
          aria-label="API key"
          onSubmit={(e) => {
            e.preventDefault();
            const key = new FormData(e.currentTarget).get("api-key");
            if (typeof key === "string" && key.trim()) session.setKey(key);
          }}
        >
          <label htmlFor="api-key">
            {s.hasKey
              ? "The server did not accept this browser's API key; give another:"
              : "This server wants an API key (one of KONTEXT_API_KEYS):"}
          </label>
          <input id="api-key" name="api-key" type="password" autoComplete="off" />
          <button type="submit">Use key</button>
        </form>
      )}
      {session.demo && (
        <div className="banner demo" role="alert">
          <strong>Demo model.</strong> The tiny random-weight model is loaded: everything works, but its
          output is noise. Set <code>KONTEXT_MODEL_DIR</code> to the FLUX.1 Kontext [dev] weights for real
          edits.
        </div>
      )}
      {s.loadError && (
        <div className="banner error" role="alert">
          {s.loadError}
        </div>
      )}
    </>
  );
}
