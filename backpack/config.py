"""Validated settings for the Backpack feed, loadable from a cryptofeed YAML ``backpack:`` section.

Secrets get special care because a config error is exactly where a pasted key tends to leak: the seed
is held as ``SecretStr``, error inputs are hidden, and the values of secret-looking keys (including
unknown keys, which may be typos of secret ones) are masked before pydantic ever records them. So is
any value that looks like key material wherever it was put (a seed pasted as ``private_key_env``, a
URL or a number): errors say what is wrong with it without repeating it. URL passwords are masked in
``repr``, ``str`` and ``model_dump()`` (python and json modes) while the attributes keep the real value
for the transport.

Precedence: the ``CRYPTOFEED_BACKPACK_NATIVE`` environment variable, when set, wins over
``native_enabled`` from the file or dict, so an operator can switch a deployment to the ccxt-backed
feed without editing its config.
"""

from __future__ import annotations

import difflib
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import yaml
from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from backpack.protocol.auth import MAX_WINDOW_MS, MIN_WINDOW_MS, KeyMaterialError, Signer, decode_key
from backpack.protocol.wire import DEPTH_LIMITS, DEPTH_SPEEDS
from backpack.redaction import HIDDEN, got, is_key_material, looks_like_key, mask_url

log = logging.getLogger(__name__)

PRODUCTION_REST_URL = "https://api.backpack.exchange"
PRODUCTION_WS_URL = "wss://ws.backpack.exchange"
NATIVE_ENV = "CRYPTOFEED_BACKPACK_NATIVE"
SECTION = "backpack"

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
_BOOL_WORDS = "1/0/true/false/yes/no/on/off"

# Keys whose values are never echoed in errors. api_key is public, but a swapped key_id/key_secret is a
# plausible mistake, and proxies may carry user:password.
SECRET_FIELDS = frozenset({"private_key", "key_secret"})
_NO_ECHO = SECRET_FIELDS | {"api_key", "key_id", "rest_proxy", "ws_proxy"}
# Error kinds whose message already names what was given (or must not).
_NO_ECHO_KINDS = frozenset({"missing", "env_bool", "key", "key_pair", "secret_sources", "duplicate_key"})
_ALIASES = {"key_id": "api_key", "key_secret": "private_key"}
# Fields whose valid values are key material themselves; every other field treats key material as a mistake.
_KEY_FIELDS = frozenset({"api_key", "key_id", "private_key", "key_secret"})
URL_FIELDS = ("rest_url", "ws_url", "rest_proxy", "ws_proxy")
# socks5 resolves the exchange's host name locally, socks5h lets the proxy resolve it (curl's convention).
PROXY_SCHEMES = ("http", "https", "socks5", "socks5h")


