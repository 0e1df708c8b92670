"""The recording format: one header line, then one JSON object per timeline event.

This module is the single definition of every key, type and unit; ``docs/recording-format.md`` is its
prose twin and the two must agree. Events are plain frozen dataclasses with ``to_json`` /
``event_from_json`` so the writer, the reader, the replay and foreign tools all share one spelling.

Why the choices:

* Short keys (``k``, ``t``, ``c``, ``r``, ``d``, ``b``) because a session holds ~10⁵ frames and the key
  names would otherwise be a large share of the file; the kind names stay readable (``ws_recv``).
* Payloads are never re-encoded: text goes into ``d`` as the exact string received, bytes that are not
  text go into ``b`` as base64. A frame that the exchange sent with odd spacing or key order must
  replay with that spacing and order, or the replay would not test the decoder on what it really saw.
* ``t`` is a monotonic nanosecond offset from the recording start (ordering and pacing), ``r`` is the
  receipt time in integer µs that the transport handed to the feed (what the replay must hand it again).
* ``version`` is ``major.minor``: a minor bump only adds optional keys or new kinds, so a reader accepts
  any minor of a major it knows (ignoring what it does not know) and refuses any other major.
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import importlib.metadata
import platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

FORMAT_NAME = "backpack-recording"
FORMAT_VERSION = "1.0"
MAJOR_VERSION = 1
TOOL_NAME = "cryptofeed-backpack"

REDACTED = "<redacted>"
"""The one marker that replaces every secret (header values, signature entries, configured strings)."""

_VERSION_RE = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")
_VERSIONED_LIBRARIES = ("cryptofeed", "websockets", "aiohttp")


class FormatError(ValueError):
    """A header or event object that does not follow the format; the text names the key and the rule."""


# --- small typed readers for decoded JSON ---------------------------------------------------------


def _where(kind: str, key: str) -> str:
    return f"{kind}: {key!r}"


def _get_int(obj: Mapping[str, Any], key: str, kind: str, *, optional: bool = False,
             minimum: int | None = None) -> int | None:
    if key not in obj or (optional and obj[key] is None):
        if optional:
            return None
        raise FormatError(f"{_where(kind, key)} is missing")
    value = obj[key]
    if type(value) is not int:  # bool is an int subclass and must not pass; nor may 1.0
        raise FormatError(f"{_where(kind, key)} must be an integer, got {_describe(value)}")
    if minimum is not None and value < minimum:
        raise FormatError(f"{_where(kind, key)} must be >= {minimum}, got {value}")
    return value


def _get_str(obj: Mapping[str, Any], key: str, kind: str, *, optional: bool = False,
             default: str | None = None) -> str | None:
    if key not in obj or obj[key] is None:
        if optional:
            return default
        raise FormatError(f"{_where(kind, key)} is missing")
    value = obj[key]
    if not isinstance(value, str):
        raise FormatError(f"{_where(kind, key)} must be a string, got {_describe(value)}")
    return value


def _get_str_map(obj: Mapping[str, Any], key: str, kind: str) -> dict[str, str]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise FormatError(f"{_where(kind, key)} must be an object of strings, got {_describe(value)}")
    for k, v in value.items():
        if not isinstance(v, str):
            raise FormatError(f"{_where(kind, key)}[{k!r}] must be a string, got {_describe(v)}")
    return dict(value)


def _get_str_list(obj: Mapping[str, Any], key: str, kind: str) -> tuple[str, ...]:
    value = obj.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise FormatError(f"{_where(kind, key)} must be an array of strings")
    return tuple(value)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return text if len(text) <= 30 else text[:27] + "..."
    return {str: "a string", list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _payload_to_json(out: dict[str, Any], data: str | bytes | None, *, binary_only: bool = False) -> None:
    """Text goes to ``d`` as is; bytes go to ``d`` when they are valid UTF-8 (and may be), else ``b``."""
    if data is None:
        return
    if isinstance(data, str):
        out["d"] = data
        return
    if not binary_only:
        try:
            out["d"] = data.decode("utf-8")
            return
        except UnicodeDecodeError:
            pass
    out["b"] = base64.b64encode(data).decode("ascii")


def _payload_from_json(obj: Mapping[str, Any], kind: str, *, as_bytes: bool,
                       required: bool) -> str | bytes | None:
    """Inverse of ``_payload_to_json``. ``as_bytes``: ``d`` comes back UTF-8 encoded (HTTP bodies)."""
    has_d = obj.get("d") is not None
    has_b = obj.get("b") is not None
    if has_d and has_b:
        raise FormatError(f"{kind}: 'd' and 'b' are exclusive (text or base64, not both)")
    if has_d:
        text = obj["d"]
        if not isinstance(text, str):
            raise FormatError(f"{_where(kind, 'd')} must be a string, got {_describe(text)}")
        if not as_bytes:
            return text
        try:
            return text.encode("utf-8")
        except UnicodeEncodeError:
            raise FormatError(f"{_where(kind, 'd')} is not valid Unicode text (lone surrogate)") from None
    if has_b:
        encoded = obj["b"]
        if not isinstance(encoded, str):
            raise FormatError(f"{_where(kind, 'b')} must be a base64 string, got {_describe(encoded)}")
        try:
            return base64.b64decode(encoded.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise FormatError(f"{_where(kind, 'b')} is not valid base64 (RFC 4648, with padding)") from None
    if required:
        raise FormatError(f"{kind}: needs 'd' (text) or 'b' (base64)")
    return None


# --- header ---------------------------------------------------------------------------------------


def parse_version(text: object) -> tuple[int, int]:
    """``"1.3"`` → ``(1, 3)``; anything else raises FormatError."""
    if not isinstance(text, str) or not _VERSION_RE.fullmatch(text):
        raise FormatError(f"header: 'version' must be a string 'major.minor' such as {FORMAT_VERSION!r}, "
                          f"got {_describe(text) if not isinstance(text, str) else repr(text[:20])}")
    major, minor = text.split(".")
    return int(major), int(minor)


def library_versions() -> dict[str, str]:
    """Versions of what shaped the bytes on the wire and their decoding (``"absent"`` if not installed)."""
    out = {"python": platform.python_version()}
    try:
        out["backpack"] = importlib.metadata.version(TOOL_NAME)
    except importlib.metadata.PackageNotFoundError:
        out["backpack"] = "absent"
    for name in _VERSIONED_LIBRARIES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "absent"
    return out


def utc_timestamp(when: _dt.datetime | None = None) -> str:
    """ISO 8601 UTC with microseconds and a ``Z``: ``2025-01-02T03:04:05.678901Z``."""
    when = when if when is not None else _dt.datetime.now(_dt.UTC)
    return when.astimezone(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True, slots=True)
class Header:
    """The first line of every recording. Only ``format``, ``version`` and ``created_at`` are required."""

    created_at: str
    version: str = FORMAT_VERSION
    start_us: int | None = None  # wall clock (transport clock) at t = 0, µs since the Unix epoch
    rest_url: str | None = None
    ws_url: str | None = None
    symbols: tuple[str, ...] = ()  # as cryptofeed spells them: SOL-USDC, BTC-USDC-PERP
    channels: tuple[str, ...] = ()  # as cryptofeed spells them: trades, l2_book
    tool: str = TOOL_NAME
    tool_version: str | None = None
    versions: Mapping[str, str] = field(default_factory=dict)
    redaction: str = REDACTED
    meta: Mapping[str, Any] = field(default_factory=dict)  # free-form, e.g. server seed, notes

    @classmethod
    def new(cls, *, rest_url: str | None = None, ws_url: str | None = None, symbols: tuple[str, ...] = (),
            channels: tuple[str, ...] = (), start_us: int | None = None,
            meta: Mapping[str, Any] | None = None) -> Header:
        """A header for a recording starting now, with this process's tool and library versions."""
        versions = library_versions()
        return cls(
            created_at=utc_timestamp(), start_us=start_us, rest_url=rest_url, ws_url=ws_url,
            symbols=tuple(symbols), channels=tuple(channels), tool_version=versions["backpack"],
            versions=versions, meta=dict(meta or {}),
        )

    @property
    def major(self) -> int:
        return parse_version(self.version)[0]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT_NAME,
            "version": self.version,
            "created_at": self.created_at,
            "start_us": self.start_us,
            "endpoints": {"rest": self.rest_url, "ws": self.ws_url},
            "symbols": list(self.symbols),
            "channels": list(self.channels),
            "tool": {"name": self.tool, "version": self.tool_version},
            "versions": dict(self.versions),
            "redaction": self.redaction,
            "meta": dict(self.meta),
        }

    @classmethod
    def from_json(cls, obj: object) -> Header:
        """Validate a decoded header line. Version policy is the reader's job (it knows its majors)."""
        if not isinstance(obj, dict):
            raise FormatError(f"header must be a JSON object, got {_describe(obj)}")
        if obj.get("format") != FORMAT_NAME:
            found = obj.get("format")
            shown = repr(found[:40]) if isinstance(found, str) else _describe(found)
            raise FormatError(f"header: 'format' must be {FORMAT_NAME!r}, got {shown}")
        version = obj.get("version")
        parse_version(version)
        created_at = _get_str(obj, "created_at", "header")
        endpoints = obj.get("endpoints") or {}
        if not isinstance(endpoints, dict):
            raise FormatError(f"header: 'endpoints' must be an object, got {_describe(endpoints)}")
        tool = obj.get("tool") or {}
        if not isinstance(tool, dict):
            raise FormatError(f"header: 'tool' must be an object, got {_describe(tool)}")
        meta = obj.get("meta") or {}
        if not isinstance(meta, dict):
            raise FormatError(f"header: 'meta' must be an object, got {_describe(meta)}")
        return cls(
            created_at=created_at,  # type: ignore[arg-type]
            version=version,  # type: ignore[arg-type]
            start_us=_get_int(obj, "start_us", "header", optional=True),
            rest_url=_get_str(endpoints, "rest", "header endpoints", optional=True),
            ws_url=_get_str(endpoints, "ws", "header endpoints", optional=True),
            symbols=_get_str_list(obj, "symbols", "header"),
            channels=_get_str_list(obj, "channels", "header"),
            tool=_get_str(tool, "name", "header tool", optional=True, default=TOOL_NAME),  # type: ignore[arg-type]
            tool_version=_get_str(tool, "version", "header tool", optional=True),
            versions=_get_str_map(obj, "versions", "header"),
            redaction=_get_str(obj, "redaction", "header", optional=True, default=REDACTED),  # type: ignore[arg-type]
            meta=meta,
        )


