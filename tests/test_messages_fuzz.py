"""Property tests for the frame decoder: it never raises, its output is always well typed, and its
fast path agrees with its careful path."""

from __future__ import annotations

import dataclasses
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import hypothesis
import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from backpack.protocol import messages
from backpack.protocol.events import RAW_LIMIT, ErrorEvent
from backpack.protocol.messages import Decoder, decode_depth_snapshot, decode_rest_klines, decode_rest_trades
from tests.core_impls import each_core

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
WS = Path(__file__).parent / "fixtures" / "ws"

STREAMS = [
    "depth.SOL_USDC", "depth.200ms.SOL_USDC", "bookTicker.SOL_USDC", "trade.SOL_USDC", "ticker.SOL_USDC",
    "kline.1m.SOL_USDC", "markPrice.SOL_USDC_PERP", "openInterest.SOL_USDC_PERP", "liquidation",
    "liquidation.SOL_USDC", "account.orderUpdate", "account.orderUpdate.SOL_USDC", "account.positionUpdate",
    "account.balanceUpdate", "account.rfqUpdate", "account.rfqUpdate.SOL_USDC_RFQ",
]  # fmt: skip

# A valid payload per stream kind (from the fixtures), to mutate.
VALID = {
    name: orjson.loads((WS / name).read_text())
    for name in (
        "official_depth.json", "official_book_ticker.json", "official_trade.json", "official_ticker.json",
        "official_kline.json", "official_mark_price.json", "official_open_interest.json",
        "official_liquidation.json", "official_order_accepted.json", "official_position_opened.json",
        "official_rfq_candidate.json", "ccxt_order_fill.json", "ccxt_position_opened.json", "ccxt_trade.json",
    )
}  # fmt: skip

FIELD_KEYS = list("eEsabABpqtTmUuochlvVnXfiSzZLNOQPMRCwWyrjkdgY") + ["data", "stream", "error", "code"]

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
    | st.sampled_from(
        ["", "N/A", "NaN", "Infinity", "-0", "1e999999", "0.000", "18.70", "1_0", " 1", "1.", ".5"]
    )
    | st.from_regex(r"-?[0-9]{1,20}(\.[0-9]{0,10})?", fullmatch=True)
    | st.sampled_from(
        ["2025-08-06T22:00:00", "2025-09-11 15:33:00", "2025-08-06T22:00:00+02:00", "Bid", "Ask"]
    )
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.sampled_from(FIELD_KEYS) | st.text(max_size=4), children, max_size=5)
    ),
    max_leaves=12,
)
payloads = st.dictionaries(st.sampled_from(FIELD_KEYS) | st.text(max_size=3), json_values, max_size=14)


def check_output(decoder: Decoder, before: dict[str, int], out: Any) -> None:
    """Shared invariant: a list of well-typed events, and the counters account for every one."""
    assert type(out) is list
    errors = 0
    for event in out:
        if type(event) is ErrorEvent:
            errors += 1
            assert type(event.message) is str and event.message
            assert type(event.raw) is str and len(event.raw) <= RAW_LIMIT
            event.raw.encode("utf-8")
            event.message.encode("utf-8")
            assert event.code is None or type(event.code) is int
        else:
            check_typed(event)
    stats = decoder.stats
    assert stats["frames"] == before["frames"] + 1
    assert stats["errors"] - before["errors"] == errors
    assert stats["events"] - before["events"] == len(out) - errors


def check_typed(event: Any) -> None:
    """Every field has the type its annotation promises; every Decimal is finite."""
    for f in dataclasses.fields(event):
        value = getattr(event, f.name)
        kind = str(f.type)
        if value is None:
            assert "None" in kind, (f.name, event)
        elif "Decimal" in kind:
            assert type(value) is Decimal and value.is_finite(), (f.name, value)
        elif kind.startswith("list[Level]"):
            for price, size in value:
                assert type(price) is Decimal and price.is_finite()
                assert type(size) is Decimal and size.is_finite()
        elif kind.startswith("int"):
            assert type(value) is int, (f.name, value)
        elif kind.startswith("str"):
            assert type(value) is str, (f.name, value)
        elif kind.startswith("bool"):
            assert type(value) is bool, (f.name, value)


