"""What the ccxt-backed feed sees of ccxt's own wire: frames, connections and REST calls.

ccxt hides its socket and its HTTP session, so the ccxt path would otherwise report nothing but what
its ``watch_*`` calls return. ``CcxtObserver`` wraps a few hooks of one ``ccxt.pro.backpack``
*instance* (never the class, never ccxt's code): each wrapper records what passes and then calls the
original with the same arguments, so ccxt behaves exactly as it would unobserved. That is what lets
the ccxt path report the same metrics as the native one (frames by stream, reconnects, REST status
and latency, snapshots) and see the sequence gaps ccxt applies silently (known deviation 1): it
counts them, it does not repair them.

It also hands ccxt a ``ScrubbingLogger``: at DEBUG ccxt logs every request with its headers, and
those carry the API key and the signature.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .logs import ScrubbingLogger, context
from .protocol.events import ErrorEvent
from .protocol.router import is_auth_error
from .protocol.subscriptions import parse_stream

if TYPE_CHECKING:
    from .ccxt_feed import BackpackCcxtFeed

_STATUS: contextvars.ContextVar[str | None] = contextvars.ContextVar("backpack_ccxt_status", default=None)


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            return None
    return None


class CcxtObserver:
    """Installed on each exchange instance the feed creates; its tallies live as long as the feed."""

    def __init__(self, feed: BackpackCcxtFeed) -> None:
        self.feed = feed
        self.frames = 0
        self.connects = 0
        self.first_connects = 0  # the first connection of each exchange instance to each URL
        self._urls: set[str] = set()
        self.auth_failures = 0
        self.rest_failures = 0
        self.open: set[int] = set()  # ids of ccxt clients whose connection is open
        self.last_u: dict[str, int] = {}  # native symbol -> last u seen on its depth stream
        self.gaps_since_build: dict[str, int] = {}  # native symbol -> gaps since ccxt last built its book
        self._building: dict[str, bool] = {}
        r = feed.registry
        self._gaps = r.counter("backpack_book_gaps_total")
        self._decode = r.counter("backpack_decode_errors_total")
        self._status = r.counter("backpack_rest_requests_total")
        self._latency = r.histogram("backpack_rest_latency_seconds")
        self._snapshots = r.counter("backpack_book_snapshots_total")

    def install(self, exchange: Any) -> None:
        self.last_u.clear()
        self.gaps_since_build.clear()
        self._building.clear()
        self.open.clear()
        self._urls = set()
        for name, wrap in (
            ("handle_message", self._wrap_message),
            ("on_connected", self._wrap_connected),
            ("on_close", self._wrap_closed),
            ("on_error", self._wrap_closed),
            ("fetch", self._wrap_fetch),
            ("on_rest_response", self._wrap_rest_response),
        ):
            original = getattr(exchange, name, None)
            if callable(original):
                setattr(exchange, name, wrap(original))
        if hasattr(exchange, "logger"):
            seed = self.feed.bp_config.secret_seed()
            exchange.logger = ScrubbingLogger(logging.getLogger("ccxt.base.exchange"), [seed] if seed else [])

    # --- WebSocket ---------------------------------------------------------------------------------

    def _wrap_message(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def handle_message(client: Any, message: Any) -> Any:
            try:
                self._message(message)
            except Exception as exc:  # noqa: BLE001 - observing must never break ccxt's own handling
                self.feed._internal_error("observing a ccxt frame", exc)
            return original(client, message)

        return handle_message

    def _message(self, message: Any) -> None:
        feed = self.feed
        now = feed.clock.now_us()
        self.frames += 1
        feed._last_frame_us = now
        if not isinstance(message, dict):
            self._decode.inc("undecodable")
            feed.recent.mark("errors", now)
            return
        error = message.get("error")
        if error is not None:
            code = _int(error.get("code")) if isinstance(error, dict) else None
            text = str(error.get("message", "")) if isinstance(error, dict) else str(error)
            if is_auth_error(ErrorEvent(code, text, "")):
                self.auth_failures += 1
                feed.recent.mark("auth_failures", now)
                feed.ratelog.log(
                    logging.ERROR,
                    f"auth {code}",
                    "%s: private subscription rejected by the exchange: %s (code %s)",
                    feed.id,
                    text,
                    code,
                    extra=context(cause=f"auth: code {code}"),
                )
            else:
                self._decode.inc("exchange_error")
                feed.recent.mark("errors", now)
            return
        stream, data = message.get("stream"), message.get("data")
        if not isinstance(stream, str) or not isinstance(data, dict):
            self._decode.inc("undecodable")
            feed.recent.mark("errors", now)
            return
        try:
            kind, native, _ = parse_stream(stream)
        except ValueError:
            kind, native = "unknown", None
        symbol = native if native is not None else data.get("s")
        symbol = symbol if isinstance(symbol, str) else ""
        feed.activity.seen(kind, symbol, now)
        if kind == "depth" and symbol:
            self._depth(symbol, data)

    def _depth(self, native: str, data: dict[str, Any]) -> None:
        first, last = _int(data.get("U")), _int(data.get("u"))
        if first is None or last is None:
            return
        book = self._ccxt_book(native)
        building = book is None or book.get("nonce") is None
        if building:
            self._building[native] = True
        elif self._building.pop(native, False):
            self.gaps_since_build[native] = 0  # ccxt just built this book from a snapshot
        previous = self.last_u.get(native)
        if previous is not None and first > previous + 1:
            feed = self.feed
            std = feed.exchange_symbol_to_std_symbol(native)
            self._gaps.inc(std)
            feed.recent.mark("gaps", feed.clock.now_us())
            self.gaps_since_build[native] = self.gaps_since_build.get(native, 0) + 1
            feed.ratelog.log(
                logging.WARNING,
                f"gap {native}",
                "%s: sequence gap on depth.%s (expected U=%s, got %s); ccxt applies it to its book anyway "
                "(known deviation 1)",
                feed.id,
                native,
                previous + 1,
                first,
                extra=context(symbol=std, stream=f"depth.{native}", cause="gap"),
            )
        if previous is None or last > previous:
            self.last_u[native] = last

    def _ccxt_book(self, native: str) -> Any:
        exchange = self.feed.exchange
        sym = self.feed._ccxt_symbols.get(native)
        books = getattr(exchange, "orderbooks", None)
        return books.get(sym) if sym is not None and isinstance(books, dict) else None

    def _wrap_connected(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def on_connected(client: Any, message: Any = None) -> Any:
            self.connects += 1
            url = str(getattr(client, "url", ""))
            if url not in self._urls:
                self._urls.add(url)
                self.first_connects += 1
            self.open.add(id(client))
            self.feed._connected_since = self.feed.clock.now_us()
            return original(client, message)

        return on_connected

    def _wrap_closed(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def on_close(client: Any, error: Any) -> Any:
            if id(client) in self.open:
                self.open.discard(id(client))
                self.feed.recent.mark("reconnects", self.feed.clock.now_us())
                if not self.open:
                    self.feed._connected_since = None
            return original(client, error)

        return on_close

    @property
    def reconnects(self) -> int:
        return self.connects - self.first_connects

    # --- REST --------------------------------------------------------------------------------------

    def _wrap_rest_response(self, original: Callable[..., Any]) -> Callable[..., Any]:
        def on_rest_response(code: Any, *args: Any) -> Any:
            _STATUS.set(str(code))
            return original(code, *args)

        return on_rest_response

    def _wrap_fetch(self, original: Callable[..., Any]) -> Callable[..., Any]:
        async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
            token = _STATUS.set(None)
            started = self.feed.clock.now_us()
            ok = False
            try:
                result = await original(url, method, headers, body)
                ok = True
                return result
            finally:
                self._rest(url, _STATUS.get(), ok, started)
                _STATUS.reset(token)

        return fetch

    def _rest(self, url: str, status: str | None, ok: bool, started: int) -> None:
        parts = urlsplit(url)
        endpoint = parts.path or "/"
        feed = self.feed
        self._status.inc(endpoint, status or "error")
        self._latency.observe(endpoint, value=max(0, feed.clock.now_us() - started) / 1_000_000)
        if not ok:
            self.rest_failures += 1
        if endpoint.endswith("/api/v1/depth"):
            natives = parse_qs(parts.query).get("symbol") or [""]
            std = feed.exchange_symbol_to_std_symbol(natives[0]) if natives[0] else ""
            self._snapshots.inc(std, "ok" if ok else "failed")
            if not ok:
                feed.recent.mark("errors", feed.clock.now_us())
