import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App.js";
import { Boundary } from "./app/Boundary.js";
import { compose } from "./app/compose.js";
import { WorkbenchContext } from "./app/context.js";
import "./styles.css";

const root = document.getElementById("root");
if (!root) throw new Error("index.html has no #root");
const workbench = compose();
createRoot(root).render(
  <StrictMode>
    <Boundary name="The workbench">
      <WorkbenchContext.Provider value={workbench}>
        <App />
      </WorkbenchContext.Provider>
    </Boundary>
  </StrictMode>,
);
void workbench.init();
// A reload within the save's 250 ms would lose the last change: the workspace is written on the way out.
window.addEventListener("pagehide", () => workbench.flush());
// Errors outside React's rendering (a failed promise in a handler) are said in the workspace's
// notice line, not lost in the console; rendering errors are caught by each panel's Boundary.
window.addEventListener("unhandledrejection", (e) => {
  const reason = e.reason instanceof Error ? e.reason.message : String(e.reason);
  workbench.setNotice(`Something went wrong: ${reason}`);
});
// A file dropped anywhere but the drop zone would make the browser open it and leave the page.
for (const type of ["dragover", "drop"] as const)
  window.addEventListener(type, (e) => {
    if (e.dataTransfer?.types.includes("Files")) e.preventDefault();
    if (type === "drop" && e.dataTransfer?.files.length) {
      const file = [...e.dataTransfer.files][0];
      if (file) void workbench.pickFile(file);
    }
  });
