"""``backpack-harness diff A B``: the first event where two normalized streams differ.

A and B are normalized outputs (files of schema-v1 lines, plain or zstd) or recordings, which this
revision replays (the core where it can, else the full feed). One streaming pass; prints the line index,
the recording event behind it (with its place on the timeline) and both sides around it. Exit 0 equal,
1 different; recording problems keep their usual codes (66, 65, 76, 5).
"""

from __future__ import annotations

import argparse
import json
import sys

from harness.cli import EXIT_OK, Subcommand, register
from harness.cli._recordings import cli_error, depth, quiet_replayed_feed

EXIT_DIFFERENT = 1


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("a", metavar="A", help="normalized output (.jsonl[.zst]) or a recording")
    parser.add_argument("b", metavar="B", help="normalized output (.jsonl[.zst]) or a recording")
    parser.add_argument("--mode", choices=("auto", "core", "feed"), default="auto",
                        help="how recordings are replayed: the protocol core (fast), the full feed, or the core "
                        "where it models the recording (default)")
    parser.add_argument("--depth", type=depth, default=10, help="book levels per side of replayed book lines")
    parser.add_argument("--context", type=int, default=3, metavar="N", help="lines shown around it (default 3)")
    parser.add_argument("--json", action="store_true", help="print the divergence as one JSON object")



def _run(args: argparse.Namespace) -> int:
    quiet_replayed_feed(args)
    from harness.bisect.diff import first_divergence
    from harness.bisect.render import describe_event, divergence_json, render_divergence
    from harness.bisect.sides import Side
    from harness.recording.reader import RecordingError
    from harness.replay import ReplaySetupError
    from harness.transports.replay import ReplayError

    try:
        a = Side(args.a, mode=args.mode, depth=args.depth)
        b = Side(args.b, mode=args.mode, depth=args.depth)
        found = first_divergence(a.items(), b.items(), context=max(0, args.context))
    except (RecordingError, ReplayError) as exc:
        raise cli_error(exc) from None
    except ReplaySetupError as exc:
        raise cli_error(RecordingError(str(exc))) from None
    for side in (a, b):
        if side.fallback:
            print(f"{side.name}: replayed by the full feed ({side.fallback})", file=sys.stderr)
    if found is None:
        if not args.json:
            print(f"no divergence: {a.name} and {b.name} hold the same records")
        else:
            print(json.dumps({"equal": True}))
        return EXIT_OK
    owner = a if found.a is not None and found.a.frame is not None else b
    event = owner.event(found.frame)
    if args.json:
        print(json.dumps({"equal": False, **divergence_json(found, a.name, b.name, event)}, sort_keys=True))
    else:
        print(render_divergence(found, a.name, b.name, describe_event(found.frame, event)))
    return EXIT_DIFFERENT


register(Subcommand("diff", "the first event where two normalized outputs (or replayed recordings) differ",
                    _add_arguments, _run))
