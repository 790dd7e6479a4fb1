"""Rendering: the HTML in a real browser (headless Debian chromium) and the PDF through
poppler's pdftoppm must produce non-blank pages.

CI needs `apt-get install -y chromium poppler-utils` (.ci/run). Without chromium the browser
test is skipped with the reason printed; pdftoppm likewise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.test_report import default_build


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory) -> Path:
    out = default_build()
    root = tmp_path_factory.mktemp("reports")
    for rel, data in out.files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return root


def _not_blank(png: Path) -> float:
    img = np.asarray(Image.open(png).convert("L"), dtype=float)
    return float(img.std())


def test_html_screenshot_not_blank(report_dir, tmp_path):
    browser = _browser()
    if browser is None:
        print("SKIP reason: chromium is not installed (apt-get install -y chromium)")
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    shot = tmp_path / "report.png"
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
           "--disable-background-networking", "--disable-component-update", "--disable-sync",
           f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}", "--window-size=1200,3000",
           (report_dir / "report.html").as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert shot.is_file(), res.stderr[-2000:]
    w, h = Image.open(shot).size
    assert (w, h) == (1200, 3000)
    # a blank page has std 0; text, tables and figures give a clearly positive spread
    assert _not_blank(shot) > 10.0
    # the top band (title, table of contents) is not empty either
    top = np.asarray(Image.open(shot).convert("L"), dtype=float)[:600]
    assert top.std() > 10.0


def test_pdf_pages_not_blank(report_dir, tmp_path):
    if shutil.which("pdftoppm") is None:
        print("SKIP reason: pdftoppm (poppler-utils) is not installed")
        pytest.skip("pdftoppm (poppler-utils) is not installed")
    subprocess.run(["pdftoppm", "-r", "40", "-png", str(report_dir / "report.pdf"), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) >= 4
    spreads = [_not_blank(p) for p in pages]
    assert min(spreads) > 5.0, spreads
