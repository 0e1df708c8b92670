"""Verdicts: what one run of a case did, judged against the reference, with the evidence.

* **fail**: a wrong book (a book record unlike the reference book at its sequence, ``Checker`` (a)), a
  trade emitted twice or a trade the server wrote never emitted, a trade field unlike the frame's
  (``harness.parity.compare`` with the deviation registry: only unexplained differences count), a record
  of a symbol nobody subscribed to, no resubscribe after a disconnect (or other streams than before), a
  private subscribe not signed afresh, a crash, no book at all, a close for an unanswered ping, a run
  past the case's bound (a hang).
* **non-strict**: all of that held, but the client took a detour the case says it need not: a
  reconnect or a book resync where nothing was lost, a silence waited out instead of the link replaced,
  a retry sooner than ``Retry-After``, a resubscribe or reconnect that came late. The reason says which.
* **pass**: neither. ``unsupported`` (the client cannot do what the case needs) and ``not installed``
  are not verdicts on the client's behaviour and never count as a pass.
"""

from __future__ import annotations

import json
import re
from typing import Any

from harness.conformance.catalog import Case
from harness.conformance.clients import adapter
from harness.conformance.run import Observed
from harness.conformance.slices import slice_of
from harness.scenarios.invariants import Checker
from harness.scenarios.oracle import Reference
from harness.scenarios.program import Program, apply

PASS, NON_STRICT, FAIL = "pass", "non-strict", "fail"
UNSUPPORTED, NOT_INSTALLED = "unsupported", "not installed"
VERDICTS = (PASS, NON_STRICT, FAIL, UNSUPPORTED, NOT_INSTALLED)
LATE_SUBSCRIBE_S = 2.0  # a reconnect's SUBSCRIBE later than this after it opened is late
LATE_RECONNECT_S = 5.0  # a new connection later than this after the close is late
WIRE_AROUND = 40  # frames either side of the evidence position in a detail page's wire log
TEXT_LIMIT = 300
_SIGNATURE = re.compile(r'"signature"\s*:\s*\[[^\]]*\]')


def _redact(text: str) -> str:
    text = _SIGNATURE.sub('"signature":"<redacted>"', text)
    return text if len(text) <= TEXT_LIMIT else text[:TEXT_LIMIT] + "..."


def _base(case: Case, client: str) -> dict[str, Any]:
    return {"case": case.id, "name": case.name, "area": case.area, "area_title": case.area_title,
            "expect": case.expect, "client": client, "faults": [f.describe() for f in case.faults],
            "slice": f"recordings/{case.recording}.jsonl.zst, first {case.frames} frames, "
                     f"{' '.join(case.symbols)} {' '.join(case.channels)}"
                     + (f", rewritten: {', '.join(case.transforms)}" if case.transforms else ""),
            "reasons": [], "notes": [], "stats": {}, "evidence": {}}


def unavailable(case: Case, client: str) -> dict[str, Any] | None:
    """The result for a client that cannot run the case at all (None: it can)."""
    impl = adapter(client)
    why = impl.missing()
    if why is not None:
        return {**_base(case, client), "verdict": NOT_INSTALLED, "reasons": [why]}
    lacking = [n for n in case.needs if n not in impl.capabilities]
    if not any(c in impl.capabilities for c in case.channels):
        lacking.append("any of " + ", ".join(case.channels))
    if lacking:
        return {**_base(case, client), "verdict": UNSUPPORTED,
                "reasons": [f"the client has no {', '.join(lacking)}"]}
    return None


def _stream_of(text: str) -> str:
    return text[11:text.find('"', 11)] if text.startswith('{"stream":"') else ""


