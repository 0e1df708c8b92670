"""Text for a divergence or a violation: where it is on the timeline, the frame behind it, the lines around it."""

from __future__ import annotations

from typing import Any

from harness.recording.format import (
    Event,
    HttpRequestEvent,
    HttpResponseEvent,
    WsClose,
    WsOpen,
    WsRecv,
    WsSend,
)

from .diff import Divergence
from .sides import Item

TEXT_LIMIT = 600


def _clip(text: str, limit: int = TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} chars)"


def describe_event(index: int | None, event: Event | None) -> str:
    """``event 1234 (ws_recv on ws-1, t=12.345678 s): {...}``: the 1-based number ``replay`` errors use."""
    if index is None:
        return "no recording event (this side is not a replay)"
    if event is None:
        return f"event {index + 1}"
    conn = getattr(event, "conn", None)
    head = f"event {index + 1} ({event.kind}{f' on {conn}' if conn else ''}, t={event.t / 1e9:.6f} s)"
    payload = ""
    if isinstance(event, WsRecv | WsSend):
        payload = event.data if isinstance(event.data, str) else f"<{len(event.data)} bytes>"
    elif isinstance(event, HttpResponseEvent):
        payload = f"HTTP {event.status} " + event.body.decode("utf-8", "replace")
    elif isinstance(event, HttpRequestEvent):
        payload = f"{event.method} {event.url}"
    elif isinstance(event, WsClose):
        payload = f"code {event.code} {event.reason!r} via {event.via}"
    elif isinstance(event, WsOpen):
        payload = event.url
    return f"{head}: {_clip(payload)}" if payload else head


def _line(mark: str, index: int, item: Item | None) -> str:
    if item is None:
        return f"{mark} {index:>9}  (ended)"
    where = f" [event {item.frame + 1}]" if item.frame is not None else ""
    return f"{mark} {index:>9}{where}  {_clip(item.line, 1500)}"


def render_divergence(d: Divergence, name_a: str, name_b: str, frame_text: str) -> str:
    out = [f"first divergence at line {d.index + 1} (index {d.index})",
           f"input: {frame_text}"]
    if d.fields:
        out.append("fields: " + "; ".join(f"{f.field}: {_clip(repr(f.a), 160)} != {_clip(repr(f.b), 160)}"
                                          for f in d.fields))
    elif d.a is None or d.b is None:
        out.append(f"{name_a if d.a is None else name_b} ended here; the other side goes on")
    start = d.index - len(d.before)
    for side, name, mark in (("a", name_a, "-"), ("b", name_b, "+")):
        out.append(f"{mark}{mark}{mark} {name}")
        for k, pair in enumerate(d.before):
            out.append(_line(" ", start + k, pair[0] if side == "a" else pair[1]))
        out.append(_line(mark, d.index, d.a if side == "a" else d.b))
        for k, item in enumerate(d.after_a if side == "a" else d.after_b):
            out.append(_line(" ", d.index + 1 + k, item))
    return "\n".join(out)


def divergence_json(d: Divergence, name_a: str, name_b: str, frame: Event | None) -> dict[str, Any]:
    return {
        "index": d.index, "frame": d.frame, "event": None if d.frame is None else d.frame + 1,
        "t": None if frame is None else frame.t, "kind": None if frame is None else frame.kind,
        "a": {"name": name_a, "line": None if d.a is None else d.a.line},
        "b": {"name": name_b, "line": None if d.b is None else d.b.line},
        "fields": [{"field": f.field, "a": f.a, "b": f.b} for f in d.fields],
    }


__all__ = ["describe_event", "divergence_json", "render_divergence"]
