// Writes packages/server/openapi.json from the code (npm run openapi -w @kontext/server).
import { writeFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { buildOpenApi } from "../src/api/openapi.js";

const out = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../openapi.json");
writeFileSync(out, `${JSON.stringify(buildOpenApi(), null, 2)}\n`);
process.stdout.write(`wrote ${out}\n`);
