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
echo "== workbench: tsc, vitest (plain modules; the page in Debian's chromium against the real server)"
if [ ! -x /usr/bin/chromium ]; then
  echo "workbench: installing Debian's chromium for the browser tests" >&2
  as_root=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $as_root apt-get update -qq >&2
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
fi
npx tsc --noEmit -p packages/workbench
npm test -w @kontext/workbench
