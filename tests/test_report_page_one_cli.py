"""Issue 20, done-when: the first page of the PDF answers "did it work, for which outcome,
by how much, how sure" for a run on non-embedded data with entry and exit — through the
REAL console command (``python -m pipeline run``) on a generated project: 30% of firms exit
early and firms enter after the first year, no deflators (nominal values), HonestDiD on the
event study of labour productivity.

Page one must hold the headline table with productivity first, then exports, then patents;
the lights; the forest figure's caption; and the three caveats this run calls for, each the
statement the report makes elsewhere (synthetic data, nominal value added, the firms the
Callaway–Sant'Anna balanced panel dropped). The rest of the document keeps the structural
checks of tests/_render.py (no orphan header or heading, no horizontal overflow at 1280 px).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from tests import _render
from tests._project import cli, make_project, project_params


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("page_one")
    p = project_params(outcomes=["patents", "exports", "log_labour_productivity"], estimators=["twfe", "event_study", "cs"],
                       sensitivity={"estimators": ["event_study"], "outcomes": ["log_labour_productivity"], "mbar": [0.5, 1.0]})
    p["data"].pop("deflators")
    make_project(root, n_firms=600, seed=11, attrition=0.3, params=p)
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    return root


def _flat(lines: list[str]) -> str:
    return re.sub(r"\s+", " ", " ".join(lines))


def test_page_one_answers_for_entry_and_exit(run):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    pages = _render.pdf_pages(run / "data/report/report.pdf")
    one = _flat(pages[0])
    for head in ("Executive summary", "The question:", "Outcome", "Answer", "Effect", "95% interval", "Range (estimators)",
                 "Pre-trends", "Sensitivity", "Disclosure", "Headline average effect on members"):
        assert head in one, head
    pos = [one.find(x) for x in ("Labour productivity (log)", "Exports", "Patent applications")]
    assert min(pos) >= 0 and pos == sorted(pos), pos  # productivity first, then exports, then patents
    # the preferred heterogeneity-robust estimator, as a percentage for the log outcome
    assert re.search(r"Labour productivity \(log\) (?:higher|lower|not significant) [+-]\d+\.\d% [+-]\d+\.\d% to [+-]\d+\.\d%", one), one[:1500]
    assert "Callaway–Sant'Anna" in one
    # the HonestDiD breakdown of the event study is the sensitivity light, its source named
    assert re.search(r"M̄\s*\*? = \d\.\d\d", one) or re.search(r"M̄M̄\* = \d\.\d\d", one), one
    assert "Labour productivity (log): sensitivity from Event study (TWFE)" in one
    # three caveats from the run: synthetic, nominal, the CS balanced-panel drop
    cav = one.split("Caveats.", 1)[1]
    assert "synthetic (simulated) economy" in cav
    assert "Value added is nominal (current prices)" in cav
    assert re.search(r"The Callaway–Sant'Anna estimate uses only firms observed in every year: it dropped \d+ firms with gaps, entry or exit", cav)
    assert "Contents" in _flat(pages[1]) and "Contents" not in one


def test_no_orphans_no_overflow(run, tmp_path):
    if shutil.which("pdftotext") is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    pages = _render.pdf_pages(run / "data/report/report.pdf")
    assert len(_render.outline(pages)) >= 15
    assert _render.orphans(pages) == []
    if _render.browser() is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    lay = _render.html_layout(run / "data/report/report.html", tmp_path)
    assert lay["scroll"] <= lay["client"] and lay["n_beyond"] == 0, lay
    assert lay["toc"] == lay["sections"]


def test_findings_state_a_balanced_panel_drop_once(run):
    """Findings in detail: the Callaway–Sant'Anna drop is stated in full for the first
    outcome it applies to (productivity, in page-one order) and referred to where the same
    firms were dropped, so three outcomes do not repeat one long sentence three times."""
    import html as _html

    page = (run / "data/report/report.html").read_text()
    det = page.split('<section id="findings">', 1)[1].split("</section>", 1)[0]
    det = re.sub(r"\s+", " ", _html.unescape(re.sub(r"<[^>]+>", " ", det)))
    full = re.findall(r"The Callaway–Sant'Anna estimate uses only firms observed in every year: it dropped (\d+) firms", det)
    same = det.count("The Callaway–Sant'Anna estimate uses the same balanced panel as for Labour productivity (log) (see there).")
    assert len(full) >= 1 and len(full) + same == 3, (full, same)
    assert det.index("Labour productivity (log): according to") < det.index("Exports: according to") < det.index("Patent applications: according to")
