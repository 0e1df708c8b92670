"""Native vs other clients on one scenario set: silent divergences per fault kind (issue 8, item 7).

The scenario set is a pure function of ``(recordings, count, seed)``: for each row (a fault kind; the
snapshot kind split by its answer) ``count`` programs, each a window of ``FRAMES`` received frames of a
recording (taken in turn from the library; ``reject_private`` only from recordings with private
streams) spread over ``SPAN_S`` of virtual time, with 1 to ``MAX_EDITS`` edits of that one kind only,
so a row's divergences are that kind's doing. Parameters are drawn with ``random.Random`` seeded from
the text ``"{seed}:{row}:{n}"`` (the same programs on every machine and Python, whatever else the set
holds) over the ranges the hypothesis strategies use. Every client runs every program through
``run_core`` judged by a ``divergence.Tally``.

Per row and client the table counts scenarios with at least one *silent* divergence (a wrong book
emitted while the client had signalled nothing since that symbol's last correct book) and scenarios
with at least one wrong book at all (signalled or not).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.scenarios.divergence import Tally
from harness.scenarios.oracle import Reference, reference
from harness.scenarios.program import CORRUPTIONS, MALFORMED, Edit, Faulted, Program, Window, apply, describe
from harness.scenarios.runner import NativeCore, run_core
from harness.scenarios.strategies import ERROR_CODES, stretch_for

FRAMES = 200
SPAN_S = 10.0
MAX_EDITS = 3
SNAPSHOT_ANSWERS = ("stale", "ahead", "5xx", "timeout", "malformed")
ROWS: tuple[str, ...] = ("drop", "duplicate", "reorder", "hold", "corrupt", "truncate", "error_frame", "silence",
                         "cut", "unanswered_ping", "reject_private",
                         *(f"snapshot:{a}" for a in SNAPSHOT_ANSWERS))


def _ccxt(faulted: Faulted, depth: int | None) -> Any:
    from harness.scenarios.ccxt_client import CcxtCore

    return CcxtCore(faulted, depth)


CLIENTS: dict[str, Callable[[Faulted, int | None], Any]] = {
    "native": lambda faulted, depth: NativeCore(faulted, depth),
    "ccxt": _ccxt,
}
"""Client name -> factory (faulted timeline, book depth) of a ``CoreClient``."""


def _edit(rng: random.Random, row: str, frames: int, symbols: Sequence[str]) -> Edit:
    at = rng.randrange(frames)
    if row.startswith("snapshot:"):
        return Edit.make("snapshot", nth=rng.randint(1, 4), answer=row.split(":", 1)[1],
                         symbol=rng.choice(symbols) if symbols and rng.random() < 0.5 else None,
                         by=rng.randint(1, 40), status=rng.choice((500, 502, 503)), how=rng.choice(MALFORMED))
    params: dict[str, Any] = {
        "drop": lambda: {"at": at, "count": rng.randint(1, 3)},
        "duplicate": lambda: {"at": at, "count": rng.randint(1, 2)},
        "reorder": lambda: {"at": at, "by": rng.randint(1, 8)},
        "hold": lambda: {"at": at, "seconds": rng.randint(1, 3000) / 1000},
        "corrupt": lambda: {"at": at, "how": rng.choice(CORRUPTIONS)},
        "truncate": lambda: {"at": at, "keep": rng.randint(0, 200)},
        "error_frame": lambda: {"at": at, "code": rng.choice(ERROR_CODES)},
        "silence": lambda: {"at": at, "seconds": rng.choice((1.0, 30.0, 140.0, 300.0))},
        "cut": lambda: {"at": at},
        "unanswered_ping": lambda: {"at": at},
        "reject_private": lambda: {"count": rng.randint(1, 5)},
    }[row]()
    return Edit.make(row, **params)


def program_for(ref: Reference, row: str, rng: random.Random) -> Program:
    """One program of ``row`` over ``ref`` (see the module docstring)."""
    infos = ref.frames
    if len(infos) <= FRAMES:
        start, stop, n = (infos[0].index if infos else 0), None, len(infos)
    else:
        k = rng.randrange(len(infos) - FRAMES + 1)
        start, stop, n = infos[k].index, infos[k + FRAMES - 1].index + 1, FRAMES
    window = Window(start, stop, stretch_for(ref, start, FRAMES, SPAN_S))
    symbols = tuple(sorted(ref.books))
    edits = tuple(_edit(rng, row, max(1, n), symbols) for _ in range(rng.randint(1, MAX_EDITS)))
    return Program(edits, window)


@dataclass(frozen=True)
class Scenario:
    row: str
    n: int
    recording: Path
    program: Program


def scenarios(recordings: Sequence[Path], count: int, seed: int, rows: Iterable[str] = ROWS) -> Iterator[Scenario]:
    """The scenario set (deterministic: see the module docstring)."""
    refs = [(p, reference(p)) for p in recordings]
    private = [(p, r) for p, r in refs if r.has_private]
    for row in rows:
        pool = private if row == "reject_private" else refs
        for n in range(count if pool else 0):
            path, ref = pool[n % len(pool)]
            rng = random.Random(f"{seed}:{row}:{n}")
            yield Scenario(row, n, path, program_for(ref, row, rng))


@dataclass
class Cell:
    scenarios: int = 0
    silent: int = 0  # scenarios with at least one silently wrong book
    wrong: int = 0  # scenarios with at least one wrong book
    example: str | None = None  # the first silent one: recording, program, evidence


@dataclass
class Table:
    clients: tuple[str, ...]
    count: int
    seed: int
    recordings: tuple[str, ...]
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)

    def cell(self, row: str, client: str) -> Cell:
        return self.cells.setdefault((row, client), Cell())

    @property
    def rows(self) -> list[str]:
        return [r for r in ROWS if any((r, c) in self.cells for c in self.clients)]

    def markdown(self) -> str:
        head = "| fault | scenarios | " + " | ".join(f"{c} silent | {c} wrong" for c in self.clients) + " |"
        rule = "|---|---:|" + "---:|---:|" * len(self.clients)
        lines = [head, rule]
        totals = {c: [0, 0] for c in self.clients}
        total_n = 0
        for row in self.rows:
            first = self.cell(row, self.clients[0])
            total_n += first.scenarios
            parts = []
            for c in self.clients:
                cell = self.cell(row, c)
                totals[c][0] += cell.silent
                totals[c][1] += cell.wrong
                parts.append(f"{cell.silent} | {cell.wrong}")
            lines.append(f"| `{row}` | {first.scenarios} | " + " | ".join(parts) + " |")
        lines.append(f"| **all** | {total_n} | " + " | ".join(f"{s} | {w}" for s, w in totals.values()) + " |")
        return "\n".join(lines)


def build_table(recordings: Sequence[Path], clients: Sequence[str], *, count: int, seed: int,
                rows: Iterable[str] = ROWS, depth: int | None = 10,
                progress: Callable[[Scenario], None] | None = None) -> Table:
    unknown = [c for c in clients if c not in CLIENTS]
    if unknown:
        raise ValueError(f"unknown client {unknown[0]!r}; known: {', '.join(CLIENTS)}")
    table = Table(tuple(clients), count, seed, tuple(str(p) for p in recordings))
    for sc in scenarios(recordings, count, seed, rows):
        faulted = apply(sc.program, reference(sc.recording))
        for name in clients:
            factory = CLIENTS[name]
            run = run_core(faulted, lambda f, _factory=factory: _factory(f, depth), depth=depth,
                           raise_at_once=False, keep_lines=False, checker=Tally)
            tally = run.checker
            assert isinstance(tally, Tally)
            cell = table.cell(sc.row, name)
            cell.scenarios += 1
            cell.wrong += tally.wrong > 0
            if tally.silent:
                cell.silent += 1
                if cell.example is None:
                    cell.example = (f"{sc.recording.name} #{sc.n} ({describe(sc.program)}): {tally.first_silent}\n"
                                    f"  program: {sc.program.dumps()}")
        if progress is not None:
            progress(sc)
    return table


__all__ = ["CLIENTS", "FRAMES", "ROWS", "Cell", "Scenario", "Table", "build_table", "program_for", "scenarios"]