class ConfigError(ValueError):
    """Configuration could not be loaded; ``problems`` holds one line per problem, never a secret."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class SecretSourceError(KeyMaterialError):
    """The secret could not be read from its env var or file; names the source, never the content.

    ``misplaced`` is set when the source given is itself key material (the seed pasted where its
    variable's name or its file's path belongs); the message then does not repeat it.
    """

    def __init__(self, message: str, misplaced: bool = False) -> None:
        super().__init__(message)
        self.misplaced = misplaced


def read_secret(
    env: str | None = None, file: str | Path | None = None, environ: Mapping[str, str] | None = None
) -> str:
    """Read a base64 seed from an environment variable or a file (whitespace stripped)."""
    if (env is None) == (file is None):
        raise SecretSourceError("give exactly one secret source: an environment variable or a file")
    if env is not None:
        if looks_like_key(env):
            raise SecretSourceError(
                "expected the NAME of an environment variable holding the seed, not the seed itself; "
                f"{HIDDEN}",
                misplaced=True,
            )
        value = (os.environ if environ is None else environ).get(env)
        if value is None or not value.strip():
            raise SecretSourceError(f"environment variable {env} is not set or empty")
        return value.strip()
    path = Path(file)  # type: ignore[arg-type]
    misplaced = looks_like_key(str(file))  # pass the text as given: Path() folds "//", found in seeds
    shown = "secret file" if misplaced else f"secret file {path}"
    if not misplaced:
        hint = ""
    elif is_key_material(str(file)):
        hint = f" (expected the PATH of a file holding the seed, not the seed itself; {HIDDEN})"
    else:
        hint = " (the path given contains what looks like key material and is not shown)"
    try:
        value = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecretSourceError(f"{shown} does not exist{hint}", misplaced) from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:  # ValueError: a NUL byte in the path
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        raise SecretSourceError(f"{shown} cannot be read ({reason}){hint}", misplaced) from None
    if not value.strip():
        raise SecretSourceError(f"{shown} is empty{hint}", misplaced)
    return value.strip()


def parse_bool_word(value: str) -> bool | None:
    """1/0/true/false/yes/no/on/off, case-insensitive; None for anything else."""
    word = value.strip().lower()
    if word in _TRUE:
        return True
    if word in _FALSE:
        return False
    return None


def _normalise_url(value: Any, schemes: tuple[str, ...], what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise PydanticCustomError("url", "must be a {what} URL", {"what": what})
    try:
        parts = urlsplit(value.strip())
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise PydanticCustomError("url", "is not a valid URL") from None
    scheme = parts.scheme.lower()
    if scheme not in schemes:
        raise PydanticCustomError(
            "url_scheme", "scheme must be one of {schemes}", {"schemes": ", ".join(schemes)}
        )
    if not parts.hostname:
        raise PydanticCustomError("url", "has no host")
    if parts.query or parts.fragment:
        raise PydanticCustomError("url", "must not carry a query string or fragment")
    netloc = parts.netloc.rsplit("@", 1)
    netloc[-1] = netloc[-1].lower()
    return urlunsplit((scheme, "@".join(netloc), parts.path.rstrip("/"), "", ""))


def _number(value: Any, kind: type, lo: float | None, hi: float | None, lo_open: bool = False) -> Any:
    """Range-check with messages that read well in one line; bools are not numbers here."""
    if isinstance(value, bool):
        raise PydanticCustomError("type", "must be a number, not a boolean")
    if isinstance(value, str):
        try:
            value = kind(value.strip())
        except ValueError:
            raise PydanticCustomError(
                "type", "must be {kind}", {"kind": "an integer" if kind is int else "a number"}
            ) from None
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise PydanticCustomError("type", "must be an integer")
        value = int(value)
    if not isinstance(value, int | float) or (kind is int and not isinstance(value, int)):
        raise PydanticCustomError(
            "type", "must be {kind}", {"kind": "an integer" if kind is int else "a number"}
        )
    if value != value or value in (float("inf"), float("-inf")):
        raise PydanticCustomError("range", "must be a finite number")
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise PydanticCustomError("range", "must be between {lo} and {hi}", {"lo": lo, "hi": hi})
    if lo is not None and hi is None and (value <= lo if lo_open else value < lo):
        raise PydanticCustomError("range", "must be {op} {lo}", {"op": ">" if lo_open else ">=", "lo": lo})
    return kind(value)


# field -> (type, low bound, high bound, low bound exclusive)
_NUMERIC: dict[str, tuple[type, float | None, float | None, bool]] = {
    "window_ms": (int, MIN_WINDOW_MS, MAX_WINDOW_MS, False),
    "symbol_cache_ttl": (float, 0, None, True),
    "ws_watchdog_seconds": (float, 0, None, True),
    "rest_timeout": (float, 0, None, True),
    "rest_retries": (int, 0, None, False),
    "breaker_threshold": (int, 1, None, False),
    "breaker_reset_seconds": (float, 0, None, True),
    "private_subscribe_retries": (int, 0, None, False),
    "subscribe_batch_size": (int, 1, None, False),
}


def _reveal(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


class _KeyLike(SecretStr):
    """A value that looks like key material, given to a field where key material does not belong."""


class _MaskedUrl(SecretStr):
    """A URL carrying a password: errors and ``errors()`` show it with the password masked."""

    def _display(self) -> str:
        return mask_url(self.get_secret_value())


def _wrap(key: str, value: Any, known: set[str]) -> Any:
    """What pydantic may record for ``key``: never a secret, never a misplaced seed, never a URL password."""
    if isinstance(value, str):
        if key in _KEY_FIELDS:
            return SecretStr(value)
        if looks_like_key(value):
            return _KeyLike(value)
        if key in URL_FIELDS and mask_url(value) != value:
            return _MaskedUrl(value)
        if key in _NO_ECHO or key not in known:
            return SecretStr(value)
        return value
    if key not in known and value is not None and not isinstance(value, SecretStr):
        return SecretStr(f"<{type(value).__name__}>")
    return value


def _mask_mapping(data: Mapping[Any, Any], known: set[str]) -> dict[Any, Any]:
    out: dict[Any, Any] = {}
    hidden_names = 0
    for key, value in data.items():
        if isinstance(key, str) and looks_like_key(key):
            # A seed pasted as a setting *name*: pydantic would print it as the error location.
            hidden_names += 1
            key = f"<setting name {hidden_names}, not shown: it looks like key material>"
        out[key] = _wrap(key, value, known) if isinstance(key, str) else value
    return out


def _shown_input(value: Any) -> Any:
    """The input recorded for a located cross-field error (a source name or path)."""
    text = str(value) if isinstance(value, Path) else value
    return _KeyLike(text) if looks_like_key(text) else value


def _error(
    field: str | None, shown: Any, kind: str, template: str, ctx: dict[str, Any] | None = None
) -> ValidationError:
    """A located error whose recorded input is ``shown``, not the raw input mapping (which holds the secret).

    Model-level validators would otherwise record the whole original input in ``errors()``.
    """
    detail = InitErrorDetails(
        type=PydanticCustomError(kind, template, ctx), loc=(field,) if field else (), input=shown
    )
    return ValidationError.from_exception_data(BackpackConfig.__name__, [detail])


_HOST = re.compile(r"[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")

# field -> (type, low bound, high bound, low bound exclusive) for the health section
_HEALTH_NUMERIC: dict[str, tuple[type, float | None, float | None, bool]] = {
    "port": (int, 0, 65535, False),
    "window_seconds": (float, 0, None, True),
    "max_resyncs": (int, 0, None, False),
    "max_gaps": (int, 0, None, False),
    "max_reconnects": (int, 0, None, False),
    "max_errors": (int, 0, None, False),
    "max_auth_failures": (int, 0, None, False),
}
_HEALTH_AGES = ("stale_book_seconds", "stale_message_seconds")


class HealthSettings(BaseModel):
    """``backpack.health``: where ``GET /health`` and ``GET /metrics`` listen, and when the verdict turns.

    Loopback by default: a health endpoint is reachable by whatever can reach the port, so binding
    elsewhere is an explicit choice. ``port: 0`` takes a free port (tests; read it from the feed).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    host: str = "127.0.0.1"
    port: int = 9464
    # degraded while more than max_* of these happened within the last window_seconds
    window_seconds: float = 60.0
    max_resyncs: int = 3
    max_gaps: int = 0
    max_reconnects: int = 0
    max_errors: int = 10
    max_auth_failures: int = 0
    # degraded while a book (a symbol's messages) is older than this; null disables the check
    stale_book_seconds: float | None = 60.0
    stale_message_seconds: float | None = 60.0

    @field_validator("host", mode="before")
    @classmethod
    def _check_host(cls, value: Any) -> str:
        if isinstance(value, _KeyLike):
            raise PydanticCustomError(
                "host", "must be a host name or IP address; {hidden}", {"hidden": HIDDEN}
            )
        if not isinstance(value, str) or not _HOST.fullmatch(value.strip()):
            raise PydanticCustomError(
                "host", "must be a host name or IP address to bind (e.g. 127.0.0.1), not a URL"
            )
        return value.strip().strip("[]")

    @field_validator(*_HEALTH_NUMERIC, mode="before")
    @classmethod
    def _check_number(cls, value: Any, info: ValidationInfo) -> Any:
        kind, lo, hi, lo_open = _HEALTH_NUMERIC[info.field_name]  # type: ignore[index]
        return _number(value, kind, lo, hi, lo_open)

    @field_validator(*_HEALTH_AGES, mode="before")
    @classmethod
    def _check_age(cls, value: Any) -> Any:
        return None if value is None else _number(value, float, 0, None, True)


