#!/usr/bin/env bash
# README's first command (`npm start`): installs what is missing (Node dependencies, the engine's
# Python environment), builds the gateway and the workbench (served at `/`), and serves on
# HOST:PORT (default 127.0.0.1:8080).
# Without KONTEXT_MODEL_DIR the gateway generates the tiny demo model (output is noise) into
# $KONTEXT_DATA_DIR/models/flux-kontext-tiny on first start.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
scripts/node-deps.sh
venv=$(scripts/python-env.sh)
export KONTEXT_PYTHON="${KONTEXT_PYTHON:-$venv/bin/python}"
npm run --silent build -w @kontext/server
npm run --silent build -w @kontext/workbench -- --logLevel warn
exec node packages/server/dist/main.js
