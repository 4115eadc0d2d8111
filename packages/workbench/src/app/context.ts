// The page's controllers, handed to components through React context.
import { createContext, useContext } from "react";
import type { Workbench } from "../features/workspace/workbench.js";

export const WorkbenchContext = createContext<Workbench | null>(null);

export function useWorkbench(): Workbench {
  const wb = useContext(WorkbenchContext);
  if (!wb) throw new Error("no WorkbenchContext above this component");
  return wb;
}
