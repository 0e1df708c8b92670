"""The feeds' proxy settings: REST and WS of a running feed go through the configured proxy.

Covers the backpack ``rest_proxy``/``ws_proxy`` settings (http and SOCKS5), cryptofeed's own
``http_proxy`` feed argument on both the native and the ccxt-backed feed, and their precedence.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

import pytest
from yarl import URL

from backpack import compat
from backpack.ccxt_feed import BackpackCcxtFeed, ccxt_options
from backpack.config import ConfigError
from backpack.feed import BackpackFeed
from harness.pytest_plugin import running_server

from .feed_helpers import Collector, backpack_section, drive, running_handler, until
from .test_ccxt_feed import Recorder, running
from .test_proxy import TinyProxy, free_port
from .test_socks_proxy import socks

pytestmark = pytest.mark.e2e


async def test_feed_routes_rest_and_ws_through_the_configured_proxy() -> None:
    proxy = TinyProxy()
    proxy_port = await proxy.start()
    collector = Collector()
    channels = [compat.TRADES, compat.L2_BOOK]
    try:
        async with running_server(seed=4, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
            section = backpack_section(server, private=False, rest_proxy=f"http://127.0.0.1:{proxy_port}",
                                       ws_proxy=f"http://127.0.0.1:{proxy_port}")
            async with running_handler(
                symbols=["SOL-USDC"], channels=channels, callbacks=collector.callbacks(channels),
                handler_config={"log": {"disabled": True}, "backpack": section},
            ):
                await server.wait_subscribed("depth.SOL_USDC")
                await drive(server, 200)
                await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"))
                book = server.book("SOL_USDC")
                assert collector.books["SOL-USDC"] == {"bids": dict(book["bids"]), "asks": dict(book["asks"])}
            target = f"127.0.0.1:{server.port}"
            # WS is tunnelled with CONNECT; plain-http REST goes as absolute-form requests
            assert target in proxy.connects
            assert any(f"http://{target}/api/v1/markets" in line for line in proxy.forwards)
            assert any(f"http://{target}/api/v1/depth" in line for line in proxy.forwards)
    finally:
        await proxy.stop()


# -- SOCKS5 end to end ---------------------------------------------------------------------------


async def test_feed_routes_rest_and_ws_through_a_socks5_proxy() -> None:
    """The feed is pointed at a closed port that only the proxy maps to the server: its book proves both."""
    collector = Collector()
    channels = [compat.TRADES, compat.L2_BOOK]
    dead = free_port()
    async with running_server(seed=4, rate=0, ping_interval=0.5, pong_timeout=5.0) as server, \
            socks(forward_to=server.port) as proxy:
        url = f"socks5://127.0.0.1:{proxy.port}"
        section = backpack_section(server, private=False, rest_proxy=url, ws_proxy=url,
                                   rest_url=f"http://127.0.0.1:{dead}", ws_url=f"ws://127.0.0.1:{dead}")
        async with running_handler(
            symbols=["SOL-USDC"], channels=channels, callbacks=collector.callbacks(channels),
            handler_config={"log": {"disabled": True}, "backpack": section},
        ):
            await server.wait_subscribed("depth.SOL_USDC")
            await drive(server, 200)
            await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"))
            book = server.book("SOL_USDC")
            assert collector.books["SOL-USDC"] == {"bids": dict(book["bids"]), "asks": dict(book["asks"])}
        assert proxy.carried(f"127.0.0.1:{dead}") >= 2, proxy.requests  # the stream and the REST pool


# -- cryptofeed's http_proxy argument --------------------------------------------------------------


@pytest.fixture
async def two_proxies() -> AsyncIterator[tuple[TinyProxy, int, TinyProxy, int]]:
    a, b = TinyProxy(), TinyProxy()
    pa, pb = await a.start(), await b.start()
    try:
        yield a, pa, b, pb
    finally:
        await a.stop()
        await b.stop()


async def _book_through(server: Any, **feed_kwargs: Any) -> None:
    collector = Collector()
    channels = [compat.L2_BOOK]
    async with running_handler(
        symbols=["SOL-USDC"], channels=channels, callbacks=collector.callbacks(channels), **feed_kwargs
    ):
        await server.wait_subscribed("depth.SOL_USDC")
        await drive(server, 100)
        await until(lambda: collector.book_sequences.get("SOL-USDC") == server.market.sequence("SOL_USDC"))


async def test_http_proxy_argument_carries_rest_and_ws_of_the_native_feed(two_proxies) -> None:
    """``add_feed('BACKPACK', http_proxy=...)``, as with any cryptofeed exchange, reaches both paths."""
    tiny, port, other, _ = two_proxies
    async with running_server(seed=4, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        section = backpack_section(server, private=False)
        config = {"log": {"disabled": True}, "backpack": section}
        await _book_through(server, http_proxy=f"http://127.0.0.1:{port}", handler_config=config)
        target = f"127.0.0.1:{server.port}"
    assert tiny.connects == [target]
    assert any(f"http://{target}/api/v1/depth" in line for line in tiny.forwards)
    assert other.connects == [] and other.forwards == []


async def test_backpack_proxy_settings_win_over_http_proxy(two_proxies) -> None:
    """Precedence: the backpack ``ws_proxy`` wins; ``http_proxy`` fills the unset ``rest_proxy``."""
    via_http_proxy, port_a, via_ws_proxy, port_b = two_proxies
    async with running_server(seed=4, rate=0, ping_interval=0.5, pong_timeout=5.0) as server:
        section = backpack_section(server, private=False, ws_proxy=f"http://127.0.0.1:{port_b}")
        config = {"log": {"disabled": True}, "backpack": section}
        await _book_through(server, http_proxy=f"http://127.0.0.1:{port_a}", handler_config=config)
        target = f"127.0.0.1:{server.port}"
    assert via_http_proxy.connects == [] and any("/api/v1/depth" in line for line in via_http_proxy.forwards)
    assert via_ws_proxy.connects == [target] and via_ws_proxy.forwards == []


async def test_http_proxy_argument_carries_the_ccxt_feed() -> None:
    """The ccxt-backed feed gets the same proxies: ccxt's REST and its WebSocket go through ``http_proxy``.

    ccxt is pointed at a closed port that only the proxy maps to the server, so a delivered trade proves
    that both its market load (REST) and its stream (WS) went through the proxy. SOCKS5 here: aiohttp
    (inside ccxt) sends a plain ``ws://`` upgrade to an HTTP proxy in absolute form, which only a full
    HTTP proxy relays; through SOCKS both paths are plain tunnels.
    """
    trades = Recorder()
    dead = free_port()
    async with running_server(seed=11, rate=0) as server, socks(forward_to=server.port) as proxy:
        feed = BackpackCcxtFeed(
            backpack_config={"rest_url": f"http://127.0.0.1:{dead}", "ws_url": f"ws://127.0.0.1:{dead}"},
            http_proxy=f"socks5://127.0.0.1:{proxy.port}",
            symbols=["BTC-USDC"], channels=[compat.TRADES], callbacks={compat.TRADES: trades},
        )
        options = ccxt_options(feed.bp_config)
        assert options["socksProxy"] == options["wsSocksProxy"] == f"socks5://127.0.0.1:{proxy.port}"
        async with running(feed):
            await server.wait_subscribed("trade.BTC_USDC")
            while not any(em.stream == "trade.BTC_USDC" for em in server.step()):
                pass
            await server.flush()
            await until(lambda: trades.items, "a trade through the proxy")
        assert proxy.carried(f"127.0.0.1:{dead}") >= 1, proxy.requests


P1, S2, H2 = "http://127.0.0.1:1", "socks5://127.0.0.1:2", "socks5h://127.0.0.1:2"
H3, H4, S5 = "http://127.0.0.1:3", "http://127.0.0.1:4", "socks5://127.0.0.1:5"


@pytest.mark.parametrize(
    ("section", "http_proxy", "rest", "ws"),
    [
        ({}, None, None, None),
        ({}, P1, P1, P1),
        ({"rest_proxy": S2}, P1, S2, P1),
        ({"ws_proxy": H2}, P1, P1, H2),
        ({"rest_proxy": H3, "ws_proxy": H4}, P1, H3, H4),
        ({"rest_proxy": H3}, None, H3, None),
        ({}, URL(S5), S5, S5),  # cryptofeed types http_proxy StrOrURL
    ],
)
@pytest.mark.parametrize("feed_class", [BackpackFeed, BackpackCcxtFeed])
def test_http_proxy_precedence(feed_class: type, section: dict, http_proxy: Any, rest: Any, ws: Any) -> None:
    feed = feed_class(
        backpack_config=section, http_proxy=http_proxy,
        symbols=["BTC-USDC"], channels=[compat.TRADES], callbacks={compat.TRADES: Recorder()},
    )
    assert (feed.bp_config.rest_proxy, feed.bp_config.ws_proxy) == (rest, ws)
    if feed_class is BackpackCcxtFeed:
        options = ccxt_options(feed.bp_config)
        rest_options = [options[k] for k in ("httpProxy", "httpsProxy", "socksProxy") if k in options]
        ws_options = [options[k] for k in ("wsProxy", "wssProxy", "wsSocksProxy") if k in options]
        assert (rest_options, ws_options) == ([rest] if rest else [], [ws] if ws else [])
    else:
        transport = feed._make_transport()
        assert (transport._rest_proxy, transport._ws_proxy) == (rest, ws)


@pytest.mark.parametrize("feed_class", [BackpackFeed, BackpackCcxtFeed])
def test_bad_http_proxy_is_refused_without_echoing_it(feed_class: type) -> None:
    seed = base64.b64encode(bytes(range(32))).decode()
    cases = [
        ("ftp://u:Hunter2Hunter2@127.0.0.1:1", "scheme must be one of"),
        (seed, "looks like key material"),
        ("http://u:Hunter2Hunter2@h:99999", "not a valid URL"),
    ]
    for bad, problem in cases:
        with pytest.raises(ConfigError) as info:
            feed_class(http_proxy=bad, symbols=["BTC-USDC"], channels=[compat.TRADES],
                       callbacks={compat.TRADES: Recorder()})
        text = str(info.value)
        assert text.startswith("http_proxy: ") and problem in text
        assert "Hunter2" not in text and seed not in text
