"""Report library (stage 4): files, content, escaping, determinism.

Inputs are synthetic tidy rows built here (the estimators are tested elsewhere); the
numbers are arbitrary but internally consistent (CI = estimate +- 1.96 SE)."""

from __future__ import annotations

import csv
import functools
import io
import json

import numpy as np
import pandas as pd
import pytest

from models.result import TIDY_COLUMNS, tidy_frame
from pipeline.report.build import ReportInputs, build_report
from pipeline.report.tables import csv_safe, latex_escape, to_csv_bytes

OUTCOMES = ("log_labour_productivity", "exports")


def _row(outcome, estimator, aggregation, estimate, se, *, term="ATT", event_time=None, cohort=None, time=None, n_obs=3000, n_treated=60):
    return {
        "outcome": outcome, "estimator": estimator, "aggregation": aggregation, "term": term,
        "event_time": event_time, "cohort": cohort, "time": time, "estimate": estimate, "std_error": se,
        "statistic": estimate / se, "p_value": float(2 * (1 - __import__("scipy").stats.norm.cdf(abs(estimate / se)))),
        "conf_low": estimate - 1.96 * se, "conf_high": estimate + 1.96 * se, "n_obs": n_obs, "n_treated": n_treated,
    }


def make_inputs(*, small_cohort_n: int = 4, with_truth: bool = True, title_outcome_label: str | None = None) -> tuple[ReportInputs, dict]:
    rows = []
    for o, scale in zip(OUTCOMES, (0.05, 120.0)):
        rows.append(_row(o, "twfe", "static", 0.8 * scale, 0.2 * scale, term="post"))
        for est, shift in (("event_study", 0.0), ("cs", 0.1)):
            rows.append(_row(o, est, "simple", (1 + shift) * scale, 0.25 * scale))
            for e in range(-4, 5):
                if est == "event_study" and e == -1:
                    continue
                eff = 0.0 if e < 0 else scale * (0.5 + 0.25 * e)
                n_tr = small_cohort_n if e == 4 else 60  # only the earliest cohort reaches e = 4
                rows.append(_row(o, est, "dynamic", eff + 0.01 * scale * (e % 3 - 1) + shift * scale, 0.3 * scale, term=f"e{e}", event_time=e, n_treated=n_tr))
            if est == "cs":
                for g, n in ((2012, 25), (2015, 35)):
                    rows.append(_row(o, est, "group", scale * (1.1 if g == 2012 else 0.9), 0.3 * scale, term=f"g{g}", cohort=g, n_treated=n))
    tidy = tidy_frame(rows)
    metas = {}
    for o in OUTCOMES:
        for est in ("twfe", "event_study", "cs"):
            m = {"n_obs": 3000, "n_units": 200, "n_treated_units": 60, "n_clusters": 200, "vcov": "CL(firm_id)", "control_group": "nevertreated", "dropped": {"missing_outcome": 12}}
            if est != "twfe":
                m["pretrend"] = {"statistic": 3.1, "df": 3, "p_value": 0.41 if est == "cs" else 0.012}
            metas[f"{o}-{est}"] = m
    tables = {
        "exports-cs": {
            # long format as models.matching.balance.balance_table writes it
            "balance": pd.DataFrame({"covariate": ["log_employment", "log_employment", "log_capital", "log_capital"], "sample": ["before", "after"] * 2,
                                     "smd": [0.45, 0.03, -0.31, -0.05], "var_ratio": [1.3, 1.02, 0.8, 0.97], "ks": [0.2, 0.04, 0.15, 0.05],
                                     "mean_treated": [3.1, 3.1, 5.2, 5.2], "mean_control": [2.7, 3.08, 5.5, 5.24]}),
            "vcov_dynamic": pd.DataFrame(np.eye(3)),
        }
    }
    ingest_flow = {"firms": {"rows_in": 3100, "rows_kept": 3012, "excluded": {"duplicate_firm_year": 80, "outside_years": 8}},
                   "membership": {"rows_in": 70, "rows_kept": 66, "excluded": {"unknown_firm": 4}}}
    groups_flow = {"rows_in": 3012, "rows_kept": 3000, "excluded": {"always_treated": 12}}
    groups_summary = pd.DataFrame({
        "dimension": ["cohort", "cohort", "cohort", "cluster", "cluster", "sector"],
        "level": ["0", "2012", "2015", "CL01", "CL02", "25"],
        "n_firms": [140, 25, 35, 52, 8, 200],
        "n_firm_years": [2100, 375, 525, 780, 120, 3000],
        "n_members": [0, 25, 35, 52, 8, 60],
    })
    truth = None
    if with_truth:
        tr = []
        for o, scale in zip(OUTCOMES, (0.05, 120.0)):
            for g, n in ((2012, 25), (2015, 35)):
                for e in range(-4, 5):
                    tr.append({"outcome": o, "cohort": g, "year": g + e, "event_time": e, "att": 0.0 if e < 0 else scale * (0.5 + 0.25 * e), "pct": 0.0, "n_firms": n})
        truth = pd.DataFrame(tr)
    labels = {"log_labour_productivity": "Labour productivity (log)", "exports": "Exports (EUR thousand)"}
    if title_outcome_label:
        labels["exports"] = title_outcome_label
    provenance = {"git_commit": "0123456789abcdef0123", "seed": 7, "data": {"firms": {"path": "data/raw/firms.csv", "md5": "d41d8cd98f00b204e9800998ecf8427e"}},
                  "packages": {"numpy": "2.4", "pandas": "3.1"}, "machine": {"system": "Linux", "cpus": 2}}
    inputs = ReportInputs(estimates=tidy, metas=metas, tables=tables, ingest_flow=ingest_flow, groups_flow=groups_flow,
                          groups_summary=groups_summary, truth=truth, params={"seed": 7, "estimate": {"control_group": "nevertreated"}},
                          provenance=provenance, contributors=None)
    options = {"formats": ["html", "pdf"], "disclosure": "strict", "title": "Cluster impact <test>", "labels": labels}
    return inputs, options


