// Writes src/generated/openapi.ts, the API's types, from the committed packages/server/openapi.json
// (npm run generate -w @kontext/client). A test fails when the committed file is not what this writes.
import { writeFileSync } from "node:fs";
import { GENERATED_PATH, generatedTypes } from "./openapi-types.js";

writeFileSync(GENERATED_PATH, await generatedTypes());
process.stdout.write(`wrote ${GENERATED_PATH}\n`);
