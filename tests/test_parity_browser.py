"""The HTML parity report in a real browser: headless Chromium renders it, offline, verdict, tables and charts."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from tests.test_parity import _record_gap

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    message = ("Debian's chromium package is not installed, so the HTML report cannot be checked in a browser "
               "(.ci/run installs it: apt-get install -y chromium)")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _run(browser: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([browser, *FLAGS, f"--user-data-dir={profile}", *args], capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.e2e
def test_the_html_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    from harness.cli import main

    browser = _chromium()
    recording = tmp_path / "gap.jsonl.zst"
    asyncio.run(_record_gap(recording))
    out = tmp_path / "report"
    assert main(["parity", str(recording), "--out", str(out), "--no-progress"]) == 0
    page = (out / "report.html").resolve().as_uri()

    dom = _run(browser, tmp_path / "profile-dom", "--dump-dom", page)
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert re.search(r'<section id="verdict" class="verdict pass" data-verdict="pass">', html)
    assert "GA gate PASS" in html
    totals = re.search(r'<table class="channels" id="totals">(.*?)</table>', html, re.S)
    assert totals is not None
    assert 'data-channel="trade"' in totals.group(1) and 'data-channel="book"' in totals.group(1)
    assert '<table id="registry">' in html and html.count("<tr") > 30
    depth = re.search(r'<svg class="chart depth".*?</svg>', html, re.S)
    assert depth is not None
    assert 'class="series native"' in depth.group(0) and 'class="series ccxt"' in depth.group(0)
    timeline = re.search(r'<svg class="chart timeline".*?</svg>', html, re.S)
    assert timeline is not None and timeline.group(0).count("<circle") > 0
    assert "http://" not in html.replace("http://www.w3.org/2000/svg", "") and "https://" not in html

    png = tmp_path / "report.png"
    shot = _run(browser, tmp_path / "profile-shot", f"--screenshot={png}", "--window-size=1280,2000", page)
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert (width, height) == (1280, 2000)
    assert len(data) > 40_000  # text, tables and two charts; a blank page compresses to a few kB
