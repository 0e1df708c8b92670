#!/bin/sh
# The test suite: lint, then pytest. Extra arguments go to pytest.
set -eu
cd "$(dirname "$0")/.."
VPY="$(sh scripts/bootstrap.sh)"
"$VPY" -m ruff check .
exec "$VPY" -m pytest "$@"
