"""Stream names and SUBSCRIBE/UNSUBSCRIBE frames."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backpack.protocol import subscriptions as subs
from backpack.protocol.auth import Signer, signing_string, verify
from backpack.protocol.subscriptions import (
    DEPTH_SPEEDS,
    INTERVALS,
    is_private,
    parse_stream,
    stream_name,
    streams_for,
    subscribe_frames,
    unsubscribe_frames,
)

SEED = base64.b64encode(bytes(range(32))).decode()
SIGNER = Signer(SEED)
TS = 1_750_793_021_519


# --- channel names --------------------------------------------------------------------------------


def test_channel_constants_equal_cryptofeed_defines() -> None:
    """Plain strings stand in for cryptofeed's defines; every define this cryptofeed has must agree."""
    import cryptofeed.defines as d

    pairs = {
        "TRADES": subs.TRADES,
        "L2_BOOK": subs.L2_BOOK,
        "TICKER": subs.TICKER,
        "CANDLES": subs.CANDLES,
        "FUNDING": subs.FUNDING,
        "OPEN_INTEREST": subs.OPEN_INTEREST,
        "LIQUIDATIONS": subs.LIQUIDATIONS,
        "ORDER_INFO": subs.ORDER_INFO,
        "FILLS": subs.FILLS,
        "POSITIONS": subs.POSITIONS,
        "BALANCES": subs.BALANCES,
    }
    present = {name: value for name, value in pairs.items() if hasattr(d, name)}
    # cryptofeed 3.0.1 dropped the private-channel defines; the public ones exist in both lines.
    assert {"TRADES", "L2_BOOK", "TICKER", "CANDLES", "FUNDING", "OPEN_INTEREST", "LIQUIDATIONS"} <= set(
        present
    )
    for name, value in present.items():
        assert getattr(d, name) == value, name


@pytest.mark.parametrize(
    ("channel", "symbol", "opts", "expected"),
    [
        ("trades", "SOL_USDC", {}, "trade.SOL_USDC"),
        ("l2_book", "SOL_USDC", {}, "depth.SOL_USDC"),
        ("l2_book", "SOL_USDC", {"depth_speed": "200ms"}, "depth.200ms.SOL_USDC"),
        ("l2_book", "SOL_USDC", {"depth_speed": "600ms"}, "depth.600ms.SOL_USDC"),
        ("l2_book", "SOL_USDC", {"depth_speed": "1000ms"}, "depth.1000ms.SOL_USDC"),
        ("ticker", "SOL_USDC", {}, "bookTicker.SOL_USDC"),
        ("ticker_24h", "SOL_USDC", {}, "ticker.SOL_USDC"),
        ("candles", "SOL_USDC", {}, "kline.1m.SOL_USDC"),
        ("candles", "AAPL.US_USDC_PERP", {"interval": "1month"}, "kline.1month.AAPL.US_USDC_PERP"),
        ("funding", "SOL_USDC_PERP", {}, "markPrice.SOL_USDC_PERP"),
        ("open_interest", "SOL_USDC_PERP", {}, "openInterest.SOL_USDC_PERP"),
        ("liquidations", None, {}, "liquidation"),
        ("liquidations", "SOL_USDC_PERP", {}, "liquidation"),
        ("order_info", None, {}, "account.orderUpdate"),
        ("order_info", "SOL_USDC", {}, "account.orderUpdate.SOL_USDC"),
        ("fills", None, {}, "account.orderUpdate"),
        ("fills", "kSHIB_USDC_PERP", {}, "account.orderUpdate.kSHIB_USDC_PERP"),
        ("positions", None, {}, "account.positionUpdate"),
        ("positions", "SOL_USDC_PERP", {}, "account.positionUpdate.SOL_USDC_PERP"),
        ("balances", None, {}, "account.balanceUpdate"),
        ("balances", "SOL_USDC", {}, "account.balanceUpdate"),
        ("rfq", None, {}, "account.rfqUpdate"),
        ("rfq", "AAPL.US_USDC_RFQ", {}, "account.rfqUpdate.AAPL.US_USDC_RFQ"),
    ],
)
def test_stream_names(channel: str, symbol: str | None, opts: dict, expected: str) -> None:
    assert stream_name(channel, symbol, **opts) == expected


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("book", "SOL_USDC"), {}, "unknown channel 'book'"),
        (("candles", "SOL_USDC"), {"interval": "2m"}, "unknown candle interval '2m'"),
        (("candles", "SOL_USDC"), {"interval": "1M"}, "unknown candle interval"),
        (("l2_book", "SOL_USDC"), {"depth_speed": "100ms"}, "unknown depth speed '100ms'"),
        (("trades", None), {}, "needs a symbol"),
        (("trades", "SOL-USDC"), {}, "looks normalized"),
        (("trades", "SOL USDC"), {}, "characters"),
        (("trades", ""), {}, "non-empty"),
        (("trades", 'SOL_USDC"]'), {}, "characters"),
    ],
)
def test_stream_name_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        stream_name(*args, **kwargs)


