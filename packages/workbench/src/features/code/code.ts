// Copy as code: the current form as cURL, TypeScript and Python, each for the three ways of
// calling the API: sync (POST /api/ai/images/edit waits), async (POST /api/ai/queue, then poll)
// and SSE (the edit request answered as an event stream). Every snippet runs as shown: the image
// comes from a local file, a URL or a download (as README's examples do), never inlined bytes.
import type { CodeImage } from "../form/form.js";
import { codeFileName } from "../form/image.js";

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

/** An image the request sends, by its field: input_image, input_image_2…4, mask_image. */
export interface CodeImageField {
  field: string;
  image: CodeImage;
}

/** The image fields are not in the body: each snippet reads them when run. */
const IMAGE_FIELD = /^(input_image(_\d+)?|mask_image)$/;

/** The body for a mode: the edit endpoint makes one image, so num_generations goes (it is 1). */
export function bodyFor(mode: Mode, body: Body): Body {
  const rest = Object.fromEntries(Object.entries(body).filter(([k]) => !IMAGE_FIELD.test(k)));
  if (mode === "async") return rest;
  const { num_generations: _n, ...one } = rest;
  return one;
}

function note(mode: Mode, body: Body, comment: string): string {
  const n = body.num_generations;
  return mode !== "async" && typeof n === "number" && n > 1
    ? `${comment} One image per request here; the async (queue) version makes all ${n}.\n`
    : "";
}

export interface CodeInput {
  language: Language;
  mode: Mode;
  baseUrl: string;
  /** the form's body (without its images) */
  body: Body;
  /** input_image (null: none, as in text-to-image) */
  image: CodeImage | null;
  /** the other images sent: references (input_image_2…4) and the painted mask (mask_image) */
  more?: readonly CodeImageField[];
  /** the server has API keys on: the code reads KONTEXT_API_KEY (a key is never written into it) */
  auth: boolean;
  /** the endpoint that waits or streams (default the edit's; text-to-image: /api/ai/images/generate) */
  endpoint?: string;
}

export const EDIT_ENDPOINT = "/api/ai/images/edit";
/** text-to-image (the hosted API's name); its async form is the same queue */
export const GENERATE_ENDPOINT = "/api/ai/images/generate";

export function generateCode(input: CodeInput): string {
  const { language, mode, baseUrl, body, image, auth } = input;
  const base = baseUrl.replace(/\/$/, "");
  const b = bodyFor(mode, body);
  const images: CodeImageField[] = [
    ...(image ? [{ field: "input_image", image }] : []),
    ...(input.more ?? []),
  ];
  const call = { base, body: b, images, auth, endpoint: input.endpoint ?? EDIT_ENDPOINT };
  const comment = language === "typescript" ? "//" : "#";
  const files = images.filter((i) => i.image.kind === "file");
  const head =
    note(mode, body, comment) +
    files.map((i) => `${comment} ${fileNote(i.image as Extract<CodeImage, { kind: "file" }>)}\n`).join("");
  switch (language) {
    case "curl":
      return head + curl(mode, call);
    case "typescript":
      return head + typescript(mode, call);
    case "python":
      return head + python(mode, call);
  }
}

interface Call {
  base: string;
  body: Body;
  images: CodeImageField[];
  auth: boolean;
  endpoint: string;
}

const fileNote = (image: Extract<CodeImage, { kind: "file" }>) =>
  image.note ??
  `Reads ${codeFileName(image.name, image.type)} from the current directory: put the image there (or change the name).`;

const json = (body: Body) => JSON.stringify(body, null, 2);
const shellQuote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
const mimeOf = (image: CodeImage) => (image.kind === "url" ? null : image.type || "image/png");
/** The images given by URL go into the JSON as they are; the others are read when the code runs. */
const urlFields = (images: readonly CodeImageField[]): Body =>
  Object.fromEntries(
    images.flatMap((i) => (i.image.kind === "url" ? [[i.field, i.image.url] as const] : [])),
  );
