// Breaking changes to the API fail the tests unless approved (immich's habit). The committed
// openapi.json is compared with openapi.baseline.json (the API as last released); each breaking
// change found must be listed, with a reason, in openapi-approvals.json. README: "API changes".
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers.js";

type Schema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
};
type Parameter = { name: string; in: string; required?: boolean; schema?: Schema };
type Operation = {
  parameters?: Parameter[];
  requestBody?: { required?: boolean; content?: Record<string, { schema?: Schema }> };
  responses?: Record<string, { content?: Record<string, { schema?: Schema }> }>;
};
type Doc = {
  paths: Record<string, Record<string, Operation>>;
  components?: { schemas?: Record<string, Schema> };
};

const METHODS = ["get", "put", "post", "delete", "patch", "head", "options"];

function resolve(doc: Doc, s: Schema | undefined, seen = new Set<string>()): Schema | undefined {
  if (!s?.$ref) return s;
  if (seen.has(s.$ref)) return undefined; // recursive: compared once
  seen.add(s.$ref);
  const name = s.$ref.replace("#/components/schemas/", "");
  return resolve(doc, doc.components?.schemas?.[name], seen);
}

/** The JSON types a schema allows (`null` included); undefined when it does not say. */
function typesOf(doc: Doc, s: Schema | undefined): Set<string> | undefined {
  const r = resolve(doc, s);
  if (!r) return undefined;
  if (r.type) return new Set(Array.isArray(r.type) ? r.type : [r.type]);
  const branches = r.anyOf ?? r.oneOf;
  if (branches) {
    const all = new Set<string>();
    for (const b of branches) {
      const t = typesOf(doc, b);
      if (!t) return undefined;
      for (const x of t) all.add(x);
    }
    return all;
  }
  if (r.const !== undefined) return new Set([r.const === null ? "null" : typeof r.const]);
  return undefined;
}

/** Properties of an object schema, through allOf/anyOf/oneOf branches. */
function propsOf(doc: Doc, s: Schema | undefined): { props: Record<string, Schema>; required: Set<string> } {
  const r = resolve(doc, s);
  const props: Record<string, Schema> = { ...(r?.properties ?? {}) };
  const required = new Set(r?.required ?? []);
  for (const b of [...(r?.allOf ?? []), ...(r?.anyOf ?? []), ...(r?.oneOf ?? [])]) {
    const sub = propsOf(doc, b);
    for (const [k, v] of Object.entries(sub.props)) props[k] ??= v;
    if (r?.allOf?.includes(b)) for (const k of sub.required) required.add(k);
  }
  return { props, required };
}

const fmt = (t: Set<string> | undefined) => [...(t ?? [])].sort().join("|");

/**
 * Breaking differences between two schemas at `at`. `side` says who reads it: a response is read
 * by clients (a field removed or a type changed breaks them), a request is written by them (a field
 * newly required, a type or an enum value no longer accepted, or a field removed, since unknown
 * fields are refused, breaks them).
 */
function compareSchemas(
  base: Doc,
  cur: Doc,
  a: Schema | undefined,
  b: Schema | undefined,
  side: "request" | "response",
  at: string,
  out: string[],
  depth = 0,
): void {
  if (depth > 12 || !a || !b) return;
  const ta = typesOf(base, a);
  const tb = typesOf(cur, b);
  if (ta && tb) {
    const lost = side === "request" ? [...ta].filter((t) => !tb.has(t)) : [...tb].filter((t) => !ta.has(t));
    // an integer where a number was is not a change for a reader of numbers
    const real = lost.filter((t) => !(t === "integer" && (side === "request" ? tb : ta).has("number")));
    if (real.length > 0) out.push(`${at}: type changed from ${fmt(ta)} to ${fmt(tb)}`);
  }
  const ra = resolve(base, a);
  const rb = resolve(cur, b);
  if (side === "request" && ra?.enum && rb?.enum) {
    const gone = ra.enum.filter((v) => !rb.enum?.includes(v));
    if (gone.length > 0)
      out.push(`${at}: no longer accepts ${gone.map((v) => JSON.stringify(v)).join(", ")}`);
  }
  const pa = propsOf(base, a);
  const pb = propsOf(cur, b);
  for (const [name, sa] of Object.entries(pa.props)) {
    const field = at.endsWith(":") ? `${at} ${name}` : `${at}.${name}`;
    const sb = pb.props[name];
    if (!sb) {
      out.push(`${field}: ${side} field removed`);
      continue;
    }
    compareSchemas(base, cur, sa, sb, side, field, out, depth + 1);
  }
  if (side === "request")
    for (const name of pb.required)
      if (!pa.required.has(name))
        out.push(`${at.endsWith(":") ? `${at} ${name}` : `${at}.${name}`}: request field newly required`);
  if (ra?.items && rb?.items) compareSchemas(base, cur, ra.items, rb.items, side, `${at}[]`, out, depth + 1);
}

