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
# The install compiles backpack/protocol/_speedups.pyx in place (setup.py); without a C compiler it still
# succeeds, and pip -q hides setup.py's warning, so say here which core this venv runs.
"$VENV/bin/python" -m pip install -q -e '.[test]' >&2
"$VENV/bin/python" -c 'from backpack.protocol import speedups as s
if s.IMPLEMENTATION != "cython":
    print(f"WARNING: the compiled core is not in use ({s.REASON}); the tests will fail unless "
          "BACKPACK_NO_COMPILER=1 says this machine has no compiler")' >&2
echo "$VENV/bin/python"
