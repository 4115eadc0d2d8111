// GET /openapi.json and GET /docs: the API document and a self-contained page that renders it
// (no CDN: the server may run without internet) with a form to try any endpoint.
import type { FastifyInstance } from "fastify";
import type { AppContext } from "../context.js";
import { buildOpenApi } from "./openapi.js";

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Kontext API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:960px;margin:2rem auto;padding:0 1rem;color:#222}
h1{margin-bottom:0}code,pre,textarea{font:13px ui-monospace,monospace}
.op{border:1px solid #ddd;border-radius:6px;margin:.75rem 0;padding:.5rem .75rem}
.m{display:inline-block;min-width:4.5em;font-weight:600}.get{color:#0a6}.post{color:#06c}.delete{color:#c33}
table{border-collapse:collapse;width:100%}td,th{border-bottom:1px solid #eee;padding:.25rem .4rem;text-align:left;vertical-align:top}
textarea{width:100%;height:9em}pre{background:#f6f6f6;padding:.5rem;overflow:auto;max-height:20em}
</style></head><body>
<h1>Kontext API</h1><p id="desc"></p>
<h2>Endpoints</h2><div id="ops"></div>
<h2>Request parameters (flux-kontext-dev)</h2><table id="params"><tr><th>field</th><th>type</th><th>default</th><th>rule</th><th>description</th></tr></table>
<p><a href="/openapi.json">openapi.json</a></p>
<script>
const esc = (s) => String(s ?? "").replace(/[&<>"]/g, (c) => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;"})[c]);
fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  document.getElementById("desc").textContent = doc.info.description;
  const ops = document.getElementById("ops");
  for (const [path, item] of Object.entries(doc.paths)) for (const [method, op] of Object.entries(item)) {
    const div = document.createElement("div"); div.className = "op";
    const hasBody = !!op.requestBody;
    div.innerHTML = '<details><summary><span class="m ' + method + '">' + method.toUpperCase() + '</span> <code>' + esc(path) +
      '</code> ' + esc(op.summary) + '</summary><p>' + esc(op.description || "") + '</p>' +
      '<label>path <input class="p" size="60" value="' + esc(path) + '"></label>' +
      (hasBody ? '<textarea class="b">{\\n  "input_image": "https://...",\\n  "prompt": "make the sky purple",\\n  "num_inference_steps": 4\\n}</textarea>' : '') +
      '<button>Send</button><pre class="out"></pre></details>';
    div.querySelector("button").onclick = async () => {
      const out = div.querySelector(".out"); out.textContent = "...";
      const init = { method: method.toUpperCase(), headers: {} };
      if (hasBody) { init.body = div.querySelector(".b").value; init.headers["content-type"] = "application/json"; }
      const r = await fetch(div.querySelector(".p").value, init);
      const type = r.headers.get("content-type") || "";
      out.textContent = r.status + " " + r.statusText + "\\n" + (type.startsWith("image/") ? "(" + type + " image)" : await r.text());
    };
    ops.appendChild(div);
  }
  const req = doc.components.schemas.FluxKontextDevRequest;
  const table = document.getElementById("params");
  for (const [name, s] of Object.entries(req.properties)) {
    const rule = s.enum ? s.enum.join(", ") : (s.minimum !== undefined ? s.minimum + "–" + s.maximum : "");
    const tr = document.createElement("tr");
    tr.innerHTML = "<td><code>" + esc(name) + "</code>" + (req.required.includes(name) ? " *" : "") + "</td><td>" + esc(s.type) +
      "</td><td>" + esc(s.default === undefined ? "" : JSON.stringify(s.default)) + "</td><td>" + esc(rule) + "</td><td>" + esc(s.description) + "</td>";
    table.appendChild(tr);
  }
});
</script></body></html>`;

export function registerDocs(app: FastifyInstance, _ctx: AppContext): void {
  const doc = buildOpenApi();
  app.get("/openapi.json", async () => doc);
  app.get("/docs", async (_req, reply) =>
    reply.header("content-type", "text/html; charset=utf-8").send(PAGE),
  );
}
