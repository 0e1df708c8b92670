"""Parity of one recording: the native replay against the ccxt oracle, compared and classified.

The native side is ``harness.replay.replay_normalized`` (the real ``BackpackFeed`` on the replay
transport); the ccxt side is ``harness.parity.oracle`` fed the same frames and REST answers. Both run in
this process, each in its own event loop, offline. The result is a plain dict (``summarize``) so it can
cross a process pool and go straight into ``report.json``.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from backpack.protocol.normalized import DEFAULT_DEPTH

from .compare import Comparison, Difference, Stream, compare
from .deviations import Context, Deviation, alignments, classifier, load_registry
from .oracle import CCXT_TIME_RESOLUTION_US, OracleResult, oracle_records
from .provenance import Frames

PUBLIC_TYPES = ("trade", "book", "bbo", "ticker", "candle", "funding", "open_interest", "liquidation")
PRIVATE_TYPES = ("order", "fill", "position", "balance", "rfq")
GATED_TYPES = ("trade", "book")
"""The seed criterion: parity for trades and order books. Every other channel reports its rates; the GA
gate counts unexplained differences on every compared channel."""
NOT_COMPARED = {
    "error": "ccxt turns exchange error frames into exceptions for pending watchers; there is no record to compare",
    "book_resync": "ccxt never resynchronises a book (deviation 1); native resyncs bound its book runs instead",
}
EXAMPLES = 8
"""Differences kept per (channel, label) in the report; counts are always complete."""


@dataclass
class Parity:
    path: str
    comparison: Comparison
    native: list[dict[str, Any]]
    oracle: OracleResult
    frames: Frames
    entries: list[Deviation]
    seconds: dict[str, float]
    sha256: str


def _sha256(path: str) -> str:
    from harness.recording.library import sha256_file

    return sha256_file(Path(path))


def compare_streams(native: list[dict[str, Any]], oracle: OracleResult, frames: Frames | None,
                    entries: Sequence[Deviation], depth: int | None) -> Comparison:
    ctx = Context(frames=frames, oracle_errors={e["frame"]: e["error"] for e in oracle.errors})
    present = {r.get("type") for r in native} | {r.get("type") for r in oracle.records}
    types = [t for t in (*PUBLIC_TYPES, *PRIVATE_TYPES) if t in present]
    return compare(Stream("native", native), Stream("ccxt", oracle.records, CCXT_TIME_RESOLUTION_US), depth=depth,
                   types=types, alignments=alignments(entries), classify=classifier(entries, ctx))


def run_parity(path: str | os.PathLike[str], *, depth: int | None = DEFAULT_DEPTH,
               entries: Sequence[Deviation] | None = None) -> Parity:
    from harness.recording.reader import read_recording
    from harness.replay import replay_normalized

    path = os.fspath(path)
    rec = read_recording(path)
    started = time.monotonic()
    native = [json.loads(line) for line in replay_normalized(rec, depth=depth)]
    replayed = time.monotonic()
    oracle = oracle_records(rec, depth=depth)
    oracled = time.monotonic()
    frames = Frames(rec)
    frames.annotate(native)
    entries = list(entries) if entries is not None else load_registry()
    comparison = compare_streams(native, oracle, frames, entries, depth)
    done = time.monotonic()
    seconds = {"native": round(replayed - started, 3), "ccxt": round(oracled - replayed, 3),
               "compare": round(done - oracled, 3)}
    return Parity(path, comparison, native, oracle, frames, entries, seconds, _sha256(path))


# --- summaries (what report.json holds per recording) -------------------------------------------------


def _brief(rec: dict[str, Any] | None) -> dict[str, Any] | None:
    if rec is None:
        return None
    return {k: v for k, v in rec.items() if k not in ("exchange",)}


def _difference(d: Difference, frames: Frames) -> dict[str, Any]:
    frame = next((r.get("frame") for r in (d.a, d.b) if r is not None and r.get("frame") is not None), None)
    return {
        "kind": d.kind, "type": d.type, "symbol": d.symbol, "key": list(d.key), "explained": d.explained,
        "deviations": d.deviations, "explained_by": d.explained_by,
        "fields": [{"field": f.field, "native": f.a, "ccxt": f.b, "explained_by": f.explained_by} for f in d.fields],
        "native": _brief(d.a), "ccxt": _brief(d.b), "frame": frame, "frame_text": frames.text(frame),
        "t": frames.time_t(frame),
    }


def _label(d: Difference) -> str:
    if d.kind != "value":
        return f"{d.kind}:{d.explained_by or 'unexplained'}"
    return ",".join(f"{f.field}:{f.explained_by or 'unexplained'}" for f in d.fields)


class _ReceiptTimes:
    """Stands in for ``Frames`` where there is no recording (live): times from receipts, no frame text."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        receipts = [r["receipt"] for r in records if type(r.get("receipt")) is int and r["receipt"] > 0]
        self.start = min(receipts, default=0)
        self.events: list[Any] = []
        self._by_frame: dict[int, int] = {}

    def text(self, index: int | None) -> str:
        return ""

    def time_t(self, index: int | None) -> int | None:
        return None if index is None else index


