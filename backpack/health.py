"""``GET /health`` and ``GET /metrics``: what an operator (or a probe) watches during the rollout.

Each feed describes itself as a ``FeedHealth`` (connection, books, streams, recent trouble) on its own
clock; ``verdict`` turns that and the configured thresholds into ``ok`` / ``degraded`` / ``down`` with
the reasons, and ``HealthServer`` serves both endpoints with aiohttp on the configured host and port
only. HTTP status follows the verdict (200 for ok, 503 otherwise) so load balancers and Kubernetes
probes can use the endpoint as it is.

* ``down``: the feed is not running (stopped, or restarting after a failure) or no WebSocket
  connection to the exchange is open: no data is flowing.
* ``degraded``: data flows but cannot be trusted in full: a subscribed book is not synchronised or is
  older than ``stale_book_seconds``; a symbol had no message for ``stale_message_seconds``; private
  channels stopped; the REST circuit is open; or more resyncs, gaps, reconnects, errors or auth
  failures than allowed happened within the last ``window_seconds``.
* ``ok``: none of that.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from .config import HealthSettings
from .metrics import MetricsUnavailable, Registry, age_seconds

LOG = logging.getLogger("backpack.health")

OK = "ok"
DEGRADED = "degraded"
DOWN = "down"
STATUS_VALUES = {OK: 0, DEGRADED: 1, DOWN: 2}

# recent kind -> the HealthSettings field that bounds it
RECENT_LIMITS = {
    "resyncs": "max_resyncs",
    "gaps": "max_gaps",
    "reconnects": "max_reconnects",
    "errors": "max_errors",
    "auth_failures": "max_auth_failures",
}


@dataclass
class BookHealth:
    symbol: str  # normalized
    state: str  # synced | buffering | idle
    sequence: int | None = None
    updated_us: int | None = None  # last change of the book
    snapshot_us: int | None = None  # last time it was handed to callbacks as a snapshot
    gaps_since_snapshot: int = 0  # ccxt: gaps ccxt applied to this book since it was built


@dataclass
class StreamHealth:
    name: str  # the Backpack stream name
    status: str  # receiving | subscribed | retrying | rejected | disconnected
    last_us: int | None = None
    messages: int = 0


@dataclass
class FeedHealth:
    feed: str
    path: str
    running: bool
    connected: bool
    connects: int = 0
    reconnects: int = 0
    connected_since_us: int | None = None
    last_frame_us: int | None = None
    messages_per_second: float = 0.0
    books: list[BookHealth] = field(default_factory=list)
    streams: list[StreamHealth] = field(default_factory=list)
    symbols_last_us: dict[str, int | None] = field(default_factory=dict)  # subscribed symbol -> last message
    private_stopped: bool = False
    circuit: str | None = None  # REST circuit breaker state, when the path has one
    recent: dict[str, int] = field(default_factory=dict)  # RECENT_LIMITS kinds within the window


class HealthSource(Protocol):
    registry: Registry

    def health_status(self, now_us: int, window_us: int) -> FeedHealth: ...

    def health_now(self) -> int: ...


def verdict(h: FeedHealth, settings: HealthSettings, now_us: int) -> tuple[str, list[str]]:
    """The overall status and every reason for it (empty for ok)."""
    if not h.running:
        return DOWN, ["the feed is not running (stopped, or restarting after a failure)"]
    if not h.connected:
        return DOWN, ["no WebSocket connection to the exchange is open"]
    reasons: list[str] = []
    stale_book, stale_message = settings.stale_book_seconds, settings.stale_message_seconds
    since = h.connected_since_us
    for book in h.books:
        if book.state != "synced":
            reasons.append(f"{book.symbol}: order book is {book.state}, not synchronised")
            continue
        age = age_seconds(now_us, book.updated_us or book.snapshot_us)
        if stale_book is not None and age is not None and age > stale_book:
            reasons.append(f"{book.symbol}: order book not updated for {age:g} s (max {stale_book:g})")
    if stale_message is not None:
        for symbol, last in sorted(h.symbols_last_us.items()):
            age = age_seconds(now_us, last if last is not None else since)
            if age is not None and age > stale_message:
                reasons.append(f"{symbol}: no message for {age:g} s (max {stale_message:g})")
    if h.private_stopped:
        reasons.append("private channels stopped after repeated refusals (check the key pair and the clock)")
    if h.circuit == "open":
        reasons.append("REST circuit breaker is open")
    for kind, setting in RECENT_LIMITS.items():
        count, limit = h.recent.get(kind, 0), getattr(settings, setting)
        if count > limit:
            reasons.append(
                f"{count} {kind.replace('_', ' ')} in the last {settings.window_seconds:g} s (max {limit})"
            )
    return (DEGRADED, reasons) if reasons else (OK, [])


def document(h: FeedHealth, settings: HealthSettings, now_us: int) -> dict[str, Any]:
    """The JSON body of ``GET /health``."""
    status, reasons = verdict(h, settings, now_us)
    books = {b.symbol: b for b in h.books}
    symbols: dict[str, Any] = {}
    for symbol in sorted(set(h.symbols_last_us) | set(books)):
        book = books.get(symbol)
        symbols[symbol] = {
            "last_message_age_seconds": age_seconds(now_us, h.symbols_last_us.get(symbol)),
            "book": None
            if book is None
            else {
                "state": book.state,
                "sequence": book.sequence,
                "age_seconds": age_seconds(now_us, book.updated_us),
                "snapshot_age_seconds": age_seconds(now_us, book.snapshot_us),
                "gaps_since_snapshot": book.gaps_since_snapshot,
            },
        }
    return {
        "status": status,
        "reasons": reasons,
        "feed": h.feed,
        "path": h.path,
        "time_us": now_us,
        "connection": {
            "connected": h.connected,
            "connects": h.connects,
            "reconnects": h.reconnects,
            "connected_for_seconds": age_seconds(now_us, h.connected_since_us) if h.connected else None,
            "last_frame_age_seconds": age_seconds(now_us, h.last_frame_us),
            "messages_per_second": h.messages_per_second,
        },
        "symbols": symbols,
        "streams": {
            s.name: {
                "status": s.status,
                "last_message_age_seconds": age_seconds(now_us, s.last_us),
                "messages": s.messages,
            }
            for s in sorted(h.streams, key=lambda s: s.name)
        },
        "recent": {
            "window_seconds": settings.window_seconds,
            **{k: h.recent.get(k, 0) for k in RECENT_LIMITS},
        },
        "private_channels_stopped": h.private_stopped,
        "rest_circuit": h.circuit,
        "thresholds": settings.model_dump(exclude={"host", "port"}),
    }


def evaluate(source: HealthSource, settings: HealthSettings) -> tuple[int, dict[str, Any]]:
    now = source.health_now()
    h = source.health_status(now, int(settings.window_seconds * 1_000_000))
    body = document(h, settings, now)
    return (200 if body["status"] == OK else 503), body


class HealthServer:
    """aiohttp on ``settings.host``:``settings.port``, nowhere else; ``port`` is the bound one."""

    def __init__(self, source: HealthSource, settings: HealthSettings, log: Any = LOG) -> None:
        self.source = source
        self.settings = settings
        self.log = log
        self.port: int | None = None
        self.addresses: list[tuple[str, int]] = []  # what is actually bound, for the operator and the tests
        self._runner: Any = None

    @property
    def url(self) -> str:
        host = f"[{self.settings.host}]" if ":" in self.settings.host else self.settings.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        from aiohttp import web

        app = web.Application()
        app.router.add_get("/health", self._health)
        app.router.add_get("/metrics", self._metrics)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(runner, self.settings.host, self.settings.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        self.addresses = [tuple(a[:2]) for a in runner.addresses]
        self.port = self.addresses[0][1] if self.addresses else self.settings.port

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

    async def _health(self, request: Any) -> Any:
        from aiohttp import web

        try:
            status, body = evaluate(self.source, self.settings)
        except Exception as exc:  # noqa: BLE001 - a bug here must answer "down", not drop the probe
            self.log.error("health check failed (%s)", type(exc).__name__, exc_info=exc)
            status, body = 500, {"status": DOWN, "reasons": [f"health check failed: {type(exc).__name__}"]}
        return web.json_response(body, status=status, headers={"Cache-Control": "no-store"})

    async def _metrics(self, request: Any) -> Any:
        from aiohttp import web

        try:
            payload, content_type = self.source.registry.render()
        except MetricsUnavailable as exc:
            return web.Response(status=501, text=f"{exc}\n", headers={"Cache-Control": "no-store"})
        except Exception as exc:  # noqa: BLE001
            self.log.error("metrics export failed (%s)", type(exc).__name__, exc_info=exc)
            return web.Response(status=500, text=f"metrics export failed: {type(exc).__name__}\n")
        response = web.Response(body=payload, status=200, headers={"Cache-Control": "no-store"})
        response.headers["Content-Type"] = content_type
        return response
