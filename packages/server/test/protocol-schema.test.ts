// The engine protocol is defined once, in docs/protocol/protocol.schema.json: the golden examples
// validate against it, the gateway's parser validates every engine message with it (nested fields
// included), and the TypeScript types in src/engine/protocol.ts are checked against it here, field
// by field (names, optionality, string enums). engine/tests/test_protocol.py does the same for Python.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";
import { parseEngineLine } from "../src/engine/protocol.js";
import {
  type Direction,
  ENGINE_PARAMS,
  MESSAGE_DEFS,
  messageProblem,
  type ProtocolSchema,
  protocolSchema,
  protocolValidator,
} from "../src/engine/protocol-schema.js";
import { EditRequest } from "../src/schema/flux-kontext-dev.js";
import { repoRoot } from "./helpers.js";

const examples = path.join(repoRoot, "docs/protocol/examples");
const golden = (sub: string) =>
  readdirSync(path.join(examples, sub))
    .filter((f) => f.endsWith(".json"))
    .map((f) => [f, JSON.parse(readFileSync(path.join(examples, sub, f), "utf8"))] as const);

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  items?: JsonSchema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: JsonSchema[];
}

// ---- the TypeScript side, read with the compiler API
const source = ts.createSourceFile(
  "protocol.ts",
  readFileSync(path.join(repoRoot, "packages/server/src/engine/protocol.ts"), "utf8"),
  ts.ScriptTarget.Latest,
  true,
);
const interfaces = new Map<string, ts.InterfaceDeclaration>();
const aliases = new Map<string, ts.TypeAliasDeclaration>();
source.forEachChild((n) => {
  if (ts.isInterfaceDeclaration(n)) interfaces.set(n.name.text, n);
  if (ts.isTypeAliasDeclaration(n)) aliases.set(n.name.text, n);
});

function stringLiterals(t: ts.TypeNode): string[] | null {
  const parts = ts.isUnionTypeNode(t) ? t.types : [t];
  const out: string[] = [];
  for (const p of parts) {
    if (ts.isLiteralTypeNode(p) && ts.isStringLiteral(p.literal)) out.push(p.literal.text);
    else return null;
  }
  return out;
}

/** The JSON types a TypeScript type of primitives allows ("null|string"), or null for other types. */
function primitives(t: ts.TypeNode): string | null {
  const out = new Set<string>();
  for (const p of ts.isUnionTypeNode(t) ? t.types : [t]) {
    if (p.kind === ts.SyntaxKind.StringKeyword) out.add("string");
    else if (p.kind === ts.SyntaxKind.NumberKeyword) out.add("number");
    else if (p.kind === ts.SyntaxKind.BooleanKeyword) out.add("boolean");
    else if (ts.isLiteralTypeNode(p)) {
      const l = p.literal;
      if (l.kind === ts.SyntaxKind.NullKeyword) out.add("null");
      else if (ts.isStringLiteral(l)) out.add("string");
      else if (ts.isNumericLiteral(l)) out.add("number");
      else out.add("boolean");
    } else return null;
  }
  return [...out].sort().join("|");
}

/** The JSON types a schema allows, integer counted as number, or null when it does not say. */
function schemaTypes(s: JsonSchema): string | null {
  const out = new Set<string>();
  const add = (v: unknown) => out.add(v === null ? "null" : typeof v);
  if (s.type)
    for (const x of Array.isArray(s.type) ? s.type : [s.type]) out.add(x === "integer" ? "number" : x);
  else if (s.const !== undefined) add(s.const);
  else if (s.enum) for (const v of s.enum) add(v);
  else if (s.anyOf) {
    for (const b of s.anyOf) {
      const sub = schemaTypes(b);
      if (!sub) return null;
      for (const x of sub.split("|")) out.add(x);
    }
  } else return null;
  return [...out].sort().join("|");
}

/** Differences between a TypeScript object type and a schema object, with their paths. */
function compare(members: readonly ts.TypeElement[], schema: JsonSchema, at: string): string[] {
  const out: string[] = [];
  const props = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const seen = new Set<string>();
  for (const m of members) {
    if (!ts.isPropertySignature(m) || !m.type) continue;
    const name = m.name.getText(source);
    seen.add(name);
    const field = `${at}.${name}`;
    const sub = props[name];
    if (!sub) {
      out.push(`${field}: in TypeScript, not in the schema`);
      continue;
    }
    if (Boolean(m.questionToken) === required.has(name))
      out.push(`${field}: ${m.questionToken ? "optional" : "required"} in TypeScript, not in the schema`);
    out.push(...compareType(m.type, sub, field));
  }
  for (const name of Object.keys(props))
    if (!seen.has(name)) out.push(`${at}.${name}: in the schema, not in TypeScript`);
  return out;
}

