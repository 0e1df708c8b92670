"""``backpack-harness sign``: the signing string, signature and headers for one request, offline."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence

from backpack.protocol.auth import DEFAULT_WINDOW_MS
from backpack.redaction import HIDDEN, got, looks_like_key
from harness.cli import (
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subcommand,
    _emit,
    _timestamp,
    _window,
    add_secret_arguments,
    load_signer,
    register,
)


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


