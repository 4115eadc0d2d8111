// Imports point one way: no cycle between the gateway's modules (type imports count), and no
// module imports one of a higher layer. The layers are the table under "Gateway layers" in the
// README (lowest first); a file row there wins over its folder's row.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { repoRoot } from "./helpers.js";

type Graph = Map<string, string[]>;

const srcDir = path.join(repoRoot, "packages/server/src");

/** Every `import … from`, `export … from`, `import "…"` and `import("…")` of a relative module. */
function importsOf(source: string): string[] {
  const specs = new Set<string>();
  const re = /(?:\b(?:import|export)\b[^;"'`]*?\bfrom\s*|\bimport\s*\(?\s*)["'](\.{1,2}\/[^"']+)["']/g;
  for (const m of source.matchAll(re)) specs.add(m[1] as string);
  return [...specs];
}

function tsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => path.relative(srcDir, path.join(e.parentPath, e.name)).split(path.sep).join("/"));
}

/** The graph of src/: module (path under src/) → the modules it imports. */
function sourceGraph(): Graph {
  const graph: Graph = new Map();
  for (const file of tsFiles(srcDir)) {
    const text = readFileSync(path.join(srcDir, file), "utf8");
    const deps = importsOf(text).map((spec) =>
      path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, ".ts"),
    );
    graph.set(file, deps);
  }
  return graph;
}

/** Strongly connected components with more than one module, or a module importing itself (Tarjan). */
function cycles(graph: Graph): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) as number, low.get(w) as number));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v) as number, index.get(w) as number));
      }
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop() as string;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(scc.sort());
    }
  };
  for (const v of graph.keys()) if (!index.has(v)) visit(v);
  return found;
}

interface Layer {
  name: string;
  rank: number;
  /** `errors.ts` (a file) or `jobs/` (a folder) under src/. */
  modules: string[];
}

/** The "Gateway layers" table of the README: `| rank name | `a/`, `b.ts` | what |`, lowest first. */
function readLayers(readme: string): Layer[] {
  const start = readme.indexOf("<!-- gateway layers");
  if (start < 0) throw new Error("README has no gateway layers table");
  const layers: Layer[] = [];
  for (const line of readme.slice(start).split("\n").slice(1)) {
    if (!line.startsWith("|")) {
      if (layers.length > 0) break;
      continue;
    }
    const [rankName, modules] = line
      .split("|")
      .slice(1, 3)
      .map((c) => c.trim());
    const m = /^(\d+) (.+)$/.exec(rankName ?? "");
    if (!m) continue; // the header and its rule
    layers.push({
      rank: Number(m[1]),
      name: m[2] as string,
      modules: [...(modules ?? "").matchAll(/`([^`]+)`/g)].map((x) => x[1] as string),
    });
  }
  return layers;
}

/** The layer of a module: a file row wins over the row of its folder (the deepest folder wins). */
function layerOf(layers: Layer[], file: string): Layer | undefined {
  let best: Layer | undefined;
  let bestLen = -1;
  for (const layer of layers) {
    for (const mod of layer.modules) {
      const hit = mod.endsWith("/") ? file.startsWith(mod) : file === mod;
      const len = mod.endsWith("/") ? mod.length : Number.POSITIVE_INFINITY;
      if (hit && len > bestLen) [best, bestLen] = [layer, len];
    }
  }
  return best;
}

/** Every reason the graph breaks the rules: a cycle, an upward import, a module in no layer. */
function violations(graph: Graph, layers: Layer[]): string[] {
  const out = cycles(graph).map((c) => `import cycle: ${c.join(" ↔ ")}`);
  for (const [from, deps] of graph) {
    const lf = layerOf(layers, from);
    if (!lf) {
      out.push(`${from} is in no layer of the README's gateway layers table`);
      continue;
    }
    for (const to of deps) {
      const lt = layerOf(layers, to);
      if (lt && lt.rank > lf.rank) out.push(`${from} (${lf.name}) imports ${to} (${lt.name}): upward`);
    }
  }
  return out;
}

const layers = readLayers(readFileSync(path.join(repoRoot, "README.md"), "utf8"));

describe("gateway imports", () => {
  it("the README names the layers, lowest first", () => {
    expect(layers.length).toBeGreaterThan(5);
    expect(layers.map((l) => l.rank)).toEqual([...layers.map((l) => l.rank)].sort((a, b) => a - b));
    expect(layerOf(layers, "main.ts")?.name).toBe(layers.at(-1)?.name);
  });

  it("finds every kind of import", () => {
    const src = [
      'import type { A } from "./a.js";',
      'import {\n  b,\n  type B,\n} from "../b.js";',
      'export { c } from "./c.js";',
      'export * from "./d.js";',
      'import "./e.js";',
      'const f = await import("./f.js");',
      'import fs from "node:fs";',
    ].join("\n");
    expect(importsOf(src)).toEqual(["./a.js", "../b.js", "./c.js", "./d.js", "./e.js", "./f.js"]);
  });

  it("src/ has no cycle and no upward import", () => {
    const graph = sourceGraph();
    expect(graph.size).toBeGreaterThan(40);
    expect(violations(graph, layers)).toEqual([]);
  });

  it("fails on a planted cycle, a planted upward import and a module in no layer", () => {
    const graph = sourceGraph();
    // a cycle inside one layer (jobs/types.ts → jobs/sqlite-records.ts → jobs/types.ts)
    graph.set("jobs/types.ts", [...(graph.get("jobs/types.ts") ?? []), "jobs/sqlite-records.ts"]);
    // an upward import: storage imports the routes
    graph.set("storage/files.ts", [...(graph.get("storage/files.ts") ?? []), "api/generations.ts"]);
    graph.set("stray.ts", []);
    const found = violations(graph, layers);
    expect(found).toContainEqual(
      expect.stringMatching(/^import cycle: .*jobs\/sqlite-records\.ts ↔ jobs\/types\.ts/),
    );
    expect(found).toContain("storage/files.ts (io) imports api/generations.ts (routes): upward");
    expect(found).toContain("stray.ts is in no layer of the README's gateway layers table");
  });

  it("finds a cycle of three and a self-import, and none in a chain", () => {
    const g = (edges: Record<string, string[]>): Graph => new Map(Object.entries(edges));
    expect(cycles(g({ a: ["b"], b: ["c"], c: ["a"], d: ["a"] }))).toEqual([["a", "b", "c"]]);
    expect(cycles(g({ a: ["a"] }))).toEqual([["a"]]);
    expect(cycles(g({ a: ["b"], b: ["c"], c: [] }))).toEqual([]);
  });
});
