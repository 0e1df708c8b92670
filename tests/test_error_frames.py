"""Exchange error frames: classified by code first, and decoded alike on the fast and careful paths."""

from __future__ import annotations

import json

import pytest

from backpack import compat
from backpack.protocol import wire
from backpack.protocol.events import ErrorEvent, Trade
from backpack.protocol.messages import _UNPARSED, Decoder
from backpack.protocol.router import Router, is_auth_error
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until

# What the loopback server answers a refused private subscription with (code 4003, undocumented).
LOOPBACK_REFUSALS = ["Invalid signature", "Signature expired", "Invalid window", "Unknown API key",
                     "Missing signature"]


def error_event(code: int | str | None, message: str) -> ErrorEvent:
    return ErrorEvent(code, message, "{}")


def error_frame(code: object, message: str) -> str:
    return json.dumps({"id": None, "error": {"code": code, "message": message}})


# --- classification -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", sorted(wire.WS_ERROR_CODES))
@pytest.mark.parametrize(
    "message", ["Invalid depth window", "Invalid stream", "Parse error", "Invalid signature", "auth window"]
)
def test_documented_codes_are_never_auth(code: int, message: str) -> None:
    """The documented codes say what went wrong; their text is not consulted."""
    assert is_auth_error(error_event(code, message)) is False


def test_the_documented_code_table() -> None:
    assert wire.WS_ERROR_CODES == {4002: "Parse error", 4006: "Invalid stream", 4008: "Invalid depth window"}


@pytest.mark.parametrize("message", LOOPBACK_REFUSALS)
@pytest.mark.parametrize("code", [4003, 4001, 4999])
def test_undocumented_codes_fall_back_to_the_text(code: int, message: str) -> None:
    assert is_auth_error(error_event(code, message)) is True


@pytest.mark.parametrize("message", ["Invalid depth window", "Too many streams", "Internal error", ""])
def test_undocumented_codes_with_other_texts_are_not_auth(message: str) -> None:
    assert is_auth_error(error_event(4003, message)) is False


@pytest.mark.parametrize(
    "event",
    [
        error_event(None, "trade.SOL_USDC: missing field 't' (signature)"),  # a local decode failure
        error_event("INVALID_CLIENT_REQUEST", "depth: exchange error INVALID_CLIENT_REQUEST: Invalid signature"),
        error_event("UNAUTHORIZED", "klines: exchange error UNAUTHORIZED: API key expired"),
    ],
)
def test_local_and_rest_errors_are_not_subscription_rejections(event: ErrorEvent) -> None:
    assert is_auth_error(event) is False


def test_router_counts_only_refusals_as_auth_errors() -> None:
    router = Router()
    for _ in range(5):
        [event] = router.receive_frame(error_frame(4008, "Invalid depth window"))
        assert (event.code, event.message) == (4008, "Invalid depth window")
    assert router.stats["auth_errors"] == 0
    router.receive_frame(error_frame(4003, "Invalid signature"))
    assert router.stats["auth_errors"] == 1


# --- frames carrying both data and error ----------------------------------------------------------


def _trade_frame(tid: int = 9, **extra: object) -> str:
    data = {"e": "trade", "E": 1, "s": "SOL_USDC", "p": "1.5", "q": "2", "b": "x", "a": "y", "t": tid,
            "T": 2, "m": False}
    return json.dumps({"stream": "trade.SOL_USDC", "data": data, **extra})


def test_data_and_error_yield_both_on_every_path() -> None:
    """The data decodes as it would alone and the error follows it, whichever path reads the frame."""
    frame = _trade_frame(error={"code": 4006, "message": "Invalid stream"})
    cold = Decoder()  # has never seen the stream: careful path
    warm = Decoder()
    warm.decode(_trade_frame(1), 0)  # registers the stream's fast handler
    router = Router()
    router.receive_frame(_trade_frame(1), 0)
    outputs = [cold.decode(frame, 4), warm.decode(frame, 4), router.receive_frame(frame, 4),
               Decoder()._careful(frame, _UNPARSED, 4)]
    for out in outputs:
        assert [type(e) for e in out] == [Trade, ErrorEvent], out
        assert out[0].id == "9" and out[0].receipt == 4
        assert (out[1].code, out[1].message, out[1].receipt) == (4006, "Invalid stream", 4)
    assert repr(outputs[0]) == repr(outputs[1]) == repr(outputs[2]) == repr(outputs[3])
    assert cold.stats == {**warm.stats, "frames": 1, "events": 1}
    assert warm.stats["errors"] == cold.stats["errors"] == 1


def test_error_with_an_incomplete_envelope_is_the_error_alone() -> None:
    for frame in (json.dumps({"stream": "trade.SOL_USDC", "error": {"code": 4002, "message": "Parse error"}}),
                  json.dumps({"data": {}, "error": {"code": 4002, "message": "Parse error"}}),
                  error_frame(4002, "Parse error")):
        [event] = Decoder().decode(frame)
        assert (event.code, event.message) == (4002, "Parse error")


# --- the feed ----------------------------------------------------------------------------------------


@pytest.mark.e2e
async def test_depth_window_errors_never_stop_private_channels() -> None:
    """More 4008 frames than the private retry budget: private channels keep running."""
    collector = Collector()
    channels = [compat.TRADES, compat.ORDER_INFO]
    async with running_server(seed=11, rate=0, ping_interval=0.2, pong_timeout=1.0) as server:
        section = backpack_section(server, private=True)
        async with running_handler(
            symbols=["SOL-USDC"], channels=channels, callbacks=collector.callbacks(channels),
            handler_config={"log": {"disabled": True}, "backpack": section},
        ) as fh:
            feed = fh.feeds[0]
            await server.wait_subscribed("account.orderUpdate.SOL_USDC")
            for _ in range(feed.bp_config.private_subscribe_retries + 3):
                server.faults.send_error(wire.INVALID_DEPTH_WINDOW, "Invalid depth window")
            await until(lambda: feed.metrics["errors"] >= feed.bp_config.private_subscribe_retries + 3,
                        "the error frames to arrive")
            before = len(collector.items[compat.ORDER_INFO])
            await drive(server, 600)
            await until(lambda: len(collector.items[compat.ORDER_INFO]) > before, "order updates after the errors")
            assert feed.session.stats.private_rejections == 0
            assert feed.session.stats.private_stopped is False
