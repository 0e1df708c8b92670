"""Fault programs: the JSON is validated with one-line errors, and each edit kind does exactly what it says."""

from __future__ import annotations

import json
from itertools import permutations
from pathlib import Path

import pytest

from harness.scenarios.oracle import Reference
from harness.scenarios.program import (
    CUT_CODE,
    KINDS,
    PING_TIMEOUT_S,
    RECONNECT_S,
    REJECT_CODE,
    WATCHDOG_S,
    Edit,
    Program,
    ProgramError,
    Window,
    apply,
    load_program,
)

from .scenario_helpers import STEP_NS, synthetic

E = Edit.make
REF = Reference.of(synthetic(60))
PRIVATE = Reference.of(synthetic(60, private=True))
N = len(REF.frames)


def run(*edits: Edit, ref: Reference = REF, stretch: int = 1):
    return apply(Program(tuple(edits), Window(0, None, stretch)), ref)


def frames(faulted):
    return [s for s in faulted.steps if s.kind == "frame"]


# -- the JSON ---------------------------------------------------------------------------------------


def test_a_program_round_trips_through_its_canonical_json() -> None:
    program = Program((E("drop", at=3, count=2), E("snapshot", nth=2, answer="stale", by=4, symbol="SOL_USDC")),
                      Window(5, 90, 7))
    text = program.dumps()
    assert Program.loads(text) == program
    assert Program.loads(text).dumps() == text
    assert json.loads(text)["format"] == "backpack-faults"
    assert list(json.loads(text)) == sorted(json.loads(text))  # canonical: sorted keys


def test_defaults_are_not_written_and_read_back_as_defaults() -> None:
    edit = Edit.from_json({"kind": "duplicate", "at": 1}, 0)
    assert edit.to_json() == {"kind": "duplicate", "at": 1}
    assert edit.get("count") == 1


@pytest.mark.parametrize(("text", "words"), [
    ("not json", "not JSON"),
    ("[]", "a fault program is a JSON object, got an array"),
    ('{"format":"other"}', "'format' must be 'backpack-faults'"),
    ('{"version":2}', "'version' 2 is not one this tool reads"),
    ('{"edits":{}}', "'edits' must be an array"),
    ('{"edits":[], "extra":1}', "unknown top-level field 'extra'"),
    ('{"edits":[3]}', "edit 0 must be an object with a 'kind', got 3"),
    ('{"edits":[{"kind":"explode"}]}', "edit 0: 'kind' must be one of drop,"),
    ('{"edits":[{"kind":"drop"}]}', "edit 0 (drop): 'at' is required"),
    ('{"edits":[{"kind":"drop","at":"1"}]}', "edit 0 (drop): 'at' must be an integer, got '1'"),
    ('{"edits":[{"kind":"drop","at":true}]}', "edit 0 (drop): 'at' must be an integer, got true"),
    ('{"edits":[{"kind":"drop","at":-1}]}', "edit 0 (drop): 'at' must be >= 0, got -1"),
    ('{"edits":[{"kind":"drop","at":1,"cnt":2}]}', "edit 0 (drop): unknown field 'cnt'; drop takes at, count"),
    ('{"edits":[{"kind":"hold","at":1,"seconds":NaN}]}', "'seconds' must be a finite number, got nan"),
    ('{"edits":[{"kind":"hold","at":1,"seconds":1e9}]}', "'seconds' must be <= 3600"),
    ('{"edits":[{"kind":"corrupt","at":1,"how":"x"}]}', "'how' must be one of syntax, type, missing"),
    ('{"edits":[{"kind":"snapshot","answer":"ok"}]}', "edit 0 (snapshot): 'nth' is required"),
    ('{"edits":[{"kind":"snapshot","nth":1,"answer":"5xx","status":404}]}', "'status' must be >= 500"),
    ('{"window":{"start":5,"stop":5}}', "window: 'stop' (5) must be greater than 'start' (5)"),
    ('{"window":{"start":0,"stretch":0}}', "window: 'stretch' must be >= 1"),
    ('{"window":[0, 5]}', "'window' must be an object"),
])
def test_a_bad_program_is_refused_with_one_line_naming_the_field(text: str, words: str) -> None:
    with pytest.raises(ProgramError) as info:
        Program.loads(text)
    assert words in str(info.value)
    assert "\n" not in str(info.value)


def test_an_edit_beyond_the_window_is_refused_when_applied() -> None:
    program = Program((E("drop", at=N),), None)
    with pytest.raises(ProgramError, match=rf"'at' is {N}, but the window has {N} frames"):
        apply(program, REF)


def test_a_window_past_the_recording_is_refused() -> None:
    with pytest.raises(ProgramError, match="past the recording"):
        apply(Program((), Window(10_000, None, 1)), REF)


