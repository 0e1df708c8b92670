"""One metrics registry per feed: the exporter, the health endpoint and the parity report all read it.

Every metric the project exports is declared once, in ``CATALOGUE`` (name, type, help, labels, and
which paths can produce it); ``docs/observability.md`` is generated from it and the operator assets in
``docs/`` are checked against it. Values reach the registry two ways:

* **collectors** read a component's own counters when the registry is read (a scrape, a health
  request). The sans-I/O core (``Decoder.stats``, ``Router.stats``, ``BookSync.stats``) and the
  shells' tallies (``SessionStats``, ``RestClient.metrics``) keep counting as they always did, so the
  hot path pays nothing for being observed;
* **instruments** (``counter``, ``gauge``, ``histogram``) are pushed by the shells for the rare,
  labelled events only they see: a resync's reason, a REST status code, a callback's latency.

Each value has exactly one source, so nothing is counted twice. Both feeds build their registry with
the constant label ``path`` (``native`` or ``ccxt``) and report the same names and labels, so a shadow
rollout compares them series by series.

``prometheus_client`` is optional (``pip install cryptofeed-backpack[metrics]``): without it the
registry counts and the health endpoint works; only the text export says it is unavailable.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

COUNTER = "counter"
GAUGE = "gauge"
HISTOGRAM = "histogram"

NATIVE = "native"
CCXT = "ccxt"
PATHS = (NATIVE, CCXT)

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
CALLBACK_BUCKETS = (0.00001, 0.00005, 0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0)


@dataclass(frozen=True)
class MetricSpec:
    name: str
    kind: str
    help: str
    labels: tuple[str, ...] = ()
    paths: tuple[str, ...] = PATHS
    buckets: tuple[float, ...] = ()


def _spec(
    name: str,
    kind: str,
    help: str,
    labels: tuple[str, ...] = (),
    paths: tuple[str, ...] = PATHS,
    buckets: tuple[float, ...] = (),
) -> MetricSpec:
    return MetricSpec(name, kind, help, labels, paths, buckets)


CATALOGUE: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        _spec(
            "backpack_feed_info",
            GAUGE,
            "Always 1; the labels name the versions running.",
            ("version", "cryptofeed"),
        ),
        _spec(
            "backpack_feed_running", GAUGE, "1 while the feed's run is active, 0 while stopped or restarting."
        ),
        _spec(
            "backpack_feed_restarts_total",
            COUNTER,
            "Runs that ended on an unexpected error and were started again.",
        ),
        _spec("backpack_health_status", GAUGE, "The /health verdict: 0 ok, 1 degraded, 2 down."),
        _spec("backpack_ws_connected", GAUGE, "1 while a WebSocket connection to the exchange is open."),
        _spec("backpack_ws_connects_total", COUNTER, "WebSocket connections opened."),
        _spec("backpack_ws_reconnects_total", COUNTER, "WebSocket connections opened after the first."),
        _spec("backpack_ws_frames_total", COUNTER, "WebSocket text frames received from the exchange."),
        _spec(
            "backpack_ws_messages_total",
            COUNTER,
            "Stream messages by stream kind and symbol (native: those the protocol core delivered after "
            "validation and de-duplication; ccxt: those ccxt handled).",
            ("stream", "symbol"),
        ),
        _spec(
            "backpack_ws_messages_per_second",
            GAUGE,
            "Frames per second since the reading about 10 s before this one (scrapes and health reads).",
        ),
        _spec(
            "backpack_last_message_age_seconds",
            GAUGE,
            "Seconds since the last stream message for the symbol.",
            ("symbol",),
        ),
        _spec(
            "backpack_decode_errors_total",
            COUNTER,
            "Frames that carried an error instead of data: undecodable (not JSON, unknown shape) or "
            "exchange_error (an error frame from the exchange).",
            ("reason",),
        ),
        _spec(
            "backpack_dropped_total",
            COUNTER,
            "Messages deliberately not delivered, by reason (duplicates, old deltas, unsubscribed, ...).",
            ("reason",),
        ),
        _spec(
            "backpack_errors_total",
            COUNTER,
            "Failures contained by the feed, by kind: internal (a bug in the glue), markets (market list), "
            "watch (ccxt: a watch call raised), conversion (ccxt: an update that could not be converted).",
            ("kind",),
        ),
        _spec("backpack_auth_failures_total", COUNTER, "Private subscriptions refused by the exchange."),
        _spec(
            "backpack_private_channels_stopped",
            GAUGE,
            "1 once private channels gave up after repeated refusals (public channels keep running).",
            paths=(NATIVE,),
        ),
        _spec("backpack_book_synced", GAUGE, "1 while the symbol's order book is synchronised.", ("symbol",)),
        _spec(
            "backpack_book_age_seconds",
            GAUGE,
            "Seconds since the symbol's order book last changed.",
            ("symbol",),
        ),
        _spec(
            "backpack_book_snapshot_age_seconds",
            GAUGE,
            "Seconds since the symbol's book was last handed to callbacks as a snapshot.",
            ("symbol",),
        ),
        _spec(
            "backpack_book_resyncs_total",
            COUNTER,
            "Order books invalidated and rebuilt, by symbol and reason (gap, reconnect, stale_snapshot...).",
            ("symbol", "reason"),
        ),
        _spec(
            "backpack_book_gaps_total",
            COUNTER,
            "Sequence gaps seen on a depth stream (native: each one resynchronises the book; ccxt: applied "
            "silently by ccxt, known deviation 1).",
            ("symbol",),
        ),
        _spec(
            "backpack_book_snapshots_total",
            COUNTER,
            "Depth snapshot requests by symbol and result (ok, failed).",
            ("symbol", "result"),
        ),
        _spec(
            "backpack_rest_requests_total",
            COUNTER,
            'REST attempts by endpoint path and HTTP status ("error" when no response arrived).',
            ("endpoint", "status"),
        ),
        _spec(
            "backpack_rest_latency_seconds",
            HISTOGRAM,
            "REST attempt latency by endpoint path.",
            ("endpoint",),
            buckets=LATENCY_BUCKETS,
        ),
        _spec(
            "backpack_rest_retries_total",
            COUNTER,
            "REST attempts repeated after a retryable failure.",
            paths=(NATIVE,),
        ),
        _spec(
            "backpack_rest_failures_total", COUNTER, "REST calls that failed for good (after any retries)."
        ),
        _spec(
            "backpack_rest_circuit_state",
            GAUGE,
            "1 for the REST circuit breaker's current state.",
            ("state",),
            paths=(NATIVE,),
        ),
        _spec(
            "backpack_rest_circuit_opens_total",
            COUNTER,
            "Times the REST circuit breaker opened.",
            paths=(NATIVE,),
        ),
        _spec(
            "backpack_rest_circuit_rejections_total",
            COUNTER,
            "REST calls refused while the circuit was open.",
            paths=(NATIVE,),
        ),
        _spec(
            "backpack_callback_latency_seconds",
            HISTOGRAM,
            "Time spent in each user callback, by channel.",
            ("channel",),
            buckets=CALLBACK_BUCKETS,
        ),
        _spec(
            "backpack_callback_errors_total",
            COUNTER,
            "Exceptions raised by user callbacks, by callback name.",
            ("callback",),
        ),
    )
}


class UnknownMetric(ValueError):
    """A name or label set the catalogue does not declare: a bug in the caller, reported at once."""


class HistogramValue:
    """One label combination of a histogram: per-bucket counts (not cumulative; one more for +Inf).

    A hot caller may append durations in integer nanoseconds to ``ns_sink()`` instead of calling
    ``observe``: each is observed as ``ns / 1e9``, in order, when the value is next read (``flush``), so
    the counts, the count and the sum (to the last bit) are what observing each at once gives.
    """

    __slots__ = ("buckets", "counts", "sum", "count", "_ns")

    def __init__(self, buckets: tuple[float, ...], counts: list[int] | None = None) -> None:
        self.buckets = buckets
        self.counts = counts if counts is not None else [0] * (len(buckets) + 1)
        self.sum = 0.0
        self.count = 0
        self._ns: list[int] | None = None

    def observe(self, value: float) -> None:
        self.flush()  # keep the order of observations, whichever way they arrived
        self.counts[bisect_left(self.buckets, value)] += 1
        self.sum += value
        self.count += 1

    def ns_sink(self) -> list[int]:
        """The list a hot path appends nanosecond durations to: one append per observation instead of a
        method call and a bisect. Its owner calls ``flush`` when it grows long; reads flush it anyway."""
        if self._ns is None:
            self._ns = []
        return self._ns

    def flush(self) -> None:
        """Observe what the sink holds, oldest first."""
        pending = self._ns
        if not pending:
            return
        n = len(pending)
        batch = pending[:n]
        del pending[:n]  # an append made meanwhile (another thread) stays for the next flush
        buckets, counts = self.buckets, self.counts
        total = self.sum
        for ns in batch:
            value = ns / 1e9
            counts[bisect_left(buckets, value)] += 1
            total += value
        self.sum = total
        self.count += n

    def cumulative(self) -> list[tuple[str, int]]:
        self.flush()
        out, running = [], 0
        for bound, n in zip((*map(_bound, self.buckets), "+Inf"), self.counts, strict=True):
            running += n
            out.append((bound, running))
        return out


def _bound(value: float) -> str:
    return repr(float(value))


@dataclass(frozen=True)
class Family:
    spec: MetricSpec
    samples: list[tuple[dict[str, str], Any]] = field(
        default_factory=list
    )  # (labels, float | HistogramValue)


Sample = tuple[str, Mapping[str, Any], float]
Collector = Callable[[], Iterable[Sample]]


class _Child:
    """One label combination of a pushed counter or gauge."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1.0) -> None:
        self.value += amount

    def set(self, value: float) -> None:
        self.value = value


