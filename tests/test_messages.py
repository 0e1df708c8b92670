"""Decoder and REST body tests against every reference payload, plus the edge cases of the wire."""

from __future__ import annotations

import ast
import dataclasses
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from backpack.protocol import messages
from backpack.protocol.events import (
    RAW_LIMIT,
    BalanceUpdate,
    BookTicker,
    Candle,
    DepthDelta,
    DepthSnapshot,
    ErrorEvent,
    Liquidation,
    MarkPrice,
    OpenInterest,
    OrderUpdate,
    PositionUpdate,
    RfqUpdate,
    Ticker,
    Trade,
)
from backpack.protocol.messages import Decoder, decode_depth_snapshot, decode_rest_klines, decode_rest_trades

FIXTURES = Path(__file__).parent / "fixtures"
WS = FIXTURES / "ws"
REST = FIXTURES / "rest"
D = Decimal


def ws_text(name: str) -> str:
    return (WS / name).read_text()


def decode_file(name: str, receipt: int = 0, decoder: Decoder | None = None) -> list:
    return (decoder or Decoder()).decode(ws_text(name), receipt)


def one(name: str, receipt: int = 0, decoder: Decoder | None = None):
    events = decode_file(name, receipt, decoder)
    assert len(events) == 1, events
    return events[0]


def frame(stream: str, data: object) -> str:
    return json.dumps({"stream": stream, "data": data})


def decode_one(stream: str, data: object, decoder: Decoder | None = None):
    events = (decoder or Decoder()).decode(frame(stream, data))
    assert len(events) == 1, events
    return events[0]


# --------------------------------------------------------------------------------------------
# every fixture decodes to its type, and every fixture file is covered
# --------------------------------------------------------------------------------------------

WS_EXPECTED_TYPES = {
    "official_book_ticker.json": BookTicker,
    "official_depth.json": DepthDelta,
    "official_kline.json": Candle,
    "official_liquidation.json": Liquidation,
    "official_mark_price.json": MarkPrice,
    "official_ticker.json": Ticker,
    "official_open_interest.json": OpenInterest,
    "official_trade.json": Trade,
    "official_order_accepted.json": OrderUpdate,
    "official_position_opened.json": PositionUpdate,
    "official_rfq_accepted.json": RfqUpdate,
    "official_rfq_active.json": RfqUpdate,
    "official_rfq_refreshed.json": RfqUpdate,
    "official_rfq_cancelled.json": RfqUpdate,
    "official_quote_accepted.json": RfqUpdate,
    "official_quote_cancelled.json": RfqUpdate,
    "official_rfq_candidate.json": RfqUpdate,
    "official_rfq_filled_requester.json": RfqUpdate,
    "official_rfq_filled_quoter.json": RfqUpdate,
    "ccxt_ticker_on_bookticker_stream.json": Ticker,
    "ccxt_ticker.json": Ticker,
    "ccxt_book_ticker.json": BookTicker,
    "ccxt_kline.json": Candle,
    "ccxt_trade.json": Trade,
    "ccxt_depth.json": DepthDelta,
    "ccxt_depth_raw.json": DepthDelta,
    "ccxt_order_accepted.json": OrderUpdate,
    "ccxt_order_fill.json": OrderUpdate,
    "ccxt_position_opened.json": PositionUpdate,
    "ccxt_error_4006.json": ErrorEvent,
}


def test_every_ws_fixture_is_listed() -> None:
    assert {p.name for p in WS.glob("*.json")} == set(WS_EXPECTED_TYPES)


@pytest.mark.parametrize("name", sorted(WS_EXPECTED_TYPES))
def test_ws_fixture_decodes_to_expected_type(name: str) -> None:
    decoder = Decoder()
    event = one(name, receipt=42, decoder=decoder)
    assert type(event) is WS_EXPECTED_TYPES[name], event
    assert event.receipt == 42
    if type(event) is not ErrorEvent:
        assert decoder.stats["errors"] == 0
        assert decoder.stats["events"] == 1


@pytest.mark.parametrize("name", sorted(WS_EXPECTED_TYPES))
def test_ws_fixture_decodes_the_same_from_bytes_and_twice(name: str) -> None:
    """The first frame of a stream resolves its route on the careful path; later ones take the
    fast path. Both, and bytes input, must give the same event."""
    decoder = Decoder()
    text = ws_text(name)
    first = decoder.decode(text, 1)
    second = decoder.decode(text.encode(), 1)
    compact = decoder.decode(orjson.dumps(orjson.loads(text)), 1)
    assert first == second
    assert [_no_raw(e) for e in first] == [_no_raw(e) for e in compact]


def _no_raw(event: object) -> object:
    return dataclasses.replace(event, raw="") if isinstance(event, ErrorEvent) else event


# --------------------------------------------------------------------------------------------
# official documentation samples, field by field
# --------------------------------------------------------------------------------------------


def test_official_book_ticker() -> None:
    ev = one("official_book_ticker.json")
    assert ev == BookTicker(
        symbol="SOL_USDC", bid=D("18.67"), bid_size=D("2.000"), ask=D("18.70"), ask_size=D("1.000"),
        sequence=111063070525358080, timestamp=1694687965940999, event_time=1694687965941000,
    )  # fmt: skip
    assert str(ev.bid_size) == "2.000"  # text kept exactly, not normalized


def test_official_depth() -> None:
    ev = one("official_depth.json", receipt=5)
    assert ev == DepthDelta(
        symbol="SOL_USDC", first_update_id=94978271, last_update_id=94978271,
        bids=[(D("18.67"), D("0.832")), (D("18.68"), D("0.000"))], asks=[(D("18.70"), D("0.000"))],
        timestamp=1694687965940999, event_time=1694687965941000, receipt=5,
    )  # fmt: skip


def test_official_kline() -> None:
    ev = one("official_kline.json")
    assert ev == Candle(
        symbol="SOL_USD", interval="1m", start=1726056000000000, stop=1726056060000000,
        open=D("18.75"), high=D("19.80"), low=D("18.50"), close=D("19.25"), volume=D("32123"),
        trades=93828, closed=False, event_time=1694687692980000,
    )  # fmt: skip


