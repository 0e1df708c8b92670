"""Find the fenced blocks of the docs marked ``runnable`` and run them as a reader would.

The convention is in ``docs/README.md`` ("Runnable blocks"). In short, the info string of the fence is
``<language> runnable [option=value ...]``, for example ```` ```sh runnable exit=5 ````, or the fence stays
plain and the line before it is ``<!-- runnable [option=value ...] -->``. ``sh`` blocks
run with ``sh -e``, ``python`` blocks with the project's interpreter, and blocks with ``file=PATH`` are
written to PATH for later blocks instead of being run. All blocks of one page run in order, in one
working directory (a scratch copy that holds ``recordings/``, ``examples/``, ``bench/``, ``docs/``,
``pyproject.toml`` and the test-only helpers of ``tests/``). The environment carries
``BACKPACK_REST``/``BACKPACK_WS`` of a loopback server the test started, and the loopback test account's key as ``BACKPACK_SECRET``/``BACKPACK_API_KEY``.

A block fails when its exit code is not the expected one, when it runs past its timeout, or when it
prints a Python traceback. A user never gets one of those.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MARKER = "runnable"
LANGUAGES = ("sh", "python", "yaml", "json", "ini", "toml", "text")
OPTIONS = ("exit", "timeout", "interrupt", "file")
DEFAULT_TIMEOUT = 60.0
_FENCE = re.compile(r"^(?P<indent>[ ]*)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
# Production hosts never appear in a block that runs; commands that default to production need --rest.
_PRODUCTION = re.compile(r"backpack\.exchange")
_DEFAULTS_TO_PRODUCTION = re.compile(r"backpack-harness\s+(record|auth-check)\b|examples/observability\.py")
_COMMENT = re.compile(r"^\s*<!--\s*runnable(?P<options>(?:\s+[^\s>]+)*)\s*-->\s*$")
_COPIED = ("recordings",)
_LINKED = ("examples", "bench", "docs")
# Test-only helpers a page may import (the bisecting runbook's deliberate book bug); tests/ itself stays
# a scratch folder, so files a page writes there never land in the checkout.
_TEST_HELPERS = ("__init__.py", "bisect_bug.py")


class BlockError(ValueError):
    """A block whose marker or content breaks the convention; names the page and line."""


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    language: str
    code: str
    options: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        shown = self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path
        return f"{shown}:{self.line}"

    @property
    def expected_exit(self) -> int:
        return int(self.options.get("exit", "0"))

    @property
    def timeout(self) -> float:
        return float(self.options.get("timeout", DEFAULT_TIMEOUT))

    @property
    def interrupt(self) -> float | None:
        value = self.options.get("interrupt")
        return None if value is None else float(value)


def doc_pages(root: Path = ROOT) -> list[Path]:
    """The README and every page under docs/, in a stable order."""
    return [root / "README.md", *sorted((root / "docs").rglob("*.md"))]


def _options(words: list[str], where: str) -> dict[str, str]:
    out = {}
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or key not in OPTIONS or not value:
            raise BlockError(f"{where}: unknown runnable option {word!r} (options: {', '.join(OPTIONS)})")
        out[key] = value
    if "exit" in out and not out["exit"].isdigit():
        raise BlockError(f"{where}: exit= takes an exit code")
    for key in ("timeout", "interrupt"):
        if key in out:
            try:
                float(out[key])
            except ValueError:
                raise BlockError(f"{where}: {key}= takes seconds") from None
    if "file" in out and (out["file"].startswith("/") or ".." in Path(out["file"]).parts):
        raise BlockError(f"{where}: file= takes a path inside the working directory")
    return out


def fences(path: Path) -> list[tuple[int, list[str], str]]:
    """Every fenced block of ``path``: (line of the opening fence, words of its info string, code)."""
    return _fences(path.read_text(encoding="utf-8"))[0]


def prose(text: str) -> str:
    """``text`` without its fenced blocks (fence lines included), for checks of the prose and inline code."""
    return _fences(text)[1]


def _fences(text: str) -> tuple[list[tuple[int, list[str], str]], str]:
    out = []
    kept: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            kept.append(lines[i])
            i += 1
            continue
        indent, fence, words = len(m["indent"]), m["fence"], m["info"].split()
        start, body = i, []
        closing = re.compile(rf"^[ ]*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            body.append(lines[i][indent:] if lines[i][:indent].strip() == "" else lines[i])
            i += 1
        i += 1
        out.append((start + 1, words, "\n".join(body) + "\n"))
    return out, "\n".join(kept) + "\n"


def _comment_marker(lines: list[str], fence_line: int) -> list[str] | None:
    """The words after ``runnable`` of an HTML comment ``<!-- runnable [option=value ...] -->`` on the line
    before the fence (blank lines between allowed), or None. The comment form is the same marker for pages
    whose fences must stay plain."""
    i = fence_line - 2
    while i >= 0 and not lines[i].strip():
        i -= 1
    m = _COMMENT.match(lines[i]) if i >= 0 else None
    return None if m is None else m["options"].split()


def blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` marked runnable; BlockError for a malformed marker."""
    found: list[Block] = []
    lines = path.read_text(encoding="utf-8").splitlines()
    for line, words, code in fences(path):
        comment = _comment_marker(lines, line)
        if comment is not None and words and MARKER not in words[1:]:
            words = [words[0], MARKER, *comment]
        if MARKER not in words[1:]:
            continue
        where = Block(path, line, "", "").where
        language = words[0]
        if language not in LANGUAGES:
            raise BlockError(f"{where}: runnable blocks are one of {', '.join(LANGUAGES)}, not {language!r}")
        options = _options([w for w in words[1:] if w != MARKER], where)
        if language not in ("sh", "python") and "file" not in options:
            raise BlockError(f"{where}: a runnable {language} block needs file=PATH (it is written, not run)")
        if "file" in options and set(options) - {"file"}:
            raise BlockError(f"{where}: a file= block is written, not run: it takes no other option")
        block = Block(path, line, language, code, options)
        check_safe(block)
        found.append(block)
    return found


