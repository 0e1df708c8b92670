"""``serve --recording``: a recorded session drives the loopback server; unchanged clients consume it.

The recordings are made here, by the real record path (``RecordingTransport`` around the live transport,
``BackpackFeed`` under cryptofeed) against the seeded loopback server, then served back by a
``RecordingSource``. What a client must get is computed from the recording file alone (the frames it
holds, and ``BookSync`` fed the recorded deltas and snapshots), never from the serving code.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import ccxt.pro as ccxtpro
import pytest

from backpack import compat
from backpack.live import LiveTransport
from backpack.protocol import events as ev
from backpack.protocol.auth import Signer
from backpack.protocol.book import BookSync
from backpack.protocol.messages import Decoder, decode_depth_snapshot
from harness.loopback.recorded import ANSWER_HEADER, END_CODE, END_REASON, RecordingSource
from harness.loopback.server import TEST_ACCOUNT_SECRET, BackpackServer
from harness.pytest_plugin import running_server
from harness.recording.format import Header, HttpRequestEvent, HttpResponseEvent, WsRecv, WsSend
from harness.recording.reader import read_recording
from harness.recording.writer import RecordingWriter, write_recording
from harness.transports.recording import RecordingTransport

from .feed_helpers import PRIVATE, backpack_section, drive, running_handler, until

SYMBOLS = ["SOL-USDC", "BTC-USDC-PERP"]
NATIVE = {"SOL-USDC": "SOL_USDC", "BTC-USDC-PERP": "BTC_USDC_PERP"}
CCXT = {"SOL-USDC": "SOL/USDC", "BTC-USDC-PERP": "BTC/USDC:USDC"}
TOP_N = 10


# --- recording a session ----------------------------------------------------------------------------


@dataclass
class Consumed:
    """What one BackpackFeed delivered: trades per symbol, (sequence, top bids, top asks) per book update,
    and every private object by channel."""

    trades: dict[str, list[tuple[str, str, Decimal, Decimal, int]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    books: dict[str, list[tuple[int, list, list]]] = field(default_factory=lambda: defaultdict(list))
    private: dict[str, list[Any]] = field(default_factory=lambda: defaultdict(list))

    def callbacks(self, channels: list[str]) -> dict[str, Any]:
        async def trade(t: Any, receipt: float) -> None:
            self.trades[t.symbol].append(
                (str(t.id), t.side, Decimal(t.price), Decimal(t.amount), round(t.timestamp * 1_000_000))
            )

        async def book(b: Any, receipt: float) -> None:
            bids = sorted(b.book.bids.to_dict().items(), reverse=True)[:TOP_N]
            asks = sorted(b.book.asks.to_dict().items())[:TOP_N]
            self.books[b.symbol].append((b.sequence_number, bids, asks))

        out: dict[str, Any] = {}
        for channel in channels:
            if channel == compat.TRADES:
                out[channel] = trade
            elif channel == compat.L2_BOOK:
                out[channel] = book
            else:

                async def private(obj: Any, receipt: float, _channel: str = channel) -> None:
                    self.private[_channel].append(obj)

                out[channel] = private
        return out


@dataclass
class Recorded:
    path: Path
    consumed: Consumed
    truth: dict[str, dict[str, dict[Decimal, Decimal]]]  # the server's final books, by cryptofeed symbol


async def _record(
    path: Path,
    *,
    seed: int,
    steps: int,
    channels: list[str],
    reconnect_at: int | None = None,
    private: bool = False,
) -> Recorded:
    consumed = Consumed()
    async with running_server(seed=seed, rate=0, ping_interval=30.0, pong_timeout=60.0) as server:
        section = backpack_section(server, private=private)
        header = Header.new(
            rest_url=server.rest_url,
            ws_url=server.ws_url,
            symbols=tuple(SYMBOLS),
            channels=tuple(channels),
            meta={"seed": seed},
        )
        writer = RecordingWriter(path, header, block_events=300)
        live = LiveTransport()
        transport = RecordingTransport(live, writer)
        async with running_handler(
            symbols=SYMBOLS,
            channels=channels,
            callbacks=consumed.callbacks(channels),
            transport=transport,
            handler_config={"log": {"disabled": True}, "backpack": section},
        ):
            for s in SYMBOLS:
                await server.wait_subscribed(f"depth.{NATIVE[s]}")
            if reconnect_at is None:
                await drive(server, steps)
            else:
                await drive(server, reconnect_at)
                first = max(server.connections)
                server.faults.close_socket(1001, "going away")
                await until(
                    lambda: (
                        max(server.connections) > first
                        and all(
                            f"depth.{NATIVE[s]}" in server.connections[max(server.connections)].subscriptions
                            for s in SYMBOLS
                        )
                    ),
                    "the feed's reconnect",
                )
                await drive(server, steps - reconnect_at)
            await until(
                lambda: all(
                    consumed.books[s] and consumed.books[s][-1][0] == server.market.sequence(NATIVE[s])
                    for s in SYMBOLS
                ),
                "the recorded feed's books at the server's last delta",
            )
        await transport.close()
        await live.close()
        writer.close()
        truth = {s: server.book(NATIVE[s]) for s in SYMBOLS}
    return Recorded(path, consumed, truth)


@pytest.fixture(scope="module")
def public_recording(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    path = tmp_path_factory.mktemp("serve") / "public.jsonl.zst"
    return asyncio.run(_record(path, seed=21, steps=400, channels=[compat.TRADES, compat.L2_BOOK]))


# --- what the recording says a client must get (independent of the serving code) ------------------------


def recorded_trades(path: Path) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in read_recording(path).events:
        if isinstance(e, WsRecv) and isinstance(e.data, str) and e.data.startswith('{"stream":"trade.'):
            data = json.loads(e.data)["data"]
            out[data["s"]].append(data)
    return out


def recorded_final_books(path: Path) -> dict[str, tuple[list, list, int]]:
    """BookSync fed the recording's depth deltas and depth answers in recorded order: what the recorded
    client's book was at the end (top N, best first, and its sequence)."""
    decoder = Decoder()
    syncs: dict[str, BookSync] = {}
    requests: dict[str, HttpRequestEvent] = {}
    for e in read_recording(path).events:
        if isinstance(e, WsRecv) and isinstance(e.data, str) and e.data.startswith('{"stream":"depth.'):
            for out in decoder.decode(e.data, e.receipt):
                if isinstance(out, ev.DepthDelta):
                    syncs.setdefault(out.symbol, BookSync(out.symbol)).on_delta(out)
        elif isinstance(e, HttpRequestEvent):
            requests[e.conn] = e
        elif (
            isinstance(e, HttpResponseEvent)
            and e.conn in requests
            and requests[e.conn].url.endswith("/depth")
        ):
            symbol = dict(requests[e.conn].params)["symbol"]
            snapshot = decode_depth_snapshot(symbol, e.body, e.receipt)
            if isinstance(snapshot, ev.DepthSnapshot) and symbol in syncs:
                syncs[symbol].on_snapshot(snapshot)
    out = {}
    for symbol, sync in syncs.items():
        bids, asks = sync.book.top(TOP_N)
        out[symbol] = (
            [tuple(level) for level in bids],
            [tuple(level) for level in asks],
            sync.last_update_id,
        )
    return out