def test_official_liquidation() -> None:
    ev = one("official_liquidation.json")
    assert ev == Liquidation(
        symbol="SOL_USDC",
        side="buy",
        price=D("18.70"),
        amount=D("10"),
        timestamp=567,
        event_time=1694688638091000,
    )


def test_official_mark_price_next_funding_ms_to_us() -> None:
    ev = one("official_mark_price.json")
    assert ev == MarkPrice(
        symbol="SOL_USDC", mark_price=D("18.70"), index_price=D("19.70"), funding_rate=D("1.70"),
        next_funding_time=1694687965941000, timestamp=1694687965940999, event_time=1694687965941000,
    )  # fmt: skip


def test_official_ticker() -> None:
    ev = one("official_ticker.json")
    assert ev == Ticker(
        symbol="SOL_USD", open=D("18.75"), high=D("19.80"), low=D("18.50"), close=D("19.24"),
        volume=D("32123"), quote_volume=D("928190"), trades=93828, event_time=1694687692980000,
    )  # fmt: skip


def test_official_open_interest() -> None:
    ev = one("official_open_interest.json")
    assert ev == OpenInterest(symbol="SOL_USDC_PERP", open_interest=D("100"), event_time=1694687965941000)


def test_official_trade_buyer_maker_means_taker_sold() -> None:
    ev = one("official_trade.json")
    assert ev == Trade(
        symbol="SOL_USDC", id="12345", side="sell", price=D("18.68"), amount=D("0.122"),
        timestamp=1694688638089000, event_time=1694688638091000,
        buyer_order_id="111063114377265150", seller_order_id="111063114585735170",
    )  # fmt: skip


def test_official_order_accepted() -> None:
    ev = one("official_order_accepted.json")
    assert isinstance(ev, OrderUpdate)
    assert ev.symbol == "SOL_USD"
    assert ev.event == "orderAccepted"
    assert ev.order_id == "1111343026172067"
    assert ev.client_order_id == "123"  # JSON integer -> str
    assert ev.side == "buy"
    assert ev.order_type == "LIMIT"
    assert ev.status == "New"
    assert (ev.price, ev.amount, ev.quote_amount) == (D("20"), D("32123"), D("32123"))
    assert ev.filled == D("321")  # z, cumulative — not l
    assert ev.last_fill_amount == D("1.23")
    assert ev.filled_quote == D("123")
    assert ev.last_fill_price == D("20")
    assert ev.remaining == D("31802")
    assert ev.trade_id == "567"
    assert (ev.fee, ev.fee_asset, ev.maker) == (D("23"), "USD", True)
    assert (ev.time_in_force, ev.post_only, ev.trigger_price, ev.trigger_quantity) == ("GTC", True, D("21"), D("10"))
    assert (ev.origin, ev.expiry_reason) == ("USER", "PRICE_BAND")
    assert (ev.timestamp, ev.event_time) == (1694687692989999, 1694687692980000)


def test_official_position_json_numbers_are_coerced_exactly() -> None:
    decoder = Decoder()
    ev = one("official_position_opened.json", decoder=decoder)
    assert ev == PositionUpdate(
        symbol="SOL_USDC_PERP", event="positionOpened", position_id="1111343026172067",
        entry_price=D("122"), break_even_price=D("123"), mark_price=D("122"), quantity=D("5"),
        exposure_quantity=D("6"), notional=D("732"), liquidation_price=None, realized_pnl=D("-1"),
        unrealized_pnl=D("0"), initial_margin_fraction=D("0.5"), maintenance_margin_fraction=D("0.01"),
        timestamp=1694687692989999, event_time=1694687692980000,
    )  # fmt: skip
    assert str(ev.maintenance_margin_fraction) == "0.01"  # not 0.01000000000000000020816681711721685...
    assert decoder.stats["coerced"] == 8  # b B f M m q Q n


