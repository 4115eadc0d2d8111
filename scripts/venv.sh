#!/usr/bin/env bash
# Usage: venv.sh NAME REQUIREMENTS BASE_PYTHON
# Prints the path of a Python virtual environment holding REQUIREMENTS, creating it first when
# missing. It lives outside the clone (PyTorch is gigabytes), keyed by the hash of the requirements
# file and the Python version, so every clone, CI run and later session reuses one install.
set -euo pipefail
name=$1 requirements=$2 python=$3
key=$( (cat "$requirements"; "$python" -c 'import sys; print(sys.version)') | sha256sum | cut -c1-16)
home=${KONTEXT_VENV_HOME:-$HOME/.cache/kontext}
venv="$home/$name-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "$name: installing $requirements into $venv (once)" >&2
  rm -rf "$venv"
  mkdir -p "$home"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
  touch "$venv/.complete"   # written last: a half-finished install is never reused
fi
echo "$venv"
