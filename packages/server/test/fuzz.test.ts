// Fuzzing: schemathesis (from PyPI, in its own cached venv: scripts/fuzz-env.sh) generates
// requests from the served /openapi.json, valid and invalid, with a bounded number of examples
// per operation, against a server on loopback (fake engine: this is about the HTTP layer).
// Every response must be free of 5xx and conform to the document: status, content type, schema.
import { execFile, execFileSync } from "node:child_process";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Harness, makeHarness, repoRoot } from "./helpers.js";

const MAX_EXAMPLES = 50;

describe("fuzzing /openapi.json with schemathesis", () => {
  let h: Harness;
  let base: string;
  let venv: string;
  beforeAll(async () => {
    venv = execFileSync("bash", [path.join(repoRoot, "scripts/fuzz-env.sh")], {
      encoding: "utf8",
      stdio: ["ignore", "pipe", "inherit"],
    }).trim();
    h = await makeHarness();
    await h.app.listen({ host: "127.0.0.1", port: 0 });
    base = `http://127.0.0.1:${(h.app.server.address() as AddressInfo).port}`;
  });
  afterAll(async () => h?.close());

  it(`finds no 5xx and no response that breaks the document (${MAX_EXAMPLES} examples per operation)`, async () => {
    const args = [
      "run",
      `${base}/openapi.json`,
      "--checks",
      "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance",
      "--max-examples",
      String(MAX_EXAMPLES),
      "--phases",
      "examples,coverage,fuzzing",
      "--seed",
      "1",
      "--workers",
      "2",
      "--request-timeout",
      "30",
      "--generation-database",
      "none",
      // /api/events is a stream that stays open by design; its error paths are in flows.test.ts
      "--exclude-path",
      "/api/events",
      "--no-color",
      "--suppress-health-check",
      "all",
    ];
    const { code, out } = await new Promise<{ code: number; out: string }>((resolve) => {
      execFile(
        path.join(venv, "bin", "schemathesis"),
        args,
        {
          cwd: tmpdir(), // it keeps a .schemathesis folder where it runs
          timeout: 240_000,
          maxBuffer: 64 * 1024 * 1024,
          env: { ...process.env, NO_COLOR: "1" },
        },
        (err, stdout, stderr) =>
          resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: `${stdout}\n${stderr}` }),
      );
    });
    const summary = out.split("\n").filter((l) => /test cases|passed|failed|operations|Seed/i.test(l));
    console.log(`schemathesis (seed 1, ${MAX_EXAMPLES} examples per operation):\n${summary.join("\n")}`);
    expect(code, out.slice(-8000)).toBe(0);
  }, 300_000);
});
