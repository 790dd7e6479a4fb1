"""Structural checks of the rendered report (issue 20 item 5), shared by
tests/test_report_render.py (the library build) and tests/test_report_page_one_cli.py (a
real CLI run on generated data with entry and exit).

* :func:`pdf_pages` — the text of every PDF page (poppler's ``pdftotext -layout``), running
  header and page number removed.
* :func:`orphans` — pages whose last text line is a table header or a heading left at the
  page foot. Every PDF table has a ``table.header`` that Typst repeats on each page it
  spans, so a header orphaned at a page foot shows as the page's last line(s) coming again
  as the next page's first line(s); a heading is an outline entry ("3 Sample flow") or a
  numbered sub-heading ("3.1 By cohort").
* :func:`html_layout` — the HTML laid out by headless Chromium at a window width: the
  document's scroll width, every element reaching beyond the ``<main>`` text column, and the
  widest paragraph and table (text and tables share one column width).
  The page's Content-Security-Policy forbids scripts, so a copy without it gets a small
  probe script whose result is read from the DOM Chromium dumps after the load event.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

PAGE_NO = re.compile(r"^\s*\d+\s*/\s*\d+\s*$")
HEADING = re.compile(r"^\s*\d+(\.\d+)*\s+\S")


def browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    return None


def pdf_pages(pdf: Path, running_header: str = "Impact evaluation report") -> list[list[str]]:
    out = subprocess.run(["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True, timeout=120).stdout
    pages = []
    for i, page in enumerate(out.split("\f")):
        lines = [ln.rstrip() for ln in page.splitlines() if ln.strip()]
        if not lines:
            continue
        if i > 0 and running_header in lines[0]:
            lines = lines[1:]
        if lines and PAGE_NO.match(lines[-1]):
            lines = lines[:-1]
        pages.append(lines)
    return pages


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s).strip()


def outline(pages: list[list[str]]) -> list[str]:
    """The level-1 headings ("3 Sample flow") from the PDF's table of contents."""
    out = []
    for page in pages:
        for ln in page:
            m = re.match(r"^\s*(\d+ .*?)\s*(?:\.\s*){3,}\S*\s*\d+\s*$", ln)
            if m:
                out.append(_norm(m.group(1)))
    return out


SUBHEADING = re.compile(r"^\s*\d+\.\d+(\.\d+)* [A-Z]")


def orphans(pages: list[list[str]]) -> list[str]:
    """Descriptions of every orphaned table header or heading (empty: none)."""
    heads = set(outline(pages))
    bad = []
    for k, page in enumerate(pages):
        if not page:
            continue
        last = _norm(page[-1])
        nxt = pages[k + 1] if k + 1 < len(pages) else []
        # a repeated table header: the page's last line is the next page's first line
        if nxt and last and last == _norm(nxt[0]):
            bad.append(f"page {k + 1}: table header {last!r} at the page foot, repeated on page {k + 2}")
        if last in heads or SUBHEADING.match(page[-1]):
            bad.append(f"page {k + 1}: heading {last!r} is the last line of the page")
    return bad


PROBE = """<script>window.addEventListener('load', function () {
  var m = document.querySelector('main').getBoundingClientRect(), bad = [];
  document.querySelectorAll('main *').forEach(function (e) {
    var r = e.getBoundingClientRect();
    if (r.width > 0 && r.right > m.right + 1) bad.push(e.tagName.toLowerCase() + (e.className ? '.' + e.className : '') + ' right=' + Math.round(r.right));
  });
  document.body.setAttribute('data-probe', JSON.stringify({scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,
    main: [Math.round(m.left), Math.round(m.right)], beyond: bad.slice(0, 20), n_beyond: bad.length,
    text: Math.round(Math.max.apply(null, Array.prototype.map.call(document.querySelectorAll('main section > p'), function (e) { return e.getBoundingClientRect().width; }))),
    tables: Math.round(Math.max.apply(null, Array.prototype.map.call(document.querySelectorAll('main table'), function (e) { return e.getBoundingClientRect().width; }))),
    sections: Array.prototype.map.call(document.querySelectorAll('main > section'), function (s) { return s.id; }),
    toc: Array.prototype.map.call(document.querySelectorAll('nav.toc a'), function (a) { return a.getAttribute('href').slice(1); })}));
});</script>"""


def html_layout(report_html: Path, tmp: Path, width: int = 1280) -> dict:
    exe = browser()
    page = report_html.read_text(encoding="utf-8")
    page = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", page)
    probe = tmp / "probe.html"
    probe.write_text(page.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp / 'profile-probe'}", f"--window-size={width},2000",
           "--dump-dom", probe.as_uri()]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    m = re.search(r'data-probe="([^"]*)"', res.stdout)
    assert m, res.stderr[-2000:]
    return json.loads(html.unescape(m.group(1)))
