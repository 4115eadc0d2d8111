// Every run, kept on the server: search by prompt; edit chains as a tree; reuse, continue,
// download, compare.
import { buildTree, type HistoryItem, summary, type TreeNode } from "../../lib/history.js";
import { formatSeconds } from "../../lib/progress.js";
import { AuthImage } from "../AuthImage.js";

interface Props {
  items: readonly HistoryItem[];
  query: string;
  onQuery: (q: string) => void;
  onReuse: (item: HistoryItem) => void;
  onContinue: (id: string) => void;
  onToggleCompare: (id: string) => void;
  compared: readonly string[];
  currentBaseId: string | null;
}

export function HistoryPanel(props: Props) {
  const roots = buildTree(props.items);
  return (
    <section className="panel history" aria-labelledby="history-title">
      <h2 id="history-title">History</h2>
      <label htmlFor="history-search" className="visually-hidden">
        Search history by prompt
      </label>
      <input
        id="history-search"
        type="search"
        placeholder="Search prompts…"
        value={props.query}
        onChange={(e) => props.onQuery(e.target.value)}
      />
      {roots.length === 0 ? (
        <p className="empty">{props.query ? "No prompt matches." : "Nothing yet: run an edit."}</p>
      ) : (
        <ul className="tree">
          {roots.map((n) => (
            <HistoryNode key={n.item.generation_id} node={n} {...props} />
          ))}
        </ul>
      )}
    </section>
  );
}

function HistoryNode(props: Props & { node: TreeNode }) {
  const { item } = props.node;
  const id = item.generation_id;
  const label = `${item.prompt} (seed ${item.seed})`;
  const ok = item.status === "succeeded";
  return (
    <li data-generation={id} data-depth={props.node.depth} aria-label={`History: ${item.prompt}`}>
      <div className={`history-item status-${item.status}${props.currentBaseId === id ? " current" : ""}`}>
        <AuthImage
          src={item.result_url ?? item.input_url}
          alt={ok ? `Result: ${item.prompt}` : `Input of: ${item.prompt}`}
          loading="lazy"
          width={56}
          height={56}
        />
        <div className="history-text">
          <p className="prompt">
            {props.node.depth > 1 && <span className="chain-mark">↳ step {props.node.depth} </span>}
            {item.prompt}
          </p>
          <p className="meta">
            {item.status !== "succeeded" && <strong>{item.status} · </strong>}
            {summary(item)}
            {item.timings ? ` · ${formatSeconds(item.timings.inference)}` : ""}
          </p>
          {item.error_message && <p className="meta error-text">{item.error_message}</p>}
          <div className="actions">
            <button
              type="button"
              className="secondary"
              aria-label={`Reuse parameters: ${label}`}
              onClick={() => props.onReuse(item)}
            >
              Reuse
            </button>
            {ok && (
              <button
                type="button"
                className="secondary"
                aria-label={`Continue editing: ${label}`}
                onClick={() => props.onContinue(id)}
              >
                Continue
              </button>
            )}
            {ok && item.result_url && (
              <a
                className="button secondary"
                href={item.result_url}
                download
                aria-label={`Download: ${label}`}
              >
                Download
              </a>
            )}
            {ok && (
              <label className="checkbox">
                <input
                  type="checkbox"
                  aria-label={`Compare: ${label}`}
                  checked={props.compared.includes(id)}
                  onChange={() => props.onToggleCompare(id)}
                />
                Compare
              </label>
            )}
          </div>
        </div>
      </div>
      {props.node.children.length > 0 && (
        <ul>
          {props.node.children.map((c) => (
            <HistoryNode key={c.item.generation_id} {...props} node={c} />
          ))}
        </ul>
      )}
    </li>
  );
}