def run(decoder: Decoder, frame: Any) -> list:
    before = dict(decoder.stats)
    out = decoder.decode(frame, 5)
    check_output(decoder, before, out)
    return out


@each_core
@SETTINGS
@given(st.text(max_size=400))
def test_decode_never_raises_on_text(impl: str, text: str) -> None:
    """For any text, decode returns a list of well-typed events and never raises."""
    run(Decoder(impl), text)


@each_core
@SETTINGS
@given(st.binary(max_size=400))
def test_decode_never_raises_on_bytes(impl: str, data: bytes) -> None:
    """For any bytes (including invalid UTF-8), decode returns a list of well-typed events and never raises."""
    run(Decoder(impl), data)


@each_core
@SETTINGS
@given(json_values)
def test_decode_never_raises_on_any_json_document(impl: str, value: Any) -> None:
    """For any JSON document, decode returns a list of well-typed events and never raises."""
    run(Decoder(impl), json.dumps(value))


@each_core
@SETTINGS
@given(st.sampled_from(STREAMS), payloads | st.lists(payloads, max_size=3) | json_values)
def test_decode_never_raises_on_any_payload_in_a_valid_envelope(impl: str, stream: str, data: Any) -> None:
    """For every stream type and any JSON-shaped data in a valid envelope, decode returns well-typed
    events (or error events) and never raises, on both the careful (first) and fast (repeat) path."""
    decoder = Decoder(impl)
    text = json.dumps({"stream": stream, "data": data})
    first = run(decoder, text)
    second = run(decoder, text.encode())
    assert first == second and repr(first) == repr(second)


@each_core
@SETTINGS
@given(
    st.sampled_from(sorted(VALID)),
    st.lists(st.tuples(st.sampled_from(FIELD_KEYS), st.none() | json_values), min_size=1, max_size=3),
    st.booleans(),
)
def test_mutated_valid_frames_decode_identically_on_both_paths(
    impl: str, name: str, edits: list, delete: bool
) -> None:
    """Replacing or deleting fields of a real frame never makes decode raise, and the careful path
    (first frame of a stream) and the fast path (repeats) produce the same events."""
    msg = orjson.loads(orjson.dumps(VALID[name]))
    for key, value in edits:
        if delete:
            msg["data"].pop(key, None)
        else:
            msg["data"][key] = value
    text = json.dumps(msg)
    decoder = Decoder(impl)
    first = run(decoder, text)
    second = run(decoder, text)
    assert first == second and repr(first) == repr(second)


@each_core
@SETTINGS
@given(st.sampled_from(sorted(VALID)), json_values)
def test_data_and_error_frames_decode_identically_on_both_paths(impl: str, name: str, error: object) -> None:
    """For any real frame with an ``error`` member of any shape added, a decoder that has never seen the
    stream (careful path) and one that has (fast path) emit the same events and count the same."""
    msg = orjson.loads(orjson.dumps(VALID[name]))
    clean = json.dumps(msg)
    msg["error"] = error
    frame = json.dumps(msg)
    cold, warm = Decoder(impl), Decoder(impl)
    warm.decode(clean)
    before = dict(warm.stats)
    got_cold, got_warm = cold.decode(frame, 3), warm.decode(frame, 3)
    assert repr(got_cold) == repr(got_warm)
    assert got_cold and type(got_cold[-1]) is ErrorEvent and got_cold[-1].stream is None
    assert got_cold[:-1] == Decoder(impl).decode(clean, 3)  # the data part is what the frame alone gives
    assert {k: warm.stats[k] - before[k] for k in warm.stats} == cold.stats


# Per field type: the form the live wire uses, and variants (other legal forms and junk).
CANONICAL = {
    "int": st.integers(min_value=0, max_value=2**63),
    "dec": st.from_regex(r"-?[0-9]{1,8}(\.[0-9]{1,8})?", fullmatch=True),
    "str": st.sampled_from(["SOL_USDC", "AAPL.US_USDC_PERP", "5"]),
    "bool": st.booleans(),
    "iso": st.sampled_from(["2025-08-06T22:00:00", "2025-08-07T00:00:00"]),
}
VARIANT = {
    "int": st.integers(0, 10**17).map(str) | st.sampled_from(["", "1.0", "-1", "+1"]) | st.floats(0, 1e6),
    "dec": st.sampled_from(["", "N/A", "1e-3", "0.000", "1.", ".5", "-", "1-", "NaN"])
    | st.none()
    | st.integers(-(10**6), 10**6)
    | st.floats(-1e6, 1e6, allow_nan=False),
    "str": st.sampled_from(["", None]) | st.integers(0, 99),
    "bool": st.none() | st.sampled_from(["true", 1, 0]),
    "iso": st.sampled_from(["2025-08-07 00:00:00", "2025-08-06T22:00:00+02:00", "bad", "", None]),
}