def _summary_of(comparison: Comparison, native: list[dict[str, Any]], other: list[dict[str, Any]], *, name: str
                ) -> dict[str, Any]:
    """The summary of a comparison that has no recording behind it (live shadow)."""
    times = _ReceiptTimes(native + other)
    for r in native + other:  # live records have no frame: their time is the receipt, as ns from the start
        if type(r.get("receipt")) is int and r.get("frame") is None:
            r["frame"] = (r["receipt"] - times.start) * 1000
    oracle = OracleResult(records=other)
    p = Parity(name, comparison, native, oracle, times, [], {}, "")  # type: ignore[arg-type]
    return summarize(p, header=None)


def summarize(p: Parity, header: Any = "read") -> dict[str, Any]:
    from harness.recording.reader import read_header

    if header == "read":
        header = read_header(p.path)
    channels: dict[str, Any] = {}
    by_entry: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    timeline: list[dict[str, Any]] = []
    first_divergence: dict[str, Any] | None = None
    for kind, ch in p.comparison.channels.items():
        labels: Counter[str] = Counter()
        fields: dict[str, dict[str, int]] = {}
        kept: Counter[str] = Counter()
        for d in ch.differences:
            label = _label(d)
            labels[label] += 1
            for ident in d.deviations:
                by_entry[ident] += 1
            for f in d.fields:
                stat = fields.setdefault(f.field, {"differing": 0, "explained": 0})
                stat["differing"] += 1
                stat["explained"] += bool(f.explained_by)
            if kept[label] < EXAMPLES or (not d.explained and kept[label] < 4 * EXAMPLES):
                kept[label] += 1
                examples.append(_difference(d, p.frames))
        channels[kind] = {
            "type": kind, "group": "private" if kind in PRIVATE_TYPES else "public", "gated": kind in GATED_TYPES,
            "native_records": ch.a_records, "ccxt_records": ch.b_records, "paired": ch.paired,
            "matched": ch.matched, "differences": len(ch.differences), "explained": ch.explained,
            "unexplained": ch.unexplained,
            "only_native": sum(1 for d in ch.differences if d.kind == "only_a"),
            "only_ccxt": sum(1 for d in ch.differences if d.kind == "only_b"),
            "not_comparable_native": ch.not_comparable_a, "not_comparable_ccxt": ch.not_comparable_b,
            "match_rate": ch.match_rate, "parity_rate": ch.parity_rate, "fields": fields,
            "labels": dict(labels.most_common()),
            "alignment": None if ch.alignment is None else {
                "native_key": list(ch.alignment.a_key), "ccxt_key": list(ch.alignment.b_key),
                "reason": ch.alignment.reason, "deviation": ch.alignment.source},
        }
    for d in p.comparison.differences:
        frame = next((r.get("frame") for r in (d.a, d.b) if r is not None and r.get("frame") is not None), None)
        t = p.frames.time_t(frame)
        if d.type == "book" and d.kind == "value" and first_divergence is None:
            first_divergence = _difference(d, p.frames)
        timeline.append({"t": t, "type": d.type, "kind": d.kind, "explained": d.explained,
                         "deviations": d.deviations, "symbol": d.symbol})
    if first_divergence is None:
        first = next((d for d in p.comparison.differences if d.kind == "value"), None)
        first_divergence = None if first is None else _difference(first, p.frames)
    markers = _markers(p)
    book_context = _book_context(p, first_divergence) if first_divergence else None
    not_compared = Counter(r.get("type") for r in p.native if r.get("type") in NOT_COMPARED)
    span = max([*(e.t for e in p.frames.events), *(t["t"] or 0 for t in timeline)], default=0)
    return {
        "recording": os.path.basename(p.path), "path": p.path, "sha256": p.sha256,
        "header": None if header is None else {
            "created_at": header.created_at, "symbols": list(header.symbols), "channels": list(header.channels),
            "versions": dict(header.versions)},
        "span_ns": span, "frames": p.oracle.frames or len(p.native), "native_lines": len(p.native), "ccxt_records": len(p.oracle.records),
        "seconds": p.seconds, "channels": channels, "deviations": dict(by_entry),
        "unexplained": p.comparison.unexplained, "examples": examples,
        "timeline": _thin(timeline), "markers": markers, "first_divergence": first_divergence,
        "book_context": book_context,
        "not_compared": {k: {"native_records": v, "reason": NOT_COMPARED[k]} for k, v in not_compared.items()},
        "ccxt": {"errors": len(p.oracle.errors), "error_kinds": dict(Counter(e["error"] for e in p.oracle.errors)),
                 "snapshot_requests": len(p.oracle.snapshots), "resets": len(p.oracle.resets),
                 "gaps_applied": _gaps(p)},
        "native": {"resyncs": [r for r in p.native if r.get("type") == "book_resync"][:50]},
    }


