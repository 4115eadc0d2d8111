// Copy as code: every language and mode, with the image from a local file, a URL or a download,
// sends the form's body to the right endpoint. The snippets run here as shown, with the network
// replaced by a recorder; the browser test runs a copied cURL against the real server.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import ts from "typescript";
import { afterAll, describe, expect, it } from "vitest";
import type { CodeImage } from "../form/form.js";
import { bodyFor, generateCode, LANGUAGES, MODES, type Mode, pythonLiteral } from "./code.js";

const BASE = "http://127.0.0.1:9";
const BODY = {
  model: "flux-kontext-dev",
  prompt: `it's a "quoted" prompt\nwith a newline and $HOME and \`ticks\``,
  aspect_ratio: "match_input_image",
  num_inference_steps: 4,
  guidance: 2.5,
  seed: 42,
  // issue 15's and 16's fields go through every snippet as the form sends them
  true_cfg_scale: 2.5,
  negative_prompt: 'blurry, "low" quality',
  output_resolution: "input",
  preserve_unedited: true,
  loras: [
    { name: "styles/ink wash", scale: 0.85 },
    { name: "detail", scale: -1.5 },
  ],
  num_generations: 2,
};
const ENDPOINT: Record<Mode, string> = {
  sync: "/api/ai/images/edit",
  async: "/api/ai/queue",
  sse: "/api/ai/images/edit",
};
const KONTEXT_API_KEY = "test-key-123";
const tmp = mkdtempSync(path.join(tmpdir(), "kontext-code-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
/** The image's bytes: the file in the current directory, and what a download answers. */
const BYTES = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 250, 251, 252, 0, 10, 13]);
writeFileSync(path.join(tmp, "My_photo_1_.jpg"), BYTES);
const IMAGES: Record<string, { image: CodeImage; input: string }> = {
  file: {
    image: { kind: "file", name: "My photo (1).jpg", type: "image/jpeg" },
    input: `data:image/jpeg;base64,${BYTES.toString("base64")}`,
  },
  url: { image: { kind: "url", url: "https://example.com/a.png" }, input: "https://example.com/a.png" },
  download: {
    image: { kind: "download", url: `${BASE}/api/history/g0/input`, type: "image/jpeg" },
    input: `data:image/jpeg;base64,${BYTES.toString("base64")}`,
  },
};

interface Captured {
  url: string;
  headers: Record<string, string>;
  body: Record<string, unknown>;
  /** headers of the image download, if any */
  download?: Record<string, string>;
}

function runCurl(code: string): Captured {
  // A `curl` on PATH that records the request it was asked to send, and answers like the server.
  const bin = path.join(tmp, "bin");
  const capture = path.join(tmp, "curl-request.json");
  mkdirSync(bin, { recursive: true });
  rmSync(capture, { force: true });
  writeFileSync(
    path.join(bin, "curl"),
    `#!/usr/bin/env python3
import json, os, sys
args = sys.argv[1:]
url = next(a for a in args if a.startswith("http"))
headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args) if a == "-H")
if "--data-binary" not in args:
    if "/input" in url:
        with open(os.environ["CAPTURE"] + ".dl", "w") as f: json.dump(headers, f)
        sys.stdout.buffer.write(bytes(${JSON.stringify([...BYTES])}))
        sys.exit(0)
else:
    body = json.loads(sys.stdin.read())
    with open(os.environ["CAPTURE"], "w") as f:
        json.dump({"url": url, "headers": headers, "body": body}, f)
if url.endswith("/api/ai/queue"):
    print(json.dumps({"generations": [{"generation_id": "g1", "status": "queued"}]}))
else:
    print(json.dumps({"generation_id": "g1", "status": "succeeded"}))
`,
    { mode: 0o755 },
  );
  rmSync(`${capture}.dl`, { force: true });
  execFileSync("bash", ["-c", code], {
    cwd: tmp,
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, CAPTURE: capture, KONTEXT_API_KEY },
    encoding: "utf8",
  });
  const c = JSON.parse(readFileSync(capture, "utf8")) as Captured;
  try {
    c.download = JSON.parse(readFileSync(`${capture}.dl`, "utf8"));
  } catch {}
  return c;
}

function runPython(code: string): Captured {
  const harness = `
import io, json, sys, urllib.request
seen = {}
def fake(req, *a, **k):
    if req.data is None:
        seen["download"] = dict(req.header_items())
        return io.BytesIO(bytes(${JSON.stringify([...BYTES])}))
    print(json.dumps({"url": req.full_url, "headers": dict(req.header_items()), "body": json.loads(req.data), **seen}))
    sys.exit(0)
urllib.request.urlopen = fake
exec(compile(sys.stdin.read(), "snippet.py", "exec"))
`;
  const out = execFileSync("python3", ["-c", harness], {
    cwd: tmp,
    input: code,
    encoding: "utf8",
    env: { ...process.env, KONTEXT_API_KEY },
  });
  const c = JSON.parse(out) as Captured;
  const low = (h: Record<string, string>) =>
    Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));
  c.headers = low(c.headers); // urllib capitalizes header names ("Content-type")
  if (c.download) c.download = low(c.download);
  return c;
}