def check_safe(block: Block) -> None:
    """A runnable block never reaches production: no production host, and the commands that default to it
    carry an endpoint of the test's loopback server (or another command's --rest)."""
    text = block.code.replace("\\\n", " ")
    if _PRODUCTION.search(text):
        raise BlockError(f"{block.where}: a runnable block must not name a production host")
    for line in text.splitlines():
        if _DEFAULTS_TO_PRODUCTION.search(line) and "--rest" not in line and "--help" not in line:
            raise BlockError(f"{block.where}: {line.strip()!r} would default to production: give --rest "
                             "\"$BACKPACK_REST\" (and --ws)")
        if "--live" in line and "examples/backpack_native_demo.py" in line and "--rest" not in line:
            raise BlockError(f"{block.where}: --live without --rest goes to production")


def workspace(directory: Path) -> Path:
    """A scratch working directory that looks like a checkout: blocks may read it and write anywhere in it."""
    directory.mkdir(parents=True, exist_ok=True)
    for name in _COPIED:
        shutil.copytree(ROOT / name, directory / name, dirs_exist_ok=True)
    for name in _LINKED:
        if not (directory / name).exists():
            (directory / name).symlink_to(ROOT / name, target_is_directory=True)
    shutil.copy(ROOT / "pyproject.toml", directory / "pyproject.toml")
    (directory / "tests").mkdir(exist_ok=True)
    for name in _TEST_HELPERS:
        shutil.copy(ROOT / "tests" / name, directory / "tests" / name)
    return directory


