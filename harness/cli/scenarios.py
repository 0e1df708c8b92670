"""``backpack-harness scenarios table``: clients side by side on one fault-scenario set.

Prints a Markdown table (per fault kind: scenarios, and per client the scenarios with a silently wrong
book and with any wrong book) on stdout, then with ``--examples`` the first silent scenario of each
cell (its program, to save as a file and replay with ``replay --faults FILE --level core --client C``).
The set is a pure function of the recordings, ``--count`` and ``--seed`` (``harness/scenarios/table.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.cli import EXIT_NOINPUT, EXIT_OK, EXIT_USAGE, CliError, Subcommand, register


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text[:20]!r}") from None
    if not 1 <= value <= 100_000:
        raise argparse.ArgumentTypeError(f"must be between 1 and 100000, got {value}")
    return value


def _arguments(p: argparse.ArgumentParser) -> None:
    from harness.cli._recordings import depth
    from harness.scenarios.table import CLIENTS, ROWS

    p.add_argument("action", choices=("table",), help="table: silent divergences per fault kind")
    p.add_argument("recordings", nargs="*", type=Path, metavar="RECORDING",
                   help="recordings to draw windows from (default: the bundled library, recordings/)")
    p.add_argument("--client", action="append", choices=tuple(CLIENTS), dest="clients",
                   help="a client to run (repeat; default: native and ccxt)")
    p.add_argument("--count", type=_count, default=100, help="scenarios per fault kind (default 100)")
    p.add_argument("--seed", type=int, default=0, help="seed of the scenario set (default 0)")
    p.add_argument("--kind", action="append", choices=ROWS, dest="rows",
                   help="only this row (repeat; default every fault kind)")
    p.add_argument("--depth", type=depth, default=10, help="book levels per side compared in book records")
    p.add_argument("--examples", action="store_true", help="after the table, the first silent scenario per cell")


def _run(args: argparse.Namespace) -> int:
    from harness.cli._recordings import cli_error
    from harness.recording.library import bundled
    from harness.recording.reader import RecordingError
    from harness.scenarios.table import ROWS, build_table

    recordings = list(args.recordings) or bundled()
    if not recordings:
        raise CliError(EXIT_NOINPUT, "no recordings given and none bundled in recordings/")
    missing = [p for p in recordings if not p.is_file()]
    if missing:
        raise CliError(EXIT_NOINPUT, f"{missing[0]}: no such recording")
    clients = list(dict.fromkeys(args.clients or ("native", "ccxt")))
    if not clients:
        raise CliError(EXIT_USAGE, "at least one --client")
    started = time.monotonic()
    try:
        table = build_table(recordings, clients, count=args.count, seed=args.seed, rows=args.rows or ROWS,
                            depth=args.depth)
    except RecordingError as exc:
        raise cli_error(exc) from None
    print(table.markdown())
    if args.examples:
        for (row, client), cell in sorted(table.cells.items()):
            if cell.example:
                print(f"\n{client} / {row}: {cell.example}")
    n = sum(c.scenarios for (_, client), c in table.cells.items() if client == clients[0])
    print(f"{n} scenarios x {len(clients)} clients over {', '.join(p.name for p in recordings)} in "
          f"{time.monotonic() - started:.0f} s", file=sys.stderr)
    return EXIT_OK


register(Subcommand("scenarios", "fault scenarios: clients side by side (silent divergences per fault kind)",
                    _arguments, _run))
