"""``backpack-harness bisect RECORDING (--golden OUT.jsonl | --ccxt | --invariants)``: good or bad, for git bisect.

Replays the recording with this revision and prints the first frame where its output goes wrong: where
it differs from a golden output, from ccxt after the registered deviations, or breaks an invariant.
Exit codes are ``git bisect run``'s: 0 good, 1 bad, 125 skip (this revision cannot replay the recording:
a format version it does not read, a feed that does not do what the recording has). An input that is
missing, unreadable, damaged or of the wrong kind (a golden file that is not a normalized output, a
RECORDING that is not a recording) exits 128 with one line: ``git bisect run`` counts every other code
from 1 to 127 as bad, so the shared codes (65, 66, ...) would make it blame the first commit of the range;
128 makes it stop. docs/runbooks/bisecting.md has the recipes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from harness.cli import CliError, Subcommand, register
from harness.cli._recordings import depth, quiet_replayed_feed

EXIT_ABORT = 128


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", metavar="RECORDING", help="a .jsonl or .jsonl.zst recording")
    judge = parser.add_mutually_exclusive_group(required=True)
    judge.add_argument("--golden", metavar="OUT.jsonl", help="normalized output known to be right")
    judge.add_argument("--ccxt", action="store_true", help="compare with ccxt.pro on the same frames")
    judge.add_argument("--invariants", nargs="?", const="all", metavar="NAMES",
                       help="check invariants (comma-separated; default all: book, trades, scenario-a, scenario-c)")
    parser.add_argument("--mode", choices=("auto", "core", "feed"), default="auto",
                        help="replay with the protocol core, the full feed, or the core where it models the "
                        "recording (default)")
    parser.add_argument("--depth", type=depth, default=10, help="book levels per side (default 10)")
    parser.add_argument("--registry", metavar="DIR", help="deviation registry for --ccxt (default: the bundled one)")
    parser.add_argument("--json", action="store_true", help="print the verdict as one JSON object")



def _inputs(args: argparse.Namespace) -> None:
    """What is wrong with the inputs is wrong on every revision alike: stop the bisection (128), one line."""
    from harness.bisect.sides import is_recording
    from harness.recording.reader import RecordingError, RecordingReader, RecordingVersionError

    for path in (args.recording, args.golden):
        if path is not None and not os.path.isfile(path):
            what = "a directory" if os.path.isdir(path) else "no such file"
            raise CliError(EXIT_ABORT, f"cannot read {path}: {what} (keep it outside the work tree, which git "
                           "bisect checks out)")
    try:
        RecordingReader(args.recording).close()
    except RecordingVersionError:
        pass  # this revision does not read that version: judge() calls it a skip
    except RecordingError as exc:
        raise CliError(EXIT_ABORT, f"{' '.join(str(exc).split())} (RECORDING must be a recording)") from None
    if args.golden is not None:
        try:
            recording = is_recording(args.golden)
        except RecordingVersionError:
            recording = True
        except RecordingError as exc:
            raise CliError(EXIT_ABORT, " ".join(str(exc).split())) from None
        if recording:
            raise CliError(EXIT_ABORT, f"--golden {args.golden} is a recording; give the normalized output of a "
                           "good revision (backpack-harness replay RECORDING > golden.jsonl)")
    if args.registry is not None and not (os.path.isdir(args.registry)
                                          and any(n.endswith(".yaml") for n in os.listdir(args.registry))):
        raise CliError(EXIT_ABORT, f"--registry {args.registry}: not a directory of deviation entries (*.yaml)")


def _run(args: argparse.Namespace) -> int:
    quiet_replayed_feed(args)
    from harness.bisect.invariants import REGISTRY
    from harness.bisect.verdict import judge
    from harness.recording.reader import RecordingError

    names = None
    if args.invariants is not None and args.invariants != "all":
        names = [n.strip() for n in args.invariants.split(",") if n.strip()]
        unknown = [n for n in names if n not in REGISTRY]
        if unknown or not names:
            raise CliError(EXIT_ABORT, f"unknown invariant(s) {', '.join(unknown) or '(none given)'}; known: "
                           f"{', '.join(REGISTRY)}")
    _inputs(args)
    try:
        verdict = judge(args.recording, golden=args.golden, ccxt=args.ccxt, invariants=names, mode=args.mode,
                        depth=args.depth, registry=args.registry)
    except RecordingError as exc:
        raise CliError(EXIT_ABORT, " ".join(str(exc).split())) from None
    except ValueError as exc:
        raise CliError(EXIT_ABORT, " ".join(str(exc).split())) from None
    if args.json:
        print(json.dumps(verdict.to_json(), sort_keys=True, default=str))
    else:
        print(f"{verdict.status}: {verdict.message}")
        if verdict.mode:
            print(f"(replayed by the {'protocol core' if verdict.mode == 'core' else 'full feed'})", file=sys.stderr)
    return verdict.exit_code


register(Subcommand("bisect", "good (0) / bad (1) / skip (125) of this revision on a recording, for git bisect run",
                    _add_arguments, _run))
