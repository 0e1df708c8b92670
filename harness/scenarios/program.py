"""Fault programs as data: a short list of edits over a window of a recording's timeline, as JSON.

A program says what the *exchange* does wrong; what the client does about it is what the scenarios
test, so nothing here predicts the client. ``apply(program, reference)`` turns the clean recording
into a ``Faulted`` timeline: the steps the exchange takes (frames, pings, closes), with every dropped
frame still in place (marked ``lost``: the exchange sent it, the client never gets it), plus the rules
for the REST snapshot answers and for private subscribes.

The JSON (``docs/scenarios.md`` is its prose twin)::

    {"format": "backpack-faults", "version": 1,
     "window": {"start": 1000, "stop": 1400, "stretch": 40},
     "edits": [{"kind": "drop", "at": 17}, {"kind": "snapshot", "nth": 2, "answer": "stale", "by": 3}]}

``window`` picks recording events ``[start, stop)`` (absent: all of them) and multiplies their time
offsets by ``stretch`` (the replay runs on virtual time, so a stretched window costs nothing and lets
retries and reconnects happen inside it). ``at`` counts received frames inside the window from 0.
Every edit kind, its fields and their ranges are in ``KINDS``.

Edits apply in a fixed order of phases, whatever their order in the list, so a program means one
thing: silence (shifts everything from its frame on), hold and reorder (move one frame), corrupt and
truncate (change its text), duplicate (copies of the possibly changed text), drop, then insertions
(error frames, cuts, unanswered pings) at the final time of their frame. Edits of one phase apply in
list order.

The static model. Some faults lose frames through the client's reaction (a reconnect); a client
plugged in through the core runner gets a fixed timeline, so the loss is fixed here with the native
feed's defaults: after a cut, a dead link (``unanswered_ping``: ``PING_TIMEOUT_S`` after the ping) or
a silence of at least ``WATCHDOG_S`` (noticed ``WATCHDOG_S`` after the last step), the frames of the
next ``RECONNECT_S`` are ``reconnect_lost``, and a ``drop`` step marks where the client notices. The
full-feed replay ignores those marks: there the exchange delivers only what the feed has subscribed
to, when it has, and the feed's own watchdog and backoff decide.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness.recording.format import TransportErrorEvent, WsClose, WsPing, WsRecv
from harness.scenarios.oracle import FrameInfo, Reference

FORMAT = "backpack-faults"
VERSION = 1

WATCHDOG_S = 130.0  # backpack.config ws_watchdog_seconds default: no data or ping for this long = dead
PING_TIMEOUT_S = 20.0  # backpack.live LiveTransport ws_ping_timeout default: an unanswered ping kills the link
RECONNECT_S = 0.5  # the feed's first reconnect backoff is at most this (equal jitter on 0.5 s)
PRIVATE_RETRY_S = 0.5  # the first private resubscribe after a rejection waits at most this
MAX_EDITS = 64
MAX_STRETCH = 100_000
MAX_SECONDS = 3600.0

ERROR_MESSAGES = {4002: "Parse error", 4006: "Invalid stream", 4008: "Invalid depth window"}
"""Error frames the exchange documents; any other code gets ``OTHER_ERROR_MESSAGE`` (words that do not
look like an authentication refusal, so the frame tests error handling, not the private path)."""
OTHER_ERROR_MESSAGE = "Service busy"
REJECT_CODE = 4003  # the loopback server's code for a refused private subscribe (none is documented)
REJECT_MESSAGE = "Invalid signature"
CUT_CODE = 1006  # no close frame: the connection was cut
DEAF_CODE = 1011  # websockets' code when a keepalive ping went unanswered
WATCHDOG_CODE = 4000  # backpack.transport.WATCHDOG_CLOSE_CODE

ANSWERS = ("ok", "stale", "ahead", "5xx", "timeout", "malformed")
MALFORMED = ("json", "id", "levels")
CORRUPTIONS = ("syntax", "type", "missing")

_INT = "int"
_NUM = "number"
_STR = "str"


@dataclass(frozen=True, slots=True)
class Field:
    type: str
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[Any, ...] | None = None
    default: Any = None
    required: bool = False


_AT = Field(_INT, 0, None, required=True)
KINDS: dict[str, dict[str, Field]] = {
    "drop": {"at": _AT, "count": Field(_INT, 1, 1000, default=1)},
    "duplicate": {"at": _AT, "count": Field(_INT, 1, 16, default=1)},
    "reorder": {"at": _AT, "by": Field(_INT, 1, 64, default=1)},
    "hold": {"at": _AT, "seconds": Field(_NUM, 0, MAX_SECONDS, required=True)},
    "corrupt": {"at": _AT, "how": Field(_STR, choices=CORRUPTIONS, default="syntax")},
    "truncate": {"at": _AT, "keep": Field(_INT, 0, None, default=0)},
    "error_frame": {"at": _AT, "code": Field(_INT, 0, 65535, default=4006)},
    "silence": {"at": _AT, "seconds": Field(_NUM, 0, MAX_SECONDS, required=True)},
    "cut": {"at": _AT},
    "unanswered_ping": {"at": _AT},
    "reject_private": {"count": Field(_INT, 1, 100, default=1)},
    "snapshot": {
        "nth": Field(_INT, 1, 10_000, required=True),
        "symbol": Field(_STR, default=None),
        "answer": Field(_STR, choices=ANSWERS, required=True),
        "by": Field(_INT, 1, 10_000, default=1),
        "status": Field(_INT, 500, 599, default=503),
        "how": Field(_STR, choices=MALFORMED, default="json"),
        "delay": Field(_NUM, 0, MAX_SECONDS, default=None),
    },
}
"""Every edit kind and its fields (type, range, default). ``at`` is a frame of the window."""

FRAME_KINDS = frozenset(k for k, fields in KINDS.items() if "at" in fields)
LOSSY = frozenset({"drop", "reorder", "hold", "corrupt", "truncate", "silence", "cut", "unanswered_ping"})
"""Kinds that can cost a client book information (reorder and hold: a frame arrives after later ones)."""


class ProgramError(ValueError):
    """A program that is not valid JSON, breaks the format, or does not fit the recording; one line."""


@dataclass(frozen=True, slots=True)
class Edit:
    kind: str
    params: tuple[tuple[str, Any], ...] = ()

    def get(self, name: str) -> Any:
        for key, value in self.params:
            if key == name:
                return value
        return KINDS[self.kind][name].default

    @property
    def at(self) -> int | None:
        return self.get("at") if "at" in KINDS[self.kind] else None

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, **dict(self.params)}

    @classmethod
    def make(cls, kind: str, **params: Any) -> Edit:
        return cls.from_json({"kind": kind, **params}, 0)

    @classmethod
    def from_json(cls, obj: object, number: int) -> Edit:
        where = f"edit {number}"
        if not isinstance(obj, dict):
            raise ProgramError(f"{where} must be an object with a 'kind', got {_describe(obj)}")
        kind = obj.get("kind")
        if kind not in KINDS:
            raise ProgramError(f"{where}: 'kind' must be one of {', '.join(KINDS)}, got {_describe(kind)}")
        fields = KINDS[kind]
        unknown = sorted(set(obj) - set(fields) - {"kind"})
        if unknown:
            raise ProgramError(f"{where} ({kind}): unknown field {unknown[0]!r}; {kind} takes "
                               f"{', '.join(fields) or 'no fields'}")
        params = []
        for name, spec in fields.items():
            if name not in obj or (obj[name] is None and not spec.required):
                if spec.required:
                    raise ProgramError(f"{where} ({kind}): {name!r} is required")
                continue
            params.append((name, _check(obj[name], spec, f"{where} ({kind}): {name!r}")))
        return cls(kind, tuple(params))


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return repr(value[:40])
    return {list: "an array", dict: "an object"}.get(type(value), type(value).__name__)


def _check(value: Any, spec: Field, where: str) -> Any:
    if spec.type == _INT:
        if type(value) is not int:
            raise ProgramError(f"{where} must be an integer, got {_describe(value)}")
    elif spec.type == _NUM:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            raise ProgramError(f"{where} must be a finite number, got {_describe(value)}")
    elif not isinstance(value, str) or not value:
        raise ProgramError(f"{where} must be a non-empty string, got {_describe(value)}")
    if spec.choices is not None and value not in spec.choices:
        raise ProgramError(f"{where} must be one of {', '.join(map(str, spec.choices))}, got {_describe(value)}")
    if spec.minimum is not None and value < spec.minimum:
        raise ProgramError(f"{where} must be >= {spec.minimum:g}, got {_describe(value)}")
    if spec.maximum is not None and value > spec.maximum:
        raise ProgramError(f"{where} must be <= {spec.maximum:g}, got {_describe(value)}")
    return value


@dataclass(frozen=True, slots=True)
class Window:
    start: int = 0
    stop: int | None = None  # None: to the end
    stretch: int = 1

    def to_json(self) -> dict[str, Any]:
        return {"start": self.start, "stop": self.stop, "stretch": self.stretch}


@dataclass(frozen=True, slots=True)
class Program:
    edits: tuple[Edit, ...] = ()
    window: Window | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"format": FORMAT, "version": VERSION}
        if self.window is not None:
            out["window"] = self.window.to_json()
        out["edits"] = [e.to_json() for e in self.edits]
        return out

    def dumps(self) -> str:
        """Canonical text: the same program is always the same bytes (it is part of a failure report)."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(sorted({e.kind for e in self.edits}))

    @classmethod
    def from_json(cls, obj: object) -> Program:
        if not isinstance(obj, dict):
            raise ProgramError(f"a fault program is a JSON object, got {_describe(obj)}")
        if obj.get("format", FORMAT) != FORMAT:
            raise ProgramError(f"'format' must be {FORMAT!r}, got {_describe(obj.get('format'))}")
        version = obj.get("version", VERSION)
        if version != VERSION:
            raise ProgramError(f"'version' {_describe(version)} is not one this tool reads (it reads {VERSION})")
        unknown = sorted(set(obj) - {"format", "version", "window", "edits"})
        if unknown:
            raise ProgramError(f"unknown top-level field {unknown[0]!r} (a program has format, version, "
                               "window, edits)")
        edits = obj.get("edits", [])
        if not isinstance(edits, list):
            raise ProgramError(f"'edits' must be an array, got {_describe(edits)}")
        if len(edits) > MAX_EDITS:
            raise ProgramError(f"'edits' has {len(edits)} edits; at most {MAX_EDITS}")
        return cls(tuple(Edit.from_json(e, i) for i, e in enumerate(edits)), _window(obj.get("window")))

    @classmethod
    def loads(cls, text: str | bytes) -> Program:
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ProgramError(f"not JSON: {exc}") from None
        return cls.from_json(obj)


