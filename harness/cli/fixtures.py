"""``backpack-harness fixtures``: (re)build or list the fixture library in ``recordings/``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from harness.cli import EXIT_OK, EXIT_USAGE, CliError, Subcommand, register


def _arguments(p: argparse.ArgumentParser) -> None:
    from harness.recording.library import LIBRARY, PLANS

    p.add_argument("action", choices=("build", "list"), help="build: record again; list: show the plans")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"plans to build (default all: {', '.join(PLANS)})")
    p.add_argument("--dir", type=Path, default=LIBRARY, help=f"where the library lives (default {LIBRARY})")


def _run(args: argparse.Namespace) -> int:
    from harness.recording.library import PLANS, build

    if args.action == "list":
        for plan in PLANS.values():
            print(f"{plan.name:10} {plan.description}")
        return EXIT_OK
    unknown = [n for n in args.names if n not in PLANS]
    if unknown:
        raise CliError(EXIT_USAGE, f"unknown fixture {unknown[0]!r}; known: {', '.join(PLANS)}")
    for name in args.names or list(PLANS):
        out, sidecar = asyncio.run(build(name, args.dir))
        print(f"{name}: {sidecar['frames']:,} frames, {sidecar['bytes']:,} bytes, "
              f"{sidecar['expected']['lines']:,} normalized events -> {out}", file=sys.stderr)
    return EXIT_OK


register(Subcommand("fixtures", "build or list the recordings/ fixture library", _arguments, _run))
