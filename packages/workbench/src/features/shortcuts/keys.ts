// The page's keyboard shortcuts, as data (the list the `?` dialog shows) and one decision
// function that says what a key press does where it happened.

export const SHORTCUTS: ReadonlyArray<readonly [string, string]> = [
  ["Ctrl/⌘ + Enter", "Run"],
  ["Esc", "Cancel the running generation (or close the open dialog)"],
  ["Ctrl/⌘ + V", "Paste an image (or an image URL) as the input"],
  ["← →", "In the viewer: the previous or next image"],
  ["T", "In the viewer's toggle: the other image"],
  ["?", "This list"],
];

export type KeyAction = "run" | "cancel" | "shortcuts" | null;

export interface KeyContext {
  key: string;
  ctrlOrMeta: boolean;
  /** typing in a text field */
  editing: boolean;
  /** a modal dialog is open (it owns the keyboard: Esc closes it) */
  dialogOpen: boolean;
}

export function keyAction(k: KeyContext): KeyAction {
  if (k.dialogOpen) return null;
  if (k.key === "Enter" && k.ctrlOrMeta) return "run";
  if (k.key === "Escape") return "cancel";
  if (k.key === "?" && !k.editing && !k.ctrlOrMeta) return "shortcuts";
  return null;
}