/** Every breaking change from `base` to `cur`, one line each. */
function breakingChanges(base: Doc, cur: Doc): string[] {
  const out: string[] = [];
  for (const [p, ops] of Object.entries(base.paths)) {
    const curOps = cur.paths[p];
    if (!curOps) {
      out.push(`${p}: path removed`);
      continue;
    }
    for (const method of METHODS) {
      const a = ops[method];
      if (!a) continue;
      const b = curOps[method];
      const op = `${method.toUpperCase()} ${p}`;
      if (!b) {
        out.push(`${op}: operation removed`);
        continue;
      }
      const params = (o: Operation) => new Map((o.parameters ?? []).map((x) => [`${x.in} ${x.name}`, x]));
      const [pa, pb] = [params(a), params(b)];
      for (const [key, x] of pb)
        if (x.required && !pa.get(key)?.required) out.push(`${op}: ${key} parameter newly required`);
      for (const [key, x] of pa) {
        const y = pb.get(key);
        if (!y) out.push(`${op}: ${key} parameter removed`);
        else compareSchemas(base, cur, x.schema, y.schema, "request", `${op}: ${key} parameter`, out);
      }
      if (b.requestBody?.required && !a.requestBody?.required) out.push(`${op}: request body newly required`);
      for (const [type, body] of Object.entries(a.requestBody?.content ?? {})) {
        const next = b.requestBody?.content?.[type];
        if (!next) out.push(`${op}: request body ${type} no longer accepted`);
        else compareSchemas(base, cur, body.schema, next.schema, "request", `${op} request ${type}:`, out);
      }
      for (const [status, res] of Object.entries(a.responses ?? {})) {
        const next = b.responses?.[status];
        if (!next) {
          if (status.startsWith("2")) out.push(`${op}: response ${status} removed`);
          continue;
        }
        for (const [type, body] of Object.entries(res.content ?? {})) {
          const nb = next.content?.[type];
          if (!nb) out.push(`${op}: response ${status} ${type} removed`);
          else compareSchemas(base, cur, body.schema, nb.schema, "response", `${op} ${status} ${type}:`, out);
        }
      }
    }
  }
  return [...new Set(out)];
}

interface Approvals {
  approved: { change: string; reason: string }[];
}

/** Breaking changes not approved, and approvals that match no change (stale). */
function unapproved(changes: string[], approvals: Approvals): { unapproved: string[]; stale: string[] } {
  const listed = new Set(approvals.approved.map((a) => a.change));
  return {
    unapproved: changes.filter((c) => !listed.has(c)),
    stale: [...listed].filter((c) => !changes.includes(c)),
  };
}

const serverDir = path.join(repoRoot, "packages/server");
const readJson = <T>(f: string): T => JSON.parse(readFileSync(path.join(serverDir, f), "utf8")) as T;

describe("openapi.json against the baseline", () => {
  const baseline = readJson<Doc>("openapi.baseline.json");
  const current = readJson<Doc>("openapi.json");
  const approvals = readJson<Approvals>("openapi-approvals.json");

  it("has no breaking change that openapi-approvals.json does not list, and no stale approval", () => {
    const found = unapproved(breakingChanges(baseline, current), approvals);
    expect(
      found.unapproved,
      "breaking API changes: list each in packages/server/openapi-approvals.json with a reason (README: API changes)",
    ).toEqual([]);
    expect(
      found.stale,
      "approved changes that no longer happen: remove them from openapi-approvals.json",
    ).toEqual([]);
    for (const a of approvals.approved) expect(a.reason.trim().length, a.change).toBeGreaterThan(10);
  });

  it("fails on a planted breaking change to the real document", () => {
    const planted = structuredClone(current);
    const schemas = planted.components?.schemas as Record<string, Schema>;
    const generation = schemas.Generation?.properties as Record<string, Schema>;
    delete generation.seed;
    delete planted.paths["/api/ai/models/{id}"];
    const found = unapproved(breakingChanges(baseline, planted), approvals).unapproved;
    expect(found).toContain("/api/ai/models/{id}: path removed");
    expect(found).toContain("GET /api/ai/queue/{id} 200 application/json: seed: response field removed");
  });
});

