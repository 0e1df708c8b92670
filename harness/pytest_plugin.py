"""The pytest plugin (entry point ``pytest11: backpack``): recordings as test fixtures, and the loopback server.

Mark a test with ``@pytest.mark.backpack_recording("name")`` and take the ``backpack_recording``
fixture: it hands the test a transport, the endpoints to configure the feed with, and ``run(feed)``.
What that transport does depends on ``--record-mode`` (pytest-recording's words and meanings; default
``none``):

========== =======================================================================================
none       replay ``name`` (it must exist); anything the recording does not hold (a REST request, a
           connection) is refused at the transport, so a test that would dial out fails there
once       replay if the recording exists, else record it against a fresh loopback server
new_episodes replay; REST requests the recording lacks go to the live transport (WebSockets are
           always served from the recording)
all        record again, overwriting the file
rewrite    delete the file, then record
========== =======================================================================================

Recordings live in ``--recordings-dir`` (default ``recordings/`` under the rootdir); ``name`` may carry
the ``.jsonl``/``.jsonl.zst`` suffix, else ``.jsonl.zst`` is used. Recording runs the real record path
(``harness.recording.recorder``) against a loopback server started by the fixture
(``backpack_recording(name, seed=..., private=...)``), stepped by ``run(feed, steps=N)``.

Also here for any test: ``backpack_server`` (frozen: ``rate=0``, the test calls ``server.step(n)``),
``live_backpack_server`` (ticks on its own) and the ``start_server`` / ``running_server`` helpers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET, BackpackServer

__all__ = [
    "MODES",
    "TEST_ACCOUNT_API_KEY",
    "TEST_ACCOUNT_SECRET",
    "BackpackRecording",
    "BackpackServer",
    "backpack_recording",
    "backpack_server",
    "live_backpack_server",
    "running_server",
    "start_server",
]

MODES = ("none", "once", "new_episodes", "all", "rewrite")
_MARKER = "backpack_recording"


# --- the loopback server --------------------------------------------------------------------------


async def start_server(**kwargs: Any) -> BackpackServer:
    """A started server on 127.0.0.1 and an ephemeral port; the caller must ``await server.stop()``.

    Keyword arguments go to ``BackpackServer`` (seed, rate, ping_interval, pong_timeout, ints_as_strings,
    market_config, account_keys, clock_ms, ...).
    """
    return await BackpackServer(**kwargs).start()


@asynccontextmanager
async def running_server(**kwargs: Any) -> AsyncIterator[BackpackServer]:
    server = await start_server(**kwargs)
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture
async def backpack_server() -> AsyncIterator[BackpackServer]:
    async with running_server(seed=0, rate=0, ping_interval=0.5, pong_timeout=2.0) as server:
        yield server


@pytest_asyncio.fixture
async def live_backpack_server() -> AsyncIterator[BackpackServer]:
    async with running_server(seed=0, rate=100.0, ping_interval=0.5, pong_timeout=2.0) as server:
        yield server


# --- options and marker ---------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("backpack", "Backpack recordings (cryptofeed-backpack)")
    try:  # pytest-recording defines the same option with the same meanings: share it when both are installed
        group.addoption("--record-mode", action="store", default=None, choices=MODES,
                        help="none (default): replay only; once; new_episodes; all; rewrite (as pytest-recording)")
    except ValueError:
        pass
    group.addoption("--recordings-dir", action="store", default=None,
                    help="where backpack_recording names are looked up (default: <rootdir>/recordings)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{_MARKER}(name, seed=0, private=False): replay (or, per --record-mode, record) the Backpack recording "
        "'name' for the backpack_recording fixture",
    )


def _path(config: pytest.Config, name: str) -> Path:
    base = config.getoption("--recordings-dir") or Path(str(config.rootpath)) / "recordings"
    path = Path(base) / name
    if not path.name.endswith((".jsonl", ".jsonl.zst")):
        path = path.with_name(path.name + ".jsonl.zst")
    return path


# --- the fixture ------------------------------------------------------------------------------------


@dataclass
class BackpackRecording:
    """What a marked test gets. ``mode`` is "replay" or "record". Build the feed with ``feed(...)`` (the
    ``add_feed`` keyword arguments: symbols/channels or subscription, callbacks, ...), then ``await run(feed)``.
    ``normalized`` collects the feed's schema-v1 events as it delivers them, in both modes."""

    name: str
    path: Path
    record_mode: str
    mode: str
    rest_url: str
    ws_url: str
    private: bool
    server: BackpackServer | None = None
    recording: Any = None  # replay: the read Recording
    transport: Any = None  # set by feed()
    normalized: list[str] = field(default_factory=list)
    depth: int = 10
    _closers: list[Any] = field(default_factory=list)

    def section(self, **extra: Any) -> dict[str, Any]:
        return {"rest_url": self.rest_url, "ws_url": self.ws_url, **extra}

    def feed(self, **kwargs: Any) -> Any:
        """A ``BackpackFeed`` on this session's transport, configured for its endpoints (plus the test
        account's keys when recording private channels; a throwaway pair on replay, since recorded
        signatures are redacted)."""
        from backpack.feed import BackpackFeed
        from backpack.protocol.normalized import Normalizer

        if self.transport is not None:
            raise RuntimeError("one feed per backpack_recording session")
        section = self.section(**kwargs.pop("backpack_config", {}))
        secrets: tuple[str, ...] = ()
        if self.private:
            if self.mode == "record":
                section.update(api_key=TEST_ACCOUNT_API_KEY, private_key=TEST_ACCOUNT_SECRET)
            else:
                from harness.replay import throwaway_keys

                seed, key = throwaway_keys()
                section.update(api_key=key, private_key=seed)
                secrets = (seed, key)
        subscription = kwargs.get("subscription") or {c: list(kwargs.get("symbols") or ()) for c in
                                                       kwargs.get("channels") or ()}
        self.transport = self._record_transport(subscription) if self.mode == "record" else self._replay_transport(secrets)
        user_callback = kwargs.pop("protocol_callback", None)
        normalizer: Normalizer | None = None

        def collect(output: Any) -> Any:
            if normalizer is not None:
                self.normalized.extend(normalizer.lines((output,)))
            return user_callback(output) if user_callback is not None else None

        kwargs.setdefault("config", {"log": {"disabled": True}})
        feed = BackpackFeed(transport=self.transport, backpack_config=section, protocol_callback=collect, **kwargs)
        normalizer = Normalizer(feed.router.books, depth=self.depth)
        return feed

    def _replay_transport(self, secrets: tuple[str, ...]) -> Any:
        from harness.transports.replay import ReplayTransport

        inner = None
        if self.record_mode == "new_episodes":
            from backpack.live import LiveTransport

            inner = LiveTransport()
            self._closers.append(inner)
        transport = ReplayTransport(self.recording, mode="new_episodes" if inner is not None else "none",
                                    inner=inner, secrets=secrets)
        transport.name = str(self.path)
        self._closers.insert(0, transport)
        return transport

    def _record_transport(self, subscription: dict[str, list[str]]) -> Any:
        from backpack.live import LiveTransport
        from harness.recording.recorder import header_for
        from harness.recording.writer import RecordingWriter
        from harness.transports.recording import RecordingTransport

        self.path.parent.mkdir(parents=True, exist_ok=True)
        writer = RecordingWriter(self.path, header_for(self.rest_url, self.ws_url, subscription,
                                                       {"recorded_by": "harness.pytest_plugin"}),
                                 secrets=(TEST_ACCOUNT_SECRET, TEST_ACCOUNT_API_KEY))
        live = LiveTransport()
        transport = RecordingTransport(live, writer, close_writer=True)
        self._closers[:0] = [transport, live]
        return transport

    async def run(self, feed: Any, *, steps: int = 300) -> None:
        """Replay: serve the whole recording to ``feed`` and stop it (a conformance failure raises here).
        Record: step the loopback server ``steps`` times while ``feed`` runs, then stop it."""
        from harness.replay import run_feed

        stop = asyncio.Event()
        task = asyncio.ensure_future(run_feed(feed, stop))
        try:
            if self.mode == "replay":
                await self.transport.play(stop, task)
            else:
                await self._drive(task, steps)
        finally:
            stop.set()
            await asyncio.wait({task})
        task.result()

    async def _drive(self, task: asyncio.Future[Any], steps: int) -> None:
        server = self.server
        assert server is not None
        async with asyncio.timeout(30):  # the feed subscribes first: frames before that are lost anyway
            while not task.done() and not any(c.subscriptions for c in server.connections.values()):
                await asyncio.sleep(0.01)
        done = 0
        while done < steps and not task.done():
            n = min(25, steps - done)
            server.step(n)
            done += n
            await server.flush()
            await asyncio.sleep(0.005)
        await asyncio.sleep(0.2)  # let the last frames reach the feed

    async def aclose(self) -> None:
        for closer in self._closers:
            await closer.close()


