"""``backpack-harness record``: a live session to a recording (plus, optionally, what the feed delivered).

Symbols and channels are spelled as cryptofeed spells them (``SOL-USDC``, ``l2_book``). Private channels
need credentials: ``--config`` (a cryptofeed YAML with a ``backpack:`` section) or ``--secret-env`` /
``--secret-file`` with ``--api-key``; they are redacted from the file as it is written.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

import yaml

from backpack.config import PRODUCTION_REST_URL, PRODUCTION_WS_URL, BackpackConfig, ConfigError
from backpack.protocol.subscriptions import CHANNELS
from harness.cli import EXIT_CANTCREAT, EXIT_OK, EXIT_USAGE, CliError, Subcommand, _positive_seconds, register
from harness.cli._progress import progress


def _channel(text: str) -> str:
    if text not in CHANNELS:
        raise argparse.ArgumentTypeError(f"unknown channel {text!r}; valid: {', '.join(CHANNELS)}")
    return text


def _subscription_item(text: str) -> tuple[str, list[str]]:
    channel, sep, symbols = text.partition("=")
    if not sep or not symbols:
        raise argparse.ArgumentTypeError(f"--subscribe takes CHANNEL=SYMBOL[,SYMBOL...], got {text!r}")
    return _channel(channel), [s for s in symbols.split(",") if s]


def _arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rest", default=PRODUCTION_REST_URL, help=f"REST base URL (default {PRODUCTION_REST_URL})")
    p.add_argument("--ws", default=PRODUCTION_WS_URL, help=f"WebSocket URL (default {PRODUCTION_WS_URL})")
    p.add_argument("--symbols", nargs="+", default=[], metavar="SYMBOL", help="normalized symbols, e.g. SOL-USDC")
    p.add_argument("--channels", nargs="+", default=[], type=_channel, metavar="CHANNEL",
                   help="cryptofeed channel names, e.g. trades l2_book (every channel gets every symbol)")
    p.add_argument("--subscribe", action="append", default=[], type=_subscription_item,
                   metavar="CHANNEL=SYMBOLS", help="a channel with its own symbols, e.g. rfq=SOL-USDC-RFQ (repeatable)")
    p.add_argument("--duration", type=_positive_seconds, help="stop after this many seconds")
    p.add_argument("--frames", type=int, help="stop after this many WebSocket frames")
    p.add_argument("--out", type=Path, required=True, help="the recording (.jsonl or .jsonl.zst)")
    p.add_argument("--normalized", type=Path, help="also write the feed's normalized events (schema v1) here")
    p.add_argument("--depth", type=int, default=10, help="book levels per side in normalized events (default 10)")
    p.add_argument("--candle-interval", default="1m", help="kline interval for the candles channel (default 1m)")
    p.add_argument("--config", type=Path, help="cryptofeed YAML whose backpack: section holds credentials etc.")
    p.add_argument("--secret-env", metavar="VAR", help="environment variable holding the base64 private key seed")
    p.add_argument("--secret-file", metavar="FILE", help="file holding the base64 private key seed")
    p.add_argument("--api-key", metavar="KEY", help="base64 public key matching the secret")
    p.add_argument("--progress", action="store_true", default=None, help="show progress even when not a terminal")


def _config(args: argparse.Namespace) -> BackpackConfig:
    """The ``backpack:`` section of ``--config`` (if any), with the endpoints and key flags given here on top."""
    section: dict[str, object] = {}
    if args.config is not None:
        try:
            doc = yaml.safe_load(args.config.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise CliError(EXIT_USAGE, f"--config {args.config}: cannot be read ({type(exc).__name__})") from None
        except yaml.YAMLError:
            raise CliError(EXIT_USAGE, f"--config {args.config}: not valid YAML") from None
        found = next((v for k, v in doc.items() if str(k).lower() == "backpack"), None) if isinstance(doc, dict) else None
        if not isinstance(found, dict):
            raise CliError(EXIT_USAGE, f"--config {args.config}: no backpack: section (a mapping of settings)")
        section = dict(found)
    section.update(rest_url=args.rest, ws_url=args.ws)
    for flag, key in (("secret_env", "private_key_env"), ("secret_file", "private_key_file"), ("api_key", "api_key")):
        if getattr(args, flag) is not None:
            section[key] = getattr(args, flag)
    try:
        return BackpackConfig.from_dict(section)
    except ConfigError as exc:
        raise CliError(EXIT_USAGE, str(exc)) from None


def _run(args: argparse.Namespace) -> int:
    from harness.recording.recorder import Progress, record_session, subscription_of

    if args.duration is None and args.frames is None:
        raise CliError(EXIT_USAGE, "give --duration SECONDS or --frames N: a recording must end")
    if args.frames is not None and args.frames < 1:
        raise CliError(EXIT_USAGE, f"--frames must be a positive integer (got {args.frames})")
    subscription = subscription_of(args.symbols, args.channels)
    for channel, symbols in args.subscribe:
        subscription[channel] = symbols
    if not subscription or not any(subscription.values()):
        raise CliError(EXIT_USAGE, "nothing to record: give --symbols and --channels (or --subscribe)")
    config = _config(args)
    watch = Progress()
    try:
        with progress(lambda: (watch.frames, watch.bytes, watch.seconds), enabled=args.progress):
            result = asyncio.run(record_session(
                args.out, config, subscription, duration_s=args.duration, max_frames=args.frames,
                depth=args.depth, progress=watch, candle_interval=args.candle_interval,
            ))
    except ValueError as exc:  # a channel/symbol the feed refuses: the message says which
        raise CliError(EXIT_USAGE, str(exc)) from None
    except OSError as exc:  # the file cannot be created where --out points
        raise CliError(EXIT_CANTCREAT, f"cannot write {args.out} ({exc.strerror or type(exc).__name__})") from None
    if args.normalized is not None:
        args.normalized.parent.mkdir(parents=True, exist_ok=True)
        args.normalized.write_text("".join(line + "\n" for line in result.normalized))
    print(f"recorded {result.events:,} events ({result.frames:,} frames) in {result.seconds:.1f} s to {args.out}",
          file=sys.stderr)
    if result.failure is not None:
        raise CliError(EXIT_CANTCREAT, f"the recorder stopped early ({type(result.failure).__name__}); "
                                           f"{args.out} holds what was written before")
    return EXIT_OK


register(Subcommand("record", "record a live session (WS frames + REST) to a recording file", _arguments, _run))