def environment(rest_url: str, ws_url: str, secret: str, api_key: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "CRYPTOFEED_BACKPACK"))}
    env.update(BACKPACK_REST=rest_url, BACKPACK_WS=ws_url, BACKPACK_SECRET=secret, BACKPACK_API_KEY=api_key)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONUNBUFFERED"] = "1"
    env.pop("BACKPACK_HEALTH_PORT", None)
    return env


@dataclass
class Outcome:
    block: Block
    code: int | None
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False

    def problem(self) -> str | None:
        if self.timed_out:
            return f"did not finish within {self.block.timeout:g} s"
        if "Traceback (most recent call last)" in self.stdout + self.stderr:
            return "printed a traceback"
        expected = self.block.expected_exit
        if self.block.interrupt is not None:
            ok = self.code in (0, 130, -signal.SIGINT) and expected == 0
        else:
            ok = self.code == expected
        return None if ok else f"exited {self.code}, expected {expected}"

    def report(self) -> str:
        def tail(text: str) -> str:
            return "\n".join(text.splitlines()[-25:])

        return (f"{self.block.where} ({self.block.language} block) {self.problem()}\n--- block ---\n"
                f"{self.block.code}--- stdout (tail) ---\n{tail(self.stdout)}\n--- stderr (tail) ---\n"
                f"{tail(self.stderr)}")


def run(block: Block, cwd: Path, env: dict[str, str]) -> Outcome:
    """Run one block in ``cwd``; a ``file=`` block is written there and succeeds."""
    started = time.monotonic()
    scratch = cwd / ".tmp"  # the page's own TMPDIR: blocks writing "${TMPDIR:-/tmp}/x" race no parallel run
    scratch.mkdir(exist_ok=True)
    env = {**env, "TMPDIR": str(scratch)}
    if "file" in block.options:
        target = cwd / block.options["file"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.code, encoding="utf-8")
        return Outcome(block, 0, "", "", 0.0)
    if block.language == "python":
        script = cwd / f"_doc_block_{block.line}.py"
        script.write_text(block.code, encoding="utf-8")
        argv = [sys.executable, script.name]
    else:
        argv = ["sh", "-e", "-c", block.code]
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    if block.interrupt is not None:
        return _run_until_interrupted(block, proc, started)
    timed_out = False
    try:
        out, err = proc.communicate(timeout=block.timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
    return Outcome(block, proc.returncode, out, err, time.monotonic() - started, timed_out)


def _run_until_interrupted(block: Block, proc: subprocess.Popen, started: float) -> Outcome:
    """Ctrl-C ``interrupt`` seconds after the block's first line of output, as a reader would.

    Counting from the first output and not from the start keeps a slow start-up (a loaded CI machine
    takes seconds to import) from being interrupted before the command has done anything.
    """
    streams = {"out": proc.stdout, "err": proc.stderr}
    chunks: dict[str, list[str]] = {name: [] for name in streams}
    first_output = threading.Event()

    def pump(name: str) -> None:
        for line in streams[name]:
            chunks[name].append(line)
            first_output.set()

    readers = [threading.Thread(target=pump, args=(name,), daemon=True) for name in streams]
    for reader in readers:
        reader.start()
    deadline = started + block.timeout
    timed_out = False
    while not first_output.is_set() and proc.poll() is None and time.monotonic() < deadline:
        first_output.wait(0.05)
    if proc.poll() is None and first_output.is_set():
        try:
            proc.wait(timeout=max(0.0, min(block.interrupt, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGINT)
    try:
        proc.wait(timeout=max(0.0, deadline - time.monotonic()) + block.interrupt)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    for reader in readers:
        reader.join()
    return Outcome(block, proc.returncode, "".join(chunks["out"]), "".join(chunks["err"]),
                   time.monotonic() - started, timed_out)


def describe(blocks_: list[Block]) -> str:
    return "\n".join(f"{b.where} {b.language} {shlex.join(f'{k}={v}' for k, v in b.options.items())}"
                     for b in blocks_)