@pytest_asyncio.fixture
async def backpack_recording(request: pytest.FixtureRequest) -> AsyncIterator[BackpackRecording]:
    marker = request.node.get_closest_marker(_MARKER)
    if marker is None or not marker.args:
        raise pytest.UsageError(f"the backpack_recording fixture needs @pytest.mark.{_MARKER}('name') on the test")
    name = str(marker.args[0])
    record_mode = request.config.getoption("--record-mode", default=None) or "none"
    path = _path(request.config, name)
    private = bool(marker.kwargs.get("private", False))
    if record_mode == "rewrite" and path.exists():
        path.unlink()
    if record_mode == "none" and not path.exists():
        pytest.fail(f"recording {path} does not exist and --record-mode is none: run with --record-mode=once "
                    "to record it", pytrace=False)
    if record_mode in ("none", "once", "new_episodes") and path.exists():
        from harness.recording.reader import read_recording

        recording = read_recording(path)
        header = recording.header
        session = BackpackRecording(name, path, record_mode, "replay", header.rest_url or "", header.ws_url or "",
                                    private, recording=recording)
        try:
            yield session
        finally:
            await session.aclose()
        return
    async with running_server(seed=int(marker.kwargs.get("seed", 0)), rate=0, ping_interval=2.0,
                              pong_timeout=60.0) as server:
        session = BackpackRecording(name, path, record_mode, "record", server.rest_url, server.ws_url, private,
                                    server=server)
        try:
            yield session
        finally:
            await session.aclose()