class _Instrument:
    __slots__ = ("spec", "children")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self.children: dict[tuple[str, ...], Any] = {}
        if not spec.labels and spec.kind != HISTOGRAM:
            self.children[()] = _Child()  # a label-less series exists (at 0) from the start

    def labels(self, *values: Any) -> Any:
        child = self.children.get(values)  # label values are nearly always str already: one lookup
        if child is not None:
            return child
        key = tuple(str(v) for v in values)
        child = self.children.get(key)
        if child is None:
            if len(key) != len(self.spec.labels):
                raise UnknownMetric(
                    f"{self.spec.name} takes labels {self.spec.labels}, got {len(key)} values"
                )
            child = self.children[key] = self._new()
        return child

    def _new(self) -> Any:
        return _Child()


class Counter(_Instrument):
    __slots__ = ()

    def inc(self, *values: Any, amount: float = 1.0) -> None:
        self.labels(*values).inc(amount)


class Gauge(_Instrument):
    __slots__ = ()

    def set(self, *values: Any, value: float) -> None:
        self.labels(*values).set(value)


class Histogram(_Instrument):
    __slots__ = ()

    def _new(self) -> HistogramValue:
        return HistogramValue(self.spec.buckets)

    def observe(self, *values: Any, value: float) -> None:
        self.labels(*values).observe(value)


