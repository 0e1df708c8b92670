"""Progress display for long harness commands: frames/s and bytes on stderr, only where someone watches.

rich draws it (a maintained library, see pyproject.toml); it is shown when stderr is a terminal or
``--progress`` asks for it, and never touches stdout, which carries data (``replay`` prints events there).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.text import Text


def human_bytes(n: float) -> str:
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def describe(frames: int, nbytes: int, seconds: float, what: str = "frames") -> str:
    rate = frames / seconds if seconds > 0 else 0.0
    return f"{frames:,} {what}  {rate:,.0f}/s  {human_bytes(nbytes)}  {seconds:,.1f} s"


@contextmanager
def progress(read: Callable[[], tuple[int, int, float]], *, enabled: bool | None = None,
             what: str = "frames") -> Iterator[Any]:
    """Show ``read() -> (count, bytes, seconds)`` about 4 times a second until the block ends."""
    show = sys.stderr.isatty() if enabled is None else enabled
    if not show:
        yield None
        return
    console = Console(file=sys.stderr, force_terminal=enabled or None)

    class _Line:
        def __rich__(self) -> Text:
            return Text(describe(*read(), what=what))

    with Live(_Line(), console=console, refresh_per_second=4, transient=False, redirect_stdout=False,
              redirect_stderr=False):
        yield None
