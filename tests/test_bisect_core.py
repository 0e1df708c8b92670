"""The core replay prints what the full replay prints, line for line and with the same provenance."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from harness.bisect.core import CoreUnsupported, core_lines
from harness.bisect.synth import write_synthetic
from harness.bisect.timeline import Timeline
from harness.recording.reader import RecordingDamaged, read_events, read_recording
from harness.recording.writer import RecordingWriter
from harness.replay import replay_stream

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = sorted((ROOT / "recordings").glob("*.jsonl.zst"))


def _full(rec: object) -> list[tuple[str, int | None]]:
    got: list[tuple[str, int | None]] = []
    asyncio.run(replay_stream(rec, lambda _line: None, provenance=lambda line, frame: got.append((line, frame))))
    return got


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_core_and_full_replay_agree_on_every_bundled_recording(path: Path) -> None:
    """Library recordings cover a reconnect, gaps, 503 and 400 snapshot answers, private channels."""
    rec = read_recording(path)
    core = list(core_lines(rec))
    assert core == _full(rec)
    assert len(core) > 50
    assert list(core_lines(path)) == core  # streamed from the file by the fast reader: the same


def test_core_and_full_replay_agree_on_a_synthetic_recording(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl.zst"
    write_synthetic(path, 1500, seed=5)
    rec = read_recording(path)
    core = list(core_lines(rec))
    assert core == _full(rec) and len(core) > 1400  # a delta the snapshot already holds prints nothing
    assert {frame for _, frame in core} <= set(range(len(rec.events)))


def test_what_the_core_does_not_model_is_replayed_by_the_full_feed(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from harness.bisect import core
    from harness.bisect.sides import Side

    path = tmp_path / "s.jsonl"
    write_synthetic(path, 300, seed=2)
    expected = _full(read_recording(path))
    original = core.CoreReplay.handle

    def refuse_late(self: core.CoreReplay, index: int, event: object):  # type: ignore[no-untyped-def]
        if index == 200:
            raise CoreUnsupported("something the core does not model")
        return original(self, index, event)

    monkeypatch.setattr(core.CoreReplay, "handle", refuse_late)
    side = Side(path)
    got = [(item.line, item.frame) for item in side.items()]
    assert got == expected
    assert side.mode_used == "feed" and "does not model" in (side.fallback or "")
    with pytest.raises(CoreUnsupported):
        list(Side(path, mode="core").items())


def test_the_fast_reader_reads_what_the_careful_reader_reads_and_hands_damage_to_it(tmp_path: Path) -> None:
    path = ROOT / "recordings" / "private.jsonl.zst"
    assert list(Timeline(path).events()) == list(read_events(path))
    header = read_recording(path).header
    events = read_recording(path).events[:40]
    plain = tmp_path / "cut.jsonl"
    writer = RecordingWriter(plain, header)
    for e in events:
        writer.write(e)
    writer.close(end=False)
    text = plain.read_bytes()
    plain.write_bytes(text[: len(text) - 30])  # the last line cut short
    timeline = Timeline(plain)
    got = []
    with pytest.raises(RecordingDamaged, match="line 41"):
        for e in timeline.events():
            got.append(e)
    assert got == events[:39]


@given(st.lists(st.decimals(allow_nan=False, allow_infinity=False), min_size=1, max_size=20))
def test_the_normalizers_memoised_level_text_is_canonical_decimal_whatever_was_cached_before(
        values: list[Decimal]) -> None:
    """Equal Decimals in any spelling (1.0, 1, 1E+0, -0) print the canonical text of their value, memo or not."""
    from backpack.protocol.normalized import _level_text, canonical_decimal

    spellings = [*values, *(v.quantize(Decimal(1)) if v.adjusted() < 20 else v for v in values),
                 *(v.normalize() for v in values), *(-v for v in values)]
    for v in spellings:
        assert _level_text(v) == canonical_decimal(v)
    assert _level_text(Decimal("1.00")) == _level_text(Decimal("1")) == "1" and _level_text(Decimal("-0")) == "0"