def _window(obj: object) -> Window | None:
    if obj is None:
        return None
    if not isinstance(obj, dict):
        raise ProgramError(f"'window' must be an object (start, stop, stretch), got {_describe(obj)}")
    unknown = sorted(set(obj) - {"start", "stop", "stretch"})
    if unknown:
        raise ProgramError(f"window: unknown field {unknown[0]!r} (a window has start, stop, stretch)")
    start = _check(obj.get("start", 0), Field(_INT, 0), "window: 'start'")
    stop = obj.get("stop")
    if stop is not None:
        stop = _check(stop, Field(_INT, 1), "window: 'stop'")
        if stop <= start:
            raise ProgramError(f"window: 'stop' ({stop}) must be greater than 'start' ({start})")
    stretch = _check(obj.get("stretch", 1), Field(_INT, 1, MAX_STRETCH), "window: 'stretch'")
    return Window(start, stop, stretch)


MAX_PROGRAM_BYTES = 1 << 20


def load_program(path: str | os.PathLike[str]) -> Program:
    try:
        with open(path, "rb") as f:
            text = f.read(MAX_PROGRAM_BYTES + 1)
    except OSError as exc:
        raise ProgramError(f"cannot read fault program {os.fspath(path)}: {exc.strerror or exc}") from None
    if len(text) > MAX_PROGRAM_BYTES:
        raise ProgramError(f"{os.path.basename(os.fspath(path))}: larger than {MAX_PROGRAM_BYTES} bytes; a fault "
                           f"program is a short list of edits (at most {MAX_EDITS})")
    try:
        return Program.loads(text)
    except ProgramError as exc:
        raise ProgramError(f"{os.path.basename(os.fspath(path))}: {exc}") from None