_KINDS = {COUNTER: Counter, GAUGE: Gauge, HISTOGRAM: Histogram}


class Registry:
    """The metrics of one feed (``const_labels`` go on every series; ``path`` selects the catalogue
    entries that apply)."""

    def __init__(
        self, const_labels: Mapping[str, str] | None = None, catalogue: Mapping[str, MetricSpec] = CATALOGUE
    ) -> None:
        self.const_labels = {str(k): str(v) for k, v in (const_labels or {}).items()}
        self.catalogue = dict(catalogue)
        self.path = self.const_labels.get("path")
        self._instruments: dict[str, _Instrument] = {}
        self._collectors: list[Collector] = []

    def _instrument(self, name: str, kind: str) -> Any:
        inst = self._instruments.get(name)
        if inst is None:
            spec = self.spec(name)
            if spec.kind != kind:
                raise UnknownMetric(f"{name} is a {spec.kind}, not a {kind}")
            inst = self._instruments[name] = _KINDS[kind](spec)
        return inst

    def spec(self, name: str) -> MetricSpec:
        spec = self.catalogue.get(name)
        if spec is None:
            raise UnknownMetric(f"{name} is not in the metrics catalogue (backpack.metrics.CATALOGUE)")
        return spec

    def counter(self, name: str) -> Counter:
        return self._instrument(name, COUNTER)

    def gauge(self, name: str) -> Gauge:
        return self._instrument(name, GAUGE)

    def histogram(self, name: str) -> Histogram:
        return self._instrument(name, HISTOGRAM)

    def add_collector(self, collector: Collector) -> None:
        """``collector()`` yields ``(name, labels, value)`` of counters and gauges at each read."""
        self._collectors.append(collector)

    def applies(self, spec: MetricSpec) -> bool:
        return self.path is None or self.path in spec.paths

    def collect(self) -> list[Family]:
        """Every catalogue entry that applies to this registry's path, in order, with its samples."""
        families = {name: Family(spec) for name, spec in self.catalogue.items() if self.applies(spec)}
        for name, inst in self._instruments.items():
            family = families.get(name)
            if family is None:
                continue
            for key, child in inst.children.items():
                if isinstance(child, HistogramValue):
                    child.flush()  # durations a hot path left in the sink count from this read on
                    value = child
                else:
                    value = child.value
                family.samples.append((dict(zip(inst.spec.labels, key, strict=True)), value))
        for collector in self._collectors:
            for name, labels, value in collector():
                spec = self.spec(name)
                if spec.kind == HISTOGRAM:
                    raise UnknownMetric(f"{name}: histograms are pushed, not collected")
                if set(labels) != set(spec.labels):
                    raise UnknownMetric(f"{name} takes labels {spec.labels}, got {sorted(labels)}")
                family = families.get(name)
                if family is not None:
                    family.samples.append(({k: str(labels[k]) for k in spec.labels}, float(value)))
        for family in families.values():
            keys = [tuple(sorted(labels.items())) for labels, _ in family.samples]
            if len(keys) != len(set(keys)):
                raise UnknownMetric(f"{family.spec.name}: one series reported twice (two sources for one value)")
        return list(families.values())

    def snapshot(self) -> dict[str, list[dict[str, Any]]]:
        """Every sample as plain data (JSON-able): what a parity report stores beside its verdicts."""
        out: dict[str, list[dict[str, Any]]] = {}
        for family in self.collect():
            rows = []
            for labels, value in family.samples:
                if isinstance(value, HistogramValue):
                    value = {"count": value.count, "sum": value.sum, "buckets": dict(value.cumulative())}
                rows.append({"labels": {**self.const_labels, **labels}, "value": value})
            out[family.spec.name] = rows
        return out

    def value(self, name: str, **labels: Any) -> float:
        """The sum of ``name`` over the samples whose labels include ``labels`` (histograms: their count)."""
        want = {k: str(v) for k, v in labels.items()}
        total = 0.0
        for family in self.collect():
            if family.spec.name != name:
                continue
            for sample_labels, value in family.samples:
                if all(sample_labels.get(k) == v for k, v in want.items()):
                    total += value.count if isinstance(value, HistogramValue) else value
        self.spec(name)  # an unknown name is a bug, not a zero
        return total

    def render(self) -> tuple[bytes, str]:
        """Prometheus text and its content type; ``MetricsUnavailable`` without prometheus_client."""
        return render_prometheus(self)


