#!/bin/sh
# Create (once) and refresh a virtualenv with the project and its test extras, then print its python.
# PYTHON picks the interpreter (default python3); VENV the folder (default .venv, or .venv-py313 etc.).
set -eu
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"
VENV="${VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV" >&2
    "$VENV/bin/python" -m pip install -q --upgrade pip >&2
fi
"$VENV/bin/python" -m pip install -q -e '.[test]' >&2
echo "$VENV/bin/python"
