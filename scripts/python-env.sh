#!/usr/bin/env bash
# Prints the path of the engine's Python virtual environment (engine/requirements.txt: PyTorch,
# diffusers, transformers …), creating it first when missing (see venv.sh).
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/scripts/venv.sh" venv "$root/engine/requirements.txt" "${KONTEXT_PYTHON:-python3}"
