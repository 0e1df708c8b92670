"""Run the Backpack feed with JSON logs and the health endpoint, as an operator would during the rollout.

    python examples/observability.py --symbols SOL-USDC BTC-USDC-PERP --health-port 9464
    curl -s 127.0.0.1:9464/health | python -m json.tool
    curl -s 127.0.0.1:9464/metrics | grep backpack_book

``--rest`` / ``--ws`` point it elsewhere (the loopback server: ``backpack-harness serve``);
``CRYPTOFEED_BACKPACK_NATIVE=0`` runs the ccxt-backed path with the same metrics and endpoints.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from typing import Any

import backpack  # noqa: F401  (registers BACKPACK)
from backpack import compat
from backpack.config import PRODUCTION_REST_URL, PRODUCTION_WS_URL
from backpack.logs import install_json_logging

LOG = logging.getLogger("examples.observability")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbols", nargs="+", default=["SOL-USDC"])
    p.add_argument("--rest", default=PRODUCTION_REST_URL)
    p.add_argument("--ws", default=PRODUCTION_WS_URL)
    p.add_argument("--health-host", default="127.0.0.1")
    p.add_argument("--health-port", type=int, default=9464)
    p.add_argument("--log-level", default="INFO")
    p.add_argument("--seconds", type=float, default=0, help="stop after this long (0: run until interrupted)")
    return p.parse_args(argv)


async def run(args: argparse.Namespace) -> None:
    from cryptofeed import FeedHandler

    trades = 0

    async def on_trade(trade: Any, receipt: float) -> None:
        nonlocal trades
        trades += 1

    config = {
        "log": {"disabled": True},  # cryptofeed's own file logging; ours goes through install_json_logging
        "backpack": {
            "rest_url": args.rest,
            "ws_url": args.ws,
            "health": {"host": args.health_host, "port": args.health_port},
        },
    }
    fh = FeedHandler(config=config)
    fh.add_feed(
        "BACKPACK",
        symbols=args.symbols,
        channels=[compat.TRADES, compat.L2_BOOK],
        callbacks={compat.TRADES: on_trade},
    )
    token = await compat.start_handler(fh)
    try:
        if args.seconds > 0:
            await asyncio.sleep(args.seconds)
        else:
            await asyncio.Event().wait()
    finally:
        await compat.stop_handler(fh, token)
        LOG.info("stopped after %d trades", trades)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    installed = install_json_logging(args.log_level)
    try:
        asyncio.run(run(args))
    except KeyboardInterrupt:
        pass
    finally:
        installed.remove()
    return 0


if __name__ == "__main__":
    sys.exit(main())
