"""Report sections for the credibility battery, HonestDiD sensitivity, outcome families and
the Goodman-Bacon decomposition (pipeline/report/sections.py and their figures).

Inputs extend tests/test_report.make_inputs with the shapes the estimate stage writes
(checks rows + meta["verdicts"] + tables["leave_one_out"]; meta["sensitivity"] +
tables["honest_did"] + tables["vcov_dynamic"]; tables["bacon"]; ppml rows "post"/"pct";
ingest_flow["derived"]["log_tfp"]). Numbers are arbitrary but internally consistent."""

from __future__ import annotations

import functools
import io
import re

import numpy as np
import pandas as pd
import pytest

from models.result import tidy_frame
from pipeline.report.build import build_report
from tests.test_report import _row, make_inputs

O = "log_labour_productivity"
LOO = ("CL01", "CL02", "CL03", "CL04")


def full_inputs(*, loo_small: bool = False, dyn_small: bool = False):
    inputs, options = make_inputs(small_cohort_n=60)  # no suppressed event-time row (see dyn_small)
    rows = []
    for term, est, se, n in (("placebo_adoption", 0.01, 0.01, 60), ("placebo_group", 0.03, 0.01, 60), ("ri_pvalue", 0.05, np.nan, 60),
                             ("spillover_naive", 0.05, 0.0125, 60), ("spillover_free", 0.045, 0.014, 60), ("spillover_effect", -0.001, 0.007, 300)):
        r = _row(O, "checks", "static", est, se if se == se else 1.0, term=term, n_treated=n)
        if term == "ri_pvalue":
            r.update(std_error=np.nan, statistic=np.nan, conf_low=np.nan, conf_high=np.nan, p_value=0.005)
        rows.append(r)
    loo_rows = []
    for i, cl in enumerate(LOO):
        n = 3 if (loo_small and cl == "CL02") else 50
        r = _row(O, "checks", "static", 0.045 + 0.004 * i, 0.012, term=f"loo:{cl}", n_treated=n)
        rows.append(r)
        loo_rows.append({"left_out": cl, "dropped_rows": 150, "dropped_firms": 10, "estimate": r["estimate"], "std_error": 0.012, "p_value": r["p_value"],
                         "conf_low": r["conf_low"], "conf_high": r["conf_high"], "n_obs": 2850, "n_treated": n, "by": "cluster_id"})
    # ppml for exports: log coefficient and percentage effect
    rows.append(_row("exports", "ppml", "static", 0.2, 0.08, term="post"))
    rows.append(_row("exports", "ppml", "static", float(np.exp(0.2) - 1), 0.1, term="pct"))
    rows.append(_row("export_status", "twfe", "static", 0.04, 0.01, term="post"))
    rows.append(_row("log_tfp", "twfe", "static", 0.03, 0.01, term="post"))
    rows.append(_row(O, "bacon", "static", 0.04, 0.01, term="post"))
    extra = tidy_frame(rows)
    est = pd.concat([inputs.estimates, extra], ignore_index=True)
    if dyn_small:
        m = (est["outcome"] == O) & (est["estimator"] == "event_study") & (est["event_time"] == 2)
        est.loc[m, "n_treated"] = 3
    inputs.estimates = est
    verdicts = {
        "placebo_adoption": {"verdict": "pass", "sentence": "Fake adoption 2 years early: placebo effect 0.01 (SE 0.01, t = 1.0) is not distinguishable from zero.",
                             "estimate": 0.01, "std_error": 0.01, "t": 1.0},
        "placebo_group": {"verdict": "concern", "sentence": "Fake treated group: placebo effect 0.03 (SE 0.01, t = 3.0) is distinguishable from zero.",
                          "estimate": 0.03, "std_error": 0.01, "t": 3.0},
        "placebo_outcome": {"verdict": "not run", "sentence": "placebo_outcome not run: no placebo outcome named"},
        "ri_pvalue": {"verdict": "pass", "sentence": "Randomization inference (199 permutations): p = 0.005; the two agree.", "p_value": 0.005, "draws": 199, "convention": "x"},
        "leave_one_out": {"verdict": "pass", "sentence": "Leaving out one cluster_id at a time (4 values): all inside.", "full_estimate": 0.05, "n_left_out": 4,
                          "min": 0.045, "max": 0.057, "influential": []},
        "spillover": {"verdict": "pass", "sentence": "No detectable spillover.", "naive": 0.05, "free": 0.045, "counts": {"members": 60, "colocated": 300, "spillover_free": 3}},
    }
    inputs.metas[f"{O}-checks"] = {"n_obs": 3000, "n_units": 200, "n_treated_units": 60, "n_clusters": 200, "vcov": "CL(firm_id)", "control_group": "nevertreated",
                                    "dropped": {}, "verdicts": verdicts, "estimator_checked": "twfe"}
    inputs.metas[f"{O}-bacon"] = {"n_obs": 3000, "n_units": 200, "n_treated_units": 60, "n_clusters": 200, "vcov": "CL(firm_id)", "control_group": "nevertreated", "dropped": {}}
    inputs.metas["exports-ppml"] = dict(inputs.metas["exports-twfe"])
    inputs.metas["export_status-twfe"] = dict(inputs.metas["exports-twfe"])
    inputs.metas["log_tfp-twfe"] = dict(inputs.metas["exports-twfe"])
    inputs.metas[f"{O}-event_study"]["sensitivity"] = {"method": "HonestDiD relative magnitudes (C-LF), average of post periods", "mbar": [0.5, 1.0, 1.5, 2.0],
                                                       "breakdown_mbar": 0.43, "post_periods": [0, 1, 2, 3, 4], "pre_periods": [-4, -3, -2],
                                                       "slope_power_50": 0.006, "slope_power_80": 0.0095}
    et = [-4, -3, -2, 0, 1, 2, 3, 4]
    vc = pd.DataFrame(np.diag([0.0025**2 * 100] * len(et)), index=et, columns=et)
    honest = pd.DataFrame({"M": [0.5, 1.0, 1.5, 2.0], "lb": [0.01, -0.01, -0.03, -0.05], "ub": [0.09, 0.11, 0.13, 0.15], "method": "C-LF", "inference": "FLCI",
                           "Delta": "DeltaRM", "target": "average post-period effect"})
    bacon = pd.DataFrame({"type": ["earlier_vs_later", "later_vs_earlier", "treated_vs_never", "treated_vs_never"], "treated": [2012, 2015, 2012, 2015],
                          "control": [2015, 2012, 0, 0], "estimate": [0.03, -0.02, 0.05, 0.06], "weight": [0.1, 0.15, 0.4, 0.35], "n_treated": [25, 35, 25, 35]})
    inputs.tables.update({
        f"{O}-checks": {"leave_one_out": pd.DataFrame(loo_rows)},
        f"{O}-event_study": {"honest_did": honest, "vcov_dynamic": vc},
        f"{O}-bacon": {"bacon": bacon},
    })
    inputs.ingest_flow = {**inputs.ingest_flow, "derived": {"log_tfp": {"method": "acf", "output": "value_added", "elasticities": [{"beta_k": 0.345, "beta_l": 0.676}],
                                                                          "formula": "log_tfp = ln(real value added) - b_l ln(employment) - b_k ln(real capital)",
                                                                          "propagated_to_effect_se": False}}}
    return inputs, options