# --- Prometheus export -------------------------------------------------------------------------------


class MetricsUnavailable(RuntimeError):
    """``prometheus_client`` is not installed: the registry counts, but cannot be exported as text."""

    def __init__(self) -> None:
        super().__init__(
            "Prometheus export needs the prometheus_client package: "
            "pip install 'cryptofeed-backpack[metrics]'. "
            "The feed and GET /health work without it."
        )


def prometheus_available() -> bool:
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        return False
    return True


def render_prometheus(registry: Registry) -> tuple[bytes, str]:
    try:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
    except ImportError:
        raise MetricsUnavailable() from None

    const = registry.const_labels

    class _Bridge:
        def collect(self) -> Iterator[Any]:
            for family in registry.collect():
                spec = family.spec
                names = [*const, *spec.labels]
                if spec.kind == COUNTER:
                    out: Any = CounterMetricFamily(spec.name, spec.help, labels=names)
                elif spec.kind == GAUGE:
                    out = GaugeMetricFamily(spec.name, spec.help, labels=names)
                else:
                    out = HistogramMetricFamily(spec.name, spec.help, labels=names)
                for labels, value in family.samples:
                    values = [*const.values(), *(labels[k] for k in spec.labels)]
                    if spec.kind == HISTOGRAM:
                        out.add_metric(values, value.cumulative(), value.sum)
                    else:
                        out.add_metric(values, value)
                yield out

    target = CollectorRegistry(auto_describe=False)
    target.register(_Bridge())  # type: ignore[arg-type]
    return generate_latest(target), CONTENT_TYPE_LATEST