# --- events ---------------------------------------------------------------------------------------
#
# Field order in every class: t, then the connection id, then the kind's own fields. ``conn`` is the
# WebSocket session id for ws_* kinds and the exchange id (pairing a request with its response) for
# http_* kinds.


@dataclass(frozen=True, slots=True)
class WsOpen:
    kind: ClassVar[str] = "ws_open"
    t: int
    conn: str
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"k": self.kind, "t": self.t, "c": self.conn, "u": self.url}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WsOpen:
        return cls(_t(obj, cls.kind), _conn(obj, cls.kind), _get_str(obj, "u", cls.kind))  # type: ignore[arg-type]


WS_CLOSE_VIA = ("close", "recv", "send")


@dataclass(frozen=True, slots=True)
class WsClose:
    """The socket closed. ``via``: the feed called close() / recv() or send() raised WsClosed."""

    kind: ClassVar[str] = "ws_close"
    t: int
    conn: str
    code: int | None
    reason: str = ""
    via: str = "recv"

    def to_json(self) -> dict[str, Any]:
        return {"k": self.kind, "t": self.t, "c": self.conn, "code": self.code, "reason": self.reason,
                "via": self.via}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WsClose:
        via = _get_str(obj, "via", cls.kind, optional=True, default="recv")
        if via not in WS_CLOSE_VIA:
            raise FormatError(f"{cls.kind}: 'via' must be one of {', '.join(WS_CLOSE_VIA)}, got {via!r}")
        return cls(
            _t(obj, cls.kind), _conn(obj, cls.kind), _get_int(obj, "code", cls.kind, optional=True),
            _get_str(obj, "reason", cls.kind, optional=True, default=""), via,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class WsRecv:
    """A data frame handed to the feed: ``str`` for a text frame, ``bytes`` for a binary one."""

    kind: ClassVar[str] = "ws_recv"
    t: int
    conn: str
    data: str | bytes
    receipt: int  # µs, what the transport put in WsFrame.receipt

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.kind, "t": self.t, "c": self.conn, "r": self.receipt}
        _payload_to_json(out, self.data, binary_only=True)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WsRecv:
        data = _payload_from_json(obj, cls.kind, as_bytes=False, required=True)
        return cls(_t(obj, cls.kind), _conn(obj, cls.kind), data,  # type: ignore[arg-type]
                   _get_int(obj, "r", cls.kind))  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class WsSend:
    kind: ClassVar[str] = "ws_send"
    t: int
    conn: str
    data: str | bytes

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.kind, "t": self.t, "c": self.conn}
        _payload_to_json(out, self.data, binary_only=True)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> WsSend:
        data = _payload_from_json(obj, cls.kind, as_bytes=False, required=True)
        return cls(_t(obj, cls.kind), _conn(obj, cls.kind), data)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _Control:
    """A protocol control frame on one connection: the payload, and the receipt when the transport saw it."""

    kind: ClassVar[str] = ""
    t: int
    conn: str
    data: bytes = b""
    receipt: int | None = None

    def to_json(self) -> dict[str, Any]:
        return _control_to_json(self)

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Any:
        data = _payload_from_json(obj, cls.kind, as_bytes=True, required=False)
        return cls(_t(obj, cls.kind), _conn(obj, cls.kind), data or b"",  # type: ignore[arg-type]
                   _get_int(obj, "r", cls.kind, optional=True))


