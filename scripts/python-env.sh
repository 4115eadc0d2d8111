#!/usr/bin/env bash
# Prints the path of the engine's Python virtual environment, creating it first when missing.
# It lives outside the clone (PyTorch is gigabytes), keyed by the hash of engine/requirements.txt
# and the Python version, so every clone, CI run and later session reuses one install.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
python=${KONTEXT_PYTHON:-python3}
key=$( (cat "$root/engine/requirements.txt"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
home=${KONTEXT_VENV_HOME:-$HOME/.cache/kontext}
venv="$home/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "python-env: installing the engine's dependencies into $venv (once; PyTorch is large)" >&2
  rm -rf "$venv"
  mkdir -p "$home"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$root/engine/requirements.txt" >&2
  touch "$venv/.complete"   # written last: a half-finished install is never reused
fi
echo "$venv"
