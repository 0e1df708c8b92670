"""Recognising values that may be secrets, and hiding them in messages, reprs and dumps.

The commonest leak is not a log of the secret field itself but an error about the *wrong* field: a
seed pasted where a variable name, a path, a URL or a number belongs is echoed back as "(got ...)".
Backpack key material is base64 of 32 bytes (a seed or a public key), so anything that decodes to
32 or 64 bytes (std or urlsafe alphabet, padding optional, or hex) is treated as key material; a long
base64-alphabet run mixing upper case, lower case and digits (a truncated or extended seed) is
treated the same in free text. Both rules err towards hiding: a hidden harmless value costs a less
specific message, a shown seed costs the account.
"""

from __future__ import annotations

import base64
import binascii
import re
from urllib.parse import urlsplit, urlunsplit

HIDDEN = "the value given looks like key material and is not shown"
MARKER = "<hidden: looks like key material>"

_KEY_BYTES = (32, 64)
_RUN = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_B64_ONLY = re.compile(r"[A-Za-z0-9+/_=-]+")
_HEX = re.compile(r"[0-9a-fA-F]+")
_WHITESPACE = re.compile(r"\s+")
_MIXED_MIN = 24  # shorter mixed-case-and-digit words are ordinary identifiers


def _decodes_to_key(token: str) -> bool:
    body = token.rstrip("=")
    if len(body) in (2 * n for n in _KEY_BYTES) and _HEX.fullmatch(body):
        return True
    if len(body) % 4 == 1 or not 40 <= len(body) <= 90:
        return False
    padded = body + "=" * (-len(body) % 4)
    for altchars in (None, b"-_"):
        try:
            raw = base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
        if len(raw) in _KEY_BYTES:
            return True
    return False


def _mixed(token: str) -> bool:
    """A long run of the std base64 alphabet with upper case, lower case and a digit (no path separator)."""
    return (
        len(token) >= _MIXED_MIN
        and "/" not in token
        and "_" not in token
        and "-" not in token
        and any(c.isupper() for c in token)
        and any(c.islower() for c in token)
        and any(c.isdigit() for c in token)
    )


def is_key_material(value: object) -> bool:
    """The strict rule alone, on the whole value: it decodes to a 32- or 64-byte key."""
    return isinstance(value, str) and _decodes_to_key(_WHITESPACE.sub("", value).strip("'\""))


def looks_like_key(value: object) -> bool:
    """Whether a whole value (whitespace and surrounding quotes ignored) is key material."""
    if not isinstance(value, str):
        return False
    compact = _WHITESPACE.sub("", value).strip("'\"")
    if not compact:
        return False
    if _B64_ONLY.fullmatch(compact) and (_decodes_to_key(compact) or _mixed(compact)):
        return True
    return any(_key_span(m.group()) is not None for m in _RUN.finditer(value))


def _key_span(token: str) -> int | None:
    """Offset in ``token`` where key material starts (after a path-like prefix), or None."""
    starts = [0] + [i + 1 for i, c in enumerate(token) if c == "/"]
    for start in starts:
        rest = token[start:]
        if _decodes_to_key(rest) or _mixed(rest):
            return start
    return None


def scrub(text: str, marker: str = MARKER) -> str:
    """``text`` with every run that looks like key material replaced by ``marker``.

    The last line of defence for messages built by code we do not own (argparse, libraries).
    """

    def replace(match: re.Match[str]) -> str:
        token = match.group()
        start = _key_span(token)
        if start is None and match.start() > 0 and text[match.start() - 1] == "\\":
            # repr() escapes: '\tSEED' or '\x0bSEED' put the escape's letters in front of the key
            for skip in (1, 3, 5):
                inner = _key_span(token[skip:])
                if inner is not None:
                    start = skip + inner
                    break
        return token if start is None else token[:start] + marker

    return _RUN.sub(replace, text)


def mask_url(url: str) -> str:
    """``url`` with the password (or a key-like user name) in its userinfo replaced by ``***``."""
    try:
        parts = urlsplit(url)
        password = parts.password
        username = parts.username
    except ValueError:
        return "<unparseable url>"
    if password is None and (username is None or not looks_like_key(username)):
        return url
    host = parts.netloc.rsplit("@", 1)[1]  # keeps [IPv6] brackets and the port as written
    user = "***" if username is None or looks_like_key(username) else username
    userinfo = f"{user}:***" if password is not None else user
    return urlunsplit(parts._replace(netloc=f"{userinfo}@{host}"))


def got(value: object) -> str:
    """The ``(got ...)`` tail of an error message, or a note that the value is withheld."""
    if looks_like_key(value):
        return f"({HIDDEN})"
    return f"(got {value!r})"
