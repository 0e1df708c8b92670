"""``backpack-harness``: one command line for signing checks, recording, replay and the rest.

Adding a command: write ``add_arguments(parser)`` and ``run(args) -> int`` and ``register`` a
``Subcommand`` (at import time of this module, or from a module listed in ``_COMMAND_MODULES``).

Exit codes shared by all commands: 0 ok, 1 unexpected internal error, 2 invalid key material,
3 clock drift beyond the window, 4 an endpoint was unreachable or answered nonsense,
64 usage error (bad arguments; argparse's own 2 is moved so it cannot be mistaken for a key problem).
Secrets are read from an environment variable or a file, never from argv, and never printed.
"""

from __future__ import annotations

import argparse
import importlib
import ipaddress
import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO
from urllib.parse import urlsplit

from backpack.config import PRODUCTION_REST_URL, SecretSourceError, read_secret
from backpack.protocol.auth import (
    DEFAULT_WINDOW_MS,
    MAX_WINDOW_MS,
    MIN_WINDOW_MS,
    KeyMaterialError,
    Signer,
    decode_key,
    verify,
)
from backpack.redaction import HIDDEN, got, looks_like_key, mask_url, scrub

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_KEY = 2
EXIT_DRIFT = 3
EXIT_UNREACHABLE = 4
EXIT_USAGE = 64

# Modules that register further subcommands when imported (one line per module).
_COMMAND_MODULES: tuple[str, ...] = ("harness.demo",)


