"""The canonical normalized stream (schema v1): exact bytes per type, canonical decimals, determinism."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from backpack.protocol import events as ev
from backpack.protocol.normalized import (
    COMMON_FIELDS,
    SCHEMA,
    Normalizer,
    canonical_decimal,
    dumps,
    normalize,
)
from backpack.protocol.router import Router

REPO = Path(__file__).resolve().parents[1]
WS = REPO / "tests" / "fixtures" / "ws"
D = Decimal


@pytest.mark.parametrize(
    ("value", "text"),
    [
        ("0", "0"), ("-0", "0"), ("0.00000", "0"), ("-0.000", "0"), ("0E-8", "0"), ("0E+5", "0"),
        ("1E+2", "100"), ("1e2", "100"), ("86700.0", "86700"), ("86700", "86700"), ("8.67E+4", "86700"),
        ("0.000100", "0.0001"), ("-1.50", "-1.5"), ("1E-30", "0.000000000000000000000000000001"),
        # more digits than the default 28-digit context: must not be rounded
        ("1.2345678901234567890123456789012345", "1.2345678901234567890123456789012345"),
        ("123456789012345678901234567890123400", "123456789012345678901234567890123400"),
        (D("NaN"), "NaN"), (D("sNaN"), "NaN"), (D("Infinity"), "Infinity"), (D("-Infinity"), "-Infinity"),
        (5, "5"), (0.1, "0.1"), (None, None), ("not a number", "not a number"),
    ],
)
def test_canonical_decimal(value, text) -> None:
    assert canonical_decimal(D(value) if isinstance(value, str) and value[0] in "-0123456789" else value) == text


def test_canonical_decimal_matches_the_documented_formula_within_default_precision() -> None:
    for text in ("86700.0", "1E+2", "0.00100", "-12.5000", "3", "7.25E-3"):
        assert canonical_decimal(text) == format(D(text).normalize(), "f")


def test_dumps_is_sorted_compact_ascii() -> None:
    assert dumps({"b": 1, "a": {"d": "é", "c": None}}) == '{"a":{"c":null,"d":"\\u00e9"},"b":1}'
    with pytest.raises(ValueError):
        dumps({"x": float("nan")})


def frame(name: str) -> str:
    return (WS / name).read_text()


def run(router: Router, normalizer: Normalizer, *frames: str, receipt: int = 1000) -> list[dict]:
    out: list[dict] = []
    for i, text in enumerate(frames):
        out += [json.loads(x) for x in normalizer.lines(router.receive_frame(text, receipt + i))]
    return out


def test_every_type_has_the_schema_fields() -> None:
    router = Router()
    normalizer = Normalizer(router.books)
    records = run(router, normalizer, *[frame(p.name) for p in sorted(WS.glob("official_*.json"))])
    snap = {"lastUpdateId": "94978270", "timestamp": 1694687965940000, "bids": [["18.60", "1"]], "asks": []}
    records += normalizer.records(router.receive_snapshot("SOL_USDC", snap, 5000))
    records += normalizer.records(router.connection_lost())
    records += normalizer.records([ev.ErrorEvent(4006, "Invalid stream", "{}", None, 7)])
    records += normalizer.records([ev.BalanceUpdate("USDC", D("1.50"), D("0"), None, "balanceUpdate", 9, 8, 10)])
    fill = ev.OrderUpdate("SOL_USDC", "orderFill", "o1", None, "buy", "LIMIT", "PartiallyFilled", D("20"), D("2"),
                          None, D("1"), None, D("1"), D("20.0"), "t1", D("0.01"), "USDC", True, "GTC", False,
                          None, None, None, None, 11, 12, 13)
    records += normalizer.records([fill])
    types = {r["type"] for r in records}
    assert types == set(SCHEMA), set(SCHEMA) - types
    for r in records:
        for key in (*COMMON_FIELDS, *SCHEMA[r["type"]]):
            assert key in r, (r["type"], key)
        assert r["exchange"] == "BACKPACK"
        assert isinstance(r["receipt"], int)


def test_trade_bbo_and_book_lines_are_exact() -> None:
    router = Router()
    normalizer = Normalizer(router.books, depth=2)
    assert normalizer.lines(router.receive_frame(frame("official_trade.json"), 42)) == [
        '{"amount":"0.122","exchange":"BACKPACK","id":"12345","price":"18.68","receipt":42,"side":"sell",'
        '"symbol":"SOL-USDC","timestamp":1694688638089000,"type":"trade"}'
    ]
    assert normalizer.lines(router.receive_frame(frame("official_depth.json"), 43)) == []  # buffered
    snap = {"lastUpdateId": "94978270", "timestamp": 1694687965900000,
            "bids": [["18.50", "3.0"], ["18.60", "0.010"], ["18.68", "5"]],
            "asks": [["18.70", "1.000"], ["18.71", "0.5"], ["18.80", "2"]]}
    # the buffered delta (18.70 ask -> 0, 18.68 bid -> 0, 18.67 bid -> 0.832) is applied after the snapshot
    assert normalizer.lines(router.receive_snapshot("SOL_USDC", snap, 44)) == [
        '{"asks":[["18.71","0.5"],["18.8","2"]],"bids":[["18.67","0.832"],["18.6","0.01"]],"delta":null,'
        '"exchange":"BACKPACK","kind":"snapshot","receipt":44,"sequence":94978271,"symbol":"SOL-USDC",'
        '"timestamp":1694687965940999,"type":"book"}'
    ]
    delta = json.dumps({"stream": "depth.SOL_USDC", "data": {
        "e": "depth", "E": 5, "s": "SOL_USDC", "a": [["18.705", "1.10"]], "b": [["18.60", "0"]],
        "U": 94978272, "u": 94978273, "T": 4}})
    assert normalizer.lines(router.receive_frame(delta, 45)) == [
        '{"asks":[["18.705","1.1"],["18.71","0.5"]],"bids":[["18.67","0.832"],["18.5","3"]],'
        '"delta":{"asks":[["18.705","1.1"]],"bids":[["18.6","0"]]},"exchange":"BACKPACK","kind":"delta",'
        '"receipt":45,"sequence":94978273,"symbol":"SOL-USDC","timestamp":4,"type":"book"}'
    ]
    assert normalizer.lines(router.receive_frame(frame("official_book_ticker.json"), 46))[0].startswith(
        '{"ask":"18.7","ask_size":"1","bid":"18.67","bid_size":"2","exchange":"BACKPACK","receipt":46,')


def test_delta_is_as_received_but_canonical() -> None:
    """``delta`` keeps the levels in the order the frame sent them (not sorted), values canonical."""
    router = Router()
    n = Normalizer(router.books)
    router.receive_frame(json.dumps({"stream": "depth.X_Y", "data": {
        "e": "depth", "E": 1, "s": "X_Y", "a": [], "b": [["1", "1"]], "U": 10, "u": 10, "T": 1}}), 1)
    n.lines(router.receive_snapshot("X_Y", {"lastUpdateId": "9", "bids": [], "asks": [], "timestamp": 1}, 2))
    out = n.records(router.receive_frame(json.dumps({"stream": "depth.X_Y", "data": {
        "e": "depth", "E": 2, "s": "X_Y", "a": [["3.0", "1"], ["2.00", "1"]], "b": [], "U": 11, "u": 11, "T": 2}}), 3))
    assert out[0]["delta"] == {"asks": [["3", "1"], ["2", "1"]], "bids": []}
    assert out[0]["asks"] == [["2", "1"], ["3", "1"]] and out[0]["bids"] == [["1", "1"]]


def test_book_depth_none_is_the_whole_book_and_bad_depth_is_refused() -> None:
    router = Router()
    bids = [[str(p), "1"] for p in range(1, 30)]
    router.receive_frame(json.dumps({"stream": "depth.X_Y", "data": {
        "e": "depth", "E": 1, "s": "X_Y", "a": [], "b": [], "U": 10, "u": 10, "T": 1}}), 1)
    outputs = router.receive_snapshot("X_Y", {"lastUpdateId": "10", "bids": bids, "asks": [], "timestamp": 1}, 2)
    assert len(Normalizer(router.books, depth=None).records(outputs)[0]["bids"]) == 29
    assert len(Normalizer(router.books).records(outputs)[0]["bids"]) == 10
    assert Normalizer(router.books, depth=3).records(outputs)[0]["bids"][0] == ["29", "1"]
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ValueError):
            Normalizer(router.books, depth=bad)


def test_book_without_books_or_for_an_unknown_symbol_does_not_create_state() -> None:
    router = Router()
    update = ev.BookUpdate("NEW_SYM", "snapshot", 5, None, 0, 9)
    records = Normalizer(router.books).records([update])
    assert records[0]["bids"] == [] and records[0]["timestamp"] is None
    assert "NEW_SYM" not in router.books  # reading must not create a book machine
    assert Normalizer(None).records([update])[0]["sequence"] == 5


def test_order_fill_gives_order_and_fill_and_reads_new_fields_defensively() -> None:
    fill = ev.OrderUpdate("SOL_USDC_PERP", "orderFill", "o1", "c1", "sell", "MARKET", "Filled", None, D("2.0"),
                          None, D("2"), None, D("0.5"), D("20.10"), "t9", D("0.001"), "USDC", False, "IOC", None,
                          D("19.5"), None, None, None, 100, 101, 102)
    order, f = Normalizer().records([fill])
    assert order["type"] == "order" and order["remaining"] == "0" and order["trigger_price"] == "19.5"
    assert order["trigger_quantity"] is None and order["post_only"] is None and order["symbol"] == "SOL-USDC-PERP"
    assert f == {
        "type": "fill", "exchange": "BACKPACK", "symbol": "SOL-USDC-PERP", "timestamp": 100, "receipt": 102,
        "order_id": "o1", "trade_id": "t9", "side": "sell", "price": "20.1", "amount": "0.5", "fee": "0.001",
        "fee_asset": "USDC", "liquidity": "taker",
    }


def test_order_with_added_and_retyped_fields() -> None:
    class OrderUpdateNext(ev.OrderUpdate):  # a later field added by a subclass
        __slots__ = ("venue",)

    o = OrderUpdateNext("A_B", "triggerPlaced", "o2", None, "buy", "LIMIT", None, None, None, None, None, None,
                        None, None, None, None, None, None, None, None, None, D("3.000"), None, None, 0, 7, 8)
    n = Normalizer()
    (order,) = n.records([o])  # a subclass is normalized as its base type
    assert order["trigger_quantity"] == "3" and order["remaining"] is None and order["timestamp"] == 7
    err = ev.ErrorEvent("INVALID_ORDER", "bad", "x" * 5000, None, 3)  # REST errors may carry string codes
    (e,) = n.records([err])
    assert e["code"] == "INVALID_ORDER" and len(e["raw"]) == ev.RAW_LIMIT and e["symbol"] is None


def test_none_everywhere_does_not_crash() -> None:
    events = [
        ev.Trade("S_T", None, None, None, None, None, None, None, None, None),
        ev.BookTicker("S_T", None, None, None, None, None, None, None, None),
        ev.Ticker("S_T", None, None, None, None, None, None, None, None, None),
        ev.Candle("S_T", None, None, None, None, None, None, None, None, None, None, None, None),
        ev.MarkPrice("S_T", None, None, None, None, None, None, None),
        ev.OpenInterest("S_T", None, None, None),
        ev.Liquidation("S_T", None, None, None, None, None, None),
        ev.PositionUpdate("S_T", None, None, None, None, None, None, None, None, None, None, None, None, None,
                          None, None, None),
        ev.BalanceUpdate(None, None, None, None, None, None, None, None),
        ev.RfqUpdate("S_T", "rfqActive", *[None] * 14),
        ev.ErrorEvent(None, None, None, None, None),
        ev.ResyncNeeded("bad-sym-", "gap", None, None, None),
    ]
    lines = Normalizer().lines(events)
    assert len(lines) == len(events)
    assert json.loads(lines[-1])["symbol"] == "bad-sym-"  # a name the rule refuses passes through


def test_rfq_data_is_canonical_and_symbols_use_the_given_mapping() -> None:
    rfq = ev.RfqUpdate("SOL_USDC_RFQ", "rfqCandidate", "113", "7", "c1", "buy", D("10.0"), D("150"), D("15.50"),
                       "New", 1_000, 2_000_000, {"o": "10", "f": 0.5, "n": [D("1.0")], "z": {"b": 1}}, 1, 2, 3)
    n = Normalizer(symbol=lambda native: {"SOL_USDC_RFQ": "SOL/USDC:RFQ"}[native])
    (r,) = n.records([rfq])
    assert r["data"] == {"o": "10", "f": "0.5", "n": ["1"], "z": {"b": 1}} and r["symbol"] == "SOL/USDC:RFQ"
    assert (r["quote_id"], r["client_id"], r["side"], r["quantity"], r["quote_quantity"], r["price"]) == (
        "7", "c1", "buy", "10", "150", "15.5")
    assert (r["status"], r["submit_time"], r["expiry_time"]) == ("New", 1_000, 2_000_000)
    (r2,) = n.records([ev.RfqUpdate("OTHER_X", "rfqActive", None, *[None] * 9, {}, 1, 2, 3)])
    assert r2["symbol"] == "OTHER-X"  # unknown to the mapping: the rule applies


def test_actions_are_not_events() -> None:
    n = Normalizer()
    assert n.lines([ev.FetchSnapshot("A_B"), ev.Send("x"), object()]) == [] and n.ignored == 3
    assert normalize([]) == []


_SCRIPT = """
import json, sys
from pathlib import Path
from backpack.protocol.normalized import Normalizer
from backpack.protocol.router import Router
router = Router()
n = Normalizer(router.books)
out = []
for p in sorted(Path(sys.argv[1]).glob("*.json")):
    out += n.lines(router.receive_frame(p.read_text(), 1))
snap = {"lastUpdateId": "94978270", "timestamp": 5, "bids": [["18.%d" % i, "1.%d0" % i] for i in range(40)],
        "asks": [["19.%d" % i, "2"] for i in range(40)]}
out += n.lines(router.receive_snapshot("SOL_USDC", snap, 2))
out += n.lines(router.connection_lost())
sys.stdout.write("\\n".join(out))
"""


def test_byte_identical_across_hash_seeds() -> None:
    """Two processes with different PYTHONHASHSEED print the same bytes for the same input."""
    outputs = []
    for seed in ("0", "1234567", "random"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", _SCRIPT, str(WS)], capture_output=True, env=env,
                                check=True, cwd=REPO)
        outputs.append(result.stdout)
    assert outputs[0] and outputs[0].count(b"\n") > 25
    assert outputs[0] == outputs[1] == outputs[2]
    types = {json.loads(line)["type"] for line in outputs[0].splitlines()}
    assert {"trade", "book", "book_resync", "rfq", "order", "position", "bbo", "ticker", "candle"} <= types
