"""``backpack-harness parity``: the native feed against ccxt.pro, over recordings or live, and the GA gate.

``parity RECORDING... --out DIR`` replays each recording through the native feed and through the ccxt
oracle (offline), compares them and writes ``report.json``, ``report.md`` and ``report.html`` to DIR.
Recordings are processed in parallel, one process each (``--jobs``). ``--live`` runs both feeds side by
side against a fresh loopback server instead. Exit 0 when the gate passes, 5 when the unexplained
differences exceed ``--max-unexplained`` (default 0), the recording exit codes (65, 66, 76) when an input
cannot be read, 73 when the report cannot be written.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from harness.cli import EXIT_CANTCREAT, EXIT_CONFORMANCE, EXIT_OK, EXIT_USAGE, CliError, Subcommand, register
from harness.cli._recordings import depth, exit_code


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recordings", metavar="RECORDING", nargs="*", help=".jsonl or .jsonl.zst recordings")
    parser.add_argument("--out", metavar="DIR", required=True, help="where report.json, report.md, report.html go")
    parser.add_argument("--max-unexplained", type=int, default=0, metavar="N",
                        help="the GA gate: fail (exit 5) when more differences than this are unexplained (default 0)")
    parser.add_argument("--depth", type=depth, default=10, help="book levels per side compared (default 10)")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="recordings compared at once, one process each (default: the CPU count)")
    parser.add_argument("--registry", metavar="DIR", help="deviation registry to apply (default: the bundled one; an "
                        "empty folder shows every difference as unexplained)")
    parser.add_argument("--live", action="store_true",
                        help="shadow mode: run BackpackFeed and BackpackCcxtFeed side by side against a loopback "
                        "server and compare them (no RECORDING)")
    parser.add_argument("--seed", type=int, default=2, help="--live: the loopback market's seed (default 2)")
    parser.add_argument("--steps", type=int, default=1200, help="--live: market steps to drive (default 1200)")
    parser.add_argument("--symbols", nargs="+", metavar="SYMBOL", help="--live: symbols (default: the demo's three)")
    parser.add_argument("--gap", action="store_true", help="--live: withhold depth deltas half way (a sequence gap)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")


def _quiet() -> None:
    logging.basicConfig(level=logging.CRITICAL + 1, force=True)


def _work(path: str, depth_: int, registry: str | None = None) -> dict[str, Any]:
    """Process-pool unit: one recording end to end; failures come back as data, never as a traceback."""
    _quiet()
    from harness.parity.run import analyze
    from harness.recording.reader import RecordingError
    from harness.replay import ReplaySetupError
    from harness.transports.replay import ReplayError

    try:
        return {"ok": analyze(path, depth=depth_, registry=registry)}
    except (RecordingError, ReplaySetupError, ReplayError) as exc:
        code = exit_code(exc) if not isinstance(exc, ReplaySetupError) else 65
        return {"error": {"recording": os.path.basename(path), "path": path, "error": " ".join(str(exc).split()),
                          "exit": code}}
    except Exception as exc:  # noqa: BLE001 - one bad input must not take the other recordings' report down
        return {"error": {"recording": os.path.basename(path), "path": path,
                          "error": f"internal error ({type(exc).__name__})", "exit": 1}}


def _progress(enabled: bool | None, total: int) -> tuple[Any, Any]:
    on = enabled if enabled is not None else sys.stderr.isatty()
    if not on:
        return (lambda _n, _d: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("parity"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn(), console=Console(file=sys.stderr, force_terminal=bool(enabled) or None),
                   redirect_stdout=False, redirect_stderr=False)
    task = bar.add_task("recordings", total=total)
    bar.start()

    def update(done: int, name: str) -> None:
        bar.update(task, completed=done, description=name)

    return update, bar.stop


def _run_recordings(args: argparse.Namespace) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    paths = [os.fspath(p) for p in args.recordings]
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(paths)))
    update, close = _progress(args.progress, len(paths))
    results: dict[str, dict[str, Any]] = {}
    try:
        if jobs == 1:
            for i, path in enumerate(paths):
                update(i, os.path.basename(path))
                results[path] = _work(path, args.depth, args.registry)
        else:
            with ProcessPoolExecutor(max_workers=jobs) as pool:
                futures = {pool.submit(_work, path, args.depth, args.registry): path for path in paths}
                update(0, f"{jobs} processes")
                for done, future in enumerate(as_completed(futures), 1):
                    results[futures[future]] = future.result()
                    update(done, os.path.basename(futures[future]))
        update(len(paths), "done")
    finally:
        close()
    ok = [results[p]["ok"] for p in paths if "ok" in results[p]]
    failed = [results[p]["error"] for p in paths if "error" in results[p]]
    return ok, failed


def _run(args: argparse.Namespace) -> int:
    from harness.parity.deviations import load_registry
    from harness.parity.report import build, write

    _quiet()
    if args.max_unexplained < 0:
        raise CliError(EXIT_USAGE, "--max-unexplained must be 0 or more")
    if args.live and args.recordings:
        raise CliError(EXIT_USAGE, "give recordings or --live, not both")
    if not args.live and not args.recordings:
        raise CliError(EXIT_USAGE, "give at least one RECORDING (or --live)")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(EXIT_CANTCREAT, f"cannot create {args.out}: {exc.strerror or exc}") from None
    from harness.parity.deviations import RegistryError

    try:
        entries = load_registry(Path(args.registry)) if args.registry else load_registry()
    except (RegistryError, OSError) as exc:
        raise CliError(EXIT_USAGE, f"registry: {exc}") from None
    if args.live:
        import asyncio

        from harness.parity.live import run_live

        summary = asyncio.run(run_live(seed=args.seed, steps=args.steps, symbols=args.symbols, depth=args.depth,
                                       gap=args.gap, entries=entries, progress=args.progress))
        summaries, failures = [summary], []
    else:
        summaries, failures = _run_recordings(args)
    report = build(summaries, entries, max_unexplained=args.max_unexplained, depth=args.depth, failures=failures,
                   mode="live shadow" if args.live else "recordings")
    try:
        paths = write(report, out)
    except OSError as exc:
        raise CliError(EXIT_CANTCREAT, f"cannot write the report to {args.out}: {exc.strerror or exc}") from None
    verdict = report["verdict"]
    print(verdict["headline"], file=sys.stderr)
    for reason in verdict["reasons"]:
        print(f"  {reason}", file=sys.stderr)
    print("\n".join(str(p) for p in paths))
    if failures:
        for f in failures:
            print(f"error: {f['recording']}: {f['error']}", file=sys.stderr)
        return failures[0]["exit"]
    return EXIT_OK if verdict["passed"] else EXIT_CONFORMANCE


register(Subcommand("parity", "compare the native feed with ccxt.pro over recordings (or live) and write the "
                    "GA parity report", _add_arguments, _run))