@asynccontextmanager
async def serving(path: Path, **kwargs: Any) -> AsyncIterator[BackpackServer]:
    kwargs.setdefault("speed", None)
    kwargs.setdefault("linger", 0.2)
    async with running_server(
        source=RecordingSource.open(path, **kwargs), rate=0, ping_interval=30.0, pong_timeout=60.0
    ) as server:
        yield server


def _ccxt_at(server: BackpackServer) -> Any:
    """A stock ccxt.pro backpack instance whose only change is where it connects."""
    ex = ccxtpro.backpack()
    api = dict(ex.urls["api"])
    api["public"] = api["private"] = server.rest_url
    api["ws"] = {"public": server.ws_url, "private": server.ws_url}
    ex.urls = {**ex.urls, "api": api}
    return ex


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def _dec(x: float) -> Decimal:
    return Decimal(repr(x))


# --- the done-when: an unchanged ccxt.pro client ------------------------------------------------------


@pytest.mark.parametrize("speed", [None, 1.0], ids=["as-fast-as-read", "recorded-pace"])
async def test_ccxt_pro_gets_the_recorded_trades_and_book(
    public_recording: Recorded, speed: float | None
) -> None:
    path = public_recording.path
    want_trades = recorded_trades(path)
    want_books = recorded_final_books(path)
    assert set(want_books) == set(NATIVE.values()) and all(len(want_trades[n]) >= 40 for n in NATIVE.values())
    for s in SYMBOLS:  # the recording is complete: its client ended on the server's own book
        bids, asks, _ = want_books[NATIVE[s]]
        truth = public_recording.truth[s]
        assert bids == sorted(truth["bids"].items(), reverse=True)[:TOP_N]
        assert asks == sorted(truth["asks"].items())[:TOP_N]

    async with serving(path, speed=speed) as server:
        ex = _ccxt_at(server)
        trades: dict[str, list[dict[str, Any]]] = defaultdict(list)
        books: dict[str, Any] = {}
        closed: list[BaseException] = []

        async def watch_trades(symbol: str) -> None:
            try:
                while True:
                    trades[symbol].extend(await ex.watch_trades(symbol))
            except Exception as exc:  # the end of the recording closes the connection
                closed.append(exc)

        async def watch_book(symbol: str) -> None:
            try:
                while True:
                    books[symbol] = await ex.watch_order_book(symbol)
            except Exception as exc:
                closed.append(exc)

        tasks = []
        try:
            await ex.load_markets()
            for s in SYMBOLS:
                tasks += [
                    asyncio.create_task(watch_trades(CCXT[s])),
                    asyncio.create_task(watch_book(CCXT[s])),
                ]
            await until(
                lambda: all(
                    CCXT[s] in books and books[CCXT[s]]["nonce"] == want_books[NATIVE[s]][2] for s in SYMBOLS
                ),
                "ccxt's books at the recording's last delta",
                timeout=30,
            )
            final = {s: (books[CCXT[s]]["bids"][:TOP_N], books[CCXT[s]]["asks"][:TOP_N]) for s in SYMBOLS}
            await until(
                lambda: all(len(trades[CCXT[s]]) >= len(want_trades[NATIVE[s]]) for s in SYMBOLS),
                "every recorded trade",
                timeout=30,
            )
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await ex.close()
        depth_answers = [p for m, p, status in server.rest_log if p.startswith("/api/v1/depth")]
    assert depth_answers, "ccxt synchronised through the rebuilt REST snapshot"
    for s in SYMBOLS:
        native = NATIVE[s]
        got = [(str(t["id"]), _dec(t["price"]), _dec(t["amount"])) for t in trades[CCXT[s]]]
        want = [(str(d["t"]), Decimal(d["p"]), Decimal(d["q"])) for d in want_trades[native]]
        assert got == want, f"{s}: ccxt's trades differ from the recording's"
        bids, asks, _ = want_books[native]
        got_bids = [(_dec(p), _dec(q)) for p, q, *_ in final[s][0]]
        got_asks = [(_dec(p), _dec(q)) for p, q, *_ in final[s][1]]
        assert (got_bids, got_asks) == (bids, asks), f"{s}: ccxt's book differs from the recorded final book"