function runTypeScript(code: string): Captured {
  const js = ts.transpileModule(code, {
    reportDiagnostics: true,
    compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022 },
  });
  expect(js.diagnostics ?? []).toEqual([]);
  const file = path.join(tmp, `snippet-${Math.random().toString(36).slice(2)}.mjs`);
  writeFileSync(
    file,
    `let download;
globalThis.fetch = async (url, init = {}) => {
  if (!init.body) { download = init.headers; return { arrayBuffer: async () => new Uint8Array(${JSON.stringify([...BYTES])}).buffer }; }
  console.log(JSON.stringify({ url, headers: init.headers, body: JSON.parse(init.body), download }));
  process.exit(0);
};
${js.outputText}`,
  );
  return JSON.parse(
    execFileSync(process.execPath, [file], {
      cwd: tmp,
      encoding: "utf8",
      env: { ...process.env, KONTEXT_API_KEY },
    }),
  ) as Captured;
}

const lower = (h: Record<string, string> = {}) =>
  Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

describe("copy as code", () => {
  for (const language of LANGUAGES)
    for (const mode of MODES)
      for (const [from, { image, input }] of Object.entries(IMAGES))
        for (const auth of from === "url" ? [false] : [false, true]) {
          it(`${language} ${mode}, image from a ${from}${auth ? ", with an API key" : ""}: sends the form's body to ${ENDPOINT[mode]}`, () => {
            const code = generateCode({ language, mode, baseUrl: `${BASE}/`, body: BODY, image, auth });
            expect(code).not.toContain(KONTEXT_API_KEY); // taken from the environment, never written in
            expect(code).not.toContain(BYTES.toString("base64")); // read when run, never inlined
            const run = { curl: runCurl, python: runPython, typescript: runTypeScript }[language];
            const sent = run(code);
            expect(sent.url).toBe(`${BASE}${ENDPOINT[mode]}`);
            expect(sent.body).toEqual({ input_image: input, ...bodyFor(mode, BODY) });
            const headers = lower(sent.headers);
            expect(headers["content-type"]).toBe("application/json");
            if (mode === "sse") expect(headers.accept).toBe("text/event-stream");
            expect(headers.authorization).toBe(auth ? `Bearer ${KONTEXT_API_KEY}` : undefined);
            if (from === "download")
              expect(lower(sent.download).authorization).toBe(auth ? `Bearer ${KONTEXT_API_KEY}` : undefined);
          });
        }

  for (const language of LANGUAGES)
    for (const mode of MODES)
      it(`${language} ${mode}: sends the reference images and the painted mask with the input`, () => {
        const mask = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a]);
        writeFileSync(path.join(tmp, "mask.png"), mask);
        const code = generateCode({
          language,
          mode,
          baseUrl: BASE,
          body: BODY,
          image: IMAGES.file?.image ?? null,
          more: [
            { field: "input_image_2", image: { kind: "url", url: "https://example.com/hat.png" } },
            {
              field: "input_image_3",
              image: { kind: "download", url: `${BASE}/api/history/g2/input`, type: "image/png" },
            },
            {
              field: "mask_image",
              image: {
                kind: "file",
                name: "mask.png",
                type: "image/png",
                note: "Reads mask.png: the painted mask.",
              },
            },
          ],
          auth: false,
        });
        expect(code).toContain("Reads mask.png: the painted mask.");
        const sent = { curl: runCurl, python: runPython, typescript: runTypeScript }[language](code);
        expect(sent.url).toBe(`${BASE}${ENDPOINT[mode]}`);
        expect(sent.body).toEqual({
          input_image: IMAGES.file?.input,
          input_image_2: "https://example.com/hat.png",
          input_image_3: `data:image/png;base64,${BYTES.toString("base64")}`,
          mask_image: `data:image/png;base64,${mask.toString("base64")}`,
          ...bodyFor(mode, BODY),
        });
      });

  it("sends text-to-image to its own endpoint, with no image at all", () => {
    const code = generateCode({
      language: "python",
      mode: "sync",
      baseUrl: BASE,
      body: { model: "flux-kontext-dev", prompt: "a red fox", aspect_ratio: "16:9" },
      image: null,
      auth: false,
      endpoint: "/api/ai/images/generate",
    });
    const sent = runPython(code);
    expect(sent.url).toBe(`${BASE}/api/ai/images/generate`);
    expect(sent.body).toEqual({ model: "flux-kontext-dev", prompt: "a red fox", aspect_ratio: "16:9" });
  });

  it("makes all num_generations only in the async version, and says so in the others", () => {
    const at = (language: "curl" | "python", mode: Mode) =>
      generateCode({ language, mode, baseUrl: BASE, body: BODY, image: null, auth: false });
    expect(bodyFor("async", BODY).num_generations).toBe(2);
    expect(bodyFor("sync", BODY)).not.toHaveProperty("num_generations");
    expect(at("curl", "sync")).toMatch(
      /^# One image per request here; the async \(queue\) version makes all 2/,
    );
    expect(at("python", "async")).not.toMatch(/One image per request/);
  });

  it("says which file it reads", () => {
    const code = generateCode({
      language: "curl",
      mode: "sync",
      baseUrl: BASE,
      body: BODY,
      image: IMAGES.file?.image ?? null,
      auth: false,
    });
    expect(code).toContain("# Reads My_photo_1_.jpg from the current directory");
  });

  it("writes Python literals", () => {
    expect(pythonLiteral({ a: true, b: null, c: [1, "x"], d: false })).toBe(
      '{\n    "a": True,\n    "b": None,\n    "c": [\n        1,\n        "x",\n    ],\n    "d": False,\n}',
    );
  });
});
