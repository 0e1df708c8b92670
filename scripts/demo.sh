#!/bin/sh
# The main job: starts the loopback Backpack server, runs the native feed and ccxt against it, and reports.
set -eu
cd "$(dirname "$0")/.."
VPY="$(sh scripts/bootstrap.sh)"
exec "$VPY" -m harness demo "$@"
