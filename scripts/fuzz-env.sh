#!/usr/bin/env bash
# Prints the path of the API fuzzer's virtual environment (schemathesis), creating it first when
# missing. Like scripts/python-env.sh it lives outside the clone, keyed by the hash of
# scripts/fuzz-requirements.txt and the Python version, so it is installed once per machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${KONTEXT_FUZZ_PYTHON:-python3}
key=$( (cat "$root/scripts/fuzz-requirements.txt"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
home=${KONTEXT_VENV_HOME:-$HOME/.cache/kontext}
venv="$home/fuzz-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "fuzz-env: installing schemathesis into $venv (once)" >&2
  rm -rf "$venv"
  mkdir -p "$home"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/scripts/fuzz-requirements.txt" >&2
  touch "$venv/.complete"   # written last: a half-finished install is never reused
fi
echo "$venv"