def test_load_program_names_the_file(tmp_path) -> None:
    path = tmp_path / "p.json"
    path.write_text('{"edits":[{"kind":"cut"}]}')
    with pytest.raises(ProgramError, match=r"^p\.json: edit 0 \(cut\): 'at' is required"):
        load_program(path)
    with pytest.raises(ProgramError, match="cannot read fault program"):
        load_program(tmp_path / "missing.json")
    big = tmp_path / "big.json"
    big.write_text('{"edits":[' + " " * (2 << 20) + "]}")
    with pytest.raises(ProgramError, match=r"^big\.json: larger than 1048576 bytes"):
        load_program(big)
    many = tmp_path / "many.json"
    many.write_text(json.dumps({"edits": [{"kind": "cut", "at": 1}] * 65}))
    with pytest.raises(ProgramError, match="'edits' has 65 edits; at most 64"):
        load_program(many)


def test_every_kind_documents_its_fields() -> None:
    doc = (Path(__file__).parents[1] / "docs" / "scenarios.md").read_text()
    for kind, fields in KINDS.items():
        assert f"`{kind}`" in doc, kind
        for name in fields:
            assert f"`{name}`" in doc, (kind, name)


# -- apply, kind by kind ----------------------------------------------------------------------------


def test_no_edits_replay_the_window_as_recorded_with_times_stretched() -> None:
    faulted = run(stretch=3)
    got = frames(faulted)
    assert [s.data for s in got] == [f.data for f in REF.frames]
    assert [s.t for s in got] == [(f.t - REF.events[0].t) * 3 for f in REF.frames]
    assert not any(s.lost or s.reconnect_lost or s.edit for s in faulted.steps)
    assert [s.kind for s in faulted.steps].count("ping") == 1


def test_drop_loses_count_frames_and_keeps_them_in_place() -> None:
    got = frames(run(E("drop", at=4, count=2)))
    assert [n for n, s in enumerate(got) if s.lost] == [4, 5]
    assert [s.data for s in got] == [f.data for f in REF.frames]


def test_duplicate_repeats_the_frame_right_after_it() -> None:
    got = frames(run(E("duplicate", at=4, count=2)))
    assert [s.data for s in got[4:7]] == [REF.frames[4].data] * 3
    assert got[7].data == REF.frames[5].data
    assert got[5].edit == got[6].edit == "duplicate"


def test_reorder_delivers_the_frame_after_the_next_by_frames() -> None:
    got = frames(run(E("reorder", at=4, by=3)))
    assert [s.origin for s in got[3:9]] == [REF.frames[k].index for k in (3, 5, 6, 7, 4, 8)]


def test_hold_delays_the_frame_by_its_seconds() -> None:
    got = frames(run(E("hold", at=4, seconds=0.025)))  # 2.5 frames later
    assert [s.origin for s in got[3:8]] == [REF.frames[k].index for k in (3, 5, 6, 4, 7)]
    assert got[6].t == REF.frames[4].t - REF.events[0].t + 25_000_000


@pytest.mark.parametrize("how", ["syntax", "type", "missing"])
def test_corrupt_breaks_the_envelope_of_the_frame(how: str) -> None:
    step = frames(run(E("corrupt", at=3, how=how)))[3]
    assert step.edit == "corrupt" and not step.intact and step.bad
    try:
        obj = json.loads(step.data)
    except ValueError:
        assert how == "syntax"
        return
    assert how != "syntax"
    assert not isinstance(obj.get("data"), dict)
    assert obj["stream"] == json.loads(REF.frames[3].data)["stream"]


def test_truncate_keeps_a_strict_prefix() -> None:
    step = frames(run(E("truncate", at=3, keep=10)))[3]
    assert step.data == REF.frames[3].data[:10] and step.bad
    whole = frames(run(E("truncate", at=3, keep=10_000)))[3]
    assert whole.data == REF.frames[3].data[:-1]


def test_error_frame_is_inserted_before_its_frame() -> None:
    got = frames(run(E("error_frame", at=3, code=4008)))
    assert json.loads(got[3].data) == {"id": None, "error": {"code": 4008, "message": "Invalid depth window"}}
    assert got[4].data == REF.frames[3].data
    other = frames(run(E("error_frame", at=3, code=4999)))[3]
    assert json.loads(other.data)["error"]["message"] == "Service busy"


def test_silence_shifts_everything_from_its_frame_on() -> None:
    faulted = run(E("silence", at=10, seconds=5.0))
    got = frames(faulted)
    base = [(f.t - REF.events[0].t) for f in REF.frames]
    assert [s.t for s in got[:10]] == base[:10]
    assert [s.t for s in got[10:]] == [t + 5_000_000_000 for t in base[10:]]
    assert not any(s.kind == "drop" for s in faulted.steps)  # shorter than the watchdog: nothing to notice


def test_a_silence_beyond_the_watchdog_is_noticed_in_the_static_model() -> None:
    seconds = WATCHDOG_S + 0.02  # the client reconnects 130 s after frame 9, the stream resumes 20 ms later
    faulted = run(E("silence", at=10, seconds=seconds))
    drops = [s for s in faulted.steps if s.kind == "drop"]
    assert len(drops) == 1
    assert drops[0].t == frames(faulted)[9].t + round(WATCHDOG_S * 1e9)
    lost = [n for n, s in enumerate(frames(faulted)) if s.reconnect_lost]
    assert lost and lost[0] == 10 and all(frames(faulted)[n].t < drops[0].t + RECONNECT_S * 1e9 for n in lost)