def _written_trades(obs: Observed, symbols: set[str]) -> dict[tuple[str, str], dict[str, Any]]:
    """Every trade the server wrote to any connection, for the subscribed symbols: (symbol, id) -> data."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for conn in obs.connections:
        for kind, text in conn["sent"]:
            if kind != "text" or not _stream_of(text).startswith("trade."):
                continue
            try:
                data = json.loads(text)["data"]
            except (ValueError, KeyError, TypeError):
                continue
            symbol = str(data.get("s", "")).replace("_", "-")
            if symbol in symbols and data.get("t") is not None:
                out.setdefault((symbol, str(data["t"])), data)
    return out


def _where_written(obs: Observed, key: tuple[str, str]) -> tuple[int, int, str] | None:
    """(connection, text frame position from 1, text) of the first write of trade ``key``."""
    symbol, tid = key
    needle = f'"t":{tid},'
    for conn in obs.connections:
        n = 0
        for kind, text in conn["sent"]:
            if kind != "text":
                continue
            n += 1
            if _stream_of(text) == f"trade.{symbol.replace('-', '_')}" and (needle in text or f'"t":"{tid}"' in text):
                return conn["id"], n, text
    return None


def _expected_trade(symbol: str, data: dict[str, Any]) -> dict[str, Any]:
    t = data.get("T")
    return {"type": "trade", "exchange": "BACKPACK", "symbol": symbol, "id": str(data.get("t")),
            "timestamp": int(t) if str(t).lstrip("-").isdigit() else None,
            "side": "sell" if data.get("m") else "buy", "price": data.get("p"), "amount": data.get("q")}


def _trade_fields(obs: Observed, expected: dict[tuple[str, str], dict[str, Any]]) -> str | None:
    """The first unexplained field difference of a paired trade (compare.py + the registry), or None."""
    from harness.parity.compare import Stream, compare
    from harness.parity.deviations import Context, alignments, classifier, load_registry
    from harness.parity.provenance import Frames
    from harness.recording.format import WsRecv

    recording = slice_of(obs.case.recording, obs.case.frames, ())
    where: dict[tuple[str, str], int] = {}
    for i, event in enumerate(recording.events):
        if isinstance(event, WsRecv) and isinstance(event.data, str) and event.data.startswith('{"stream":"trade.'):
            try:
                data = json.loads(event.data)["data"]
                where.setdefault((str(data["s"]).replace("_", "-"), str(data["t"])), i)
            except (ValueError, KeyError, TypeError):
                continue
    a = [{**_expected_trade(s, d), "frame": where.get((s, i))} for (s, i), d in expected.items()]
    b = [{**r, "frame": where.get((str(r.get("symbol")), str(r.get("id"))))} for r in obs.records
         if r.get("type") == "trade"]
    entries = load_registry()
    resolution = 1000 if obs.client.startswith("ccxt") else 1
    cmp = compare(Stream("expected", a), Stream(obs.client, b, resolution), types=["trade"],
                  alignments=alignments(entries), classify=classifier(entries, Context(frames=Frames(recording))))
    for diff in cmp.channels["trade"].differences:
        if diff.kind == "value" and not diff.explained:
            bad = [f for f in diff.fields if not f.explained_by]
            f = bad[0]
            return f"trade {diff.key[-1]} of {diff.symbol}: {f.field} is {f.b!r}, the frame says {f.a!r}"
    return None


class _Conn:
    def __init__(self, log: dict[str, Any]) -> None:
        self.id = log["id"]
        self.received = log["received"]


def _wire(obs: Observed, conn_id: int | None, position: int | None) -> dict[str, Any]:
    conn = next((c for c in obs.connections if c["id"] == conn_id), None)
    if conn is None:
        conn = obs.connections[-1] if obs.connections else None
    if conn is None:
        return {}
    sent = conn["sent"]
    texts = [i for i, (k, _t) in enumerate(sent) if k == "text"]
    if position is not None and 0 < position <= len(texts):
        centre = texts[position - 1]
    else:
        centre = len(sent) - 1
    lo, hi = max(0, centre - WIRE_AROUND), min(len(sent), centre + WIRE_AROUND + 1)
    return {"connection": conn["id"], "close_code": conn["close_code"], "text_sent": conn["text_sent"],
            "pings_received": conn["pings_received"], "pongs_received": conn["pongs_received"],
            "total": len(sent), "from": lo, "centre": centre,
            "sent": [[i, k, _redact(t)] for i, (k, t) in enumerate(sent[lo:hi], lo)],
            "received": [_redact(t) for t in conn["received"][:50]]}


def public_streams(case: Case, channels: list[str]) -> set[str]:
    """The public streams a client asked for ``channels`` of the case's symbols must be subscribed to."""
    from harness.conformance.run import streams_of

    return streams_of(case, channels)


