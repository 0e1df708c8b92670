"""``import backpack`` registers BACKPACK when cryptofeed is there, and only a missing feed stack skips it.

The core-alone side (cryptofeed, aiohttp, websockets and asyncio absent) is in test_protocol_purity.py.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Runs ``import backpack`` with the named modules made absent; prints what happened.
_IMPORT_WITH_ABSENT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    absent = set(json.loads(sys.argv[2]))

    class Absent(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in absent or name.split(".")[0] in absent:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    for m in [m for m in sys.modules if m in absent or m.split(".")[0] in absent]:
        del sys.modules[m]
    sys.meta_path.insert(0, Absent())
    sys.path.insert(0, sys.argv[1])
    try:
        import backpack
    except ImportError as exc:
        print(json.dumps({"raised": type(exc).__name__, "name": exc.name}))
    else:
        print(json.dumps({"raised": None, "registered": backpack.registered, "id": backpack.BACKPACK}))
    """
)


def import_with_absent(*names: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_WITH_ABSENT, str(REPO), json.dumps(names)],
        capture_output=True, text=True, cwd=REPO, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_backpack_exports_its_exchange_id_and_registers_it() -> None:
    from cryptofeed.exchanges import EXCHANGE_MAP

    import backpack
    from backpack.registry import Backpack

    assert backpack.BACKPACK == "BACKPACK" and "BACKPACK" in backpack.__all__
    assert backpack.registered is True
    assert EXCHANGE_MAP[backpack.BACKPACK] is Backpack


def test_add_feed_by_the_exported_id() -> None:
    from cryptofeed import FeedHandler

    from backpack import BACKPACK, compat
    from backpack.feed import BackpackFeed

    async def on_trade(trade: object, receipt: float) -> None:
        pass

    fh = FeedHandler(config={"log": {"disabled": True}})
    fh.add_feed(BACKPACK, symbols=["SOL-USDC"], channels=[compat.TRADES], callbacks={compat.TRADES: on_trade})
    assert isinstance(fh.feeds[0], BackpackFeed) and fh.feeds[0].id == BACKPACK


@pytest.mark.parametrize("missing", ["cryptofeed", "aiohttp", "websockets"])
def test_a_missing_feed_stack_only_skips_registration(missing: str) -> None:
    assert import_with_absent(missing) == {"raised": None, "registered": False, "id": "BACKPACK"}


@pytest.mark.parametrize(
    "missing",
    [
        "pydantic",  # the feed's config needs it: a broken install, not an absent feed stack
        "order_book",  # a dependency of cryptofeed (both lines) that is not part of its I/O stack
        "cryptofeed.exchanges",  # a part of an installed cryptofeed: broken, not absent
        "backpack.config",  # our own module
    ],
)
def test_other_import_errors_are_not_swallowed(missing: str) -> None:
    assert import_with_absent(missing) == {"raised": "ModuleNotFoundError", "name": missing}


def test_the_subprocess_really_imports_the_feed_stack() -> None:
    """Control for the tests above: with nothing absent the same script registers."""
    assert import_with_absent() == {"raised": None, "registered": True, "id": "BACKPACK"}
