"""Run a fault program through a client at one of three levels, checking the invariants as it goes.

* ``run_core``: the static model (``program.py``) through a ``CoreClient``: the sans-I/O core by
  default (``NativeCore``: ``backpack.protocol.router.Router`` + ``Normalizer``), thousands of
  scenarios a second. The runner plays the exchange and a minimal shell: frames in timeline order,
  a disconnect where the client notices one, and depth snapshots answered by the snapshot rule
  ``SNAPSHOT_LATENCY_S`` of virtual time after the client asks (failed ones asked again with the feed's
  backoff, without its jitter).
* ``run_feed``: the real ``BackpackFeed`` on a ``ScenarioTransport`` (``transport.py``): the exchange
  reacts to what the feed does (its subscriptions, reconnects, retries) on virtual time.
* ``run_socket`` (``sockets.py``): the real feed on real sockets against the loopback server playing
  the recording, for faults that only exist on a socket.

Another client plugs in at the core level: anything with ``CoreClient``'s methods (frames, snapshot
answers and disconnects in; normalized schema-v1 records out) runs the same scenarios and is judged by
the same ``Checker``; ``books()`` is optional and only makes invariant (a) stricter.
"""

from __future__ import annotations

import asyncio
import functools
import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Protocol

from backpack.protocol.events import FetchSnapshot
from backpack.protocol.normalized import Normalizer, dumps
from backpack.protocol.router import Router
from backpack.protocol.symbols import normalize_symbol
from harness.scenarios.invariants import Checker, InvariantBroken
from harness.scenarios.oracle import Reference
from harness.scenarios.program import Answer, Faulted, Program, apply
from harness.transports.replay import ReplayError

SNAPSHOT_LATENCY_S = 0.05
"""Virtual seconds between a depth request and its answer (the recordings' answers took 20-130 ms)."""
REST_TIMEOUT_S = 10.0  # backpack.config rest_timeout default: a timed-out snapshot fails this late
SNAPSHOT_BACKOFF_S = 0.25  # the feed's snapshot retry base: attempt n waits 0.25 * 2**(n-2) (n >= 2)
SNAPSHOT_BACKOFF_MAX_S = 30.0

Record = dict[str, Any]
Books = tuple[dict[Decimal, Decimal], dict[Decimal, Decimal]]


class CoreClient(Protocol):
    """A client driven by ``run_core``: one instance per run (``name`` labels it in reports)."""

    name: str

    def frame(self, data: str | bytes, receipt: int) -> list[Record]:
        """A WebSocket text frame arrived; the records it produced."""
        ...

    def snapshot(self, symbol: str, answer: Answer, receipt: int) -> list[Record]:
        """The depth snapshot it asked for (``answer.status`` 200: ``answer.body`` is the REST body)."""
        ...

    def snapshot_failed(self, symbol: str, answer: Answer) -> list[Record]:
        """Its depth request failed: ``answer`` is a 5xx (``status``, ``body``) or a timeout (``timeout``)."""
        ...

    def disconnected(self) -> list[Record]:
        """The connection was lost (the runner reconnects it; frames of the next moments are lost)."""
        ...

    def requests(self) -> list[tuple[str, int]]:
        """Depth snapshots asked for since the last call: (native symbol, attempt)."""
        ...

    def books(self, symbol: str) -> Books | None:
        """Optional: its whole book of ``symbol`` now (None: only the records are checked)."""
        ...


_symbol = functools.lru_cache(maxsize=4096)(normalize_symbol)  # the rule, once per symbol: it is on every record


class NativeCore:
    """The project's sans-I/O core as a ``CoreClient``."""

    name = "native"

    def __init__(self, faulted: Faulted, depth: int | None = 10) -> None:
        self.router = Router()
        self.normalizer = Normalizer.for_router(self.router, depth=depth, symbol=_symbol)
        self._asks: list[tuple[str, int]] = []

    def _out(self, outputs: list[Any]) -> list[Record]:
        records: list[Record] = []
        for out in outputs:
            if type(out) is FetchSnapshot:
                self._asks.append((out.symbol, out.attempt))
            else:
                records.extend(self.normalizer.record(out))
        return records

    def frame(self, data: str | bytes, receipt: int) -> list[Record]:
        return self._out(self.router.receive_frame(data, receipt))

    def snapshot(self, symbol: str, answer: Answer, receipt: int) -> list[Record]:
        try:
            import orjson

            body = orjson.loads(answer.body)
        except ValueError:
            body = answer.body.decode("utf-8", "replace")  # what a REST client hands on for a non-JSON body
        return self._out(self.router.receive_snapshot(symbol, body, receipt))

    def snapshot_failed(self, symbol: str, answer: Answer) -> list[Record]:
        return self._out(self.router.snapshot_failed(symbol))

    def disconnected(self) -> list[Record]:
        return self._out(self.router.connection_lost())

    def requests(self) -> list[tuple[str, int]]:
        asks, self._asks = self._asks, []
        return asks

    def books(self, symbol: str) -> Books | None:
        books = self.router.books
        if symbol not in books:
            return None
        book = books.get(symbol).book
        return book._bids, book._asks