class WsPing(_Control):
    """A protocol Ping from the peer. ``receipt`` is null when the transport only counts pings."""

    __slots__ = ()
    kind: ClassVar[str] = "ws_ping"


class WsPong(_Control):
    """A protocol Pong sent to the peer (the client's answer to a ``ws_ping``)."""

    __slots__ = ()
    kind: ClassVar[str] = "ws_pong"


def _control_to_json(event: _Control) -> dict[str, Any]:
    out: dict[str, Any] = {"k": event.kind, "t": event.t, "c": event.conn}
    if event.receipt is not None:
        out["r"] = event.receipt
    if event.data:
        _payload_to_json(out, event.data, binary_only=True)
    return out


@dataclass(frozen=True, slots=True)
class HttpRequestEvent:
    kind: ClassVar[str] = "http_request"
    t: int
    conn: str
    method: str
    url: str  # absolute, without the query string
    params: tuple[tuple[str, str], ...] = ()  # query parameters in order, repeats allowed
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.kind, "t": self.t, "c": self.conn, "m": self.method, "u": self.url,
                               "q": [[k, v] for k, v in self.params], "h": dict(self.headers)}
        _payload_to_json(out, self.body)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HttpRequestEvent:
        raw = obj.get("q") or []
        if not isinstance(raw, list) or not all(
            isinstance(p, list) and len(p) == 2 and all(isinstance(x, str) for x in p) for p in raw
        ):
            raise FormatError(f"{cls.kind}: 'q' must be an array of [name, value] string pairs")
        body = _payload_from_json(obj, cls.kind, as_bytes=True, required=False)
        return cls(
            _t(obj, cls.kind), _conn(obj, cls.kind), _get_str(obj, "m", cls.kind),  # type: ignore[arg-type]
            _get_str(obj, "u", cls.kind), tuple((k, v) for k, v in raw),  # type: ignore[arg-type]
            _get_str_map(obj, "h", cls.kind), body,  # type: ignore[arg-type]
        )


