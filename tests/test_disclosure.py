"""Disclosure control: the rule boundaries exactly as ACRO defines them (AI-SDC/ACRO
acro/acro_tables.py: threshold fails when count < 10; nk fails when the top-n share
*exceeds* k; p% fails when (total - x1 - x2)/x1 < p), counting of firms (not rows) and of
enterprise groups, the small-cohort coefficient, dof, min/max, profiles and the release scan."""

from __future__ import annotations

import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest

from models.errors import ConfigError
from models.result import tidy_frame
from pipeline import disclosure as sdc


def _panel(n_firms: int, *, extra_years_for: int = 0, groups: dict[int, str] | None = None, value=None) -> pd.DataFrame:
    """Treated cohort 2015 observed 2015-2017 (3 post years each) plus 20 never-treated firms;
    ``extra_years_for`` firms also have 2018, so the firm-year count differs from the firm count."""
    rows = []
    for i in range(n_firms):
        years = [2015, 2016, 2017] + ([2018] if i < extra_years_for else [])
        for y in years:
            rows.append({"firm_id": f"F{i:04d}", "year": y, "first_treat": 2015, "group_id": (groups or {}).get(i),
                         "turnover": (value(i) if value else 100.0), "log_turnover": 4.6})
    for j in range(20):
        for y in (2015, 2016, 2017):
            rows.append({"firm_id": f"N{j:04d}", "year": y, "first_treat": 0, "group_id": None, "turnover": 5.0, "log_turnover": 1.6})
    return pd.DataFrame(rows)


def _static_row(outcome="turnover", n_treated=None, n_obs=100_000, **kw):
    row = {"outcome": outcome, "estimator": "twfe", "aggregation": "static", "term": "post", "estimate": 1.0, "std_error": 0.1,
           "conf_low": 0.8, "conf_high": 1.2, "p_value": 0.0, "statistic": 10.0, "n_obs": n_obs, "n_treated": n_treated}
    row.update(kw)
    return row


def _check(rows, contributors=None, profile="strict", metas=None):
    tidy = tidy_frame(rows)
    metas = metas if metas is not None else {f"{r['outcome']}-{r['estimator']}": {"n_obs": 100_000, "n_units": 1000, "n_clusters": 1000} for r in rows}
    return sdc.check_estimates(tidy, metas, contributors, sdc.resolve_profile(profile))


# ---------------------------------------------------------------- threshold: firms, not rows


def test_nine_firms_over_thirty_firm_years_blocked_ten_pass():
    p9 = _panel(9, extra_years_for=3)  # 9 firms, 30 post-treatment firm-years
    assert len(p9[p9.first_treat > 0]) == 30
    c9 = sdc.cell_contributions(p9, ["log_turnover"])
    flags, findings = _check([_static_row("log_turnover")], c9)
    assert flags["suppressed"].iloc[0] and flags["n_contributors"].iloc[0] == 9
    assert "fewer than 10 distinct firms" in flags["reasons"].iloc[0]
    c10 = sdc.cell_contributions(_panel(10), ["log_turnover"])
    flags, findings = _check([_static_row("log_turnover")], c10)
    assert not flags["suppressed"].iloc[0] and flags["n_contributors"].iloc[0] == 10 and findings == []


def test_row_count_claim_cannot_override_firm_count():
    """A tidy row claiming 30 treated (firm-years miscounted) is held to the 9 distinct firms."""
    c9 = sdc.cell_contributions(_panel(9, extra_years_for=3), ["log_turnover"])
    flags, _ = _check([_static_row("log_turnover", n_treated=30)], c9)
    assert flags["suppressed"].iloc[0] and flags["n_contributors"].iloc[0] == 9


@pytest.mark.parametrize("n,blocked", [(9, True), (10, False)])
def test_threshold_from_n_treated(n, blocked):
    flags, _ = _check([_static_row(n_treated=n)])
    assert bool(flags["suppressed"].iloc[0]) is blocked


def test_bundesbank_threshold_is_five():
    assert _check([_static_row(n_treated=4)], profile="bundesbank")[0]["suppressed"].iloc[0]
    assert not _check([_static_row(n_treated=5)], profile="bundesbank")[0]["suppressed"].iloc[0]