const readFields = (images: readonly CodeImageField[]) => images.filter((i) => i.image.kind !== "url");
/** input_image → image, input_image_2 → image_2, mask_image → mask: a variable per image read. */
const varOf = (field: string) => field.replace(/^input_/, "").replace(/_image$/, "");

// cURL: the body goes through stdin (no shell expansion, no limit on an argument's size: a photo's
// base64 is far past the kernel's 128 KiB per argument). Each image from a file or a download has
// its base64 streamed into the JSON between two printf's.
function curlBody({ body, images, auth }: Call): string {
  const read = readFields(images);
  const full = { ...urlFields(images), ...body };
  if (read.length === 0) return `cat <<'JSON'\n${json(full)}\nJSON`;
  const key = auth ? ` -H "Authorization: Bearer $KONTEXT_API_KEY"` : "";
  const lines: string[] = [];
  read.forEach(({ field, image }, i) => {
    const bytes =
      image.kind === "file"
        ? `base64 < ${shellQuote(codeFileName(image.name, image.type))} | tr -d '\\n'`
        : `curl -sS --fail${image.url.includes("/api/") ? key : ""} ${shellQuote((image as { url: string }).url)} | base64 | tr -d '\\n'`;
    const open = `"${field}": "data:${mimeOf(image)};base64,`;
    lines.push(i === 0 ? `printf '{${open}'` : `  printf '", ${open}'`, `  ${bytes}`);
  });
  const rest = json(full).slice(1); // from the newline after "{"
  return [...lines, `  printf '",'`, `  cat <<'JSON'${rest}`, "JSON"].join("\n");
}

function curl(mode: Mode, call: Call): string {
  const { base, auth, endpoint } = call;
  const key = auth ? ` -H "Authorization: Bearer $KONTEXT_API_KEY"` : "";
  const make = `{\n  ${curlBody(call).split("\n").join("\n")}\n}`;
  switch (mode) {
    case "sync":
      return `${make} | curl -sS ${shellQuote(`${base}${endpoint}`)} \\\n  -H 'Content-Type: application/json'${key} --data-binary @-`;
    case "sse":
      return `${make} | curl -sSN ${shellQuote(`${base}${endpoint}`)} \\\n  -H 'Content-Type: application/json' -H 'Accept: text/event-stream'${key} --data-binary @-`;
    case "async":
      return [
        `base=${shellQuote(base)}`,
        `ids=$(${make} | curl -sS "$base/api/ai/queue" -H 'Content-Type: application/json'${key} --data-binary @- \\`,
        `  | grep -o '"generation_id": *"[^"]*"' | cut -d'"' -f4)`,
        `[ -n "$ids" ] || { echo "the request was refused" >&2; exit 1; }`,
        "for id in $ids; do",
        `  until curl -sS "$base/api/ai/queue/$id"${key} | grep -Eq '"status": *"(succeeded|failed|cancelled)"'; do sleep 1; done`,
        `  curl -sS "$base/api/ai/queue/$id"${key}; echo`,
        "done",
      ].join("\n");
  }
}

