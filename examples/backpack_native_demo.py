"""The native Backpack feed end to end: public and private channels, JSON logs, failures handled.

    python examples/backpack_native_demo.py                    # against a loopback server it starts itself
    python examples/backpack_native_demo.py --steps 1200 --symbols SOL-USDC BTC-USDC-PERP
    BACKPACK_SECRET=<base64 seed> python examples/backpack_native_demo.py --live --seconds 60   # production

By default the example starts the loopback Backpack server in this process, signs in as the server's test
account, drives ``--steps`` market steps and stops. It exits 1 if a subscribed channel delivered
nothing. ``--live`` connects to production, or to ``--rest``/``--ws``, and runs for ``--seconds``. It
takes the key from the environment (``BACKPACK_SECRET`` holds the base64 seed, ``BACKPACK_API_KEY`` is
optional and checked against it). Without a key it subscribes to the public channels only.

Logs are JSON lines on stderr (``backpack.logs``). The last line on stdout is a JSON summary: the path
that ran, what each channel delivered, resyncs, reconnects and contained errors. Exit codes: 0 ok,
1 a channel stayed silent on the loopback server, 2 a configuration or key problem (one line, never the
secret), 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import time
from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import backpack  # noqa: F401  (registers BACKPACK with cryptofeed)
from backpack import compat
from backpack.config import NATIVE_ENV, PRODUCTION_REST_URL, PRODUCTION_WS_URL, BackpackConfig, ConfigError
from backpack.logs import context, install_json_logging

LOG = logging.getLogger("examples.backpack_native_demo")

PUBLIC = (compat.TRADES, compat.L2_BOOK, compat.TICKER)
PRIVATE = (compat.ORDER_INFO, compat.FILLS, compat.POSITIONS, compat.BALANCES)
EXIT_SILENT, EXIT_CONFIG, EXIT_INTERRUPTED = 1, 2, 130


class DemoError(Exception):
    """A problem the user can fix; the message is one line and never holds a secret."""


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--live", action="store_true", help="production (or --rest/--ws) instead of a loopback server")
    p.add_argument("--symbols", nargs="+", default=["SOL-USDC", "BTC-USDC-PERP"], metavar="SYMBOL")
    p.add_argument("--steps", type=int, default=600, help="loopback: market steps to drive (default 600)")
    p.add_argument("--seed", type=int, default=1, help="loopback: market seed (default 1)")
    p.add_argument("--seconds", type=float, default=None,
                   help="--live: how long to run (default 30); loopback: an upper bound (default 60)")
    p.add_argument("--rest", default=PRODUCTION_REST_URL, help="--live: REST base URL (default production)")
    p.add_argument("--ws", default=PRODUCTION_WS_URL, help="--live: WebSocket URL (default production)")
    p.add_argument("--secret-env", default="BACKPACK_SECRET", metavar="VAR",
                   help="--live: environment variable holding the base64 seed (default BACKPACK_SECRET)")
    p.add_argument("--api-key-env", default="BACKPACK_API_KEY", metavar="VAR",
                   help="--live: environment variable holding the public key, optional (default BACKPACK_API_KEY)")
    p.add_argument("--health-port", type=int, default=None, help="serve /health and /metrics on this port")
    p.add_argument("--log-level", default="INFO")
    args = p.parse_args(argv)
    if args.seconds is None:
        args.seconds = 30.0 if args.live else 60.0
    if not args.live and (args.rest, args.ws) != (PRODUCTION_REST_URL, PRODUCTION_WS_URL):
        p.error("--rest and --ws apply to --live only (the loopback server brings its own URLs)")
    return args


def settings(args: argparse.Namespace, server: Any = None) -> tuple[BackpackConfig, tuple[str, ...]]:
    """The feed's config with the flag enabled, and the channels it can run (private ones need a key)."""
    section: dict[str, Any] = {"native_enabled": True}
    if args.health_port is not None:
        section["health"] = {"port": args.health_port}
    if server is not None:
        from harness.loopback.server import TEST_ACCOUNT_SECRET

        section.update(rest_url=server.rest_url, ws_url=server.ws_url, private_key=TEST_ACCOUNT_SECRET)
    else:
        section.update(rest_url=args.rest, ws_url=args.ws)
        if os.environ.get(args.secret_env, "").strip():
            section["private_key_env"] = args.secret_env  # the config reads it; the seed never passes through here
            if os.environ.get(args.api_key_env, "").strip():
                section["api_key"] = os.environ[args.api_key_env].strip()
    try:
        config = BackpackConfig.from_dict(section)
    except ConfigError as exc:
        raise DemoError("; ".join(exc.problems)) from None
    if not config.native_enabled:
        raise DemoError(f"{NATIVE_ENV}={os.environ.get(NATIVE_ENV)} in the environment switches BACKPACK to the "
                        "ccxt path, and this example shows the native feed: unset it")
    if not config.has_credentials:
        LOG.warning("no key in %s: subscribing to the public channels only", args.secret_env)
        return config, PUBLIC
    return config, PUBLIC + PRIVATE


