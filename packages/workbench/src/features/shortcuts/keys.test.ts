import { describe, expect, it } from "vitest";
import { keyAction } from "./keys.js";

const k = (key: string, extra: Partial<Parameters<typeof keyAction>[0]> = {}) =>
  keyAction({ key, ctrlOrMeta: false, editing: false, dialogOpen: false, ...extra });

describe("keyboard shortcuts", () => {
  it("run with Ctrl+Enter, cancel with Esc, list with ?", () => {
    expect(k("Enter", { ctrlOrMeta: true, editing: true })).toBe("run");
    expect(k("Enter")).toBeNull();
    expect(k("Escape")).toBe("cancel");
    expect(k("?")).toBe("shortcuts");
    expect(k("?", { editing: true })).toBeNull(); // typing a question mark
  });

  it("leave the keyboard to an open dialog (no run behind the code dialog, Esc closes it)", () => {
    expect(k("Enter", { ctrlOrMeta: true, dialogOpen: true })).toBeNull();
    expect(k("Escape", { dialogOpen: true })).toBeNull();
  });
});