function compareType(t: ts.TypeNode, schema: JsonSchema, at: string): string[] {
  const literals = stringLiterals(t);
  const allowed = schema.enum ?? (schema.const !== undefined ? [schema.const] : undefined);
  if (literals && allowed && typeof allowed[0] === "string") {
    const a = [...literals].sort().join(", ");
    const b = (allowed as string[]).toSorted().join(", ");
    return a === b ? [] : [`${at}: TypeScript allows ${a}, the schema ${b}`];
  }
  const tsTypes = primitives(t);
  const jsonTypes = schemaTypes(schema);
  if (tsTypes && jsonTypes && tsTypes !== jsonTypes)
    return [`${at}: ${tsTypes} in TypeScript, ${jsonTypes} in the schema`];
  if (ts.isTypeLiteralNode(t)) return compare(t.members, schema, at);
  if (ts.isArrayTypeNode(t) && schema.items) return compareType(t.elementType, schema.items, `${at}[]`);
  if (ts.isTypeReferenceNode(t)) {
    const decl = interfaces.get(t.typeName.getText(source));
    if (decl) return compare(decl.members, schema, at);
  }
  return [];
}

function unionMembers(alias: string): string[] {
  const t = aliases.get(alias)?.type;
  if (!t || !ts.isUnionTypeNode(t)) throw new Error(`${alias} is not a union`);
  return t.types.map((x) => x.getText(source));
}

function typeOf(decl: ts.InterfaceDeclaration): string {
  for (const m of decl.members)
    if (ts.isPropertySignature(m) && m.name.getText(source) === "type" && m.type) {
      const lits = stringLiterals(m.type);
      if (lits?.length === 1) return lits[0] as string;
    }
  throw new Error(`${decl.name.text} has no type literal`);
}

const DEFS: Record<Direction, Record<string, string>> = MESSAGE_DEFS;

/** Every difference between protocol.ts's message types and a schema document. */
function typeDrift(schema: ProtocolSchema): string[] {
  const out: string[] = [];
  for (const [dir, alias] of [
    ["to_engine", "ToEngine"],
    ["from_engine", "FromEngine"],
  ] as const) {
    const covered = new Set<string>();
    for (const name of unionMembers(alias)) {
      const decl = interfaces.get(name);
      if (!decl) throw new Error(`no interface ${name}`);
      const type = typeOf(decl);
      const def = DEFS[dir][type];
      covered.add(type);
      if (!def || !schema.$defs[def]) {
        out.push(`${name}: no ${dir} message ${type} in the schema`);
        continue;
      }
      out.push(...compare(decl.members, schema.$defs[def] as JsonSchema, name));
    }
    for (const type of Object.keys(DEFS[dir]))
      if (!covered.has(type)) out.push(`${alias}: has no ${type} message`);
  }
  return out;
}

