"""MarketSource: what the loopback server needs from a market, so a recording can drive it like the generator.

The server keeps everything that is the exchange's behaviour whatever the data: sockets, stream-name
validation, private-subscribe signatures, keep-alive, send queues, fault injection and the shapes of
REST errors. A source owns the data: which frames reach which subscriber and when, and the REST
answers. Two sources exist:

* ``SeededSource`` (``harness/loopback/seeded.py``): the seeded generator, stepped by the server's ticker
  or by ``server.step()``; every step is broadcast to the connections subscribed to each stream.
* ``RecordingSource`` (``harness/loopback/recorded/``): plays a recording to each connection from the
  moment it subscribes, paced by the recorded times, and answers REST from what the recording holds.

A source is pure data and timing; it reaches sockets only through the ``SourceHost`` it is bound to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from harness.loopback.market.wire import Emission

if TYPE_CHECKING:
    from multidict import MultiMapping


class RestParseFailure(Exception):
    """A query the exchange cannot deserialize: 400, plain text ``Failed to deserialize query string: …``."""


class RestClientError(Exception):
    """400 ``{"code":"INVALID_CLIENT_REQUEST","message":...}``."""


class RestNotFound(Exception):
    """404 with the message as plain text (the server's own ``Not Found`` for paths nobody serves)."""


@dataclass(frozen=True, slots=True)
class RestRequest:
    """One GET under ``/api/v1/``: ``name`` is the segment after it (``depth``), ``query`` in wire order."""

    name: str
    query: MultiMapping[str]
    path_qs: str


@dataclass(frozen=True, slots=True)
class RestAnswer:
    """A REST answer. ``body`` str is sent as UTF-8 text (aiohttp adds ``charset``), bytes exactly as given,
    None as no body at all (204)."""

    status: int
    body: str | bytes | None
    content_type: str | None = "application/json"
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> RestAnswer:
        return cls(status, json.dumps(data, separators=(",", ":")), "application/json", dict(headers or {}))


def int_param(query: MultiMapping[str], name: str, default: int | None) -> int:
    """An integer query parameter, refused the way the exchange's deserializer refuses it."""
    raw = query.get(name)
    if raw is None:
        if default is None:
            raise RestParseFailure(f"missing field `{name}`")
        return default
    try:
        return int(raw)
    except ValueError:
        raise RestParseFailure(f"{name}: invalid digit found in string") from None


class Subscriber(Protocol):
    """The server's view of one WebSocket connection that a source may read."""

    id: int
    open: bool
    subscriptions: set[str]


class SourceHost(Protocol):
    """What a source may ask of the server it is bound to (the server implements it)."""

    def deliver(self, conn: Any, stream: str, text: str, depth: tuple[str, int] | None = None) -> None:
        """Queue one frame text to one connection; ``depth``: (symbol, u) of a depth frame, for the faults."""

    async def drain(self, conn: Any) -> None:
        """Return once every frame queued to ``conn`` has been written (or the connection is gone)."""

    async def end(self, conn: Any, code: int, reason: str) -> None:
        """Close one connection with a Close frame."""


class MarketSource(Protocol):
    """The data behind the loopback server (see the module docstring)."""

    label: str  # what the server logs and ``serve`` prints: "seed 0", "recording session.jsonl.zst"

    @property
    def steps(self) -> int:
        """Market steps taken (stamped on every ``SentFrame``); 0 for a source that is not stepped."""

    def bind(self, host: SourceHost) -> None:
        """Called once when the server starts, inside its event loop."""

    async def close(self) -> None:
        """Called when the server stops, before it closes the connections."""

    def step(self) -> list[Emission]:
        """One step of the server's ticker: frames to broadcast to the subscribers of each stream."""

    def subscribed(self, conn: Subscriber, streams: Sequence[str]) -> list[Emission]:
        """The accepted streams of one SUBSCRIBE frame (private ones only once authorised, in a call of their
        own). Returns frames to send at once; a source that pushes per connection starts doing so here."""

    def unsubscribed(self, conn: Subscriber, streams: Sequence[str]) -> None:
        """The streams of one UNSUBSCRIBE frame."""

    def disconnected(self, conn: Subscriber) -> None:
        """The connection is gone: stop pushing to it."""

    def rest(self, request: RestRequest) -> RestAnswer:
        """Answer one REST GET, or raise ``RestParseFailure``, ``RestClientError`` or ``RestNotFound``."""


__all__ = [
    "MarketSource",
    "RestAnswer",
    "RestClientError",
    "RestNotFound",
    "RestParseFailure",
    "RestRequest",
    "SourceHost",
    "Subscriber",
    "int_param",
]
