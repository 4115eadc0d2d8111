// Copy as code: every language and mode sends exactly the form's body to the right endpoint.
// The snippets run here with the network call replaced by one that records the request; the
// browser test runs the copied cURL against the real server.
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import {
  abbreviate,
  bodyFor,
  generateCode,
  LANGUAGES,
  MODES,
  type Mode,
  pythonLiteral,
} from "../../src/lib/code.js";

const BASE = "http://127.0.0.1:9";
const BODY = {
  model: "flux-kontext-dev",
  input_image: `data:image/png;base64,${"iVBORw0KGgo".repeat(20)}`,
  prompt: `it's a "quoted" prompt\nwith a newline and $HOME and \`ticks\``,
  aspect_ratio: "match_input_image",
  num_inference_steps: 4,
  guidance: 2.5,
  seed: 42,
  disable_safety_checker: false,
  num_generations: 2,
};
const ENDPOINT: Record<Mode, string> = {
  sync: "/api/ai/images/edit",
  async: "/api/ai/queue",
  sse: "/api/ai/images/edit",
};
const KONTEXT_API_KEY = "test-key-123";
const tmp = mkdtempSync(path.join(tmpdir(), "kontext-code-"));

interface Captured {
  url: string;
  headers: Record<string, string>;
  body: unknown;
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
if "--data-binary" in args:
    headers = dict(args[i + 1].split(": ", 1) for i, a in enumerate(args) if a == "-H")
    with open(os.environ["CAPTURE"], "w") as f:
        json.dump({"url": url, "headers": headers, "body": json.loads(sys.stdin.read())}, f)
if url.endswith("/api/ai/queue"):
    print(json.dumps({"generations": [{"generation_id": "g1", "status": "queued"}]}))
else:
    print(json.dumps({"generation_id": "g1", "status": "succeeded"}))
`,
    { mode: 0o755 },
  );
  execFileSync("bash", ["-c", code], {
    env: { ...process.env, PATH: `${bin}:${process.env.PATH}`, CAPTURE: capture, KONTEXT_API_KEY },
    encoding: "utf8",
  });
  return JSON.parse(readFileSync(capture, "utf8")) as Captured;
}

function runPython(code: string): Captured {
  const harness = `
import json, sys, urllib.request
def fake(req, *a, **k):
    print(json.dumps({"url": req.full_url, "headers": dict(req.header_items()), "body": json.loads(req.data)}))
    sys.exit(0)
urllib.request.urlopen = fake
exec(compile(sys.stdin.read(), "snippet.py", "exec"))
`;
  const out = execFileSync("python3", ["-c", harness], {
    input: code,
    encoding: "utf8",
    env: { ...process.env, KONTEXT_API_KEY },
  });
  const c = JSON.parse(out) as Captured;
  // urllib capitalizes header names ("Content-type")
  c.headers = Object.fromEntries(Object.entries(c.headers).map(([k, v]) => [k.toLowerCase(), v]));
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
    `globalThis.fetch = async (url, init) => {
  console.log(JSON.stringify({ url, headers: init.headers, body: JSON.parse(init.body) }));
  process.exit(0);
};
${js.outputText}`,
  );
  return JSON.parse(
    execFileSync(process.execPath, [file], { encoding: "utf8", env: { ...process.env, KONTEXT_API_KEY } }),
  ) as Captured;
}

const lower = (h: Record<string, string>) =>
  Object.fromEntries(Object.entries(h).map(([k, v]) => [k.toLowerCase(), v]));

describe("copy as code", () => {
  for (const language of LANGUAGES) {
    for (const mode of MODES) {
      for (const auth of [false, true]) {
        it(`${language} ${mode}${auth ? " with an API key" : ""} sends the form's body to ${ENDPOINT[mode]}`, () => {
          const code = generateCode(language, mode, `${BASE}/`, BODY, auth);
          expect(code).not.toContain(KONTEXT_API_KEY); // taken from the environment, never written in
          const run = { curl: runCurl, python: runPython, typescript: runTypeScript }[language];
          const sent = run(code);
          expect(sent.url).toBe(`${BASE}${ENDPOINT[mode]}`);
          expect(sent.body).toEqual(bodyFor(mode, BODY));
          const headers = lower(sent.headers);
          expect(headers["content-type"]).toBe("application/json");
          if (mode === "sse") expect(headers.accept).toBe("text/event-stream");
          expect(headers.authorization).toBe(auth ? `Bearer ${KONTEXT_API_KEY}` : undefined);
        });
      }
    }
  }

  it("makes all num_generations only in the async version, and says so in the others", () => {
    expect(bodyFor("async", BODY).num_generations).toBe(2);
    expect(bodyFor("sync", BODY)).not.toHaveProperty("num_generations");
    expect(generateCode("curl", "sync", BASE, BODY)).toMatch(
      /^# One image per request here; the async \(queue\) version makes all 2/,
    );
    expect(generateCode("python", "async", BASE, BODY)).not.toMatch(/One image per request/);
  });

  it("shortens data URIs on screen only", () => {
    const code = generateCode("curl", "sync", BASE, BODY);
    const shown = abbreviate(code);
    expect(shown).toContain(
      `"data:image/png;base64,${BODY.input_image.slice(22, 46)}…(0 KB of image data, copied in full)"`,
    );
    expect(shown).not.toContain(BODY.input_image);
    expect(code).toContain(BODY.input_image);
  });

  it("writes Python literals", () => {
    expect(pythonLiteral({ a: true, b: null, c: [1, "x"], d: false })).toBe(
      '{\n    "a": True,\n    "b": None,\n    "c": [\n        1,\n        "x",\n    ],\n    "d": False,\n}',
    );
  });
});