@dataclass(frozen=True, slots=True)
class HttpResponseEvent:
    kind: ClassVar[str] = "http_response"
    t: int
    conn: str
    status: int
    headers: Mapping[str, str]
    body: bytes
    receipt: int  # µs, what the transport put in HttpResponse.receipt

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.kind, "t": self.t, "c": self.conn, "s": self.status,
                               "h": dict(self.headers), "r": self.receipt}
        _payload_to_json(out, self.body)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> HttpResponseEvent:
        body = _payload_from_json(obj, cls.kind, as_bytes=True, required=False)
        return cls(
            _t(obj, cls.kind), _conn(obj, cls.kind), _get_int(obj, "s", cls.kind),  # type: ignore[arg-type]
            _get_str_map(obj, "h", cls.kind), body or b"", _get_int(obj, "r", cls.kind),  # type: ignore[arg-type]
        )


TRANSPORT_OPS = ("request", "connect", "send", "recv", "close")


@dataclass(frozen=True, slots=True)
class TransportErrorEvent:
    """A call on the seam raised. ``error`` is the exception class name (TransportTimeout, ...)."""

    kind: ClassVar[str] = "transport_error"
    t: int
    conn: str | None  # null for a connect that failed before a session existed
    op: str
    error: str
    message: str
    url: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"k": self.kind, "t": self.t, "c": self.conn, "op": self.op, "e": self.error,
                               "msg": self.message}
        if self.url is not None:
            out["u"] = self.url
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> TransportErrorEvent:
        op = _get_str(obj, "op", cls.kind)
        if op not in TRANSPORT_OPS:
            raise FormatError(f"{cls.kind}: 'op' must be one of {', '.join(TRANSPORT_OPS)}, got {op!r}")
        return cls(
            _t(obj, cls.kind), _get_str(obj, "c", cls.kind, optional=True), op,  # type: ignore[arg-type]
            _get_str(obj, "e", cls.kind), _get_str(obj, "msg", cls.kind, optional=True, default=""),  # type: ignore[arg-type]
            _get_str(obj, "u", cls.kind, optional=True),
        )


