#!/bin/sh
# One `git bisect run` step that also copes with revisions older than `backpack-harness bisect`.
#
# git bisect checks out old commits, so run a copy of this script kept outside the work tree:
#   cp scripts/bisect-step.sh /tmp/bisect-step.sh
#   git bisect run /tmp/bisect-step.sh RECORDING --golden /tmp/golden.jsonl
# Arguments are those of `backpack-harness bisect`. A revision without that command (or whose harness
# does not even import) is skipped (125) instead of being judged bad; every other revision answers
# for itself: 0 good, 1 bad, 125 skip, 128 stop the bisect (an input is missing, damaged or of the wrong kind).
# BACKPACK_HARNESS names the command (default: backpack-harness on PATH).
set -u
harness="${BACKPACK_HARNESS:-backpack-harness}"
if ! $harness bisect --help >/dev/null 2>&1; then
    echo "bisect-step: this revision has no '$harness bisect': skipped" >&2
    exit 125
fi
exec $harness bisect "$@"
