// The parts of the client and CLI that need no server: the SSE parser, the progress bar, the
// option parsing and the PNG encoder.
import { inflateSync } from "node:zlib";
import { describe, expect, it } from "vitest";
import { parseLora } from "../src/cli/main.js";
import { formatOfPath, parseSets, typedValue } from "../src/cli/params.js";
import { encodePng } from "../src/cli/png.js";
import { ProgressBar, renderBar } from "../src/cli/progress.js";
import { parseEventStream } from "../src/sse.js";

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  const enc = new TextEncoder();
  return new ReadableStream({
    start(c) {
      for (const ch of chunks) c.enqueue(enc.encode(ch));
      c.close();
    },
  });
}

describe("parseEventStream", () => {
  it("yields events split across chunks, skips comments, joins data lines, takes CRLF", async () => {
    const events = [];
    for await (const e of parseEventStream(
      streamOf([
        ": connected\n\nid: 1\nevent: a\nda",
        'ta: {"x":1}\n\n: keep-alive\r\n\r\n',
        "id: 2\r\nevent: b\r\ndata: l1\r\ndata: l2\r\n\r\n",
        "data: last",
      ]),
    ))
      events.push(e);
    expect(events).toEqual([
      { id: "1", event: "a", data: '{"x":1}' },
      { id: "2", event: "b", data: "l1\nl2" },
      { id: null, event: "message", data: "last" },
    ]);
  });
});

describe("progress bar", () => {
  it("draws the fraction done", () => {
    expect(renderBar(0.5, 10)).toBe("[█████░░░░░]  50%");
    expect(renderBar(1, 4)).toBe("[████] 100%");
  });
  it("writes one line per change when not on a terminal, redraws in place on one", () => {
    const lines: string[] = [];
    const bar = new ProgressBar({ write: (s: string) => lines.push(s), isTTY: false });
    bar.update(1, 4);
    bar.update(1, 4);
    bar.finish("done");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^\[█+░+\]\s+25% step 1\/4 .*\n$/);
    const tty: string[] = [];
    new ProgressBar({ write: (s: string) => tty.push(s), isTTY: true }).update(2, 4);
    expect(tty[0]?.startsWith("\r\u001b[2K[")).toBe(true);
  });
});

describe("CLI options", () => {
  it("types values and leaves the rest to the server", () => {
    expect([typedValue("28"), typedValue("2.5"), typedValue("true"), typedValue("abc")]).toEqual([
      28,
      2.5,
      true,
      "abc",
    ]);
    expect(parseSets(["guidance=3", 'webhook_events_filter=["completed"]'])).toEqual({
      guidance: 3,
      webhook_events_filter: ["completed"],
    });
    expect(() => parseSets(["nokey"])).toThrow(/key=value/);
    expect([
      formatOfPath("a.WEBP"),
      formatOfPath("b.jpeg"),
      formatOfPath("c.png"),
      formatOfPath("d.gif"),
    ]).toEqual(["webp", "jpg", "png", null]);
  });
});

describe("encodePng", () => {
  it("writes a valid PNG whose pixels are the ones asked for", () => {
    const png = encodePng(3, 2, (x, y) => [x * 10, y * 20, 7]);
    expect(png.subarray(1, 4).toString()).toBe("PNG");
    expect([png.readUInt32BE(16), png.readUInt32BE(20)]).toEqual([3, 2]);
    const idatLen = png.readUInt32BE(33);
    const raw = inflateSync(png.subarray(41, 41 + idatLen));
    expect([...raw]).toEqual([0, 0, 0, 7, 10, 0, 7, 20, 0, 7, 0, 0, 20, 7, 10, 20, 7, 20, 20, 7]);
  });
});

describe("--lora name[:scale]", () => {
  it("takes the scale after the last colon when it is a number", () => {
    expect(parseLora("styles/ghibli")).toEqual({ name: "styles/ghibli" });
    expect(parseLora("styles/ghibli:0.75")).toEqual({ name: "styles/ghibli", scale: 0.75 });
    expect(parseLora("a:b:-1")).toEqual({ name: "a:b", scale: -1 });
    expect(parseLora("odd:name")).toEqual({ name: "odd:name" });
  });
});
