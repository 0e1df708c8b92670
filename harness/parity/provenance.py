"""Which recorded event a normalized record came from, so a difference can show the frame that caused it.

The native replay stamps every record with the receipt the recording holds for the frame (or REST
answer) being handled, and the ccxt oracle does the same; so ``receipt`` finds the event. Receipts are
unique in practice (µs of the receiving clock); where two events share one, the one whose stream names
the record's symbol is taken.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from harness.recording.format import HttpResponseEvent, WsRecv
from harness.recording.reader import Recording

FRAME_TEXT_LIMIT = 2000


class Frames:
    def __init__(self, recording: Recording) -> None:
        self.events = recording.events
        self._by_receipt: dict[int, list[int]] = {}
        for i, event in enumerate(recording.events):
            if isinstance(event, WsRecv | HttpResponseEvent):
                self._by_receipt.setdefault(event.receipt, []).append(i)
        self._data: dict[int, Any] = {}

    def locate(self, record: dict[str, Any]) -> int | None:
        receipt = record.get("receipt")
        if type(receipt) is not int:
            return None
        candidates = self._by_receipt.get(receipt)
        if not candidates:
            return None
        if len(candidates) == 1:
            return candidates[0]
        native = str(record.get("symbol") or "").replace("-", "_")
        for i in candidates:
            if native and native in self.text(i)[:200]:
                return i
        return candidates[0]

    def annotate(self, records: Iterable[dict[str, Any]]) -> None:
        """Give each record without one a ``frame`` (its event index, or None)."""
        for record in records:
            if "frame" not in record:
                record["frame"] = self.locate(record)

    def text(self, index: int | None) -> str:
        """The event's exact payload text (a WS frame, or a REST answer's body), truncated for reports."""
        if index is None or not 0 <= index < len(self.events):
            return ""
        event = self.events[index]
        if isinstance(event, WsRecv):
            data = event.data if isinstance(event.data, str) else event.data.decode("utf-8", "replace")
        elif isinstance(event, HttpResponseEvent):
            data = event.body.decode("utf-8", "replace")
        else:
            return ""
        return data if len(data) <= FRAME_TEXT_LIMIT else data[:FRAME_TEXT_LIMIT] + "..."

    def data(self, index: int | None) -> dict[str, Any] | None:
        """The frame's ``data`` object (what the exchange documents field by field), or None."""
        if index is None:
            return None
        if index not in self._data:
            parsed: Any = None
            event = self.events[index] if 0 <= index < len(self.events) else None
            if isinstance(event, WsRecv):
                try:
                    doc = json.loads(event.data)
                except (ValueError, TypeError, RecursionError):
                    doc = None
                parsed = doc.get("data") if isinstance(doc, dict) and isinstance(doc.get("data"), dict) else None
            self._data[index] = parsed
        return self._data[index]

    def repeats(self, index: int, fields: tuple[str, ...]) -> bool:
        """Did an earlier frame carry the same values (as text) of ``fields``? (the exchange repeating itself)"""
        data = self.data(index)
        if data is None or any(data.get(f) is None for f in fields):
            return False
        key = tuple(str(data.get(f)) for f in fields)
        for i in range(index - 1, -1, -1):
            if isinstance(self.events[i], WsRecv):
                other = self.data(i)
                if other is not None and tuple(str(other.get(f)) for f in fields) == key:
                    return True
        return False

    def time_t(self, index: int | None) -> int | None:
        """The event's monotonic offset (ns from the recording's start)."""
        if index is None or not 0 <= index < len(self.events):
            return None
        return self.events[index].t
