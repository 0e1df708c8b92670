"""Market metadata → symbols: parsing, normalization round trips, lookups, TTL cache."""

from __future__ import annotations

import json
import logging
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from backpack.protocol.symbols import (
    MarketInfo,
    SymbolCache,
    SymbolMap,
    UnknownSymbolError,
    infer_market_type,
    native_symbol,
    normalize_symbol,
    parse_markets,
)

FIXTURES = Path(__file__).parent / "fixtures" / "markets"


def load(name: str) -> list:
    data = json.loads((FIXTURES / name).read_text())
    return data["markets"] if isinstance(data, dict) else data


def all_fixture_markets() -> list:
    return load("ccxt_samples.json") + load("handmade.json")


# --- normalize_symbol -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("native", "normalized"),
    [
        ("SOL_USDC", "SOL-USDC"),
        ("SOL_USDC_PERP", "SOL-USDC-PERP"),
        ("AAPL.US_USDC_PERP", "AAPL.US-USDC-PERP"),
        ("MU.US_USDC", "MU.US-USDC"),
        ("kSHIB_USDC_PERP", "kSHIB-USDC-PERP"),
        ("AAPL.US_USDC_RFQ", "AAPL.US-USDC-RFQ"),
        ("BTC_USDC_IPERP", "BTC-USDC-IPERP"),
        ("BTC_USDC_20261225", "BTC-USDC-20261225"),
        ("ELECTION2028DEM_USDC_PREDICTION", "ELECTION2028DEM-USDC-PREDICTION"),
    ],
)
def test_normalize_examples_and_inverse(native: str, normalized: str) -> None:
    assert normalize_symbol(native) == normalized
    assert native_symbol(normalized) == native


def test_case_is_kept() -> None:
    assert normalize_symbol("kSHIB_USDC_PERP") != normalize_symbol("KSHIB_USDC_PERP")
    assert normalize_symbol("kSHIB_USDC_PERP").startswith("kSHIB-")


@pytest.mark.parametrize(
    "bad", ["", "SOL-USDC", "SOL__USDC", "_SOL", "SOL_", " SOL_USDC", "SOL_USDC\n", None, 5]
)
def test_normalize_refuses_malformed_native(bad: object) -> None:
    with pytest.raises(ValueError):
        normalize_symbol(bad)  # type: ignore[arg-type]


def test_native_symbol_refuses_native_input() -> None:
    with pytest.raises(ValueError, match="looks like a native symbol"):
        native_symbol("SOL_USDC")


@pytest.mark.parametrize(
    ("native", "market_type"),
    [("SOL_USDC", "PERP"), ("SOL_USDC_PERP", "SPOT"), ("AAPL.US_USDC", "RFQ"), ("AAPL.US_USDC_RFQ", "PERP")],
)
def test_market_type_contradiction_is_refused_in_strict_mode(native: str, market_type: str) -> None:
    assert normalize_symbol(native) == native.replace("_", "-")  # lenient without a market type
    with pytest.raises(ValueError, match=native.replace(".", r"\.")):
        normalize_symbol(native, market_type)


@pytest.mark.parametrize(
    ("native", "market_type"),
    [
        ("SOL_USDC", "SPOT"),
        ("SOL_USDC_PERP", "PERP"),
        ("AAPL.US_USDC_RFQ", "rfq"),
        ("BTC_USDC_X", "DATED"),
        ("A_B", "NEWTYPE"),
    ],
)
def test_market_type_consistent_passes(native: str, market_type: str) -> None:
    assert normalize_symbol(native, market_type) == native.replace("_", "-")


native_part = st.text(
    alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789.", min_size=1, max_size=12
)
natives = st.lists(native_part, min_size=1, max_size=5).map("_".join)


@given(natives)
def test_round_trip_property(native: str) -> None:
    """For every hyphen-free native symbol with non-empty parts, native_symbol(normalize_symbol(s)) == s."""
    normalized = normalize_symbol(native)
    assert "_" not in normalized
    assert native_symbol(normalized) == native


