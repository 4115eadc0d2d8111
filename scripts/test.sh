#!/usr/bin/env bash
# README's test command (`npm test`): installs what is missing, then lint, types and every test.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=$(scripts/python-env.sh)
export KONTEXT_PYTHON="$venv/bin/python"

echo "== engine: ruff"
"$venv/bin/ruff" check engine bench
"$venv/bin/ruff" format --check engine bench
echo "== engine: pytest"
(cd engine && "$KONTEXT_PYTHON" -m pytest -q)

echo "== gateway: install, biome, tsc"
scripts/node-deps.sh
npx biome check --error-on-warnings .
npx tsc --noEmit -p packages/server
echo "== gateway: vitest"
npm test -w @kontext/server
echo "== client and CLI: tsc, vitest (generated types, client and kontext CLI against the real server)"
npx tsc --noEmit -p packages/client
npm test -w @kontext/client
