"""ED25519 request signing for REST and private WebSocket subscriptions.

The exchange signs ``k=v`` pairs as they are (no percent-encoding), keys sorted, booleans written
``true``/``false``; timestamp and window always close the string. Time is an argument: the core never
reads a clock.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

DEFAULT_WINDOW_MS = 5000
MAX_WINDOW_MS = 60000
MIN_WINDOW_MS = 1


class KeyMaterialError(ValueError):
    """Key material is malformed or the pair does not match. Never carries the secret."""


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _pairs(params: Mapping[str, Any]) -> str:
    return "&".join(f"{k}={_value(params[k])}" for k in sorted(params) if params[k] is not None)


def signing_string(
    instruction: str, params: Mapping[str, Any] | None, timestamp_ms: int, window_ms: int = DEFAULT_WINDOW_MS
) -> str:
    """The exact text the exchange verifies for one instruction."""
    body = _pairs(params or {})
    head = f"instruction={instruction}&{body}&" if body else f"instruction={instruction}&"
    return f"{head}timestamp={int(timestamp_ms)}&window={int(window_ms)}"


def batch_signing_string(
    instruction: str, orders: Iterable[Mapping[str, Any]], timestamp_ms: int, window_ms: int = DEFAULT_WINDOW_MS
) -> str:
    """Batch orders repeat the instruction per order; timestamp and window close the string once."""
    parts = [f"instruction={instruction}&{_pairs(order)}" for order in orders]
    parts.append(f"timestamp={int(timestamp_ms)}&window={int(window_ms)}")
    return "&".join(parts)


def decode_key(value: str, what: str) -> bytes:
    """Decode a base64 32-byte key; the error names ``what`` and the problem, never the value."""
    if not isinstance(value, str) or not value.strip():
        raise KeyMaterialError(f"{what} is empty")
    try:
        raw = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise KeyMaterialError(f"{what} is not valid base64") from None
    if len(raw) != 32:
        raise KeyMaterialError(f"{what} must decode to 32 bytes, got {len(raw)}")
    return raw


@dataclass(frozen=True, slots=True)
class SignedRequest:
    signing_string: str
    signature: str  # base64, 64 bytes
    api_key: str
    timestamp_ms: int
    window_ms: int

    def headers(self) -> dict[str, str]:
        return {
            "X-API-Key": self.api_key,
            "X-Signature": self.signature,
            "X-Timestamp": str(self.timestamp_ms),
            "X-Window": str(self.window_ms),
        }

    def __repr__(self) -> str:  # signatures are secrets too
        return f"SignedRequest(api_key={self.api_key!r}, timestamp_ms={self.timestamp_ms}, window_ms={self.window_ms})"


class Signer:
    """Holds the signing key; its repr never shows it."""

    __slots__ = ("_key", "api_key")

    def __init__(self, seed_b64: str, api_key: str | None = None) -> None:
        seed = decode_key(seed_b64, "private key")
        self._key = SigningKey(seed)
        derived = base64.b64encode(bytes(self._key.verify_key)).decode()
        if api_key is not None:
            # Compare bytes, not text: base64 ignores the unused low bits of the last character,
            # so one key has several valid spellings.
            if decode_key(api_key, "API key") != bytes(self._key.verify_key):
                raise KeyMaterialError(
                    "API key does not match the private key: the public key derived from the private key differs"
                )
        self.api_key = derived

    def __repr__(self) -> str:
        return f"Signer(api_key={self.api_key!r})"

    def sign_text(self, text: str) -> str:
        return base64.b64encode(self._key.sign(text.encode()).signature).decode()

    def sign(
        self, instruction: str, params: Mapping[str, Any] | None, timestamp_ms: int, window_ms: int = DEFAULT_WINDOW_MS
    ) -> SignedRequest:
        text = signing_string(instruction, params, timestamp_ms, window_ms)
        return SignedRequest(text, self.sign_text(text), self.api_key, int(timestamp_ms), int(window_ms))

    def sign_batch(
        self, instruction: str, orders: Iterable[Mapping[str, Any]], timestamp_ms: int, window_ms: int = DEFAULT_WINDOW_MS
    ) -> SignedRequest:
        text = batch_signing_string(instruction, orders, timestamp_ms, window_ms)
        return SignedRequest(text, self.sign_text(text), self.api_key, int(timestamp_ms), int(window_ms))

    def ws_signature(self, timestamp_ms: int, window_ms: int = DEFAULT_WINDOW_MS, instruction: str = "subscribe") -> list[str]:
        """The four-string ``signature`` array of a private SUBSCRIBE/UNSUBSCRIBE frame."""
        signed = self.sign(instruction, None, timestamp_ms, window_ms)
        return [self.api_key, signed.signature, str(int(timestamp_ms)), str(int(window_ms))]


def verify(api_key_b64: str, text: str, signature_b64: str) -> bool:
    """Check a signature (used by the loopback server and auth-check); False on any malformed input."""
    try:
        key = VerifyKey(decode_key(api_key_b64, "API key"))
        sig = base64.b64decode(signature_b64, validate=True)
        key.verify(text.encode(), sig)
        return True
    except (KeyMaterialError, BadSignatureError, binascii.Error, ValueError, TypeError):
        return False


def public_key_of(seed_b64: str) -> str:
    return Signer(seed_b64).api_key