class Deliveries:
    """Counts what each channel delivered and logs the first of each, with the symbol as a log field."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.best: dict[str, tuple[Decimal | None, Decimal | None]] = {}

    def callbacks(self, channels: Sequence[str]) -> dict[str, Any]:
        return {channel: self._callback(channel) for channel in channels}

    def _callback(self, channel: str) -> Any:
        async def on_update(obj: Any, receipt: float) -> None:
            # A callback that raises does not stop the feed: it is logged, counted in
            # backpack_callback_errors_total and the feed keeps delivering to the others.
            self.counts[channel] += 1
            symbol = getattr(obj, "symbol", None)
            if channel == compat.L2_BOOK:
                bids, asks = obj.book.bids.to_dict(), obj.book.asks.to_dict()
                self.best[obj.symbol] = (max(bids, default=None), min(asks, default=None))
            if self.counts[channel] == 1:
                LOG.info("first %s update: %s", channel, _describe(channel, obj), extra=context(symbol=symbol))

        on_update.__qualname__ = f"on_{channel}"
        return on_update


def _describe(channel: str, obj: Any) -> str:
    if channel == compat.TRADES:
        return f"{obj.side} {obj.amount} @ {obj.price}"
    if channel == compat.L2_BOOK:
        return f"{len(obj.book.bids)} bids, {len(obj.book.asks)} asks"
    if channel == compat.BALANCES:
        return f"{obj.currency} {obj.balance}"
    return type(obj).__name__


async def _drive(server: Any, symbols: Sequence[str], channels: Sequence[str], steps: int, deadline: float) -> None:
    """Loopback only: move the market once the feed has subscribed, then let the last frames arrive."""
    first = symbols[0].replace("-", "_")
    await server.wait_subscribed(f"depth.{first}", timeout=30)
    if compat.ORDER_INFO in channels:
        await server.wait_subscribed(f"account.orderUpdate.{first}", timeout=30)
    done = 0
    while done < steps and time.monotonic() < deadline:
        n = min(20, steps - done)
        server.step(n)
        done += n
        await server.flush()
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.5)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    from cryptofeed import FeedHandler

    deadline = time.monotonic() + args.seconds
    server = None
    if not args.live:
        from harness.loopback.server import BackpackServer

        server = await BackpackServer(seed=args.seed, rate=0).start()
        LOG.info("loopback Backpack server at %s (seed %d)", server.rest_url, args.seed)
    deliveries = Deliveries()
    try:
        config, channels = settings(args, server)
        fh = FeedHandler(config={"log": {"disabled": True}})  # cryptofeed's own file log; ours is JSON
        try:
            fh.add_feed("BACKPACK", symbols=list(args.symbols), channels=list(channels),
                        callbacks=deliveries.callbacks(channels), backpack_config=config)
        except ValueError as exc:  # a bad symbol, a channel the feed does not know
            raise DemoError(str(exc)) from None
        feed = fh.feeds[0]
        token = await compat.start_handler(fh)
        try:
            if server is not None:
                await _drive(server, args.symbols, channels, args.steps, deadline)
            else:
                await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        finally:
            await compat.stop_handler(fh, token)
    finally:
        if server is not None:
            await server.stop()
    registry = feed.registry
    return {
        "mode": "live" if args.live else "loopback",
        "path": feed.feed_path,
        "symbols": list(args.symbols),
        "delivered": {channel: deliveries.counts[channel] for channel in channels},
        "best_bid_ask": {s: [None if p is None else str(p) for p in pair] for s, pair in deliveries.best.items()},
        "resyncs": int(registry.value("backpack_book_resyncs_total")),
        "reconnects": int(registry.value("backpack_ws_reconnects_total")),
        "decode_errors": int(registry.value("backpack_decode_errors_total")),
        "callback_errors": int(registry.value("backpack_callback_errors_total")),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    installed = install_json_logging(args.log_level)
    try:
        summary = asyncio.run(run(args))
    except DemoError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        LOG.warning("interrupted")
        return EXIT_INTERRUPTED
    finally:
        installed.remove()
    print(json.dumps(summary, sort_keys=True))
    silent = [c for c, n in summary["delivered"].items() if n == 0]
    if silent and summary["mode"] == "loopback":
        print(f"error: no updates on {', '.join(silent)}", file=sys.stderr)
        return EXIT_SILENT
    return 0


if __name__ == "__main__":
    sys.exit(main())
