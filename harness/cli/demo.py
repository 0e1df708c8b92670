"""``backpack-harness demo``: the main job (see ``harness.demo``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from harness.cli import Subcommand, register
from harness.demo import DEFAULT_OUT, DEFAULT_SYMBOLS, format_report, run_demo


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=2, help="market seed (default 2)")
    parser.add_argument("--steps", type=int, default=1200, help="market steps to drive (default 1200)")
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS), help="comma-separated normalized symbols")
    parser.add_argument("--no-fault", action="store_true", help="do not inject the sequence gap")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT,
                        help=f"where the recording and the parity report go (default {DEFAULT_OUT})")
    parser.add_argument("--report", type=Path, default=None,
                        help="where to write the demo's own JSON summary (default OUT/demo-report.json)")


def _run(args: argparse.Namespace) -> int:
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    report = asyncio.run(run_demo(seed=args.seed, steps=args.steps, symbols=symbols, fault=not args.no_fault,
                                  out=args.out, say=lambda m: print(m, flush=True)))
    print(format_report(report), flush=True)
    summary = args.report or args.out / "demo-report.json"
    summary.parent.mkdir(parents=True, exist_ok=True)
    summary.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"summary written to {summary}", file=sys.stderr)
    return 0 if report["native_exact"] and report["replay_identical"] else 1


register(Subcommand("demo", "the main job: record the native feed live on the loopback server with a gap, replay "
                    "it, and write the parity report against ccxt", _add_arguments, _run))