def test_cut_closes_before_its_frame_and_the_next_half_second_is_lost_in_the_static_model() -> None:
    faulted = run(E("cut", at=10))
    closes = [n for n, s in enumerate(faulted.steps) if s.kind == "close"]
    assert len(closes) == 1
    close = faulted.steps[closes[0]]
    assert close.code == CUT_CODE and faulted.steps[closes[0] + 1].origin == REF.frames[10].index
    lost = [n for n, s in enumerate(frames(faulted)) if s.reconnect_lost]
    assert lost == list(range(10, 10 + round(RECONNECT_S * 1e9 / STEP_NS)))


def test_an_unanswered_ping_kills_the_link_after_the_ping_timeout() -> None:
    faulted = run(E("unanswered_ping", at=2), stretch=1000)  # 10 s between frames
    deaf = next(s for s in faulted.steps if s.kind == "deaf")
    drop = next(s for s in faulted.steps if s.kind == "drop")
    assert drop.t == deaf.t + round(PING_TIMEOUT_S * 1e9)
    assert drop.code == 1011


def test_reject_private_puts_refusals_first_and_loses_private_frames_meanwhile() -> None:
    faulted = run(E("reject_private", count=2), ref=PRIVATE, stretch=10)  # 100 ms between frames
    got = frames(faulted)
    assert [json.loads(s.data)["error"]["code"] for s in got[:2]] == [REJECT_CODE, REJECT_CODE]
    private = [s for s in got[2:] if s.frame is not None and s.frame.private]
    window = 2 * 0.5e9
    assert private and all(s.reconnect_lost == (s.t < got[0].t + window) for s in private)
    assert not any(s.reconnect_lost for s in got[2:] if s.frame is not None and not s.frame.private)


def test_edits_of_different_phases_mean_the_same_in_any_order() -> None:
    edits = [E("hold", at=3, seconds=0.03), E("corrupt", at=5), E("duplicate", at=5), E("drop", at=8),
             E("error_frame", at=9), E("silence", at=12, seconds=1.0), E("cut", at=20)]
    outcomes = {tuple(run(*order).steps) for order in permutations(edits[:4])}
    assert len(outcomes) == 1
    assert run(*edits).steps == run(*reversed(edits)).steps


# -- the exchange's answers -------------------------------------------------------------------------


def test_snapshot_edits_meet_the_nth_request_overall_or_per_symbol() -> None:
    faulted = run(E("snapshot", nth=2, answer="5xx", status=502), E("snapshot", nth=1, symbol="BTC_USDC",
                                                                     answer="timeout"))
    ex = faulted.exchange()
    position = faulted.stop
    first = ex.answer("SOL_USDC", position, ex.plan("SOL_USDC"))
    assert first.kind == "ok" and first.status == 200
    second = ex.answer("BTC_USDC", position, ex.plan("BTC_USDC"))  # the 2nd overall and the 1st of BTC
    assert second.kind == "5xx" and second.status == 502
    third = ex.answer("BTC_USDC", position, ex.plan("BTC_USDC"))
    assert third.kind == "ok"
    ex2 = faulted.exchange()
    ex2.plan("SOL_USDC")
    assert ex2.plan("SOL_USDC").get("answer") == "5xx"  # counters start again for every run


def test_stale_and_ahead_answers_are_true_books_points_away_from_the_truthful_one() -> None:
    def sequence(*edits: Edit, position: int) -> int:
        faulted = run(*edits)
        ex = faulted.exchange()
        answer = ex.answer("SOL_USDC", position, ex.plan("SOL_USDC"))
        assert answer.status == 200
        body = json.loads(answer.body)
        book = REF.book("SOL_USDC", int(body["lastUpdateId"]))
        assert book is not None and {float(p) for p, _ in body["bids"]} == {float(p) for p in book[0]}
        return int(body["lastUpdateId"])

    position = REF.frames[20].index
    truth = sequence(position=position)
    assert truth == REF.sent("SOL_USDC", position)  # the latest the exchange had sent
    assert sequence(E("snapshot", nth=1, answer="stale", by=3), position=position) == truth - 3
    assert sequence(E("snapshot", nth=1, answer="ahead", by=2), position=position) == truth + 2


@pytest.mark.parametrize("how", ["json", "id", "levels"])
def test_a_malformed_answer_is_not_a_usable_snapshot(how: str) -> None:
    faulted = run(E("snapshot", nth=1, answer="malformed", how=how))
    ex = faulted.exchange()
    answer = ex.answer("SOL_USDC", faulted.stop, ex.plan("SOL_USDC"))
    assert answer.status == 200 and answer.faulted
    try:
        body = json.loads(answer.body)
    except ValueError:
        assert how == "json"
        return
    assert not str(body["lastUpdateId"]).isdigit() or any(len(level) != 2 for level in body["bids"])