# --- helpers the shells use to keep per-frame bookkeeping cheap ---------------------------------------


class RateMeter:
    """Events per second over roughly the last ``window_s`` seconds, from a running total read now and then.

    Nothing happens per event: each read (a scrape, a health request) records ``(now, total)`` and the
    rate is the growth since the oldest reading within the window (or the newest before it), so the
    per-frame path pays nothing. Times come from the feed's clock, so a replay reports its own rate.
    """

    __slots__ = ("window_us", "_readings")

    def __init__(self, window_s: float = 10.0) -> None:
        self.window_us = int(window_s * 1_000_000)
        self._readings: deque[tuple[int, int]] = deque()

    def rate(self, now_us: int, total: int) -> float:
        readings = self._readings
        if not readings or now_us > readings[-1][0]:
            readings.append((now_us, total))
        while len(readings) > 2 and readings[1][0] <= now_us - self.window_us:
            readings.popleft()
        then, before = readings[0]
        if now_us <= then:
            return 0.0
        return max(0, total - before) * 1_000_000 / (now_us - then)


class RecentEvents:
    """When rare events (resyncs, reconnects, errors) happened, so health can count the recent ones."""

    __slots__ = ("_times", "_max")

    def __init__(self, max_per_kind: int = 4096) -> None:
        self._times: dict[str, deque[int]] = {}
        self._max = max_per_kind

    def mark(self, kind: str, ts_us: int) -> None:
        times = self._times.get(kind)
        if times is None:
            times = self._times[kind] = deque(maxlen=self._max)
        times.append(ts_us)

    def count(self, kind: str, since_us: int) -> int:
        n = 0
        for ts in reversed(self._times.get(kind, ())):
            if ts < since_us:
                break
            n += 1
        return n