def _gaps(p: Parity) -> list[dict[str, Any]]:
    """Each sequence gap ccxt applied without resyncing (first book record that carries it)."""
    seen: set[tuple[str, int]] = set()
    out: list[dict[str, Any]] = []
    for r in p.oracle.records:
        gap = r.get("unchecked_gap") if r.get("type") == "book" else None
        if gap and (r.get("symbol"), gap["expected"]) not in seen:
            seen.add((r.get("symbol"), gap["expected"]))
            out.append({"symbol": r.get("symbol"), **gap, "frame": r.get("frame"), "t": p.frames.time_t(r.get("frame"))})
    return out


def _markers(p: Parity) -> list[dict[str, Any]]:
    """Timeline context: native resyncs, ccxt gaps, reconnects."""
    from harness.recording.format import WsClose, WsOpen

    out: list[dict[str, Any]] = []
    for r in p.native:
        if r.get("type") == "book_resync":
            out.append({"t": p.frames.time_t(r.get("frame")), "what": "native resync", "symbol": r.get("symbol"),
                        "detail": f"{r.get('reason')} expected {r.get('expected')} got {r.get('got')}"})
    for g in _gaps(p):
        out.append({"t": g["t"], "what": "ccxt applied a gap", "symbol": g["symbol"],
                    "detail": f"expected U={g['expected']} got U={g['got']} (u={g['sequence']})"})
    for e in p.frames.events:
        if isinstance(e, WsOpen):
            out.append({"t": e.t, "what": "connect", "symbol": None, "detail": e.conn})
        elif isinstance(e, WsClose) and e.via == "recv":
            out.append({"t": e.t, "what": "server closed", "symbol": None, "detail": f"{e.code} {e.reason}".strip()})
    out.sort(key=lambda m: m["t"] or 0)
    return out[:200]


def _thin(timeline: list[dict[str, Any]], limit: int = 4000) -> list[dict[str, Any]]:
    """Keep every unexplained point and an even sample of the rest, so a chart stays drawable."""
    if len(timeline) <= limit:
        return timeline
    bad = [x for x in timeline if not x["explained"]][: limit // 2]
    good = [x for x in timeline if x["explained"]]
    step = max(1, len(good) // (limit - len(bad)))
    return sorted(bad + good[::step], key=lambda x: x["t"] or 0)


def _book_context(p: Parity, first: dict[str, Any]) -> dict[str, Any] | None:
    """Both sides' book at the first divergence (and a few states either side), for the depth chart."""
    if first.get("type") != "book":
        return None
    symbol, seq = first["key"][0], first["key"][1]

    def states(records: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
        out: dict[int, dict[str, Any]] = {}
        for r in records:
            if r.get("type") == "book" and r.get("symbol") == symbol and type(r.get("sequence")) is int:
                out[r["sequence"]] = {"bids": r.get("bids"), "asks": r.get("asks"), "kind": r.get("kind")}
        return out

    native, ccxt = states(p.native), states(p.oracle.records)
    around = sorted(s for s in set(native) | set(ccxt) if abs(s - seq) <= 50)
    nearest = [s for s in around if s <= seq][-3:] + [s for s in around if s > seq][:3]
    return {"symbol": symbol, "sequence": seq, "native": native.get(seq), "ccxt": ccxt.get(seq),
            "around": [{"sequence": s, "native": native.get(s), "ccxt": ccxt.get(s)} for s in nearest]}


def analyze(path: str, depth: int | None = DEFAULT_DEPTH, registry: str | None = None) -> dict[str, Any]:
    """One recording end to end, as a plain dict (the process-pool unit of work)."""
    entries = load_registry(Path(registry)) if registry else None
    return summarize(run_parity(path, depth=depth, entries=entries))


__all__ = ["GATED_TYPES", "NOT_COMPARED", "PRIVATE_TYPES", "PUBLIC_TYPES", "Parity", "analyze", "compare_streams",
           "run_parity", "summarize"]
