"""``backpack-harness inspect``: what a recording holds, without replaying it.

Header, per-stream frame counts, time span, reconnects, compression ratio (``Summary`` from the
reader) and sequence gaps: for every depth stream, each delta whose ``U`` is not the previous ``u + 1``
on the same connection (a new connection starts over, as the feed does). A damaged recording is
summarised up to the damage, which is reported, and the command exits 65.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from harness.cli import EXIT_DATAERR, EXIT_OK, CliError, Subcommand, register
from harness.cli._recordings import cli_error
from harness.recording.format import WsRecv
from harness.recording.reader import RecordingError, RecordingReader, summarize

SHOWN_GAPS = 10  # per stream, in the text output (JSON has them all)


@dataclass(slots=True)
class Gaps:
    """Sequence gaps per depth stream: ``(connection, t ns, expected U, got U)``."""

    deltas: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    gaps: dict[str, list[tuple[str, int, int, int]]] = field(default_factory=lambda: defaultdict(list))

    def to_json(self) -> dict[str, Any]:
        return {
            stream: {"deltas": self.deltas[stream], "gaps": len(self.gaps.get(stream, ())),
                     "at": [{"connection": c, "t_ns": t, "expected": e, "got": g}
                            for c, t, e, g in self.gaps.get(stream, ())]}
            for stream in sorted(self.deltas)
        }


def _int(value: Any) -> int | None:
    if type(value) is int:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def sequence_gaps(reader: RecordingReader) -> Gaps:
    out = Gaps()
    last: dict[tuple[str, str], int] = {}
    for event in reader.events(tolerant=True):
        if not isinstance(event, WsRecv) or not isinstance(event.data, str) or '"depth.' not in event.data[:40]:
            continue
        try:
            msg = json.loads(event.data)
        except (ValueError, RecursionError):
            continue
        stream, data = msg.get("stream") if isinstance(msg, dict) else None, msg.get("data") if isinstance(
            msg, dict) else None
        if not isinstance(stream, str) or not stream.startswith("depth.") or not isinstance(data, dict):
            continue
        first, final = _int(data.get("U")), _int(data.get("u"))
        if first is None or final is None:
            continue
        out.deltas[stream] += 1
        key = (event.conn, stream)
        previous = last.get(key)
        if previous is not None and first != previous + 1 and final > previous:
            out.gaps[stream].append((event.conn, event.t, previous + 1, first))
        last[key] = max(final, previous or final)
    return out


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("recording", metavar="RECORDING", help="a .jsonl or .jsonl.zst recording")
    parser.add_argument("--json", action="store_true", help="one JSON object instead of text")


def _run(args: argparse.Namespace) -> int:
    try:
        summary = summarize(args.recording)
        with RecordingReader(args.recording) as reader:
            gaps = sequence_gaps(reader)
    except RecordingError as exc:
        raise cli_error(exc) from None
    if args.json:
        out = summary.to_json()
        out["sequence_gaps"] = gaps.to_json()
        out["start_us"] = summary.header.start_us
        print(json.dumps(out, sort_keys=True, indent=2))
    else:
        lines = [summary.render()]
        for stream, info in gaps.to_json().items():
            lines.append(f"depth       {stream:<40} {info['deltas']} deltas, {info['gaps']} gaps")
            for gap in info["at"][:SHOWN_GAPS]:
                lines.append(f"  gap       {gap['connection']} t={gap['t_ns'] / 1e9:.6f} s: expected U={gap['expected']}, "
                             f"got U={gap['got']}")
            if info["gaps"] > SHOWN_GAPS:
                lines.append(f"  gap       ... {info['gaps'] - SHOWN_GAPS} more (--json lists them all)")
        print("\n".join(lines))
    if summary.damage is not None:
        raise CliError(EXIT_DATAERR, summary.damage)
    return EXIT_OK


register(Subcommand("inspect", "summarise a recording: header, streams, span, gaps, reconnects, compression",
                    _add_arguments, _run))