@given(natives, natives)
def test_injective_property(a: str, b: str) -> None:
    """Two different native symbols never share a normalized form."""
    if a != b:
        assert normalize_symbol(a) != normalize_symbol(b)


# --- parse_markets ----------------------------------------------------------------------------


def test_ccxt_sample_markets() -> None:
    markets, warnings = parse_markets(load("ccxt_samples.json"))
    assert warnings == []
    spot, perp = markets
    assert spot == MarketInfo(
        native="SOL_USDC",
        normalized="SOL-USDC",
        base="SOL",
        quote="USDC",
        market_type="SPOT",
        instrument_type="spot",
        tick_size=Decimal("0.01"),
        step_size=Decimal("0.01"),
        min_quantity=Decimal("0.01"),
        order_book_state="Open",
        visible=True,
        funding_interval_ms=28800000,  # an int on the wire here
        rwa_market_type=None,
    )
    assert perp.normalized == "SOL-USDC-PERP"
    assert perp.instrument_type == "perpetual"
    assert perp.funding_interval_ms == 28800000  # a string on the wire here
    assert isinstance(perp.tick_size, Decimal)


def test_ccxt_agrees_on_base_quote_and_precision() -> None:
    """ccxt's own parse_market reads the same ids and filters from the sample payload."""
    import ccxt  # a test dependency (pyproject [test])

    ex = ccxt.backpack()
    raw = load("ccxt_samples.json")
    ours, _ = parse_markets(raw)
    for entry, info in zip(raw, ours, strict=True):
        theirs = ex.parse_market(entry)
        assert theirs["id"] == info.native
        assert (theirs["baseId"], theirs["quoteId"]) == (info.base, info.quote)
        assert Decimal(str(theirs["precision"]["price"])) == info.tick_size
        assert Decimal(str(theirs["precision"]["amount"])) == info.step_size
        assert theirs["active"] == (info.order_book_state == "Open")
        assert theirs["swap"] == (info.instrument_type == "perpetual")


def test_handmade_markets_types_and_fields(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="backpack.symbols"):
        markets, warnings = parse_markets(load("handmade.json"))
    by = {m.native: m for m in markets}
    assert len(by) == len(load("handmade.json"))  # nothing dropped
    expected_types = {
        "AAPL.US_USDC_PERP": "perpetual",
        "MU.US_USDC": "spot",
        "kSHIB_USDC_PERP": "perpetual",
        "kPEPE_USDC": "spot",
        "AAPL.US_USDC_RFQ": "rfq",
        "BTC_USDC_IPERP": "perpetual",
        "BTC_USDC_20261225": "dated",
        "ETH_USDC_DATED_27MAR26": "dated",
        "ELECTION2028DEM_USDC_PREDICTION": "prediction",
        "RAIN.NYC.JUL_USDC": "prediction",
        "XAU_USDC_PERP": "perpetual",
        "SOL_USDC_OPTION": "unknown",
        "BTC_USDC": "spot",  # marketType missing: inferred
        "BTC_USDC_PERP": "perpetual",  # marketType missing: inferred
    }
    assert {n: m.instrument_type for n, m in by.items()} == expected_types
    assert by["BTC_USDC_IPERP"].market_type == "IPERP"  # the raw type survives the coarse mapping
    assert by["SOL_USDC_OPTION"].market_type == "OPTION"
    assert by["MU.US_USDC"].rwa_market_type == "STOCK"
    assert by["MU.US_USDC"].base == "MU.US"
    assert by["MU.US_USDC"].funding_interval_ms is None
    assert by["kSHIB_USDC_PERP"].base == "kSHIB"
    assert by["kSHIB_USDC_PERP"].funding_interval_ms == 28800000
    assert by["AAPL.US_USDC_RFQ"].tick_size is None and by["AAPL.US_USDC_RFQ"].order_book_state is None
    assert by["ETH_USDC_DATED_27MAR26"].visible is False
    assert by["ELECTION2028DEM_USDC_PREDICTION"].tick_size == Decimal("0.01")
    # exactly three warnings: the unknown type and the two inferred types, each also logged
    assert len(warnings) == 3, warnings
    assert any("OPTION" in w and "unknown" in w for w in warnings)
    assert sum("inferred" in w for w in warnings) == 2
    assert [r.getMessage() for r in caplog.records] == warnings