@functools.lru_cache(maxsize=None)
def default_build():
    """The default report (html + pdf), built once per test session (shared with
    tests/test_report_render.py)."""
    inputs, options = make_inputs()
    return build_report(inputs, options, seed=7)


@pytest.fixture(scope="module")
def built():
    return default_build()


def test_files_produced(built):
    f = built.files
    assert built.verdict == "pass"
    for name in ("report.html", "report.pdf", "estimates.csv", "metrics.json", "plots/event_study.csv", "disclosure.json", "disclosure.md", "provenance.json",
                 "figures/forest-level.png", "figures/forest-level.csv", "figures/forest-proportional.png", "figures/forest-proportional.csv", "figures/event_study-exports.png", "figures/event_study-exports.csv",
                 "figures/love-exports-cs.png", "figures/love-exports-cs.csv", "tables/exports.tex", "tables/exports.md", "tables/exports.csv",
                 "tables/groups_summary.csv", "tables/exports-cs-balance.csv"):
        assert name in f, name
    assert f["report.pdf"].startswith(b"%PDF")
    assert f["figures/forest-level.png"].startswith(b"\x89PNG") and f["figures/forest-proportional.png"].startswith(b"\x89PNG")
    assert not any(k.startswith("tables/") and "vcov" in k for k in f), "vcov tables are not released"


def test_metrics_nested_and_headline(built):
    m = json.loads(built.files["metrics.json"])
    assert set(m) == set(OUTCOMES)
    assert set(m["exports"]) == {"twfe", "event_study", "cs"}
    assert m["exports"]["cs"]["att"] == pytest.approx(132.0)  # simple row, scale 120 * 1.1
    assert m["exports"]["twfe"]["se"] == pytest.approx(24.0)
    assert m["exports"]["cs"]["n_obs"] == 3000 and m["exports"]["cs"]["n_treated"] == 60