@pytest.fixture(scope="module")
def private_recording(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    path = tmp_path_factory.mktemp("serve") / "private.jsonl.zst"
    channels = [compat.TRADES, compat.L2_BOOK, *PRIVATE]
    return asyncio.run(_record(path, seed=8, steps=400, channels=channels, private=True))


@pytest.fixture(scope="module")
def reconnect_recording(tmp_path_factory: pytest.TempPathFactory) -> Recorded:
    path = tmp_path_factory.mktemp("serve") / "reconnect.jsonl.zst"
    return asyncio.run(
        _record(path, seed=5, steps=400, channels=[compat.TRADES, compat.L2_BOOK], reconnect_at=200)
    )


async def _consume_with_backpack_feed(
    server: BackpackServer, channels: list[str], want: Recorded, private: bool = False
) -> Consumed:
    consumed = Consumed()
    finals = recorded_final_books(want.path)
    section = backpack_section(server, private=private)
    async with running_handler(
        symbols=SYMBOLS,
        channels=channels,
        callbacks=consumed.callbacks(channels),
        handler_config={"log": {"disabled": True}, "backpack": section},
    ):
        await until(
            lambda: all(
                consumed.books[s] and consumed.books[s][-1][0] == finals[NATIVE[s]][2] for s in SYMBOLS
            ),
            "the books at the recording's last delta",
            timeout=30,
        )
        await until(
            lambda: all(len(consumed.trades[s]) >= len(want.consumed.trades[s]) for s in SYMBOLS),
            "every recorded trade",
            timeout=30,
        )
        await until(
            lambda: all(
                len(consumed.private[c]) >= len(want.consumed.private[c]) for c in want.consumed.private
            ),
            "every recorded private event",
            timeout=30,
        )
    return consumed


def _assert_same_books(got: Consumed, want: Consumed) -> None:
    for s in SYMBOLS:
        assert got.books[s][-1] == want.books[s][-1], f"{s}: final book differs"
        recorded = {seq: (bids, asks) for seq, bids, asks in want.books[s]}
        common = [(seq, bids, asks) for seq, bids, asks in got.books[s] if seq in recorded]
        assert (
            len(common) >= len(got.books[s]) - 1 and len(common) > 100
        )  # the sync point may precede the recorded one
        assert all(recorded[seq] == (bids, asks) for seq, bids, asks in common), f"{s}: a book differs"


def _comparable(obj: Any) -> Any:
    data = obj.to_dict(numeric_type=str)
    return {k: v for k, v in data.items() if "receipt" not in k}


async def test_backpack_feed_gets_the_recorded_events_public_and_private(private_recording: Recorded) -> None:
    want = private_recording
    assert all(want.consumed.private[c] for c in (compat.ORDER_INFO, compat.POSITIONS, compat.BALANCES))
    channels = [compat.TRADES, compat.L2_BOOK, *PRIVATE]
    async with serving(want.path) as server:
        got = await _consume_with_backpack_feed(server, channels, want, private=True)
    for s in SYMBOLS:
        assert got.trades[s] == want.consumed.trades[s], f"{s}: trades differ"
    _assert_same_books(got, want.consumed)
    assert set(got.private) == set(want.consumed.private)
    for channel, objects in want.consumed.private.items():
        assert [_comparable(o) for o in got.private[channel]] == [_comparable(o) for o in objects], channel


async def test_a_reconnect_in_the_recording_is_one_continuous_stream(reconnect_recording: Recorded) -> None:
    want = reconnect_recording
    events = read_recording(want.path).events
    opens = [e.conn for e in events if e.kind == "ws_open"]
    assert len(opens) == 2
    per_conn = {
        c: [
            e.data
            for e in events
            if isinstance(e, WsRecv) and e.conn == c and e.data.startswith('{"stream":"depth.SOL_USDC"')
        ]
        for c in opens
    }
    assert all(per_conn.values())
    async with serving(want.path) as server:
        texts, code, reason = await raw_session(server, ["depth.SOL_USDC"])
        assert texts == per_conn[opens[0]] + per_conn[opens[1]]  # both connections, in order, nothing twice
        assert (code, reason) == (END_CODE, END_REASON)
        got = await _consume_with_backpack_feed(server, [compat.TRADES, compat.L2_BOOK], want)
    for s in SYMBOLS:
        assert got.trades[s] == want.consumed.trades[s], f"{s}: trades differ"
        assert got.books[s][-1] == want.consumed.books[s][-1], f"{s}: final book differs"


# --- raw clients: exactly the recorded frames of their own streams, then the end -----------------------


async def raw_session(
    server: BackpackServer,
    streams: list[str],
    *,
    extra: tuple[str, ...] | list[str] = (),
    signature: list[str] | None = None,
    limit: int | None = None,
) -> tuple[list[str], int | None, str | None]:
    """Subscribe (and send ``extra`` frames), read until the server closes; texts, close code, reason."""
    texts: list[str] = []
    async with aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        frame: dict[str, Any] = {"method": "SUBSCRIBE", "params": streams}
        if signature is not None:
            frame["signature"] = signature
        await ws.send_str(json.dumps(frame))
        for text in extra:
            await ws.send_str(text)
        async with asyncio.timeout(30):
            while True:
                msg = await ws.receive()
                if msg.type != aiohttp.WSMsgType.TEXT:
                    break
                texts.append(msg.data)
                if limit is not None and len(texts) >= limit:
                    await ws.close()
                    break
        return texts, ws.close_code, msg.extra if msg.type == aiohttp.WSMsgType.CLOSE else None


def recorded_texts(path: Path, streams: set[str]) -> list[str]:
    """The recording's data frames on ``streams``, in recorded order (one connection)."""
    out = []
    for e in read_recording(path).events:
        if isinstance(e, WsRecv) and isinstance(e.data, str) and e.data.startswith('{"stream":"'):
            if json.loads(e.data)["stream"] in streams:
                out.append(e.data)
    return out


async def test_each_client_gets_its_streams_from_the_start_then_a_clear_close(
    public_recording: Recorded,
) -> None:
    path = public_recording.path
    streams = ["trade.SOL_USDC", "depth.BTC_USDC_PERP"]
    want = recorded_texts(path, set(streams))
    assert (
        len(recorded_texts(path, {"trade.BTC_USDC_PERP", "depth.SOL_USDC"})) > 100
    )  # frames it must not get
    async with serving(path) as server:
        first = await raw_session(server, streams)
        late = await raw_session(server, streams)  # connects after the first one's replay ended
        silent = await raw_session(server, ["trade.ETH_USDC"])  # a valid stream the recording lacks
    assert first == late == (want, 1000, "End of recording")  # the documented close
    assert silent == ([], END_CODE, END_REASON)


async def test_paced_replay_never_sends_a_frame_before_its_recorded_time(tmp_path: Path) -> None:
    """Invariant: at speed X a frame recorded d ns after the stream's subscribe arrives no earlier than d/X
    after the client's SUBSCRIBE (a lower bound: a busy machine only makes it later)."""
    path = tmp_path / "paced.jsonl"
    t0 = 1_000_000
    events = [WsSend(t0, "ws-1", '{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}')]
    events += [WsRecv(t0 + k * 200_000_000, "ws-1", trade_text(k), 1) for k in (1, 2, 3)]
    write_recording(path, Header.new(), events)
    async with serving(path, speed=2.0, linger=0.0) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await ws.send_str('{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}')
        arrivals = []
        async with asyncio.timeout(30):
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                arrivals.append((loop.time() - sent, msg.data))
    assert [text for _, text in arrivals] == [trade_text(k) for k in (1, 2, 3)]
    assert all(elapsed >= k * 0.1 for (elapsed, _), k in zip(arrivals, (1, 2, 3), strict=True))


def trade_text(k: int) -> str:
    ts = 1_754_006_400_000_000 + k
    return (
        f'{{"stream":"trade.SOL_USDC","data":{{"e":"trade","E":{ts},"s":"SOL_USDC","p":"150.0{k}","q":"1",'
        f'"b":"1","a":"2","t":{k},"T":{ts},"m":false}}}}'
    )


async def test_bad_subscribes_get_the_usual_errors_and_private_needs_a_valid_signature(
    private_recording: Recorded,
) -> None:
    path = private_recording.path
    private_stream = "account.orderUpdate.BTC_USDC_PERP"
    want_private = recorded_texts(path, {private_stream})
    want_public = recorded_texts(path, {"trade.SOL_USDC"})
    assert want_private and want_public
    errors = [
        '{"id":null,"error":{"code":4006,"message":"Invalid stream"}}',
        '{"id":null,"error":{"code":4002,"message":"Parse error"}}',
    ]
    async with serving(path) as server:
        refused, code, _ = await raw_session(
            server,
            ["trade.SOL_USDC", private_stream],
            extra=['{"method":"SUBSCRIBE","params":["nope.SOL_USDC"]}', "{oops"],
        )
        signed, _, _ = await raw_session(
            server, [private_stream], signature=Signer(TEST_ACCOUNT_SECRET).ws_signature(now_ms(), 5000)
        )
    missing = '{"id":null,"error":{"code":4003,"message":"Missing signature"}}'
    assert refused[:3] == [missing, *errors] and refused[3:] == want_public and code == END_CODE
    assert signed == want_private


async def test_loop_starts_the_recording_again_on_the_same_connection(public_recording: Recorded) -> None:
    want = recorded_texts(public_recording.path, {"trade.SOL_USDC"})
    async with serving(public_recording.path, loop=True, linger=0.0) as server:
        texts, _, _ = await raw_session(server, ["trade.SOL_USDC"], limit=2 * len(want) + 1)
    assert texts == want + want + want[:1]


async def test_loop_over_silence_waits_instead_of_spinning(public_recording: Recorded) -> None:
    source = RecordingSource.open(public_recording.path, speed=None, loop=True, linger=0.0)
    async with running_server(source=source, rate=0) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str('{"method":"SUBSCRIBE","params":["trade.ETH_USDC"]}')  # nothing recorded on it
        await server.wait_subscribed("trade.ETH_USDC")
        await asyncio.sleep(0.1)
        async with asyncio.timeout(10), http.get(server.rest_url + "/api/v1/ping") as resp:
            assert await resp.text() == "pong"  # the event loop is free
        assert [p.lap for p in source._players.values()] == [1] and not ws.closed
        await ws.close()


async def test_unsubscribe_stops_a_stream(tmp_path: Path) -> None:
    path = tmp_path / "two.jsonl"
    sub = '{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}'
    write_recording(
        path,
        Header.new(),
        [
            WsSend(0, "ws-1", sub),
            WsRecv(1, "ws-1", trade_text(1), 1),
            WsRecv(3_000_000_000, "ws-1", trade_text(2), 2),
        ],
    )
    async with serving(path, speed=10.0, linger=0.0) as server, aiohttp.ClientSession() as http:
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str(sub)
        first = await ws.receive(timeout=10)
        await ws.send_str('{"method":"UNSUBSCRIBE","params":["trade.SOL_USDC"]}')
        await ws.send_str('{"method":"SUBSCRIBE","params":["trade.ETH_USDC"]}')  # keeps the replay alive
        rest = []
        async with asyncio.timeout(30):
            while (msg := await ws.receive()).type == aiohttp.WSMsgType.TEXT:
                rest.append(msg.data)
    assert first.data == trade_text(1)
    assert rest == [] and ws.close_code == END_CODE


# --- REST -----------------------------------------------------------------------------------------------


async def test_rest_answers_what_the_recording_holds(public_recording: Recorded) -> None:
    path = public_recording.path
    events = read_recording(path).events
    markets_request = next(
        e for e in events if isinstance(e, HttpRequestEvent) and e.url.endswith("/markets")
    )
    markets_body = next(
        e.body for e in events if isinstance(e, HttpResponseEvent) and e.conn == markets_request.conn
    )
    rows = json.loads(markets_body)
    query = "&".join(f"{k}={v}" for k, v in reversed(markets_request.params))  # any order matches
    async with serving(path) as server, aiohttp.ClientSession() as http:

        async def get(p: str) -> tuple[int, str | None, bytes]:
            async with http.get(server.rest_url + p) as resp:
                return resp.status, resp.headers.get(ANSWER_HEADER), await resp.read()

        assert await get(f"/api/v1/markets?{query}") == (200, "recorded", markets_body)
        status, how, body = await get("/api/v1/markets")
        assert (status, how, json.loads(body)) == (
            200,
            "derived",
            [r for r in rows if r["marketType"] in ("SPOT", "PERP")],
        )
        status, how, body = await get("/api/v1/markets?marketType=PERP")
        perps = [r for r in rows if r["marketType"] == "PERP"]
        assert (status, how, json.loads(body)) == (200, "derived", perps) and 0 < len(perps) < len(rows)
        assert (await get("/api/v1/markets?marketType=NOPE"))[0] == 400
        status, how, body = await get("/api/v1/market?symbol=SOL_USDC")
        assert (status, how, json.loads(body)) == (
            200,
            "derived",
            next(r for r in rows if r["symbol"] == "SOL_USDC"),
        )
        status, _, body = await get("/api/v1/market?symbol=NOPE_USDC")
        assert (status, json.loads(body)) == (
            400,
            {"code": "INVALID_CLIENT_REQUEST", "message": "Market not found"},
        )
        status, how, body = await get("/api/v1/assets")
        assert status == 200 and {a["symbol"] for a in json.loads(body)} == {
            a for r in rows for a in (r["baseSymbol"], r["quoteSymbol"])
        }
        assert await get("/api/v1/securities") == (200, "derived", b"[]")
        status, _, body = await get("/api/v1/klines?symbol=SOL_USDC&interval=1m&startTime=0")
        assert (status, body) == (
            404,
            b"Not in the recording: GET /api/v1/klines?symbol=SOL_USDC&interval=1m&startTime=0",
        )
        assert (await get("/api/v1/depth?symbol=SOL_USDC&limit=7"))[0] == 400
        assert (await get("/api/v1/depth"))[:1] == (400,)
        assert (await get("/api/v1/ping"))[::2] == (200, b"pong")


async def test_depth_answers_the_book_at_the_last_delta_a_client_was_sent(public_recording: Recorded) -> None:
    path = public_recording.path
    finals = recorded_final_books(path)
    deltas = recorded_texts(path, {"depth.SOL_USDC"})
    snapshot = next(s for s in RecordingSource.open(path).session.snapshots["SOL_USDC"])
    async with serving(path, linger=30.0) as server, aiohttp.ClientSession() as http:
        async with http.get(server.rest_url + "/api/v1/depth?symbol=SOL_USDC") as resp:
            before = await resp.json()
        assert (
            int(before["lastUpdateId"]) == snapshot.last_update_id
        )  # nobody subscribed: the first known book
        assert [tuple(x) for x in before["bids"]] == [(str(p), str(q)) for p, q in snapshot.bids]  # wire text
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str('{"method":"SUBSCRIBE","params":["depth.SOL_USDC"]}')
        for _ in deltas:
            await ws.receive(timeout=10)
        async with http.get(server.rest_url + "/api/v1/depth?symbol=SOL_USDC&limit=5") as resp:
            assert resp.headers[ANSWER_HEADER] == "rebuilt"
            after = await resp.json()
        await ws.close()
    bids, asks, sequence = finals["SOL_USDC"]
    assert int(after["lastUpdateId"]) == sequence == json.loads(deltas[-1])["data"]["u"]
    assert [(Decimal(p), Decimal(q)) for p, q in reversed(after["bids"])] == bids[:5]
    assert [(Decimal(p), Decimal(q)) for p, q in after["asks"]] == asks[:5]


# --- hostile recordings ------------------------------------------------------------------------------


def _cut(src: Path, dst: Path, fraction: float) -> Path:
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


async def test_a_truncated_recording_serves_what_is_before_the_damage(
    public_recording: Recorded, tmp_path: Path
) -> None:
    cut = _cut(public_recording.path, tmp_path / "cut.jsonl.zst", 0.6)
    rec = read_recording(cut)
    assert rec.damage is not None and "truncated" in rec.damage.reason
    want = recorded_texts(cut, {"depth.SOL_USDC"})
    assert 0 < len(want) < len(recorded_texts(public_recording.path, {"depth.SOL_USDC"}))
    source = RecordingSource.open(cut, speed=None, linger=0.0)
    assert source.session.damage is not None
    async with running_server(source=source, rate=0) as server:
        assert await raw_session(server, ["depth.SOL_USDC"]) == (want, END_CODE, END_REASON)


def _hostile_events() -> list[Any]:
    def depth(u: int, bids: Any) -> str:
        data = {"e": "depth", "E": u, "s": "SOL_USDC", "a": [], "b": bids, "U": str(u), "u": str(u), "T": u}
        return json.dumps({"stream": "depth.SOL_USDC", "data": data}, separators=(",", ":"))

    sub = '{"method":"SUBSCRIBE","params":["depth.SOL_USDC","trade.SOL_USDC"]}'
    snap = b'{"asks":[["151","1"]],"bids":[["149","2"]],"lastUpdateId":"9","timestamp":5}'
    return [
        WsSend(1, "ws-1", sub),
        WsRecv(2, "ws-1", b"\x00\xff", 1),  # binary
        WsRecv(3, "ws-1", "{not json", 1),
        WsRecv(4, "ws-1", '{"id":null,"error":{"code":4006,"message":"Invalid stream"}}', 1),
        WsRecv(5, "ws-1", "[1,2,3]", 1),
        WsRecv(6, "ws-1", '{"stream":"trade.SOL_USDC","data":"not an object"}', 1),
        WsRecv(7, "ws-1", depth(10, [["149", "3"]]), 1),
        WsRecv(8, "ws-1", depth(11, [["NaN", "1"], ["1e999999999", "1"], ["-5", "x"]]), 1),
        WsRecv(9, "ws-1", depth(12, "garbage"), 1),
        HttpResponseEvent(10, "http-9", 200, {}, b"an answer nobody asked for", 1),
        HttpRequestEvent(11, "http-1", "GET", "http://127.0.0.1:1/api/v1/depth", (("symbol", "SOL_USDC"),)),
        HttpResponseEvent(12, "http-1", 200, {"Content-Type": "application/json"}, snap, 1),
        HttpRequestEvent(13, "http-2", "GET", "http://127.0.0.1:1/api/v1/depth", (("symbol", "BTC_USDC"),)),
        HttpResponseEvent(14, "http-2", 200, {}, b'{"lastUpdateId":"NaN","bids":1}', 1),
    ]


async def test_hostile_frames_are_skipped_and_garbage_levels_never_break_rest(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    events = _hostile_events()
    write_recording(path, Header.new(), events)
    source = RecordingSource.open(path, speed=None, linger=30.0)
    session = source.session
    assert dict(session.skipped) == {
        "binary": 1,
        "not json": 1,
        "error": 1,
        "not an object": 1,
        "no stream": 1,
    }
    data_frames = [e.data for e in events if isinstance(e, WsRecv) and e.t >= 7]
    async with running_server(source=source, rate=0) as server, aiohttp.ClientSession() as http:

        async def depth(symbol: str) -> tuple[int, Any]:
            async with http.get(f"{server.rest_url}/api/v1/depth?symbol={symbol}") as resp:
                return resp.status, await resp.text()

        status, body = await depth("SOL_USDC")  # nobody subscribed: the snapshot, bridged by the first delta
        assert status == 200 and json.loads(body)["lastUpdateId"] == "9"
        assert json.loads(body)["bids"] == [["149", "2"]]
        ws = await http.ws_connect(server.ws_url)
        await ws.send_str('{"method":"SUBSCRIBE","params":["depth.SOL_USDC","trade.SOL_USDC"]}')
        got = [(await ws.receive(timeout=10)).data for _ in data_frames]
        assert got == data_frames  # replayed verbatim: they are what the recording holds
        status, body = await depth("SOL_USDC")  # the book is unknown after the delta with no levels
        assert (status, body) == (
            503,
            "Service Unavailable: the recording holds no SOL_USDC order book at or after sequence 12",
        )
        status, body = await depth("BTC_USDC")  # no book to rebuild: the recorded answer, verbatim
        assert (status, body) == (200, '{"lastUpdateId":"NaN","bids":1}')
        status, body = await depth("ETH_USDC")
        assert (status, body) == (404, "Not in the recording: GET /api/v1/depth?symbol=ETH_USDC")
        await ws.close()


def test_overlapping_connections_are_deduplicated_and_repeats_within_one_are_kept() -> None:
    from harness.loopback.recorded.session import index_events
    from harness.recording.format import WsOpen

    sub = '{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}'
    a, b, c, d = (trade_text(k) for k in (1, 2, 3, 4))
    events = [
        WsOpen(5, "ws-1", "ws://x"),
        WsSend(10, "ws-1", sub),
        WsRecv(20, "ws-1", a, 1),
        WsRecv(30, "ws-1", b, 1),
        WsOpen(35, "ws-2", "ws://x"),
        WsSend(36, "ws-2", sub),
        WsRecv(40, "ws-1", c, 1),
        WsRecv(41, "ws-2", b, 1),
        WsRecv(42, "ws-2", c, 1),
        WsRecv(50, "ws-2", d, 1),
        WsRecv(60, "ws-2", d, 1),
    ]
    session = index_events(Path("x.jsonl"), Header.new(), events)
    log = session.streams["trade.SOL_USDC"]
    assert [f.text for f in log.frames] == [a, b, c, d, d] and session.overlap == 2
    assert log.origin == 10 and session.origin == 10 and session.connections == 2 and session.end_t == 60


# --- the command line ------------------------------------------------------------------------------------


def _run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    from harness.cli import main

    code = main(["serve", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err


def test_unusable_recordings_are_refused_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    future = tmp_path / "future.jsonl"
    future.write_text('{"format":"backpack-recording","version":"2.0","created_at":"2030-01-01T00:00:00Z"}\n')
    header_only = tmp_path / "header.jsonl"
    write_recording(header_only, Header.new(), [])
    text = tmp_path / "notes.jsonl"
    text.write_text("these are not the events you are looking for\n")
    bad_zstd = tmp_path / "bad.jsonl.zst"
    bad_zstd.write_bytes(b"\x28\xb5\x2f\xfd" + b"\xff" * 40)
    cases = {  # the recording commands' exit codes (harness.cli): 66 no input, 76 unsupported, 65 data error
        tmp_path / "missing.jsonl": ("cannot read recording", 66),
        empty: ("empty recording", 66),
        future: ("recording format version 2.0 is not supported", 76),
        header_only: ("nothing to serve", 65),
        text: ("no readable header", 65),
        bad_zstd: ("no readable header", 65),
    }
    for path, (words, expected) in cases.items():
        code, err = _run_cli(["--recording", str(path)], capsys)
        assert code == expected and err.count("\n") == 1 and err.startswith("error: ") and words in err, (path, err)


def test_serve_flags_that_do_not_go_together(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "r.jsonl"
    write_recording(path, Header.new(), [WsRecv(1, "ws-1", trade_text(1), 1)])
    for argv, words in (
        (["--loop"], "apply to --recording only"),
        (["--speed", "2"], "apply to --recording only"),
        (["--recording", str(path), "--seed", "3"], "--seed"),
        (["--recording", str(path), "--speed", "fast"], "--speed"),
        (["--recording", str(path), "--speed", "-1"], "--speed"),
        (["--recording", str(path), "--speed", "nan"], "--speed"),
    ):
        code, err = _run_cli(argv, capsys)
        assert code == 64 and words in err, (argv, err)


async def test_cli_serves_a_truncated_recording_and_says_so(
    public_recording: Recorded, tmp_path: Path
) -> None:
    import os
    import re
    import signal
    import sys

    cut = _cut(public_recording.path, tmp_path / "cut.jsonl.zst", 0.7)
    want = recorded_texts(cut, {"trade.BTC_USDC_PERP"})
    assert want
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "harness",
        "serve",
        "--recording",
        str(cut),
        "--speed",
        "max",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        async with asyncio.timeout(30):
            warning = (await proc.stderr.readline()).decode()
            lines = [(await proc.stdout.readline()).decode() for _ in range(3)]
        assert (
            warning.startswith("warning: cut.jsonl.zst: truncated zstd frame")
            and "serving the events before" in warning
        )
        rest = re.match(r"REST  (http://127\.0\.0\.1:(\d+))/api/v1/", lines[0])
        assert rest and lines[1] == f"WS    ws://127.0.0.1:{rest.group(2)}/\n", lines
        replay = lines[2]
        assert replay.startswith("replay cut.jsonl.zst: ") and "as fast as clients read" in replay, replay
        server: Any = _Urls(rest.group(1), f"ws://127.0.0.1:{rest.group(2)}/")  # what raw_session reads
        assert await raw_session(server, ["trade.BTC_USDC_PERP"]) == (want, END_CODE, END_REASON)
        proc.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            assert await proc.wait() == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@dataclass
class _Urls:
    rest_url: str
    ws_url: str
