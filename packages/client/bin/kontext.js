#!/usr/bin/env node
// The `kontext` command, run from its TypeScript sources through tsx (no build step in this repo).
import { register } from "tsx/esm/api";

register();
const { main } = await import("../src/cli/main.ts");
await main();