RFQ_EXPECTED = {
    "official_rfq_accepted.json": ("rfqAccepted", 1730225420368765, 1730225420369829,
                                   {"C": "123", "S": "Bid", "q": "10", "w": 1730225480368, "W": 1730225540368, "X": "New"}),
    "official_rfq_active.json": ("rfqActive", 1730225420368765, 1730225420369829,
                                 {"q": "10", "w": 1730225480368, "W": 1730225540368, "X": "New"}),
    "official_rfq_refreshed.json": ("rfqRefreshed", 1730225450368765, 1730225450369829,
                                    {"C": "123", "S": "Bid", "q": "10", "w": 1730225480368, "W": 1730225540368, "X": "New"}),
    "official_rfq_cancelled.json": ("rfqCancelled", 1730225460368765, 1730225460369829,
                                    {"C": "123", "S": "Bid", "Q": "150", "w": 1730225480368, "W": 1730225540368,
                                     "X": "Cancelled"}),
    "official_quote_accepted.json": ("quoteAccepted", 1730225434629778, 1730225434631394,
                                     {"u": 113392054083780608, "C": "123", "X": "New"}),
    "official_quote_cancelled.json": ("quoteCancelled", 1730225583753811, 1730225583761963,
                                      {"u": 113392062870847488, "C": "123", "X": "Cancelled"}),
    "official_rfq_candidate.json": ("rfqCandidate", 1730225490647080, 1730225490648996,
                                    {"u": 113392054083780608, "C": "123", "S": "Bid", "q": "10", "Q": "150",
                                     "p": "15.50", "X": "New"}),
    "official_rfq_filled_requester.json": ("rfqFilled", 1730225497647080, 1730225497648996,
                                           {"u": 113392054083780608, "C": "123", "S": "Bid", "Q": "150",
                                            "p": "15.50", "X": "Filled"}),
    "official_rfq_filled_quoter.json": ("rfqFilled", 1730225497647080, 1730225497648996,
                                        {"u": 113392054083780608, "C": "123", "p": "15.00", "X": "Filled"}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(RFQ_EXPECTED))
def test_official_rfq(name: str) -> None:
    event, ts, et, rest = RFQ_EXPECTED[name]
    ev = one(name)
    rfq_id = "113392061354344448" if name == "official_quote_cancelled.json" else "113392053149171712"
    assert ev == RfqUpdate(
        symbol="SOL_USDC_RFQ", event=event, rfq_id=rfq_id,
        quote_id=str(rest["u"]) if "u" in rest else None,
        client_id=rest.get("C"),
        side={"Bid": "buy", "Ask": "sell"}.get(rest.get("S")),
        quantity=D(rest["q"]) if "q" in rest else None,
        quote_quantity=D(rest["Q"]) if "Q" in rest else None,
        price=D(rest["p"]) if "p" in rest else None,
        status=rest.get("X"),
        submit_time=rest["w"] * 1000 if "w" in rest else None,
        expiry_time=rest["W"] * 1000 if "W" in rest else None,
        data={}, timestamp=ts, event_time=et,
    )  # fmt: skip


def test_rfq_candidate_fields_are_typed() -> None:
    ev = one("official_rfq_candidate.json")
    assert (ev.rfq_id, ev.quote_id, ev.client_id, ev.side) == ("113392053149171712", "113392054083780608", "123", "buy")
    assert (ev.quantity, ev.quote_quantity, ev.price) == (D("10"), D("150"), D("15.50"))
    assert str(ev.price) == "15.50" and ev.submit_time is None and ev.data == {}
    active = one("official_rfq_active.json")
    assert (active.submit_time, active.expiry_time) == (1730225480368000, 1730225540368000)  # ms -> µs
    assert active.side is None and active.client_id is None


def test_rfq_keeps_unlisted_fields_and_refuses_a_bad_side() -> None:
    decoder = Decoder()
    frame = {"stream": "account.rfqUpdate", "data": {"e": "rfqActive", "E": 2, "T": 1, "R": 5, "s": "SOL_USDC_RFQ",
                                                      "o": "x", "S": "Ask"}}  # fmt: skip
    [ev] = decoder.decode(json.dumps(frame))
    assert ev.data == {"o": "x"} and ev.side == "sell" and ev.rfq_id == "5"
    frame["data"]["S"] = "Up"
    [err] = decoder.decode(json.dumps(frame))
    assert isinstance(err, ErrorEvent) and "'S'" in err.message


# --------------------------------------------------------------------------------------------
# ccxt samples, field by field
# --------------------------------------------------------------------------------------------


def test_ccxt_ticker() -> None:
    ev = one("ccxt_ticker.json")
    assert ev == Ticker(
        symbol="ETH_USDC", open=D("3481.71"), high=D("3536.65"), low=D("3369.18"), close=D("3407.54"),
        volume=D("5542.3911"), quote_volume=D("19303818.6923"), trades=17272, event_time=1754178406415232,
    )  # fmt: skip


def test_ccxt_ticker_payload_on_book_ticker_stream_is_decoded_by_its_event_name() -> None:
    decoder = Decoder()
    ev = one("ccxt_ticker_on_bookticker_stream.json", decoder=decoder)
    assert ev == Ticker(
        symbol="ETH_USDC", open=D("3475.45"), high=D("3536.65"), low=D("3371.8"), close=D("3398.57"),
        volume=D("5573.5827"), quote_volume=D("19419526.742584"), trades=17152, event_time=1754176123312507,
    )  # fmt: skip
    assert decoder.stats["stream_mismatch"] == 1
    assert decoder.stats["errors"] == 0


def test_ccxt_book_ticker_with_string_times() -> None:
    ev = one("ccxt_book_ticker.json")
    assert ev == BookTicker(
        symbol="ETH_USDC", bid=D("3667.49"), bid_size=D("0.0020"), ask=D("3667.50"), ask_size=D("0.4087"),
        sequence=1328288557, timestamp=1754517402449064, event_time=1754517402450016,
    )  # fmt: skip


def test_ccxt_kline() -> None:
    ev = one("ccxt_kline.json")
    assert ev == Candle(
        symbol="ETH_USDC", interval="2h", start=1754517600000000, stop=1754524800000000,
        open=D("3670.150000000"), high=D("3681.370000000"), low=D("3667.650000000"),
        close=D("3680.520000000"), volume=D("62.2621000"), trades=255, closed=False,
        event_time=1754519557526056,
    )  # fmt: skip


def test_ccxt_trade_taker_bought() -> None:
    ev = one("ccxt_trade.json")
    assert ev == Trade(
        symbol="ETH_USDC_PERP", id="10782547", side="buy", price=D("3870.25"), amount=D("0.0008"),
        timestamp=1754601477744000, event_time=1754601477746429,
        buyer_order_id="5121861755", seller_order_id="5121860761",
    )  # fmt: skip


def test_ccxt_depth_empty_sides() -> None:
    ev = one("ccxt_depth.json")
    assert ev == DepthDelta(
        symbol="ETH_USDC", first_update_id=1345937436, last_update_id=1345937436, bids=[], asks=[],
        timestamp=1754903057554352, event_time=1754903057555305,
    )  # fmt: skip


def test_ccxt_depth_raw_delete_level() -> None:
    ev = one("ccxt_depth_raw.json")
    assert ev.symbol == "BTC_USDC_PERP"
    assert ev.bids == [(D("117357.0"), D("0.00000"))]
    assert ev.bids[0][1] == 0
    assert (ev.first_update_id, ev.last_update_id) == (1662976171, 1662976171)
    assert (ev.timestamp, ev.event_time) == (1759338824895616, 1759338824897386)


def test_ccxt_order_accepted_null_trade_id() -> None:
    ev = one("ccxt_order_accepted.json")
    assert ev == OrderUpdate(
        symbol="ETH_USDC", event="orderAccepted", order_id="5406825793", client_order_id=None, side="buy",
        order_type="MARKET", status="New", price=None, amount=D("0.0010"), quote_amount=D("4.30"),
        filled=D("0"), filled_quote=D("0"), last_fill_amount=None, last_fill_price=None, trade_id=None,
        fee=None, fee_asset=None, maker=None, time_in_force="GTC", post_only=None, trigger_price=None,
        trigger_quantity=None, origin="USER", expiry_reason=None, timestamp=1754939110174703, event_time=1754939110175843,
    )  # fmt: skip


def test_ccxt_order_fill() -> None:
    ev = one("ccxt_order_fill.json")
    assert ev.event == "orderFill"
    assert ev.trade_id == "2888471"
    assert (ev.filled, ev.last_fill_amount, ev.last_fill_price) == (D("0.0010"), D("0.0010"), D("4299.16"))
    assert (ev.fee, ev.fee_asset, ev.maker) == (D("0.000001"), "ETH", False)
    assert ev.filled_quote == D("4.299160")
    assert ev.status == "Filled"
    assert ev.remaining == 0
    assert (ev.timestamp, ev.event_time) == (1754939110174705, 1754939110175879)


def test_ccxt_position_entry_is_B_break_even_is_b() -> None:
    decoder = Decoder()
    ev = one("ccxt_position_opened.json", decoder=decoder)
    assert ev == PositionUpdate(
        symbol="ETH_USDC_PERP", event="positionOpened", position_id="5411399049",
        entry_price=D("4236.36"), break_even_price=D("4238.479"), mark_price=D("4235.88650933"),
        quantity=D("0.0010"), exposure_quantity=D("0.0010"), notional=D("4.23588650933"),
        liquidation_price=None, realized_pnl=D("0"), unrealized_pnl=D("-0.000473"),
        initial_margin_fraction=D("0.02"), maintenance_margin_fraction=D("0.0125"),
        timestamp=1754943862040487, event_time=1754943862040486,
    )  # fmt: skip
    assert decoder.stats["coerced"] == 0


def test_ccxt_error_frame() -> None:
    decoder = Decoder()
    ev = one("ccxt_error_4006.json", decoder=decoder)
    assert (ev.code, ev.message, ev.stream) == (4006, "Invalid stream", None)
    assert '"code": 4006' in ev.raw
    assert decoder.stats["errors"] == 1


# --------------------------------------------------------------------------------------------
# wire variations
# --------------------------------------------------------------------------------------------

DEPTH = {"e": "depth", "E": 1694687965941000, "s": "SOL_USDC", "a": [["18.70", "0.000"]], "b": [["18.67", "0.832"]],
         "U": 94978270, "u": 94978271, "T": 1694687965940999}  # fmt: skip
TRADE = {"e": "trade", "E": 1694688638091000, "s": "SOL_USDC", "p": "18.68", "q": "0.122", "b": "111", "a": "222",
         "t": 12345, "T": 1694688638089000, "m": False}  # fmt: skip
BBO = {"e": "bookTicker", "E": 1694687965941000, "s": "SOL_USDC", "a": "18.70", "A": "1.000", "b": "18.67",
       "B": "2.000", "u": 111063070525358080, "T": 1694687965940999}  # fmt: skip


@pytest.mark.parametrize("as_string", [False, True])
def test_depth_integer_fields_as_int_or_string(as_string: bool) -> None:
    data = dict(DEPTH)
    if as_string:
        data.update({k: str(data[k]) for k in "EUuT"})
    decoder = Decoder()
    for _ in range(2):  # careful path (first frame), then fast path
        ev = decode_one("depth.SOL_USDC", data, decoder)
        assert (ev.first_update_id, ev.last_update_id) == (94978270, 94978271)
        assert (ev.timestamp, ev.event_time) == (1694687965940999, 1694687965941000)
    assert decoder.stats["coerced"] == 0
    assert decoder.stats["errors"] == 0


@pytest.mark.parametrize("as_string", [False, True])
def test_trade_integer_fields_as_int_or_string(as_string: bool) -> None:
    data = dict(TRADE)
    if as_string:
        data.update({k: str(data[k]) for k in "EtT"})
    decoder = Decoder()
    for _ in range(2):
        ev = decode_one("trade.SOL_USDC", data, decoder)
        assert (ev.id, ev.side, ev.timestamp, ev.event_time) == (
            "12345",
            "buy",
            1694688638089000,
            1694688638091000,
        )


def test_book_ticker_sequence_as_string_or_int() -> None:
    a = decode_one("bookTicker.SOL_USDC", BBO)
    b = decode_one("bookTicker.SOL_USDC", {**BBO, "u": "111063070525358080"})
    assert a == b
    assert a.sequence == 111063070525358080


@pytest.mark.parametrize("empty", [None, "missing", ""])
def test_book_ticker_empty_side_is_none(empty: object) -> None:
    data = dict(BBO)
    if empty == "missing":
        del data["b"], data["B"]
    else:
        data["b"] = data["B"] = empty
    decoder = Decoder()
    for _ in range(2):
        ev = decode_one("bookTicker.SOL_USDC", data, decoder)
        assert (ev.bid, ev.bid_size) == (None, None)
        assert (ev.ask, ev.ask_size) == (D("18.70"), D("1.000"))
    assert decoder.stats["errors"] == 0


def test_ticker_na_and_null_values_are_none() -> None:
    data = {
        "e": "ticker",
        "E": 1,
        "s": "X_Y",
        "o": "N/A",
        "c": None,
        "h": "",
        "l": "1",
        "v": "2",
        "V": "N/A",
        "n": 3,
    }
    ev = decode_one("ticker.X_Y", data)
    assert (ev.open, ev.close, ev.high, ev.low, ev.volume, ev.quote_volume) == (
        None,
        None,
        None,
        D(1),
        D(2),
        None,
    )
    assert ev.trades == 3


def test_decimal_as_json_number_is_coerced_and_counted() -> None:
    decoder = Decoder()
    ev = decode_one("trade.SOL_USDC", {**TRADE, "p": 18.68, "q": 1}, decoder)
    assert (ev.price, ev.amount) == (D("18.68"), D("1"))
    assert str(ev.price) == "18.68"
    assert decoder.stats["coerced"] == 2
    ev = decode_one("depth.SOL_USDC", {**DEPTH, "b": [[18.5, 0.1]]}, decoder)
    assert ev.bids == [(D("18.5"), D("0.1"))]
    assert decoder.stats["coerced"] == 4


def test_small_float_goes_through_repr_exponent() -> None:
    ev = decode_one("trade.SOL_USDC", {**TRADE, "q": 1e-7})
    assert ev.amount == D("1e-7")


@pytest.mark.parametrize("bad", ["NaN", "nan", "Infinity", "-Infinity", "inf", "sNaN", "NaN12"])
def test_nan_and_infinity_decimals_are_errors(bad: str) -> None:
    decoder = Decoder()
    for stream, data in (("trade.SOL_USDC", {**TRADE, "p": bad}), ("depth.SOL_USDC", {**DEPTH, "a": [[bad, "1"]]}),
                         ("bookTicker.SOL_USDC", {**BBO, "A": bad})):  # fmt: skip
        ev = decode_one(stream, data, decoder)
        assert isinstance(ev, ErrorEvent)
        assert "NaN and Infinity" in ev.message
        assert ev.stream == stream
    assert decoder.stats["errors"] == 3


@pytest.mark.parametrize(
    "bad", ["1e999999999", "1E-999999999", " 1.5", "1_000", "1.2.3", "--1", "0x10", "١٢"]
)
def test_malformed_decimal_text_is_an_error(bad: str) -> None:
    ev = decode_one("trade.SOL_USDC", {**TRADE, "q": bad})
    assert isinstance(ev, ErrorEvent)
    assert "field 'q'" in ev.message


def test_exponent_notation_within_bounds_is_accepted() -> None:
    ev = decode_one("trade.SOL_USDC", {**TRADE, "q": "1.5E-3"})
    assert ev.amount == D("0.0015")


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("E", 1.5, "non-integer number"),
        ("E", True, "expected an integer"),
        ("E", "12a", "expected an integer"),
        ("u", 2**70, "64 bits"),  # orjson turns it into a float
        ("m", "true", "expected true or false"),
        ("s", 5, "expected a non-empty string"),
        ("t", 1.0, "expected an id"),
        ("p", None, "expected a decimal"),
        ("p", "N/A", "expected a decimal"),
        ("p", [1], "an array of 1"),
    ],
)
def test_wrong_types_are_specific_errors(field: str, value: object, fragment: str) -> None:
    data = {**TRADE, field: value} if field != "u" else {**DEPTH, "u": value}
    stream = "trade.SOL_USDC" if field != "u" else "depth.SOL_USDC"
    ev = Decoder().decode(json.dumps({"stream": stream, "data": data}))[0]
    assert isinstance(ev, ErrorEvent), ev
    assert ev.code is None
    assert f"field {field!r}" in ev.message
    assert fragment in ev.message


