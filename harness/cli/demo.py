"""``backpack-harness demo``: the main job (see ``harness.demo``)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from harness.cli import Subcommand, register
from harness.demo import DEFAULT_SYMBOLS, format_report, run_demo


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=2, help="market seed (default 2)")
    parser.add_argument("--steps", type=int, default=1200, help="market steps to drive (default 1200)")
    parser.add_argument("--symbols", default=",".join(DEFAULT_SYMBOLS), help="comma-separated normalized symbols")
    parser.add_argument("--no-fault", action="store_true", help="do not inject the sequence gap")
    parser.add_argument("--report", type=Path, default=Path("out/demo-report.json"), help="where to write the JSON report")


def _run(args: argparse.Namespace) -> int:
    symbols = tuple(s.strip() for s in args.symbols.split(",") if s.strip())
    report = asyncio.run(run_demo(seed=args.seed, steps=args.steps, symbols=symbols, fault=not args.no_fault,
                                  say=lambda m: print(m, flush=True)))
    print(format_report(report), flush=True)
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    print(f"report written to {args.report}", file=sys.stderr)
    return 0 if report["native_exact"] else 1


register(Subcommand("demo", "run the native and ccxt feeds against the loopback server and compare", _add_arguments, _run))