class CliError(Exception):
    """A failure with a user-facing message (never containing a secret) and an exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class _UsageError(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """Report usage errors through an exception so main() can return EXIT_USAGE instead of exiting."""

    def error(self, message: str) -> NoReturn:
        # argparse quotes what it was given ("invalid int value: '...'", "unrecognized arguments: ..."),
        # and that may be a seed typed where it does not belong.
        raise _UsageError(f"{self.prog}: error: {scrub(message)}\n{self.format_usage().rstrip()}")

    def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


@dataclass(frozen=True)
class Subcommand:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


_REGISTRY: dict[str, Subcommand] = {}


def register(command: Subcommand) -> Subcommand:
    if command.name in _REGISTRY and _REGISTRY[command.name] is not command:
        raise ValueError(f"subcommand {command.name!r} is already registered")
    _REGISTRY[command.name] = command
    return command


def build_parser() -> argparse.ArgumentParser:
    for module in _COMMAND_MODULES:
        importlib.import_module(module)
    parser = _Parser(
        prog="backpack-harness",
        description="Backpack feed harness: key checks, recording, replay and conformance tools.",
        epilog="exit codes: 0 ok, 1 internal error, 2 invalid key material, 3 clock drift, "
        "4 endpoint unreachable or bad answer, 64 usage error",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for command in _REGISTRY.values():
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        command.add_arguments(p)
        p.set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(exc, file=sys.stderr)
        return EXIT_USAGE
    except SystemExit as exc:  # --help / --version
        return exc.code if isinstance(exc.code, int) else EXIT_OK
    try:
        return args._run(args)
    except CliError as exc:
        print(f"error: {scrub(str(exc))}", file=sys.stderr)  # built not to need it: belt and braces
        return exc.code
    except KeyboardInterrupt:
        return 130
    except Exception as exc:  # the message of an unknown error might carry a secret
        print(
            f"internal error ({type(exc).__name__}); please report it with the command you ran",
            file=sys.stderr,
        )
        return EXIT_INTERNAL


# -- shared argument helpers -------------------------------------------------------------------


def _window(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"window must be an integer of milliseconds {got(text)}") from None
    if not MIN_WINDOW_MS <= value <= MAX_WINDOW_MS:
        raise argparse.ArgumentTypeError(
            f"window must be between {MIN_WINDOW_MS} and {MAX_WINDOW_MS} ms (got {value})"
        )
    return value


def _timestamp(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"timestamp must be an integer of milliseconds {got(text)}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"timestamp must not be negative (got {value})")
    return value


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds {got(text)}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds {got(text)}")
    return value


def add_secret_arguments(parser: argparse.ArgumentParser) -> None:
    """The secret comes from an env var or a file so it never sits in argv or shell history."""
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--secret-env", metavar="VAR", help="environment variable holding the base64 private key seed"
    )
    source.add_argument(
        # str, not Path: Path() folds "//" and a seed pasted here would no longer be recognised as one
        "--secret-file", metavar="FILE", help="file holding the base64 private key seed"
    )
    parser.add_argument(
        "--api-key", metavar="KEY", help="base64 public key (X-API-Key) expected to match the secret"
    )


def load_signer(args: argparse.Namespace) -> Signer:
    """Read the secret and build a Signer, turning every key problem into exit code 2 with advice."""
    try:
        seed = read_secret(env=args.secret_env, file=args.secret_file)
    except SecretSourceError as exc:
        if exc.misplaced:
            raise CliError(
                EXIT_KEY,
                f"{exc}: --secret-env takes a variable's NAME and --secret-file a file's PATH; put the seed "
                "in that variable or file",
            ) from None
        raise CliError(EXIT_KEY, f"{exc}; provide the base64 private key seed there") from None
    try:
        decode_key(seed, "private key")
    except KeyMaterialError as exc:
        raise CliError(
            EXIT_KEY,
            f"{exc}: the secret must be the base64 text of a 32-byte ED25519 seed; copy it exactly as "
            "issued or regenerate the key pair",
        ) from None
    if args.api_key is not None:
        try:
            decode_key(args.api_key, "API key")
        except KeyMaterialError as exc:
            raise CliError(
                EXIT_KEY,
                f"{exc}: --api-key must be the base64 text of a 32-byte ED25519 public key; copy it exactly as issued",
            ) from None
    try:
        return Signer(seed, args.api_key)
    except KeyMaterialError:
        raise CliError(
            EXIT_KEY,
            "the API key does not belong to this private key; use the API key created together with this "
            "secret, or regenerate the key pair",
        ) from None


def _emit(text: str, stream: TextIO | None = None) -> None:
    print(text, file=stream or sys.stdout)


# -- sign ----------------------------------------------------------------------------------------


def _parse_params(items: Sequence[str]) -> dict[str, str]:
    params: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if looks_like_key(key):  # a seed ends in "=", so it parses as a key with an empty value
            raise CliError(EXIT_USAGE, f"--param must be key=value with a parameter name as key; {HIDDEN}")
        if not sep or not key:
            raise CliError(EXIT_USAGE, f"--param must look like key=value {got(item)}")
        if key in params:
            raise CliError(EXIT_USAGE, f"--param {key!r} given more than once; each key may appear once")
        params[key] = value  # kept as text: "true"/"false" are signed exactly like that
    return params


def _sign_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--instruction", required=True, help="instruction name, e.g. orderExecute or subscribe")
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="request parameter (repeat for more; keys unique)",
    )
    p.add_argument(
        "--timestamp", required=True, type=_timestamp, metavar="MS", help="X-Timestamp in milliseconds"
    )
    p.add_argument(
        "--window",
        type=_window,
        default=DEFAULT_WINDOW_MS,
        metavar="MS",
        help=f"X-Window (default {DEFAULT_WINDOW_MS})",
    )
    add_secret_arguments(p)


def _sign_run(args: argparse.Namespace) -> int:
    if looks_like_key(args.instruction):
        raise CliError(
            EXIT_USAGE, f"--instruction must be an instruction name such as orderExecute; {HIDDEN}"
        )
    params = _parse_params(args.param)
    signer = load_signer(args)
    signed = signer.sign(args.instruction, params, args.timestamp, args.window)
    out = {
        "signing_string": signed.signing_string,
        "signature": signed.signature,
        "x_api_key": signed.api_key,
        "headers": signed.headers(),
    }
    _emit(json.dumps(out, indent=2, sort_keys=True))
    return EXIT_OK


register(
    Subcommand(
        "sign", "print the signing string, signature and headers for one request", _sign_arguments, _sign_run
    )
)


# -- auth-check ----------------------------------------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def parse_server_time(body: bytes) -> int:
    """``/api/v1/time`` answers a bare integer (text/plain); a JSON integer is tolerated too."""
    text = body.decode("utf-8", errors="replace").strip()
    if text.isascii() and text.isdigit():
        return int(text)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    shown = text[:60] + ("..." if len(text) > 60 else "")
    raise ValueError(f"expected an integer of milliseconds, got {shown!r}")


def fetch_server_time(rest_url: str, timeout: float) -> tuple[int, int, int]:
    """GET /api/v1/time; returns (server ms, local ms at the round-trip midpoint, round trip ms)."""
    url = rest_url.rstrip("/") + "/api/v1/time"
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        parts, host = None, None
    if parts is None or parts.scheme not in ("http", "https") or not host:
        shown = f"({HIDDEN})" if looks_like_key(rest_url) else f"(got {mask_url(rest_url)!r})"
        raise CliError(EXIT_USAGE, f"--rest must be an http(s) URL {shown}")
    if "@" in parts.netloc:
        # urllib cannot send URL credentials and would quote them back in its errors; /api/v1/time needs none.
        raise CliError(EXIT_USAGE, f"--rest must not carry user:password@ (got {mask_url(rest_url)!r})")
    handlers = [urllib.request.ProxyHandler({})] if _is_loopback(host) else []
    opener = urllib.request.build_opener(*handlers)
    request = urllib.request.Request(url, headers={"Accept": "text/plain, application/json"})
    advice = "check --rest, the network and any proxy settings, then retry"
    sent = _now_ms()
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(4096)
            status = response.status
    except urllib.error.HTTPError as exc:
        raise CliError(EXIT_UNREACHABLE, f"{url} answered HTTP {exc.code}; {advice}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None) or exc
        raise CliError(EXIT_UNREACHABLE, f"cannot reach {url} ({reason}); {advice}") from None
    received = _now_ms()
    if status != 200:
        raise CliError(EXIT_UNREACHABLE, f"{url} answered HTTP {status}; {advice}")
    try:
        server = parse_server_time(body)
    except ValueError as exc:
        raise CliError(
            EXIT_UNREACHABLE, f"bad answer from {url}: {exc}; check that --rest points at the exchange"
        ) from None
    return server, (sent + received) // 2, received - sent


def _auth_check_arguments(p: argparse.ArgumentParser) -> None:
    add_secret_arguments(p)
    p.add_argument(
        "--rest",
        default=PRODUCTION_REST_URL,
        metavar="URL",
        help=f"REST base URL (default {PRODUCTION_REST_URL})",
    )
    p.add_argument(
        "--window",
        type=_window,
        default=DEFAULT_WINDOW_MS,
        metavar="MS",
        help=f"X-Window to check against (default {DEFAULT_WINDOW_MS})",
    )
    p.add_argument(
        "--timeout",
        type=_positive_seconds,
        default=10.0,
        metavar="S",
        help="HTTP timeout in seconds (default 10)",
    )


def _auth_check_run(args: argparse.Namespace) -> int:
    signer = load_signer(args)
    probe = "instruction=authCheck&timestamp=0&window=5000"
    if not verify(
        signer.api_key, probe, signer.sign_text(probe)
    ):  # pragma: no cover - nacl would have to be broken
        raise CliError(EXIT_KEY, "the key signs but its signature does not verify; regenerate the key pair")
    server, local, rtt = fetch_server_time(args.rest, args.timeout)
    drift = abs(server - local)
    if drift > args.window:
        raise CliError(
            EXIT_DRIFT,
            f"clock drift {drift} ms exceeds the window {args.window} ms (server {server}, local {local}); "
            f"sync the system clock (NTP) or raise the window up to {MAX_WINDOW_MS} ms",
        )
    lines = [
        "OK",
        f"public key (X-API-Key): {signer.api_key}",
        "api key: "
        + (
            "matches the private key"
            if args.api_key is not None
            else "not given; derived from the private key"
        ),
        f"clock drift: {drift} ms (window {args.window} ms, round trip {rtt} ms)",
    ]
    if drift * 2 > args.window:
        lines.append("warning: drift is more than half the window; consider syncing the clock (NTP)")
    _emit("\n".join(lines))
    return EXIT_OK


register(
    Subcommand(
        "auth-check",
        "check the key pair and the clock drift against the exchange's /api/v1/time",
        _auth_check_arguments,
        _auth_check_run,
    )
)