@pytest.mark.parametrize("field", ["E", "T", "U", "u", "a", "b", "s"])
def test_missing_depth_field_is_named(field: str) -> None:
    data = {k: v for k, v in DEPTH.items() if k != field}
    ev = decode_one("depth.SOL_USDC", data)
    if field == "s":  # the stream name still carries the symbol
        assert isinstance(ev, DepthDelta) and ev.symbol == "SOL_USDC"
    else:
        assert isinstance(ev, ErrorEvent)
        assert f"missing field {field!r}" in ev.message


@pytest.mark.parametrize(
    "level", ["12", {"1": "a", "2": "b"}, ["1"], ["1", "2", "3"], [None, "1"], ["1", "N/A"]]
)
def test_malformed_depth_levels_never_unpack_silently(level: object) -> None:
    ev = decode_one("depth.SOL_USDC", {**DEPTH, "b": [level]})
    assert isinstance(ev, ErrorEvent)
    assert "field 'b'[0]" in ev.message


def test_depth_side_must_be_a_list() -> None:
    for side in ("12", {"1": "2"}, None):
        ev = decode_one("depth.SOL_USDC", {**DEPTH, "a": side})
        assert isinstance(ev, ErrorEvent) and "field 'a'" in ev.message


def test_depth_stream_variants() -> None:
    base = {**DEPTH}
    del base["s"]
    for stream, symbol in [
        ("depth.SOL_USDC", "SOL_USDC"),
        ("depth.200ms.SOL_USDC", "SOL_USDC"),
        ("depth.1000ms.SOL_USDC", "SOL_USDC"),
        ("depth.AAPL.US_USDC_PERP", "AAPL.US_USDC_PERP"),
        ("depth.600ms.AAPL.US_USDC_PERP", "AAPL.US_USDC_PERP"),
    ]:
        ev = decode_one(stream, base)
        assert isinstance(ev, DepthDelta) and ev.symbol == symbol, (stream, ev)


