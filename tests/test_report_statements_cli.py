"""Issue 20: every statement of the report is true of the run, and no firm identifier
reaches a released file — through the REAL console command (``python -m pipeline run``,
what ``cluster-impact run`` executes) on small generated projects.

The main project has entry and exit (``attrition``), no ``data.deflators``, and under
``estimate.on_error: skip`` an estimator that fails with firm ids in its message (the
Goodman-Bacon decomposition needs a balanced panel and lists the first unbalanced firms).
Each test changes one thing of the run and checks the sentence that must follow from it;
the numbers are checked against a hand computation from the processed panel.
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests._project import cli, copy_project, make_project, project_params

TOKEN = re.compile(r"[A-Za-z0-9_\-]+")


def _params(deflators: bool) -> dict:
    p = project_params(outcomes=["log_labour_productivity"], estimators=["cs", "twfe", "bacon"], on_error="skip")
    if not deflators:
        p["data"].pop("deflators")
    p["data"].pop("costs", None)  # value for money (nominal and real costs) is not what these statements are about
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("statements")
    make_project(root, n_firms=600, seed=5, attrition=0.3, params=_params(deflators=False))
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    return root


def _text(html_bytes: str) -> str:
    """The visible text of report.html (no CSS, no images), whitespace collapsed."""
    t = re.sub(r"<style>.*?</style>", " ", html_bytes, flags=re.S)
    t = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", " ", t)
    t = re.sub(r"<[^>]+>", " ", t)
    return re.sub(r"\s+", " ", html.unescape(t))


def _pdf_text(pdf: Path) -> str:
    exe = shutil.which("pdftotext")
    if exe is None:
        pytest.skip("pdftotext (poppler-utils) is not installed; .ci/run installs it")
    out = subprocess.run([exe, "-layout", str(pdf), "-"], capture_output=True, text=True, check=True).stdout
    return re.sub(r"\s+", " ", out)


def _released(root: Path) -> dict[str, bytes]:
    files = {}
    for base in (root / "reports", root / "data" / "report"):
        for f in sorted(base.rglob("*")):
            if f.is_file():
                files[str(f.relative_to(root))] = f.read_bytes()
    return files


def _ids(root: Path) -> set[str]:
    return set(pd.read_parquet(root / "data/processed/panel.parquet", columns=["firm_id"])["firm_id"].astype(str))


def test_no_firm_identifier_in_any_released_file(run):
    """Done-when of the issue: the failing estimator's message names firms, yet no firm id
    appears in any released byte (HTML, the PDF's text, CSV, JSON, Markdown, LaTeX), and
    the failure is still reported, with the count instead of the ids."""
    ids = _ids(run)
    reason = json.loads((run / "data/estimates/_summary.json").read_text())["skipped"][0]["reason"]
    named = set(TOKEN.findall(reason)) & ids
    assert len(named) == 5, reason  # precondition: the message does name firms (first_keys shows 5)
    n_units = int(re.search(r"(\d+) units are not observed", reason).group(1))
    files = _released(run)
    assert {"reports/report.html", "data/report/report.html", "data/report/report.pdf", "reports/estimates.csv", "reports/metrics.json"} <= set(files)
    for rel, data in files.items():
        if rel.endswith(".png"):
            continue  # its source data is the figures/*.csv beside it, scanned here
        text = _pdf_text(run / rel) if rel.endswith(".pdf") else data.decode("utf-8", "replace")
        leaked = set(TOKEN.findall(text)) & ids
        assert not leaked, f"{rel}: {len(leaked)} firm id(s), first {sorted(leaked)[:3]}"
    page = _text(files["data/report/report.html"].decode())
    assert f"{n_units} units are not observed in all 15 periods" in page
    disc = json.loads(files["reports/disclosure.json"])
    assert disc["verdict"] == "pass" and disc["release_scan"] == []


def test_identifier_in_a_released_file_fails_the_release(run, tmp_path):
    """An id that reaches a released file by another way (here: a label the user gave,
    which the regression tables print) makes the scan fail the release: exit 3, only the
    disclosure summary is written, and it does not repeat the id."""
    root = tmp_path / "p"
    shutil.copytree(run, root, ignore=shutil.ignore_patterns(".cluster-impact.lock"))
    firm = sorted(_ids(run))[0]
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["report"]["labels"] = {"log_labour_productivity": f"Productivity of {firm}"}
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = cli("report", "--params", "params.yaml", cwd=root)
    assert res.returncode == 3, res.stderr[-2000:]
    assert "Traceback" not in res.stderr
    assert sorted(f.name for f in (root / "reports").rglob("*") if f.is_file()) == ["disclosure.json", "disclosure.md"]
    assert not (root / "data/report/report.html").exists()
    disc = (root / "reports/disclosure.json").read_text()
    assert json.loads(disc)["verdict"] == "block" and "unit identifier" in disc and firm not in disc


def test_skipped_estimator_is_stated_with_its_reason_not_as_not_run(run):
    page = _text((run / "data/report/report.html").read_text())
    reason = json.loads((run / "data/estimates/_summary.json").read_text())["skipped"][0]["reason"]
    tail = reason.rsplit(". ", 1)[1]  # the message's last sentence: shown whole, not cut
    assert tail.endswith("drop 'bacon'.")
    sentence = "Not estimated: Bacon decomposition for Labour productivity (log) failed and was skipped (estimate.on_error: skip): bacon: the Goodman-Bacon"
    assert page.count(sentence) == 2  # the limitation and the section
    assert tail in page
    assert "was not run for this report" not in page.split("Goodman-Bacon decomposition (failed)")[-1].split("Effect heterogeneity")[0]
    nav = re.search(r'<nav class="toc">(.*?)</nav>', (run / "data/report/report.html").read_text(), re.S).group(1)
    assert "Goodman-Bacon decomposition (failed)" in nav
    assert "Goodman-Bacon decomposition (attempted: failed, see Limitations)" in page  # not "not run" in the methods appendix
    pdf = _pdf_text(run / "data/report/report.pdf")
    assert "Goodman-Bacon decomposition (failed)" in pdf and "failed and was skipped" in pdf


def test_without_deflators_value_added_is_nominal(run, tmp_path):
    page = _text((run / "data/report/report.html").read_text())
    pdf = _pdf_text(run / "data/report/report.pdf")
    for doc in (page, pdf):
        assert "nominal value added" in doc and "real value added" not in doc
        assert "Value added is nominal (current prices): no deflators were given" in doc
    # the same project with deflators: real, never nominal
    root = copy_project(run, tmp_path / "defl")
    p = _params(deflators=True)
    p["estimate"]["estimators"] = ["twfe"]
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    real = _text((root / "data/report/report.html").read_text())
    assert "real value added" in real and "nominal value added" not in real and "Value added is nominal" not in real
    assert "Value added is deflated by the sector-year price indices of data.deflators" in real


def test_disclosure_count_is_one_number_in_badge_box_and_limitations(run):
    raw = (run / "data/report/report.html").read_text()
    page = _text(raw)
    n = json.loads((run / "reports/disclosure.json").read_text())["n_withheld"]
    supp = int(pd.read_csv(run / "reports/estimates.csv")["suppressed"].sum())
    assert 0 < supp < n  # precondition: tables are withheld too, so a count of estimates alone would differ
    badge = re.search(r'<span class="verdict pass">([^<]*)</span>', raw).group(1)
    assert badge == f"pass, {n} withheld"
    assert f"Disclosure control: Released with suppression: {n} item(s) withheld" in page
    assert f"{n} item(s) were withheld by disclosure control" in page
    assert f"Withheld items ({n})" in page
    counts = {int(x) for x in re.findall(r"(\d+) item\(s\) (?:were )?withheld", page)}
    assert counts == {n}


def _hand_balanced(root: Path) -> dict[str, int]:
    """Firms of the processed panel with the outcome observed in every panel year (CS's
    default balanced panel, models.did.att_gt), by hand."""
    panel = pd.read_parquet(root / "data/processed/panel.parquet", columns=["firm_id", "year", "first_treat", "log_labour_productivity"])
    ok = panel.dropna(subset=["log_labour_productivity"])
    years = ok.groupby("firm_id")["year"].nunique()
    g = ok.groupby("firm_id")["first_treat"].first()
    full = years == ok["year"].nunique()
    member = g > 0
    return {"firms": int(len(years)), "dropped": int((~full).sum()), "members": int(member.sum()), "members_kept": int((full & member).sum())}


def test_cs_drop_of_firms_with_gaps_is_stated_in_the_headline(run):
    h = _hand_balanced(run)
    assert h["dropped"] > 0 and h["members_kept"] < h["members"]  # precondition: entry and exit
    page = _text((run / "data/report/report.html").read_text())
    findings = page.split("Main findings", 1)[1].split("Credibility checks", 1)[0]
    assert (f"The Callaway–Sant'Anna estimate uses only firms observed in every year: it dropped {h['dropped']} firms with gaps, entry or exit, "
            f"so it rests on {h['members_kept']} of {h['members']} members ({h['firms'] - h['dropped']} of {h['firms']} firms)") in findings


def test_treated_firms_and_clusters_are_those_the_estimate_used(run):
    h = _hand_balanced(run)
    page = _text((run / "data/report/report.html").read_text())
    metrics = json.loads((run / "reports/metrics.json").read_text())["log_labour_productivity"]
    assert metrics["cs"]["n_treated"] == h["members_kept"] and metrics["twfe"]["n_treated"] == h["members"]
    # clustering by firm: the treated clusters of CS are its kept members, not the register's
    # a row of the compact inference table (estimator, verdict, finding, numbers)
    assert re.search(rf"Callaway–Sant'Anna (?:pass|concern|note) Inference clusters by firm id with {h['firms'] - h['dropped']} clusters\. "
                     rf"vcov = cluster\(firm_id\); clusters = {h['firms'] - h['dropped']}; treated clusters = {h['members_kept']}\b", page)
    row = re.search(r"Labour productivity \(log\) Callaway–Sant'Anna log points \S+ \[[^\]]*\] \S+ \S+ [\d,]+ (\d+)", page)
    assert row and int(row.group(1)) == h["members_kept"]
