"""Shared sample events and file helpers for the recording tests."""

from __future__ import annotations

from pathlib import Path

import zstandard

from harness.recording.format import (
    Header,
    HttpRequestEvent,
    HttpResponseEvent,
    TransportErrorEvent,
    WsClose,
    WsOpen,
    WsPing,
    WsRecv,
    WsSend,
)
from harness.recording.writer import write_recording

HEADER = Header(created_at="2025-01-01T00:00:00.000000Z", start_us=1_735_689_600_000_000,
                rest_url="http://127.0.0.1:1", ws_url="ws://127.0.0.1:1/ws", symbols=("SOL-USDC",),
                channels=("trades",))


def sample_events() -> list:
    """Twelve events of every common kind, in time order, nothing secret in them."""
    trade = '{"stream":"trade.SOL_USDC","data":{"e":"trade","s":"SOL_USDC","p":"18.68","q":"0.1","t":%d}}'
    return [
        HttpRequestEvent(10, "http-1", "GET", "http://127.0.0.1:1/api/v1/markets", (("marketType", "SPOT"),)),
        HttpResponseEvent(20, "http-1", 200, {"Content-Type": "application/json"}, b"[]", 1_000_020),
        WsOpen(30, "ws-1", "ws://127.0.0.1:1/ws"),
        WsSend(40, "ws-1", '{"method":"SUBSCRIBE","params":["trade.SOL_USDC"]}'),
        *[WsRecv(50 + i, "ws-1", trade % i, 1_000_050 + i) for i in range(5)],
        WsPing(60, "ws-1"),
        WsRecv(70, "ws-1", b"\x00\xffbinary", 1_000_070),
        WsClose(80, "ws-1", 1001, "Server shutdown", "recv"),
        TransportErrorEvent(90, None, "connect", "TransportError", "refused", "ws://127.0.0.1:1/ws"),
    ]


def write_sample(path: Path, **kwargs) -> list:
    events = sample_events()
    write_recording(path, HEADER, events, **kwargs)
    return events


def zstd_frames(data: bytes) -> list[tuple[int, int, bytes]]:
    """``(start, end, decompressed)`` of every frame, found with python-zstandard alone (an oracle
    independent of the reader under test)."""
    out = []
    start = 0
    while start < len(data):
        dobj = zstandard.ZstdDecompressor().decompressobj()
        content = dobj.decompress(data[start:])
        end = len(data) - len(dobj.unused_data)
        out.append((start, end, content))
        start = end
    return out
