// The one error catalogue: HTTP errors, generation error codes and the engine's codes agree.
import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { errorForClients } from "../src/engine/protocol.js";
import {
  ApiError,
  ENGINE_ERRORS,
  ENGINE_FATAL_CODES,
  ERRORS,
  fieldInvalid,
  GENERATION_ERRORS,
  generationError,
  generationFailure,
} from "../src/errors.js";
import { repoRoot } from "./helpers.js";

const engineFile = (name: string) =>
  readFileSync(path.join(repoRoot, "engine", "kontext_engine", name), "utf8");

describe("the error catalogue", () => {
  it("lists exactly the engine's ErrorCode literal (engine/kontext_engine/errors.py)", () => {
    const literal = /ErrorCode = Literal\[([^\]]*)\]/.exec(engineFile("errors.py"))?.[1] ?? "";
    const engineCodes = [...literal.matchAll(/"(\w+)"/g)].map((m) => m[1]);
    expect(engineCodes.length).toBeGreaterThan(5);
    const gatewayOnly = ["engine_crashed"];
    expect(
      Object.keys(ENGINE_ERRORS)
        .filter((c) => !gatewayOnly.includes(c))
        .sort(),
    ).toEqual([...engineCodes].sort());
  });

  it("lists exactly the engine's FatalCode literal, the codes its __main__.py sends", () => {
    const literal = /FatalCode = Literal\[([^\]]*)\]/.exec(engineFile("errors.py"))?.[1] ?? "";
    expect([...literal.matchAll(/"(\w+)"/g)].map((m) => m[1]).sort()).toEqual([...ENGINE_FATAL_CODES].sort());
    const sent = [...engineFile("__main__.py").matchAll(/\bfatal\(\s*"(\w+)"/g)].map((m) => m[1]);
    expect([...new Set(sent)].sort()).toEqual([...ENGINE_FATAL_CODES].sort());
  });

  it("maps every engine code to a generation error code the catalogue has", () => {
    for (const [engineCode, code] of Object.entries(ENGINE_ERRORS)) {
      expect(GENERATION_ERRORS, `${engineCode} → ${code}`).toHaveProperty(code);
      expect(errorForClients({ code: engineCode, message: "m" }).code).toBe(code);
    }
    expect(errorForClients({ code: "not_a_code", message: "m" }).code).toBe("internal");
    expect(errorForClients({ code: "invalid_request", message: "m", field: "input.path" }).code).toBe(
      "input_missing",
    );
  });

  it("fills generation messages from their templates", () => {
    expect(generationError("cancelled")).toEqual({ code: "cancelled", message: "cancelled by the client" });
    expect(generationError("engine_crashed", { reason: "the engine exited", retries: 2 }).message).toBe(
      "the engine exited; it was already retried 2 time(s), so it is not retried again",
    );
    for (const [code, e] of Object.entries(GENERATION_ERRORS)) {
      expect(e.title, code).not.toBe("");
      expect(e.template, code).not.toBe("");
    }
  });

  it("answers a waiting request for a failed generation from the catalogue", () => {
    const g = { id: "g1", status: "failed", errorCode: "content_flagged", errorMessage: "flagged" };
    expect(generationFailure(g)).toMatchObject({ code: "content_flagged", status: 422 });
    expect(generationFailure({ ...g, errorCode: "engine_crashed" })).toMatchObject({
      code: "generation_failed",
      status: 500,
      message: "generation g1 failed: flagged",
    });
    expect(generationFailure({ ...g, status: "cancelled" })).toMatchObject({ code: "generation_cancelled" });
    expect(generationFailure({ ...g, status: "succeeded" })).toBeNull();
  });

  it("answers a field refusal as invalid_request, naming the field", () => {
    const err = fieldInvalid("limit", "must be an integer from 1 to 1000", '"0"');
    expect(err).toBeInstanceOf(ApiError);
    expect(err.toBody().error).toEqual({
      type: "invalid_request",
      title: "Invalid request",
      detail: 'limit: must be an integer from 1 to 1000, got "0"',
      fields: ["limit"],
    });
    expect(err.status).toBe(400);
    expect(err.entry).toBe("field_invalid");
  });

  it("README lists every generation error code", () => {
    const readme = readFileSync(path.join(repoRoot, "README.md"), "utf8");
    const line = readme.split("\n\n").find((p) => p.includes("says why in `error_code`")) ?? "";
    for (const code of Object.keys(GENERATION_ERRORS)) expect(line, code).toContain(`\`${code}\``);
  });

  it("answers each entry with a 4xx or 5xx status, a title and a template", () => {
    for (const [entry, e] of Object.entries(ERRORS)) {
      expect(e.status, entry).toBeGreaterThanOrEqual(400);
      expect(e.title, entry).not.toBe("");
      if ("type" in e) expect(ERRORS, entry).toHaveProperty(e.type);
    }
  });
});