@dataclass
class Run:
    """What one run produced: the client's schema-v1 lines and the checker that watched it."""

    level: str
    client: str
    lines: list[str] = field(default_factory=list)
    checker: Checker | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    exchange: dict[str, Any] = field(default_factory=dict)  # what the exchange saw (full feed: connections, ...)

    @property
    def violation(self) -> InvariantBroken | None:
        return None if self.checker is None else self.checker.violation


def _backoff_us(attempt: int) -> int:
    if attempt <= 1:
        return 0
    return round(min(SNAPSHOT_BACKOFF_MAX_S, SNAPSHOT_BACKOFF_S * 2 ** (attempt - 2)) * 1e6)


def run_core(faulted: Faulted, client: Callable[[Faulted], Any] | None = None, *, depth: int | None = 10,
             raise_at_once: bool = True, keep_lines: bool = True,
             checker: Callable[..., Checker] = Checker) -> Run:
    """Play ``faulted`` to a core client (``NativeCore`` unless ``client`` builds another from it).

    ``keep_lines=False`` skips encoding the records as lines (a property run needs only the checks);
    ``checker`` builds the judge (``divergence.Tally``: one that counts every wrong book). A client with
    a ``close()`` is closed at the end."""
    impl = NativeCore(faulted, depth) if client is None else client(faulted)
    try:
        return _run_core(faulted, impl, depth, checker(faulted, depth=depth, raise_at_once=raise_at_once),
                         keep_lines)
    finally:
        close = getattr(impl, "close", None)
        if close is not None:
            close()


def _run_core(faulted: Faulted, impl: Any, depth: int | None, checker: Checker, keep_lines: bool) -> Run:
    run = Run("core", impl.name, checker=checker)
    exchange = faulted.exchange()
    lines = run.lines
    books = getattr(impl, "books", None)
    state = {"position": faulted.start, "now": 0, "receipt": 0}
    # (due µs, order, what, symbol, edit): "ask" = the request reaches the exchange, "answer" = it answers
    queue: list[tuple[int, int, str, str, Any]] = []
    asking: set[str] = set()
    order = [0]

    def push(due: int, what: str, symbol: str, edit: Any = None) -> None:
        order[0] += 1
        heapq.heappush(queue, (due, order[0], what, symbol, edit))

    def call(where: str, fn: Callable[..., list[Record]], *args: Any) -> None:
        try:
            records = fn(*args)
        except InvariantBroken:
            raise
        except Exception as exc:  # noqa: BLE001 - (d): a client must never raise on what the exchange sends
            checker.exception(where, exc)
            return
        for rec in records:
            book = None
            if books is not None and rec.get("type") == "book":
                book = books(str(rec.get("symbol")).replace("-", "_"))
            checker.record(rec, book)
            if keep_lines:
                lines.append(dumps(rec))
        for symbol, attempt in impl.requests():
            if symbol not in asking:  # one request per symbol at a time, as the feed does
                asking.add(symbol)
                push(state["now"] + _backoff_us(attempt), "ask", symbol)

    def until(t_us: int | None) -> None:
        while queue and (t_us is None or queue[0][0] <= t_us):
            due, _, what, symbol, edit = heapq.heappop(queue)
            state["now"] = max(state["now"], due)
            if what == "ask":
                edit = exchange.plan(symbol)
                timeout = edit is not None and edit.get("answer") == "timeout"
                latency = exchange.delay(edit, REST_TIMEOUT_S if timeout else SNAPSHOT_LATENCY_S)
                push(due + round(latency * 1e6), "answer", symbol, edit)
                continue
            answer = exchange.answer(symbol, state["position"], edit)
            asking.discard(symbol)
            checker.snapshot(symbol, answer)
            if answer.timeout or answer.status != 200:
                call(f"the failed snapshot of {symbol}", impl.snapshot_failed, symbol, answer)
            else:
                call(f"the snapshot of {symbol}", impl.snapshot, symbol, answer, state["receipt"])

    for index, step in enumerate(faulted.steps):
        t_us = step.t // 1000
        until(t_us)
        state["now"] = max(state["now"], t_us)
        state["position"] = max(state["position"], step.origin)
        if step.kind == "frame" and not (step.lost or step.reconnect_lost):
            checker.step(index, step, True)
            if step.receipt is not None:
                state["receipt"] = step.receipt
            call(checker.where or f"step {index}", impl.frame, step.data, state["receipt"])
            checker.settle_error()
            continue
        checker.step(index, step, False)
        if step.kind in ("close", "drop"):
            checker.disconnected(f"the connection was lost at step {index}")
            call(f"the disconnect at step {index}", impl.disconnected)
    checker.finish()
    run.stats = dict(checker.counts)
    run.exchange = {"depth_requests": exchange.requests}
    return run


