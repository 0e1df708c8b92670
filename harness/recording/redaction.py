"""Write-time redaction: secrets are replaced by one fixed marker before a byte reaches the file.

What is a secret here (see docs/recording-format.md, "Redaction"):

* the values of the headers in ``SECRET_HEADERS`` (``X-API-Key``, ``X-Signature``, and the generic
  credential headers), matched case-insensitively;
* every entry of a ``"signature": [...]`` array in WebSocket text (the private SUBSCRIBE frame carries
  ``[api key, signature, timestamp, window]``: all four go, so a frame's shape survives but nothing
  that could be checked against a key does);
* the password of any ``scheme://user:password@host`` URL, wherever it appears in a string;
* any extra string the caller names (the config's seed and API key), in every string and byte field,
  also in the spellings it takes when embedded elsewhere (URL-encoded, JSON-escaped, base64 without
  padding or URL-safe), so it cannot slip through in a query string or an escaped body.

Redaction is a deterministic function of the input: a replay redacts the frames the feed sends in the
same way before comparing them with the (redacted) recorded sends.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from .format import (
    REDACTED,
    Event,
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    TransportErrorEvent,
    UnknownEvent,
    WsClose,
    WsOpen,
    WsPing,
    WsPong,
    WsRecv,
    WsSend,
)

SECRET_HEADERS = frozenset({
    "x-api-key", "x-signature", "authorization", "proxy-authorization", "cookie", "set-cookie",
})
MIN_SECRET_LENGTH = 8
"""Shorter "secrets" are refused: redacting every ``"5000"`` or ``"a"`` would destroy ordinary data."""

_URL_PASSWORD = re.compile(r"(?P<pre>[A-Za-z][A-Za-z0-9+.\-]*://[^/?#@\s:]*:)(?P<pw>[^/?#@\s]*)@")
_JSON_STRING = r'"(?:[^"\\]|\\.)*"'
_ENTRY = rf'(?:{_JSON_STRING}|[^\s,\]"\[{{}}]+)'
# Unambiguous on purpose (entry, then optional ", entry" repeats): no catastrophic backtracking.
_SIGNATURE_ARRAY = re.compile(rf'"signature"(?P<sep>\s*:\s*)\[(?P<body>\s*(?:{_ENTRY}\s*(?:,\s*{_ENTRY}\s*)*)?)\]')
_SIGNATURE_STRING = re.compile(rf'"signature"(?P<sep>\s*:\s*){_JSON_STRING}')
_ARRAY_ENTRY = re.compile(_ENTRY)
_ALNUM_RUN = re.compile(r"[A-Za-z0-9]+")


def _needle(secret: str) -> str | None:
    """The secret's longest run of ASCII letters and digits: every spelling ``_variants`` makes keeps such
    runs intact (escaping, quoting and base64 dialects only rewrite the other characters, or strip ``=``), so
    text without the run holds no spelling of the secret, and the alternation need not scan it."""
    runs = _ALNUM_RUN.findall(secret)
    return max(runs, key=len) if runs else None


def _variants(secret: str) -> set[str]:
    """The spellings a secret takes once embedded in a URL, a JSON string or another base64 dialect."""
    out = {secret, json.dumps(secret)[1:-1], secret.replace("/", "\\/")}
    for form in (secret, secret.rstrip("="), secret.translate(str.maketrans("+/", "-_")),
                 secret.translate(str.maketrans("+/", "-_")).rstrip("=")):
        out.add(form)
        quoted = quote(form, safe="")
        out.add(quoted)
        out.add(re.sub(r"%[0-9A-F]{2}", lambda m: m.group().lower(), quoted))
    return {v for v in out if len(v) >= MIN_SECRET_LENGTH}


def config_secrets(config: Any) -> list[str]:
    """The strings a ``BackpackConfig`` holds that must never reach a recording: seed and API key.

    Duck-typed (``secret_seed()``, ``api_key``) so the recorder needs no import of the feed's config.
    """
    out: list[str] = []
    seed = getattr(config, "secret_seed", None)
    value = seed() if callable(seed) else None
    if isinstance(value, str) and value:
        out.append(value)
    api_key = getattr(config, "api_key", None)
    if isinstance(api_key, str) and api_key:
        out.append(api_key)
    return out


class Redactor:
    """Replaces secrets in events and headers; one instance per recording (it holds the secret list)."""

    def __init__(self, secrets: Iterable[str | None] = (), *, secret_headers: Iterable[str] = SECRET_HEADERS,
                 marker: str = REDACTED) -> None:
        self.marker = marker
        self._marker_bytes = marker.encode()
        self.secret_headers = frozenset(h.lower() for h in secret_headers)
        variants: set[str] = set()
        needles: set[str] | None = set()
        for secret in secrets:
            if secret is None or secret == "":
                continue
            if not isinstance(secret, str):
                raise TypeError(f"secrets must be strings, got {type(secret).__name__}")
            if len(secret) < MIN_SECRET_LENGTH:
                raise ValueError(
                    f"a secret of {len(secret)} characters is too short to redact safely "
                    f"(minimum {MIN_SECRET_LENGTH}): it would also erase ordinary data"
                )
            variants |= _variants(secret)
            needle = _needle(secret)
            if needle is None:
                needles = None  # nothing every spelling shares: scan everything
            elif needles is not None:
                needles.add(needle)
        ordered = sorted(variants, key=lambda v: (-len(v), v))  # longest first: no partial leftovers
        self._text_re = re.compile("|".join(map(re.escape, ordered))) if ordered else None
        self._bytes_re = re.compile(b"|".join(re.escape(v.encode()) for v in ordered)) if ordered else None
        # A substring test per secret is far cheaper than the alternation over every frame (issue 12).
        self._needles = None if needles is None else tuple(sorted(needles))
        self._byte_needles = None if needles is None else tuple(n.encode() for n in self._needles)

    # -- primitives -----------------------------------------------------------------------------

    def text(self, value: str) -> str:
        """Configured secrets and URL passwords."""
        if self._text_re is not None and (self._needles is None or type(value) is not str
                                          or any(n in value for n in self._needles)):
            value = self._text_re.sub(self.marker, value)  # (a str subclass comes back a plain str)
        if "://" in value:
            value = _URL_PASSWORD.sub(lambda m: f"{m.group('pre')}{self.marker}@", value)
        return value

    def binary(self, value: bytes) -> bytes:
        if self._bytes_re is not None and (self._byte_needles is None or type(value) is not bytes
                                           or any(n in value for n in self._byte_needles)):
            value = self._bytes_re.sub(self._marker_bytes, value)
        if b"://" in value:
            try:
                return self.text(value.decode("utf-8")).encode("utf-8")
            except UnicodeDecodeError:
                pass
        return value

    def ws_text(self, value: str) -> str:
        """``text`` plus every ``signature`` array's entries, keeping the rest of the frame byte for byte."""
        if '"signature"' in value:
            value = self._signatures(value)
        return self.text(value)

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        return {
            self.text(k): self.marker if k.lower() in self.secret_headers else self.text(v)
            for k, v in headers.items()
        }

    def json_value(self, value: Any) -> Any:
        """Every string inside decoded JSON (for free-form fields such as header ``meta``)."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self.json_value(v) for v in value]
        if isinstance(value, dict):
            return {self.text(k) if isinstance(k, str) else k: self.json_value(v) for k, v in value.items()}
        return value

    def _signatures(self, text: str) -> str:
        marker = json.dumps(self.marker)

        def array(m: re.Match[str]) -> str:
            count = len(_ARRAY_ENTRY.findall(m.group("body")))
            return f'"signature"{m.group("sep")}[{",".join([marker] * count)}]'

        redacted = _SIGNATURE_ARRAY.sub(array, text)
        redacted = _SIGNATURE_STRING.sub(lambda m: f'"signature"{m.group("sep")}{marker}', redacted)
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            return redacted  # not JSON: the textual pass is all there is
        expected = self._signature_values(obj)
        # The textual pass keeps the frame's exact layout; prove it caught everything, or re-encode.
        try:
            if json.loads(redacted) == expected:
                return redacted
        except (ValueError, RecursionError):
            pass
        return json.dumps(expected, separators=(",", ":"), ensure_ascii=True)

    def _signature_values(self, value: Any) -> Any:
        if isinstance(value, dict):
            out = {}
            for k, v in value.items():
                if k == "signature" and isinstance(v, list):
                    out[k] = [self.marker] * len(v)
                elif k == "signature" and isinstance(v, str):
                    out[k] = self.marker
                else:
                    out[k] = self._signature_values(v)
            return out
        if isinstance(value, list):
            return [self._signature_values(v) for v in value]
        return value

    def _data(self, data: str | bytes) -> str | bytes:
        return self.ws_text(data) if isinstance(data, str) else self.binary(data)

    # -- whole records --------------------------------------------------------------------------

    def event(self, event: Event) -> Event:
        replace = dataclasses.replace
        if isinstance(event, WsRecv | WsSend):
            return replace(event, data=self._data(event.data))
        if isinstance(event, HttpRequestEvent):
            return replace(
                event, url=self.text(event.url),
                params=tuple((self.text(k), self.text(v)) for k, v in event.params),
                headers=self.headers(event.headers),
                body=None if event.body is None else self.binary(event.body),
            )
        if isinstance(event, HttpResponseEvent):
            return replace(event, headers=self.headers(event.headers), body=self.binary(event.body))
        if isinstance(event, WsOpen):
            return replace(event, url=self.text(event.url))
        if isinstance(event, WsClose):
            return replace(event, reason=self.text(event.reason))
        if isinstance(event, WsPing | WsPong):
            return replace(event, data=self.binary(event.data))
        if isinstance(event, TransportErrorEvent):
            return replace(event, message=self.text(event.message),
                           url=None if event.url is None else self.text(event.url))
        if isinstance(event, UnknownEvent):
            return replace(event, fields=self.json_value(dict(event.fields)))
        return event

    def header(self, header: Header) -> Header:
        return dataclasses.replace(
            header,
            rest_url=None if header.rest_url is None else self.text(header.rest_url),
            ws_url=None if header.ws_url is None else self.text(header.ws_url),
            meta=self.json_value(dict(header.meta)),
            redaction=self.marker,
        )


__all__ = ["MIN_SECRET_LENGTH", "REDACTED", "SECRET_HEADERS", "Redactor", "config_secrets"]