# nested sections: name -> (model, its known keys)
_SECTIONS: dict[str, type[BaseModel]] = {"health": HealthSettings}


class BackpackConfig(BaseModel):
    """Everything the native feed needs; credentials are optional (public data needs none)."""

    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)

    api_key: str | None = Field(default=None, validation_alias=AliasChoices("api_key", "key_id"))
    private_key: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("private_key", "key_secret")
    )
    private_key_env: str | None = None
    private_key_file: Path | None = None

    rest_url: str = PRODUCTION_REST_URL
    ws_url: str = PRODUCTION_WS_URL
    rest_proxy: str | None = None
    ws_proxy: str | None = None

    window_ms: int = 5000
    depth_limit: int = 1000
    depth_speed: str | None = None  # one of wire.DEPTH_SPEEDS (checked below); None is realtime
    symbol_cache_ttl: float = 3600.0
    native_enabled: bool = Field(default=True, validate_default=True)

    ws_watchdog_seconds: float = 130.0
    rest_timeout: float = 10.0
    rest_retries: int = 5
    breaker_threshold: int = 5
    breaker_reset_seconds: float = 30.0
    private_subscribe_retries: int = 3
    subscribe_batch_size: int = 50
    # GET /health and GET /metrics (off unless configured; see HealthSettings)
    health: HealthSettings | None = None

    _seed: SecretStr | None = PrivateAttr(default=None)
    _signer: Signer | None = PrivateAttr(default=None)

    # -- input shaping -------------------------------------------------------------------------

    @model_validator(mode="before")
    @classmethod
    def _mask_before_validation(cls, data: Any) -> Any:
        """Wrap secret and unknown values so no pydantic error or ``errors()`` entry carries them."""
        if not isinstance(data, Mapping):
            return data
        out = _mask_mapping(data, set(cls.model_fields) | set(_ALIASES))
        for name, model in _SECTIONS.items():
            if isinstance(out.get(name), Mapping):
                out[name] = _mask_mapping(out[name], set(model.model_fields))
        for alias, name in _ALIASES.items():
            if alias in out and name in out:
                raise _error(
                    name,
                    out[name],
                    "duplicate_key",
                    "give either {name} or its cryptofeed alias {alias}, not both",
                    {"name": name, "alias": alias},
                )
        return out

    @field_validator("private_key", mode="before")
    @classmethod
    def _check_seed(cls, value: Any) -> Any:
        raw = _reveal(value)
        if raw is None:
            return None
        if not isinstance(raw, str):
            raise PydanticCustomError("key", "must be a base64 string")
        try:
            decode_key(raw, "private key")
        except KeyMaterialError as exc:
            raise PydanticCustomError("key", "{problem}", {"problem": str(exc)}) from None
        return SecretStr(raw.strip())

    @field_validator("api_key", mode="before")
    @classmethod
    def _check_api_key(cls, value: Any) -> Any:
        value = _reveal(value)
        if value is None:
            return None
        if not isinstance(value, str):
            raise PydanticCustomError("key", "must be a base64 string")
        try:
            decode_key(value, "API key")
        except KeyMaterialError as exc:
            raise PydanticCustomError("key", "{problem}", {"problem": str(exc)}) from None
        return value.strip()

    @field_validator("private_key_env", mode="before")
    @classmethod
    def _check_env_name(cls, value: Any) -> Any:
        if isinstance(value, _KeyLike):
            raise PydanticCustomError(
                "env_name",
                "must be the NAME of an environment variable holding the seed, not the seed itself; {hidden}",
                {"hidden": HIDDEN},
            )
        if value is not None and (
            not isinstance(value, str) or not value.strip() or "=" in value or "\0" in value
        ):
            raise PydanticCustomError("env_name", "must be the name of an environment variable")
        return value.strip() if isinstance(value, str) else value

    @field_validator("private_key_file", mode="before")
    @classmethod
    def _check_key_file(cls, value: Any) -> Any:
        # Only a value that *is* key material is refused here; a merely odd-looking path is tried and,
        # if it cannot be read, reported without being shown (read_secret).
        if isinstance(value, _KeyLike):
            raw = value.get_secret_value()
            if is_key_material(raw) and not Path(raw).exists():
                raise PydanticCustomError(
                    "file_name",
                    "must be the PATH of a file holding the seed, not the seed itself; {hidden}",
                    {"hidden": HIDDEN},
                )
            return raw
        return value

    @field_validator("rest_url", mode="before")
    @classmethod
    def _check_rest_url(cls, value: Any) -> str:
        return _normalise_url(_reveal(value), ("http", "https"), "http(s)")

    @field_validator("ws_url", mode="before")
    @classmethod
    def _check_ws_url(cls, value: Any) -> str:
        return _normalise_url(_reveal(value), ("ws", "wss"), "ws(s)")

    @field_validator("rest_proxy", "ws_proxy", mode="before")
    @classmethod
    def _check_proxy(cls, value: Any) -> str | None:
        value = _reveal(value)
        if value is None:
            return None
        return _normalise_url(value, PROXY_SCHEMES, "proxy")

    @field_validator(*_NUMERIC, mode="before")
    @classmethod
    def _check_number(cls, value: Any, info: ValidationInfo) -> Any:
        kind, lo, hi, lo_open = _NUMERIC[info.field_name]  # type: ignore[index]
        return _number(value, kind, lo, hi, lo_open)

    @field_validator("depth_limit", mode="before")
    @classmethod
    def _check_depth_limit(cls, value: Any) -> int:
        number = _number(value, int, None, None)
        if number not in DEPTH_LIMITS:
            raise PydanticCustomError(
                "choice", "must be one of {choices}", {"choices": ", ".join(map(str, DEPTH_LIMITS))}
            )
        return number

    @field_validator("depth_speed", mode="before")
    @classmethod
    def _check_depth_speed(cls, value: Any) -> Any:
        if value in (None, "realtime"):
            return None
        if value not in DEPTH_SPEEDS:
            raise PydanticCustomError(
                "choice", "must be one of {choices} or null for realtime", {"choices": ", ".join(DEPTH_SPEEDS)}
            )
        return value

    @field_validator("health", mode="before")
    @classmethod
    def _check_health(cls, value: Any) -> Any:
        if value is None or value is False:
            return None
        if value is True:
            return {}
        if isinstance(value, HealthSettings | Mapping):
            return value
        raise PydanticCustomError(
            "health", "must be a mapping of health endpoint settings (host, port, thresholds) or true"
        )

    @field_validator("native_enabled", mode="before")
    @classmethod
    def _check_native(cls, value: Any, info: ValidationInfo) -> bool:
        environ = (info.context or {}).get("environ", os.environ)
        override = environ.get(NATIVE_ENV)
        if override is not None:
            parsed = parse_bool_word(override)
            if parsed is None:
                raise PydanticCustomError(
                    "env_bool",
                    "environment variable {var} must be one of {words}, case-insensitive {got}",
                    {"var": NATIVE_ENV, "words": _BOOL_WORDS, "got": got(override)},
                )
            return parsed
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and parse_bool_word(value) is not None:
            return parse_bool_word(value)  # type: ignore[return-value]
        raise PydanticCustomError("bool", "must be a boolean ({words})", {"words": _BOOL_WORDS})

    # -- cross-field checks --------------------------------------------------------------------

    @model_validator(mode="after")
    def _resolve_credentials(self, info: ValidationInfo) -> BackpackConfig:
        sources = [
            n for n in ("private_key", "private_key_env", "private_key_file") if getattr(self, n) is not None
        ]
        if len(sources) > 1:
            raise _error(
                None,
                sources,
                "secret_sources",
                "give at most one of private_key, private_key_env, private_key_file (got {got})",
                {"got": " and ".join(sources)},
            )
        seed: str | None = None
        if self.private_key is not None:
            seed = self.private_key.get_secret_value()
        elif sources:
            environ = (info.context or {}).get("environ")
            try:
                seed = read_secret(env=self.private_key_env, file=self.private_key_file, environ=environ)
                decode_key(seed, f"private key from {sources[0]}")
            except KeyMaterialError as exc:
                shown = _shown_input(getattr(self, sources[0]))
                raise _error(sources[0], shown, "key", "{problem}", {"problem": str(exc)}) from None
        if seed is None:
            return self
        try:
            signer = Signer(seed, self.api_key)
        except KeyMaterialError:
            raise _error(
                "api_key",
                SecretStr(self.api_key or ""),
                "key_pair",
                "api_key does not match the private key (the public key derived from the private key differs); "
                "use the API key created together with this secret, or regenerate the key pair",
            ) from None
        self._seed = SecretStr(seed)
        self._signer = signer
        if self.api_key is None:
            object.__setattr__(self, "api_key", signer.api_key)  # frozen model: derived once, here
        return self

    # -- output --------------------------------------------------------------------------------

    # A dump is for showing and storing settings, so it carries what repr shows: URL passwords masked and
    # an API key only once it is known to be the public half of the configured seed. An API key given
    # without a private key may be a seed pasted into the wrong field; nothing can tell them apart.

    @field_serializer(*URL_FIELDS)
    def _dump_url(self, value: str | None) -> str | None:
        return None if value is None else mask_url(value)

    @field_serializer("api_key")
    def _dump_api_key(self, value: str | None, info: Any) -> Any:
        if value is None or self._signer is not None:
            return value
        return "**********" if info.mode == "json" else SecretStr(value)

    def __repr_args__(self):
        for name, value in super().__repr_args__():
            if name in URL_FIELDS and isinstance(value, str):
                value = mask_url(value)
            elif name == "api_key" and value is not None and self._signer is None:
                value = SecretStr(value)
            yield name, value

    def __eq__(self, other: object) -> bool:
        """Same settings and same resolved secret; the cached Signer object does not count."""
        if not isinstance(other, BackpackConfig):
            return NotImplemented
        return self.__dict__ == other.__dict__ and self._seed == other._seed

    def __hash__(self) -> int:
        return hash(tuple(self.__dict__.values()))

    @property
    def sandbox(self) -> bool:
        """Any endpoint other than production (a testnet, the loopback server, a recording)."""
        return self.rest_url != PRODUCTION_REST_URL or self.ws_url != PRODUCTION_WS_URL

    @property
    def has_credentials(self) -> bool:
        return self._signer is not None

    def signer(self) -> Signer | None:
        return self._signer

    def secret_seed(self) -> str | None:
        """The base64 seed itself, for a client that must sign on its own (the ccxt path). Never log it."""
        return None if self._seed is None else self._seed.get_secret_value()

    def redact(self, text: str, marker: str = "<redacted>") -> str:
        """Replace this config's secret wherever it appears (recorders and log filters use this)."""
        if self._seed is not None:
            text = text.replace(self._seed.get_secret_value(), marker)
        return text

    # -- loaders -------------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any] | None, *, environ: Mapping[str, str] | None = None
    ) -> BackpackConfig:
        """Build from the ``backpack:`` section itself; raises ConfigError with one line per problem."""
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError([f"{SECTION}: must be a mapping of settings (got {type(data).__name__})"])
        bad_keys = [k for k in data if not isinstance(k, str)]
        if bad_keys:
            raise ConfigError(
                [f"{SECTION}: setting names must be strings (got {type(bad_keys[0]).__name__})"]
            )
        context = None if environ is None else {"environ": environ}
        try:
            config = cls.model_validate(dict(data), context=context)
        except ValidationError as exc:
            raise ConfigError(format_errors(exc).splitlines()) from None
        log.debug("backpack config loaded: %r", config)
        return config

    @classmethod
    def from_yaml(cls, source: str | Path, *, environ: Mapping[str, str] | None = None) -> BackpackConfig:
        """Read the ``backpack:`` section of a cryptofeed YAML file (path) or YAML text.

        A string is a path when it has no newline and ends in .yaml/.yml or names an existing file;
        otherwise it is YAML text. A document without a ``backpack:`` section yields the defaults.
        """
        text, origin = _yaml_text(source)
        try:
            doc = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" at line {mark.line + 1}" if mark is not None else ""
            raise ConfigError([f"{origin}: not valid YAML{where}"]) from None
        if doc is None:
            doc = {}
        if not isinstance(doc, Mapping):
            raise ConfigError([f"{origin}: the top level must be a mapping (got {type(doc).__name__})"])
        return cls.from_dict(_section(doc), environ=environ)

    @classmethod
    def load(
        cls,
        config: None | Mapping[str, Any] | str | Path | BackpackConfig,
        *,
        environ: Mapping[str, str] | None = None,
    ) -> BackpackConfig:
        """Accept whatever a feed constructor was given.

        A mapping with a ``backpack`` key is a whole cryptofeed config and its section is used; any
        other mapping is the section itself.
        """
        if config is None:
            return cls.from_dict({}, environ=environ)
        if isinstance(config, BackpackConfig):
            return config
        if isinstance(config, str | Path):
            return cls.from_yaml(config, environ=environ)
        if isinstance(config, Mapping):
            section = _section(config) if _has_section(config) else config
            return cls.from_dict(section, environ=environ)
        raise ConfigError([f"{SECTION}: cannot load a config from {type(config).__name__}"])