def test_enterprise_group_counts_once():
    """12 firms, but firms 0-5 form 3 groups of two: 3 + 6 = 9 contributors -> blocked."""
    groups = {0: "G1", 1: "G1", 2: "G2", 3: "G2", 4: "G3", 5: "G3"}
    panel = _panel(12, groups=groups)
    c = sdc.cell_contributions(panel, ["log_turnover"])
    flags, _ = _check([_static_row("log_turnover", n_treated=12)], c)
    assert flags["suppressed"].iloc[0] and flags["n_contributors"].iloc[0] == 9
    c_nogroup = sdc.cell_contributions(panel, ["log_turnover"], group=None)
    flags, _ = _check([_static_row("log_turnover", n_treated=12)], c_nogroup)
    assert not flags["suppressed"].iloc[0]
    # the group contributor holds both firms
    cell = c[(c.cohort.isna()) & (c.event_time.isna()) & (c.contributor == "g:G1")]
    assert cell["n_firms"].iloc[0] == 2


def test_four_firm_cohort_coefficient_blocked_despite_large_n():
    rows = [
        {"outcome": "y", "estimator": "cs", "aggregation": "group", "term": "g2012", "cohort": 2012, "estimate": 0.3, "std_error": 0.1, "n_obs": 500_000, "n_treated": 4},
        {"outcome": "y", "estimator": "cs", "aggregation": "group", "term": "g2015", "cohort": 2015, "estimate": 0.2, "std_error": 0.1, "n_obs": 500_000, "n_treated": 400},
        {"outcome": "y", "estimator": "cs", "aggregation": "dynamic", "term": "e5", "event_time": 5, "estimate": 0.2, "std_error": 0.1, "n_obs": 500_000, "n_treated": 4},
    ]
    flags, findings = _check(rows, metas={"y-cs": {"n_obs": 500_000, "n_units": 50_000, "n_clusters": 50_000}})
    assert flags["suppressed"].tolist() == [True, False, True]
    assert len(findings) == 2


# ---------------------------------------------------------------- dominance and p%


def test_dominance_exactly_fifty_percent_passes():
    """(1, 50%): ACRO's agg_nk fails when share > k, so exactly 50% passes."""
    assert sdc.nk_share([50, 10, 10, 10, 10, 10], 1) == 0.5
    assert not sdc.nk_fails(np.array([50, 10, 10, 10, 10, 10.0]), 1, 0.50)
    assert sdc.nk_fails(np.array([50.01, 10, 10, 10, 10, 9.99]), 1, 0.50)
    # (2, 67%)
    assert not sdc.nk_fails(np.array([40, 27, 11, 11, 11.0]), 2, 0.67)
    assert sdc.nk_fails(np.array([40, 27.5, 11, 11, 10.5]), 2, 0.67)


def test_p_percent_boundary():
    """p = 10%: fails when (total - x1 - x2)/x1 < 0.10; exactly 0.10 passes."""
    assert sdc.p_ratio([100, 50, 5, 5]) == pytest.approx(0.10)
    assert not sdc.p_percent_fails(np.array([100, 50, 5, 5.0]), 0.10)
    assert sdc.p_percent_fails(np.array([100, 50, 5, 4.99]), 0.10)
    # zeros are disclosive (ACRO default): total 0 or a single contributor
    assert sdc.p_percent_fails(np.zeros(12), 0.10, zeros_disclosive=True)
    assert not sdc.p_percent_fails(np.zeros(12), 0.10, zeros_disclosive=False)


def test_dominant_firm_suppresses_magnitude_cell_but_not_log_outcome():
    """One firm with 60% of the cohort's turnover: (1, 50%) fails for turnover (a magnitude);
    the same firms' log outcome is not a magnitude, so only the threshold applies."""
    panel = _panel(12, value=lambda i: 1650.0 if i == 0 else 100.0)  # 1650 / (1650 + 11*100) = 60%
    c = sdc.cell_contributions(panel, ["turnover", "log_turnover"])
    assert c[c.outcome == "turnover"]["magnitude"].all() and not c[c.outcome == "log_turnover"]["magnitude"].any()
    flags, _ = _check([_static_row("turnover", n_treated=12), _static_row("log_turnover", n_treated=12)], c)
    assert flags["suppressed"].tolist() == [True, False]
    assert "dominance (1, 50%)" in flags["reasons"].iloc[0]
    # the acro profile only has (2, 90%): 60% + 5% passes, and the p% ratio (10*100*3/... ) is large
    flags, _ = _check([_static_row("turnover", n_treated=12)], c, profile="acro")
    assert not flags["suppressed"].iloc[0]


