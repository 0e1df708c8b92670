"""``backpack-harness conform``: the conformance suite, cases x clients, over real loopback sockets.

``conform [--client NAME ...] [--cases GLOB ...] --out DIR`` runs every selected case against every
selected client (default: all of both), each run in its own process with its own loopback server on an
ephemeral port, ``--jobs`` at a time (default: the CPU count), and writes ``index.html``,
``cases/<case>-<client>.html`` and ``results.json`` to DIR. Exit 0, or 5 when the native feed fails a
case (the project's own regression gate), 64 for an unknown client or a glob that matches no case, 73
when DIR cannot be created or written.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import sys
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any

from harness.cli import EXIT_CANTCREAT, EXIT_CONFORMANCE, EXIT_OK, EXIT_USAGE, CliError, Subcommand, register


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--client", action="extend", nargs="+", metavar="NAME",
                        help="clients to test (repeatable; default: all of native, ccxt-feed, ccxt-pro, "
                        "backpack-exchange-sdk)")
    parser.add_argument("--cases", action="extend", nargs="+", metavar="GLOB",
                        help="cases whose number, name or number-name matches (repeatable: '2.*', '*gap*')")
    parser.add_argument("--out", metavar="DIR", required=True, help="where index.html, cases/ and results.json go")
    parser.add_argument("--jobs", type=int, default=None, metavar="N",
                        help="runs at once, one process each (default: the CPU count)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")


def _quiet() -> None:
    logging.basicConfig(level=logging.CRITICAL + 1, force=True)


def _work(case_id: str, client: str) -> dict[str, Any]:
    """Process-pool unit: one case x client; an internal failure comes back as a fail, never a traceback."""
    _quiet()
    sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - a client's threads may print after its run; stdout is ours
    from harness.conformance.catalog import load_catalog
    from harness.conformance.run import run_case

    case = next(c for c in load_catalog() if c.id == case_id)
    try:
        return run_case(case, client)
    except Exception as exc:  # noqa: BLE001 - one broken run must not take the report down
        from harness.conformance.judge import _base

        return {**_base(case, client), "verdict": "fail",
                "reasons": [f"the harness could not run the case ({type(exc).__name__}: {str(exc)[:200]})"]}


def _progress(enabled: bool | None, total: int) -> tuple[Callable[[int, str], None], Callable[[], None]]:
    on = enabled if enabled is not None else sys.stderr.isatty()
    if not on:
        return (lambda _n, _d: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("conform"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.description}"),
                   TimeElapsedColumn(), console=Console(file=sys.stderr, force_terminal=bool(enabled) or None),
                   redirect_stdout=False, redirect_stderr=False)
    task = bar.add_task("runs", total=total)
    bar.start()

    def update(done: int, name: str) -> None:
        bar.update(task, completed=done, description=name)

    return update, bar.stop


def _run(args: argparse.Namespace) -> int:
    from harness.conformance import report as rep
    from harness.conformance.catalog import CatalogError, load_catalog, select
    from harness.conformance.clients import ADAPTERS

    _quiet()
    clients = list(dict.fromkeys(args.client or ADAPTERS))
    unknown = [c for c in clients if c not in ADAPTERS]
    if unknown:
        raise CliError(EXIT_USAGE, f"unknown client {unknown[0]!r}; known: {', '.join(ADAPTERS)}")
    if args.jobs is not None and args.jobs < 1:
        raise CliError(EXIT_USAGE, "--jobs must be 1 or more")
    try:
        catalog = load_catalog()
    except CatalogError as exc:
        raise CliError(EXIT_USAGE, f"case catalog: {exc}") from None
    cases = select(catalog, args.cases)
    if not cases:
        raise CliError(EXIT_USAGE, f"no case matches {' '.join(args.cases)} (cases are numbered 1.1 to "
                       f"{catalog[-1].id}; try --cases '2.*' or --cases '*gap*')")
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(EXIT_CANTCREAT, f"cannot create {args.out}: {exc.strerror or exc}") from None
    runs = [(c.id, client) for c in cases for client in clients]
    jobs = max(1, min(args.jobs or os.cpu_count() or 1, len(runs)))
    update, close = _progress(args.progress, len(runs))
    results: dict[tuple[str, str], dict[str, Any]] = {}
    try:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = {pool.submit(_work, cid, client): (cid, client) for cid, client in runs}
            update(0, f"{jobs} processes")
            for done, future in enumerate(as_completed(futures), 1):
                key = futures[future]
                results[key] = future.result()
                update(done, f"{key[0]} {key[1]}: {results[key]['verdict']}")
    finally:
        close()
    ordered = [results[k] for k in runs]
    command = "backpack-harness conform " + " ".join(
        [f"--client {shlex.quote(c)}" for c in (args.client or [])]
        + [f"--cases {shlex.quote(g)}" for g in (args.cases or [])] + ["--out", shlex.quote(args.out)])
    report = rep.build(ordered, clients, command=command, catalog_size=len(catalog))
    try:
        paths = rep.write(report, out)
    except OSError as exc:
        raise CliError(EXIT_CANTCREAT, f"cannot write the report to {args.out}: {exc.strerror or exc}") from None
    for c in clients:
        t = report["totals"][c]
        print(f"{c}: {t['pass']} pass, {t['non-strict']} non-strict, {t['fail']} fail, {t['unsupported']} "
              f"unsupported, {t['not installed']} not installed", file=sys.stderr)
    print("\n".join(str(p) for p in paths))
    if report["native_failed"]:
        print(f"the native feed fails {', '.join(report['native_failed'])}", file=sys.stderr)
        return EXIT_CONFORMANCE
    return EXIT_OK


register(Subcommand("conform", "run the conformance suite (cases x clients over loopback sockets) and write the "
                    "HTML report", _add_arguments, _run))
