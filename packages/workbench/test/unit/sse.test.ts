import { describe, expect, it } from "vitest";
import { parseSse } from "../../src/lib/sse.js";

describe("event stream parsing", () => {
  it("reads id, event and data; skips comments; keeps an unfinished message for later", () => {
    const text =
      ': connected\n\nid: 7\nevent: media_generation_progress\ndata: {"step":1}\n\n: keep-alive\n\nid: 8\nevent: media_generation_comp';
    const { messages, rest } = parseSse(text);
    expect(messages).toEqual([{ id: "7", event: "media_generation_progress", data: '{"step":1}' }]);
    expect(rest).toBe("id: 8\nevent: media_generation_comp");
    const more = parseSse(`${rest}leted\ndata: {"status":"succeeded"}\n\n`);
    expect(more.messages).toEqual([
      { id: "8", event: "media_generation_completed", data: '{"status":"succeeded"}' },
    ]);
    expect(more.rest).toBe("");
  });

  it("joins multi-line data and accepts CRLF line ends", () => {
    const { messages } = parseSse("data: a\r\ndata: b\r\n\r\n");
    expect(messages).toEqual([{ id: null, event: "message", data: "a\nb" }]);
  });
});
