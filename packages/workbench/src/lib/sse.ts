// Server-Sent Events over fetch. EventSource cannot send an Authorization header, and a server
// with API keys on wants one on every /api request; fetch can. Reconnects with Last-Event-ID
// (the server replays what was missed) until stopped or until `done` says the stream is over.
import type { ServerEvent } from "./progress.js";

export interface SseMessage {
  id: string | null;
  event: string;
  data: string;
}

/** Splits a growing buffer into complete messages; returns them and what is left over. */
export function parseSse(buffer: string): { messages: SseMessage[]; rest: string } {
  const messages: SseMessage[] = [];
  const blocks = buffer.replace(/\r\n?/g, "\n").split("\n\n");
  const rest = blocks.pop() ?? "";
  for (const block of blocks) {
    let id: string | null = null;
    let event = "message";
    const data: string[] = [];
    for (const line of block.split("\n")) {
      if (line === "" || line.startsWith(":")) continue; // comments: keep-alives
      const colon = line.indexOf(":");
      const field = colon < 0 ? line : line.slice(0, colon);
      const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
      if (field === "id") id = value;
      else if (field === "event") event = value;
      else if (field === "data") data.push(value);
    }
    if (data.length > 0) messages.push({ id, event, data: data.join("\n") });
  }
  return { messages, rest };
}

export interface StreamOptions {
  headers: () => HeadersInit;
  /** true: the stream is over (no reconnect) */
  done?: (e: ServerEvent) => boolean;
  retryMs?: number;
}

/** Reads an event stream, reconnecting after drops; returns a function that stops it. */
export function streamEvents(
  path: string,
  onEvent: (e: ServerEvent) => void,
  opts: StreamOptions,
): () => void {
  const abort = new AbortController();
  let lastId: string | null = null;
  let finished = false;
  const run = async () => {
    while (!finished && !abort.signal.aborted) {
      try {
        const headers = new Headers(opts.headers());
        headers.set("Accept", "text/event-stream");
        if (lastId) headers.set("Last-Event-ID", lastId);
        const res = await fetch(path, { headers, signal: abort.signal });
        if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
        const reader = res.body.getReader();
        const decoder = new TextDecoder();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buffer += decoder.decode(value, { stream: true });
          const parsed = parseSse(buffer);
          buffer = parsed.rest;
          for (const m of parsed.messages) {
            if (m.id) lastId = m.id;
            let data: Record<string, unknown>;
            try {
              data = JSON.parse(m.data) as Record<string, unknown>;
            } catch {
              continue;
            }
            const e = { event: m.event, data };
            onEvent(e);
            if (opts.done?.(e)) finished = true;
          }
        }
      } catch {
        if (abort.signal.aborted) return;
      }
      if (!finished && !abort.signal.aborted) await new Promise((r) => setTimeout(r, opts.retryMs ?? 1000));
    }
  };
  void run();
  return () => abort.abort();
}
