"""Structured logs: one JSON object per line through stdlib logging, scrubbed of secrets.

The library never configures logging: it logs to named loggers (``backpack.*``) and attaches the
context an operator filters on (``feed``, ``path``, ``connection``, ``symbol``, ``stream``, ``cause``) as
record attributes. Applications choose the output; ``install_json_logging()`` is the one the CLI and the
examples use::

    from backpack.logs import install_json_logging
    install_json_logging("INFO")   # JSON lines on stderr

Every record formatted by ``JsonFormatter`` is scrubbed on the way out: anything that looks like key
material (seeds, API keys, signatures: see ``backpack.redaction``) and URL passwords are replaced, in
the message, the exception and every extra field. That is the last line of defence, not the first:
the feed does not put secrets in log calls to begin with (tests check the raw records too).

Third-party libraries that log what they send at DEBUG (websockets logs every frame, ccxt every
request with its headers) are handed a ``ScrubbingLogger`` instead of their default logger, so a
signature never reaches any handler, JSON or not.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, Any

from .redaction import scrub

CONTEXT_FIELDS = ("feed", "path", "connection", "symbol", "stream", "cause")
_STANDARD = frozenset(logging.LogRecord("x", 0, "x", 0, "x", None, None).__dict__) | {"message", "asctime"}
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^\s/@:]*):(?P<pw>[^\s/@]+)@")
_MARK = "_backpack_json_handler"


def clean(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secrets, URL passwords and anything that looks like key material replaced."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "<redacted>")
    text = _URL_USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", text)
    return scrub(text)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (UTC, µs), ``level``, ``logger``, ``message``, the context fields
    (null when the record has none), ``exception`` when there is one, then any other extra attributes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = tuple(s for s in secrets if s)

    def format(self, record: logging.LogRecord) -> str:
        try:
            message = record.getMessage()
        except Exception as exc:  # noqa: BLE001 - a bad format string must not lose the line
            message = f"{record.msg!r} (unformattable: {type(exc).__name__})"
        doc: dict[str, Any] = {
            "time": _dt.datetime.fromtimestamp(record.created, tz=_dt.UTC)
            .isoformat(timespec="microseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": self._clean(message),
        }
        for name in CONTEXT_FIELDS:
            doc[name] = self._value(getattr(record, name, None))
        if record.exc_info and record.exc_info[1] is not None:
            doc["exception"] = self._exception(record.exc_info[1])
        elif record.exc_text:
            doc["exception"] = {"type": None, "message": self._clean(record.exc_text), "stack": []}
        for name, value in record.__dict__.items():
            if name not in _STANDARD and name not in doc and not name.startswith("_"):
                doc[name] = self._value(value)
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), default=str)

    def _clean(self, text: str) -> str:
        return clean(text, self.secrets)

    def _value(self, value: Any) -> Any:
        if value is None or isinstance(value, bool | int | float):
            return value
        try:
            text = str(value)
        except Exception:  # noqa: BLE001 - an extra that cannot print itself must not lose the line
            text = f"<unprintable {type(value).__name__}>"
        return self._clean(text)

    def _exception(self, exc: BaseException) -> dict[str, Any]:
        """Type, message and frames as data (no ``Traceback`` banner: a log line is not a crash report)."""
        frames = traceback.extract_tb(exc.__traceback__)
        return {
            "type": type(exc).__name__,
            "message": self._clean(str(exc)),
            "stack": [self._clean(f"{f.filename}:{f.lineno} in {f.name}") for f in frames],
        }


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at each record, so redirections and test capture work."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property  # type: ignore[override]
    def stream(self) -> IO[str]:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


class JsonLogging:
    """What ``install_json_logging`` did, so it can be undone exactly (``remove()``)."""

    def __init__(self, target: logging.Logger, handler: logging.Handler, previous_level: int) -> None:
        self.target = target
        self.handler = handler
        self.previous_level = previous_level

    def remove(self) -> None:
        self.target.removeHandler(self.handler)
        self.target.setLevel(self.previous_level)


def install_json_logging(
    level: int | str = logging.INFO,
    stream: IO[str] | None = None,
    *,
    logger: logging.Logger | None = None,
    secrets: Iterable[str] = (),
) -> JsonLogging:
    """Send records at ``level`` and above to ``stream`` (stderr by default) as JSON lines.

    Installed on the root logger unless ``logger`` is given; calling it again replaces the previous
    installation on that logger. The logger's level is lowered to ``level`` when needed, never raised,
    so records other handlers already receive keep flowing. ``secrets``: exact values to redact besides
    what looks like key material (a URL password, say).
    """
    target = logger if logger is not None else logging.getLogger()
    numeric = logging.getLevelName(level.upper()) if isinstance(level, str) else int(level)
    if not isinstance(numeric, int):
        raise ValueError(f"unknown log level {level!r}; use DEBUG, INFO, WARNING, ERROR or CRITICAL")
    for old in [h for h in target.handlers if getattr(h, _MARK, False)]:
        target.removeHandler(old)
    handler: logging.Handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    setattr(handler, _MARK, True)
    handler.setLevel(numeric)
    handler.setFormatter(JsonFormatter(secrets))
    previous = target.level
    target.addHandler(handler)
    if target.getEffectiveLevel() > numeric:
        target.setLevel(numeric)
    return JsonLogging(target, handler, previous)


@contextlib.contextmanager
def json_logging(
    level: int | str = logging.INFO, stream: IO[str] | None = None, **kwargs: Any
) -> Iterator[JsonLogging]:
    """``install_json_logging`` for the duration of a block (the CLI uses it around each command)."""
    installed = install_json_logging(level, stream, **kwargs)
    try:
        yield installed
    finally:
        installed.remove()


class ContextLogger(logging.LoggerAdapter):
    """Adds fixed context (``feed``, ``path``) to every record, merged with the call's own ``extra``."""

    def process(self, msg: Any, kwargs: Any) -> tuple[Any, Any]:
        kwargs["extra"] = {**(self.extra or {}), **(kwargs.get("extra") or {})}
        return msg, kwargs


class ScrubbingLogger(logging.LoggerAdapter):
    """For libraries that log what they send (frames, request headers): each line is formatted and scrubbed
    before it becomes a record, so no handler (JSON or plain, ours or the application's) sees a secret."""

    def __init__(self, logger: logging.Logger, secrets: Iterable[str] = ()) -> None:
        super().__init__(logger, {})
        self.secrets = tuple(s for s in secrets if s)

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        try:
            text = str(msg) % args if args else str(msg)
        except Exception:  # noqa: BLE001 - the library's own format mistake: keep the template only
            text = str(msg)
        extra = kwargs.pop("extra", None)
        kwargs.pop("stacklevel", None)
        extra = {
            k: clean(str(v), self.secrets) if isinstance(v, str) else v for k, v in (extra or {}).items()
        }
        self.logger.log(level, "%s", clean(text, self.secrets), extra=extra or None, **kwargs)


def context(**fields: Any) -> Mapping[str, Any]:
    """``extra=`` for one log call: only the fields that are set."""
    return {k: v for k, v in fields.items() if v is not None}
