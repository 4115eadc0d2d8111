// Copying text over plain HTTP too: navigator.clipboard exists only in a secure context (https or
// localhost), so a page opened at a LAN address copies through a selected textarea instead.

/**
 * Copies `text`; resolves "clipboard" or "selection" by how, or rejects when the browser
 * refuses both. `within`: where the helper textarea goes (inside a modal dialog, the only
 * place that is not inert while it is open).
 */
export async function copyText(
  text: string,
  within: HTMLElement = document.body,
): Promise<"clipboard" | "selection"> {
  if (window.isSecureContext && navigator.clipboard?.writeText) {
    try {
      await navigator.clipboard.writeText(text);
      return "clipboard";
    } catch {
      // denied: try the selection
    }
  }
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.top = "0";
  area.style.left = "-9999px";
  within.append(area);
  const active = document.activeElement as HTMLElement | null;
  area.select();
  area.setSelectionRange(0, text.length);
  try {
    if (!document.execCommand("copy")) throw new Error("the browser refused to copy");
    return "selection";
  } finally {
    area.remove();
    active?.focus();
  }
}