def test_four_firm_event_time_suppressed_everywhere(built):
    """e = 4 rests on 4 firms (n_treated = 4) although N = 3000: withheld in every output."""
    est = pd.read_csv(io.BytesIO(built.files["estimates.csv"]))
    e4 = est[(est["aggregation"] == "dynamic") & (est["event_time"] == 4)]
    assert len(e4) == 4 and e4["suppressed"].all() and e4["estimate"].isna().all() and e4["n_treated"].isna().all()
    ok = est[(est["aggregation"] == "dynamic") & (est["event_time"] == 3)]
    assert (~ok["suppressed"]).all() and ok["estimate"].notna().all()
    plot = pd.read_csv(io.BytesIO(built.files["plots/event_study.csv"]))
    assert plot[plot["event_time"] == 4]["estimate"].isna().all()
    assert plot[plot["event_time"] == 3]["estimate"].notna().all()
    md_rows = [ln for ln in built.files["tables/exports.md"].decode().splitlines() if ln.startswith("| Event time +4")]
    assert md_rows and md_rows[0].count("suppressed") == 2  # event_study and cs columns
    summary = json.loads(built.files["disclosure.json"])
    assert summary["n_withheld"] >= 4
    assert any("e=4" in w["item"] for w in summary["withheld"])
    # the small cluster (8 firms) is blanked in the released group summary
    gs = pd.read_csv(io.BytesIO(built.files["tables/groups_summary.csv"]))
    assert gs.loc[gs["level"] == "CL02", "n_firms"].isna().all()
    assert gs.loc[gs["level"] == "CL01", "n_firms"].iloc[0] == 52


def test_love_plot_from_long_balance_table(built):
    data = pd.read_csv(io.BytesIO(built.files["figures/love-exports-cs.csv"]))
    assert list(data.columns) == ["covariate", "smd_after", "smd_before"] or set(data.columns) == {"covariate", "smd_after", "smd_before"}
    row = data.set_index("covariate").loc["log_employment"]
    assert row["smd_before"] == pytest.approx(0.45) and row["smd_after"] == pytest.approx(0.03)


def test_event_study_csv_long_format_with_truth(built):
    plot = pd.read_csv(io.BytesIO(built.files["plots/event_study.csv"]))
    assert list(plot.columns) == ["outcome", "estimator", "event_time", "estimate", "conf_low", "conf_high", "truth"]
    t = plot[(plot["outcome"] == "exports") & (plot["event_time"] == 2)]["truth"]
    assert t.notna().all() and t.iloc[0] == pytest.approx(120 * (0.5 + 0.5))


def test_required_sections_in_html(built):
    html = built.files["report.html"].decode()
    for sec in ("summary", "flow", "groups", "estimates", "tables", "event-study", "pretrends", "balance", "disclosure", "methods", "provenance"):
        assert f'<section id="{sec}">' in html, sec
    assert "no evidence of pre-trends (p = 0.41)" in html
    assert "evidence of differential pre-trends (p = 0.012)" in html
    assert "excluded: duplicate firm year" in html
    assert "data:image/png;base64," in html
    # self-contained: no external resources, no scripts
    assert "<script" not in html.lower()
    assert "http://" not in html and "https://" not in html and "src=\"/" not in html


def test_absent_sections_say_so():
    inputs, options = make_inputs(with_truth=False)
    inputs.tables = {}
    inputs.groups_summary = None
    inputs.ingest_flow, inputs.groups_flow = {}, {}
    out = build_report(inputs, {**options, "formats": ["html"]}, seed=1)
    html = out.files["report.html"].decode()
    assert "no balance table" in html
    assert "No group summary" in html
    assert "No sample-flow information" in html
    assert "report.pdf" not in out.files