class StreamActivity:
    """Per (stream kind, symbol): messages seen and the last one's receipt; read by collectors and health.

    One dict of two-element lists, so ``seen`` (once per delivered message) costs one lookup.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], list[int]] = {}

    def seen(self, kind: str, symbol: str, receipt: int) -> None:
        entry = self._entries.get((kind, symbol))
        if entry is None:
            self._entries[(kind, symbol)] = [1, receipt]
            return
        entry[0] += 1
        if receipt > entry[1]:
            entry[1] = receipt

    def entry(self, kind: str, symbol: str) -> list[int] | None:
        """The live ``[messages, last receipt]`` of one stream (None before its first message), for a caller
        that keeps it and updates it as ``seen`` would: the book path saves a tuple and a lookup per delta."""
        return self._entries.get((kind, symbol))

    @property
    def counts(self) -> dict[tuple[str, str], int]:
        return {key: entry[0] for key, entry in self._entries.items()}

    @property
    def last(self) -> dict[tuple[str, str], int]:
        return {key: entry[1] for key, entry in self._entries.items()}

    def last_for_symbol(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for (_kind, symbol), (_n, ts) in self._entries.items():
            if symbol and ts > out.get(symbol, -1):
                out[symbol] = ts
        return out

    def last_for(self, kind: str, symbol: str | None) -> int | None:
        if symbol is not None:
            entry = self._entries.get((kind, symbol))
            return None if entry is None else entry[1]
        times = [entry[1] for (k, _s), entry in self._entries.items() if k == kind]
        return max(times) if times else None

    def count_for(self, kind: str, symbol: str | None) -> int:
        if symbol is not None:
            entry = self._entries.get((kind, symbol))
            return 0 if entry is None else entry[0]
        return sum(entry[0] for (k, _s), entry in self._entries.items() if k == kind)


def age_seconds(now_us: int, then_us: int | None) -> float | None:
    """Seconds from ``then_us`` to ``now_us`` (never negative), rounded to the ms; None when never."""
    if then_us is None:
        return None
    return round(max(0, now_us - then_us) / 1_000_000, 3)


class CounterView(Mapping[str, int]):
    """The old ``feed.metrics`` dict, read from the registry: each key is a sum of registry series.

    Kept so code and tests written against the per-class dicts keep working; new code reads the
    registry (``feed.registry``) directly.
    """

    def __init__(
        self, registry: Registry, keys: Mapping[str, tuple[tuple[str, Mapping[str, str]], ...]]
    ) -> None:
        self._registry = registry
        self._keys = dict(keys)

    def __getitem__(self, key: str) -> int:
        parts = self._keys[key]
        return int(sum(self._registry.value(name, **labels) for name, labels in parts))

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"CounterView({dict(self)!r})"


# --- the reference table of docs/observability.md ------------------------------------------------------

TABLE_BEGIN = (
    "<!-- metrics-table:begin (generated from backpack.metrics.CATALOGUE: python -m backpack.metrics) -->"
)
TABLE_END = "<!-- metrics-table:end -->"


def reference_table(catalogue: Mapping[str, MetricSpec] = CATALOGUE) -> str:
    """The markdown table of every metric; ``docs/observability.md`` holds it between the markers."""
    rows = ["| metric | type | labels | paths | meaning |", "|---|---|---|---|---|"]
    for spec in catalogue.values():
        labels = ", ".join(f"`{label}`" for label in ("path", *spec.labels))
        paths = " ".join(spec.paths)
        rows.append(f"| `{spec.name}` | {spec.kind} | {labels} | {paths} | {spec.help.replace('|', '/')} |")
    return "\n".join([TABLE_BEGIN, *rows, TABLE_END])


def replace_table(text: str, table: str | None = None) -> str:
    """``text`` with the block between the markers replaced by the current table."""
    start, end = text.index(TABLE_BEGIN), text.index(TABLE_END) + len(TABLE_END)
    return text[:start] + (table or reference_table()) + text[end:]


if __name__ == "__main__":  # python -m backpack.metrics [docs/observability.md]: rewrite the table in place
    import sys
    from pathlib import Path

    target = Path(sys.argv[1] if len(sys.argv) > 1 else "docs/observability.md")
    target.write_text(replace_table(target.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"{target}: metrics table rewritten ({len(CATALOGUE)} metrics)")
