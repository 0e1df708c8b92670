"""What the recording commands share: one-line errors with their exit codes, time arguments, progress.

Not a command itself (the leading underscore keeps ``discover`` from importing it as one).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from typing import Any, TextIO

from harness.cli import (
    EXIT_CONFORMANCE,
    EXIT_DATAERR,
    EXIT_NOINPUT,
    EXIT_UNSUPPORTED,
    CliError,
)
from harness.recording.cassettes import CassetteError
from harness.recording.reader import (
    RecordingDamaged,
    RecordingEmpty,
    RecordingError,
    RecordingOpenError,
    RecordingVersionError,
)

_TIME = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|m|h)?\s*")
_UNITS = {None: 1.0, "s": 1.0, "ms": 0.001, "m": 60.0, "h": 3600.0}


def quiet_replayed_feed(args: argparse.Namespace) -> None:
    """The replayed feed's own log (a reconnect warning, ...) stays off stderr unless --log-level asks."""
    import logging

    from backpack.logs import install_json_logging

    if args.log_level is None:
        install_json_logging(logging.CRITICAL + 1)


def exit_code(exc: BaseException) -> int:
    """The documented exit code of a recording or cassette problem (see ``harness.cli``)."""
    if isinstance(exc, RecordingOpenError | RecordingEmpty):
        return EXIT_NOINPUT
    if isinstance(exc, RecordingVersionError):
        return EXIT_UNSUPPORTED
    if isinstance(exc, RecordingError | CassetteError):
        return EXIT_DATAERR
    return EXIT_CONFORMANCE


def cli_error(exc: BaseException) -> CliError:
    return CliError(exit_code(exc), " ".join(str(exc).split()))


def report_damage(damage: RecordingDamaged) -> None:
    raise CliError(EXIT_DATAERR, damage.message)


def offset(text: str) -> float:
    """A time from the recording's start: seconds, or a number with ms, s, m or h (``90``, ``1.5m``)."""
    match = _TIME.fullmatch(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f"expected a time from the recording's start such as 12.5, 1500ms, 2m or 1h, got {text[:40]!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text[:40]!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text[:40]!r}")
    return value


def depth(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"depth must be a positive integer, got {text[:40]!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"depth must be a positive integer, got {value}")
    return value


def progress_bar(enabled: bool | None, total: int, stream: TextIO | None = None) -> tuple[Callable[[Any], None],
                                                                                          Callable[[], None]]:
    """A progress bar on stderr (frames of ``total``, frames/s and bytes) when asked or when stderr is a
    terminal; drawn by rich, like the other harness commands' progress (see ``harness.cli._progress``).

    Returns ``(update(transport), close())``; both do nothing when the bar is off.
    """
    stream = stream or sys.stderr
    on = enabled if enabled is not None else bool(getattr(stream, "isatty", lambda: False)())
    if not on:
        return (lambda _t: None), (lambda: None)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.cli._progress import human_bytes

    bar = Progress(TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[rate]}"),
                   TextColumn("{task.fields[size]}"), TimeElapsedColumn(),
                   console=Console(file=stream, force_terminal=bool(enabled) or None),
                   redirect_stdout=False, redirect_stderr=False)
    task = bar.add_task("replay", total=total, rate="0 frames/s", size="0 B")
    bar.start()

    def update(transport: Any) -> None:
        stats = transport.stats
        elapsed = bar.tasks[0].elapsed or 0.0
        rate = f"{stats.frames / elapsed if elapsed > 0 else 0:,.0f} frames/s"
        bar.update(task, completed=stats.frames, rate=rate, size=human_bytes(stats.bytes))

    return update, bar.stop
