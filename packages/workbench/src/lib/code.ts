// Copy as code: the current form as cURL, TypeScript and Python, each for the three ways of
// calling the API: sync (POST /api/ai/images/edit waits), async (POST /api/ai/queue, then poll)
// and SSE (the edit request answered as an event stream). The body is the form's body, verbatim.

export const LANGUAGES = ["curl", "typescript", "python"] as const;
export const MODES = ["sync", "async", "sse"] as const;
export type Language = (typeof LANGUAGES)[number];
export type Mode = (typeof MODES)[number];

export const LANGUAGE_LABELS: Record<Language, string> = {
  curl: "cURL",
  typescript: "TypeScript",
  python: "Python",
};
export const MODE_LABELS: Record<Mode, string> = {
  sync: "Sync",
  async: "Async (queue + poll)",
  sse: "Streaming (SSE)",
};

type Body = Record<string, unknown>;

/** The body for a mode: the edit endpoint makes one image, so num_generations goes (it is 1). */
export function bodyFor(mode: Mode, body: Body): Body {
  if (mode === "async") return body;
  const { num_generations: _n, ...rest } = body;
  return rest;
}

function note(mode: Mode, body: Body, comment: string): string {
  const n = body.num_generations;
  return mode !== "async" && typeof n === "number" && n > 1
    ? `${comment} One image per request here; the async (queue) version makes all ${n}.\n`
    : "";
}

/**
 * `auth`: the server has API keys on; the code sends `Authorization: Bearer` with the key from
 * the KONTEXT_API_KEY environment variable (a key is never written into copied code).
 */
export function generateCode(
  language: Language,
  mode: Mode,
  baseUrl: string,
  body: Body,
  auth = false,
): string {
  const base = baseUrl.replace(/\/$/, "");
  switch (language) {
    case "curl":
      return note(mode, body, "#") + curl(mode, base, bodyFor(mode, body), auth);
    case "typescript":
      return note(mode, body, "//") + typescript(mode, base, bodyFor(mode, body), auth);
    case "python":
      return note(mode, body, "#") + python(mode, base, bodyFor(mode, body), auth);
  }
}

const json = (body: Body) => JSON.stringify(body, null, 2);
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;

// The body goes through stdin (a quoted here-document): no shell expansion, and no limit on the
// size of an argument (a data URI easily passes the kernel's 128 KiB per argument).
function curl(mode: Mode, base: string, body: Body, auth: boolean): string {
  const doc = `<<'JSON'\n${json(body)}\nJSON`;
  const key = auth ? ` -H "Authorization: Bearer $KONTEXT_API_KEY"` : "";
  switch (mode) {
    case "sync":
      return [
        `curl -sS ${shellQuote(`${base}/api/ai/images/edit`)} \\`,
        `  -H 'Content-Type: application/json'${key} \\`,
        `  --data-binary @- ${doc}`,
      ].join("\n");
    case "sse":
      return [
        `curl -sSN ${shellQuote(`${base}/api/ai/images/edit`)} \\`,
        `  -H 'Content-Type: application/json' -H 'Accept: text/event-stream'${key} \\`,
        `  --data-binary @- ${doc}`,
      ].join("\n");
    case "async":
      return [
        `base=${shellQuote(base)}`,
        `ids=$(curl -sS "$base/api/ai/queue" -H 'Content-Type: application/json'${key} --data-binary @- ${doc.split("\n")[0]} | grep -o '"generation_id": *"[^"]*"' | cut -d'"' -f4`,
        ...doc.split("\n").slice(1),
        ")",
        `[ -n "$ids" ] || { echo "the request was refused" >&2; exit 1; }`,
        "for id in $ids; do",
        `  until curl -sS "$base/api/ai/queue/$id"${key} | grep -Eq '"status": *"(succeeded|failed|cancelled)"'; do sleep 1; done`,
        `  curl -sS "$base/api/ai/queue/$id"${key}; echo`,
        "done",
      ].join("\n");
  }
}

// Templates: \${ is a literal "${" in the generated code.
function typescript(mode: Mode, base: string, body: Body, auth: boolean): string {
  const key = auth ? `, Authorization: \`Bearer \${process.env.KONTEXT_API_KEY}\`` : "";
  const head = `const base = ${JSON.stringify(base)};\nconst body = ${json(body)};\n\n`;
  const post = (path: string, accept = "") => `const res = await fetch(\`\${base}${path}\`, {
  method: "POST",
  headers: { "Content-Type": "application/json"${accept}${key} },
  body: JSON.stringify(body),
});
if (!res.ok) throw new Error(\`\${res.status}: \${(await res.json()).error?.detail}\`);
`;
  switch (mode) {
    case "sync":
      return `${head}${post("/api/ai/images/edit")}const out = await res.json();
const image = out.images[0];
console.log(image.url ?? \`\${image.b64_json.length} base64 characters\`, "seed", out.seed, \`\${out.width}x\${out.height}\`);
`;
    case "async":
      return `${head}${post("/api/ai/queue")}const { generations } = await res.json();
for (const { generation_id } of generations) {
  let g;
  do {
    await new Promise((r) => setTimeout(r, 1000));
    g = await (await fetch(\`\${base}/api/ai/queue/\${generation_id}\`${auth ? `, { headers: { ${key.slice(2)} } }` : ""})).json();
  } while (!["succeeded", "failed", "cancelled"].includes(g.status));
  console.log(g.status, g.result_url ?? g.error_message, "seed", g.seed);
}
`;
    case "sse":
      return `${head}${post("/api/ai/images/edit", ', Accept: "text/event-stream"')}const reader = res.body!.getReader();
const decoder = new TextDecoder();
let buffer = "";
for (;;) {
  const { value, done } = await reader.read();
  if (done) break;
  buffer += decoder.decode(value, { stream: true });
  let end: number;
  while ((end = buffer.indexOf("\\n\\n")) >= 0) {
    const block = buffer.slice(0, end);
    buffer = buffer.slice(end + 2);
    const event = /^event: (.*)$/m.exec(block)?.[1];
    const data = /^data: (.*)$/m.exec(block)?.[1];
    if (!event || !data) continue; // a keep-alive comment
    const d = JSON.parse(data);
    if (event === "media_generation_queued") console.log("queued, position", d.queue_position);
    if (event === "media_generation_progress") console.log(\`step \${d.step}/\${d.total_steps}\`);
    if (event === "media_generation_completed") console.log(d.status, d.url ?? d.error);
  }
}
`;
  }
}