def test_round_trip_every_fixture_market() -> None:
    markets, _ = parse_markets(all_fixture_markets())
    smap = SymbolMap.from_markets(markets)
    assert len(smap) == len(markets) == 16
    for m in markets:
        assert m.normalized == normalize_symbol(m.native)
        assert smap.to_native(m.normalized) == m.native
        assert smap.to_normalized(m.native) == m.normalized
        assert native_symbol(m.normalized) == m.native
        assert smap.info(m.native) is smap.info(m.normalized) is m
    assert len(set(smap.normalized())) == len(markets)


def test_malformed_entries_are_skipped_with_warnings() -> None:
    raw = load("malformed.json")
    markets, warnings = parse_markets(raw)
    assert [m.native for m in markets] == ["GOOD_USDC"]
    good = markets[0]
    # bad fields degrade to None / defaults, each with a warning; the market itself is kept
    assert good.tick_size is None and good.min_quantity is None and good.step_size is None
    assert good.visible is True and good.funding_interval_ms is None
    skipped = [w for w in warnings if "skipped" in w]
    assert len(skipped) == len(raw) - 1  # every other entry, including the duplicate GOOD_USDC
    assert any("duplicate" in w for w in skipped)
    assert any("'-'" in w for w in skipped)
    # one each for tickSize, minQuantity, stepSize, visible, fundingInterval
    assert sum("GOOD_USDC:" in w for w in warnings) == 5


@pytest.mark.parametrize("payload", [None, {}, "[]", 3, {"markets": []}])
def test_non_list_payload_never_raises(payload: object) -> None:
    markets, warnings = parse_markets(payload)
    assert markets == [] and len(warnings) == 1


def test_float_filters_are_read_through_their_repr() -> None:
    entry = {
        "symbol": "A_B",
        "marketType": "SPOT",
        "filters": {"price": {"tickSize": 0.1}, "quantity": {"stepSize": float("nan")}},
    }
    (m,), warnings = parse_markets([entry])
    assert m.tick_size == Decimal("0.1")  # not Decimal(0.1) = 0.1000000000000000055...
    assert m.step_size is None and len(warnings) == 1


def test_base_and_quote_fall_back_to_the_symbol() -> None:
    (m,), _ = parse_markets([{"symbol": "JTO_USDC", "marketType": "SPOT"}])
    assert (m.base, m.quote) == ("JTO", "USDC")


def test_suffix_contradiction_is_kept_with_warning() -> None:
    (m,), warnings = parse_markets([{"symbol": "SOL_USDC", "marketType": "PERP"}])
    assert m.instrument_type == "perpetual" and m.normalized == "SOL-USDC"
    assert len(warnings) == 1 and "_PERP" in warnings[0]


@pytest.mark.parametrize(
    ("native", "expected"),
    [
        ("SOL_USDC", "SPOT"),
        ("SOL_USDC_PERP", "PERP"),
        ("A.US_USDC_RFQ", "RFQ"),
        ("X_Y_Z", "UNKNOWN"),
        ("X", "UNKNOWN"),
    ],
)
def test_infer_market_type(native: str, expected: str) -> None:
    assert infer_market_type(native) == expected


# --- SymbolMap ----------------------------------------------------------------------------------


def make_map() -> SymbolMap:
    markets, _ = parse_markets(all_fixture_markets())
    return SymbolMap.from_markets(markets)