def judge(obs: Observed, reference: Reference, *, depth: int = 10) -> dict[str, Any]:
    from harness.loopback.recorded.source import END_REASON
    from harness.scenarios.sockets import _subscriptions

    case = obs.case
    result = _base(case, obs.client)
    fails: list[str] = result["reasons"]
    soft: list[str] = []
    checker = Checker(apply(Program(), reference), depth=depth, raise_at_once=False, observed=False)
    symbols = set(case.symbols)
    first_bad: tuple[int, str] | None = None
    lost_at: tuple[int, int, str] | None = None
    emitted: dict[tuple[str, str], int] = {}
    resyncs = errors = 0
    for i, rec in enumerate(obs.records):
        kind = rec.get("type")
        before = checker.violation
        if kind in ("book", "book_resync", "trade"):
            checker.record(rec)
        if checker.violation is not None and before is None:
            first_bad = first_bad or (i, str(checker.violation.detail))
        if kind == "book_resync" and not obs.positions[i][2]:  # one for a lost connection is that loss's
            resyncs += 1
        elif kind == "error":
            errors += 1
        if rec.get("symbol") is not None and rec.get("symbol") not in symbols and kind != "error":
            if first_bad is None:
                first_bad = (i, f"a {kind} record of {rec.get('symbol')}, a symbol the client never subscribed to")
            fails.append(f"emitted a {kind} of {rec.get('symbol')}, which it never subscribed to")
        if kind == "trade":
            emitted.setdefault((str(rec.get("symbol")), str(rec.get("id"))), i)
    if checker.violation is not None:
        label = {"a": "wrong book", "c": "duplicate trade"}.get(checker.violation.invariant, "broken invariant")
        fails.append(f"{label}: {checker.violation.detail}")

    subscribed_channels = [c for c in case.channels if c in adapter(obs.client).capabilities]
    if "trades" in subscribed_channels:
        written = _written_trades(obs, symbols)
        lost = [k for k in written if k not in emitted]
        if lost:
            fails.append(f"lost trades: {len(lost)} of the {len(written)} the server wrote were never emitted "
                         f"(first: {lost[0][1]} of {lost[0][0]})")
            lost_at = _where_written(obs, lost[0])
        if written and len(lost) < len(written):
            diff = _trade_fields(obs, {k: v for k, v in written.items() if k in emitted})
            if diff is not None:
                fails.append(f"wrong trade: {diff}")
    if "l2_book" in subscribed_channels and checker.counts.get("books_checked", 0) == 0 and not obs.crash:
        known = any(reference.books.get(s.replace("-", "_")) is not None for s in symbols)
        if known:
            fails.append("never emitted a book the reference could check")

    # -- the connections: who closed what, who came back with which streams ----------------------
    conns = obs.connections
    end_id = next((c["id"] for c in conns if any(k == "close" and END_REASON in t for k, t in c["sent"])), None)
    relevant = [c for c in conns if end_id is None or c["id"] <= end_id]
    drops = [c for c in relevant if c["id"] != end_id and c["close_code"] is not None]
    wanted = public_streams(case, subscribed_channels)
    first_streams, stamps = _subscriptions(_Conn(relevant[0])) if relevant else (set(), [])
    private = {s for s in first_streams if s.startswith("account.")}
    for c in relevant[1:]:
        streams, more = _subscriptions(_Conn(c))
        stamps += more
        missing = sorted((wanted | private) - streams)
        extra = sorted(s for s in streams - wanted if not s.startswith("account."))
        if missing or extra:
            fails.append(f"connection {c['id']} did not resubscribe to exactly the same streams (missing "
                         f"{missing[:4] or 'none'}, extra {extra[:4] or 'none'})")
        opened, sub = obs.opened.get(c["id"]), obs.subscribed.get(c["id"])
        if opened is not None and sub is not None and sub - opened > LATE_SUBSCRIBE_S:
            soft.append(f"late resubscribe: connection {c['id']} subscribed {sub - opened:.1f} s after it opened")
        prev = obs.closed.get(c["id"] - 1)
        if prev is not None and opened is not None and opened - prev > LATE_RECONNECT_S:
            soft.append(f"late reconnect: connection {c['id']} came {opened - prev:.1f} s after the previous closed")
    if any(b <= a for a, b in zip(stamps, stamps[1:], strict=False)):
        fails.append(f"private subscribes not signed afresh: timestamps {stamps}")
    reconnect = case.checks.get("reconnect", "allowed")
    if reconnect == "none" and drops:
        soft.append(f"reconnected {len(drops)} time(s) though the server closed nothing (close codes "
                    f"{[c['close_code'] for c in drops]})")
    if reconnect == "required" and not any(f["kind"] in ("close_socket", "at_frame") for f in obs.fired):
        fails.append("the case's disconnect never happened (the client never got that far)")
    if case.checks.get("resync") == "none" and resyncs:
        soft.append(f"{resyncs} book resync(s) though no book information was lost")
    silence = case.checks.get("silence_s")
    if silence and not drops and not obs.timed_out:
        soft.append(f"kept the silent connection through the whole {silence:g} s silence instead of replacing it")
    if case.checks.get("pong_timeout") == "fail":
        for c in conns:
            if any(k == "close" and "Pong timeout" in t for k, t in c["sent"]):
                fails.append(f"the server closed connection {c['id']} because a ping went unanswered")
    wait = case.checks.get("retry_after_s")
    if wait:
        limited = next((r for r in obs.rest if r[3] == 429), None)
        if limited is not None:
            path = limited[2].split("?")[0]
            again = next((r for r in obs.rest if r[0] >= limited[0] and r is not limited
                          and r[2].split("?")[0] == path), None)
            if again is not None and again[0] - limited[0] < wait * 0.9:
                soft.append(f"retried {path} {again[0] - limited[0]:.2f} s after a 429 that said Retry-After: {wait:g}")
    if obs.crash:
        fails.append(f"crashed: {obs.crash}")
    if obs.timed_out:
        closed = [c for c in conns if c["close_code"] is not None]
        if not obs.subscribed:
            fails.append(f"hang: never subscribed within the {case.timeout_s:g} s bound")
        elif closed and max(obs.subscribed) <= max(c["id"] for c in closed):
            last = closed[-1]
            fails.append(f"no resubscribe: after connection {last['id']} closed (code {last['close_code']}) no "
                         f"new connection subscribed within the {case.timeout_s:g} s bound")
        else:
            fails.append(f"hang: the slice was not played to its end within the {case.timeout_s:g} s bound")

    if errors:
        result["notes"].append(f"{errors} error record(s)")
    result["notes"].append(f"{len(conns)} connection(s), closes {[c['close_code'] for c in conns]}")
    result["reasons"] = list(dict.fromkeys(fails))
    if fails:
        result["verdict"] = FAIL
    elif soft:
        result["verdict"] = NON_STRICT
        result["reasons"] = soft
    else:
        result["verdict"] = PASS
    result["stats"] = {"records": len(obs.records), "trades": sum(1 for r in obs.records if r.get("type") == "trade"),
                       "books": checker.counts.get("books", 0), "books_checked": checker.counts.get("books_checked", 0),
                       "resyncs": resyncs, "errors": errors, "connections": len(conns), "seconds": obs.seconds,
                       "rest": [f"{t:.2f}s {m} {p} {s}" for t, m, p, s in obs.rest][:40]}
    evidence: dict[str, Any] = {"fired": obs.fired}
    if first_bad is not None:
        i, why = first_bad
        conn_id, position, _closing = obs.positions[i]
        evidence["first_wrong"] = {"index": i, "why": why, "record": json.dumps(obs.records[i], default=str),
                                   "connection": conn_id, "frames_sent": position}
        evidence["records_before"] = [json.dumps(r, default=str)[:TEXT_LIMIT] for r in obs.records[max(0, i - 5):i]]
        evidence["wire"] = _wire(obs, conn_id, position)
    elif lost_at is not None:
        conn_id, position, text = lost_at
        evidence["first_wrong"] = {"index": len(obs.records), "why": f"this trade frame, text frame {position} "
                                   f"of connection {conn_id}, was written but never emitted",
                                   "record": _redact(text), "connection": conn_id, "frames_sent": position}
        evidence["wire"] = _wire(obs, conn_id, position)
    else:
        target = drops[-1]["id"] if drops else (conns[-1]["id"] if conns else None)
        evidence["wire"] = _wire(obs, target, None)
    if obs.client_output:
        evidence["client_output"] = obs.client_output
    result["evidence"] = evidence
    return result


__all__ = ["FAIL", "NON_STRICT", "NOT_INSTALLED", "PASS", "UNSUPPORTED", "VERDICTS", "judge", "unavailable"]
