"""``backpack-harness serve``: the loopback Backpack server on 127.0.0.1 until Ctrl-C, fed by the seeded
market or, with ``--recording``, by a recording (docs/serve-recording.md)."""

from __future__ import annotations

import argparse

from harness.cli import Subcommand, register


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    from harness.loopback.server import add_serve_arguments

    add_serve_arguments(parser)


def _serve(args: argparse.Namespace) -> int:
    from harness.loopback.server import main_serve

    return main_serve(args)


register(Subcommand("serve", "run the loopback Backpack server on 127.0.0.1 (seeded, or --recording)",
                    _serve_arguments, _serve))
