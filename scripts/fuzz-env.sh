#!/usr/bin/env bash
# Prints the path of the API fuzzer's virtual environment (scripts/fuzz-requirements.txt:
# schemathesis), creating it first when missing (see venv.sh).
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/scripts/venv.sh" fuzz "$root/scripts/fuzz-requirements.txt" "${KONTEXT_FUZZ_PYTHON:-python3}"
