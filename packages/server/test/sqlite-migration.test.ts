// A database written by an earlier version opens and keeps working: the columns added since are
// created by the migration, and its generations read with those fields empty.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import Database from "better-sqlite3";
import { afterEach, describe, expect, it } from "vitest";
import { SqliteRecords } from "../src/jobs/sqlite-records.js";
import { withDefaults } from "../src/schema/flux-kontext-dev.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("SQLite records from an earlier version", () => {
  it("a database without lora_report gets the column; its generations have no report until one is written", () => {
    const dir = mkdtempSync(path.join(tmpdir(), "kontext-migrate-"));
    dirs.push(dir);
    const file = path.join(dir, "jobs.db");
    const before = new SqliteRecords(file);
    const params = withDefaults({ input_image: "x", prompt: "p" }) as never;
    before.insertMany(
      [
        {
          id: "old",
          model: "flux-kontext-dev",
          params,
          input: { hash: "h", path: "p", width: 8, height: 8 },
          seed: 1,
        },
      ],
      1000,
      () => ({}),
    );
    before.close();
    const raw = new Database(file); // as the version before the LoRA report left it
    raw.exec("ALTER TABLE generations DROP COLUMN lora_report");
    raw.close();

    const records = new SqliteRecords(file);
    expect(records.get("old")?.loraReport).toBeNull();
    const report = [
      {
        name: "styles/demo",
        scale: 0.5,
        sha256: "a".repeat(64),
        size_bytes: 1234,
        format: "bfl" as const,
        matched: 27,
        total: 27,
        unmatched_prefixes: [],
        text_encoder_modules: 0,
      },
    ];
    expect(records.apply("old", [], { loraReport: report }).applied).toBe(true);
    expect(records.get("old")?.loraReport).toEqual(report);
    records.close();
  });
});