def test_kline_closed_and_interval_from_stream() -> None:
    data = orjson.loads(ws_text("official_kline.json"))["data"]
    ev = decode_one("kline.1month.SOL_USD", {**data, "X": True})
    assert (ev.interval, ev.closed) == ("1month", True)
    bad = decode_one("kline.1m.SOL_USD", {**data, "t": "yesterday"})
    assert isinstance(bad, ErrorEvent) and "field 't'" in bad.message


def test_mark_price_without_funding_fields() -> None:
    """Prediction markets: no f, i, n."""
    data = {"e": "markPrice", "E": 1694687965941000, "s": "PRED_USDC", "p": "0.42", "T": 1694687965940999}
    ev = decode_one("markPrice.PRED_USDC", data)
    assert ev == MarkPrice("PRED_USDC", D("0.42"), None, None, None, 1694687965940999, 1694687965941000)


def test_liquidation_symbol_stream_and_ask_side() -> None:
    data = {**orjson.loads(ws_text("official_liquidation.json"))["data"], "S": "Ask"}
    ev = decode_one("liquidation.SOL_USDC", data)
    assert isinstance(ev, Liquidation) and ev.side == "sell"
    bad = decode_one("liquidation", {**data, "S": "Buy"})
    assert isinstance(bad, ErrorEvent) and "field 'S'" in bad.message


def test_order_update_int_client_and_order_ids_and_trade_id() -> None:
    data = orjson.loads(ws_text("ccxt_order_fill.json"))["data"]
    ev = decode_one("account.orderUpdate", {**data, "c": 77, "i": 5406825793, "t": "2888471"})
    assert (ev.client_order_id, ev.order_id, ev.trade_id) == ("77", "5406825793", "2888471")


def test_order_update_filled_is_cumulative_z_not_last_fill_l() -> None:
    data = orjson.loads(ws_text("ccxt_order_fill.json"))["data"]
    ev = decode_one("account.orderUpdate.ETH_USDC", {**data, "q": "1.0", "l": "0.2", "z": "0.7"})
    assert (ev.filled, ev.last_fill_amount, ev.remaining) == (D("0.7"), D("0.2"), D("0.3"))


