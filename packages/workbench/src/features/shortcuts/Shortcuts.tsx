// The shortcut list (`?`) and the page-wide keyboard and paste handling.
import { useEffect, useRef } from "react";
import { useStore } from "../../app/store.js";
import type { Workbench } from "../workspace/workbench.js";
import { keyAction, SHORTCUTS } from "./keys.js";

export function useShortcuts(wb: Workbench): void {
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement | null;
      const action = keyAction({
        key: e.key,
        ctrlOrMeta: e.ctrlKey || e.metaKey,
        editing: !!target?.closest("input, textarea, select, [contenteditable]"),
        dialogOpen: !!document.querySelector("dialog[open]"),
      });
      if (!action) return;
      if (action === "run") {
        e.preventDefault();
        void wb.submit();
      } else if (action === "cancel") {
        if (wb.parts.runs.runActive) void wb.cancelRun();
      } else {
        e.preventDefault();
        wb.openShortcuts(true);
      }
    };
    const onPaste = (e: ClipboardEvent) => {
      if (document.querySelector("dialog[open]")) return;
      const file = [...(e.clipboardData?.files ?? [])][0];
      if (file) {
        e.preventDefault();
        void wb.pickFile(file);
        return;
      }
      const target = e.target as HTMLElement | null;
      const editing = target?.closest("input, textarea, [contenteditable]");
      const text = e.clipboardData?.getData("text/plain").trim() ?? "";
      if (!editing && /^https?:\/\/\S+$/i.test(text)) void wb.pickUrl(text);
    };
    window.addEventListener("keydown", onKey);
    window.addEventListener("paste", onPaste);
    return () => {
      window.removeEventListener("keydown", onKey);
      window.removeEventListener("paste", onPaste);
    };
  }, [wb]);
}

export function ShortcutsDialog({ wb }: { wb: Workbench }) {
  const { shortcutsOpen } = useStore(wb);
  const ref = useRef<HTMLDialogElement>(null);
  useEffect(() => {
    const d = ref.current;
    if (shortcutsOpen && d && !d.open) d.showModal();
    if (!shortcutsOpen && d?.open) d.close();
  }, [shortcutsOpen]);
  return (
    <dialog
      ref={ref}
      className="shortcuts"
      aria-labelledby="shortcuts-title"
      onClose={() => wb.openShortcuts(false)}
    >
      <h2 id="shortcuts-title">Keyboard shortcuts</h2>
      <dl>
        {SHORTCUTS.map(([k, what]) => (
          <div key={k}>
            <dt>
              <kbd>{k}</kbd>
            </dt>
            <dd>{what}</dd>
          </div>
        ))}
      </dl>
      <button type="button" onClick={() => wb.openShortcuts(false)}>
        Close
      </button>
    </dialog>
  );
}
