#!/usr/bin/env bash
# Installs the Node dependencies when they are missing or older than package-lock.json
# (npm ci: exactly the lockfile). Used by `npm start` and `npm test`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
marker=node_modules/.package-lock.json
if [ ! -f "$marker" ] || [ package-lock.json -nt "$marker" ] || [ ! -d node_modules/better-sqlite3/build ]; then
  echo "node-deps: installing Node dependencies (npm ci)" >&2
  npm ci --no-audit --no-fund >&2
fi