/** A JSON value as a Python literal (JSON strings are valid Python string literals). */
export function pythonLiteral(v: unknown, indent = ""): string {
  if (v === null || v === undefined) return "None";
  if (v === true) return "True";
  if (v === false) return "False";
  if (typeof v === "number" || typeof v === "string") return JSON.stringify(v);
  const inner = `${indent}    `;
  if (Array.isArray(v)) {
    if (v.length === 0) return "[]";
    return `[\n${v.map((x) => inner + pythonLiteral(x, inner)).join(",\n")},\n${indent}]`;
  }
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length === 0) return "{}";
  return `{\n${entries.map(([k, x]) => `${inner}${JSON.stringify(k)}: ${pythonLiteral(x, inner)}`).join(",\n")},\n${indent}}`;
}

function python(mode: Mode, base: string, body: Body, auth: boolean): string {
  const head =
    `import json\n${auth ? "import os\n" : ""}${mode === "async" ? "import time\n" : ""}import urllib.request\n\n` +
    `BASE = ${JSON.stringify(base)}\n${auth ? 'AUTH = {"Authorization": "Bearer " + os.environ["KONTEXT_API_KEY"]}\n' : ""}body = ${pythonLiteral(body)}\n\n`;
  const extra = auth ? ", **AUTH" : "";
  const request = (path: string, accept = "") =>
    `req = urllib.request.Request(\n    BASE + ${JSON.stringify(path)},\n    data=json.dumps(body).encode(),\n    headers={"Content-Type": "application/json"${accept}${extra}},\n)\n`;
  switch (mode) {
    case "sync":
      return (
        head +
        request("/api/ai/images/edit") +
        "with urllib.request.urlopen(req) as res:  # waits for the image; errors raise HTTPError\n" +
        "    out = json.load(res)\n" +
        'image = out["images"][0]\n' +
        'print(image.get("url") or f"{len(image[\'b64_json\'])} base64 characters", "seed", out["seed"], f"{out[\'width\']}x{out[\'height\']}")\n'
      );
    case "async":
      return (
        head +
        request("/api/ai/queue") +
        "with urllib.request.urlopen(req) as res:\n" +
        '    generations = json.load(res)["generations"]\n' +
        "for g in generations:\n" +
        "    while True:\n" +
        "        time.sleep(1)\n" +
        `        poll = urllib.request.Request(f"{BASE}/api/ai/queue/{g['generation_id']}"${auth ? ", headers=AUTH" : ""})\n` +
        "        with urllib.request.urlopen(poll) as res:\n" +
        "            status = json.load(res)\n" +
        '        if status["status"] in ("succeeded", "failed", "cancelled"):\n' +
        "            break\n" +
        '    print(status["status"], status["result_url"] or status["error_message"], "seed", status["seed"])\n'
      );
    case "sse":
      return (
        head +
        request("/api/ai/images/edit", ', "Accept": "text/event-stream"') +
        "with urllib.request.urlopen(req) as res:\n" +
        "    event = None\n" +
        "    for raw in res:\n" +
        '        line = raw.decode().rstrip("\\n")\n' +
        '        if line.startswith("event: "):\n' +
        "            event = line[7:]\n" +
        '        elif line.startswith("data: "):\n' +
        "            data = json.loads(line[6:])\n" +
        '            if event == "media_generation_queued":\n' +
        '                print("queued, position", data["queue_position"])\n' +
        '            elif event == "media_generation_progress":\n' +
        "                print(f\"step {data['step']}/{data['total_steps']}\")\n" +
        '            elif event == "media_generation_completed":\n' +
        '                print(data["status"], data.get("url") or data.get("error"))\n'
      );
  }
}

/** For display only: long data URIs shortened (Copy copies the code in full). */
export function abbreviate(code: string): string {
  return code.replace(
    /"(data:[\w/+.-]+;base64,)([A-Za-z0-9+/=]{64,})"/g,
    (_m, head: string, data: string) => {
      const kb = Math.round((data.length * 3) / 4 / 1024);
      return `"${head}${data.slice(0, 24)}…(${kb} KB of image data, copied in full)"`;
    },
  );
}