def test_every_documented_interval_is_accepted() -> None:
    assert INTERVALS == (
        "1s",
        "1m",
        "3m",
        "5m",
        "15m",
        "30m",
        "1h",
        "2h",
        "4h",
        "6h",
        "8h",
        "12h",
        "1d",
        "3d",
        "1w",
        "1month",
    )
    for iv in INTERVALS:
        assert stream_name("candles", "SOL_USDC", interval=iv) == f"kline.{iv}.SOL_USDC"


def test_streams_for_deduplicates_order_and_fills() -> None:
    sub = {
        "fills": ["SOL_USDC", "BTC_USDC"],
        "order_info": ["SOL_USDC"],
        "trades": ["SOL_USDC", "SOL_USDC"],
        "balances": [],
        "liquidations": ["SOL_USDC_PERP", "BTC_USDC_PERP"],
    }
    assert streams_for(sub) == [
        "account.balanceUpdate",
        "account.orderUpdate.BTC_USDC",
        "account.orderUpdate.SOL_USDC",
        "liquidation",
        "trade.SOL_USDC",
    ]


def test_streams_for_is_independent_of_input_order_and_container() -> None:
    a = streams_for({"trades": ["B_USDC", "A_USDC"], "l2_book": ("A_USDC",)}, depth_speed="200ms")
    b = streams_for({"l2_book": {"A_USDC"}, "trades": {"A_USDC", "B_USDC"}}, depth_speed="200ms")
    assert a == b == ["depth.200ms.A_USDC", "trade.A_USDC", "trade.B_USDC"]


def test_streams_for_empty_list() -> None:
    assert streams_for({"order_info": [], "positions": None}) == [
        "account.orderUpdate",
        "account.positionUpdate",
    ]
    with pytest.raises(ValueError, match="'trades' needs at least one symbol"):
        streams_for({"trades": []})
    with pytest.raises(ValueError, match="unknown channel"):
        streams_for({"nope": []})


def test_is_private() -> None:
    assert is_private("account.orderUpdate") and is_private("account.balanceUpdate")
    assert not is_private("depth.SOL_USDC") and not is_private("liquidation")