def test_balance_update() -> None:
    data = {"e": "balanceUpdate", "E": 10, "a": "USDC", "A": "112.847976936", "L": "0", "S": "5", "T": 9}
    ev = decode_one("account.balanceUpdate", data)
    assert ev == BalanceUpdate("USDC", D("112.847976936"), D("0"), D("5"), "balanceUpdate", 9, 10)


# --------------------------------------------------------------------------------------------
# position snapshot on subscribe
# --------------------------------------------------------------------------------------------

POSITION = {"s": "ETH_USDC_PERP", "b": "4238.479", "B": "4236.36", "M": "4235.88", "q": "-0.5", "Q": "0.5",
            "n": "2117.94", "i": "5411399049", "l": "0", "p": "0", "P": "-0.000473", "f": "0.02", "m": "0.0125"}  # fmt: skip


def test_position_snapshot_single_object_without_e() -> None:
    ev = Decoder().decode(frame("account.positionUpdate", POSITION), receipt=777)
    assert len(ev) == 1
    assert ev[0].event is None
    assert (ev[0].entry_price, ev[0].break_even_price, ev[0].quantity) == (
        D("4236.36"),
        D("4238.479"),
        D("-0.5"),
    )
    assert (ev[0].timestamp, ev[0].event_time) == (777, 777)  # no E/T in a snapshot: receipt stands in


def test_position_snapshot_list() -> None:
    second = {**POSITION, "s": "SOL_USDC_PERP", "E": 5, "T": 4}
    decoder = Decoder()
    events = decoder.decode(frame("account.positionUpdate", [POSITION, second]), receipt=9)
    assert [type(e) for e in events] == [PositionUpdate, PositionUpdate]
    assert [e.symbol for e in events] == ["ETH_USDC_PERP", "SOL_USDC_PERP"]
    assert all(e.event is None for e in events)
    assert (events[1].timestamp, events[1].event_time) == (4, 5)
    assert decoder.stats["events"] == 2


def test_position_snapshot_list_with_a_bad_element_keeps_the_good_ones() -> None:
    decoder = Decoder()
    events = decoder.decode(frame("account.positionUpdate", [POSITION, {**POSITION, "B": "x"}, 7]))
    assert [type(e) for e in events] == [PositionUpdate, ErrorEvent, ErrorEvent]
    assert "data[1]" in events[1].message and "field 'B'" in events[1].message
    assert "data[2] is not a JSON object" in events[2].message
    assert (decoder.stats["events"], decoder.stats["errors"]) == (1, 2)


def test_empty_position_snapshot_is_dropped() -> None:
    decoder = Decoder()
    assert decoder.decode(frame("account.positionUpdate", [])) == []
    assert decoder.stats["dropped"] == 1


def test_position_snapshot_in_rest_shape() -> None:
    rest = orjson.loads((REST / "ccxt_static_positions.json").read_text())
    events = Decoder().decode(frame("account.positionUpdate", rest), receipt=3)
    assert len(events) == 1
    ev = events[0]
    assert ev == PositionUpdate(
        symbol="ETH_USDC_PERP", event=None, position_id="5479295502", entry_price=D("4447.065"),
        break_even_price=D("4460.3195"), mark_price=D("4420.23644794"), quantity=D("0.002"),
        exposure_quantity=D("0.002"), notional=D("8.84047289588"), liquidation_price=D("0"),
        realized_pnl=D("-0.054434"), unrealized_pnl=D("0.000776"), initial_margin_fraction=D("0.02"),
        maintenance_margin_fraction=D("0.0125"), timestamp=3, event_time=3, receipt=3,
    )  # fmt: skip


def test_position_update_with_event_needs_a_time() -> None:
    data = {**POSITION, "e": "positionAdjusted"}
    ev = decode_one("account.positionUpdate", data)
    assert isinstance(ev, ErrorEvent) and "'T' and 'E'" in ev.message


# --------------------------------------------------------------------------------------------
# errors, unknown streams, malformed frames
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "message"), [(4002, "Parse error"), (4006, "Invalid stream"), (4008, "Invalid depth window")]
)
def test_exchange_error_frames(code: int, message: str) -> None:
    decoder = Decoder()
    text = json.dumps({"id": None, "error": {"code": code, "message": message}})
    [ev] = decoder.decode(text, receipt=11)
    assert ev == ErrorEvent(code=code, message=message, raw=text, stream=None, receipt=11)
    [ev2] = decoder.decode(json.dumps({"id": 3, "error": {"code": str(code), "message": message}}))
    assert ev2.code == code
    assert decoder.stats["errors"] == 2
    assert decoder.stats["events"] == 0


def test_error_frame_of_odd_shapes() -> None:
    [a] = Decoder().decode('{"error": "boom"}')
    [b] = Decoder().decode('{"error": {"code": "x"}}')
    [c] = Decoder().decode('{"error": 5}')
    [d] = Decoder().decode('{"error": ""}')
    assert d.message and "unexpected shape" in d.message
    assert (a.code, a.message) == (None, "boom")
    assert b.code is None and "without a message" in b.message
    assert c.code is None and "unexpected shape" in c.message


