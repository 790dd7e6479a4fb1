"""Monitoring scoreboard (models.monitoring) by exact hand computation on a tiny panel, and
the summary-based disclosure rules (pipeline.disclosure.summary_reasons) against the
array-based ones the estimates use."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.contributions import top_contributions
from models.monitoring import ALL, scoreboard
from pipeline import disclosure as sdc

# firm, region, sector, rows per year 2010..2012: (employment, turnover, value_added, exports, rd, patents)
FIRMS = {
    "F1": ("R1", "S", {2010: (10, 100, 50, 0, 1, 0), 2011: (12, 120, 60, 10, 2, 1), 2012: (14, 140, 70, 20, 3, 0)}),
    "F2": ("R1", "S", {2010: (20, 200, 80, 40, 0, 2), 2011: (20, 210, 90, 50, 0, 0), 2012: (22, 220, 99, 60, 5, 3)}),
    "F3": ("R1", "S", {2010: (5, 50, 20, 0, 0, 0), 2011: (6, 60, 25, 5, 1, 0), 2012: (7, 70, 30, 0, 0, 1)}),
    "F4": ("R2", "T", {2010: (8, 80, 30, 8, 0, 0), 2011: (8, 80, 30, 8, 0, 0), 2012: (8, 80, 30, 8, 0, 0)}),
    "F5": ("R2", "U", {2011: (30, 300, 100, 0, 0, 0), 2012: (31, 310, 110, np.nan, 0, 0)}),
}
# F1 joins C1 in 2011 (open); F2 is a C1 member in 2011 only (leave_year 2011 = its last year);
# F5 joins C2 in 2012. F3 (same cell as F1, F2) is the comparison group of C1; F4 (R2 x T)
# is in no member's cell; for C2 the cell R2 x U has no non-member.
SPELLS = pd.DataFrame({"firm_id": ["F1", "F2", "F5"], "cluster_id": ["C1", "C1", "C2"], "join_year": [2011, 2011, 2012],
                       "leave_year": [np.nan, 2011, np.nan]})
COLS = ["employment", "turnover", "value_added", "exports", "rd", "patents"]


def _panel():
    rows = [{"firm_id": f, "year": y, "region": r, "sector": s, **dict(zip(COLS, v))} for f, (r, s, ys) in FIRMS.items() for y, v in ys.items()]
    d = pd.DataFrame(rows)
    d["contributor"] = "f:" + d["firm_id"]
    return d


@pytest.fixture(scope="module")
def sb():
    return scoreboard(_panel(), SPELLS, (2010, 2012))


def _v(sb, cid, ind, group, period="year", year=None, col="value"):
    m = (sb["cluster_id"] == cid) & (sb["indicator"] == ind) & (sb["group"] == group) & (sb["period"] == period)
    m &= sb["year"].isna() if year is None else (sb["year"] == year)
    part = sb[m]
    assert len(part) == 1, (cid, ind, group, period, year, len(part))
    return part.iloc[0][col]


def test_members_by_year(sb):
    # C1 2011: F1 and F2; 2012: F1 only (F2's last year was 2011); 2010: nobody
    assert _v(sb, "C1", "firms", "members", year=2011) == 2
    assert _v(sb, "C1", "firms", "members", year=2012) == 1
    assert not ((sb["cluster_id"] == "C1") & (sb["group"] == "members") & (sb["year"] == 2010) & (sb["indicator"] == "firms")).any()
    assert _v(sb, "C1", "employment", "members", year=2011) == 12 + 20
    assert _v(sb, "C1", "employment", "members", year=2011, col="per_firm") == (12 + 20) / 2
    assert _v(sb, "C1", "value_added_per_employee", "members", year=2011) == pytest.approx((60 + 90) / (12 + 20), abs=1e-12)
    assert _v(sb, "C1", "export_share", "members", year=2011) == pytest.approx((10 + 50) / (120 + 210), abs=1e-12)
    assert _v(sb, "C1", "exporters", "members", year=2011) == 2
    assert _v(sb, "C1", "rd_intensity", "members", year=2011) == pytest.approx((2 + 0) / (120 + 210), abs=1e-12)
    assert _v(sb, "C1", "patents", "members", year=2011) == 1 + 0
    assert _v(sb, "C1", "patenting_firms", "members", year=2011) == 1
    assert _v(sb, "C1", "patenting_firms", "members", year=2011, col="per_firm") == 0.5


def test_entries_exits(sb):
    # entries: spells starting in the year; exits: spells whose last year is the year before
    assert _v(sb, "C1", "entries", "members", year=2011) == 2
    assert _v(sb, "C1", "exits", "members", year=2012) == 1
    assert _v(sb, "C1", "exits", "members", year=2011) == 0
    assert _v(sb, ALL, "entries", "members", year=2012) == 1  # F5 into C2
    # members(t) = members(t-1) + entries(t) - exits(t) while every member is observed
    assert _v(sb, "C1", "firms", "members", year=2012) == 2 + 0 - 1


def test_comparison_group(sb):
    # C1's cell R1 x S holds F1, F2 (members) and F3 (never a member): comparison = F3 alone
    assert _v(sb, "C1", "firms", "comparison", year=2012) == 1
    assert _v(sb, "C1", "turnover", "comparison", year=2012) == 70
    # "(all)": members' cells R1 x S and R2 x U; non-members there: F3 only (F4 is in R2 x T)
    assert _v(sb, ALL, "employment", "comparison", year=2010) == 5
    # C2's cell R2 x U has no non-member: no comparison rows
    assert not ((sb["cluster_id"] == "C2") & (sb["group"] == "comparison")).any()


def test_baseline(sb):
    # members: each in the year before joining (F1, F2 joined 2011 -> their 2010 rows)
    assert _v(sb, "C1", "employment", "members", "baseline") == 10 + 20
    assert _v(sb, "C1", "export_share", "members", "baseline") == pytest.approx((0 + 40) / (100 + 200), abs=1e-12)
    # comparison: in the earliest members' baseline year (2010)
    assert _v(sb, "C1", "employment", "comparison", "baseline", year=2010) == 5
    # "(all)": F5 joined C2 in 2012 -> its 2011 row joins F1's and F2's 2010 rows
    assert _v(sb, ALL, "employment", "members", "baseline") == 10 + 20 + 30


def test_missing_inputs_are_left_out(sb):
    # F5's exports are missing in 2012: the export indicators of C2 in 2012 have no firm
    assert not ((sb["cluster_id"] == "C2") & (sb["indicator"] == "exports") & (sb["year"] == 2012)).any()
    assert _v(sb, "C2", "employment", "members", year=2012) == 31
    no_rd = scoreboard(_panel().drop(columns=["rd"]), SPELLS, (2010, 2012))
    assert "rd_intensity" not in set(no_rd["indicator"]) and "employment" in set(no_rd["indicator"])


def test_disclosure_inputs(sb):
    # C1 2011 employment: contributors F1 (12), F2 (20): total 32, top 20, 12, 0
    m = (sb["cluster_id"] == "C1") & (sb["indicator"] == "employment") & (sb["group"] == "members") & (sb["year"] == 2011)
    r = sb[m].iloc[0]
    assert (r["num_n_contributors"], r["num_total"], r["num_top1"], r["num_top2"], r["num_top3"]) == (2, 32, 20, 12, 0)


# --------------------------------------------------------------------------- disclosure on summaries


def _random_cells():
    rng = np.random.default_rng(3)
    cells = []
    for c in range(400):
        n = int(rng.integers(1, 40))
        cells.append(np.round(rng.pareto(1.2, n) * 10, 1) * (rng.random(n) > 0.1))
    df = pd.DataFrame({"cell": np.repeat(np.arange(400), [len(v) for v in cells]),
                       "contributor": [f"c{i}" for v in cells for i in range(len(v))], "value": np.concatenate(cells)})
    return cells, top_contributions(df, ["cell"], "value").set_index("cell")


CELLS = _random_cells()


@pytest.mark.parametrize("profile", ["strict", "acro", "bundesbank", "abs"])
def test_summary_rules_equal_array_rules(profile):
    """On 400 random cells (1 to 39 contributors, skewed sizes, some zeros), the rules applied
    to (count, total, top 3) flag exactly the cells the array-based rules flag."""
    prof = sdc.resolve_profile(profile)
    cells, tops = CELLS
    for c, v in enumerate(cells):
        s = tops.loc[c]
        got = sdc.summary_reasons(s["n_contributors"], s["total"], [s["top1"], s["top2"], s["top3"]], prof)
        want = []
        if prof.min_units and sdc.threshold_fails(len(v), prof.min_units):
            want.append("threshold")
        want += [f"nk{nn}" for nn, kk in prof.dominance if sdc.nk_fails(v, nn, kk)]
        if prof.p_percent is not None and sdc.p_percent_fails(v, prof.p_percent, prof.zeros_disclosive):
            want.append("p")
        assert len(got) == len(want), (v, got, want)


def test_summary_rules_boundaries():
    prof = sdc.resolve_profile("strict")
    # exactly 10 contributors pass the threshold, 9 fail
    assert not any("distinct" in r for r in sdc.summary_reasons(10, 100, [10, 10, 10], prof))
    assert any("distinct" in r for r in sdc.summary_reasons(9, 90, [10, 10, 10], prof))
    # the largest at exactly 50 % passes (1, 50 %); above fails
    assert not any("(1, 50%)" in r for r in sdc.summary_reasons(12, 100, [50, 5, 5], prof))
    assert any("(1, 50%)" in r for r in sdc.summary_reasons(12, 100, [50.5, 5, 5], prof))
    # dominance with n beyond the stored top 3 cannot be checked -> fails
    deep = sdc.resolve_profile({"profile": "strict", "dominance": [[4, 0.9]]})
    assert any("cannot be checked" in r for r in sdc.summary_reasons(20, 100, [5, 5, 5], deep))
    assert sdc.summary_reasons(3, 0, [0, 0, 0], sdc.resolve_profile("off")) == []


# --------------------------------------------------------------------------- release (report)


def test_release_blanks_what_fails_and_keeps_the_rest(sb):
    from pipeline.report.cluster_context import release_scoreboard

    # threshold 1 firm and the (1, 50 %) dominance rule only, so the tiny panel can pass
    prof = sdc.resolve_profile({"profile": "strict", "min_units": 1, "dominance": [[1, 0.5]], "p_percent": None})
    rel, findings = release_scoreboard(sb, prof)
    assert list(rel.columns[:8]) == ["cluster_id", "indicator", "group", "period", "year", "value", "per_firm", "n_firms"]

    def row(ind, year):
        m = (rel["cluster_id"] == "C1") & (rel["indicator"] == ind) & (rel["group"] == "members") & (rel["year"] == year)
        return rel[m].iloc[0]

    # C1 2011 employment: F2 holds 20 of 32 = 62.5 % > 50 % -> withheld; turnover 210 of 330 too
    assert row("employment", 2011)["withheld"] and np.isnan(row("employment", 2011)["value"])
    # export share: exports 50 of 60 dominate the numerator -> withheld
    assert row("export_share", 2011)["withheld"]
    # the firm count is not a magnitude: released
    assert not row("firms", 2011)["withheld"] and row("firms", 2011)["value"] == 2
    assert len(findings) == int(rel["withheld"].sum()) and all("dominance (1, 50%)" in f.reasons[0] for f in findings)
    # strict (10 firms): every magnitude of this tiny panel is withheld, counts below 10 too
    strict, _ = release_scoreboard(sb, sdc.resolve_profile("strict"))
    counts = strict[strict["indicator"].isin(["firms", "entries", "exits"])]
    # a count of 1 to 9 is a small frequency (blanked); a zero is not disclosive (kept)
    assert (counts["value"].isna() | (counts["value"] == 0)).all() and (counts["value"] == 0).any()
    assert strict.loc[strict["indicator"].isin(["employment", "turnover", "patents"]), "withheld"].all()
    # off: nothing withheld, the values are the model's
    off, f_off = release_scoreboard(sb, sdc.resolve_profile("off"))
    assert not off["withheld"].any() and not f_off
    np.testing.assert_array_equal(off["value"].to_numpy(float), sb["value"].to_numpy(float))
