// The workbench's layout: header, the form (left), the workspace (chain, result, sweep,
// comparison), the queue and the gallery (right), and the dialogs. What the page does lives in
// the feature controllers (features/*/); this file only places their components.
import { lazy, Suspense, useEffect, useMemo, useState } from "react";
import { AuthFetch } from "./app/AuthImage.js";
import { Boundary } from "./app/Boundary.js";
import { useWorkbench } from "./app/context.js";
import { useStore } from "./app/store.js";
import { ChainStrip } from "./features/chain/ChainStrip.js";
import { chainSteps } from "./features/chain/chain.js";
import { CodeDialog } from "./features/code/CodeDialog.js";
import { FormPanel } from "./features/form/FormPanel.js";
import { GalleryPanel } from "./features/gallery/Gallery.js";
import { QueuePanel } from "./features/queue/QueuePanel.js";
import { queueRows, tabTitle } from "./features/queue/queue.js";
import type { ResultActions } from "./features/run/GenerationCard.js";
import { anyActive } from "./features/run/progress.js";
import { RunPanel } from "./features/run/RunPanel.js";
import { Header } from "./features/session/Header.js";
import { ShortcutsDialog, useShortcuts } from "./features/shortcuts/Shortcuts.js";
import { SweepGrid } from "./features/sweep/Sweep.js";

// The viewer (zoom/pan, before/after slider) loads when first opened: not in the first bundle.
const Viewer = lazy(() => import("./features/viewer/Viewer.js").then((m) => ({ default: m.Viewer })));

/** Re-renders every 100 ms while `active`, for elapsed times. */
function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const t = setInterval(() => setNow(Date.now()), 100);
    return () => clearInterval(t);
  }, [active]);
  return now;
}

export function App() {
  const wb = useWorkbench();
  const { session, runs, sweep, gallery, queue } = wb.parts;
  const page = useStore(wb);
  const { tracked, run } = useStore(runs);
  const sw = useStore(sweep);
  const { known } = useStore(gallery);
  const { items: active } = useStore(queue);
  const { hasKey } = useStore(session);
  useShortcuts(wb);

  const rows = useMemo(() => queueRows(active, tracked), [active, tracked]);
  useEffect(() => {
    document.title = tabTitle(rows);
  }, [rows]);
  const live = anyActive(tracked, [...(run?.ids ?? []), ...sw.ids]);
  const now = useNow(live);
  const actions: ResultActions = {
    onContinue: (id) => void wb.continueFrom(id),
    onView: (id) => wb.view(`result:${id}`, "before-after"),
    onToggleCompare: (key) => wb.toggleCompare(key),
    onCancel: (id) => void runs.cancel([id]),
    compared: page.compared,
    hasInput: (id) => wb.hasInput(id),
  };
  const steps = chainSteps(known, page.chain);
  const authFetch = useMemo(() => (hasKey ? (url: string) => wb.fetchBlob(url) : null), [hasKey, wb]);
  const hasResult = run !== null || sw.spec !== null;

  return (
    <AuthFetch.Provider value={authFetch}>
      <Boundary name="The header">
        <Header session={session} onShortcuts={() => wb.openShortcuts(true)} queueCount={rows.length} />
      </Boundary>
      <main className={`layout${hasResult ? " has-result" : ""}`}>
        <Boundary name="The form">
          <FormPanel wb={wb} />
        </Boundary>
        <div className="workspace">
          {page.notice && (
            <p className="notice" role="status">
              {page.notice}{" "}
              <button type="button" className="link" onClick={() => wb.setNotice(null)}>
                dismiss
              </button>
            </p>
          )}
          <Boundary name="The edit chain">
            <ChainStrip
              steps={steps}
              onGoTo={(s) => void wb.goToStep(s.id, s.imageUrl, s.label)}
              onBranch={(id) => wb.showBranch(id)}
            />
          </Boundary>
          <Boundary name="The result">
            <RunPanel wb={wb} now={now} actions={actions} />
          </Boundary>
          {sw.spec && (
            <Boundary name="The sweep">
              <SweepGrid
                spec={sw.spec}
                ids={sw.ids}
                tracked={tracked}
                now={now}
                actions={actions}
                onCancel={() => void sweep.cancel()}
                onClose={() => sweep.clear()}
                active={anyActive(tracked, sw.ids)}
              />
            </Boundary>
          )}
          {page.compared.length > 0 && (
            <section className="panel compare-bar" aria-label="Compare">
              <span>{page.compared.length} to compare</span>
              <button type="button" onClick={() => wb.viewCompared()} disabled={page.compared.length < 2}>
                Compare {page.compared.length}
              </button>
              <button type="button" className="secondary" onClick={() => wb.clearCompare()}>
                Clear comparison
              </button>
            </section>
          )}
        </div>
        <aside className="side">
          <Boundary name="The queue">
            <QueuePanel rows={rows} onCancel={(id) => void runs.cancelAny(id).then(() => queue.kick())} />
          </Boundary>
          <Boundary name="The gallery" onRetry={() => gallery.refresh().catch(() => undefined)}>
            <GalleryPanel wb={wb} />
          </Boundary>
        </aside>
      </main>
      {page.viewer && (
        <Boundary name="The viewer">
          <Suspense fallback={null}>
            <Viewer wb={wb} />
          </Suspense>
        </Boundary>
      )}
      <Boundary name="Copy as code">
        <CodeDialog wb={wb} />
      </Boundary>
      <ShortcutsDialog wb={wb} />
    </AuthFetch.Provider>
  );
}
