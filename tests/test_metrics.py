"""``backpack.metrics``: the registry, its Prometheus export and the shells' cheap bookkeeping."""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from backpack.metrics import (
    CATALOGUE,
    CCXT,
    NATIVE,
    CounterView,
    MetricsUnavailable,
    RateMeter,
    RecentEvents,
    Registry,
    StreamActivity,
    UnknownMetric,
)


def test_unknown_names_and_label_counts_are_refused() -> None:
    r = Registry({"path": NATIVE})
    with pytest.raises(UnknownMetric, match="not in the metrics catalogue"):
        r.counter("backpack_no_such_total")
    with pytest.raises(UnknownMetric, match="is a counter, not a gauge"):
        r.gauge("backpack_book_resyncs_total")
    with pytest.raises(UnknownMetric, match="takes labels"):
        r.counter("backpack_book_resyncs_total").inc("BTC-USDC")  # reason missing
    with pytest.raises(UnknownMetric):
        r.value("backpack_no_such_total")


@pytest.mark.parametrize(
    "sample",
    [
        ("backpack_nope_total", {}, 1),
        ("backpack_book_synced", {"sym": "X"}, 1),
        ("backpack_rest_latency_seconds", {"endpoint": "/x"}, 1),
    ],
)
def test_a_collector_yielding_what_the_catalogue_lacks_fails_loudly(sample: tuple) -> None:
    r = Registry({"path": NATIVE})
    r.add_collector(lambda: [sample])
    with pytest.raises(UnknownMetric):
        r.collect()


def test_one_value_has_one_source() -> None:
    r = Registry({"path": NATIVE})
    r.counter("backpack_errors_total").inc("internal")
    r.add_collector(lambda: [("backpack_errors_total", {"kind": "internal"}, 3)])
    with pytest.raises(UnknownMetric, match="reported twice"):
        r.collect()


def test_collect_lists_every_metric_of_the_path_and_only_those() -> None:
    native = {f.spec.name for f in Registry({"path": NATIVE}).collect()}
    ccxt = {f.spec.name for f in Registry({"path": CCXT}).collect()}
    assert native == set(CATALOGUE)
    assert ccxt == {n for n, s in CATALOGUE.items() if CCXT in s.paths}
    assert "backpack_rest_circuit_state" in native - ccxt


def test_label_less_counters_exist_at_zero_and_labelled_ones_once_used() -> None:
    r = Registry({"path": NATIVE})
    r.counter("backpack_feed_restarts_total")
    r.counter("backpack_book_resyncs_total")
    snap = r.snapshot()
    assert snap["backpack_feed_restarts_total"] == [{"labels": {"path": "native"}, "value": 0.0}]
    assert snap["backpack_book_resyncs_total"] == []
    r.counter("backpack_book_resyncs_total").inc("BTC-USDC", "gap")
    r.counter("backpack_book_resyncs_total").inc("BTC-USDC", "gap", amount=2)
    r.counter("backpack_book_resyncs_total").inc("SOL-USDC", "reconnect")
    assert r.value("backpack_book_resyncs_total") == 4
    assert r.value("backpack_book_resyncs_total", reason="gap") == 3
    assert r.value("backpack_book_resyncs_total", symbol="SOL-USDC", reason="gap") == 0


def test_histogram_buckets_are_cumulative_and_exported() -> None:
    r = Registry({"path": NATIVE})
    h = r.histogram("backpack_rest_latency_seconds")
    for value in (0.001, 0.005, 0.02, 0.3, 42.0):
        h.observe("/api/v1/depth", value=value)
    payload, content_type = r.render()
    assert content_type.startswith("text/plain")
    families = {f.name: f for f in text_string_to_metric_families(payload.decode())}
    samples = {
        (s.name, s.labels.get("le")): s.value for s in families["backpack_rest_latency_seconds"].samples
    }
    assert samples[("backpack_rest_latency_seconds_bucket", "0.005")] == 2  # le is inclusive
    assert samples[("backpack_rest_latency_seconds_bucket", "0.025")] == 3
    assert samples[("backpack_rest_latency_seconds_bucket", "10.0")] == 4
    assert samples[("backpack_rest_latency_seconds_bucket", "+Inf")] == 5
    assert samples[("backpack_rest_latency_seconds_count", None)] == 5
    assert samples[("backpack_rest_latency_seconds_sum", None)] == pytest.approx(42.326)