# -- the faulted timeline ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the exchange does in a faulted replay, at ``t`` (ns of virtual time from the start).

    ``kind``: ``frame`` (a text frame for the client), ``ping`` (a protocol ping), ``close`` (the
    exchange closes or cuts the socket), ``deaf`` (from here the exchange answers no ping: the link dies
    ``PING_TIMEOUT_S`` later) or ``drop`` (static model only: the client notices a dead link here).
    ``origin`` is the clean event it comes from (inserted steps: the event of their frame).
    """

    t: int
    kind: str
    origin: int
    data: str | bytes | None = None
    receipt: int | None = None
    frame: FrameInfo | None = None  # the clean frame this step carries (edited or not)
    edit: str | None = None  # the edit that made or changed it
    lost: bool = False  # dropped: sent by the exchange, never received
    reconnect_lost: bool = False  # static model: sent while the client was reconnecting
    code: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        """Carries its clean frame's exact text (moved or repeated, but unchanged)."""
        return self.frame is not None and self.edit not in ("corrupt", "truncate")

    @property
    def stream(self) -> str | None:
        return self.frame.stream if self.frame is not None else None

    @property
    def bad(self) -> bool:
        """A frame no client can take as market data: it must produce an error event."""
        if self.kind != "frame":
            return False
        if self.edit in ("corrupt", "truncate", "error_frame", "reject_private"):
            return True
        return self.frame is not None and self.frame.kind in ("error", "invalid")