def test_unknown_symbols_raise_clear_key_errors() -> None:
    smap = make_map()
    with pytest.raises(KeyError) as exc:
        smap.to_native("DOGE-USDC")
    assert str(exc.value) == "unknown normalized symbol 'DOGE-USDC': not among the 16 loaded Backpack markets"
    with pytest.raises(UnknownSymbolError, match="it is a native symbol, use to_normalized"):
        smap.to_native("SOL_USDC")
    with pytest.raises(UnknownSymbolError, match="it is a normalized symbol, use to_native"):
        smap.to_normalized("SOL-USDC")
    with pytest.raises(KeyError, match="unknown symbol 'NOPE'"):
        smap.info("NOPE")


def test_contains_and_listings() -> None:
    smap = make_map()
    assert "SOL_USDC" in smap and "SOL-USDC" in smap and "AAPL.US-USDC-RFQ" in smap
    assert "SOL/USDC" not in smap and 42 not in smap
    assert smap.natives() == sorted(smap.natives())
    assert smap.normalized() == sorted(normalize_symbol(n) for n in smap.natives())
    assert [m.native for m in smap] == smap.natives()


def test_symbol_map_refuses_duplicates() -> None:
    markets, _ = parse_markets(load("ccxt_samples.json"))
    with pytest.raises(ValueError, match="duplicate native symbol 'SOL_USDC'"):
        SymbolMap.from_markets(markets + markets[:1])


# --- SymbolCache --------------------------------------------------------------------------------


S = 1_000_000  # µs per second


class FakeClock:
    def __init__(self, t: int = 1000 * S) -> None:
        self.t = t

    def __call__(self) -> int:
        return self.t


def test_cache_ttl_with_fake_clock() -> None:
    clock = FakeClock()
    cache = SymbolCache(ttl_us=60 * S)
    assert cache.get(clock()) is None and cache.needs_refresh(clock())
    smap = cache.update(load("ccxt_samples.json"), clock())
    assert cache.loaded_at == 1000 * S
    assert cache.get(clock()) is smap and not cache.needs_refresh(clock())
    clock.t += 60 * S - 1
    assert cache.get(clock()) is smap and not cache.needs_refresh(clock())
    clock.t = 1060 * S  # exactly ttl later: expired
    assert cache.get(clock()) is None and cache.needs_refresh(clock())
    smap2 = cache.update(all_fixture_markets(), clock())
    assert smap2 is not smap and len(smap2) == 16 and cache.get(clock()) is smap2


def test_cache_clock_going_backwards_counts_as_expired() -> None:
    cache = SymbolCache(30 * S)
    cache.update(load("ccxt_samples.json"), 500 * S)
    assert cache.get(500 * S - 1) is None and cache.needs_refresh(500 * S - 1)


def test_cache_keeps_last_good_map_on_empty_refresh() -> None:
    cache = SymbolCache(10 * S)
    good = cache.update(load("ccxt_samples.json"), 0)
    assert cache.update({"error": "maintenance"}, 5 * S) is good
    assert cache.warnings and "not a list" in cache.warnings[0]
    assert cache.loaded_at == 0  # not refreshed by the bad answer
    assert cache.get(11 * S) is None


def test_cache_empty_first_load_is_not_cached() -> None:
    cache = SymbolCache(10 * S)
    empty = cache.update([], 0)
    assert len(empty) == 0 and cache.get(0) is None and cache.needs_refresh(0)


@pytest.mark.parametrize("ttl", [0, -1, 1.5, float("inf"), float("nan"), "60", True])
def test_cache_refuses_bad_ttl(ttl: object) -> None:
    with pytest.raises(ValueError, match="ttl_us"):
        SymbolCache(ttl)  # type: ignore[arg-type]


def test_missing_and_uninferable_market_type_is_unknown_with_one_warning() -> None:
    (m,), warnings = parse_markets([{"symbol": "A_B_C"}])
    assert (m.market_type, m.instrument_type, m.normalized) == ("UNKNOWN", "unknown", "A-B-C")
    assert warnings == ["A_B_C: no marketType; inferred UNKNOWN from the symbol"]