@functools.lru_cache(maxsize=None)
def full_build(html_only: bool = False, **kw):
    inputs, options = full_inputs(**kw)
    if html_only:
        options = {**options, "formats": ["html"]}
    return build_report(inputs, options, seed=7)


@pytest.fixture(scope="module")
def built():
    return full_build()


def _html(out) -> str:
    return out.files["report.html"].decode()


def _text(out) -> str:
    """HTML without tags (for sentences split by inline markup)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", _html(out)))


def test_new_sections_present(built):
    h = _html(built)
    for sid in ("sensitivity", "credibility", "outcomes", "bacon"):
        assert f'<section id="{sid}">' in h
    t = _text(built)
    assert "M̄* = 0.43 times the largest pre-treatment violation (Rambachan &amp; Roth 2023)" in t
    assert "A linear pre-trend with slope 0.0060 log points per year would be detected only half of the time" in t
    assert "Roth 2022" in t
    # checks table: verdicts and sentences in their section, the summary line in "Findings
    # in detail", the HonestDiD breakdown as page one's sensitivity light
    summary = h.split('<section id="summary">')[1].split("</section>")[0]
    details = h.split('<section id="findings">')[1].split("</section>")[0]
    checks = h.split('<section id="credibility">')[1].split("</section>")[0]
    assert "1 raised a concern (placebo: fake treated group)" in details
    assert "Randomization inference (199 permutations)" in checks
    assert "M̄* = 0.43" in details
    assert '<span class="light amber" title="amber"></span><div class="small">M̄* = 0.43</div>' in summary
    # outcome families
    assert "% change in real value added per employee" in t
    assert "Chen &amp; Roth 2024" in t
    tfp = t.split("Total factor productivity (log)  Estimand:")[-1] if "Total factor productivity (log)  Estimand:" in t else t
    assert "Production function estimated by ACF on value added: β_k = 0.345, β_l = 0.676." in t
    assert "NOT propagated into the standard error" in tfp
    # bacon: forbidden share = 0.15 / 1.0
    assert "15.0% of the TWFE weight comes from &#39;forbidden&#39; comparisons" in t or "15.0% of the TWFE weight comes from 'forbidden' comparisons" in t


def test_checks_not_mixed_into_effect_tables(built):
    f = built.files
    forest = pd.concat([pd.read_csv(io.BytesIO(f[k])) for k in ("figures/forest-level.csv", "figures/forest-proportional.csv")])
    assert "checks" not in set(forest["estimator"])
    assert "checks" not in f["metrics.json"].decode()
    est_tab = _html(built).split('<section id="estimates">')[1].split("</section>")[0]
    assert "placebo" not in est_tab.lower() and "checks" not in est_tab.lower()
    assert "checks" not in f[f"tables/{O}.csv"].decode()
    # ... but they are released (disclosure-checked) in estimates.csv
    e = pd.read_csv(io.BytesIO(f["estimates.csv"]))
    assert (e["estimator"] == "checks").sum() == 6 + len(LOO)


def test_new_figures_have_csvs(built):
    f = built.files
    loo = pd.read_csv(io.BytesIO(f[f"figures/leave_one_out-{O}.csv"]))
    assert list(loo["left_out"]) == list(LOO)
    assert np.allclose(loo["full_sample_estimate"], 0.05)
    assert np.allclose(loo["full_sample_conf_low"], 0.05 - 1.96 * 0.0125)
    assert f[f"figures/leave_one_out-{O}.png"].startswith(b"\x89PNG")
    sens = pd.read_csv(io.BytesIO(f[f"figures/sensitivity-{O}-event_study.csv"]))
    assert list(sens["kind"]) == ["original", "robust", "robust", "robust", "robust"]
    # original CI: mean of the post dynamic coefficients, SE = sqrt(sum V_post) / |post|
    rows = built_rows(O, "event_study")
    post = rows[rows["event_time"] >= 0]
    b = post["estimate"].mean()
    se = np.sqrt(5 * 0.025**2) / 5
    assert sens.loc[0, "estimate"] == pytest.approx(b, abs=1e-12)  # same arithmetic, float rounding only
    assert sens.loc[0, "conf_high"] - sens.loc[0, "conf_low"] == pytest.approx(2 * 1.959963984540054 * se, rel=1e-9)  # z to 16 digits
    assert np.allclose(sens["conf_low"].iloc[1:], [0.01, -0.01, -0.03, -0.05])
    assert f[f"figures/sensitivity-{O}-event_study.png"].startswith(b"\x89PNG")
    assert f"tables/{O}-event_study-honest_did.csv" in f and f"tables/{O}-checks-leave_one_out.csv" in f


def built_rows(o, e):
    inputs, _ = full_inputs()
    t = inputs.estimates
    return t[(t["outcome"] == o) & (t["estimator"] == e) & (t["aggregation"] == "dynamic")]


def test_margins_for_exports(built):
    fam = _html(built).split('<section id="outcomes">')[1].split("</section>")[0]
    assert "Extensive (share with y &gt; 0)" in fam
    assert "4.00 [2.04, 5.96] percentage points" in fam  # export_status twfe 0.04 (SE 0.01) x 100
    assert "Proportional (Poisson)" in fam
    assert f"{(np.exp(0.2) - 1) * 100:.1f} [" in fam


def test_truth_line_clipped_to_window(built):
    # truth has event times -4..4 like the estimates; a truth reaching e = 8 must not be drawn beyond 4
    from pipeline.report import figures as figs

    inputs, _ = make_inputs()
    rel = inputs.estimates.assign(suppressed=False)
    truth = pd.DataFrame({"event_time": range(-6, 9), "att": np.linspace(0, 1, 15), "n_firms": 50})
    import matplotlib.pyplot as plt

    captured = {}
    orig = plt.Axes.plot

    def spy(self, x, y, *a, **k):
        if k.get("label") == figs.TRUTH_LABEL:
            captured["x"] = list(x)
        return orig(self, x, y, *a, **k)

    plt.Axes.plot = spy
    try:
        figs.event_study_figure(rel[rel["outcome"] == O], truth, O, {})
    finally:
        plt.Axes.plot = orig
    assert captured["x"] == [float(e) for e in range(-4, 5)]


def test_loo_small_cluster_blanked_in_figure_and_csv():
    out = full_build(html_only=True, loo_small=True, dyn_small=True)  # one build for both withheld cases
    loo = pd.read_csv(io.BytesIO(out.files[f"figures/leave_one_out-{O}.csv"]))
    row = loo[loo["left_out"] == "CL02"].iloc[0]
    assert np.isnan(row["estimate"]) and np.isnan(row["conf_low"])
    assert "withheld by disclosure control" in _text(out).split("Leave one cluster out")[1][:400]


def test_sensitivity_withheld_when_dynamic_rows_suppressed():
    out = full_build(html_only=True, loo_small=True, dyn_small=True)
    assert f"figures/sensitivity-{O}-event_study.png" not in out.files
    assert f"tables/{O}-event_study-honest_did.csv" not in out.files
    sec = _html(out).split('<section id="sensitivity">')[1].split("</section>")[0]
    assert "Withheld by disclosure control" in sec and "M̄* =" not in sec
    assert any("sensitivity" in w["item"] for w in out.summary["withheld"])


def test_absent_inputs_say_not_requested():
    inputs, options = make_inputs()
    h = build_report(inputs, {**options, "formats": ["html"]}, seed=7).files["report.html"].decode()
    assert "No sensitivity analysis was requested" in h
    assert "credibility battery (estimator “checks”" in h
    assert "Goodman-Bacon decomposition (estimator “bacon”) was not run" in h


def test_determinism_with_new_sections(built):
    again = build_report(*full_inputs(), seed=7)
    assert sorted(again.files) == sorted(built.files)
    for k in built.files:
        assert again.files[k] == built.files[k], k


def test_pdf_contains_new_sections(built):
    import shutil
    import subprocess

    pdf = built.files["report.pdf"]
    assert pdf.startswith(b"%PDF")
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext (poppler-utils) not installed")
    text = subprocess.run(["pdftotext", "-", "-"], input=pdf, capture_output=True, check=True).stdout.decode()
    text = re.sub(r"\s+", " ", text)
    for heading in ("Sensitivity to parallel-trends violations", "Credibility checks", "Outcomes and their estimands", "Goodman-Bacon decomposition"):
        assert heading in text
    assert "0.43 times the largest pre-treatment violation" in text
    assert "is NOT propagated" in text


def test_hostile_check_text_escaped():
    inputs, options = full_inputs()
    v = inputs.metas[f"{O}-checks"]["verdicts"]
    v["placebo_adoption"]["sentence"] = "<script>alert(1)</script> #strong[x] $y$"
    tab = inputs.tables[f"{O}-checks"]["leave_one_out"]
    tab.loc[0, "left_out"] = "=HYPERLINK(1)"
    out = build_report(inputs, options, seed=1)  # html + pdf: typst must compile the text as a string
    h = _html(out)
    assert "<script>alert(1)" not in h and "&lt;script&gt;alert(1)" in h
    assert out.files["report.pdf"].startswith(b"%PDF")
    assert b"'=HYPERLINK(1)" in out.files[f"figures/leave_one_out-{O}.csv"]


def test_holm_across_outcomes_matches_statsmodels():
    """The report's Holm adjustment of headline p-values equals statsmodels' multipletests."""
    import pandas as pd
    from statsmodels.stats.multitest import multipletests

    from pipeline.report import sections

    ps = {"a": 0.01, "b": 0.04, "c": 0.03}
    rel = pd.DataFrame([
        {"outcome": o, "estimator": "cs", "aggregation": "simple", "term": "ATT", "estimate": 1.0, "std_error": 0.1,
         "p_value": p, "conf_low": 0.8, "conf_high": 1.2, "suppressed": False}
        for o, p in ps.items()
    ])
    notes = sections._holm_across_outcomes(rel, sorted(ps), ("cs",))
    expected = multipletests([ps[k] for k in sorted(ps)], method="holm")[1]
    for o, e in zip(sorted(ps), expected):
        assert f"Holm-adjusted across the 3 outcomes: p = {e:.3f}" in notes[o], notes[o]


def test_share_outcome_findings_in_percentage_points(built):
    """export_status (0/1): twfe 0.04 -> "4.00 percentage points higher probability" in the summary."""
    html = built.files["report.html"].decode()
    assert "percentage points higher probability" in html