@dataclass(frozen=True, slots=True)
class Answer:
    """What the exchange does with one depth request."""

    kind: str  # one of ANSWERS
    status: int = 200
    body: bytes = b""
    timeout: bool = False
    sequence: int | None = None  # lastUpdateId of a book answer

    @property
    def faulted(self) -> bool:
        return self.kind != "ok"


@dataclass
class Faulted:
    """A program applied to a recording: the exchange's steps and its answers (see the module docstring)."""

    program: Program
    reference: Reference
    steps: list[Step]
    frames: list[FrameInfo]  # the window's clean frames (what ``at`` counts)
    start: int  # first event index of the window
    stop: int  # one past the last
    snapshot_edits: list[Edit] = field(default_factory=list)
    rejections: int = 0

    def exchange(self) -> Exchange:
        """A fresh exchange for one run (request counters start at zero)."""
        return Exchange(self)

    @property
    def symbols(self) -> list[str]:
        return sorted({f.symbol for f in self.frames if f.depth and f.symbol})


class Exchange:
    """The exchange's side of one run: counts depth requests and answers them by the snapshot rule."""

    def __init__(self, faulted: Faulted) -> None:
        self.faulted = faulted
        self.requests = 0
        self.per_symbol: dict[str, int] = {}
        self.rejected = 0

    def plan(self, symbol: str) -> Edit | None:
        """A depth request for ``symbol`` arrives: the snapshot edit it meets (None: answered truly)."""
        self.requests += 1
        n = self.per_symbol[symbol] = self.per_symbol.get(symbol, 0) + 1
        return next((e for e in self.faulted.snapshot_edits
                     if (e.get("symbol") is None and e.get("nth") == self.requests)
                     or (e.get("symbol") == symbol and e.get("nth") == n)), None)

    @staticmethod
    def delay(edit: Edit | None, default: float) -> float:
        """Seconds until the answer (a timeout: until the client gives up, ``default`` being its timeout)."""
        if edit is not None and edit.get("delay") is not None:
            return float(edit.get("delay"))
        return default

    def answer(self, symbol: str, position: int, edit: Edit | None, limit: int = 1000) -> Answer:
        """The answer once it is due, when the exchange has sent up to event ``position``."""
        kind = "ok" if edit is None else edit.get("answer")
        if kind == "5xx":
            return Answer(kind, edit.get("status"), b"Service Unavailable")  # type: ignore[union-attr]
        if kind == "timeout":
            return Answer(kind, timeout=True)
        shift = 0 if edit is None else {"stale": -edit.get("by"), "ahead": edit.get("by")}.get(kind, 0)
        ref = self.faulted.reference
        k = ref.answer_point(symbol, position, shift)
        if k is None:
            return Answer(kind, 503, f"Service Unavailable: no {symbol} book is known here".encode())
        book = ref.books[symbol]
        body = book.body(k, limit)
        if kind == "malformed":
            return Answer(kind, 200, _malformed(body, edit.get("how")))  # type: ignore[union-attr]
        return Answer(kind, 200, json.dumps(body, separators=(",", ":")).encode(), sequence=book.points[k].sequence)

    def reject_private(self) -> bool:
        """Whether the next private subscribe is refused (the first ``reject_private`` count ones are)."""
        if self.rejected < self.faulted.rejections:
            self.rejected += 1
            return True
        return False


