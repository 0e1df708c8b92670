"""How fast the regression tools are: first divergence in a big recording, shrinking a 10k-frame one.

Usage: ``python bench/regressions.py [--frames 1000000] [--shrink-frames 10000] [--cache DIR] [--json out.json]``

The recordings come from the loopback market generator (``harness.bisect.synth``), written once into
``--cache`` (default: the system temp directory) and reused; making them is not timed. Measured:

* ``diff``: ``first_divergence`` of two normalized outputs of the big recording (files), the divergence
  injected at 90 % of the lines: the streaming comparison alone.
* ``bisect``: ``judge_golden``: the big recording replayed by the core and compared with a golden output
  whose line at 90 % was changed: replay plus comparison, what ``backpack-harness bisect --golden`` does.
* ``shrink``: ``shrink --invariant book`` of the small recording, with the deliberate book bug of the tests
  (a synced book ignores the delete of its best bid) installed.

Targets (issue 10): first divergence in a 1M-frame recording under 10 s; shrinking 10k frames under 60 s.
Not a test: nothing here asserts a time; the verdict lines say MET or MISSED.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from harness.bisect.diff import first_divergence  # noqa: E402
from harness.bisect.sides import Side  # noqa: E402
from harness.bisect.synth import write_synthetic  # noqa: E402

TARGETS = {"first divergence, 1M frames": 10.0, "shrink, 10k frames": 60.0}


def _recording(cache: Path, frames: int, seed: int) -> Path:
    path = cache / f"bisect-bench-{frames}-{seed}.jsonl.zst"
    if not path.exists():
        started = time.perf_counter()
        tmp = path.with_name(path.name + ".part.jsonl.zst")
        write_synthetic(tmp, frames, seed=seed)
        tmp.rename(path)
        print(f"made {path} ({frames:,} frames) in {time.perf_counter() - started:.1f} s (not timed)", flush=True)
    return path


def _golden(cache: Path, recording: Path) -> Path:
    path = recording.with_name(recording.name.removesuffix(".jsonl.zst") + ".golden.jsonl")
    if not path.exists():
        started = time.perf_counter()
        with open(path.with_suffix(".part"), "w") as fh:
            for item in Side(recording, mode="core").items():
                fh.write(item.line + "\n")
        path.with_suffix(".part").rename(path)
        print(f"made {path} in {time.perf_counter() - started:.1f} s (not timed)", flush=True)
    return path


def _changed(golden: Path, at: float) -> tuple[Path, int]:
    """A copy of ``golden`` whose line at ``at`` (a fraction) has another sequence: the injected divergence."""
    lines = golden.read_text().splitlines(keepends=True)
    index = int(len(lines) * at)
    lines[index] = lines[index].replace('"receipt":', '"receipt":1', 1)
    out = golden.with_name(golden.name.removesuffix(".jsonl") + f".changed-{index}.jsonl")
    out.write_text("".join(lines))
    return out, index


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_000_000)
    parser.add_argument("--shrink-frames", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()))
    parser.add_argument("--skip-bisect", action="store_true", help="only the file diff and the shrink")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    results: dict[str, object] = {"frames": args.frames, "shrink_frames": args.shrink_frames,
                                  "cpus": os.cpu_count(), "load": os.getloadavg()}

    big = _recording(args.cache, args.frames, args.seed)
    golden = _golden(args.cache, big)
    changed, index = _changed(golden, 0.9)

    started = time.perf_counter()
    found = first_divergence(Side(golden).items(), Side(changed).items())
    results["diff_seconds"] = round(time.perf_counter() - started, 3)
    assert found is not None and found.index == index, "the injected divergence was not found"
    print(f"diff    first divergence at line {index:,} of two {args.frames:,}-frame outputs: "
          f"{results['diff_seconds']:.2f} s", flush=True)

    if not args.skip_bisect:
        from harness.bisect.verdict import judge_golden

        started = time.perf_counter()
        verdict = judge_golden(big, changed, mode="core")
        results["bisect_seconds"] = round(time.perf_counter() - started, 3)
        assert verdict.status == "bad" and verdict.line == index, verdict.message
        print(f"bisect  replay + compare, divergence at line {index:,} (event {verdict.frame:,}): "
              f"{results['bisect_seconds']:.2f} s", flush=True)

    small = _recording(args.cache, args.shrink_frames, args.seed)
    from harness.bisect.shrink import shrink
    from tests import bisect_bug

    bisect_bug.install()
    try:
        started = time.perf_counter()
        with tempfile.TemporaryDirectory() as tmp:
            result = shrink(small, str(Path(tmp) / "min.jsonl"), invariants=["book"])
        results["shrink_seconds"] = round(time.perf_counter() - started, 3)
    finally:
        bisect_bug.remove()
    results["shrink_events"] = len(result.events)
    results["shrink_replays"] = result.tests
    print(f"shrink  {args.shrink_frames:,} frames -> {len(result.events)} events in {result.tests} core replays: "
          f"{results['shrink_seconds']:.2f} s", flush=True)

    scale = 1_000_000 / args.frames
    divergence = results.get("bisect_seconds", results["diff_seconds"])
    checks = {"first divergence, 1M frames": float(divergence) * scale,  # type: ignore[arg-type]
              "shrink, 10k frames": float(results["shrink_seconds"]) * 10_000 / args.shrink_frames}  # type: ignore[arg-type]
    for name, seconds in checks.items():
        limit = TARGETS[name]
        verdict_text = "MET" if seconds < limit else "MISSED"
        print(f"{verdict_text:<7} {name}: {seconds:.1f} s (target < {limit:g} s)"
              f"{'' if scale == 1 or 'divergence' not in name else ' (scaled from the frames measured)'}")
    results["targets"] = {k: {"seconds": round(v, 2), "limit": TARGETS[k]} for k, v in checks.items()}
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
