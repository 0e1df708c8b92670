"""Wire constants live in ``backpack/protocol/wire.py`` only; everything else imports them.

An AST scan of every module of ``backpack``, ``harness`` and ``bench`` (wire.py excepted) flags any
tuple, list, set, dict (by its keys) or string that writes out a good part of one of the lists again.
The scanner is itself tested on snippets it must flag and on code it must pass.
"""

from __future__ import annotations

import ast
import math
import re
from pathlib import Path

import pytest

from backpack.protocol import wire

REPO = Path(__file__).resolve().parents[1]
WIRE = REPO / "backpack" / "protocol" / "wire.py"
LISTS: dict[str, frozenset[object]] = {
    "CANDLE_INTERVALS": frozenset(wire.CANDLE_INTERVALS),
    "DEPTH_LIMITS": frozenset(wire.DEPTH_LIMITS),
    "DEPTH_SPEEDS": frozenset(wire.DEPTH_SPEEDS),
    "MARKET_TYPES": frozenset(wire.MARKET_TYPES),
}
_TOKEN = re.compile(r"[A-Za-z0-9]+")


def _threshold(values: frozenset[object]) -> int:
    """Enough members to be a copy of the list rather than a mention of one value."""
    return max(3, math.ceil(len(values) / 2))


def _docstrings(tree: ast.AST) -> set[int]:
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                out.add(id(body[0].value))
    return out


def _members(node: ast.AST, docstrings: set[int]) -> list[object] | None:
    """The constant values a literal collection (or a string, token by token) writes out."""
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        elts = node.elts
    elif isinstance(node, ast.Dict):
        elts = [k for k in node.keys if k is not None]
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
        tokens: list[object] = _TOKEN.findall(node.value)
        return tokens + [int(t) for t in tokens if t.isdigit() and not t.startswith("0")]
    else:
        return None
    values = [e.value for e in elts if isinstance(e, ast.Constant) and e.value is not None]
    if len(values) != sum(1 for e in elts if not (isinstance(e, ast.Constant) and e.value is None)):
        return None  # built from names or expressions, not written out
    return [v for v in values if not isinstance(v, bool)]


def copies(source: str) -> list[str]:
    """``line N: NAME`` for every literal that repeats one of the wire lists."""
    tree = ast.parse(source)
    docstrings = _docstrings(tree)
    out = []
    for node in ast.walk(tree):
        values = _members(node, docstrings)
        if not values:
            continue
        found = set(values)
        for name, members in LISTS.items():
            hits = found & members
            is_string = isinstance(node, ast.Constant)
            if len(hits) >= _threshold(members) and (is_string or found <= members):
                out.append(f"line {node.lineno}: {name}")
    return out


def scanned_files() -> list[Path]:
    files = [p for top in ("backpack", "harness", "bench") for p in sorted((REPO / top).rglob("*.py"))]
    return [p for p in files if p != WIRE]


# --- the scanner catches what it must ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("snippet", "name"),
    [
        ('DEPTH_SPEEDS = ("200ms", "600ms", "1000ms")', "DEPTH_SPEEDS"),
        ('x: Literal[None, "200ms", "600ms", "1000ms"] = None', "DEPTH_SPEEDS"),
        ('if v not in ("200ms", "600ms", "1000ms"):\n    pass', "DEPTH_SPEEDS"),
        ('raise ValueError("must be one of 200ms, 600ms, 1000ms or null")', "DEPTH_SPEEDS"),
        ("LIMITS = (5, 10, 20, 50, 100, 500, 1000)", "DEPTH_LIMITS"),
        ("LIMITS = [100, 500, 1000, 50]", "DEPTH_LIMITS"),
        ('T = ("SPOT", "PERP", "IPERP", "DATED", "PREDICTION")', "MARKET_TYPES"),
        ('T = {"SPOT": "spot", "PERP": "perpetual", "RFQ": "rfq"}', "MARKET_TYPES"),
        ('I = frozenset({"1s", "1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h"})', "CANDLE_INTERVALS"),
        ('I = {"1m": 60, "3m": 180, "5m": 300, "15m": 900, "30m": 1800, "1h": 3600, "2h": 1, "4h": 2}',
         "CANDLE_INTERVALS"),
    ],
)
def test_scanner_flags_copies(snippet: str, name: str) -> None:
    assert [c.split(": ")[1] for c in copies(snippet)] == [name], snippet


