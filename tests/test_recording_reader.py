"""The reader on good, foreign and hostile files: every frame read, damage located, never a traceback."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
import zstandard

from harness.recording.format import (
    RecordingEnd,
    UnknownEvent,
    WsClose,
    WsPing,
    WsPong,
    WsRecv,
    WsSend,
)
from harness.recording.reader import (
    RecordingDamaged,
    RecordingError,
    RecordingHeaderError,
    RecordingOpenError,
    RecordingReader,
    RecordingVersionError,
    open_recording,
    read_events,
    read_header,
    read_recording,
    summarize,
)

from .recording_helpers import HEADER, write_sample, zstd_frames

FIXTURES = Path(__file__).parent / "fixtures" / "recordings"
HEADER_LINE = json.dumps(HEADER.to_json(), separators=(",", ":"))


def one_line(err: BaseException) -> str:
    text = str(err)
    assert "\n" not in text and text, repr(text)
    return text


def write_lines(path: Path, *lines: str | bytes) -> Path:
    path.write_bytes(b"".join((x.encode() if isinstance(x, str) else x) + b"\n" for x in lines))
    return path


# --- every frame, both encodings ------------------------------------------------------------------


def test_multi_frame_zstd_reads_every_frame(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    events = write_sample(path, block_events=2)
    frames = zstd_frames(path.read_bytes())
    assert len(frames) >= 7  # header frame + one frame per two events (+ end)
    # python-zstandard's decompressobj alone would stop after the header frame
    first_only = zstandard.ZstdDecompressor().decompressobj().decompress(path.read_bytes())
    assert first_only.count(b"\n") == 1
    rec = read_recording(path)
    assert rec.damage is None and rec.complete
    assert rec.events[:-1] == events and isinstance(rec.events[-1], RecordingEnd)
    assert rec.stats.frames == len(frames)
    assert rec.stats.file_bytes == path.stat().st_size
    assert rec.stats.raw_bytes == sum(len(c) for _, _, c in frames)


def test_plain_and_zstd_read_the_same(tmp_path: Path) -> None:
    plain, packed = tmp_path / "r.jsonl", tmp_path / "r.jsonl.zst"
    write_sample(plain)
    write_sample(packed)
    a, b = read_recording(plain), read_recording(packed)
    assert a.events[:-1] == b.events[:-1]
    assert a.header == b.header and a.stats.compression == "plain" and b.stats.compression == "zstd"


def test_foreign_single_frame_and_lines_split_across_frames(tmp_path: Path) -> None:
    """A tool may compress the whole file as one frame, or cut frames mid-line; both read the same."""
    plain = tmp_path / "r.jsonl"
    events = write_sample(plain)
    raw = plain.read_bytes()
    cctx = zstandard.ZstdCompressor()
    single = tmp_path / "single.jsonl.zst"
    single.write_bytes(cctx.compress(raw))
    split = tmp_path / "split.jsonl.zst"
    split.write_bytes(b"".join(cctx.compress(raw[i:i + 37]) for i in range(0, len(raw), 37)))
    skippable = tmp_path / "skip.jsonl.zst"
    skip_frame = (0x184D2A53).to_bytes(4, "little") + (5).to_bytes(4, "little") + b"index"
    skippable.write_bytes(skip_frame + cctx.compress(raw[:300]) + skip_frame + cctx.compress(raw[300:]))
    for path in (single, split, skippable):
        rec = read_recording(path)
        assert rec.damage is None, path.name
        assert rec.events[:-1] == events, path.name


def test_handwritten_fixture_reads_as_documented() -> None:
    """tests/fixtures/recordings/handwritten.jsonl was typed from docs/recording-format.md, not generated."""
    rec = read_recording(FIXTURES / "handwritten.jsonl")
    assert rec.damage is None and rec.complete
    h = rec.header
    assert (h.version, h.rest_url, h.ws_url, h.symbols) == (
        "1.0", "http://127.0.0.1:9100", "ws://127.0.0.1:9100/ws", ("SOL-USDC",))
    assert h.channels == ("trades", "l2_book", "order_info") and h.tool == "cryptofeed-backpack"
    kinds = [e.kind for e in rec.events]
    assert kinds == [
        "http_request", "http_response", "ws_open", "ws_send", "ws_send", "ws_recv", "http_request",
        "http_response", "ws_ping", "ws_pong", "ws_recv", "ws_recv", "ws_recv", "http_request",
        "http_response", "ws_close", "transport_error", "end",
    ]
    markets_req, markets = rec.events[0], rec.events[1]
    assert markets_req.params == tuple(("marketType", t) for t in ("SPOT", "PERP", "IPERP", "DATED", "PREDICTION"))
    assert markets_req.headers == {} and markets_req.body is None
    assert json.loads(markets.body)[0]["symbol"] == "SOL_USDC" and markets.receipt == 1741064767001000
    private = rec.events[4]
    assert isinstance(private, WsSend) and json.loads(private.data)["signature"] == ["<redacted>"] * 4
    trade = rec.events[10]
    assert isinstance(trade, WsRecv) and trade.data.startswith('{"stream":"trade.SOL_USDC"')
    assert json.loads(trade.data)["data"]["p"] == "20.00"  # exact text: the trailing zero survives
    binary = rec.events[12]
    assert isinstance(binary, WsRecv) and binary.data == b"\xde\xad\xbe\xef"
    ping, pong = rec.events[8], rec.events[9]
    assert isinstance(ping, WsPing) and ping.data == b"keepalive" and ping.receipt == 1741064767005000
    assert isinstance(pong, WsPong) and pong.receipt is None
    post = rec.events[13]
    assert post.method == "POST" and post.body == b'{"symbol":"SOL_USDC","side":"Bid"}'
    assert rec.events[14].status == 503 and rec.events[14].body == b"\xff\xfe"
    close = rec.events[15]
    assert isinstance(close, WsClose) and (close.code, close.reason, close.via) == (1006, "", "recv")
    error = rec.events[16]
    assert error.conn is None and error.error == "TransportTimeout" and error.op == "connect"


def test_handwritten_fixture_drives_the_protocol_core_to_the_expected_events() -> None:
    """The hand-written frames, fed through Router + Normalizer as a replay would, give these lines."""
    from backpack.protocol.normalized import Normalizer
    from backpack.protocol.router import Router

    router = Router()
    normalizer = Normalizer(router.books, depth=2)
    lines: list[str] = []
    for event in read_events(FIXTURES / "handwritten.jsonl"):
        if isinstance(event, WsRecv):
            lines += normalizer.lines(router.receive_frame(event.data, event.receipt))
        elif event.kind == "http_response" and event.conn == "http-2":
            lines += normalizer.lines(router.receive_snapshot("SOL_USDC", json.loads(event.body), event.receipt))
    book1 = ('{"asks":[["20","2"],["20.1","4"]],"bids":[["19.9","1.5"],["19.8","3"]],"delta":null,'
             '"exchange":"BACKPACK","kind":"snapshot","receipt":1741064767004000,"sequence":502,'
             '"symbol":"SOL-USDC","timestamp":1741064767002900,"type":"book"}')
    trade = ('{"amount":"0.25","exchange":"BACKPACK","id":"77","price":"20","receipt":1741064767006000,'
             '"side":"buy","symbol":"SOL-USDC","timestamp":1741064767005900,"type":"trade"}')
    book2 = ('{"asks":[["20.1","4"]],"bids":[["19.95","0.7"],["19.9","1.5"]],'
             '"delta":{"asks":[["20","0"]],"bids":[["19.95","0.7"]]},"exchange":"BACKPACK","kind":"delta",'
             '"receipt":1741064767007000,"sequence":503,"symbol":"SOL-USDC","timestamp":1741064767006900,'
             '"type":"book"}')
    assert lines[:3] == [book1, trade, book2]
    assert [json.loads(x)["type"] for x in lines[3:]] == ["error"]  # the binary frame is not JSON


# --- truncation at every byte ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cut.jsonl.zst", "cut.jsonl"])
def test_cut_at_every_byte_yields_exactly_the_complete_blocks(tmp_path: Path, name: str) -> None:
    """For every cut, the reader keeps exactly the events of complete frames (zstd) or complete lines
    (plain) before the cut, reports damage iff the cut is inside one, and never raises anything else."""
    full = tmp_path / f"full-{name}"
    events = write_sample(full, block_events=3)
    data = full.read_bytes()
    if name.endswith(".zst"):
        frames = zstd_frames(data)
        ends = [end for _, end, _ in frames]
        counts = [content.count(b"\n") for _, _, content in frames]
        header_end = ends[0]
    else:
        ends, counts, pos = [], [], 0
        for line in data.splitlines(keepends=True):
            pos += len(line)
            ends.append(pos)
            counts.append(1)
        header_end = ends[0] - 1  # the header line complete without its newline
    all_events = [*events, None]  # the end event, whose t is the writer's
    cut = tmp_path / name
    for size in range(len(data) + 1):
        cut.write_bytes(data[:size])
        if size < header_end:
            with pytest.raises(RecordingHeaderError) as err:
                read_recording(cut)
            one_line(err.value)
            continue
        rec = read_recording(cut)
        if name.endswith(".zst"):
            complete_lines = sum(c for e, c in zip(ends, counts, strict=True) if e <= size)
            at_boundary = size == 0 or size in ends
        else:
            # a line counts once its content is complete, even without its newline
            complete_lines = sum(1 for e in ends if e - 1 <= size)
            at_boundary = size in ends or size + 1 in ends
        expected = complete_lines - 1  # minus the header
        assert len(rec.events) == expected, size
        assert rec.events[: min(expected, len(events))] == events[: min(expected, len(events))], size
        if at_boundary:
            assert rec.damage is None, (size, rec.damage)
        else:
            assert isinstance(rec.damage, RecordingDamaged), size
            one_line(rec.damage)
            assert rec.damage.events == expected
        assert rec.complete == (size == len(data)) or (not name.endswith(".zst") and size == len(data) - 1)
        assert all_events  # keeps the list alive for the assertion messages


def test_truncated_zstd_names_the_frame_and_offset(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    events = write_sample(path, block_events=4)
    data = path.read_bytes()
    frames = zstd_frames(data)
    start, end, _ = frames[2]
    path.write_bytes(data[: end - 3])
    got: list = []
    with pytest.raises(RecordingDamaged) as err:
        for event in read_events(path):
            got.append(event)
    assert got == events[:4]  # frame 1 held four events; frame 2 is cut
    assert err.value.frame == 2 and err.value.offset == start and err.value.events == 4
    assert "truncated zstd frame" in one_line(err.value) and f"byte {start}" in str(err.value)


def test_corrupt_byte_anywhere_in_the_middle_frame_is_reported_and_the_rest_before_kept(tmp_path: Path) -> None:
    """Every single-byte corruption of a middle frame is detected (the writer adds checksums)."""
    path = tmp_path / "r.jsonl.zst"
    events = write_sample(path, block_events=4)
    data = path.read_bytes()
    frames = zstd_frames(data)
    start, end, _ = frames[2]
    bad = tmp_path / "bad.jsonl.zst"
    for i in range(start, end):
        corrupted = bytearray(data)
        corrupted[i] ^= 0x5A
        bad.write_bytes(bytes(corrupted))
        rec = read_recording(bad)
        assert rec.events == events[:4], i
        assert isinstance(rec.damage, RecordingDamaged), i
        assert rec.damage.frame == 2 and rec.damage.offset == start, (i, rec.damage)
        one_line(rec.damage)


def test_plain_file_invalid_utf8_in_the_middle(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl"
    events = write_sample(path)
    lines = path.read_bytes().split(b"\n")
    lines[5] = lines[5][:20] + b"\xff" + lines[5][21:]
    path.write_bytes(b"\n".join(lines))
    rec = read_recording(path)
    assert rec.events == events[:4]
    assert rec.damage is not None and rec.damage.line == 6 and "not valid UTF-8" in rec.damage.reason
    offset = sum(len(x) + 1 for x in lines[:5])
    assert rec.damage.offset == offset


# --- headers and versions -------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.zst"])
def test_empty_file_is_a_header_error(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"empty{suffix}"
    path.write_bytes(b"")
    with pytest.raises(RecordingHeaderError, match="empty recording") as err:
        read_recording(path)
    one_line(err.value)


def test_header_only_file_has_no_events_and_is_not_complete(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "h.jsonl", HEADER_LINE)
    rec = read_recording(path)
    assert rec.events == [] and rec.damage is None and not rec.complete
    assert rec.header == HEADER
    assert read_header(path) == HEADER


def test_minimal_header_needs_only_format_version_created_at(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "m.jsonl",
                       '{"format":"backpack-recording","version":"1.0","created_at":"x"}', '{"k":"end","t":0}')
    rec = read_recording(path)
    assert rec.header.symbols == () and rec.header.rest_url is None and rec.complete


@pytest.mark.parametrize("version", ["2.0", "0.9", "10.1"])
def test_unknown_major_version_is_refused_in_one_line(tmp_path: Path, version: str) -> None:
    header = {**HEADER.to_json(), "version": version}
    path = write_lines(tmp_path / "v.jsonl", json.dumps(header), '{"k":"end","t":0}')
    with pytest.raises(RecordingVersionError) as err:
        read_recording(path)
    assert f"version {version} is not supported" in one_line(err.value)
    assert err.value.version == version


def test_version_checked_before_other_header_keys(tmp_path: Path) -> None:
    """A 2.x header may look different; it must say "version", not complain about a 1.x key."""
    path = write_lines(tmp_path / "v.jsonl", '{"format":"backpack-recording","version":"2.0","symbols":7}')
    with pytest.raises(RecordingVersionError):
        read_recording(path)


def test_newer_minor_version_reads_with_unknown_kinds_and_keys_kept(tmp_path: Path) -> None:
    header = {**HEADER.to_json(), "version": "1.7", "new_header_key": {"x": 1}}
    path = write_lines(
        tmp_path / "v.jsonl", json.dumps(header),
        '{"k":"ws_recv","t":1,"c":"ws-1","r":5,"d":"hi","new_key":[1,2]}',
        '{"k":"clock_tick","t":2,"virtual_us":99}',
    )
    rec = read_recording(path)
    assert rec.damage is None and rec.header.version == "1.7"
    assert rec.events[0] == WsRecv(1, "ws-1", "hi", 5)
    assert rec.events[1] == UnknownEvent(2, "clock_tick", {"virtual_us": 99})


@pytest.mark.parametrize(
    ("line", "match"),
    [
        ("not json at all", "no readable header"),
        ("[1,2,3]", "header must be a JSON object"),
        ('{"format":"something-else","version":"1.0","created_at":"x"}', "'format' must be"),
        ('{"format":"backpack-recording","created_at":"x"}', "'version' must be"),
        ('{"format":"backpack-recording","version":"1","created_at":"x"}', "'version' must be"),
        ('{"format":"backpack-recording","version":1.0,"created_at":"x"}', "'version' must be"),
        ('{"format":"backpack-recording","version":"1.0"}', "'created_at' is missing"),
        ('{"format":"backpack-recording","version":"1.0","created_at":"x","symbols":"SOL"}', "symbols"),
        ('{"format":"backpack-recording","version":"1.0","created_at":"x","start_us":true}', "start_us"),
    ],
)
def test_bad_headers(tmp_path: Path, line: str, match: str) -> None:
    path = write_lines(tmp_path / "bad.jsonl", line)
    with pytest.raises(RecordingHeaderError, match=match) as err:
        read_recording(path)
    one_line(err.value)


def test_zst_name_without_zstd_content(tmp_path: Path) -> None:
    path = tmp_path / "fake.jsonl.zst"
    path.write_bytes(b"PK\x03\x04 not zstd")
    with pytest.raises(RecordingHeaderError, match="not a zstd file") as err:
        read_recording(path)
    one_line(err.value)


def test_missing_file_and_directory_are_open_errors(tmp_path: Path) -> None:
    with pytest.raises(RecordingOpenError) as err:
        read_recording(tmp_path / "nope.jsonl")
    assert "nope.jsonl" in one_line(err.value)
    with pytest.raises(RecordingOpenError):
        list(read_events(tmp_path))


# --- bad lines after the header -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (b"{not json", "is not JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b'"a string"', "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b'{"t":1}', "'k'"),
        (b'{"k":"ws_recv","t":"1","c":"a","r":1,"d":"x"}', "'t' must be an integer"),
        (b'{"k":"ws_recv","t":1.0,"c":"a","r":1,"d":"x"}', "'t' must be an integer"),
        (b'{"k":"ws_recv","t":true,"c":"a","r":1,"d":"x"}', "'t' must be an integer"),
        (b'{"k":"ws_recv","t":-1,"c":"a","r":1,"d":"x"}', "must be >= 0"),
        (b'{"k":"ws_recv","t":1,"c":"a","r":1}', "needs 'd'"),
        (b'{"k":"ws_recv","t":1,"c":"a","r":1,"d":"x","b":"eA=="}', "exclusive"),
        (b'{"k":"ws_recv","t":1,"c":"a","r":1,"b":"not base64!"}', "not valid base64"),
        (b'{"k":"ws_recv","t":1,"c":7,"r":1,"d":"x"}', "'c' must be a string"),
        (b'{"k":"ws_recv","t":1,"c":"a","r":NaN,"d":"x"}', "NaN is not valid JSON"),
        (b'{"k":"http_request","t":1,"c":"h","m":"GET","u":"x","q":[["a"]]}', "'q' must be"),
        (b'{"k":"http_request","t":1,"c":"h","m":"GET","u":"x","h":{"a":1}}', "must be a string"),
        (b'{"k":"ws_close","t":1,"c":"a","code":1000,"via":"magic"}', "'via' must be one of"),
        (b'{"k":"transport_error","t":1,"c":null,"op":"dance","e":"X"}', "'op' must be one of"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"k":"ws_recv","t":' + b"9" * 5000 + b',"c":"a","r":1,"d":"x"}', "line 3"),
        (b'{"k":"ws_recv","t":1,"c":"a","r":1,"d":"\\ud800"}', None),  # lone surrogate: legal JSON text
    ],
)
def test_bad_event_lines_are_damage_after_the_good_ones(tmp_path: Path, line: bytes, reason: str | None) -> None:
    good = b'{"k":"ws_send","t":0,"c":"a","d":"hello"}'
    path = write_lines(tmp_path / "bad.jsonl", HEADER_LINE, good, line, b'{"k":"end","t":9}')
    rec = read_recording(path)
    if reason is None:
        assert rec.damage is None and len(rec.events) == 3
        return
    assert rec.events == [WsSend(0, "a", "hello")]
    assert isinstance(rec.damage, RecordingDamaged) and rec.damage.line == 3
    assert reason in one_line(rec.damage), rec.damage.message
    assert len(str(rec.damage)) < 400  # a hostile line is never echoed whole
    with pytest.raises(RecordingDamaged):
        list(read_events(path))


def test_t_must_not_go_backwards(tmp_path: Path) -> None:
    path = write_lines(tmp_path / "t.jsonl", HEADER_LINE, '{"k":"end","t":5}', '{"k":"end","t":4}')
    rec = read_recording(path)
    assert len(rec.events) == 1 and "before the previous event's t=5" in rec.damage.reason


def test_blank_lines_and_crlf_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "b.jsonl"
    path.write_bytes(HEADER_LINE.encode() + b"\r\n\r\n" + b'{"k":"end","t":1}\r\n   \n')
    rec = read_recording(path)
    assert rec.damage is None and rec.complete


def test_huge_valid_line_reads_and_an_over_limit_line_is_damage(tmp_path: Path) -> None:
    big = "x" * (8 * 2**20)
    line = json.dumps({"k": "ws_recv", "t": 1, "c": "a", "r": 2, "d": big})
    for suffix in (".jsonl", ".jsonl.zst"):
        path = tmp_path / f"huge{suffix}"
        head, body = (HEADER_LINE + "\n").encode(), (line + "\n" + '{"k":"end","t":3}\n').encode()
        if suffix.endswith(".zst"):  # header in a frame of its own, as the writer does
            cctx = zstandard.ZstdCompressor()
            path.write_bytes(cctx.compress(head) + cctx.compress(body))
        else:
            path.write_bytes(head + body)
        rec = read_recording(path)
        assert rec.damage is None and rec.events[0].data == big
        rec = read_recording(path, max_line_bytes=2**20)
        assert rec.events == [] and "longer than 1048576 bytes" in rec.damage.reason and rec.damage.line == 2


def test_decompression_bomb_stays_bounded(tmp_path: Path) -> None:
    """256 MiB of zeros in a ~10 KiB frame: refused as an over-long line without inflating it all."""
    path = tmp_path / "bomb.jsonl.zst"
    cctx = zstandard.ZstdCompressor(level=19)
    with path.open("wb") as f:
        f.write(cctx.compress((HEADER_LINE + "\n").encode()))
    with cctx.stream_writer(path.open("ab")) as w:
        chunk = b"0" * 2**20
        for _ in range(256):
            w.write(chunk)
    assert path.stat().st_size < 100_000
    rec = read_recording(path, max_line_bytes=4 * 2**20)
    assert rec.events == [] and "longer than" in rec.damage.reason


def test_tolerant_iteration_and_streaming(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    events = write_sample(path, block_events=2)
    data = path.read_bytes()
    path.write_bytes(data[:-5])
    with open_recording(path) as reader:
        assert isinstance(reader, RecordingReader) and reader.header == HEADER
        got = list(reader.events(tolerant=True))
    assert got == events[: len(got)] and reader.damage is not None and reader.count == len(got)
    stream = read_events(path)
    assert next(stream) == events[0]  # streamed: the first event before the damage is reached


def test_errors_share_one_base_class(tmp_path: Path) -> None:
    for cls in (RecordingDamaged, RecordingHeaderError, RecordingOpenError, RecordingVersionError):
        assert issubclass(cls, RecordingError)


# --- summary --------------------------------------------------------------------------------------


def test_summary_counts_and_ratio(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    write_sample(path, block_events=100)
    s = summarize(path)
    assert s.kinds == {"http_request": 1, "http_response": 1, "ws_open": 1, "ws_send": 1, "ws_recv": 6,
                       "ws_ping": 1, "ws_close": 1, "transport_error": 1, "end": 1}
    assert s.streams == {"trade.SOL_USDC": 5, "(binary)": 1}
    assert s.requests == {"GET /api/v1/markets": 1} and s.statuses == {200: 1}
    assert s.connections == 1 and s.reconnects == 0 and s.complete and s.damage is None
    assert s.first_t == 10 and s.span_ns == s.last_t - 10 and s.first_receipt == 1_000_020
    assert s.compression == "zstd" and s.frames == 2 and s.file_bytes == path.stat().st_size
    assert s.ratio == s.raw_bytes / s.file_bytes
    text = s.render()
    assert "trade.SOL_USDC" in text and "complete    yes" in text
    assert json.loads(json.dumps(s.to_json()))["kinds"]["ws_recv"] == 6


def test_summary_of_a_damaged_file_reports_instead_of_raising(tmp_path: Path) -> None:
    path = tmp_path / "r.jsonl.zst"
    write_sample(path, block_events=3)
    path.write_bytes(path.read_bytes()[:-10])
    s = summarize(path)
    assert not s.complete and s.damage and "truncated" in s.damage
    assert "damage" in s.render()


def test_binary_payload_encoding_is_standard_base64(tmp_path: Path) -> None:
    payload = bytes(range(256))
    path = write_lines(tmp_path / "b.jsonl", HEADER_LINE, json.dumps(
        {"k": "ws_recv", "t": 1, "c": "a", "r": 1, "b": base64.b64encode(payload).decode()}))
    assert read_recording(path).events[0].data == payload


def test_the_documented_example_is_a_valid_recording(tmp_path: Path) -> None:
    """The complete example in docs/recording-format.md reads as it says: complete, no damage."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "recording-format.md").read_text()
    example = doc.split("## Example", 1)[1].split("```\n", 2)[1]
    path = tmp_path / "example.jsonl"
    path.write_text(example)
    rec = read_recording(path)
    assert rec.damage is None and rec.complete and len(rec.events) == 14
    assert [e.kind for e in rec.events].count("ws_recv") == 4
    assert rec.events[10].data == bytes([0, 1, 2, 255])
