"""WebSocket session manager: connect, subscribe, read, reconnect, resubscribe.

Thin I/O shell around the transport. It knows nothing of frame contents beyond what it must to run
the private-channel handshake: protocol decisions stay in ``backpack.protocol``.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from .backoff import equal_jitter
from .clock import sleep_or_stop, to_us
from .protocol.auth import Signer
from .protocol.subscriptions import is_private, subscribe_frames
from .ratelog import RateLimitedLog
from .redaction import mask_url
from .transport import Transport, TransportError, WsClosed, WsFrame, WsSession

LOG = logging.getLogger("backpack.session")

FrameHandler = Callable[[WsFrame], Awaitable[None]]
ConnectHandler = Callable[[int], Awaitable[None]]  # argument: the connection number (1 = first)


@dataclass
class SessionStats:
    connects: int = 0
    reconnects: int = 0
    frames: int = 0
    private_rejections: int = 0
    private_stopped: bool = False
    last_close_code: int | None = None
    closes: list[int | None] = field(default_factory=list)


class WsSessionManager:
    def __init__(
        self,
        transport: Transport,
        url: str,
        streams: Sequence[str],
        on_frame: FrameHandler,
        *,
        on_connect: ConnectHandler | None = None,
        on_disconnect: ConnectHandler | None = None,
        signer: Signer | None = None,
        window_ms: int = 5000,
        batch_size: int = 50,
        private_retries: int = 3,
        backoff_base: float = 0.5,
        backoff_max: float = 30.0,
        max_reconnects: int = -1,
        stable_seconds: float = 30.0,
        rng: random.Random | None = None,
        log: logging.Logger | logging.LoggerAdapter | None = None,
    ) -> None:
        self.transport = transport
        self.clock = transport.clock
        self.url = url
        self.public = [s for s in streams if not is_private(s)]
        self.private = [s for s in streams if is_private(s)]
        if self.private and signer is None:
            raise ValueError("private streams need credentials: set api_key and private_key in the backpack config")
        self.on_frame = on_frame
        self.on_connect = on_connect
        self.on_disconnect = on_disconnect
        self.signer = signer
        self.window_ms = window_ms
        self.batch_size = batch_size
        self.private_retries = private_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.max_reconnects = max_reconnects
        # A connection must carry data for this long before the backoff starts over: a server that
        # accepts and closes at once (or after a burst) must not be redialled in a tight loop.
        self.stable_us = int(stable_seconds * 1_000_000)
        self.rng = rng or random.Random()
        # The feed passes a logger carrying its context (feed, path); a flapping connection is reported
        # once per cause per minute, with a count, not once per attempt.
        self.log = log if log is not None else LOG
        self._ratelog = RateLimitedLog(self.log, self.clock.now_us)
        self.stats = SessionStats()
        self.session: WsSession | None = None
        self._private_attempts = 0
        self._private_retry_task: asyncio.Task | None = None
        self._stopping = False

    def _backoff(self, attempt: int) -> float:
        return equal_jitter(self.backoff_base, attempt - 1, self.backoff_max, self.rng)

    async def _subscribe(self, session: WsSession) -> None:
        for text in subscribe_frames(self.public, batch_size=self.batch_size):
            await session.send(text)
        if self.private and not self.stats.private_stopped:
            await self._subscribe_private(session)

    async def _subscribe_private(self, session: WsSession) -> None:
        self._private_attempts += 1
        frames = subscribe_frames(
            self.private,
            signer=self.signer,
            timestamp_ms=self.clock.now_us() // 1000,
            window_ms=self.window_ms,
            batch_size=self.batch_size,
        )
        for text in frames:
            await session.send(text)

    def private_rejected(self) -> None:
        """Called by the feed when the exchange refused the private subscription."""
        self.stats.private_rejections += 1
        if self.stats.private_stopped:
            return
        if self._private_attempts > self.private_retries:
            self.stats.private_stopped = True
            self.log.error(
                "private subscription rejected %d times: private channels stopped, public channels keep running; "
                "check the API key pair and the system clock (backpack-harness auth-check)",
                self.stats.private_rejections, extra={"cause": "auth: retries exhausted"},
            )
            return
        delay = self._backoff(self._private_attempts)
        self.log.warning("private subscription rejected; retrying in %.2f s (attempt %d of %d)",
                         delay, self._private_attempts + 1, self.private_retries + 1, extra={"cause": "auth"})
        session = self.session
        if session is not None and (self._private_retry_task is None or self._private_retry_task.done()):
            self._private_retry_task = asyncio.ensure_future(self._retry_private(session, delay))

    async def _retry_private(self, session: WsSession, delay: float) -> None:
        await self.clock.sleep_us(to_us(delay))
        if session is self.session and not self._stopping:
            try:
                await self._subscribe_private(session)
            except TransportError as exc:
                self.log.warning("private resubscribe failed: %s", exc,
                                 extra={"connection": session.id, "cause": type(exc).__name__})

    async def run(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                session = await self.transport.connect(self.url)
            except TransportError as exc:
                attempt += 1
                if 0 <= self.max_reconnects < attempt:
                    raise
                delay = self._backoff(attempt)
                self._ratelog.log(logging.WARNING, ("connect", type(exc).__name__),
                                  "connect to %s failed (%s); retrying in %.2f s", mask_url(self.url), exc,
                                  delay, extra={"cause": f"connect failed: {type(exc).__name__}"})
                await self._sleep_or_stop(delay, stop)
                continue
            self.session = session
            self.stats.connects += 1
            if self.stats.connects > 1:
                self.stats.reconnects += 1
            opened_at = self.clock.now_us()
            frames_before = self.stats.frames
            try:
                if self.on_connect is not None:
                    await self.on_connect(self.stats.connects)
                await self._subscribe(session)
                await self._read(session, stop)
            except WsClosed as exc:
                self.stats.last_close_code = exc.code
                self.stats.closes.append(exc.code)
                self._ratelog.log(logging.WARNING, ("closed", exc.code),
                                  "websocket %s closed (code %s %s); reconnecting", session.id, exc.code,
                                  exc.reason,
                                  extra={"connection": session.id, "cause": f"closed: code {exc.code}"})
            except TransportError as exc:
                self._ratelog.log(logging.WARNING, ("failed", type(exc).__name__),
                                  "websocket %s failed: %s; reconnecting", session.id, exc,
                                  extra={"connection": session.id, "cause": f"failed: {type(exc).__name__}"})
            finally:
                self.session = None
                if self._private_retry_task is not None:
                    self._private_retry_task.cancel()
                await session.close()
            if stop.is_set():
                break
            if self.on_disconnect is not None:
                await self.on_disconnect(self.stats.connects)
            if self.stats.frames > frames_before and self.clock.now_us() - opened_at >= self.stable_us:
                attempt = 0  # it was healthy: start the backoff over
            attempt += 1
            if 0 <= self.max_reconnects < attempt:
                raise TransportError(f"gave up after {attempt} reconnect attempts")
            await self._sleep_or_stop(self._backoff(attempt), stop)

    async def _read(self, session: WsSession, stop: asyncio.Event) -> None:
        """Receive and handle frames until stopped; raises what ``recv()`` raised (``WsClosed``, ...).

        One task both receives a frame and hands it to ``on_frame``, so a frame reaches the protocol in
        the loop step in which the transport returned it: nothing (a REST snapshot answer completing in
        another task) can slip in between. The order of frames and responses at the transport seam, which
        is what a recording keeps, is then the order the Router sees, and a replay reproduces it exactly.
        """
        pump = _Pump(self, session, stop)
        task = asyncio.ensure_future(pump.run())
        stop_wait = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({task, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and pump.receiving:
                task.cancel()  # waiting for the next frame: nothing is lost
            # otherwise a frame is being handled: the pump finishes it, sees ``stop`` and returns
            await asyncio.wait({task})
            if not task.cancelled():
                task.result()
        finally:
            stop_wait.cancel()
            task.cancel()

    async def _sleep_or_stop(self, delay: float, stop: asyncio.Event) -> None:
        await sleep_or_stop(self.clock, to_us(delay), stop)

    async def close(self) -> None:
        self._stopping = True
        if self.session is not None:
            await self.session.close()


class _Pump:
    """The receive loop of one connection (see ``WsSessionManager._read``)."""

    __slots__ = ("manager", "session", "stop", "receiving")

    def __init__(self, manager: WsSessionManager, session: WsSession, stop: asyncio.Event) -> None:
        self.manager = manager
        self.session = session
        self.stop = stop
        self.receiving = False

    async def run(self) -> None:
        manager = self.manager
        while not self.stop.is_set():
            self.receiving = True
            try:
                frame = await self.session.recv()
            finally:
                self.receiving = False
            manager.stats.frames += 1
            await manager.on_frame(frame)
