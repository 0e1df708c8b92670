"""Hypothesis strategies for fault programs: bounded in size, shrinking to the fewest, simplest edits.

A program is drawn as a window of a recording (its start, a fixed number of frames, a stretch that
spreads them over ``span_s`` of virtual time) plus a list of edits. Hypothesis shrinks a list by
deleting elements and integers towards their lower bound, so a failing program shrinks to the fewest
edits, each at its earliest frame with its smallest parameters, over the earliest window: what
``describe`` prints is then usually the one edit that matters.

``PROFILES`` holds how many scenarios each profile runs per level; ``profile()`` reads
``BACKPACK_SCENARIOS_PROFILE`` (``ci``, ``dev`` or ``nightly``), else ``HYPOTHESIS_PROFILE``, else ``ci``
under ``CI`` and ``dev`` otherwise.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from hypothesis import strategies as st

from harness.scenarios.oracle import Reference
from harness.scenarios.program import (
    ANSWERS,
    CORRUPTIONS,
    MALFORMED,
    Edit,
    Program,
    Window,
)

ERROR_CODES = (4002, 4006, 4008, 4010)


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    core: int  # core scenarios, summed over the recording library
    feed: int  # full-feed scenarios
    machine: int  # state machine runs
    machine_steps: int
    determinism: int  # programs run twice for invariant (f), per level


PROFILES = {
    "dev": Profile("dev", core=800, feed=40, machine=30, machine_steps=20, determinism=10),
    "ci": Profile("ci", core=10_000, feed=200, machine=200, machine_steps=30, determinism=40),
    "nightly": Profile("nightly", core=100_000, feed=2_000, machine=2_000, machine_steps=50, determinism=400),
}


def profile() -> Profile:
    name = os.environ.get("BACKPACK_SCENARIOS_PROFILE") or os.environ.get("HYPOTHESIS_PROFILE") or (
        "ci" if os.environ.get("CI") else "dev")
    if name not in PROFILES:
        raise ValueError(f"BACKPACK_SCENARIOS_PROFILE must be one of {', '.join(PROFILES)}, got {name!r}")
    return PROFILES[name]


def stretch_for(reference: Reference, start: int, frames: int, span_s: float) -> int:
    """The stretch that spreads ``frames`` frames from event ``start`` over about ``span_s`` seconds."""
    indices = [f.index for f in reference.frames_after(start, max(1, frames))]
    if not indices:
        return 1
    span_ns = reference.events[indices[-1]].t - reference.events[indices[0]].t
    return max(1, min(100_000, round(span_s * 1e9 / max(span_ns, 1))))


@st.composite
def windows(draw: st.DrawFn, reference: Reference, frames: int = 200, span_s: float = 10.0,
            region: tuple[float, float] = (0.0, 1.0)) -> Window:
    """A window of ``frames`` received frames starting in ``region`` (fractions of the recording)."""
    infos = reference.frames
    if len(infos) <= frames:
        start = infos[0].index if infos else 0
        return Window(start, None, stretch_for(reference, start, frames, span_s))
    lo = int(region[0] * (len(infos) - frames))
    hi = max(lo, int(region[1] * (len(infos) - frames)))
    k = draw(st.integers(lo, hi))
    start = infos[k].index
    stop = infos[k + frames - 1].index + 1
    return Window(start, stop, stretch_for(reference, start, frames, span_s))


def _ms(lo: int, hi: int) -> st.SearchStrategy[float]:
    return st.integers(lo, hi).map(lambda ms: ms / 1000)


@functools.lru_cache(maxsize=64)
def edits(n_frames: int, symbols: tuple[str, ...], private: bool) -> st.SearchStrategy[Edit]:
    """One edit over a window of ``n_frames`` frames (kinds weighted by one_of's order: earlier shrinks first)."""
    at = st.integers(0, max(0, n_frames - 1))

    def make(kind: str, **params: st.SearchStrategy) -> st.SearchStrategy[Edit]:
        return st.fixed_dictionaries(params).map(lambda p: Edit.make(kind, **p))

    choices = [
        make("drop", at=at, count=st.integers(1, 3)),
        make("duplicate", at=at, count=st.integers(1, 2)),
        make("reorder", at=at, by=st.integers(1, 8)),
        make("hold", at=at, seconds=_ms(1, 3000)),
        make("corrupt", at=at, how=st.sampled_from(CORRUPTIONS)),
        make("truncate", at=at, keep=st.integers(0, 200)),
        make("error_frame", at=at, code=st.sampled_from(ERROR_CODES)),
        make("cut", at=at),
        make("silence", at=at, seconds=st.sampled_from((1.0, 30.0, 140.0, 300.0))),
        make("unanswered_ping", at=at),
        make("snapshot", nth=st.integers(1, 4), answer=st.sampled_from(ANSWERS[1:]),
             symbol=st.one_of(st.none(), st.sampled_from(symbols)) if symbols else st.none(),
             by=st.integers(1, 40), status=st.sampled_from((500, 502, 503)), how=st.sampled_from(MALFORMED)),
    ]
    if private:
        choices.append(make("reject_private", count=st.integers(1, 5)))
    return st.one_of(choices)


@functools.lru_cache(maxsize=64)
def _edit_lists(n: int, symbols: tuple[str, ...], private: bool, max_edits: int) -> st.SearchStrategy[list[Edit]]:
    return st.lists(edits(n, symbols, private), min_size=1, max_size=max_edits)


@st.composite
def programs(draw: st.DrawFn, reference: Reference, *, frames: int = 200, span_s: float = 10.0,
             max_edits: int = 6, region: tuple[float, float] = (0.0, 1.0)) -> Program:
    window = draw(windows(reference, frames, span_s, region))
    n = len(reference.frames_between(window.start, window.stop or len(reference.events)))
    chosen = draw(_edit_lists(n, tuple(sorted(reference.books)), reference.has_private, max_edits))
    return Program(tuple(chosen), window)


__all__ = ["PROFILES", "Profile", "edits", "profile", "programs", "stretch_for", "windows"]