def test_event_time_cell_lookup():
    """An event-study row maps to the all-cohort cell at its event time."""
    panel = _panel(12, value=lambda i: 1650.0 if i == 0 else 100.0)
    c = sdc.cell_contributions(panel, ["turnover"])
    row = {"outcome": "turnover", "estimator": "event_study", "aggregation": "dynamic", "term": "e1", "event_time": 1, "estimate": 1.0, "std_error": 0.1, "n_obs": 1000, "n_treated": 12}
    row_missing = {**row, "event_time": 7, "term": "e7", "n_treated": 12}  # no contributor cell: only n_treated applies
    flags, _ = _check([row, row_missing], c, metas={"turnover-event_study": {"n_obs": 1000, "n_units": 100, "n_clusters": 100}})
    assert flags["suppressed"].tolist() == [True, False]


# ---------------------------------------------------------------- dof, min/max, profiles


def test_residual_dof_from_clusters():
    rows = [_static_row(n_treated=50)]
    metas = {"turnover-twfe": {"n_obs": 100_000, "n_units": 1000, "n_clusters": 10}}  # dof 9 < 10
    flags, findings = _check(rows, metas=metas)
    assert flags["suppressed"].iloc[0] and "degrees of freedom" in flags["reasons"].iloc[0]
    assert any(f.kind == "model" for f in findings)
    metas = {"turnover-twfe": {"n_obs": 100_000, "n_units": 1000, "n_clusters": 11}}
    assert not _check(rows, metas=metas)[0]["suppressed"].iloc[0]
    assert not _check(rows, metas={"turnover-twfe": {"n_clusters": 5}}, profile="abs")[0]["suppressed"].iloc[0]


def test_minmax_columns_withheld_and_small_rows_blanked():
    t = pd.DataFrame({"covariate": ["a", "b"], "mean_treated": [1.0, 2.0], "max_treated": [9.0, 9.0], "min": [0.0, 0.0], "n_treated": [50, 7]})
    safe, findings = sdc.check_table("balance", t, sdc.resolve_profile("strict"))
    assert "max_treated" not in safe.columns and "min" not in safe.columns
    assert np.isnan(safe.loc[1, "mean_treated"]) and safe.loc[0, "mean_treated"] == 1.0
    assert {f.kind for f in findings} == {"column", "table"}
    safe, _ = sdc.check_table("balance", t, sdc.resolve_profile("acro"))
    assert "max_treated" in safe.columns


def test_off_profile_checks_nothing():
    flags, findings = _check([_static_row(n_treated=1)], profile="off")
    assert not flags["suppressed"].any() and findings == []


def test_profile_resolution():
    p = sdc.resolve_profile({"profile": "acro", "on_fail": "block", "min_units": 20})
    assert p.name == "acro" and p.on_fail == "block" and p.min_units == 20 and p.dominance == ((2, 0.9),)
    assert sdc.resolve_profile("strict").dominance == ((1, 0.5), (2, 0.67))
    assert sdc.resolve_profile("abs").min_units == 10 and sdc.resolve_profile("bundesbank").dominance == ((2, 0.85),)
    with pytest.raises(ConfigError):
        sdc.resolve_profile("lenient")
    with pytest.raises(ConfigError):
        sdc.resolve_profile({"profile": "strict", "on_fail": "ignore"})
    with pytest.raises(ConfigError):
        sdc.resolve_profile({"profile": "strict", "threshold": 3})


def test_verdict_suppress_vs_block():
    f = [sdc.Finding("estimate x", "estimate", ["fewer than 10 distinct firms"])]
    assert sdc.DisclosureSummary(sdc.resolve_profile("strict"), f).verdict == "pass"
    assert sdc.DisclosureSummary(sdc.resolve_profile({"profile": "strict", "on_fail": "block"}), f).verdict == "block"
    scan = [sdc.Finding("file a.csv", "file", ["unit-level"])]
    assert sdc.DisclosureSummary(sdc.resolve_profile("off"), [], scan).verdict == "block"


# ---------------------------------------------------------------- release scan


def test_release_scan():
    ok = {"estimates.csv": b"outcome,estimator,estimate\ny,cs,1.0\n", "figures/a.png": b"\x89PNG....", "tables/y.md": b"**T**\n\n| | TWFE |\n|---|---|\n"}
    assert sdc.release_scan(ok) == []
    bad = {
        "unit.csv": b"firm_id,year,y\nF1,2015,1\n",
        "res.csv": b"term,residual\nx,1\n",
        "fe.md": b"| fe_firm | value |\n|---|---|\n",
        "model.pkl": pickle.dumps({"a": 1}),
        "sneaky.txt": pickle.dumps([1, 2]),
    }
    found = {f.where["file"] for f in sdc.release_scan(bad)}
    assert found == set(bad)
    ids = sdc.release_scan({"report.html": b"<p>firm F000123 joined</p>"}, forbidden_ids={"F000123"})
    assert len(ids) == 1 and "F000123" not in ids[0].item