describe("breakingChanges", () => {
  const doc = (over: Partial<Record<string, Schema>> = {}, paths?: Doc["paths"]): Doc => ({
    paths: paths ?? {
      "/items/{id}": {
        get: {
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": { content: { "application/json": { schema: { $ref: "#/components/schemas/Item" } } } },
          },
        },
        post: {
          requestBody: {
            required: true,
            content: { "application/json": { schema: { $ref: "#/components/schemas/NewItem" } } },
          },
          responses: {
            "200": { content: { "application/json": { schema: { $ref: "#/components/schemas/Item" } } } },
          },
        },
      },
    },
    components: {
      schemas: {
        Item: {
          type: "object",
          properties: {
            id: { type: "string" },
            size: { type: "integer" },
            tags: { type: "array", items: { type: "object", properties: { name: { type: "string" } } } },
          },
        },
        NewItem: {
          type: "object",
          required: ["name"],
          properties: { name: { type: "string" }, color: { enum: ["red", "blue"] } },
        },
        ...over,
      } as Record<string, Schema>,
    },
  });
  const base = doc();

  it("finds nothing between a document and itself, or when fields and paths are only added", () => {
    expect(breakingChanges(base, base)).toEqual([]);
    const added = doc({
      Item: {
        type: "object",
        properties: {
          ...(base.components?.schemas?.Item?.properties ?? {}),
          extra: { type: ["string", "null"] },
        },
      },
      NewItem: {
        type: "object",
        required: ["name"],
        properties: {
          name: { type: "string" },
          color: { enum: ["red", "blue", "green"] },
          note: { type: "string" },
        },
      },
    });
    added.paths["/other"] = { get: {} };
    expect(breakingChanges(base, added)).toEqual([]);
  });

  it("finds a removed path, operation, response field, retyped field and newly required request field", () => {
    expect(breakingChanges(base, doc({}, {}))).toEqual(["/items/{id}: path removed"]);
    const cur = doc({
      Item: {
        type: "object",
        properties: {
          id: { type: "integer" },
          tags: { type: "array", items: { type: "object", properties: {} } },
        },
      },
      NewItem: {
        type: "object",
        required: ["name", "owner"],
        properties: { name: { type: "string" }, owner: { type: "string" }, color: { enum: ["red"] } },
      },
    });
    delete cur.paths["/items/{id}"]?.get?.parameters;
    (cur.paths["/items/{id}"] as Record<string, Operation>).delete = {};
    expect(breakingChanges(base, cur)).toEqual([
      "GET /items/{id}: path id parameter removed",
      "GET /items/{id} 200 application/json: id: type changed from string to integer",
      "GET /items/{id} 200 application/json: size: response field removed",
      "GET /items/{id} 200 application/json: tags[].name: response field removed",
      'POST /items/{id} request application/json: color: no longer accepts "blue"',
      "POST /items/{id} request application/json: owner: request field newly required",
      "POST /items/{id} 200 application/json: id: type changed from string to integer",
      "POST /items/{id} 200 application/json: size: response field removed",
      "POST /items/{id} 200 application/json: tags[].name: response field removed",
    ]);
    const noPost = doc();
    delete noPost.paths["/items/{id}"]?.post;
    expect(breakingChanges(base, noPost)).toEqual(["POST /items/{id}: operation removed"]);
  });

  it("an approval lets exactly its change through", () => {
    const changes = ["/a: path removed", "GET /b: operation removed"];
    expect(unapproved(changes, { approved: [{ change: "/a: path removed", reason: "gone" }] })).toEqual({
      unapproved: ["GET /b: operation removed"],
      stale: [],
    });
    expect(unapproved([], { approved: [{ change: "/a: path removed", reason: "gone" }] }).stale).toEqual([
      "/a: path removed",
    ]);
  });
});