@pytest.mark.parametrize(
    "stream",
    [
        "nope.SOL_USDC",
        "trade",
        "depth",
        "kline.1m",
        "kline",
        "account",
        "account.nothing",
        "Trade.SOL_USDC",
        "",
    ],
)
def test_unknown_stream(stream: str) -> None:
    decoder = Decoder()
    [ev] = decoder.decode(frame(stream, TRADE))
    assert isinstance(ev, ErrorEvent)
    assert ev.message == f"unknown stream {stream!r}"
    assert ev.stream == stream
    assert decoder.stats["unknown_stream"] == 1
    assert decoder.stats["errors"] == 1


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("", "invalid JSON"),
        ("{", "invalid JSON"),
        ("[1, 2]", "not a JSON object (got an array of 2)"),
        ('"text"', "not a JSON object"),
        ("null", "not a JSON object (got null)"),
        ('{"data": {}}', "no 'stream'"),
        ('{"stream": 5, "data": {}}', "'stream' must be a string"),
        ('{"stream": "trade.SOL_USDC"}', "no 'data'"),
        ('{"stream": "trade.SOL_USDC", "data": [1]}', "data is not a JSON object"),
        ('{"stream": "trade.SOL_USDC", "data": "x"}', "data is not a JSON object"),
        ('{"stream": ["trade.SOL_USDC"], "data": {}}', "'stream' must be a string"),
    ],
)
def test_malformed_frames(text: str, fragment: str) -> None:
    decoder = Decoder()
    [ev] = decoder.decode(text)
    assert isinstance(ev, ErrorEvent) and ev.code is None
    assert fragment in ev.message, ev.message
    assert ev.raw == text
    assert decoder.stats == {**decoder.stats, "frames": 1, "errors": 1, "events": 0}


def test_acknowledgement_is_dropped() -> None:
    decoder = Decoder()
    assert decoder.decode('{"id": 1, "result": null}') == []
    assert decoder.stats["dropped"] == 1 and decoder.stats["errors"] == 0


@pytest.mark.parametrize("frame_in", [b"\xff\xfe{}", b'{"stream": "\xed\xa0\x80"}', "\ud800", bytearray(b"{"),
                                      memoryview(b"[]"), None, 17, 1.5, object(), ["stream"]])  # fmt: skip
def test_any_input_gives_one_error_event(frame_in: object) -> None:
    decoder = Decoder()
    events = decoder.decode(frame_in)  # type: ignore[arg-type]
    assert len(events) == 1 and isinstance(events[0], ErrorEvent)
    events[0].raw.encode("utf-8")  # always encodable: lone surrogates replaced
    assert len(events[0].raw) <= RAW_LIMIT


def test_raw_is_truncated() -> None:
    text = frame("trade.SOL_USDC", {**TRADE, "p": "x" * 5000})
    [ev] = Decoder().decode(text)
    assert isinstance(ev, ErrorEvent)
    assert ev.raw == text[:RAW_LIMIT]
    assert len(ev.message) < 300
    [ev] = Decoder().decode(text.encode())
    assert ev.raw == text[:RAW_LIMIT]


def test_huge_unknown_stream_name_is_bounded_in_message() -> None:
    [ev] = Decoder().decode(frame("x" * 100_000, {}))
    assert len(ev.message) < 200 and len(ev.stream) <= 200


def test_stats_count_everything() -> None:
    decoder = Decoder()
    for name in (
        "official_trade.json",
        "official_trade.json",
        "official_position_opened.json",
        "ccxt_error_4006.json",
    ):
        decoder.decode(ws_text(name))
    decoder.decode(frame("what.ever", {}))
    decoder.decode(frame("account.positionUpdate", []))
    assert decoder.stats == {
        "frames": 6, "events": 3, "errors": 2, "unknown_stream": 1, "coerced": 8, "dropped": 1, "stream_mismatch": 0,
    }  # fmt: skip


def test_route_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "_MAX_ROUTES", 3)
    decoder = Decoder()
    for i in range(10):
        [ev] = decoder.decode(frame(f"trade.S{i}", {**TRADE, "s": f"S{i}"}))
        assert isinstance(ev, Trade) and ev.symbol == f"S{i}"
    assert len(decoder._fast) == 3


def test_decimal_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(messages, "_DECIMAL_CACHE_MAX", 4)
    messages._DC.clear()
    decoder = Decoder()
    decoder.decode(frame("trade.SOL_USDC", TRADE))  # warm the route
    for i in range(20):
        [ev] = decoder.decode(frame("trade.SOL_USDC", {**TRADE, "p": f"{i}.5"}))
        assert ev.price == D(f"{i}.5")
    assert len(messages._DC) <= 4


# --------------------------------------------------------------------------------------------
# REST bodies
# --------------------------------------------------------------------------------------------


def test_rest_depth_snapshot_handwritten() -> None:
    body = (REST / "handwritten_depth.json").read_text()
    for form in (body, body.encode(), orjson.loads(body)):
        snap = decode_depth_snapshot("SOL_USDC", form, receipt=8)
        assert snap == DepthSnapshot(
            symbol="SOL_USDC", last_update_id=111063070525358080,
            bids=[(D("18.50"), D("3.000")), (D("18.60"), D("0.010")), (D("18.67"), D("2.000"))],
            asks=[(D("18.70"), D("1.000")), (D("18.71"), D("0.500")), (D("18.80"), D("12.25"))],
            timestamp=1694687965940999, receipt=8,
        )  # fmt: skip
    assert snap.bids[-1][0] == D("18.67")  # best bid is the LAST element; order kept as received


def test_rest_depth_integer_update_id_and_missing_timestamp() -> None:
    snap = decode_depth_snapshot("X", {"asks": [], "bids": [[1, "2"]], "lastUpdateId": 12}, receipt=99)
    assert (snap.last_update_id, snap.timestamp, snap.bids) == (12, 99, [(D(1), D(2))])


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"asks": [], "bids": []}, "missing field 'lastUpdateId'"),
        ({"asks": [], "lastUpdateId": "1"}, "missing field 'bids'"),
        ({"asks": [["1", "NaN"]], "bids": [], "lastUpdateId": "1"}, "field 'asks'[0][1]"),
        ({"asks": [], "bids": [], "lastUpdateId": "one"}, "field 'lastUpdateId'"),
        ([], "expected a JSON object"),
        ("Invalid symbol", "body is not JSON"),
        (b"\xff", "body is not JSON"),
    ],
)
def test_rest_depth_errors(body: object, fragment: str) -> None:
    ev = decode_depth_snapshot("SOL_USDC", body)  # type: ignore[arg-type]
    assert isinstance(ev, ErrorEvent) and fragment in ev.message, ev


def test_rest_exchange_error_body() -> None:
    body = (REST / "ccxt_inline_error.json").read_bytes()
    for fn in (
        lambda: decode_depth_snapshot("X", body),
        lambda: decode_rest_trades("X", body),
        lambda: decode_rest_klines("X", "1m", body),
    ):
        ev = fn()
        assert isinstance(ev, ErrorEvent)
        assert "INVALID_CLIENT_REQUEST" in ev.message and "triggerQuantity" in ev.message


