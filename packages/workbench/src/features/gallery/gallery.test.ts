import { describe, expect, it } from "vitest";
import { fakeApi, historyItem } from "../session/fakes.js";
import { Gallery, PAGE, queryOf } from "./gallery.js";
import { chainDepth } from "./history.js";

const many = (n: number) =>
  Array.from({ length: n }, (_, i) =>
    historyItem(`g${n - i}`, null, {
      enqueued_at: new Date(Date.UTC(2026, 0, 1, 0, 0, n - i)).toISOString(),
    }),
  );

describe("the gallery controller", () => {
  it("asks the server for status, star and text filters", () => {
    expect(queryOf("all", " hat ")).toEqual({ limit: PAGE, q: "hat" });
    expect(queryOf("failed", "")).toEqual({ limit: PAGE, status: "failed,cancelled" });
    expect(queryOf("starred", "", "g9")).toEqual({ limit: PAGE, starred: true, before: "g9" });
  });

  it("pages past the first page with `before`", async () => {
    const server = fakeApi();
    server.setItems(many(PAGE + 30));
    const g = new Gallery(server.api);
    await g.refresh();
    expect(g.get().items.length).toBe(PAGE);
    expect(g.get().more).toBe(true);
    await g.loadMore();
    expect(g.get().items.length).toBe(PAGE + 30);
    expect(g.get().more).toBe(false);
    expect(server.calls.at(-1)).toBe(`history ${JSON.stringify({ limit: PAGE, before: `g${31}` })}`);
    await g.refresh(); // a refresh keeps the older pages already loaded
    expect(g.get().items.length).toBe(PAGE + 30);
  });

  it("stars at once and on the server, and deletes on the server", async () => {
    const server = fakeApi();
    server.setItems(many(3));
    const g = new Gallery(server.api);
    await g.refresh();
    await g.star("g2", true);
    expect(g.get().items.find((i) => i.generation_id === "g2")?.starred).toBe(true);
    g.setFilter("starred");
    await g.refresh();
    expect(g.get().items.map((i) => i.generation_id)).toEqual(["g2"]);
    await g.remove("g2");
    expect(g.get().items).toEqual([]);
    expect(g.get().known.has("g2")).toBe(false);
    expect(server.calls).toContain("remove g2");
  });

  it("undoes a star the server refused", async () => {
    const server = fakeApi();
    server.setItems(many(1));
    server.api.star = async () => {
      throw new Error("no");
    };
    const g = new Gallery(server.api);
    await g.refresh();
    await expect(g.star("g1", true)).rejects.toThrow("no");
    expect(g.get().items[0]?.starred).toBe(false);
  });

  it("counts chain depth over every item known, not the filtered list", async () => {
    const server = fakeApi();
    server.setItems([historyItem("c", "b"), historyItem("b", "a"), historyItem("a")]);
    const g = new Gallery(server.api);
    await g.refresh();
    g.setQuery("c");
    await g.refresh();
    expect(g.get().items.map((i) => i.generation_id)).toEqual(["c"]);
    expect(chainDepth(g.get().known, "c")).toBe(3);
  });
});