@dataclass(frozen=True, slots=True)
class RecordingEnd:
    """Written by a recorder that closed cleanly; a file without it was cut short (or hand-written)."""

    kind: ClassVar[str] = "end"
    t: int

    def to_json(self) -> dict[str, Any]:
        return {"k": self.kind, "t": self.t}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RecordingEnd:
        return cls(_t(obj, cls.kind))


@dataclass(frozen=True, slots=True)
class UnknownEvent:
    """A kind this reader does not know, from a newer minor version: kept verbatim, never dropped."""

    t: int
    kind: str
    fields: Mapping[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"k": self.kind, "t": self.t, **{k: v for k, v in self.fields.items() if k not in ("k", "t")}}


Event = (
    WsOpen | WsClose | WsRecv | WsSend | WsPing | WsPong | HttpRequestEvent | HttpResponseEvent
    | TransportErrorEvent | RecordingEnd | UnknownEvent
)

EVENT_TYPES: dict[str, Any] = {
    cls.kind: cls
    for cls in (WsOpen, WsClose, WsRecv, WsSend, WsPing, WsPong, HttpRequestEvent, HttpResponseEvent,
                TransportErrorEvent, RecordingEnd)
}
KINDS = tuple(EVENT_TYPES)


def _t(obj: Mapping[str, Any], kind: str) -> int:
    return _get_int(obj, "t", kind, minimum=0)  # type: ignore[return-value]


def _conn(obj: Mapping[str, Any], kind: str) -> str:
    return _get_str(obj, "c", kind)  # type: ignore[return-value]


def event_from_json(obj: object) -> Event:
    """Build the event for one decoded line; FormatError names what is wrong."""
    if not isinstance(obj, dict):
        raise FormatError(f"an event must be a JSON object, got {_describe(obj)}")
    kind = obj.get("k")
    if not isinstance(kind, str) or not kind:
        raise FormatError(f"event: 'k' (the kind) must be a non-empty string, got {_describe(kind)}")
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        fields = {k: v for k, v in obj.items() if k not in ("k", "t")}
        return UnknownEvent(_t(obj, kind), kind, fields)
    return cls.from_json(obj)


def event_to_json(event: Event) -> dict[str, Any]:
    return event.to_json()


__all__ = [
    "EVENT_TYPES", "FORMAT_NAME", "FORMAT_VERSION", "KINDS", "MAJOR_VERSION", "REDACTED", "TOOL_NAME",
    "Event", "FormatError", "Header", "HttpRequestEvent", "HttpResponseEvent", "RecordingEnd",
    "TransportErrorEvent", "UnknownEvent", "WsClose", "WsOpen", "WsPing", "WsPong", "WsRecv", "WsSend",
    "event_from_json", "event_to_json", "library_versions", "parse_version", "utc_timestamp",
]
