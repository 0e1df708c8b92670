"""The one transport seam: every byte the feed sends or receives crosses it.

Three implementations share this interface: live (real sockets), recording (wraps live and writes the
timeline) and replay (serves a recording on a virtual clock and refuses to dial out). Nothing
monkeypatches aiohttp, websockets or cryptofeed; the feed is simply handed a transport.

Times are integer microseconds from the transport's own clock (``transport.clock``, see
``backpack.clock``), so a replay hands the core exactly the receipt times that were recorded and runs
every wait on its virtual clock.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from .clock import Clock

# A control frame crossing the seam: (kind, payload, receipt µs); kind is "ping" (received) or "pong" (sent).
ControlListener = Callable[[str, bytes, int], None]


@dataclass(frozen=True, slots=True)
class HttpRequest:
    method: str
    url: str  # absolute, without the query string
    params: tuple[tuple[str, str], ...] = ()  # query parameters, in order (repeatable keys allowed)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None


@dataclass(frozen=True, slots=True)
class HttpResponse:
    status: int
    headers: Mapping[str, str]
    body: bytes
    receipt: int  # µs, transport clock

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass(frozen=True, slots=True)
class WsFrame:
    data: str | bytes  # exactly as received; never re-encoded
    receipt: int  # µs, transport clock


class TransportError(Exception):
    """Connecting, sending or receiving failed below the protocol (DNS, refused, reset, timeout, proxy)."""


class TransportTimeout(TransportError):
    pass


class WsClosed(TransportError):
    """The WebSocket is closed; ``code`` is the close code when one was received."""

    def __init__(self, code: int | None, reason: str = "") -> None:
        super().__init__(f"websocket closed (code={code}{', ' + reason if reason else ''})")
        self.code = code
        self.reason = reason


WATCHDOG_CLOSE_CODE = 4000  # local code: nothing (data or ping) arrived within the watchdog interval


@runtime_checkable
class WsSession(Protocol):
    id: str
    url: str

    async def send(self, text: str) -> None: ...

    async def recv(self) -> WsFrame:
        """Next data frame; raises ``WsClosed`` once the socket is closed (including by the watchdog)."""
        ...

    async def close(self, code: int = 1000, reason: str = "") -> None: ...

    @property
    def pings_received(self) -> int: ...

    @property
    def last_activity(self) -> int:
        """µs of the last data frame or protocol ping seen."""
        ...

    def observe_control(self, listener: ControlListener | None) -> None:
        """Have protocol Pings received (and the Pongs answering them) reported as they happen, so a
        recorder can put them on the timeline; None stops it."""
        ...


@runtime_checkable
class Transport(Protocol):
    async def request(self, request: HttpRequest, *, timeout: float = 10.0) -> HttpResponse:
        """One HTTP exchange. Non-2xx statuses are returned, not raised; only transport failures raise."""
        ...

    async def connect(self, url: str, *, timeout: float = 10.0) -> WsSession: ...

    @property
    def clock(self) -> Clock:
        """The transport's clock (wall clock live, virtual on replay): receipts come from it, and every
        wait of whoever uses the transport should go through it."""
        ...

    async def close(self) -> None: ...