describe("the protocol schema", () => {
  it.each(golden("from_engine"))("from_engine/%s is valid", (_f, m) => {
    expect(messageProblem("from_engine", m)).toBeNull();
  });
  it.each(golden("to_engine"))("to_engine/%s is valid", (_f, m) => {
    expect(messageProblem("to_engine", m)).toBeNull();
  });

  it("refuses every refused golden line that is a JSON object", () => {
    const cases = JSON.parse(readFileSync(path.join(examples, "refused/cases.json"), "utf8")) as {
      name: string;
      line: string;
    }[];
    let checked = 0;
    for (const c of cases) {
      let m: unknown;
      try {
        m = JSON.parse(c.line);
      } catch {
        continue; // not JSON: the line codec refuses it
      }
      if (typeof m !== "object" || m === null || Array.isArray(m)) continue;
      checked++;
      expect(messageProblem("to_engine", m as Record<string, unknown>), c.name).not.toBeNull();
    }
    expect(checked).toBeGreaterThanOrEqual(8);
  });

  it("every request parameter the job message carries is a field of the request schema, with the same default", () => {
    const request = EditRequest.properties as Record<string, { default?: unknown }>;
    const job = (protocolSchema.$defs.job as { properties: Record<string, { default?: unknown }> })
      .properties;
    expect(ENGINE_PARAMS).toEqual(expect.arrayContaining(["prompt", "aspect_ratio", "guidance", "fast"]));
    for (const name of ENGINE_PARAMS) {
      expect(request, `${name}: in the protocol schema's job, not in the request schema`).toHaveProperty(
        name,
      );
      if ("default" in (job[name] ?? {})) expect(job[name]?.default, name).toEqual(request[name]?.default);
    }
  });

  it("the TypeScript message types match it field by field", () => {
    expect(typeDrift(protocolSchema)).toEqual([]);
  });

  it("a planted schema change is a TypeScript drift", () => {
    const planted = structuredClone(protocolSchema) as ProtocolSchema & {
      $defs: Record<string, JsonSchema & { properties: Record<string, JsonSchema>; required: string[] }>;
    };
    const progress = planted.$defs.progress as JsonSchema & {
      properties: Record<string, JsonSchema>;
      required: string[];
    };
    progress.properties.eta_s = { type: "number" };
    (planted.$defs.started as JsonSchema & { properties: Record<string, JsonSchema> }).properties.width = {
      type: "string",
    };
    progress.required.push("eta_s");
    const ready = planted.$defs.ready as JsonSchema & { properties: Record<string, JsonSchema> };
    (ready.properties.precision as JsonSchema).enum = ["fp32", "bf16"];
    delete (planted.$defs.result as JsonSchema & { properties: Record<string, JsonSchema> }).properties
      .prompt_tokens;
    expect(typeDrift(planted)).toEqual([
      "ReadyMessage.precision: TypeScript allows bf16, fp32, fp8, fp8-weights, the schema bf16, fp32",
      "StartedMessage.width: number in TypeScript, string in the schema",
      "ProgressMessage.eta_s: in the schema, not in TypeScript",
      "ResultMessage.prompt_tokens: in TypeScript, not in the schema",
    ]);
  });

  it("a planted schema change refuses a message that was valid", () => {
    const planted = structuredClone(protocolSchema) as ProtocolSchema;
    planted.$id = `${planted.$id}-planted`;
    const images = (planted.$defs.result as JsonSchema).properties?.images?.items as JsonSchema;
    images.required?.push("format");
    (images.properties as Record<string, JsonSchema>).format = { type: "string" };
    const result = golden("from_engine").find(([f]) => f === "result.json")?.[1];
    expect(protocolValidator(protocolSchema)("from_engine", result)).toBeNull();
    expect(protocolValidator(planted)("from_engine", result)).toBe("result: images.0.format is missing");
  });
});

describe("the gateway's parser checks the whole message", () => {
  const result = JSON.parse(readFileSync(path.join(examples, "from_engine/result.json"), "utf8"));
  const line = (m: unknown) => JSON.stringify(m);

  it("refuses a nested field of the wrong type, a missing nested field and an unknown one", () => {
    const bad = structuredClone(result);
    bad.images[0].seed = "42";
    expect(() => parseEngineLine(line(bad))).toThrow("result: images.0.seed must be integer");
    const missing = structuredClone(result);
    delete missing.cache.condition;
    expect(() => parseEngineLine(line(missing))).toThrow("result: cache.condition is missing");
    const extra = structuredClone(result);
    extra.timings_ms.upload = 3;
    expect(() => parseEngineLine(line(extra))).toThrow("result: unknown field timings_ms.upload");
    expect(() =>
      parseEngineLine(line({ v: 1, type: "error", job_id: "j", code: "on_fire", message: "m" })),
    ).toThrow(/code must be equal to one of the allowed values/);
  });

  it("a gateway → engine message is not taken from the engine", () => {
    expect(() => parseEngineLine(line({ v: 1, type: "job" }))).toThrow(/unknown message type "job"/);
  });
});

// ---- docs/protocol.md's tables name the schema's fields and error codes