label_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20)


@settings(max_examples=60, deadline=None)
@given(events=st.lists(st.tuples(label_text, st.integers(1, 5)), max_size=12))
def test_the_text_export_says_what_the_registry_holds(events: list[tuple[str, int]]) -> None:
    """Whatever callback names (quotes, backslashes, newlines, any Unicode) and counts, parsing the export
    gives back exactly the registry's values."""
    r = Registry({"path": CCXT})
    expected: dict[str, int] = {}
    for name, n in events:
        r.counter("backpack_errors_total").inc(name, amount=n)
        expected[name] = expected.get(name, 0) + n
    families = {f.name: f for f in text_string_to_metric_families(r.render()[0].decode())}
    got = {
        s.labels["kind"]: s.value
        for s in families["backpack_errors"].samples
        if s.name == "backpack_errors_total"
    }
    assert got == expected
    assert all(s.labels["path"] == "ccxt" for s in families["backpack_errors"].samples)


def test_without_prometheus_client_the_registry_counts_but_export_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import prometheus_client -> ImportError
    r = Registry({"path": NATIVE})
    r.counter("backpack_feed_restarts_total").inc()
    assert r.value("backpack_feed_restarts_total") == 1
    with pytest.raises(MetricsUnavailable, match=r"pip install 'cryptofeed-backpack\[metrics\]'"):
        r.render()


def test_counter_view_reads_the_registry() -> None:
    r = Registry({"path": NATIVE})
    view = CounterView(
        r,
        {
            "resyncs": (("backpack_book_resyncs_total", {}),),
            "failed": (("backpack_book_snapshots_total", {"result": "failed"}),),
        },
    )
    r.counter("backpack_book_resyncs_total").inc("X", "gap")
    r.counter("backpack_book_snapshots_total").inc("X", "ok")
    assert dict(view) == {"resyncs": 1, "failed": 0}
    with pytest.raises(TypeError):
        view["resyncs"] += 1  # type: ignore[index]  # read-only: the registry is the one source


def test_rate_meter_measures_growth_between_readings_about_a_window_apart() -> None:
    meter = RateMeter(window_s=10)
    assert meter.rate(100 * S, 0) == 0  # one reading: no rate yet
    assert meter.rate(102 * S, 400) == 200  # 400 frames in 2 s
    assert meter.rate(102 * S, 400) == 200  # a second read at the same instant changes nothing
    for t in range(103, 125):  # 100 frames a second from 102 s on
        meter.rate(t * S, 400 + (t - 102) * 100)
    # at 124 s the baseline is the newest reading at or before 114 s: 100 frames/s since
    assert meter.rate(124 * S, 400 + 22 * 100) == 100
    assert meter.rate(130 * S, 400 + 22 * 100) == pytest.approx(100 * 4 / 10)  # quiet for 6 of the last 10 s


S = 1_000_000


@settings(max_examples=100, deadline=None)
@given(times=st.lists(st.integers(0, 10_000), max_size=50), since=st.integers(0, 10_000))
def test_recent_events_count_exactly_those_since(times: list[int], since: int) -> None:
    """For timestamps marked in order, count(since) is the number at or after since."""
    recent = RecentEvents()
    for t in sorted(times):
        recent.mark("gaps", t)
    assert recent.count("gaps", since) == sum(1 for t in times if t >= since)
    assert recent.count("other", since) == 0


def test_stream_activity_keeps_counts_and_last_receipts() -> None:
    a = StreamActivity()
    a.seen("trade", "SOL_USDC", 5)
    a.seen("depth", "SOL_USDC", 9)
    a.seen("trade", "SOL_USDC", 7)
    a.seen("liquidation", "BTC_USDC_PERP", 3)
    assert a.counts[("trade", "SOL_USDC")] == 2
    assert a.last_for_symbol() == {"SOL_USDC": 9, "BTC_USDC_PERP": 3}
    assert a.last_for("liquidation", None) == 3 and a.last_for("kline", None) is None