@pytest.fixture(scope="module")
def hostile():
    """One build whose labels, title and a term carry HTML, LaTeX and spreadsheet payloads."""
    inputs, options = make_inputs(title_outcome_label="<script>alert(1)</script> & sales_total 100%")
    est = inputs.estimates.copy()
    est["term"] = est["term"].astype("object")
    est.loc[0, "term"] = '=HYPERLINK("http://evil","click")'
    inputs.estimates = tidy_frame(est)
    return build_report(inputs, {**options, "formats": ["html"], "title": "<script>alert('t')</script>"}, seed=1)


def test_html_escapes_script(hostile):
    html = hostile.files["report.html"].decode()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; sales_total 100%" in html


def test_csv_injection_neutralised(hostile):
    assert csv_safe("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert csv_safe("+1") == "'+1" and csv_safe("@SUM(A1)") == "'@SUM(A1)" and csv_safe("-2+3") == "'-2+3"
    assert csv_safe(-1.5) == -1.5 and csv_safe("plain") == "plain"
    df = pd.DataFrame({"term": ['=HYPERLINK("http://evil","x")', "ok"], "estimate": [-0.5, 1.0]})
    rows = list(csv.reader(io.StringIO(to_csv_bytes(df).decode())))
    assert rows[1][0].startswith("'=HYPERLINK")
    assert rows[1][1] == "-0.5"  # numbers untouched
    # end to end: the formula-like term in estimates.csv stays text, no cell starts with =
    cells = [c for r in csv.reader(io.StringIO(hostile.files["estimates.csv"].decode())) for c in r]
    assert any(c.startswith("'=HYPERLINK") for c in cells)
    assert not any(c.startswith("=") for c in cells)


def test_latex_specials_escaped(hostile):
    assert latex_escape("a_b & 50% $x$ #1 {y} ~ ^ \\") == r"a\_b \& 50\% \$x\$ \#1 \{y\} \textasciitilde{} \textasciicircum{} \textbackslash{}"
    tex = hostile.files["tables/exports.tex"].decode()
    assert r"\textless{}script\textgreater{}alert(1)\textless{}/script\textgreater{} \& sales\_total 100\%" in tex
    assert "\\toprule" in tex and "(24.00)" in tex  # TWFE SE 0.2 * 120 in parentheses
    assert "{[}suppressed{]}" in tex
    md = hostile.files["tables/exports.md"].decode()
    assert "\\<script\\>" in md  # Markdown: HTML brackets escaped


def test_regression_table_layout(built):
    md = built.files["tables/exports.md"].decode()
    lines = [ln for ln in md.splitlines() if ln.startswith("|")]
    header = lines[0]
    assert "TWFE" in header and "Callaway" in header
    assert any(ln.startswith("| ATT (overall)") for ln in lines)
    assert any("Observations" in ln and "3,000" in ln for ln in lines)
    tab = pd.read_csv(io.BytesIO(built.files["tables/exports.csv"]))
    assert list(tab.columns)[0] == "term"


def test_determinism_identical_bytes(built):
    """A second build from freshly made (equal) inputs gives the same bytes for every file,
    PNG and PDF included."""
    b_in, opts = make_inputs()
    a = built.files
    b = build_report(b_in, opts, seed=7).files
    assert a.keys() == b.keys()
    assert [k for k in a if a[k] != b[k]] == []


def test_block_mode_returns_only_summary():
    inputs, options = make_inputs()
    out = build_report(inputs, {**options, "formats": [], "disclosure": {"profile": "strict", "on_fail": "block"}}, seed=1)
    assert out.verdict == "block"
    assert set(out.files) == {"disclosure.json", "disclosure.md"}
    assert out.blocked and json.loads(out.files["disclosure.json"])["verdict"] == "block"


def test_off_profile_releases_everything():
    inputs, options = make_inputs()
    out = build_report(inputs, {**options, "formats": [], "disclosure": "off"}, seed=1)
    est = pd.read_csv(io.BytesIO(out.files["estimates.csv"]))
    assert not est["suppressed"].any() and out.verdict == "pass" and out.blocked == []


def test_release_scan_blocks_unit_ids_in_labels():
    """A label that smuggles a firm identifier into the report blocks the release."""
    from pipeline.disclosure import cell_contributions

    inputs, options = make_inputs()
    panel = pd.DataFrame({"firm_id": [f"F{i:05d}" for i in range(30)], "year": 2015, "first_treat": 2015, "exports": 1.0, "log_labour_productivity": 1.0})
    inputs.contributors = cell_contributions(panel, ["exports"])
    opts = {**options, "formats": ["html"], "disclosure": "off", "labels": {**options["labels"], "exports": "Exports of F00007"}}
    out = build_report(inputs, opts, seed=1)
    assert out.verdict == "block"
    assert "F00007" not in out.files["disclosure.md"].decode()


def test_tidy_columns_preserved_in_estimates_csv(built):
    est = pd.read_csv(io.BytesIO(built.files["estimates.csv"]))
    assert list(est.columns) == [*TIDY_COLUMNS, "suppressed", "disclosure_note"]


@pytest.mark.slow
def test_report_from_real_stage_outputs(tmp_path):
    """Through the real ingest / build_groups / estimate stages on a small generated sample,
    then :func:`pipeline.report.inputs.load_inputs` and :func:`build_report` (strict)."""
    from pipeline.config import load_params
    from pipeline.report.inputs import load_inputs
    from tests._project import cli, make_project, project_params

    params = project_params(estimators=["twfe", "event_study", "cs"], outcomes=["log_labour_productivity", "exports"])
    make_project(tmp_path, n_firms=400, seed=3, params=params)
    for stage in ("ingest", "build_groups", "estimate"):
        cli(stage, "--params", "params.yaml", cwd=tmp_path, check=True)
    p = load_params(tmp_path / "params.yaml")
    inputs = load_inputs(p)
    assert inputs.contributors is not None and len(inputs.contributors)
    out = build_report(inputs, {**p["report"], "formats": ["html", "pdf"], "disclosure": "strict"}, seed=p.seed)
    assert out.verdict == "pass"
    assert {"report.html", "report.pdf", "metrics.json", "estimates.csv"} <= set(out.files)
    est = pd.read_csv(io.BytesIO(out.files["estimates.csv"]))
    # every released (unsuppressed) row rests on at least 10 distinct treated firms
    released = est[~est["suppressed"]]
    assert (released["n_treated"].dropna() >= 10).all()
    again = build_report(load_inputs(p), {**p["report"], "formats": ["html", "pdf"], "disclosure": "strict"}, seed=p.seed)
    assert [k for k in out.files if out.files[k] != again.files[k]] == []


def test_failed_event_study_estimator_is_why_there_is_no_pretrend_test():
    """Issue 20: with the only event-study estimator failed (on_error: skip), the report says
    the pre-trend test is missing because it failed, not that none was run; its reason
    reaches the report with the firm ids rewritten to counts, in HTML and PDF source."""
    import re as _re

    inputs, options = make_inputs(with_truth=False)
    keep = inputs.estimates["estimator"] == "twfe"
    inputs.estimates = inputs.estimates[keep].reset_index(drop=True)
    inputs.metas = {k: v for k, v in inputs.metas.items() if k.endswith("-twfe")}
    inputs.tables = {}
    inputs.skipped = [{"estimator": "event_study", "outcome": "exports",
                       "reason": "event_study: column 'first_treat' varies within 2 units (first: F000001, F000002); it must be constant."}]
    inputs.unit_ids = {"F000001", "F000002", "F000003"}
    out = build_report(inputs, options, seed=7)
    assert out.verdict == "pass"
    page = _re.sub(r"\s+", " ", out.files["report.html"].decode())
    assert "No pre-trend test from Event study (TWFE) for Exports (EUR thousand): it failed (see Limitations)." in page
    assert "no event-study estimator was run" not in page and "No joint pre-trend test is available" not in page
    assert "varies within 2 units; it must be constant." in page
    for rel, data in out.files.items():
        assert b"F00000" not in data or rel.endswith((".png", ".pdf")), rel
