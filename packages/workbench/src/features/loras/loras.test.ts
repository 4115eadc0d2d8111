// The LoRA listing read defensively, the picker's list operations, and the listing's store.
import { describe, expect, it } from "vitest";
import { fakeApi } from "../session/fakes.js";
import { LISTING } from "./fixtures.js";
import {
  addLora,
  chosenOf,
  clampScale,
  Loras,
  matchLabel,
  parseListing,
  refusalOf,
  removeLora,
  scaleRule,
  setScale,
  sizeLabel,
} from "./loras.js";

const rule = scaleRule({ scale: { minimum: -4, maximum: 4, default: 1 } }, 4);

describe("the LoRA listing", () => {
  it("reads each file's format, matched layers and refusal, sorted by name", () => {
    const files = parseListing(LISTING);
    expect(files.map((f) => f.name)).toEqual(["broken", "detail", "styles/ink-wash"]);
    const ink = files[2];
    expect(ink && matchLabel(ink)).toBe("kohya · 342/342 layers");
    expect(ink && refusalOf(ink)).toBeNull();
    const broken = files[0];
    expect(broken?.ok).toBe(false);
    expect(broken && refusalOf(broken)).toMatch(/less than 90 %/);
    expect(sizeLabel(171_966_464)).toBe("164.0 MB");
    expect(sizeLabel(2048)).toBe("2 KB");
  });

  it("survives what it cannot read: no body, a bare list, entries without a name", () => {
    expect(parseListing(null)).toEqual([]);
    expect(parseListing({ object: "list", data: [] })).toEqual([]);
    expect(parseListing({ loras: [{ name: "x", ok: true }] }).map((f) => f.name)).toEqual(["x"]);
    expect(parseListing({})).toEqual([]);
    expect(parseListing([{ name: "a" }, { size_bytes: 3 }, "x"]).map((f) => f.name)).toEqual(["a"]);
    const [bare] = parseListing([{ name: "a", ok: false }]);
    expect(bare && matchLabel(bare)).toBe("unknown format");
    expect(bare && refusalOf(bare)).toBe("the server cannot use this file");
  });
});

describe("the chosen adapters", () => {
  it("adds at the schema's default scale, at most maxItems and each once; scales and removes", () => {
    let list = addLora([], "a", rule);
    expect(list).toEqual([{ name: "a", scale: 1 }]);
    expect(addLora(list, "a", rule)).toEqual(list);
    for (const n of ["b", "c", "d", "e"]) list = addLora(list, n, rule);
    expect(list.map((l) => l.name)).toEqual(["a", "b", "c", "d"]);
    list = setScale(list, 1, -2.5);
    expect(list[1]).toEqual({ name: "b", scale: -2.5 });
    expect(removeLora(list, 0).map((l) => l.name)).toEqual(["b", "c", "d"]);
  });

  it("clamps a scale to −4…4 on the 0.05 grid, and reads only well-formed entries", () => {
    expect(rule).toMatchObject({ min: -4, max: 4, step: 0.05, default: 1, maxItems: 4 });
    expect(clampScale(9, rule)).toBe(4);
    expect(clampScale(-9, rule)).toBe(-4);
    expect(clampScale(0.30000000000000004, rule)).toBe(0.3);
    expect(clampScale(1.234, rule)).toBe(1.25);
    expect(chosenOf("x")).toEqual([]);
    expect(chosenOf([{ name: "a" }, { scale: 2 }, { name: "b", scale: 0.5 }])).toEqual([
      { name: "a", scale: 1 },
      { name: "b", scale: 0.5 },
    ]);
  });
});

describe("the listing's store", () => {
  it("loads the files, and keeps the error when the server has no listing", async () => {
    const server = fakeApi();
    server.setLoras(LISTING);
    const loras = new Loras(server.api);
    await loras.load();
    expect(loras.get().files?.length).toBe(3);
    expect(loras.file("detail")?.format).toBe("diffusers");
    server.setLoras(new Error("HTTP 404"));
    const none = new Loras(server.api);
    await none.load();
    expect(none.get()).toEqual({ files: null, loading: false, error: "HTTP 404" });
  });
});