def test_native_totals_survive_a_restart_of_the_run() -> None:
    """Each run builds a new session and REST client; the registry keeps counting from where it was."""
    from types import SimpleNamespace

    from backpack import compat
    from backpack.clock import WallClock
    from backpack.feed import BackpackFeed
    from backpack.rest import RestClient
    from backpack.session import SessionStats

    feed = BackpackFeed(symbols=["SOL-USDC"], channels=[compat.TRADES])
    rest = RestClient(SimpleNamespace(clock=WallClock()), "http://127.0.0.1:9")
    rest.metrics["retries"] = 3
    feed.session, feed.rest = (
        SimpleNamespace(
            stats=SessionStats(frames=10, connects=2, reconnects=1), session=None, public=[], private=[]
        ),
        rest,
    )
    feed._retire()  # what _run does before building the next ones
    assert feed.session is None and feed.rest is None
    feed.session = SimpleNamespace(
        stats=SessionStats(frames=5, connects=1), session=None, public=[], private=[]
    )
    r = feed.registry
    assert r.value("backpack_ws_frames_total") == 15
    assert r.value("backpack_ws_connects_total") == 3 and r.value("backpack_ws_reconnects_total") == 1
    assert r.value("backpack_rest_retries_total") == 3
    feed._retire()
    feed._retire()  # a run that failed before replacing them counts nothing twice
    assert r.value("backpack_ws_frames_total") == 15


def _family_lines(text: str, name: str) -> list[str]:
    """The exposition lines of one family, without prometheus_client's ``_created`` series (the registry
    exports none: a feed's histograms start with the feed)."""
    return [line for line in text.splitlines()
            if name in line and f"{name}_created" not in line]


# durations around every bucket bound (a value on a bound is counted in it), plus anything up to 20 s
_BOUNDS_NS = [round(b * 1e9) for b in CATALOGUE["backpack_callback_latency_seconds"].buckets]
_duration_ns = st.one_of(
    st.sampled_from(_BOUNDS_NS).flatmap(lambda ns: st.integers(ns - 2, ns + 2)),
    st.integers(0, 20 * 10**9),
)


@settings(max_examples=150, deadline=None)
@given(ops=st.lists(st.tuples(st.sampled_from(["sink", "observe", "read"]), _duration_ns), max_size=60))
def test_a_histogram_fed_through_its_ns_sink_exports_what_prometheus_client_would(
    ops: list[tuple[str, int]],
) -> None:
    """For any durations appended to the ns sink or observed, with reads at any points, the exported
    family is, line for line, what prometheus_client's own Histogram exports for the same observations
    (``ns / 1e9`` each, in order): the same buckets, count and sum to the last digit."""
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    name = "backpack_callback_latency_seconds"
    spec = CATALOGUE[name]
    theirs = CollectorRegistry()
    reference = Histogram(name, spec.help, ["path", "channel"], buckets=spec.buckets, registry=theirs)
    r = Registry({"path": NATIVE})
    child = r.histogram(name).labels("trades")
    theirs_child = reference.labels(NATIVE, "trades")  # both series exist from here, at zero
    sink = child.ns_sink()
    for op, ns in ops:
        if op == "read":
            r.render()  # a scrape in between folds what is pending
            continue
        if op == "sink":
            sink.append(ns)
        else:
            child.observe(ns / 1e9)
        theirs_child.observe(ns / 1e9)
    ours = _family_lines(r.render()[0].decode(), name)
    assert ours == _family_lines(generate_latest(theirs).decode(), name)
    assert not sink  # read: nothing left pending
    assert r.value(name) == sum(1 for op, _ in ops if op != "read")


def test_reads_of_a_histogram_fold_its_sink_first() -> None:
    r = Registry({"path": NATIVE})
    child = r.histogram("backpack_callback_latency_seconds").labels("l2_book")
    sink = child.ns_sink()
    assert child.ns_sink() is sink  # one sink per series: the hot path keeps it
    sink.extend([10_000, 10_001, 2 * 10**9])
    assert r.value("backpack_callback_latency_seconds") == 3
    assert child.cumulative()[:2] == [("1e-05", 1), ("5e-05", 2)]  # 10 µs is on the first bound
    assert child.cumulative()[-1] == ("+Inf", 3)
    snap = r.snapshot()["backpack_callback_latency_seconds"][0]["value"]
    assert snap["count"] == 3 and snap["sum"] == 10_000 / 1e9 + 10_001 / 1e9 + 2.0
