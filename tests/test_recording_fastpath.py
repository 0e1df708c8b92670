"""The recorder's per-frame path (``write_recv``, ``write`` of a text ``WsRecv``) writes exactly what the general
path writes, redacts exactly as it does, and is what a recorded feed's frames take."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path
from urllib.parse import quote

from hypothesis import given, settings
from hypothesis import strategies as st

from backpack.transport import WsFrame
from harness.recording.format import REDACTED, WsOpen, WsRecv
from harness.recording.reader import read_recording
from harness.recording.redaction import Redactor
from harness.recording.writer import RecordingWriter, dump_line
from harness.transports.recording import RecordingTransport

from .recording_helpers import HEADER

SEED = base64.b64encode(bytes(range(32))).decode()  # '+', '/' and '=' in it
API_KEY = base64.b64encode(bytes(range(100, 132))).decode()
SPELLINGS = [SEED, API_KEY, quote(SEED, safe=""), json.dumps(SEED)[1:-1], SEED.rstrip("="),
             SEED.translate(str.maketrans("+/", "-_")), "u:pw@", "ws://user:hunter22@h/x"]


def _reference(redactor: Redactor, event: WsRecv) -> bytes:
    """What the general path (redact the event, ``to_json``, stdlib ``json``) writes for ``event``."""
    return dump_line(redactor.event(event).to_json())


def _unfiltered(secrets: list[str]) -> Redactor:
    """A redactor that runs its alternation on every value, as before the substring prefilter."""
    r = Redactor(secrets)
    r._needles = None
    r._byte_needles = None
    return r


payloads = st.lists(st.one_of(st.text(), st.sampled_from(SPELLINGS), st.sampled_from(
    ['"signature":["a","b"]', '{"method":"SUBSCRIBE","signature":["k","s","1","5"]}', '\\"', "\x00\x1f\x7f",
     "\u2028\ud800", "é€😀"])), max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(texts=st.lists(payloads, min_size=1, max_size=8), conn=st.sampled_from(["ws-1", "w\"s\\2", "é", "\ud800"]),
       receipt=st.integers(min_value=-(2**70), max_value=2**70), secrets=st.sampled_from([[], [SEED, API_KEY]]))
def test_frame_lines_are_those_of_the_general_path(tmp_path_factory, texts: list[str], conn: str, receipt: int,
                                                    secrets: list[str]) -> None:
    """For any frame text (quotes, escapes, control characters, non-ASCII, lone surrogates, secrets in any
    spelling), the per-frame path writes the byte-identical line the general path writes."""
    path = tmp_path_factory.mktemp("fast") / "r.jsonl"
    clock = iter(range(10**9, 10**12, 1000))
    writer = RecordingWriter(path, HEADER, secrets=secrets, clock_ns=lambda: next(clock))
    for i, text in enumerate(texts):
        if i % 2:
            writer.write_recv(conn, text, receipt)
        else:
            writer.write(WsRecv(writer.now_ns(), conn, text, receipt))
    writer.close()
    lines = path.read_bytes().splitlines(keepends=True)[1:-1]  # header and end aside
    reference = _unfiltered(secrets)
    assert len(lines) == len(texts)
    for line, text in zip(lines, texts, strict=True):
        t = json.loads(line)["t"]
        assert line == _reference(reference, WsRecv(t, conn, text, receipt))


@settings(max_examples=300, deadline=None)
@given(value=payloads)
def test_prefiltered_redaction_equals_the_full_scan(value: str) -> None:
    """For any text or bytes, redaction with the substring prefilter gives what the full alternation gives."""
    secrets = [SEED, API_KEY, "++//==++//", "abcd" * 3]
    fast, full = Redactor(secrets), _unfiltered(secrets)
    assert fast.text(value) == full.text(value)
    assert fast.ws_text(value) == full.ws_text(value)
    assert fast.ws_text(value) == fast.text(fast._signatures(value) if '"signature"' in value else value)
    raw = value.encode("utf-8", "surrogatepass")
    assert fast.binary(raw) == full.binary(raw)
    for sub in (_Str(value), _Bytes(raw)):  # a header name from multidict is a str subclass: a str comes back
        redact = fast.text if isinstance(sub, str) else fast.binary
        again = full.text if isinstance(sub, str) else full.binary
        assert type(redact(sub)) is type(again(sub))  # type: ignore[arg-type]


class _Str(str):
    pass


class _Bytes(bytes):
    pass


def test_a_secret_in_a_received_frame_never_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RecordingWriter(path, HEADER, secrets=[SEED, API_KEY]) as writer:
        for spelling in SPELLINGS:
            writer.write_recv("ws-1", f'{{"echo":"{spelling}","x":1}}', 5)
    text = path.read_text()
    for secret in (SEED, API_KEY, quote(SEED, safe=""), SEED.rstrip("="), "hunter22"):
        assert secret not in text
    assert text.count(REDACTED) >= len(SPELLINGS)


class _Policy(Redactor):
    """A whole redaction policy of the caller's (``redactor=``): it also hides the word "private"."""

    def event(self, event):  # type: ignore[no-untyped-def]
        event = super().event(event)
        if isinstance(event, WsRecv) and isinstance(event.data, str):
            return WsRecv(event.t, event.conn, event.data.replace("private", REDACTED), event.receipt)
        return event


def test_a_policy_that_replaces_event_still_sees_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    with RecordingWriter(path, HEADER, redactor=_Policy()) as writer:
        writer.write_recv("ws-1", '{"note":"private"}', 5)
        writer.write(WsRecv(writer.now_ns(), "ws-1", '{"note":"private"}', 6))
    frames = [e.data for e in read_recording(path).events if isinstance(e, WsRecv)]
    assert frames == ['{"note":"<redacted>"}'] * 2


class _Session:
    id = "ws-1"
    url = "ws://127.0.0.1:9/ws"
    pings_received = 0
    last_activity = 0

    def __init__(self, frames: list[str]) -> None:
        self.frames = list(frames)

    def observe_control(self, listener) -> None:  # type: ignore[no-untyped-def]
        pass

    async def recv(self) -> WsFrame:
        return WsFrame(self.frames.pop(0), 1_000 + len(self.frames))


class _Inner:
    clock = None

    def __init__(self, frames: list[str]) -> None:
        self.session = _Session(frames)

    async def connect(self, url: str, **_: object) -> _Session:
        return self.session


def test_recorded_frames_skip_the_event_redaction_path(tmp_path: Path, monkeypatch) -> None:
    """Frames go by ``write_recv``: ``Redactor.event`` (a ``dataclasses.replace`` per frame) sees only the others."""
    seen: list[type] = []
    general = Redactor.event

    def counting(self, event):  # type: ignore[no-untyped-def]
        seen.append(type(event))
        return general(self, event)

    monkeypatch.setattr(Redactor, "event", counting)
    frames = [f'{{"stream":"trade.SOL_USDC","data":{{"t":{i}}}}}' for i in range(50)]
    path = tmp_path / "r.jsonl.zst"

    async def run() -> None:
        writer = RecordingWriter(path, HEADER)
        transport = RecordingTransport(_Inner(frames), writer, close_writer=True)
        session = await transport.connect("ws://127.0.0.1:9/ws")
        for _ in frames:
            await session.recv()
        writer.close()

    asyncio.run(run())
    assert WsRecv not in seen and WsOpen in seen
    assert [e.data for e in read_recording(path).events if isinstance(e, WsRecv)] == frames
