// The latest run's generations, live.
import { useStore } from "../../app/store.js";
import type { Workbench } from "../workspace/workbench.js";
import { GenerationCard, type ResultActions } from "./GenerationCard.js";

export function RunPanel({ wb, now, actions }: { wb: Workbench; now: number; actions: ResultActions }) {
  const { run, tracked } = useStore(wb.parts.runs);
  return (
    <section className="panel run" aria-labelledby="run-title">
      <h2 id="run-title">Result</h2>
      {!run && <p className="empty">Choose an image, describe the edit, and run.</p>}
      <div className="results">
        {run?.ids.map((id, i) => {
          const p = tracked[id];
          const label = run.ids.length > 1 ? `“${run.prompt}” #${i + 1}` : `“${run.prompt}”`;
          return p ? (
            <GenerationCard key={id} progress={p} now={now} label={label} actions={actions} />
          ) : null;
        })}
      </div>
    </section>
  );
}