# --------------------------------------------------------------------------- identifiers (issue 20)

IDS = {"F000001", "F000003", "F000005", "F000006", "F000007", "G0042", "1001", "1005"}


@pytest.mark.parametrize("text, expected", [
    # first_keys' list after a count: removed (the count stays)
    ("bacon: 359 units are not observed in all 15 periods (first: F000001, F000003, F000005, F000006, F000007 (+354 more)). Restrict the sample.",
     "bacon: 359 units are not observed in all 15 periods. Restrict the sample."),
    # all-digit ids inside a first: list are removed too
    ("column 'g' varies within 2 units (first: 1001, 1005); fix it", "column 'g' varies within 2 units; fix it"),
    # a first: list naming no id (cells, years) is kept
    ("3 cell(s) are NA (first: (g,t)=(2012, 2014)).", "3 cell(s) are NA (first: (g,t)=(2012, 2014))."),
    # a bare run of ids becomes a count, with its (+N more)
    ("firms F000001, F000003 and F000005 (+2 more) have gaps", "firms 5 firms have gaps"),
    ("only F000007 is affected; G0042 too", "only 1 firm is affected; 1 firm too"),
    # a parenthesis of nothing but ids (att_gt's "varies within N unit(s) (...)"), digits too
    ("varies within 3 unit(s) (1001, 1005 (+1 more)); fix", "varies within 3 unit(s); fix"),
    ("years (2012, 1001) and (F000001)", "years (2012, 1001) and"),
    # numbers that happen to equal an all-digit id are not touched outside a first: list
    ("1001 rows dropped", "1001 rows dropped"),
    # no id: unchanged, and an id-like token that is not an id stays
    ("F000002 is not a firm of this run", "F000002 is not a firm of this run"),
])
def test_redact_units_rewrites_identifiers_to_counts(text, expected):
    out = sdc.redact_units(text, IDS)
    assert out == expected
    assert sdc.redact_units(out, IDS) == out  # idempotent
    assert not (set(re.findall(r"[A-Za-z0-9_\-]+", out)) & sdc.scannable_ids(IDS))


def test_redact_tree_reaches_every_string():
    tree = {"a": ["x F000001 y", {"b": ("F000003",)}], "n": 3, "c": "(first: F000005, F000006)"}
    assert sdc.redact_tree(tree, IDS) == {"a": ["x 1 firm y", {"b": ("1 firm",)}], "n": 3, "c": ""}


def test_release_scan_reads_the_pdf_source_and_fails_without_it():
    pdf = b"%PDF-1.7 compressed"
    clean = sdc.release_scan({"report.pdf": pdf}, forbidden_ids=IDS, sources={"report.pdf": b'#par("359 firms")'})
    assert clean == []
    hit = sdc.release_scan({"report.pdf": pdf}, forbidden_ids=IDS, sources={"report.pdf": b'#par("first: F000003")'})
    assert [f.item for f in hit] == ["file report.pdf: 1 unit identifier(s)"]
    assert "F000003" not in json.dumps([f.to_dict() for f in hit])  # the finding does not repeat the id
    missing = sdc.release_scan({"report.pdf": pdf}, forbidden_ids=IDS)
    assert [f.item for f in missing] == ["file report.pdf"]
    # ids in JSON and CSV bytes are found as tokens; all-digit ids are not searchable
    found = sdc.release_scan({"metrics.json": b'{"note": "G0042"}', "t.csv": b"a,b\n1001,2\n"}, forbidden_ids=IDS)
    assert [f.item for f in found] == ["file metrics.json: 1 unit identifier(s)"]


def test_one_withheld_count_for_badge_box_and_json():
    prof = sdc.resolve_profile("strict")
    s = sdc.DisclosureSummary(prof, [sdc.Finding(f"x{i}", "estimate", ["fewer than 10 distinct firms"], {}) for i in range(3)], [], 10)
    assert s.n_withheld == 3 == s.to_dict()["n_withheld"]
    assert "3 item(s) withheld" in s.status_line() and "## Withheld items (3)" in s.to_markdown()