def test_rest_trades_static_fixture_string_integers() -> None:
    trades = decode_rest_trades("ETH_USDC", (REST / "ccxt_static_trades.json").read_text())
    assert [t.id for t in trades] == ["7558558", "7558557", "7558556", "7558555", "7558554"]
    assert [t.side for t in trades] == ["sell", "sell", "sell", "buy", "buy"]
    assert trades[0] == Trade(
        symbol="ETH_USDC", id="7558558", side="sell", price=D("1626.15"), amount=D("0.0333"),
        timestamp=1781067801978000, event_time=1781067801978000, buyer_order_id=None, seller_order_id=None,
    )  # fmt: skip
    assert (trades[3].price, trades[3].amount, trades[3].timestamp) == (
        D("1624"),
        D("0.0376"),
        1781067762954000,
    )


def test_rest_trades_inline_fixture_json_integers() -> None:
    [trade] = decode_rest_trades("BTC_USDC", (REST / "ccxt_inline_trades.json").read_bytes())
    assert (trade.id, trade.side, trade.price, trade.amount, trade.timestamp) == (
        "8721563", "buy", D("117427.6"), D("0.00016"), 1753123916819000,
    )  # fmt: skip


def test_rest_trades_errors() -> None:
    assert decode_rest_trades("X", []) == []
    ev = decode_rest_trades(
        "X", [{"id": 1, "isBuyerMaker": "no", "price": "1", "quantity": "1", "timestamp": 1}]
    )
    assert isinstance(ev, ErrorEvent) and "[0]" in ev.message and "isBuyerMaker" in ev.message
    ev = decode_rest_trades("X", [{"id": 1, "isBuyerMaker": True, "price": "1", "quantity": "1"}])
    assert isinstance(ev, ErrorEvent) and "missing field 'timestamp'" in ev.message
    ev = decode_rest_trades("X", {"a": 1})
    assert isinstance(ev, ErrorEvent) and "expected a JSON array" in ev.message


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("ccxt_static_klines_since.json",
         (1757604780000000, 1757604840000000, "4422.62", "4422.75", "4422.62", "4422.62", "0.0176", 2)),
        ("ccxt_static_klines.json",
         (1754912280000000, 1754912340000000, "4202.78", "4207.44", "4202.78", "4207.44", "7.3769", 18)),
        ("ccxt_inline_klines.json",
         (1752930540000000, 1752930720000000, "118238", "118297.6", "118237.5", "118294.6", "0.03473", 12)),
    ],
)  # fmt: skip
def test_rest_klines(name: str, expected: tuple) -> None:
    [candle] = decode_rest_klines("ETH_USDC", "1m", (REST / name).read_text())
    start, stop, o, h, lo, c, v, n = expected
    assert candle == Candle(
        symbol="ETH_USDC", interval="1m", start=start, stop=stop, open=D(o), high=D(h), low=D(lo), close=D(c),
        volume=D(v), trades=n, closed=True, event_time=start,
    )  # fmt: skip


def test_rest_klines_open_candle_with_caller_clock() -> None:
    body = (REST / "ccxt_static_klines.json").read_text()
    [candle] = decode_rest_klines("ETH_USDC", "1m", body, now_us=1754912300000000)
    assert candle.closed is False
    [candle] = decode_rest_klines("ETH_USDC", "1m", body, now_us=1754912340000000)
    assert candle.closed is True


def test_rest_klines_errors() -> None:
    ev = decode_rest_klines("X", "1m", [{"start": "soon", "end": "2025-01-01 00:00:00"}])
    assert isinstance(ev, ErrorEvent) and "[0]" in ev.message and "field 'start'" in ev.message
    ev = decode_rest_klines("X", "1m", "not json")
    assert isinstance(ev, ErrorEvent) and "not JSON" in ev.message


# --------------------------------------------------------------------------------------------
# sans-I/O discipline
# --------------------------------------------------------------------------------------------

PROTOCOL_FILES = [Path(messages.__file__), Path(messages.__file__).with_name("numbers.py")]


@pytest.mark.parametrize("path", PROTOCOL_FILES, ids=lambda p: p.name)
def test_no_io_imports_and_no_clock(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            imported.add(node.module.split(".")[0])
    assert not imported & {"asyncio", "aiohttp", "websockets", "cryptofeed", "time", "socket"}
    clock_calls = {"now", "utcnow", "today", "time", "monotonic", "perf_counter", "time_ns", "monotonic_ns"}
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)}
    assert not used & clock_calls


def test_importing_the_decoder_loads_no_io_library() -> None:
    """``backpack/__init__`` registers the feed with cryptofeed, so the parent package is stubbed here:
    this checks what the protocol package and this module pull in themselves."""
    pkg = Path(messages.__file__).parent.parent
    code = (
        "import sys, types\n"
        f"stub = types.ModuleType('backpack'); stub.__path__ = [{str(pkg)!r}]; sys.modules['backpack'] = stub\n"
        "import backpack.protocol.messages\n"
        "bad = [m for m in ('asyncio', 'aiohttp', 'websockets', 'cryptofeed') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


FAST_FIXTURES = [
    "official_depth.json", "official_book_ticker.json", "official_trade.json", "official_ticker.json",
    "official_kline.json", "official_mark_price.json", "ccxt_depth.json", "ccxt_depth_raw.json",
    "ccxt_book_ticker.json", "ccxt_trade.json", "ccxt_ticker.json", "ccxt_kline.json",
]  # fmt: skip


@pytest.mark.parametrize("name", FAST_FIXTURES)
def test_hot_streams_take_the_fast_path_after_the_first_frame(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards the performance design: a fast handler that silently always declined would still give
    correct events (via the careful path), so only this test would notice."""
    decoder = Decoder()
    first = decoder.decode(ws_text(name))

    def no_careful(*args: object) -> list:
        raise AssertionError("careful path used")

    monkeypatch.setattr(Decoder, "_careful", no_careful)
    assert decoder.decode(ws_text(name)) == first
