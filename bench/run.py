"""Throughput and memory of the native Backpack core against ccxt.pro, cryptofeed and bare JSON.

Usage: ``python bench/run.py [--frames N] [--repeats R] [--json out.json] [--clock cpu] [--check-only] [--strict]``

Targets are ratios measured in the same run on the same machine (see docs/benchmarks.md); absolute
frames/second vary from machine to machine and are only context. ``--check-only`` drives every
contender once over a few frames and verifies each ends with the reference book: a quick proof that
the benchmark still measures real work, suitable for a smoke test.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import datetime as _dt
import gc
import io
import json
import os
import platform
import pstats
import sys
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from backpack.protocol.speedups import IMPLEMENTATION  # noqa: E402
from bench.contenders import ALL as CORE  # noqa: E402
from bench.contenders import Contender, Native, frames_for  # noqa: E402
from bench.feeds import FEEDS, feed_latency  # noqa: E402
from bench.frames import Dataset, build  # noqa: E402

SCENARIOS = ("depth", "trades")
ALL: tuple[type[Contender], ...] = CORE + FEEDS


@dataclass(frozen=True)
class Target:
    """``mine`` must be ``factor`` times faster than ``other`` (or, with ``within``, at most
    ``factor`` times slower)."""

    scenario: str
    other: str
    factor: float
    within: bool = False
    mine: str = "native"

    @property
    def title(self) -> str:
        if self.within:
            return f"{self.scenario}: {self.mine} within {self.factor:g}x of {self.other}"
        return f"{self.scenario}: {self.mine} >= {self.factor:g}x {self.other}"

    def ratio(self, fps: dict[str, dict[str, float]]) -> float | None:
        """None when ``other`` was not measured (its library is not installed)."""
        native = fps[self.scenario].get(self.mine)
        if native is None:
            return None
        other = fps[self.scenario].get(self.other)
        if other is None:
            return None
        # "within" is a cost ratio (native time / other time); otherwise a speed-up.
        return other / native if self.within else native / other

    def met(self, ratio: float | None) -> bool | None:
        if ratio is None:
            return None
        return ratio <= self.factor if self.within else ratio >= self.factor


TARGETS = (
    Target("depth", "cryptofeed_binance", 1.5, mine="native_feed"),
    Target("trades", "cryptofeed_binance", 1.5, mine="native_feed"),
    Target("depth", "ccxt_feed", 12.0, mine="native_feed"),
    Target("trades", "ccxt_feed", 12.0, mine="native_feed"),
    Target("depth", "ccxt", 5.0),
    Target("trades", "ccxt", 10.0),
)


@dataclass(frozen=True)
class Limit:
    """A harness figure against its bound (``at_least`` or at most)."""

    title: str
    section: str
    key: str
    bound: float
    at_least: bool

    def met(self, value: float | None) -> bool | None:
        if value is None:
            return None
        return value >= self.bound if self.at_least else value <= self.bound


LIMITS = (
    Limit("raw replay >= 1M events/s", "replay", "raw_fps", 1_000_000, True),
    Limit("harness overhead <= 10%", "replay", "harness_overhead", 0.10, False),
    Limit("recording overhead <= 5%", "recording", "overhead", 0.05, False),
    Limit("zstd >= 8x on the bundled public session", "recording", "compression_ratio", 8.0, True),
    Limit("peak RSS replaying 1M frames <= 150 MB", "memory", "peak_rss_mb_1m_frames", 150.0, False),
)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def environment() -> dict[str, object]:
    return {
        "date_utc": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%d %H:%M"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "versions": {d: _version(d) for d in ("orjson", "ccxt", "cryptofeed", "sortedcontainers", "Cython")},
        "core": IMPLEMENTATION,
    }


async def _one(
    cls: type[Contender], data: Dataset, depth: bool, collect: bool = True
) -> tuple[float, float, str | None]:
    """(wall seconds, CPU seconds) of one timed run of ``cls`` and what its end state got wrong."""
    c = cls()
    await c.setup(data)
    frames = frames_for(c, data, depth)
    if collect:  # every timed run starts with no garbage pending
        gc.collect()
    c0 = time.process_time()
    t0 = time.perf_counter()
    try:
        await c.run(frames)
    except Exception as exc:  # report it as a wrong end state; the other contenders still run
        error: str | None = f"raised {type(exc).__name__}: {exc}"
    else:
        error = None
    elapsed = time.perf_counter() - t0
    cpu = time.process_time() - c0
    error = error or c.check(data, frames, depth)
    await c.close()
    return elapsed, cpu, error


Rates = dict[str, dict[str, float]]  # scenario -> contender -> frames/second


async def timings(data: Dataset, repeats: int) -> tuple[Rates, Rates, list[str]]:
    """Best-of-``repeats`` frames/second per scenario and contender, by wall clock (``perf_counter``,
    what the targets use) and by this process's CPU time (a cross-check on a shared machine, where
    the wall clock also counts time other processes held the CPU).

    Every repeat runs every scenario and contender in turn, so a noisy moment hits one round of all
    of them rather than every run of one. The heap left by imports is frozen first: collections then
    walk only what the contenders allocate, the same for each of them.
    """
    available = [cls for cls in ALL if cls.available()]
    gc.collect()
    gc.freeze()
    wall: dict[str, dict[str, float]] = {s: {} for s in SCENARIOS}
    cpu: dict[str, dict[str, float]] = {s: {} for s in SCENARIOS}
    errors: list[str] = []
    for _ in range(repeats):
        for scenario in SCENARIOS:
            for cls in available:
                elapsed, used, error = await _one(cls, data, scenario == "depth")
                if error:
                    errors.append(f"{scenario}/{cls.name}: {error}")
                for best, value in ((wall, elapsed), (cpu, used)):
                    prev = best[scenario].get(cls.name)
                    best[scenario][cls.name] = value if prev is None else min(prev, value)
    gc.unfreeze()
    n = len(data.bp_depth)

    def rate(best: dict[str, dict[str, float]]) -> Rates:
        return {s: {name: n / max(t, 1e-9) for name, t in per.items()} for s, per in best.items()}

    return rate(wall), rate(cpu), errors


async def _profile_native(data: Dataset) -> tuple[str, list[dict[str, object]]]:
    c = Native()
    await c.setup(data)
    prof = cProfile.Profile()
    prof.enable()
    await c.run(data.bp_depth)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime")
    stats.print_stats(15)
    rows = []
    for (file, line, func), (_cc, ncalls, tottime, cumtime, _callers) in sorted(
        stats.stats.items(),  # type: ignore[attr-defined]
        key=lambda kv: kv[1][2],
        reverse=True,
    )[:15]:
        rows.append(
            {"function": f"{file}:{line}({func})", "ncalls": ncalls, "tottime": tottime, "cumtime": cumtime}
        )
    return buf.getvalue(), rows


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _print_table(fps: Rates, cpu: Rates) -> None:
    labels = {cls.name: cls.label for cls in ALL}
    print(
        f"\n{'contender':<50} {'scenario':<8} {'frames/s':>10} {'us/frame':>9} {'native x':>9} {'(cpu) x':>8}"
    )
    for scenario, per in fps.items():
        native = per["native"]
        for name, value in sorted(per.items(), key=lambda kv: -kv[1]):
            cpu_x = cpu[scenario]["native"] / cpu[scenario][name]
            print(
                f"{labels[name]:<50} {scenario:<8} {value:>10,.0f} {1e6 / value:>9.2f} {native / value:>9.2f} {cpu_x:>8.2f}"
            )


async def _check_only(data: Dataset) -> list[str]:
    errors = []
    for scenario in SCENARIOS:
        for cls in ALL:
            if not cls.available():
                print(f"{scenario:<7} {cls.name:<20} skipped: needs {', '.join(cls.requires)}")
                continue
            _, _, error = await _one(cls, data, scenario == "depth", collect=False)
            status = "ok" if error is None else f"FAIL: {error}"
            print(f"{scenario:<7} {cls.name:<20} {status}")
            if error:
                errors.append(f"{scenario}/{cls.name}: {error}")
    return errors


def _check_harness(data: Dataset) -> list[str]:
    """The replay of a bench recording delivers what the feed delivered while it was recorded."""
    import tempfile

    from bench import harness_bench as hb

    frames = list(hb.session_frames(data, 400))
    with tempfile.TemporaryDirectory(prefix="bench-check-") as tmp:
        rec = Path(tmp) / "check.jsonl.zst"
        _, direct = asyncio.run(hb.feed_run(frames, data))
        _, recorded = asyncio.run(hb.feed_run(frames, data, rec))
        _, events, replayed = hb.replay_run(rec)
        _, raw = hb.raw_read(rec)
    ok = direct == recorded == replayed and direct > 0 and raw >= len(frames)
    status = "ok" if ok else f"FAIL: lines direct {direct}, recorded {recorded}, replayed {replayed}; {raw} events"
    print(f"{'harness':<7} {'record/replay':<20} {status}")
    return [] if ok else [f"harness: {status}"]


def _report(env: dict, args: argparse.Namespace, fps: Rates, cpu: Rates, results: list, limits: list,
            mem: dict, figures: dict, layers: dict, profile_rows: list, errors: list[str]) -> dict:
    """Everything, plus the keys issue 12 names (``depth.core_fps`` ...), by the ``--clock`` chosen."""
    rates = fps if args.clock == "wall" else cpu

    def get(scenario: str, name: str) -> float | None:
        value = rates[scenario].get(name)
        return None if value is None else round(value, 1)

    def ratio(scenario: str, mine: str, other: str) -> float | None:
        a, b = rates[scenario].get(mine), rates[scenario].get(other)
        return None if a is None or b is None else round(a / b, 3)

    return {
        "environment": env,
        "parameters": {"clock": args.clock, "frames": args.frames, "repeats": args.repeats, "levels": args.levels,
                       "seed": args.seed, "harness_frames": args.harness_frames,
                       "memory_frames": args.memory_frames},
        # The core a feed runs (backpack.protocol.speedups): "cython", or "python" when none was built.
        "compiled_decoder": IMPLEMENTATION,
        "depth": {
            "core_fps": get("depth", "native"), "core_pure_fps": get("depth", "native_pure"),
            "feed_fps": get("depth", "native_feed"), "ccxt_fps": get("depth", "ccxt"),
            "ccxt_feed_fps": get("depth", "ccxt_feed"),
            "cryptofeed_binance_fps": get("depth", "cryptofeed_binance"),
            "decode_floor_fps": get("depth", "orjson"), "decode_fps": get("depth", "native_decode"),
        },
        "trades": {
            "core_fps": get("trades", "native"), "core_pure_fps": get("trades", "native_pure"),
            "feed_fps": get("trades", "native_feed"), "ccxt_fps": get("trades", "ccxt"),
            "ccxt_feed_fps": get("trades", "ccxt_feed"),
            "cryptofeed_binance_fps": get("trades", "cryptofeed_binance"),
            "decode_floor_fps": get("trades", "orjson"),
        },
        "ratios": {
            "depth_core_vs_ccxt": ratio("depth", "native", "ccxt"),
            "depth_feed_vs_cryptofeed": ratio("depth", "native_feed", "cryptofeed_binance"),
            "depth_feed_vs_ccxt_feed": ratio("depth", "native_feed", "ccxt_feed"),
            "trades_core_vs_ccxt": ratio("trades", "native", "ccxt"),
            "trades_feed_vs_cryptofeed": ratio("trades", "native_feed", "cryptofeed_binance"),
            "trades_feed_vs_ccxt_feed": ratio("trades", "native_feed", "ccxt_feed"),
            "depth_core_vs_cryptofeed": ratio("depth", "native", "cryptofeed_binance"),
            "depth_core_vs_pure_core": ratio("depth", "native", "native_pure"),
            "trades_core_vs_pure_core": ratio("trades", "native", "native_pure"),
        },
        "replay": figures["replay"],
        "recording": figures["recording"],
        "memory": {**figures.get("memory", {"peak_rss_mb_1m_frames": None}),
                   "levels_per_side": args.memory_levels, "books": mem},
        "latency": figures["latency"],
        "frames_per_second": fps,
        "frames_per_cpu_second": cpu,
        "targets": results + limits,
        "native_layers_us": layers,
        "native_profile": profile_rows,
        "incorrect_end_states": errors,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=10_000, help="depth frames and trade frames per run")
    ap.add_argument("--repeats", type=int, default=7, help="timed runs per contender; the best counts")
    ap.add_argument("--levels", type=int, default=100, help="levels per side of the synchronised book")
    ap.add_argument("--memory-levels", type=int, default=1000, help="levels per side for the memory test")
    ap.add_argument("--harness-frames", type=int, default=20_000,
                    help="frames per timed replay/recording run (3 depth : 1 trade)")
    ap.add_argument("--memory-frames", type=int, default=1_000_000,
                    help="frames of the recording whose replay's peak RSS is measured (0 skips it)")
    ap.add_argument("--seed", type=int, default=20_250_801)
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument(
        "--profile", action="store_true", help="print a cProfile of the native path even if all targets pass"
    )
    ap.add_argument("--check-only", action="store_true", help="verify every contender's end state; no timing")
    ap.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="clock the PASS/MISS verdicts use: perf_counter (default) or this process's CPU time "
        "(steadier on a machine shared with other work)",
    )
    ap.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    args = ap.parse_args(argv)
    if args.frames < 1 or args.repeats < 1 or args.levels < 20:
        ap.error("--frames and --repeats must be >= 1 and --levels >= 20")

    data = build(args.frames, levels=args.levels, seed=args.seed)
    if args.check_only:
        errors = asyncio.run(_check_only(data))
        errors += _check_harness(data)
        return 1 if errors else 0

    env = environment()
    print(f"python {env['python']} on {env['platform']}, {env['cpus']} cpus, {env['date_utc']} UTC")
    print(f"versions: {env['versions']}; core: {env['core']}")
    print(
        f"{args.frames} frames per run, best of {args.repeats}, book {args.levels} levels/side, seed {args.seed}"
    )
    fps, cpu, errors = asyncio.run(timings(data, args.repeats))
    for e in errors:
        print(f"INCORRECT END STATE: {e}")
    _print_table(fps, cpu)

    print(f"\n{'target':<55} {'ratio':>7} {'(cpu)':>7}  result ({args.clock} clock)")
    results = []
    for t in TARGETS:
        ratio = t.ratio(fps)
        cpu_ratio = t.ratio(cpu)
        ok = t.met(ratio if args.clock == "wall" else cpu_ratio)
        results.append({"target": t.title, "ratio": _round(ratio), "cpu_ratio": _round(cpu_ratio), "met": ok})
        verdict = "SKIP (not installed)" if ok is None else ("PASS" if ok else "MISS")
        print(f"{t.title:<55} {_fmt(ratio):>7} {_fmt(cpu_ratio):>7}  {verdict}")
    for info in (Target("depth", "native_pure", 1.0), Target("trades", "native_pure", 1.0),
                 Target("depth", "cryptofeed_binance", 1.0), Target("depth", "native_feed", 1.0),
                 Target("depth", "orjson", 1.0, within=True)):
        r, c = info.ratio(fps), info.ratio(cpu)
        print(f"{'(info) ' + info.title.replace(' >= 1x', ' vs').replace(' within 1x of', ' cost vs'):<55} "
              f"{_fmt(r):>7} {_fmt(c):>7}")

    from bench.memory import measure

    mem = measure(args.memory_levels)
    print(f"\nmemory: one REST snapshot of {args.memory_levels} levels/side loaded into a book (tracemalloc)")
    print(f"{'book':<22} {'retained KiB':>13} {'peak KiB':>10}")
    for name, m in mem.items():
        print(f"{name:<22} {m['retained'] / 1024:>13,.0f} {m['peak'] / 1024:>10,.0f}")
    if "ccxt" in mem:
        print(f"native retained / ccxt retained = {mem['native']['retained'] / mem['ccxt']['retained']:.2f}")

    from bench import harness_bench

    print(f"\nharness: {args.harness_frames} frames (3 depth : 1 trade) through the feed's run loop, CPU time, "
          f"best of {args.repeats}; 1M-frame replay RSS in a child process" if args.memory_frames else "")
    harness = harness_bench.measure(data, args.harness_frames, args.repeats, args.memory_frames)
    latency = feed_latency(data, repeats=min(args.repeats, 3))
    figures = {**harness, "latency": latency}
    print(f"{'figure':<55} {'value':>12}  result")
    limits = []
    for lim in LIMITS:
        value = figures.get(lim.section, {}).get(lim.key)
        ok = lim.met(value)
        limits.append({"target": lim.title, "value": _round(value), "met": ok})
        verdict = "SKIP" if ok is None else ("PASS" if ok else "MISS")
        shown = "-" if value is None else (f"{value:.1%}" if "overhead" in lim.key else f"{value:,.2f}")
        print(f"{lim.title:<55} {shown:>12}  {verdict}")
    rep, rec = harness["replay"], harness["recording"]
    print(f"{'(info) replay through the feed, events/s':<55} {rep['feed_fps']:>12,.0f}")
    print(f"{'(info) the same frames fed to the feed directly, frames/s':<55} {rep['direct_feed_fps']:>12,.0f}")
    print(f"{'(info) raw read of the bundled public session, events/s':<55} {rep['raw_fps_bundled_public']:>12,.0f}")
    print(f"{'(info) zstd ratio of the bench session (depth-heavy)':<55} "
          f"{rec['compression_ratio_bench_session']:>12,.2f}")
    print(f"\nlatency, frame in -> callback returned (native feed, {latency['frames']} frames, depth and trades):")
    print(f"  msg/s {latency['msgs_per_s']:,.0f}  p50 {latency['feed_p50_us']:.2f} us  "
          f"p90 {latency['feed_p90_us']:.2f} us  p99 {latency['feed_p99_us']:.2f} us  "
          f"cpu {latency['cpu_percent']:.0f}%  rss {latency['rss_mb']:.0f} MB")

    missed = [r for r in results + limits if r["met"] is False]
    profile_rows: list[dict[str, object]] = []
    layers: dict[str, float] = {}
    if missed or args.profile:
        from bench.breakdown import measure as layer_times

        layers = layer_times(data, args.repeats)
        print("\nnative depth frame, layer by layer (CPU us/frame, best of repeats, no profiler):")
        for name in ("json", "decode", "decode_beyond_json", "book", "router_glue", "router", "feed",
                     "feed_beyond_router"):
            if name in layers:
                print(f"  {name:<20} {layers[name]:>6.2f}")
        text, profile_rows = asyncio.run(_profile_native(data))
        print("\ncProfile of the native depth path (Router.receive_frame), top functions by own time:")
        print(text)

    if args.json:
        args.json.write_text(json.dumps(_report(
            env, args, fps, cpu, results, limits, mem, figures, layers, profile_rows, errors), indent=2))
    if errors:
        return 2
    return 1 if (missed and args.strict) else 0


if __name__ == "__main__":
    sys.exit(main())
