// The committed generated types are what openapi-typescript makes of the committed openapi.json.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { GENERATED_PATH, generatedTypes } from "../scripts/openapi-types.js";

describe("generated client types", () => {
  it("match packages/server/openapi.json (run `npm run generate -w @kontext/client` after a change)", async () => {
    expect(readFileSync(GENERATED_PATH, "utf8")).toBe(await generatedTypes());
  });
});
