"""Fields the exchange documents keep their documented meaning in the core's events."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import orjson
import pytest

from backpack.protocol.events import ErrorEvent, FetchSnapshot, OrderUpdate, PositionUpdate
from backpack.protocol.messages import Decoder, decode_depth_snapshot, decode_rest_klines, decode_rest_trades
from backpack.protocol.router import Router, is_auth_error

FIXTURES = Path(__file__).parent / "fixtures"
D = Decimal


def ws(name: str) -> dict:
    return orjson.loads((FIXTURES / "ws" / name).read_bytes())


def decode(msg: dict) -> list:
    """Through a cold and a warm decoder: both paths must agree on these fields too."""
    text = json.dumps(msg)
    warm = Decoder()
    warm.decode(text)
    cold_out, warm_out = Decoder().decode(text), warm.decode(text)
    assert cold_out == warm_out
    return cold_out


# --- trigger orders: the size is in Y while q is "0" ---------------------------------------------


def test_trigger_quantity_of_the_official_example() -> None:
    [ev] = decode(ws("official_order_accepted.json"))
    assert isinstance(ev, OrderUpdate) and ev.trigger_quantity == D("10")
    assert (ev.trigger_price, ev.amount) == (D("21"), D("32123"))


def test_trigger_order_keeps_its_size() -> None:
    msg = ws("official_order_accepted.json")
    msg["data"].update(e="triggerPlaced", q="0", Y="2.5", X="TriggerPending")
    for key in ("t", "l", "L", "m", "n", "N", "z", "Z", "R"):
        del msg["data"][key]
    [ev] = decode(msg)
    assert (ev.event, ev.amount, ev.trigger_quantity) == ("triggerPlaced", D("0"), D("2.5"))


def test_orders_without_a_trigger_have_no_trigger_quantity() -> None:
    msg = ws("ccxt_order_accepted.json")
    assert "Y" not in msg["data"]
    [ev] = decode(msg)
    assert ev.trigger_quantity is None


@pytest.mark.parametrize("bad", ["ten", "NaN", [], True])
def test_a_bad_trigger_quantity_is_named(bad: object) -> None:
    msg = ws("official_order_accepted.json")
    msg["data"]["Y"] = bad
    [ev] = decode(msg)
    assert isinstance(ev, ErrorEvent) and "field 'Y'" in ev.message


# --- positions: WS "l" is a deprecated placeholder, REST estLiquidationPrice is real ---------------


@pytest.mark.parametrize("value", ["0", "0.0", "4100.5", 0, "junk", None])
def test_ws_position_l_is_never_a_liquidation_price(value: object) -> None:
    msg = ws("ccxt_position_opened.json")
    msg["data"]["l"] = value
    [ev] = decode(msg)
    assert isinstance(ev, PositionUpdate) and ev.liquidation_price is None
    assert ev.entry_price == D("4236.36")  # the rest of the payload still decodes


def test_ws_position_without_l() -> None:
    msg = ws("ccxt_position_opened.json")
    del msg["data"]["l"]
    [ev] = decode(msg)
    assert ev.liquidation_price is None


@pytest.mark.parametrize(("value", "want"), [("3520.75", D("3520.75")), ("0", D("0")), (None, None)])
def test_rest_shaped_position_keeps_its_estimated_liquidation_price(value: object, want: object) -> None:
    rows = orjson.loads((FIXTURES / "rest" / "ccxt_static_positions.json").read_bytes())
    rows[0]["estLiquidationPrice"] = value
    [ev] = decode({"stream": "account.positionUpdate", "data": rows})
    assert ev.liquidation_price == want and ev.entry_price == D("4447.065")


def test_rest_shaped_position_with_a_bad_estimated_liquidation_price_is_named() -> None:
    rows = orjson.loads((FIXTURES / "rest" / "ccxt_static_positions.json").read_bytes())
    rows[0]["estLiquidationPrice"] = "soon"
    [ev] = decode({"stream": "account.positionUpdate", "data": rows})
    assert isinstance(ev, ErrorEvent) and "estLiquidationPrice" in ev.message


# --- REST errors keep the exchange's code -----------------------------------------------------------

DECODERS = {
    "depth": lambda body: decode_depth_snapshot("SOL_USDC", body),
    "trades": lambda body: decode_rest_trades("SOL_USDC", body),
    "klines": lambda body: decode_rest_klines("SOL_USDC", "1m", body),
}


@pytest.mark.parametrize("what", sorted(DECODERS))
def test_rest_error_code_is_the_events_code(what: str) -> None:
    body = (FIXTURES / "rest" / "ccxt_inline_error.json").read_bytes()
    ev = DECODERS[what](body)
    assert isinstance(ev, ErrorEvent) and ev.code == "INVALID_CLIENT_REQUEST"
    assert "INVALID_CLIENT_REQUEST" in ev.message and "triggerQuantity" in ev.message  # as before


@pytest.mark.parametrize(
    ("code", "want"),
    [(404, 404), ("RESOURCE_NOT_FOUND", "RESOURCE_NOT_FOUND"), (None, None), ([1], None), (True, None),
     (1.5, None), ("X" * 500, "X" * 57 + "...")],
)
@pytest.mark.parametrize("what", sorted(DECODERS))
def test_rest_error_codes_of_any_shape(what: str, code: object, want: object) -> None:
    ev = DECODERS[what](json.dumps({"code": code, "message": "nope"}))
    assert isinstance(ev, ErrorEvent) and ev.code == want and type(ev.code) is type(want)


@pytest.mark.parametrize("what", sorted(DECODERS))
def test_local_rest_failures_have_no_code(what: str) -> None:
    for body in ("Invalid symbol", "[1, 2", json.dumps({"lastUpdateId": []})):
        ev = DECODERS[what](body)
        assert isinstance(ev, ErrorEvent) and ev.code is None


def test_router_snapshot_error_keeps_the_code_and_asks_again(caplog: pytest.LogCaptureFixture) -> None:
    router = Router()
    router.receive_frame(json.dumps({"stream": "depth.SOL_USDC", "data": {
        "e": "depth", "E": 1, "s": "SOL_USDC", "U": 5, "u": 5, "T": 1, "b": [], "a": []}}))
    body = json.dumps({"code": "INVALID_CLIENT_REQUEST", "message": "Invalid signature for symbol"})
    error, fetch = router.receive_snapshot("SOL_USDC", body)
    assert error.code == "INVALID_CLIENT_REQUEST" and fetch == FetchSnapshot("SOL_USDC", 2)
    assert is_auth_error(error) is False  # a REST answer is never a refused WS subscription
    assert router.stats["auth_errors"] == 0


async def test_feed_reports_a_text_code_and_never_as_a_rejection(caplog: pytest.LogCaptureFixture) -> None:
    """The feed's error handler takes the widened code as it is; a REST error is not a refused subscription."""
    from backpack.feed import BackpackFeed

    caplog.set_level(logging.WARNING, logger="backpack")
    feed = BackpackFeed(symbols=["SOL-USDC"], channels=["trades"], config={"log": {"disabled": True}})
    ev = decode_rest_trades("SOL_USDC", json.dumps({"code": "UNAUTHORIZED", "message": "Invalid signature"}))
    await feed._on_error(ev)
    assert feed.metrics["errors"] == 1
    assert "(code UNAUTHORIZED)" in caplog.text
    assert "private subscription rejected" not in caplog.text


def test_the_delivered_order_of_a_trigger_keeps_its_size() -> None:
    """cryptofeed's OrderInfo has no trigger field: its amount is the trigger size while q is 0."""
    from backpack import adapters

    msg = ws("official_order_accepted.json")
    msg["data"].update(e="triggerPlaced", q="0", Y="2.5", X="TriggerPending", z="0")
    [ev] = decode(msg)
    info = adapters.order_info(ev, "SOL-USDC")
    assert (info.amount, info.remaining, info.status) == (D("2.5"), D("2.5"), "TriggerPending")
    [plain] = decode(ws("official_order_accepted.json"))  # q set: q stays the size, Y is ignored
    assert adapters.order_info(plain, "SOL-USDC").amount == D("32123")
