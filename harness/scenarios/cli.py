"""``backpack-harness replay RECORDING --faults PROGRAM.json``: one scenario, its lines and its verdict.

Lines go to stdout as the client produces them; the verdict goes to stderr: ``invariants held`` with
what was checked, or the first broken invariant (exit 5, the replay commands' conformance failure) and,
at the core level, how many books were wrong and how many of those silently (``divergence.Tally``).
``--client ccxt`` (core level) runs ccxt.pro's backpack handling instead of the native core.
A program that is not valid or does not fit the recording exits 65; one that cannot be read, 66.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import Any

from harness.cli import EXIT_CONFORMANCE, EXIT_DATAERR, EXIT_NOINPUT, EXIT_OK, EXIT_USAGE, CliError
from harness.recording.reader import Recording
from harness.scenarios.divergence import Tally
from harness.scenarios.oracle import Reference
from harness.scenarios.program import ProgramError, apply, describe, load_program
from harness.scenarios.runner import Run, run_core, run_feed_async

_NOT_WITH_FAULTS = (("start", "--from"), ("stop", "--to"), ("speed", "--speed"), ("save_cassette", "--save-cassette"))


def replay_faults(args: argparse.Namespace, rec: Recording, out: Callable[[str], Any]) -> int:
    client = getattr(args, "client", "native")
    if client != "native" and args.level != "core":
        raise CliError(EXIT_USAGE, f"--client {client} runs only with --level core (the full feed is the native one)")
    given = [flag for name, flag in _NOT_WITH_FAULTS if getattr(args, name, None) is not None]
    if getattr(args, "mode", "none") != "none":
        given.append("--mode")
    if given:
        raise CliError(EXIT_USAGE, f"{', '.join(given)} cannot be combined with --faults (the program's window "
                                   "says what is replayed, and a faulted replay never dials out)")
    try:
        program = load_program(args.faults)
    except ProgramError as exc:
        code = EXIT_NOINPUT if str(exc).startswith("cannot read") else EXIT_DATAERR
        raise CliError(code, str(exc)) from None
    reference = Reference.of(rec, name=args.recording)
    try:
        faulted = apply(program, reference)
    except ProgramError as exc:
        raise CliError(EXIT_DATAERR, f"{args.faults}: {exc}") from None
    if args.level == "core":
        from harness.scenarios.table import CLIENTS

        factory = CLIENTS[client]
        run: Run = run_core(faulted, lambda f: factory(f, args.depth), depth=args.depth, raise_at_once=False,
                            checker=Tally)
        for line in run.lines:
            out(line)
    else:
        run = asyncio.run(run_feed_async(faulted, depth=args.depth, sink=out, raise_violation=False))
    flush = getattr(out, "flush", None)
    if flush is not None:
        flush()
    if run.violation is not None:
        tally = run.checker
        if isinstance(tally, Tally) and tally.wrong:  # before the verdict: the verdict stays the last line
            first = f"; the first silent one: {tally.first_silent}" if tally.silent else ""
            print(f"{tally.wrong} wrong book(s), {tally.silent} of them silent (nothing signalled since the "
                  f"symbol's last correct book){first}", file=sys.stderr)
        print(str(run.violation), file=sys.stderr)
        return EXIT_CONFORMANCE
    stats = run.stats
    who = f"{args.level} level" + ("" if client == "native" else f", {client}")
    print(f"invariants held ({who}, {describe(program)}): {stats.get('books_checked', 0)} books "
          f"checked against the reference, {stats.get('resyncs', 0)} resyncs, {stats.get('lost', 0)} frames lost, "
          f"{stats.get('disconnects', 0)} disconnects", file=sys.stderr)
    return EXIT_OK


__all__ = ["replay_faults"]
