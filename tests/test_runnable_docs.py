"""Every block marked ``runnable`` in the README and docs/ runs as written, against a loopback server.

The convention is in docs/README.md; the extraction and the runner are in tests/runnable_docs.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.loopback.server import TEST_ACCOUNT_API_KEY, TEST_ACCOUNT_SECRET

from .runnable_docs import ROOT, BlockError, blocks, doc_pages, environment, fences, run, workspace

pytestmark = pytest.mark.e2e


def _pages_with_blocks() -> list[Path]:
    out = []
    for page in doc_pages():
        try:
            if blocks(page):
                out.append(page)
        except BlockError:
            out.append(page)  # the page's test reports the error
    return out


PAGES = _pages_with_blocks()


@pytest.fixture(scope="module")
def loopback() -> Iterator[tuple[str, str]]:
    """``backpack-harness serve`` as a reader starts it: its own process, a moving seeded market."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", "serve", "--port", "0", "--seed", "1"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        rest = proc.stdout.readline().split()[1].removesuffix("/api/v1/...")
        ws = proc.stdout.readline().split()[1]
        assert rest.startswith("http://127.0.0.1:") and ws.startswith("ws://127.0.0.1:"), (rest, ws)
        yield rest, ws
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_pages_runnable_blocks_run(page: Path, loopback: tuple[str, str], tmp_path: Path) -> None:
    cwd = workspace(tmp_path / "work")
    env = environment(*loopback, TEST_ACCOUNT_SECRET, TEST_ACCOUNT_API_KEY)
    for block in blocks(page):
        outcome = run(block, cwd, env)
        assert outcome.problem() is None, outcome.report()


def test_enough_of_the_docs_run() -> None:
    """The new operator and harness pages are exercised, not just present."""
    counted = {str(p.relative_to(ROOT)): len(blocks(p)) for p in PAGES}
    for page in ("README.md", "docs/exchanges/backpack.md", "docs/runbooks/backpack_migration.md",
                 "docs/migrations/backpack_ccxt.md", "docs/guides/recording-a-fixture.md",
                 "docs/guides/writing-tests.md", "docs/guides/reading-a-parity-report.md"):
        assert counted.get(page, 0) >= 1, f"{page} has no runnable block"
    assert sum(counted.values()) >= 30, counted


def test_the_readme_starts_with_the_two_set_up_commands() -> None:
    sh = [code.strip() for _, words, code in fences(ROOT / "README.md") if words[:1] == ["sh"]]
    assert sh[:2] == ["sh scripts/demo.sh", "sh scripts/test.sh"]


# --- the runner itself: it must catch what a reader would trip over ---------------------------------------


def _page(tmp_path: Path, body: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text(body, encoding="utf-8")
    return page


def _outcomes(tmp_path: Path, body: str) -> list[str | None]:
    cwd = workspace(tmp_path / "w")
    env = environment("http://127.0.0.1:9", "ws://127.0.0.1:9/", TEST_ACCOUNT_SECRET, TEST_ACCOUNT_API_KEY)
    return [run(b, cwd, env).problem() for b in blocks(_page(tmp_path, body))]


def test_the_runner_reports_a_wrong_exit_code_a_traceback_and_a_timeout(tmp_path: Path) -> None:
    body = ("```sh runnable\nexit 3\n```\n\n```python runnable\nraise ValueError('x')\n```\n\n"
            "```sh runnable timeout=0.5\nsleep 5\n```\n\n```sh runnable exit=3\nexit 3\n```\n\n"
            "```sh\nexit 9\n```\n")
    assert _outcomes(tmp_path, body) == ["exited 3, expected 0", "printed a traceback",
                                         "did not finish within 0.5 s", None]


def test_blocks_of_a_page_share_a_directory_and_files_are_written_not_run(tmp_path: Path) -> None:
    body = ("```yaml runnable file=conf/x.yaml\nbackpack:\n  window_ms: 7\n```\n\n"
            "   ```python runnable\n   from backpack.config import BackpackConfig\n"
            "   assert BackpackConfig.from_yaml('conf/x.yaml').window_ms == 7\n   ```\n\n"
            "```sh runnable\ntest -n \"$BACKPACK_REST\" && test -d recordings && test -f pyproject.toml\n```\n")
    assert _outcomes(tmp_path, body) == [None, None, None]


def test_an_html_comment_before_a_plain_fence_marks_it_too(tmp_path: Path) -> None:
    """The comment form carries the same options; a comment with prose between it and the fence marks nothing."""
    body = ("<!-- runnable exit=3 -->\n```sh\nexit 3\n```\n\n<!-- runnable -->\n\n```sh\nexit 4\n```\n\n"
            "<!-- runnable -->\nSome prose.\n```sh\nexit 5\n```\n\n```sh\nexit 6\n```\n")
    assert _outcomes(tmp_path, body) == [None, "exited 4, expected 0"]
    with pytest.raises(BlockError):
        blocks(_page(tmp_path, "<!-- runnable -->\n```sh\nbackpack-harness record --out x.jsonl\n```\n"))


def test_an_interrupted_block_passes_only_if_it_stops_cleanly(tmp_path: Path) -> None:
    body = ("```python runnable interrupt=1\nimport time\nprint('up', flush=True)\ntry:\n    time.sleep(30)\n"
            "except KeyboardInterrupt:\n    pass\n```\n\n"
            "```python runnable interrupt=1\nimport time\nprint('up', flush=True)\ntime.sleep(30)\n```\n")
    assert _outcomes(tmp_path, body) == [None, "printed a traceback"]


def test_an_interrupt_counts_from_the_first_output_not_from_a_slow_start(tmp_path: Path) -> None:
    """A command still importing when its S seconds are up is not stopped mid-import; one that never
    says anything runs into its timeout instead of passing unseen."""
    slow = ("```python runnable interrupt=0.5\nimport time\ntime.sleep(2)\nprint('up', flush=True)\n"
            "try:\n    time.sleep(30)\nexcept KeyboardInterrupt:\n    print('stopped')\n```\n")
    env = environment("http://127.0.0.1:9", "ws://127.0.0.1:9/", TEST_ACCOUNT_SECRET, TEST_ACCOUNT_API_KEY)
    [outcome] = [run(block, workspace(tmp_path / "w"), env) for block in blocks(_page(tmp_path, slow))]
    assert outcome.problem() is None and outcome.stdout.split() == ["up", "stopped"]
    assert outcome.seconds >= 2.5
    silent = "```python runnable interrupt=0.5 timeout=2\nimport time\ntime.sleep(30)\n```\n"
    (tmp_path / "silent").mkdir()
    assert _outcomes(tmp_path / "silent", silent) == ["did not finish within 2 s"]


@pytest.mark.parametrize("block", [
    "```sh runnable\ncurl https://api.backpack.exchange/api/v1/time\n```\n",
    "```sh runnable\nbackpack-harness record --symbols SOL-USDC --channels trades --duration 1 --out x.jsonl\n```\n",
    "```sh runnable\nbackpack-harness auth-check \\\n  --secret-env BACKPACK_SECRET\n```\n",
    "```sh runnable\npython examples/backpack_native_demo.py --live\n```\n",
    "```sh runnable colour=red\ntrue\n```\n",
    "```yaml runnable\nbackpack: {}\n```\n",
    "```sh runnable file=/etc/x\ntrue\n```\n",
])
def test_a_block_that_would_reach_production_or_breaks_the_convention_is_refused(tmp_path: Path, block: str) -> None:
    with pytest.raises(BlockError):
        blocks(_page(tmp_path, block))