def core_run(reference: Reference, program: Program, **kwargs: Any) -> Run:
    return run_core(apply(program, reference), **kwargs)


def checked_lines(normalizer: Normalizer, output: Any, feed: Any, checker: Checker) -> Iterator[str]:
    """One feed output as schema-v1 lines, each shown to the checker first with the feed's own book."""
    for rec in normalizer.records((output,)):
        book = None
        if rec.get("type") == "book":
            sync = feed.router.books.get(str(rec.get("symbol")).replace("-", "_"))
            book = (sync.book._bids, sync.book._asks)
        checker.record(rec, book)
        yield dumps(rec)


async def run_feed_async(faulted: Faulted, *, depth: int | None = 10, sink: Callable[[str], None] | None = None,
                         raise_violation: bool = True) -> Run:
    """Play ``faulted`` to the real ``BackpackFeed`` on a ``ScenarioTransport``; raises the first violation
    (``raise_violation=False``: it is in ``run.violation``). The walk stops at the first one."""
    from harness.replay import build_feed, feed_spec, run_feed, throwaway_keys
    from harness.scenarios.transport import ScenarioStopped, ScenarioTransport

    ref = faulted.reference
    spec = feed_spec(ref.header, ref.events)
    keys = throwaway_keys() if spec.private else None
    checker = Checker(faulted, depth=depth, raise_at_once=False)
    run = Run("feed", "native feed", checker=checker)
    normalizer: Normalizer | None = None
    feed: Any = None

    def on_output(output: Any) -> None:
        if normalizer is None:
            return
        for line in checked_lines(normalizer, output, feed, checker):
            run.lines.append(line)
            if sink is not None:
                sink(line)

    transport = ScenarioTransport(faulted, checker, secrets=keys or ())
    feed = build_feed(spec, transport, on_output, keys)
    cfg = feed.bp_config  # the feed's own settings: its watchdog, its timeout, when it gives private up
    transport.configure(watchdog_s=cfg.ws_watchdog_seconds or 0, rest_timeout_s=cfg.rest_timeout,
                        private_attempts=cfg.private_subscribe_retries + 1)
    normalizer = Normalizer.for_router(feed.router, depth=depth)
    stopper = asyncio.Event()
    task = asyncio.ensure_future(run_feed(feed, stopper))
    try:
        await transport.play(stopper, task)
    except ScenarioStopped:
        pass
    except ReplayError as exc:  # the feed did something no exchange allows (a looping reconnect, ...)
        if checker.violation is None:
            checker.broken("e", f"the replay stopped: {exc}")
    finally:
        if not task.done():
            task.cancel()
        await asyncio.wait({task})
        await transport.close()
    if not task.cancelled() and task.exception() is not None and checker.violation is None:
        checker.exception("the feed's run", task.exception())  # type: ignore[arg-type]
    if checker.violation is None:
        # an exception the glue caught, one the book machine turned into a reset, one that restarted the feed
        internal = (feed.metrics.get("internal_errors", 0) + feed.router.books.stats().get("internal_errors", 0)
                    + getattr(feed, "restarts", 0))
        checker.finish(internal_errors=internal)
    run.stats = dict(checker.counts)
    run.exchange = {"connections": len(transport.connections), "closes": list(transport.closes),
                    "rejections": transport.rejections, "depth_requests": transport.exchange.requests,
                    "streams": [sorted(c.named) for c in transport.connections]}
    if raise_violation:
        checker.check()
    return run


def run_feed_scenario(faulted: Faulted, **kwargs: Any) -> Run:
    return asyncio.run(run_feed_async(faulted, **kwargs))


def deterministic(first: Run, second: Run) -> None:
    """Invariant (f) over two runs of one program: the same bytes, line by line."""
    if first.lines == second.lines:
        return
    n = next((i for i, (a, b) in enumerate(zip(first.lines, second.lines, strict=False)) if a != b),
             min(len(first.lines), len(second.lines)))
    a = first.lines[n] if n < len(first.lines) else "<no line>"
    b = second.lines[n] if n < len(second.lines) else "<no line>"
    raise InvariantBroken("f", f"two runs differ at line {n + 1}: {a[:160]} vs {b[:160]}")


__all__ = ["REST_TIMEOUT_S", "SNAPSHOT_LATENCY_S", "CoreClient", "NativeCore", "Run", "core_run", "deterministic",
           "run_core"]
