"""Shared by the fault-scenario tests: the recording library, how the profile's counts are split, and
running one scenario so that a failure is the full report (invariant, shrunk program, replay command)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from harness.scenarios.failures import ScenarioFailure
from harness.scenarios.invariants import InvariantBroken
from harness.scenarios.oracle import Reference, reference
from harness.scenarios.program import Program, apply
from harness.scenarios.runner import Run, run_core, run_feed_scenario
from harness.scenarios.strategies import profile

ROOT = Path(__file__).resolve().parents[1]
RECORDINGS = ROOT / "recordings"
PROFILE = profile()

# (recording, share of the level's scenarios, regions it is split into: one test each, for xdist to spread)
CORE_SPLIT = (("public", 0.60, 4), ("private", 0.20, 2), ("errors", 0.15, 2), ("edge", 0.05, 1))
FEED_SPLIT = (("public", 0.40, 2), ("private", 0.30, 2), ("errors", 0.20, 1), ("edge", 0.10, 1))


def path(name: str) -> Path:
    return RECORDINGS / f"{name}.jsonl.zst"


def ref(name: str) -> Reference:
    return reference(path(name))


def cases(total: int, split: tuple[tuple[str, float, int], ...]) -> list:
    """pytest params (recording, region, examples) whose examples add up to ``total``."""
    out = []
    for name, share, parts in split:
        n = max(1, round(total * share / parts))
        for k in range(parts):
            region = (k / parts, (k + 1) / parts)
            out.append(pytest.param(name, region, n, id=f"{name}-{k + 1}of{parts}-{n}"))
    return out


def scenario_settings(examples: int, **extra: object) -> settings:
    return settings(max_examples=examples, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large], **extra)


def run_scenario(name: str, program: Program, level: str, **kwargs: object) -> Run:
    """One scenario; a broken invariant becomes a ``ScenarioFailure`` carrying the whole report."""
    faulted = apply(program, ref(name))
    try:
        if level == "core":
            return run_core(faulted, **kwargs)  # type: ignore[arg-type]
        return run_feed_scenario(faulted, **kwargs)  # type: ignore[arg-type]
    except InvariantBroken as exc:
        raise ScenarioFailure(path(name), program, level, exc) from None


# -- a small synthetic recording: every frame known, for exact assertions -----------------------------

from harness.recording.format import (  # noqa: E402
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    RecordingEnd,
    WsOpen,
    WsPing,
    WsRecv,
    WsSend,
)
from harness.recording.reader import ReadStats, Recording  # noqa: E402

START_US = 1_700_000_000_000_000
STEP_NS = 10_000_000  # 10 ms between frames


def _frame(stream: str, data: dict) -> str:
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def depth_text(symbol: str, u: int, price: str, size: str) -> str:
    return _frame(f"depth.{symbol}", {"e": "depth", "E": START_US + u, "s": symbol, "a": [], "b": [[price, size]],
                                       "U": u, "u": u, "T": START_US + u})


def trade_text(symbol: str, tid: int) -> str:
    return _frame(f"trade.{symbol}", {"e": "trade", "E": START_US + tid, "s": symbol, "p": "10.5", "q": "1", "b": "1",
                                       "a": "2", "t": tid, "T": START_US + tid, "m": True})


def order_text(symbol: str, n: int) -> str:
    return _frame(f"account.orderUpdate.{symbol}", {
        "e": "orderAccepted", "E": START_US + n, "s": symbol, "S": "Bid", "o": "LIMIT", "f": "GTC", "q": "1",
        "p": "9", "X": "New", "i": str(9000 + n), "l": "0", "z": "0", "Z": "0", "V": "RejectTaker",
        "T": START_US + n, "O": "USER", "y": False})


def synthetic(n: int = 60, symbols: tuple[str, ...] = ("SOL_USDC", "BTC_USDC"), private: bool = False) -> Recording:
    """``n`` frames after a snapshot at 100 per symbol: depth deltas (U = u = 101, 102, ... per symbol, each
    setting bid 9.5 to its number), a trade every third frame, an order update every fifth when
    ``private``; a ping half way."""
    channels = ("trades", "l2_book") + (("order_info",) if private else ())
    header = Header(created_at="2025-01-01T00:00:00.000000Z", start_us=START_US, rest_url="http://127.0.0.1:1",
                    ws_url="ws://127.0.0.1:1/", symbols=tuple(s.replace("_", "-") for s in symbols),
                    channels=channels)
    streams = [f"depth.{s}" for s in symbols] + [f"trade.{s}" for s in symbols]
    events: list = [WsOpen(0, "ws-1", "ws://127.0.0.1:1/"),
                    WsSend(1, "ws-1", json.dumps({"method": "SUBSCRIBE", "params": streams}))]
    book = b'{"asks":[["11","1"],["12","2"]],"bids":[["9","2"],["10","1"]],"lastUpdateId":"100","timestamp":1}'
    for k, s in enumerate(symbols):
        events.append(HttpRequestEvent(2 + k, f"http-{k}", "GET", "http://127.0.0.1:1/api/v1/depth",
                                       (("symbol", s), ("limit", "1000"))))
        events.append(HttpResponseEvent(3 + k, f"http-{k}", 200, {"Content-Type": "application/json"}, book,
                                        START_US))
    u = dict.fromkeys(symbols, 100)
    for i in range(n):
        t = (i + 1) * STEP_NS
        s = symbols[i % len(symbols)]
        if private and i % 5 == 4:
            text = order_text(s, i)
        elif i % 3 == 2:
            text = trade_text(s, 1000 + i)
        else:
            u[s] += 1
            text = depth_text(s, u[s], "9.5", str(i + 1))
        events.append(WsRecv(t, "ws-1", text, START_US + t // 1000))
        if i == n // 2:
            events.append(WsPing(t + 1, "ws-1", b"", START_US + t // 1000))
    events.append(RecordingEnd((n + 2) * STEP_NS))
    return Recording(header, events, None, ReadStats())