def _has_section(doc: Mapping[Any, Any]) -> bool:
    return any(isinstance(k, str) and k.lower() == SECTION for k in doc)


def _section(doc: Mapping[Any, Any]) -> Any:
    for key, value in doc.items():
        if isinstance(key, str) and key.lower() == SECTION:
            return {} if value is None else value
    return {}


def _yaml_text(source: str | Path) -> tuple[str, str]:
    if isinstance(source, str) and (
        "\n" in source or not (source.endswith((".yaml", ".yml")) or Path(source).is_file())
    ):
        return source, "config"
    path = Path(source)
    try:
        return path.read_text(encoding="utf-8"), str(path)
    except FileNotFoundError:
        raise ConfigError([f"{path}: config file does not exist"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"{path}: config file cannot be read ({type(exc).__name__})"]) from None


def _known_names() -> list[str]:
    return sorted(set(BackpackConfig.model_fields) | set(_ALIASES))


def format_errors(exc: ValidationError | ConfigError, prefix: str = SECTION) -> str:
    """One line per problem, ``<prefix>.<field>: <problem> (got <value>)``; secret values never shown."""
    if isinstance(exc, ConfigError):
        return str(exc)
    lines = []
    for err in exc.errors(include_url=False):
        loc = [str(p) for p in err["loc"]]
        field = loc[0] if loc else ""
        where = ".".join([prefix, *loc]) if loc else prefix
        kind = err["type"]
        if kind == "extra_forbidden":
            section = _SECTIONS.get(field) if len(loc) > 1 else None
            names = sorted(section.model_fields) if section is not None else _known_names()
            close = difflib.get_close_matches(loc[-1], names, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known settings: {', '.join(names)}"
            lines.append(f"{where}: unknown setting{hint}")
            continue
        msg = err["msg"]
        if kind not in ("value_error", "assertion_error") and msg[:1].isupper() and not msg.startswith("API"):
            msg = msg[0].lower() + msg[1:]
        shown = ""
        value = err.get("input")
        echo = loc and field not in _NO_ECHO and kind not in _NO_ECHO_KINDS
        if isinstance(value, _KeyLike):
            shown = "" if HIDDEN in msg else f" ({HIDDEN})"
        elif echo and isinstance(value, _MaskedUrl):
            shown = f" (got {value._display()!r})"
        elif echo and not isinstance(value, Mapping | SecretStr):
            shown = f" {got(value)}"
        lines.append(f"{where}: {msg}{shown}")
    return "\n".join(lines)


def with_http_proxy(config: BackpackConfig, http_proxy: Any) -> BackpackConfig:
    """Fold cryptofeed's ``http_proxy`` feed argument (``add_feed(..., http_proxy=...)``) into ``config``.

    Precedence: ``rest_proxy`` and ``ws_proxy`` from the backpack config win; ``http_proxy`` fills each of
    them that is unset. Unlike cryptofeed's own exchanges (REST GETs only) it covers the WebSocket too:
    a feed whose snapshots and stream leave by different routes breaks exactly where a proxy is needed
    (egress-only networks, region-bound endpoints). To proxy REST alone, set ``rest_proxy`` instead.
    """
    if http_proxy is None or http_proxy == "":
        return config
    text = str(http_proxy)  # cryptofeed types it StrOrURL: a yarl.URL is fine too
    try:
        proxy = _normalise_url(text, PROXY_SCHEMES, "proxy")
    except PydanticCustomError as exc:
        hidden = f" ({HIDDEN})" if looks_like_key(text) else ""
        raise ConfigError([f"http_proxy: {exc.message()}{hidden}"]) from None  # a proxy may embed a password
    update = {name: proxy for name in ("rest_proxy", "ws_proxy") if getattr(config, name) is None}
    return config.model_copy(update=update) if update else config


def section_of(config: Any) -> Any:
    """The ``backpack:`` section of whatever cryptofeed ``config`` a feed was given, or None.

    Accepts a cryptofeed ``Config`` (which wraps its dict), a whole config dict, or a YAML path (read by
    ``BackpackConfig.load``).
    """
    if config is None:
        return None
    inner = getattr(config, "config", None)
    if isinstance(inner, dict):
        config = inner
    if isinstance(config, Mapping):
        return config if _has_section(config) else None
    return config
