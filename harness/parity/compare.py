"""Compare two normalized (schema v1) streams, channel by channel and field by field.

Generic on purpose: side ``a`` and side ``b`` are any two streams of records (native vs the ccxt oracle,
native vs a golden file, revision A vs revision B, two live feeds); nothing here knows about ccxt. What
a comparison of a particular pair knows (known deviations, which frame a record came from) is added by
the caller: ``Alignment`` overrides how records of a type are paired, and ``classify`` (see
``harness.parity.deviations``) labels the differences afterwards.

How records are paired:

* ``book``: states, not events. Both sides' book records are reduced to the last state at each
  ``(symbol, sequence)`` (ccxt coalesces and re-applies ``u == nonce``; event counts differ by design),
  and states at the same ``u`` are compared on their top ``depth`` levels per side. A state only one side
  has is a *hole* (a difference) when it lies inside a synchronised run of the other side, and *not
  comparable* otherwise (the other side had not synced yet, or was resyncing). A run is a stretch of
  states between a ``snapshot`` and the next ``snapshot`` or ``book_resync`` of that symbol.
* every other type: by a key (``KEYS``, or an ``Alignment``), then in order of occurrence among records
  with an equal key. Time fields are compared, and used in keys, at the coarser resolution of the two
  sides (``Stream.resolution_us``: ccxt keeps milliseconds, the native feed microseconds).

Decimal fields are compared as numbers (``"86700.0" == "86700"``), everything else exactly.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from backpack.protocol.normalized import DEFAULT_DEPTH, SCHEMA

KEYS: dict[str, tuple[str, ...]] = {
    "trade": ("symbol", "id"),
    "bbo": ("symbol", "sequence", "timestamp"),
    "ticker": ("symbol", "timestamp"),
    "candle": ("symbol", "interval", "start"),
    "funding": ("symbol", "timestamp"),
    "open_interest": ("symbol", "timestamp"),
    "liquidation": ("symbol", "timestamp"),
    "order": ("symbol", "order_id"),
    "fill": ("symbol", "order_id", "trade_id"),
    "position": ("symbol", "timestamp"),
    "balance": ("asset", "timestamp"),
    "rfq": ("symbol", "rfq_id", "quote_id", "event"),
    "error": ("code",),
    "book_resync": ("symbol", "reason"),
}
"""How records of a type are paired by default: identity where the exchange gives one, else exchange time."""

EXTRA_FIELDS: dict[str, tuple[str, ...]] = {"order": ("trigger_price", "trigger_quantity")}
"""Non-schema fields worth comparing where both sides fill them (a trigger order's size lives here)."""

TIME_FIELDS = frozenset({"timestamp", "start", "stop", "next_funding_time", "submit_time", "expiry_time"})
BOOK_FIELDS = ("bids", "asks")
IGNORED = frozenset({"type", "exchange", "receipt", "frame"})


def compared_fields(kind: str) -> tuple[str, ...]:
    """The fields compared for a type: its schema-v1 fields, the exchange time and a few extras."""
    if kind == "book":
        return BOOK_FIELDS
    fields = ("symbol", "timestamp", *SCHEMA.get(kind, ()), *EXTRA_FIELDS.get(kind, ()))
    return tuple(dict.fromkeys(f for f in fields if f not in IGNORED))


@dataclass
class Stream:
    """One side: its records in order, a name for reports, and the resolution of its timestamps."""

    name: str
    records: list[dict[str, Any]]
    resolution_us: int = 1

    @classmethod
    def from_lines(cls, name: str, lines: Iterable[str], resolution_us: int = 1) -> Stream:
        return cls(name, [json.loads(line) for line in lines if line.strip()], resolution_us)


@dataclass(frozen=True)
class Alignment:
    """Pair ``kind`` records by ``a_key`` on side a and ``b_key`` on side b (same length) instead of KEYS."""

    kind: str
    a_key: tuple[str, ...]
    b_key: tuple[str, ...]
    reason: str = ""
    source: str | None = None  # who asked for it (a deviation id), for the report


@dataclass
class FieldDiff:
    field: str
    a: Any
    b: Any
    explained_by: str | None = None


@dataclass
class Difference:
    """One record (or book state) that differs: ``value`` (paired, fields differ), ``only_a``, ``only_b``."""

    kind: str  # "value" | "only_a" | "only_b"
    type: str
    symbol: str | None
    key: tuple[Any, ...]
    a: dict[str, Any] | None
    b: dict[str, Any] | None
    fields: list[FieldDiff] = field(default_factory=list)
    explained_by: str | None = None  # for only_a / only_b

    @property
    def explained(self) -> bool:
        if self.kind == "value":
            return all(f.explained_by for f in self.fields)
        return self.explained_by is not None

    @property
    def deviations(self) -> list[str]:
        ids = [f.explained_by for f in self.fields if f.explained_by] if self.kind == "value" else [self.explained_by]
        return list(dict.fromkeys(i for i in ids if i))

    def sort_key(self) -> tuple[int, int]:
        rec = self.a or self.b or {}
        return (_int(rec.get("receipt")) or 0, _int(rec.get("sequence")) or 0)


@dataclass
class ChannelResult:
    type: str
    a_records: int = 0
    b_records: int = 0
    paired: int = 0  # records/states present on both sides and compared
    matched: int = 0  # paired and equal in every compared field
    not_comparable_a: int = 0  # only in a, but b could not have had it (books: b not synchronised there)
    not_comparable_b: int = 0
    differences: list[Difference] = field(default_factory=list)
    alignment: Alignment | None = None

    @property
    def unexplained(self) -> int:
        return sum(1 for d in self.differences if not d.explained)

    @property
    def explained(self) -> int:
        return sum(1 for d in self.differences if d.explained)

    @property
    def match_rate(self) -> float | None:
        """Share of paired records equal in every field (before any deviation is applied)."""
        return None if not self.paired else self.matched / self.paired

    @property
    def parity_rate(self) -> float | None:
        """Share of compared items (paired + one-sided differences) that match or are explained."""
        total = self.paired + sum(1 for d in self.differences if d.kind != "value")
        return None if not total else (total - self.unexplained) / total


@dataclass
class Comparison:
    a: str
    b: str
    depth: int | None
    channels: dict[str, ChannelResult]

    @property
    def differences(self) -> list[Difference]:
        out = [d for c in self.channels.values() for d in c.differences]
        out.sort(key=Difference.sort_key)
        return out

    @property
    def unexplained(self) -> int:
        return sum(c.unexplained for c in self.channels.values())


# --- values ------------------------------------------------------------------------------------------


def _int(value: Any) -> int | None:
    return value if type(value) is int else None


def _dec(value: Any) -> Decimal | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


def _time(value: Any, resolution: int) -> Any:
    return value // resolution if type(value) is int and resolution > 1 else value


def equal(name: str, a: Any, b: Any, resolution: int = 1) -> bool:
    """One field's values equal? Times at ``resolution`` µs, decimals as numbers, levels level by level."""
    if name in TIME_FIELDS:
        return _time(a, resolution) == _time(b, resolution)
    if name in BOOK_FIELDS:
        return _levels_equal(a, b)
    if a == b:
        return True
    if isinstance(a, str) and isinstance(b, str):
        da, db = _dec(a), _dec(b)
        return da is not None and db is not None and da == db
    return False


def _levels_equal(a: Any, b: Any) -> bool:
    a, b = a or [], b or []
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if not (isinstance(x, list | tuple) and isinstance(y, list | tuple) and len(x) == len(y) == 2):
            return False
        if _dec(x[0]) != _dec(y[0]) or _dec(x[1]) != _dec(y[1]) or _dec(x[0]) is None:
            return False
    return True


# --- the comparison ----------------------------------------------------------------------------------


def compare(a: Stream, b: Stream, *, depth: int | None = DEFAULT_DEPTH, types: Sequence[str] | None = None,
            alignments: Sequence[Alignment] = (), classify: Callable[[Difference], None] | None = None,
            book_holes: bool = True) -> Comparison:
    """Compare every type present on either side (or ``types``); ``classify`` may label each difference.

    ``book_holes=False`` counts a book state missing inside the other side's run as not comparable instead
    of a difference: for a side that delivers coalesced states by design (a live ccxt feed returns from
    ``watch_order_book`` once per batch of deltas).
    """
    resolution = max(a.resolution_us, b.resolution_us)
    by_type_a: dict[str, list[dict[str, Any]]] = defaultdict(list)
    by_type_b: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in a.records:
        by_type_a[str(rec.get("type"))].append(rec)
    for rec in b.records:
        by_type_b[str(rec.get("type"))].append(rec)
    wanted = list(types) if types is not None else sorted(set(by_type_a) | set(by_type_b))
    overrides = {al.kind: al for al in alignments}
    channels: dict[str, ChannelResult] = {}
    for kind in wanted:
        if kind == "book":
            result = _compare_books(by_type_a, by_type_b, depth, book_holes)
        else:
            result = _compare_keyed(kind, by_type_a.get(kind, []), by_type_b.get(kind, []), resolution,
                                    overrides.get(kind))
        if classify is not None:
            for diff in result.differences:
                classify(diff)
        channels[kind] = result
    return Comparison(a.name, b.name, depth, channels)


def _key(rec: Mapping[str, Any], fields: Sequence[str], resolution: int) -> tuple[Any, ...]:
    return tuple(_time(rec.get(f), resolution) if f in TIME_FIELDS else rec.get(f) for f in fields)


def _compare_keyed(kind: str, a: list[dict[str, Any]], b: list[dict[str, Any]], resolution: int,
                   alignment: Alignment | None) -> ChannelResult:
    result = ChannelResult(kind, len(a), len(b), alignment=alignment)
    a_fields = alignment.a_key if alignment else KEYS.get(kind, ("symbol", "timestamp"))
    b_fields = alignment.b_key if alignment else a_fields
    queues: dict[tuple[Any, ...], list[dict[str, Any]]] = defaultdict(list)
    for rec in b:
        queues[_key(rec, b_fields, resolution)].append(rec)
    taken: dict[tuple[Any, ...], int] = defaultdict(int)
    fields = compared_fields(kind)
    for rec in a:
        key = _key(rec, a_fields, resolution)
        queue = queues.get(key)
        i = taken[key]
        if not queue or i >= len(queue):
            result.differences.append(Difference("only_a", kind, rec.get("symbol"), key, rec, None))
            continue
        taken[key] = i + 1
        other = queue[i]
        result.paired += 1
        diffs = [FieldDiff(f, rec.get(f), other.get(f)) for f in fields
                 if not equal(f, rec.get(f), other.get(f), resolution)]
        if diffs:
            result.differences.append(Difference("value", kind, rec.get("symbol"), key, rec, other, diffs))
        else:
            result.matched += 1
    for key, queue in queues.items():
        for rec in queue[taken.get(key, 0):]:
            result.differences.append(Difference("only_b", kind, rec.get("symbol"), key, None, rec))
    return result


@dataclass
class _Run:
    first: int
    last: int


def _book_states(records: Iterable[dict[str, Any]]) -> dict[str, tuple[dict[int, dict[str, Any]], list[_Run]]]:
    """Per symbol: the last state at each sequence, and the synchronised runs (see the module docstring)."""
    out: dict[str, tuple[dict[int, dict[str, Any]], list[_Run]]] = {}
    for rec in records:
        symbol = rec.get("symbol")
        if not isinstance(symbol, str):
            continue
        states, runs = out.setdefault(symbol, ({}, []))
        if rec.get("type") == "book_resync":
            runs.append(_Run(-1, -1))  # closed: the next state opens a new run
            continue
        seq = _int(rec.get("sequence"))
        if seq is None:
            continue
        states[seq] = rec
        if rec.get("kind") == "snapshot" or not runs or runs[-1].first < 0:
            runs.append(_Run(seq, seq))
        else:
            runs[-1].last = max(runs[-1].last, seq)
    for _symbol, (_states, runs) in out.items():
        runs[:] = [r for r in runs if r.first >= 0]
    return out


def _inside(runs: list[_Run], seq: int) -> bool:
    return any(r.first <= seq <= r.last for r in runs)


def _compare_books(by_type_a: Mapping[str, list[dict[str, Any]]], by_type_b: Mapping[str, list[dict[str, Any]]],
                   depth: int | None, holes: bool = True) -> ChannelResult:
    a_records = [*by_type_a.get("book", []), *by_type_a.get("book_resync", [])]
    b_records = [*by_type_b.get("book", []), *by_type_b.get("book_resync", [])]
    a_records.sort(key=lambda r: (_int(r.get("receipt")) or 0))
    b_records.sort(key=lambda r: (_int(r.get("receipt")) or 0))
    result = ChannelResult("book", len(by_type_a.get("book", [])), len(by_type_b.get("book", [])))
    a_states, b_states = _book_states(a_records), _book_states(b_records)

    def cut(levels: Any) -> Any:
        return levels[:depth] if isinstance(levels, list) and depth is not None else levels

    for symbol in sorted(set(a_states) | set(b_states)):
        sa, ra = a_states.get(symbol, ({}, []))
        sb, rb = b_states.get(symbol, ({}, []))
        for seq in sorted(set(sa) | set(sb)):
            x, y = sa.get(seq), sb.get(seq)
            if x is not None and y is not None:
                result.paired += 1
                diffs = [FieldDiff(f, cut(x.get(f)), cut(y.get(f))) for f in BOOK_FIELDS
                         if not _levels_equal(cut(x.get(f)), cut(y.get(f)))]
                if diffs:
                    result.differences.append(Difference("value", "book", symbol, (symbol, seq), x, y, diffs))
                else:
                    result.matched += 1
            elif x is not None:
                if holes and _inside(rb, seq):
                    result.differences.append(Difference("only_a", "book", symbol, (symbol, seq), x, None))
                else:
                    result.not_comparable_a += 1
            elif y is not None:
                if holes and _inside(ra, seq):
                    result.differences.append(Difference("only_b", "book", symbol, (symbol, seq), None, y))
                else:
                    result.not_comparable_b += 1
    return result


__all__ = [
    "BOOK_FIELDS", "EXTRA_FIELDS", "KEYS", "TIME_FIELDS", "Alignment", "ChannelResult", "Comparison", "Difference",
    "FieldDiff", "Stream", "compare", "compared_fields", "equal",
]