def field_value(what: str) -> st.SearchStrategy:
    return st.integers(0, 9).flatmap(lambda i: CANONICAL[what] if i < 9 else VARIANT[what])


SHAPES = {
    "depth": {"s": "str", "U": "int", "u": "int", "T": "int", "E": "int", "a": "levels", "b": "levels"},
    "trade": {"s": "str", "p": "dec", "q": "dec", "t": "int", "m": "bool", "b": "str", "a": "str", "T": "int", "E": "int"},
    "bookTicker": {"s": "str", "a": "dec", "A": "dec", "b": "dec", "B": "dec", "u": "int", "T": "int", "E": "int"},
    "ticker": {"s": "str", "o": "dec", "c": "dec", "h": "dec", "l": "dec", "v": "dec", "V": "dec", "n": "int", "E": "int"},
    "kline": {"s": "str", "t": "iso", "T": "iso", "o": "dec", "c": "dec", "h": "dec", "l": "dec", "v": "dec",
              "n": "int", "X": "bool", "E": "int"},
    "markPrice": {"s": "str", "p": "dec", "f": "dec", "i": "dec", "n": "int", "T": "int", "E": "int"},
}  # fmt: skip


@st.composite
def shaped_payload(draw: st.DrawFn, kind: str) -> dict:
    out = {}
    for key, what in SHAPES[kind].items():
        if draw(st.integers(0, 29)) == 0:
            continue  # absent
        if what == "levels":
            level = st.integers(0, 19).flatmap(
                lambda i: st.lists(field_value("dec"), min_size=2, max_size=2) if i else json_values
            )
            out[key] = draw(st.lists(level, max_size=3))
        else:
            out[key] = draw(field_value(what))
    return out


@each_core
@settings(SETTINGS, max_examples=1000)
@given(st.sampled_from(sorted(SHAPES)).flatmap(lambda k: st.tuples(st.just(k), shaped_payload(k))))
def test_fast_path_is_a_subset_of_the_careful_path(impl: str, case: tuple[str, dict]) -> None:
    """Whenever the fast handler (of either core) builds an event from a payload, the careful handler builds an
    equal event."""
    kind, data = case
    careful = messages._KINDS[kind][0]
    fast = Decoder(impl)._handlers[kind]  # on the compiled core, depth and trade are _speedups' handlers
    route = messages._Route(kind, "SOL_USDC", "1m" if kind == "kline" else None)
    data = orjson.loads(json.dumps(data))  # exactly what orjson hands the decoder
    try:
        fast_event = fast("1m", data, 3) if kind == "kline" else fast(data, 3)
    except Exception:
        hypothesis.event("fast path declined")
        return  # the careful path decides alone
    hypothesis.event("fast path built an event")
    reader = messages._Reader(data)
    careful_event = careful(reader, route, 3)
    assert careful_event == fast_event and repr(careful_event) == repr(fast_event)
    assert reader.coerced == 0  # the fast path never accepts what needs coercion


@SETTINGS
@given(payloads | json_values | st.text(max_size=50) | st.binary(max_size=50))
def test_rest_decoders_never_raise(body: Any) -> None:
    """For any body, the REST decoders return their result type or an ErrorEvent, never raise."""
    for result in (
        decode_depth_snapshot("SOL_USDC", body),
        decode_rest_trades("SOL_USDC", body),
        decode_rest_klines("SOL_USDC", "1m", body),
    ):
        if type(result) is ErrorEvent:
            assert len(result.raw) <= RAW_LIMIT
            result.raw.encode("utf-8")
            assert result.code is None or type(result.code) in (int, str)
        elif type(result) is list:
            for event in result:
                check_typed(event)
        else:
            check_typed(result)
