"""Streaming a recording's events fast, for the core replay of big recordings.

``harness.recording.reader`` validates every line and reports damage precisely; at about 15 µs an event
it is the larger part of a core replay. Here each line is decoded with orjson and ``ws_recv`` events
(nearly all of them) are built directly when their fields have the right types; every other event goes
through ``event_from_json``. The first line this path cannot take (a JSON error, a wrong type, a cut or
corrupt zstd frame) hands over to the careful reader from that event on, so damage is reported exactly as the
reader reports it, after every event before it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import orjson

from harness.recording.format import Event, Header, WsRecv, event_from_json
from harness.recording.reader import RecordingReader

from .streams import lines


class Timeline:
    """One pass over a recording: ``header`` now, ``events()`` streamed; ``count`` events so far."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        reader = RecordingReader(self.path)  # header, version and open errors are raised here, as usual
        self.header: Header = reader.header
        reader.close()
        self.count = 0

    def events(self) -> Iterator[Event]:
        try:
            for event in self._fast():
                self.count += 1
                yield event
            return
        except (ValueError, TypeError, KeyError, AttributeError, OSError):
            pass  # the careful reader takes over from the event that failed here
        reader = RecordingReader(self.path)
        skipped = 0
        for event in reader.events():
            if skipped < self.count:
                skipped += 1
                continue
            self.count += 1
            yield event

    def _fast(self) -> Iterator[Event]:
        recv = WsRecv
        last = 0
        first = True
        for line, terminated in lines(self.path):
            if first:
                first = False  # the header, read by the careful reader already
                continue
            if not terminated:
                raise ValueError("the last line is not terminated")  # the careful reader decides
            if not line.strip():
                continue
            obj = orjson.loads(line)
            if obj.get("k") == "ws_recv":
                t, conn, data, receipt = obj["t"], obj["c"], obj["d"], obj["r"]
                if (type(t) is int and t >= last and type(conn) is str and type(data) is str
                        and type(receipt) is int and "b" not in obj):
                    last = t
                    yield recv(t, conn, data, receipt)
                    continue
            event = event_from_json(obj)
            if event.t < last:
                raise ValueError("t goes backwards")  # the careful reader words it
            last = event.t
            yield event


__all__ = ["Timeline"]