# --- parse_stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stream", "expected"),
    [
        ("trade.SOL_USDC", ("trade", "SOL_USDC", None)),
        ("depth.AAPL.US_USDC_PERP", ("depth", "AAPL.US_USDC_PERP", None)),
        ("depth.200ms.AAPL.US_USDC_PERP", ("depth", "AAPL.US_USDC_PERP", "200ms")),
        ("kline.1month.MU.US_USDC", ("kline", "MU.US_USDC", "1month")),
        ("bookTicker.kSHIB_USDC_PERP", ("bookTicker", "kSHIB_USDC_PERP", None)),
        ("liquidation", ("liquidation", None, None)),
        ("liquidation.SOL_USDC_PERP", ("liquidation", "SOL_USDC_PERP", None)),  # reported variant
        ("account.orderUpdate", ("account.orderUpdate", None, None)),
        ("account.rfqUpdate.AAPL.US_USDC_RFQ", ("account.rfqUpdate", "AAPL.US_USDC_RFQ", None)),
        ("account.balanceUpdate", ("account.balanceUpdate", None, None)),
    ],
)
def test_parse_stream(stream: str, expected: tuple) -> None:
    assert parse_stream(stream) == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "trade",
        "trade.",
        "depth.200ms.",
        "kline.2m.SOL_USDC",
        "kline.1m",
        "foo.SOL_USDC",
        "account.",
        "account.nope",
        "account.balanceUpdate.SOL_USDC",
        "trade.SOL-USDC",
        "Trade.SOL_USDC",
        "trade.SOL__USDC",
        "trade.SOL_USDC.",
    ],
)
def test_parse_stream_refuses(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_stream(bad)


symbols = st.from_regex(r"[A-Za-z0-9]{1,6}(?:[._][A-Za-z0-9]{1,6}){0,4}", fullmatch=True).filter(
    lambda s: s.partition(".")[0] not in DEPTH_SPEEDS
)


@given(
    st.sampled_from(subs.CHANNELS),
    symbols,
    st.sampled_from(INTERVALS),
    st.sampled_from((None, *DEPTH_SPEEDS)),
)
def test_stream_name_parse_round_trip(channel: str, symbol: str, interval: str, speed: str | None) -> None:
    """Every stream name we build parses back to its kind, the symbol we put in (if any) and its interval/speed."""
    name = stream_name(channel, symbol, interval=interval, depth_speed=speed)
    kind, sym, iv = parse_stream(name)
    assert name.startswith(kind)
    assert sym in (symbol, None)
    assert (sym is None) == (channel in ("liquidations", "balances"))
    if kind == "kline":
        assert iv == interval
    elif kind == "depth":
        assert iv == speed
    else:
        assert iv is None


# --- frames ---------------------------------------------------------------------------------------


def test_public_frames_batched_compact() -> None:
    streams = [f"trade.S{i}_USDC" for i in range(5)] + ["trade.S0_USDC"]
    frames = subscribe_frames(streams, batch_size=2)
    assert frames == [
        '{"method":"SUBSCRIBE","params":["trade.S0_USDC","trade.S1_USDC"]}',
        '{"method":"SUBSCRIBE","params":["trade.S2_USDC","trade.S3_USDC"]}',
        '{"method":"SUBSCRIBE","params":["trade.S4_USDC"]}',
    ]
    assert unsubscribe_frames(["depth.SOL_USDC"]) == ['{"method":"UNSUBSCRIBE","params":["depth.SOL_USDC"]}']


def test_default_batch_is_fifty() -> None:
    frames = subscribe_frames([f"trade.S{i}_USDC" for i in range(101)])
    assert [len(json.loads(f)["params"]) for f in frames] == [50, 50, 1]


def test_private_frames_are_separate_and_signed() -> None:
    streams = [
        "trade.SOL_USDC",
        "account.orderUpdate",
        "account.positionUpdate.SOL_USDC_PERP",
        "depth.SOL_USDC",
    ]
    frames = subscribe_frames(streams, signer=SIGNER, timestamp_ms=TS, window_ms=6000)
    assert len(frames) == 2
    public, private = (json.loads(f) for f in frames)
    assert public == {"method": "SUBSCRIBE", "params": ["trade.SOL_USDC", "depth.SOL_USDC"]}
    assert "signature" not in public
    assert private["params"] == ["account.orderUpdate", "account.positionUpdate.SOL_USDC_PERP"]
    key, sig, ts, window = private["signature"]
    assert all(isinstance(x, str) for x in private["signature"])
    assert (key, ts, window) == (SIGNER.api_key, str(TS), "6000")
    assert verify(key, f"instruction=subscribe&timestamp={TS}&window=6000", sig)
    assert sig == SIGNER.sign_text(signing_string("subscribe", None, TS, 6000))


def test_unsubscribe_private_is_signed_with_the_subscribe_instruction() -> None:
    (frame,) = unsubscribe_frames(["account.orderUpdate"], signer=SIGNER, timestamp_ms=TS)
    msg = json.loads(frame)
    assert msg["method"] == "UNSUBSCRIBE"
    key, sig, ts, window = msg["signature"]
    assert verify(key, f"instruction=subscribe&timestamp={TS}&window=5000", sig)
    assert not verify(key, f"instruction=unsubscribe&timestamp={TS}&window=5000", sig)


def test_private_batches_share_one_signature() -> None:
    streams = [f"account.orderUpdate.S{i}_USDC" for i in range(3)]
    frames = [json.loads(f) for f in subscribe_frames(streams, signer=SIGNER, timestamp_ms=TS, batch_size=2)]
    assert [len(f["params"]) for f in frames] == [2, 1]
    assert frames[0]["signature"] == frames[1]["signature"]


def test_private_without_signer_or_timestamp() -> None:
    with pytest.raises(ValueError, match="private streams need a signer: account.orderUpdate"):
        subscribe_frames(["trade.SOL_USDC", "account.orderUpdate"])
    with pytest.raises(ValueError, match="timestamp_ms"):
        subscribe_frames(["account.orderUpdate"], signer=SIGNER)
    with pytest.raises(ValueError, match="timestamp_ms"):
        unsubscribe_frames(["account.orderUpdate"], signer=SIGNER, timestamp_ms=True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 1.5}, "batch_size"),
        ({"window_ms": 0}, "window_ms"),
        ({"window_ms": 60001}, "window_ms"),
    ],
)
def test_frame_option_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        subscribe_frames(["trade.SOL_USDC"], **kwargs)


def test_frames_refuse_bad_stream_names() -> None:
    with pytest.raises(ValueError, match="unknown stream kind"):
        subscribe_frames(["trades.SOL_USDC"])
    with pytest.raises(ValueError, match="not one string"):
        subscribe_frames("trade.SOL_USDC")  # type: ignore[arg-type]


def test_errors_never_carry_the_signature_or_seed() -> None:
    with pytest.raises(ValueError) as exc:
        subscribe_frames(["account.orderUpdate", "bad stream"], signer=SIGNER, timestamp_ms=TS)
    assert SEED not in str(exc.value)
    assert SIGNER.ws_signature(TS)[1] not in str(exc.value)


def test_empty_streams_give_no_frames() -> None:
    assert subscribe_frames([]) == [] and unsubscribe_frames([], signer=SIGNER, timestamp_ms=TS) == []


def test_end_to_end_from_subscription() -> None:
    sub = {"l2_book": ["SOL_USDC"], "fills": ["SOL_USDC"], "order_info": ["SOL_USDC"], "balances": []}
    frames = [json.loads(f) for f in subscribe_frames(streams_for(sub), signer=SIGNER, timestamp_ms=TS)]
    assert frames[0] == {"method": "SUBSCRIBE", "params": ["depth.SOL_USDC"]}
    assert frames[1]["params"] == ["account.balanceUpdate", "account.orderUpdate.SOL_USDC"]


def test_symbol_that_would_read_as_a_depth_window_is_refused() -> None:
    with pytest.raises(ValueError, match="depth window"):
        stream_name("l2_book", "200ms.X")
    assert parse_stream("depth.200ms.X") == ("depth", "X", "200ms")