def _malformed(body: dict[str, Any], how: str) -> bytes:
    if how == "id":
        return json.dumps({**body, "lastUpdateId": "not-a-number"}).encode()
    if how == "levels":
        return json.dumps({**body, "bids": [["1", "2", "3"], "x"]}).encode()
    text = json.dumps(body)
    return text[: max(1, len(text) // 2)].encode()  # cut mid-body: not JSON


def reject_frame() -> str:
    return json.dumps({"id": None, "error": {"code": REJECT_CODE, "message": REJECT_MESSAGE}},
                      separators=(",", ":"))


def error_frame(code: int) -> str:
    message = ERROR_MESSAGES.get(code, OTHER_ERROR_MESSAGE)
    return json.dumps({"id": None, "error": {"code": code, "message": message}}, separators=(",", ":"))


def corrupt(text: str | bytes, how: str) -> str:
    """A frame that breaks the envelope every data frame has, so no client can take it as market data:
    ``syntax`` (not JSON: the first key loses its colon), ``type`` (``data`` is a string), ``missing``
    (no ``data``). Deterministic, so a program replays; a frame without ``data`` gets ``syntax``."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if how != "syntax":
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError):
            obj = None
        if isinstance(obj, dict) and "data" in obj and "stream" in obj:
            if how == "type":
                obj["data"] = "corrupt"
            else:
                del obj["data"]
            return json.dumps(obj, separators=(",", ":"))
    i = text.find(":")
    broken = text[:i] + ";" + text[i + 1:] if i >= 0 else text
    try:
        json.loads(broken)
    except (ValueError, RecursionError):
        return broken
    return "#" + broken  # the colon was not a key's (or there was none): still JSON, so make it not


def truncate(text: str | bytes, keep: int) -> str | bytes:
    if len(text) <= 1:
        return text[:0]
    return text[: min(keep, len(text) - 1)]


# -- apply ------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Slot:
    """A step being built: sorted by ``key`` at the end (time, then recorded order, then insertion)."""

    step: Step
    key: tuple[int, int, int]


def window_frames(reference: Reference, window: Window | None) -> tuple[int, int, list[FrameInfo]]:
    start = window.start if window is not None else 0
    stop = len(reference.events) if window is None or window.stop is None else min(window.stop, len(reference.events))
    if start >= len(reference.events):
        raise ProgramError(f"window: 'start' {start} is past the recording's {len(reference.events)} events")
    return start, stop, reference.frames_between(start, stop)


def apply(program: Program, reference: Reference) -> Faulted:
    """The faulted timeline of ``program`` over ``reference`` (raises ``ProgramError`` when it does not fit)."""
    start, stop, frames = window_frames(reference, program.window)
    stretch = program.window.stretch if program.window is not None else 1
    for i, edit in enumerate(program.edits):
        at = edit.at
        if at is not None and at >= len(frames):
            raise ProgramError(f"edit {i} ({edit.kind}): 'at' is {at}, but the window has {len(frames)} frames "
                               f"(0..{len(frames) - 1})")
    events = reference.events
    t0 = events[start].t

    def vt(t: int) -> int:
        return (t - t0) * stretch

    slots: list[_Slot] = []
    frame_slot: dict[int, _Slot] = {}  # frame number in the window -> its slot
    by_index = {f.index: f for f in frames}
    number = {f.index: n for n, f in enumerate(frames)}
    for i in range(start, stop):
        event = events[i]
        key = (vt(event.t), i, 0)
        if isinstance(event, WsRecv):
            info = by_index[i]
            slot = _Slot(Step(key[0], "frame", i, event.data, event.receipt, info), key)
            frame_slot[number[i]] = slot
        elif isinstance(event, WsPing):
            slot = _Slot(Step(key[0], "ping", i, event.data, event.receipt), key)
        elif (isinstance(event, WsClose) and event.via == "recv") or (
                isinstance(event, TransportErrorEvent) and event.op == "recv"):
            code = event.code if isinstance(event, WsClose) else None
            reason = event.reason if isinstance(event, WsClose) else event.message
            slot = _Slot(Step(key[0], "close", i, code=code, reason=reason), key)
        else:
            continue  # the feed's own actions and REST: a faulted replay answers those itself
        slots.append(slot)

    def edits_of(*kinds: str) -> Iterator[Edit]:
        return (e for e in program.edits if e.kind in kinds)

    # 1. silence: everything from the frame on happens ``seconds`` later
    silences: list[tuple[int, int]] = []  # (time of the last step before, virtual seconds in ns)
    for edit in edits_of("silence"):
        slot = frame_slot[edit.at]  # type: ignore[index]
        shift = round(edit.get("seconds") * 1e9)
        pivot = slot.key
        before = max((s.key[0] for s in slots if s.key < pivot), default=pivot[0])
        silences.append((before, shift))
        for s in slots:
            if s.key >= pivot:
                s.key = (s.key[0] + shift, s.key[1], s.key[2])
                s.step = replace(s.step, t=s.key[0])
    # 2. hold and reorder move one frame
    for edit in edits_of("hold", "reorder"):
        slot = frame_slot[edit.at]  # type: ignore[index]
        if edit.kind == "hold":
            slot.key = (slot.key[0] + round(edit.get("seconds") * 1e9), slot.key[1], slot.key[2])
        else:
            target = frame_slot.get(min(edit.at + edit.get("by"), len(frames) - 1))  # type: ignore[operator]
            if target is not None and target is not slot:
                slot.key = (target.key[0], target.key[1], target.key[2] + 1)
        slot.step = replace(slot.step, t=slot.key[0], edit=slot.step.edit or edit.kind)
    # 3. content
    for edit in edits_of("corrupt", "truncate"):
        slot = frame_slot[edit.at]  # type: ignore[index]
        data = slot.step.data
        new = corrupt(data, edit.get("how")) if edit.kind == "corrupt" else truncate(data, edit.get("keep"))  # type: ignore[arg-type]
        slot.step = replace(slot.step, data=new, edit=edit.kind)
    # 4. duplicates (right after the frame, the same text)
    for edit in edits_of("duplicate"):
        slot = frame_slot[edit.at]  # type: ignore[index]
        for c in range(edit.get("count")):
            key = (slot.key[0], slot.key[1], slot.key[2] + 10 + c)
            slots.append(_Slot(replace(slot.step, edit=slot.step.edit or "duplicate"), key))
    # 5. drops (every copy of the frame)
    for edit in edits_of("drop"):
        for n in range(edit.at, min(edit.at + edit.get("count"), len(frames))):  # type: ignore[operator]
            origin = frame_slot[n].step.origin
            for s in slots:
                if s.step.kind == "frame" and s.step.origin == origin and s.step.edit != "error_frame":
                    s.step = replace(s.step, lost=True, edit=s.step.edit or "drop")
    # 6. insertions at the frame's final time
    for edit in edits_of("error_frame", "cut", "unanswered_ping"):
        slot = frame_slot[edit.at]  # type: ignore[index]
        key = (slot.key[0], slot.key[1], slot.key[2] - 1)
        if edit.kind == "error_frame":
            step = Step(key[0], "frame", slot.step.origin, error_frame(edit.get("code")), slot.step.receipt,
                        edit="error_frame")
        elif edit.kind == "cut":
            step = Step(key[0], "close", slot.step.origin, code=CUT_CODE, reason="connection cut", edit="cut")
        else:
            step = Step(key[0], "deaf", slot.step.origin, edit="unanswered_ping")
        slots.append(_Slot(step, key))
    rejections = sum(e.get("count") for e in edits_of("reject_private"))
    if rejections:
        first = min((s.key for s in slots), default=(0, start, 0))
        for r in range(rejections):
            key = (first[0], first[1], -100 + r)
            slots.append(_Slot(Step(key[0], "frame", start, reject_frame(), None, edit="reject_private"), key))
    slots.sort(key=lambda s: s.key)
    steps = [s.step for s in slots]
    steps = _static_losses(steps, silences, rejections)
    return Faulted(program, reference, steps, frames, start, stop, list(edits_of("snapshot")), rejections)


def _static_losses(steps: list[Step], silences: Sequence[tuple[int, int]], rejections: int) -> list[Step]:
    """Mark what a reconnecting client misses, and where it notices a dead link (see the module docstring)."""
    reconnect = round(RECONNECT_S * 1e9)
    outages: list[tuple[int, Step | None]] = []  # (time the client notices, the step to insert or None)
    for step in steps:
        if step.kind == "close" and step.edit == "cut":
            outages.append((step.t, None))
        elif step.kind == "deaf":
            t = step.t + round(PING_TIMEOUT_S * 1e9)
            outages.append((t, Step(t, "drop", step.origin, code=DEAF_CODE, reason="keepalive ping timeout")))
    watchdog = round(WATCHDOG_S * 1e9)
    for before, shift in silences:
        if shift >= watchdog:
            t = before + watchdog
            origin = next((s.origin for s in steps if s.t >= t), steps[-1].origin if steps else 0)
            outages.append((t, Step(t, "drop", origin, code=WATCHDOG_CODE, reason="watchdog")))
    private_until = steps[0].t + round(rejections * PRIVATE_RETRY_S * 1e9) if rejections and steps else None
    if not outages and private_until is None:
        return steps
    out: list[Step] = []
    inserts = sorted((o for o in outages if o[1] is not None), key=lambda o: o[0])
    j = 0
    for step in steps:
        while j < len(inserts) and inserts[j][0] <= step.t:
            out.append(inserts[j][1])  # type: ignore[arg-type]
            j += 1
        if step.kind == "frame" and step.edit not in ("reject_private",):
            if any(t <= step.t < t + reconnect for t, _ in outages):
                step = replace(step, reconnect_lost=True)
            elif private_until is not None and step.frame is not None and step.frame.private \
                    and step.t < private_until:
                step = replace(step, reconnect_lost=True)
        out.append(step)
    out.extend(o[1] for o in inserts[j:])  # type: ignore[misc]
    return out


def describe(program: Program) -> str:
    """One line naming the edits: for failure reports and test ids."""
    parts = []
    for e in program.edits:
        args = ",".join(f"{k}={v}" for k, v in e.params)
        parts.append(f"{e.kind}({args})")
    return "; ".join(parts) or "no edits"


def edits_by_kind(program: Program) -> Mapping[str, int]:
    counts: dict[str, int] = {}
    for e in program.edits:
        counts[e.kind] = counts.get(e.kind, 0) + 1
    return counts


__all__ = [
    "ANSWERS", "CORRUPTIONS", "FORMAT", "KINDS", "LOSSY", "MALFORMED", "PING_TIMEOUT_S", "RECONNECT_S",
    "VERSION", "WATCHDOG_S", "Answer", "Edit", "Exchange", "Faulted", "Program", "ProgramError", "Step",
    "Window", "apply", "describe", "load_program",
]