@pytest.mark.parametrize(
    "snippet",
    [
        "from backpack.protocol.wire import DEPTH_SPEEDS\nx = (None, *DEPTH_SPEEDS)",
        '"""Docs may name SPOT, PERP, IPERP and DATED markets."""',
        'types = set(wanted) or {"SPOT", "PERP"}',  # the exchange's default, two values
        'stream = f"depth.200ms.{symbol}"',
        "retries = (5, 10, 20)",  # three small numbers are not the depth limits
        'x = ("1m", "5m", "1h", "unrelated")',  # mixed with a value that is not an interval
        "d = {iv: 1 for iv in CANDLE_INTERVALS}",
    ],
)
def test_scanner_passes_references(snippet: str) -> None:
    assert copies(snippet) == [], snippet


# --- the real code ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", scanned_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_no_wire_list_is_written_out_again(path: Path) -> None:
    assert copies(path.read_text()) == [], f"import it from backpack.protocol.wire instead ({path.name})"


def test_the_wire_module_itself_holds_each_list() -> None:
    assert {c.split(": ")[1] for c in copies(WIRE.read_text())} >= {"CANDLE_INTERVALS", "DEPTH_LIMITS",
                                                                   "DEPTH_SPEEDS", "MARKET_TYPES"}


def test_every_user_holds_the_wire_objects() -> None:
    """The other modules' names are the wire module's objects (or built from them), not copies."""
    from backpack import config, feed, feedbase, rest
    from backpack.protocol import subscriptions, symbols
    from harness.loopback import market, seeded, server
    from harness.loopback.recorded import source as recorded

    assert config.DEPTH_LIMITS is rest.DEPTH_LIMITS is wire.DEPTH_LIMITS
    assert seeded.DEPTH_LIMITS is recorded.DEPTH_LIMITS is wire.DEPTH_LIMITS
    assert subscriptions.INTERVALS is wire.CANDLE_INTERVALS
    assert subscriptions.DEPTH_SPEEDS is wire.DEPTH_SPEEDS
    assert rest.KLINE_INTERVALS == frozenset(wire.CANDLE_INTERVALS)
    assert feedbase.VALID_CANDLE_INTERVALS == set(wire.CANDLE_INTERVALS)
    assert feed.MARKET_TYPES is wire.FEED_MARKET_TYPES
    assert seeded.MARKET_TYPES is recorded.MARKET_TYPES is wire.MARKET_TYPES
    assert symbols.INSTRUMENT_TYPES is wire.INSTRUMENT_TYPES
    assert tuple(market.INTERVALS) == wire.CANDLE_INTERVALS
    assert tuple(market.DEPTH_WINDOWS_US) == wire.DEPTH_SPEEDS
    assert (server.PARSE_ERROR, server.INVALID_STREAM, server.INVALID_DEPTH_WINDOW) == tuple(wire.WS_ERROR_CODES)


def test_derived_tables_agree_with_their_names() -> None:
    assert wire.CANDLE_SECONDS["1m"] == 60 and wire.CANDLE_SECONDS["12h"] == 43_200
    assert wire.CANDLE_SECONDS["3d"] == 3 * 86_400 and wire.CANDLE_SECONDS["1w"] == 604_800
    assert set(wire.CANDLE_SECONDS) == set(wire.CANDLE_INTERVALS) - {"1month"}
    assert wire.DEPTH_SPEED_US == {"200ms": 200_000, "600ms": 600_000, "1000ms": 1_000_000}
    assert wire.FEED_MARKET_TYPES == ("SPOT", "PERP", "IPERP", "DATED", "PREDICTION")
    assert "RFQ" in wire.MARKET_TYPES and len(set(wire.MARKET_TYPES)) == len(wire.MARKET_TYPES)


@pytest.mark.parametrize("table", ["CANDLE_SECONDS", "DEPTH_SPEED_US", "INSTRUMENT_TYPES", "WS_ERROR_CODES"])
def test_shared_tables_are_read_only(table: str) -> None:
    """Every importer holds the same object, so one of them changing it would change it for all."""
    with pytest.raises(TypeError):
        getattr(wire, table)["X"] = 1  # type: ignore[index]
