"""Where a native depth frame's time goes, layer by layer, through public entry points only.

cProfile shows which functions are hot but inflates every Python call; this times whole layers
without instrumentation (CPU time, best of several runs), so the owners of ``messages.py`` and
``book.py`` can see how far each layer is from the JSON floor and re-measure after a change.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable

import orjson

from backpack.protocol.book import SYNCED
from backpack.protocol.events import DepthDelta
from backpack.protocol.messages import Decoder
from backpack.protocol.speedups import compiled

from .contenders import RECEIPT, Native
from .frames import Dataset


def _best(run: Callable[[], float], repeats: int) -> float:
    """Smallest CPU seconds over ``repeats`` calls of ``run`` (which returns its own timing)."""
    out = []
    for _ in range(repeats):
        gc.collect()
        out.append(run())
    return min(out)


def _timed(body: Callable[[], object]) -> float:
    c0 = time.process_time()
    body()
    return time.process_time() - c0


def measure(data: Dataset, repeats: int = 5) -> dict[str, float]:
    """µs per depth frame: JSON alone, Decoder.decode, the book step the Router takes, Router.receive_frame
    (of the active core, backpack.protocol.speedups.IMPLEMENTATION)."""
    frames = data.bp_depth
    n = len(frames)

    def json_only() -> float:
        loads = orjson.loads

        def body() -> None:
            for f in frames:
                loads(f)

        return _timed(body)

    def decode() -> float:
        decode = Decoder().decode
        decode(data.bp_primer, RECEIPT)

        def body() -> None:
            for f in frames:
                decode(f, RECEIPT)

        return _timed(body)

    dec = Decoder()
    dec.decode(data.bp_primer, RECEIPT)
    deltas = [e for f in frames for e in dec.decode(f, RECEIPT)]
    assert len(deltas) == n and all(type(d) is DepthDelta for d in deltas)

    def book() -> float:
        c = Native()
        asyncio.run(c.setup(data))
        # the Router hands decoded deltas straight to the symbol's BookSync (through the compiled book step
        # when the compiled core is active)
        sync = c.router.books.get(deltas[0].symbol)

        def body() -> None:
            if compiled is None:
                on_delta = sync.on_decoded_delta
                for d in deltas:
                    on_delta(d)
            else:
                step = compiled.synced_delta
                for d in deltas:
                    step(sync, d, SYNCED)

        return _timed(body)

    def router() -> float:
        c = Native()
        asyncio.run(c.setup(data))
        receive = c.router.receive_frame

        def body() -> None:
            for f in frames:
                receive(f, RECEIPT)

        return _timed(body)

    us = {name: _best(fn, repeats) / n * 1e6 for name, fn in
          (("json", json_only), ("decode", decode), ("book", book), ("router", router))}  # fmt: skip
    us["decode_beyond_json"] = us["decode"] - us["json"]
    us["router_glue"] = us["router"] - us["decode"] - us["book"]
    return us
