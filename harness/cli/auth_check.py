"""``backpack-harness auth-check``: is the key pair valid, and is this machine's clock inside the window?"""

from __future__ import annotations

import argparse
import ipaddress
import json
import time
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from backpack.config import PRODUCTION_REST_URL
from backpack.protocol.auth import DEFAULT_WINDOW_MS, MAX_WINDOW_MS, verify
from backpack.redaction import HIDDEN, looks_like_key, mask_url
from harness.cli import (
    EXIT_DRIFT,
    EXIT_KEY,
    EXIT_OK,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    CliError,
    Subcommand,
    _emit,
    _positive_seconds,
    _window,
    add_secret_arguments,
    load_signer,
    register,
)


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
