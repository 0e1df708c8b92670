"""``backpack-harness``: one command line for signing checks, recording, replay and the rest.

Adding a command: a module in this package (one per command, named after it) that writes
``add_arguments(parser)`` and ``run(args) -> int`` and ``register``s a ``Subcommand`` when imported.
``build_parser`` imports every module of the package, so nothing else needs editing.

Exit codes shared by all commands: 0 ok, 1 unexpected internal error, 2 invalid key material,
3 clock drift beyond the window, 4 an endpoint was unreachable or answered nonsense,
5 conformance failure (a replayed feed did not do what the recording has: a different frame sent, a
refused dial-out, a virtual timeout),
64 usage error (bad arguments; argparse's own 2 is moved so it cannot be mistaken for a key problem).
Recordings and cassettes, sysexits-style:
65 (EX_DATAERR) damaged input: truncated or corrupt after the header (everything before the damage was
processed and printed first), not a recording at all, or a header or cassette that breaks the format;
66 (EX_NOINPUT) the file cannot be opened or read, or is empty;
73 (EX_CANTCREAT) an output file (recording, cassette) cannot be written;
76 (EX_PROTOCOL) the recording's format major version is not one this tool reads.
Secrets are read from an environment variable or a file, never from argv, and never printed.
Log records go to stderr as JSON lines (``backpack.logs``), at ``--log-level`` and above (WARNING by
default), scrubbed of anything that looks like key material.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TextIO

from backpack.config import SecretSourceError, read_secret
from backpack.logs import json_logging
from backpack.protocol.auth import MAX_WINDOW_MS, MIN_WINDOW_MS, KeyMaterialError, Signer, decode_key
from backpack.redaction import got, scrub

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_KEY = 2
EXIT_DRIFT = 3
EXIT_UNREACHABLE = 4
EXIT_CONFORMANCE = 5
EXIT_USAGE = 64
EXIT_DATAERR = 65
EXIT_NOINPUT = 66
EXIT_CANTCREAT = 73
EXIT_UNSUPPORTED = 76



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


def discover() -> list[str]:
    """Import every command module of this package (each registers itself); returns their names."""
    names = sorted(m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_"))
    for name in names:
        importlib.import_module(f"{__name__}.{name}")
    return names


def build_parser() -> argparse.ArgumentParser:
    discover()
    parser = _Parser(
        prog="backpack-harness",
        description="Backpack feed harness: key checks, recording, replay and conformance tools.",
        epilog="exit codes: 0 ok, 1 internal error, 2 invalid key material, 3 clock drift, "
        "4 endpoint unreachable or bad answer, 5 conformance failure, 64 usage error, "
        "65 damaged recording or bad format, 66 recording missing, unreadable or empty, "
        "73 cannot write output, 76 unsupported recording version",
    )
    parser.add_argument(
        "--log-level", default=None, type=_log_level, metavar="LEVEL",
        help="log at this level and above to stderr as JSON lines, secrets scrubbed (default WARNING; "
             "replay shows the replayed feed's log only with -v)",
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
        with json_logging(args.log_level or "WARNING"):
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


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise argparse.ArgumentTypeError(
            f"log level must be DEBUG, INFO, WARNING, ERROR or CRITICAL {got(text)}"
        )
    return level


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