// Templates: \${ is a literal "${" in the generated code.
function typescript(mode: Mode, call: Call): string {
  const { base, body, images, auth, endpoint } = call;
  const key = auth ? `, Authorization: \`Bearer \${process.env.KONTEXT_API_KEY}\`` : "";
  const read = readFields(images);
  const imports = read.some((i) => i.image.kind === "file")
    ? `import { readFileSync } from "node:fs";\n\n`
    : "";
  const imageLines = read
    .map(({ field, image }) => {
      const v = varOf(field);
      if (image.kind === "file")
        return `const ${v} = readFileSync(${JSON.stringify(codeFileName(image.name, image.type))}).toString("base64");\n`;
      const url = (image as { url: string }).url;
      const headers = auth && url.includes("/api/") ? `, { headers: { ${key.slice(2)} } }` : "";
      return `const ${v} = Buffer.from(await (await fetch(${JSON.stringify(url)}${headers})).arrayBuffer()).toString("base64");\n`;
    })
    .join("");
  const plain = json({ ...urlFields(images), ...body });
  const bodyText =
    read.length === 0
      ? plain
      : `{\n${read.map(({ field, image }) => `  ${field}: \`data:${mimeOf(image)};base64,\${${varOf(field)}}\`,\n`).join("")}${plain.slice(2)}`;
  const head = `${imports}const base = ${JSON.stringify(base)};\n${imageLines}const body = ${bodyText};\n\n`;
  const post = (path: string, accept = "") => `const res = await fetch(\`\${base}${path}\`, {
  method: "POST",
  headers: { "Content-Type": "application/json"${accept}${key} },
  body: JSON.stringify(body),
});
if (!res.ok) throw new Error(\`\${res.status}: \${(await res.json()).error?.detail}\`);
`;
  switch (mode) {
    case "sync":
      return `${head}${post(endpoint)}const out = await res.json();
const result = out.images[0];
console.log(result.url ?? \`\${result.b64_json.length} base64 characters\`, "seed", out.seed, \`\${out.width}x\${out.height}\`);
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
      return `${head}${post(endpoint, ', Accept: "text/event-stream"')}const reader = res.body!.getReader();
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

function python(mode: Mode, call: Call): string {
  const { base, body, images, auth, endpoint } = call;
  const read = readFields(images);
  const imports = [
    read.length > 0 ? "import base64" : "",
    "import json",
    auth ? "import os" : "",
    mode === "async" ? "import time" : "",
    "import urllib.request",
  ].filter(Boolean);
  const imageLines = read
    .map(({ field, image }) => {
      const v = varOf(field);
      if (image.kind === "file")
        return `with open(${JSON.stringify(codeFileName(image.name, image.type))}, "rb") as f:\n    ${v} = base64.b64encode(f.read()).decode()\n`;
      const url = (image as { url: string }).url;
      return `${v} = base64.b64encode(urllib.request.urlopen(urllib.request.Request(${JSON.stringify(url)}${auth && url.includes("/api/") ? ", headers=AUTH" : ""})).read()).decode()\n`;
    })
    .join("");
  const plain = pythonLiteral({ ...urlFields(images), ...body });
  const literal =
    read.length === 0
      ? plain
      : `{\n${read.map(({ field, image }) => `    "${field}": "data:${mimeOf(image)};base64," + ${varOf(field)},\n`).join("")}${plain.slice(2)}`;
  const head =
    `${imports.join("\n")}\n\nBASE = ${JSON.stringify(base)}\n` +
    (auth ? 'AUTH = {"Authorization": "Bearer " + os.environ["KONTEXT_API_KEY"]}\n' : "") +
    `${imageLines}body = ${literal}\n\n`;
  const extra = auth ? ", **AUTH" : "";
  const request = (path: string, accept = "") =>
    `req = urllib.request.Request(\n    BASE + ${JSON.stringify(path)},\n    data=json.dumps(body).encode(),\n    headers={"Content-Type": "application/json"${accept}${extra}},\n)\n`;
  switch (mode) {
    case "sync":
      return (
        head +
        request(endpoint) +
        "with urllib.request.urlopen(req) as res:\n    out = json.load(res)\n" +
        'print(out["images"][0].get("url"), "seed", out["seed"], f"{out[\'width\']}x{out[\'height\']}")\n'
      );
    case "async":
      return (
        head +
        request("/api/ai/queue") +
        "with urllib.request.urlopen(req) as res:\n" +
        '    ids = [g["generation_id"] for g in json.load(res)["generations"]]\n' +
        "for gid in ids:\n" +
        "    while True:\n" +
        "        time.sleep(1)\n" +
        `        with urllib.request.urlopen(urllib.request.Request(BASE + "/api/ai/queue/" + gid${auth ? ", headers=AUTH" : ""})) as res:\n` +
        "            g = json.load(res)\n" +
        '        if g["status"] in ("succeeded", "failed", "cancelled"):\n' +
        "            break\n" +
        '    print(g["status"], g.get("result_url") or g.get("error_message"), "seed", g["seed"])\n'
      );
    case "sse":
      return (
        head +
        request(endpoint, ', "Accept": "text/event-stream"') +
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