/** Field paths a table cell names: `a` {`b`} → a, a.b; `c` [{`d`}] → c, c[].d; (…) is prose. */
function docFields(cell: string): string[] {
  const out: string[] = [];
  const frames = [{ prefix: "", paren: 0 }];
  let last = "";
  let array = false;
  for (let i = 0; i < cell.length; i++) {
    const ch = cell[i];
    const top = frames.at(-1) as { prefix: string; paren: number };
    if (ch === "`") {
      const end = cell.indexOf("`", i + 1);
      const name = cell.slice(i + 1, end);
      i = end;
      if (top.paren === 0 && /^[a-z_][a-z0-9_]*$/.test(name)) {
        last = top.prefix + name;
        out.push(last);
      }
    } else if (ch === "(") top.paren++;
    else if (ch === ")") top.paren--;
    else if (ch === "[") array = true;
    else if (ch === "{") {
      frames.push({ prefix: `${last}${array ? "[]" : ""}.`, paren: 0 });
      array = false;
    } else if (ch === "}") frames.pop();
  }
  return out;
}

function schemaFields(schema: JsonSchema, at = ""): string[] {
  const out: string[] = [];
  for (const [k, sub] of Object.entries(schema.properties ?? {})) {
    if (!at && (k === "v" || k === "type")) continue;
    out.push(at + k, ...schemaFields(sub, `${at}${k}.`));
  }
  if (schema.items) out.push(...schemaFields(schema.items, `${at.slice(0, -1)}[].`));
  return out;
}

/** `| \`type\` | cell |` rows of the table under a heading. */
function docRows(doc: string, heading: string): Map<string, string> {
  const rows = new Map<string, string>();
  const start = doc.indexOf(`\n${heading}\n`);
  if (start < 0) throw new Error(`docs/protocol.md has no ${heading}`);
  for (const line of doc.slice(start + heading.length + 2).split("\n")) {
    if (line.startsWith("#")) break;
    const m = /^\| `([a-z_]+)` \| (.*?) \|/.exec(line);
    if (m) rows.set(m[1] as string, m[2] as string);
  }
  return rows;
}

function docDrift(doc: string, schema: ProtocolSchema): string[] {
  const out: string[] = [];
  const defs = schema.$defs as Record<string, JsonSchema>;
  for (const [dir, heading] of [
    ["to_engine", "## Gateway → engine"],
    ["from_engine", "## Engine → gateway"],
  ] as const) {
    const rows = docRows(doc, heading);
    for (const [type, def] of Object.entries(DEFS[dir])) {
      const cell = rows.get(type);
      if (cell === undefined) {
        out.push(`${heading}: no row for ${type}`);
        continue;
      }
      const documented = new Set(docFields(cell));
      const defined = new Set(schemaFields(defs[def] as JsonSchema));
      for (const f of defined) if (!documented.has(f)) out.push(`${dir} ${type}: ${f} is not documented`);
      for (const f of documented)
        if (!defined.has(f)) out.push(`${dir} ${type}: ${f} is documented, not defined`);
    }
  }
  const codes = [...docRows(doc, "### Error codes").keys()].sort();
  const defined = ((defs.error?.properties?.code?.enum ?? []) as string[]).toSorted();
  if (codes.join() !== defined.join()) out.push(`error codes: documented ${codes}, defined ${defined}`);
  return out;
}

describe("docs/protocol.md", () => {
  const doc = readFileSync(path.join(repoRoot, "docs/protocol.md"), "utf8");

  it("reads nested fields from a table cell", () => {
    expect(docFields("`a` (x, `not_me`), `b` {`c` (optional {`d`}), `e`}, `f` [{`g`}], `h`")).toEqual([
      "a",
      "b",
      "b.c",
      "b.c.d",
      "b.e",
      "f",
      "f[].g",
      "h",
    ]);
  });

  it("documents every field of every message and every error code, and no other", () => {
    expect(docDrift(doc, protocolSchema)).toEqual([]);
  });

  it("a planted schema change is a documentation drift", () => {
    const planted = structuredClone(protocolSchema);
    const started = planted.$defs.started as JsonSchema & { properties: Record<string, JsonSchema> };
    started.properties.batch = { type: "integer" };
    const cache = (planted.$defs.result as JsonSchema).properties?.cache?.properties as Record<
      string,
      JsonSchema
    >;
    delete cache.condition;
    expect(docDrift(doc, planted)).toEqual([
      "from_engine started: batch is not documented",
      "from_engine result: cache.condition is documented, not defined",
    ]);
  });
});
