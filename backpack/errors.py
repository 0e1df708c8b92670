"""Typed errors raised by the REST client.

Callers branch on the type (retry later, fix the request, fix the keys) rather than on message text.
Messages carry the HTTP status and the exchange's own code and message only: never request headers,
signatures or keys. Transport failures keep their seam types (``backpack.transport.TransportError``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any

import orjson

MAX_MESSAGE_CHARS = 300

# Exchange codes that mean "your credentials are wrong", whatever the HTTP status says.
AUTH_CODES = frozenset(
    {"INVALID_SIGNATURE", "UNAUTHORIZED", "INVALID_API_KEY", "INVALID_API_KEY_OR_SIGNATURE"}
)
RATE_LIMIT_CODES = frozenset({"TOO_MANY_REQUESTS"})


class BackpackError(Exception):
    """Base of every error this package raises on purpose."""


class ExchangeError(BackpackError):
    """The exchange answered with a non-2xx status."""

    def __init__(self, status: int, code: str | None, message: str) -> None:
        self.status = status
        self.code = code
        self.message = message
        super().__init__(
            f"HTTP {status}" + (f" {code}" if code else "") + (f": {message}" if message else "")
        )

    @property
    def retryable(self) -> bool:
        return False


class ClientRequestError(ExchangeError):
    """4xx other than 429: the request itself is wrong; retrying it unchanged cannot help."""


class AuthError(ClientRequestError):
    """401/403 or a signature/key code: the credentials or the clock are wrong."""


class RateLimited(ExchangeError):
    """429 (or a rate-limit code); ``retry_after`` is the server's hint in seconds when it gave one."""

    def __init__(self, status: int, code: str | None, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        return True


class ServerError(ExchangeError):
    """5xx: the exchange failed; the same request may succeed later."""

    @property
    def retryable(self) -> bool:
        return True


class CircuitOpen(BackpackError):
    """Calls are refused locally because the endpoint kept failing; ``retry_in`` is seconds to the probe."""

    def __init__(self, retry_in: float) -> None:
        self.retry_in = max(0.0, retry_in)
        super().__init__(f"circuit open: REST calls refused for another {self.retry_in:.1f} s")


class DecodeError(BackpackError):
    """A 2xx body that should be JSON is not."""


def _truncate(text: str) -> str:
    text = text.strip()
    return text if len(text) <= MAX_MESSAGE_CHARS else text[:MAX_MESSAGE_CHARS] + "…"


def parse_error_body(body: bytes) -> tuple[str | None, str]:
    """(code, message) from a JSON ``{"code","message"}`` body, else (None, truncated text)."""
    try:
        doc: Any = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None, _truncate(body.decode("utf-8", errors="replace"))
    if isinstance(doc, dict):
        code = doc.get("code")
        message = doc.get("message")
        return (
            str(code) if code is not None else None,
            _truncate(str(message))
            if message is not None
            else _truncate(body.decode("utf-8", errors="replace")),
        )
    return None, _truncate(body.decode("utf-8", errors="replace"))


def parse_retry_after(headers: Mapping[str, str], now_s: float | None = None) -> float | None:
    """Seconds to wait from ``Retry-After`` (delta-seconds, or an HTTP date when ``now_s`` is given).

    Garbage gives None and the caller falls back to its own backoff.
    """
    value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
    if value is None:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        if now_s is None:
            return None
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            return None
        return max(0.0, when.timestamp() - now_s)
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return seconds


def error_from_response(
    status: int, headers: Mapping[str, str], body: bytes, now_s: float | None = None
) -> ExchangeError:
    """Map a non-2xx response to the most specific error type."""
    code, message = parse_error_body(body)
    if status == 429 or (code in RATE_LIMIT_CODES and status >= 400):
        return RateLimited(status, code, message, parse_retry_after(headers, now_s))
    if status >= 500:
        return ServerError(status, code, message)
    if status in (401, 403) or code in AUTH_CODES:
        return AuthError(status, code, message)
    if 400 <= status < 500:
        return ClientRequestError(status, code, message)
    return ExchangeError(status, code, message)
