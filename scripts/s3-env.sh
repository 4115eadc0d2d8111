#!/usr/bin/env bash
# Prints the path of the virtual environment holding a local S3-compatible server for the tests
# (scripts/s3-requirements.txt: moto's server), creating it first when missing (see venv.sh).
root=$(cd "$(dirname "$0")/.." && pwd)
exec "$root/scripts/venv.sh" s3 "$root/scripts/s3-requirements.txt" "${KONTEXT_S3_PYTHON:-python3}"
