"""The deviation registry: known ways the other implementation differs from the exchange, as data.

Each entry is one YAML file in ``harness/parity/registry/`` (the format is in ``docs/parity.md``). An entry
explains a difference only when its rule's conditions hold *on that difference*: the values of both
sides and the recorded frame both records came from. "ccxt reads the trade time from E" explains a
``timestamp`` difference only where ccxt's value is the frame's ``E`` (at ms) and the native value is its
``T``; a native bug that produced some third value stays unexplained. That is the point of evidence-
bound matchers: a registry can never hide a native regression.

Loading validates every entry (an entry without evidence -- a frame and the exchange's documented meaning
-- is refused), so adding one is a reviewed change of data, not of code.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from .compare import Alignment, Difference, FieldDiff, equal
from .provenance import Frames

REGISTRY = Path(__file__).resolve().parent / "registry"
KINDS = ("value", "only_a", "only_b")
WHEN_KEYS = frozenset({"a", "b", "frame", "a_record", "b_record", "oracle_error", "same_double", "frame_repeats"})


class RegistryError(ValueError):
    """An entry that breaks the registry format; the message names the file and the rule."""


@dataclass(frozen=True)
class Rule:
    type: str
    kind: str
    fields: tuple[str, ...]
    when: Mapping[str, Any]


@dataclass(frozen=True)
class Deviation:
    id: str
    title: str
    description: str
    evidence: Mapping[str, Any]
    rules: tuple[Rule, ...]
    alignments: tuple[Alignment, ...] = ()
    number: int | None = None  # the number in ../shared/ccxt-oracle.md, where the entry comes from there
    scope: str = "stream"  # "stream": explains stream differences; anything else is documented only
    path: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "number": self.number, "title": self.title, "description": self.description,
                "evidence": dict(self.evidence), "scope": self.scope,
                "explains": [{"type": r.type, "kind": r.kind, "fields": list(r.fields)} for r in self.rules],
                "align": [{"type": a.kind, "a_key": list(a.a_key), "b_key": list(a.b_key), "reason": a.reason}
                          for a in self.alignments]}


@dataclass
class Context:
    """What conditions may look at besides the two records."""

    frames: Frames | None = None
    oracle_errors: Mapping[int, str] = field(default_factory=dict)  # frame index -> exception class


# --- loading -------------------------------------------------------------------------------------------


def _need(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    value = obj.get(key)
    if not isinstance(value, kind) or (isinstance(value, str) and not value.strip()):
        raise RegistryError(f"{where}: '{key}' is required ({getattr(kind, '__name__', kind)})")
    return value


def parse_entry(doc: Any, where: str = "entry") -> Deviation:
    if not isinstance(doc, dict):
        raise RegistryError(f"{where}: an entry must be a mapping")
    ident = _need(doc, "id", str, where)
    evidence = _need(doc, "evidence", dict, where)
    frame = _need(evidence, "frame", str, f"{where} evidence")
    try:
        json.loads(frame)
    except ValueError:
        raise RegistryError(f"{where}: evidence.frame must be the exact JSON text of a frame") from None
    _need(evidence, "documented", str, f"{where} evidence")
    _need(evidence, "source", str, f"{where} evidence")
    scope = doc.get("scope", "stream")
    rules: list[Rule] = []
    for i, raw in enumerate(doc.get("explains") or ()):
        w = f"{where} explains[{i}]"
        if not isinstance(raw, dict):
            raise RegistryError(f"{w}: must be a mapping")
        kind = raw.get("kind", "value")
        if kind not in KINDS:
            raise RegistryError(f"{w}: kind must be one of {', '.join(KINDS)}")
        fields = tuple(raw.get("fields") or ())
        if kind == "value" and not fields:
            raise RegistryError(f"{w}: a value rule names the fields it explains")
        when = raw.get("when") or {}
        if not isinstance(when, dict) or set(when) - WHEN_KEYS:
            raise RegistryError(f"{w}: 'when' takes {', '.join(sorted(WHEN_KEYS))}")
        types = raw.get("type")
        for kind_name in types if isinstance(types, list) else [_need(raw, "type", str, w)]:
            rules.append(Rule(str(kind_name), kind, fields, when))
    if scope == "stream" and not rules:
        raise RegistryError(f"{where}: a stream entry needs at least one rule in 'explains'")
    alignments = []
    for i, raw in enumerate(doc.get("align") or ()):
        w = f"{where} align[{i}]"
        a_key, b_key = tuple(raw.get("a_key") or ()), tuple(raw.get("b_key") or ())
        if not a_key or len(a_key) != len(b_key):
            raise RegistryError(f"{w}: a_key and b_key are lists of the same length")
        alignments.append(Alignment(_need(raw, "type", str, w), a_key, b_key, str(raw.get("reason", "")), ident))
    number = doc.get("number")
    return Deviation(ident, _need(doc, "title", str, where), _need(doc, "description", str, where), evidence,
                     tuple(rules), tuple(alignments), number if type(number) is int else None, scope, where)


def load_registry(directory: Path = REGISTRY) -> list[Deviation]:
    entries: list[Deviation] = []
    seen: set[str] = set()
    for path in sorted(directory.glob("*.yaml")):
        try:
            doc = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError as exc:
            raise RegistryError(f"{path.name}: not valid YAML ({exc})") from None
        entry = parse_entry(doc, path.name)
        if entry.id in seen:
            raise RegistryError(f"{path.name}: duplicate id {entry.id}")
        seen.add(entry.id)
        entries.append(entry)
    return entries


def alignments(entries: Iterable[Deviation]) -> list[Alignment]:
    return [a for e in entries for a in e.alignments]


# --- conditions ----------------------------------------------------------------------------------------


def _dec(value: Any) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        d = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    return d if d.is_finite() else None


_MISSING = object()


class _Eval:
    def __init__(self, diff: Difference, data: Mapping[str, Any] | None, ctx: Context) -> None:
        self.diff = diff
        self.data = data
        self.ctx = ctx

    def value(self, spec: Any) -> Any:
        """A spec that computes a value (frame field, other record's field, arithmetic)."""
        if not isinstance(spec, dict):
            return spec
        if "frame" in spec:
            raw = self.data.get(spec["frame"], _MISSING) if self.data is not None else _MISSING
            if raw is _MISSING or raw is None:
                return _MISSING
            unit = spec.get("as")
            if unit in ("ms", "us"):
                try:
                    n = int(raw)
                except (TypeError, ValueError):
                    return _MISSING
                return n // 1000 * 1000 if unit == "ms" else n
            return raw
        for side in ("a", "b"):
            if side in spec:
                rec = self.diff.a if side == "a" else self.diff.b
                return _MISSING if rec is None else rec.get(spec[side], _MISSING)
        if "sum" in spec or "diff" in spec:
            parts = [_dec(self.value(p)) for p in spec.get("sum") or spec.get("diff")]
            if any(p is None for p in parts):
                return _MISSING
            total = parts[0]
            for p in parts[1:]:
                total = total + p if "sum" in spec else total - p
            return str(total)
        if "lower" in spec:
            v = self.value(spec["lower"])
            return v.lower() if isinstance(v, str) else _MISSING
        if "map" in spec:
            v = self.value(spec["map"])
            return (spec.get("table") or {}).get(v, _MISSING) if isinstance(v, str) else _MISSING
        if "signed" in spec:
            magnitude, sign = _dec(self.value(spec["signed"])), _dec(self.value(spec["by"]))
            if magnitude is None or sign is None:
                return _MISSING
            return str(-abs(magnitude) if sign < 0 else abs(magnitude))
        return _MISSING

    def holds(self, spec: Any, value: Any, name: str = "") -> bool:
        """Does ``value`` satisfy ``spec``? (null, not_null, any, equals, in, one_of, absent, or a value spec)."""
        if spec is None:
            return value is None or value is _MISSING
        if not isinstance(spec, dict):
            return value == spec
        if "one_of" in spec:
            return any(self.holds(s, value, name) for s in spec["one_of"])
        if spec.get("any"):
            return True
        if "not_null" in spec:
            return (value is not None and value is not _MISSING) == bool(spec["not_null"])
        if "absent" in spec:
            return (value is _MISSING) == bool(spec["absent"])
        if "equals" in spec:
            return value == spec["equals"]
        if "in" in spec:
            return value in spec["in"]
        if "nonzero" in spec:
            d = _dec(value)
            return d is not None and (d != 0) == bool(spec["nonzero"])
        expected = self.value(spec)
        if expected is _MISSING or value is _MISSING:
            return False
        return equal(name, value, expected) or (_dec(value) is not None and _dec(value) == _dec(expected))

    def frame_holds(self, conditions: Mapping[str, Any]) -> bool:
        data = self.data or {}
        return all(self.holds(spec, data.get(key, _MISSING), key) for key, spec in conditions.items())

    def record_holds(self, rec: Mapping[str, Any] | None, conditions: Mapping[str, Any]) -> bool:
        if rec is None:
            return False
        return all(self.holds(spec, rec.get(key, _MISSING), key) for key, spec in conditions.items())


def _double(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_double(v) for v in value]
    d = _dec(value)
    return float(d) if d is not None else value


def _same_double(a: Any, b: Any) -> bool:
    """Both values are the same IEEE double: the difference is only digits a double cannot hold."""
    return a is not None and b is not None and _double(a) == _double(b)


def _frame_of(diff: Difference) -> int | None:
    for rec in (diff.a, diff.b):
        if rec is not None and type(rec.get("frame")) is int:
            return rec["frame"]
    return None


def _rule_holds(rule: Rule, ev: _Eval, fd: FieldDiff | None) -> bool:
    when = rule.when
    if "frame" in when and not ev.frame_holds(when["frame"]):
        return False
    if "a_record" in when and not ev.record_holds(ev.diff.a, when["a_record"]):
        return False
    if "b_record" in when and not ev.record_holds(ev.diff.b, when["b_record"]):
        return False
    if "oracle_error" in when:
        frame = _frame_of(ev.diff)
        if frame is None or ev.ctx.oracle_errors.get(frame) not in when["oracle_error"]:
            return False
    if "frame_repeats" in when:
        frames, frame = ev.ctx.frames, _frame_of(ev.diff)
        if frames is None or frame is None or not frames.repeats(frame, tuple(when["frame_repeats"])):
            return False
    if "same_double" in when and (fd is None or _same_double(fd.a, fd.b) != bool(when["same_double"])):
        return False
    if fd is not None:
        if "a" in when and not ev.holds(when["a"], fd.a, fd.field):
            return False
        if "b" in when and not ev.holds(when["b"], fd.b, fd.field):
            return False
    return True


def classifier(entries: Iterable[Deviation], ctx: Context) -> Callable[[Difference], None]:
    """A ``classify`` callback for ``compare``: labels each field / one-sided record with the entry that
    explains it (the first whose rule holds), and leaves it unlabelled otherwise."""
    rules: dict[tuple[str, str], list[tuple[str, Rule]]] = {}
    for entry in entries:
        if entry.scope != "stream":
            continue
        for rule in entry.rules:
            rules.setdefault((rule.type, rule.kind), []).append((entry.id, rule))

    def classify(diff: Difference) -> None:
        candidates = rules.get((diff.type, diff.kind))
        if not candidates:
            return
        frames = ctx.frames
        ev = _Eval(diff, frames.data(_frame_of(diff)) if frames is not None else None, ctx)
        if diff.kind == "value":
            for fd in diff.fields:
                for ident, rule in candidates:
                    if (fd.field in rule.fields or "*" in rule.fields) and _rule_holds(rule, ev, fd):
                        fd.explained_by = ident
                        break
        else:
            for ident, rule in candidates:
                if _rule_holds(rule, ev, None):
                    diff.explained_by = ident
                    break

    return classify


__all__ = ["REGISTRY", "Context", "Deviation", "RegistryError", "Rule", "alignments", "classifier",
           "load_registry", "parse_entry"]
