"""``backpack-harness replay``: a recording through the real feed, as schema-v1 lines on stdout.

Lines are printed as the feed produces them, so a damaged recording still prints everything before the
damage, then exits 65 with the damage on one stderr line. A conformance failure (the feed did something
the recording does not have) exits 5, after the lines before it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from backpack.logs import install_json_logging
from harness.cli import (
    EXIT_CANTCREAT,
    EXIT_DATAERR,
    EXIT_OK,
    EXIT_USAGE,
    CliError,
    Subcommand,
    register,
    stdout_to_devnull,
)
from harness.cli._recordings import cli_error, depth, offset, positive, progress_bar
from harness.recording.reader import RecordingError, read_recording
from harness.transports.replay import MODES, ReplayError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", metavar="RECORDING", help="a .jsonl or .jsonl.zst recording")
    parser.add_argument("--depth", type=depth, default=10, help="book levels per side in book lines (default 10)")
    parser.add_argument("--from", dest="start", type=offset, metavar="T",
                        help="print from this time on (seconds from the recording's start; ms/s/m/h suffixes)")
    parser.add_argument("--to", dest="stop", type=offset, metavar="T", help="end the input at this time")
    parser.add_argument("--mode", choices=MODES, default="none",
                        help="REST record mode, vcrpy's meanings (default none: never dial out)")
    parser.add_argument("--speed", type=positive, metavar="X",
                        help="pace the replay at real time x X (default: as fast as possible)")
    parser.add_argument("--save-cassette", metavar="FILE",
                        help="write the REST exchanges (recorded and new episodes) to a vcrpy cassette")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="progress bar on stderr (default: when stderr is a terminal)")
    parser.add_argument("--faults", metavar="PROGRAM.json",
                        help="replay under a fault program (docs/scenarios.md) and check the invariants: a broken "
                        "one is reported on stderr and exits 5")
    parser.add_argument("--level", choices=("feed", "core"), default="feed",
                        help="with --faults: through the full feed (default) or the protocol core alone")
    parser.add_argument("--client", choices=("native", "ccxt"), default="native",
                        help="with --faults --level core: the client under test (ccxt: ccxt.pro's backpack handling, "
                        "judged by the same invariants)")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="the feed's own log on stderr: errors and warnings (-v) or info too (-vv); "
                        "by default stderr carries only the replay's verdict")


class _Stdout:
    """Writes lines as they come; a closed pipe (``| head``) ends the output quietly."""

    def __init__(self, flush_each: bool = False) -> None:
        self.closed = False
        self.flush_each = flush_each  # paced replays are watched as they run

    def __call__(self, line: str) -> None:
        if self.closed:
            return
        try:
            sys.stdout.write(line + "\n")
            if self.flush_each:
                sys.stdout.flush()
        except BrokenPipeError:
            self.gone()

    def gone(self) -> None:
        self.closed = True
        stdout_to_devnull()

    def flush(self) -> None:
        if not self.closed:
            try:
                sys.stdout.flush()
            except BrokenPipeError:
                self.gone()


def _run(args: argparse.Namespace) -> int:
    from harness.replay import ReplaySetupError, replay_stream, stop_ns
    from harness.transports.replay_timeline import ReplayTimeline

    if args.log_level is None:  # the replayed feed's own log only when asked (-v): stderr carries the verdict
        install_json_logging((logging.CRITICAL + 1, logging.WARNING, logging.INFO)[min(args.verbose, 2)])
    try:  # a plain replay is streamed: indexed in one pass, the frames read again as they play
        if args.faults is not None:
            rec = read_recording(args.recording)
        else:
            timeline = ReplayTimeline.scan(args.recording, stop_ns(args.stop))
    except RecordingError as exc:
        raise cli_error(exc) from None
    if args.start is not None and args.stop is not None and args.stop <= args.start:
        if args.faults is None:
            timeline.close()
        raise CliError(EXIT_USAGE, "--to must be later than --from")
    if args.faults is not None:
        from harness.scenarios.cli import replay_faults

        return replay_faults(args, rec, _Stdout())
    inner = None
    if args.mode != "none":
        from backpack.live import LiveTransport

        inner = LiveTransport()
    update, close_bar = progress_bar(args.progress, timeline.index.frames)
    out = _Stdout(flush_each=args.speed is not None)
    async def main() -> object:
        try:
            return await replay_stream(timeline, out, depth=args.depth, start=args.start, stop=args.stop,
                                       mode=args.mode, speed=args.speed, inner=inner, progress=update)
        finally:
            if inner is not None:
                await inner.close()

    try:
        result = asyncio.run(main())
    except ReplaySetupError as exc:
        raise CliError(EXIT_DATAERR, f"{os.path.basename(args.recording)}: {exc}") from None
    except ReplayError as exc:
        raise cli_error(exc) from None
    finally:
        close_bar()
        out.flush()
    if args.save_cassette:
        from harness.recording.cassettes import CassetteError, save_cassette

        cassette = result.cassette  # type: ignore[attr-defined]
        try:
            save_cassette(args.save_cassette, cassette.requests, cassette.responses)
        except (CassetteError, OSError) as exc:
            raise CliError(EXIT_CANTCREAT, f"cannot write cassette {args.save_cassette}: {exc}") from None
    if result.damage is not None:  # type: ignore[attr-defined]
        raise CliError(EXIT_DATAERR, result.damage.message)  # type: ignore[attr-defined]
    return EXIT_OK


register(Subcommand("replay", "replay a recording through the real feed and print schema-v1 events",
                    _add_arguments, _run))
