"""Recording slices for the cases: the first N frames of a bundled recording, optionally rewritten.

A slice is deterministic: the same file, the same prefix, the same rewrite. Rewrites change the shape of
frames the way the exchange may send them (integers as strings, an empty bookTicker side, aggregated
depth, fields nobody knows) and keep what they mean, so the reference books stay those of the clean
slice's deltas and snapshots (``harness.scenarios.oracle.Reference`` of the rewritten slice).
"""

from __future__ import annotations

import dataclasses
import functools
import json
from pathlib import Path
from typing import Any

from harness.recording.format import WsRecv
from harness.recording.reader import ReadStats, Recording, RecordingReader
from harness.scenarios.sockets import prefix

RECORDINGS_DIR = Path(__file__).resolve().parents[2] / "recordings"
_INT_FIELDS = ("E", "T", "U", "u", "t")
NULL_BBO_EVERY = 4  # every 4th bookTicker frame has an empty ask side


MAX_FRAMES = 20_000  # the longest prefix a case may use: only that much of a recording is read


@functools.lru_cache(maxsize=4)
def _recording(name: str) -> Recording:
    """The first ``MAX_FRAMES`` received frames of a bundled recording (streamed: the file is 114k frames)."""
    reader = RecordingReader(RECORDINGS_DIR / f"{name}.jsonl.zst")
    events = []
    seen = 0
    for event in reader.events():
        events.append(event)
        if isinstance(event, WsRecv):
            seen += 1
            if seen >= MAX_FRAMES:
                break
    return Recording(reader.header, events, None, ReadStats())


def _frame(event: WsRecv) -> dict[str, Any] | None:
    try:
        doc = json.loads(event.data)
    except (ValueError, TypeError):
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("data"), dict) else None


def _dump(doc: dict[str, Any]) -> str:
    return json.dumps(doc, separators=(",", ":"))


def _ints_as_strings(doc: dict[str, Any], _state: dict[str, Any]) -> dict[str, Any] | None:
    data = doc["data"]
    for k in _INT_FIELDS:
        if type(data.get(k)) is int:
            data[k] = str(data[k])
    return doc


def _null_bbo_sides(doc: dict[str, Any], state: dict[str, Any]) -> dict[str, Any] | None:
    if str(doc.get("stream", "")).startswith("bookTicker."):
        state["n"] = state.get("n", 0) + 1
        if state["n"] % NULL_BBO_EVERY == 0:
            doc["data"]["a"] = None
            doc["data"]["A"] = None
    return doc


def _unknown_fields(doc: dict[str, Any], _state: dict[str, Any]) -> dict[str, Any] | None:
    doc["data"]["zz"] = "an unknown field"
    doc["extra"] = {"nested": [1, 2]}
    return doc


def _aggregated_depth(doc: dict[str, Any], state: dict[str, Any]) -> dict[str, Any] | None:
    """Realtime depth -> ``depth.200ms.<s>``: every two consecutive deltas of a symbol become one (U of the
    first, u of the second, the second's levels over the first's), as an aggregated stream sends them."""
    stream = str(doc.get("stream", ""))
    if not stream.startswith("depth.") or stream.count(".") != 1:
        return doc
    symbol = stream.split(".", 1)[1]
    held = state.pop(symbol, None)
    if held is None:
        state[symbol] = doc
        return None
    first, second = held["data"], doc["data"]
    merged = dict(second)
    merged["U"] = first.get("U")
    for side in ("a", "b"):
        levels = {str(p): s for p, s in first.get(side) or []}
        levels.update({str(p): s for p, s in second.get(side) or []})
        merged[side] = [[p, s] for p, s in levels.items()]
    return {"stream": f"depth.200ms.{symbol}", "data": merged}


TRANSFORMS = {"ints_as_strings": _ints_as_strings, "null_bbo_sides": _null_bbo_sides,
              "unknown_fields": _unknown_fields, "aggregated_depth": _aggregated_depth}


def rewrite(recording: Recording, transforms: tuple[str, ...]) -> Recording:
    if not transforms:
        return recording
    events = []
    states: dict[str, dict[str, Any]] = {t: {} for t in transforms}
    for event in recording.events:
        if not isinstance(event, WsRecv):
            events.append(event)
            continue
        doc = _frame(event)
        if doc is None:
            events.append(event)
            continue
        for name in transforms:
            doc = TRANSFORMS[name](doc, states[name])
            if doc is None:
                break
        if doc is not None:
            events.append(dataclasses.replace(event, data=_dump(doc)))
    return Recording(recording.header, events, None, ReadStats())


@functools.lru_cache(maxsize=32)
def slice_of(name: str, frames: int, transforms: tuple[str, ...] = ()) -> Recording:
    """The first ``frames`` received frames of ``recordings/<name>.jsonl.zst`` (with what came before and
    between them), rewritten by ``transforms`` in order."""
    return rewrite(prefix(_recording(name), frames), transforms)


__all__ = ["RECORDINGS_DIR", "TRANSFORMS", "rewrite", "slice_of"]
