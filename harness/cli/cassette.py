"""``backpack-harness cassette export|import``: the REST half of a recording to and from vcrpy cassettes.

``export RECORDING --out CASSETTE.yaml`` writes every completed REST exchange with vcrpy's own
persister and serializer (``.yaml``/``.yml`` or ``.json``); ``import CASSETTE --into RECORDING --out NEW``
writes a new recording: RECORDING's WebSocket timeline with its REST half replaced by the cassette's.
See ``harness.recording.cassettes`` for how times and transport errors travel in a cassette.
"""

from __future__ import annotations

import argparse
import sys

from harness.cli import EXIT_CANTCREAT, EXIT_OK, CliError, Subcommand, register
from harness.cli._recordings import cli_error
from harness.recording.cassettes import CassetteError, export_cassette, import_cassette
from harness.recording.reader import RecordingError


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    export = sub.add_parser("export", help="write a recording's REST exchanges to a vcrpy cassette")
    export.add_argument("recording", metavar="RECORDING")
    export.add_argument("--out", required=True, metavar="CASSETTE", help="a .yaml, .yml or .json file")
    imp = sub.add_parser("import", help="replace a recording's REST exchanges with a cassette's")
    imp.add_argument("cassette", metavar="CASSETTE")
    imp.add_argument("--into", required=True, metavar="RECORDING", help="the recording whose WebSocket half is kept")
    imp.add_argument("--out", required=True, metavar="NEW", help="the new recording (.jsonl or .jsonl.zst)")


def _run(args: argparse.Namespace) -> int:
    try:
        if args.action == "export":
            count = export_cassette(args.recording, args.out)
            print(f"{count} REST exchanges written to {args.out}", file=sys.stderr)
        else:
            count, dropped = import_cassette(args.cassette, args.into, args.out)
            print(f"{args.out}: {count} exchanges from {args.cassette} in place of {dropped} REST events of "
                  f"{args.into}", file=sys.stderr)
    except (RecordingError, CassetteError) as exc:
        raise cli_error(exc) from None
    except OSError as exc:
        raise CliError(EXIT_CANTCREAT, f"cannot write {args.out}: {exc.strerror or exc}") from None
    except ValueError as exc:  # e.g. an output name that is neither .jsonl nor .jsonl.zst
        raise CliError(EXIT_CANTCREAT, str(exc)) from None
    return EXIT_OK


register(Subcommand("cassette", "convert the REST half of a recording to and from vcrpy cassettes",
                    _add_arguments, _run))
