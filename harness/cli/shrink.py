"""``backpack-harness shrink RECORDING (--invariant NAME | --check CMD) --out MIN``: a minimal failing recording.

Delta debugging over the recording's frames (keeping the connection events and the REST exchanges the
kept frames need, so every candidate is a valid recording) down to one that still fails; written under
recordings/regressions/ (or where ``--out`` says) with a generated pytest test that fails on it and passes
once the bug is fixed. ``--invariant`` judges candidates on the protocol core (fast); ``--check CMD`` runs
CMD on each candidate file (``{}`` is replaced by its path, else the path is appended) and keeps candidates
on which it exits as it does on the whole recording. Exit 0 written; 65 the recording does not fail (or is
damaged), 66 it cannot be read, 64 the check cannot be run (no such command, unknown invariant), 73 the
regression cannot be written where ``--out`` says (checked before shrinking starts).
"""

from __future__ import annotations

import argparse
import sys
import time

from harness.cli import EXIT_CANTCREAT, EXIT_DATAERR, EXIT_OK, EXIT_USAGE, CliError, Subcommand, register
from harness.cli._recordings import cli_error, depth, quiet_replayed_feed

EXIT_NOT_FAILING = EXIT_DATAERR  # nothing to shrink: the input is not what shrink needs


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", metavar="RECORDING", help="a failing .jsonl or .jsonl.zst recording")
    check = parser.add_mutually_exclusive_group(required=True)
    check.add_argument("--invariant", action="append", metavar="NAME",
                       help="an invariant that breaks on it (book, trades; repeatable)")
    check.add_argument("--check", metavar="CMD", help="a command that fails on it, e.g. 'backpack-harness bisect {} "
                       "--golden out.jsonl'")
    parser.add_argument("--out", required=True, metavar="MIN",
                        help="name (written to recordings/regressions/) or path of the minimal recording")
    parser.add_argument("--depth", type=depth, default=10, help="book levels per side (default 10)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress on stderr (default: when stderr is a terminal)")


class _Progress:
    def __init__(self, enabled: bool | None) -> None:
        self.on = enabled if enabled is not None else sys.stderr.isatty()
        self.tests = 0
        self.size = 0
        self.started = time.monotonic()
        self._live = None

    def __enter__(self) -> _Progress:
        if self.on:
            from rich.console import Console
            from rich.live import Live
            from rich.text import Text

            outer = self

            class _Line:
                def __rich__(self) -> Text:
                    return Text(f"shrink  {outer.tests} replays  candidate {outer.size:,} units  "
                                f"{time.monotonic() - outer.started:,.1f} s")

            self._live = Live(_Line(), console=Console(file=sys.stderr, force_terminal=bool(self.on) or None),
                              refresh_per_second=4, redirect_stdout=False, redirect_stderr=False)
            self._live.start()
        return self

    def __call__(self, tests: int, size: int) -> None:
        self.tests, self.size = tests, size

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()



def _run(args: argparse.Namespace) -> int:
    quiet_replayed_feed(args)
    from harness.bisect.shrink import CheckError, OutputPathError, ShrinkError, shrink
    from harness.recording.reader import RecordingError
    from harness.replay import ReplaySetupError
    from harness.transports.replay import ReplayError

    try:
        with _Progress(args.progress) as progress:
            result = shrink(args.recording, args.out, invariants=args.invariant, command=args.check,
                            depth=args.depth, on_test=progress)
    except CheckError as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None
    except OutputPathError as exc:
        raise CliError(EXIT_CANTCREAT, str(exc)) from None
    except ShrinkError as exc:
        raise CliError(EXIT_NOT_FAILING, f"not shrunk: {exc}") from None
    except (RecordingError, ReplayError) as exc:
        raise cli_error(exc) from None
    except ReplaySetupError as exc:
        raise cli_error(RecordingError(str(exc))) from None
    except OSError as exc:
        raise CliError(EXIT_CANTCREAT, f"cannot write the regression: {exc.strerror or exc}") from None
    print(f"{result.original_events} -> {len(result.events)} events ({result.kept_units} frames kept) in "
          f"{result.tests} replays, {result.seconds:.1f} s; {result.check}")
    if result.violation is not None:
        print(f"fails with: {result.violation.message}")
    for note in result.notes:
        print(f"note: {note}")
    print(f"recording: {result.recording}")
    print(f"test:      {result.test_file}")
    return EXIT_OK


register(Subcommand("shrink", "delta-debug a failing recording down to a minimal one, with a generated pytest test",
                    _add_arguments, _run))
