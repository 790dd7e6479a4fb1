"""Pipeline estimators ``matching`` and ``weighting`` on a simulated staggered panel.

The simulator below makes selection into membership depend on firm size and on the firm's
productivity trend (both observable before joining: size at the base year, the trend as the
pre-period change of ``log_labour_productivity``). The outcome ``y`` shares the trend, so naive
DiD (mean change of members minus mean change of never-members) is biased upward by
``E[psi | member] - E[psi | never]`` per year, while matching on base-year size and the
pre-trend recovers the true ATT ``tau_e = 0.05 + 0.01 e``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.errors import ConfigError, DesignError, UnsupportedVcovError
from models.matching import estimator as matching
from models.matching import weighting
from models.spec import EstimatorSpec
from models.vcov import VcovSpec

YEARS = np.arange(2005, 2017)
COHORTS = (2010, 2012, 2014)


def tau(e):
    return 0.05 + 0.01 * np.asarray(e)


def simulate(n_firms=3000, seed=11):
    rng = np.random.default_rng(seed)
    s = rng.normal(0, 1, n_firms)                       # log size (observed, time invariant + noise-free)
    psi = rng.normal(0, 0.03, n_firms)                  # productivity trend (log points / year)
    a = rng.normal(0, 0.5, n_firms)
    b = rng.normal(0, 0.3, n_firms)
    join = rng.random(n_firms) < 1 / (1 + np.exp(-(-1.6 + 0.7 * s + 30 * psi)))
    g = np.where(join, rng.choice(COHORTS, n_firms), 0)
    fid = np.array([f"F{i:05d}" for i in range(n_firms)])
    rows = []
    T = YEARS - YEARS[0]
    for t, yr in zip(T, YEARS):
        e = yr - g
        treated = (g > 0) & (e >= 0)
        y = a + 0.3 * s + psi * t + 0.02 * t + rng.normal(0, 0.05, n_firms) + np.where(treated, tau(np.maximum(e, 0)), 0.0)
        lp = b + psi * t                                # log labour productivity: carries the trend exactly
        rows.append(pd.DataFrame({"firm_id": fid, "year": yr, "first_treat": g, "y": y,
                                  "log_employment": s + 0.0, "log_labour_productivity": lp}))
    d = pd.concat(rows, ignore_index=True)
    d["firm_id"] = d["firm_id"].astype("string")
    d["year"] = d["year"].astype("int64")
    d["first_treat"] = d["first_treat"].astype("int64")
    return d


def naive_did(d, H=3):
    """Mean change since g-1 of members minus never-members, stacked with cohort sizes."""
    w = d.pivot(index="firm_id", columns="year", values="y")
    g = d.groupby("firm_id")["first_treat"].first().reindex(w.index)
    out = {}
    for e in range(H + 1):
        num, den = 0.0, 0
        for c in COHORTS:
            if c + e > YEARS[-1]:
                continue
            ch = w[c + e] - w[c - 1]
            n1 = int((g == c).sum())
            num += n1 * (ch[g == c].mean() - ch[g == 0].mean())
            den += n1
        out[e] = num / den
    return out


@pytest.fixture(scope="module")
def panel():
    return simulate()


def spec(**opts):
    return EstimatorSpec(yname="y", seed=5, options={**matching.OPTIONS, "horizon": 3, **opts})


def wspec(**opts):
    return EstimatorSpec(yname="y", seed=5, options={**weighting.OPTIONS, "horizon": 3, **opts})


@pytest.fixture(scope="module")
def matched(panel):
    return matching.fit(panel, spec())


def test_naive_did_is_biased(panel, matched):
    naive = naive_did(panel)
    did = matched.tidy[(matched.tidy.term == "did") & matched.tidy.event_time.notna()].set_index("event_time")
    for e in range(4):
        # the naive estimator is off by many matched SEs in the direction of selection (faster growers join)
        assert naive[e] - tau(e) > 4 * did.loc[e, "std_error"], (e, naive[e], tau(e))


@pytest.mark.parametrize("opts", [
    {},                                               # 1:1 nearest, logit, no replacement
    {"replace": True, "ratio": 2},
    {"caliper": 0.2},
    {"distance": "mahalanobis"},
    {"cluster": "firm"},
    {"ratio": 2},
    {"method": "cem"},                                # Sturges bins on size and pre-trend
])
def test_matched_did_recovers_truth(panel, opts):
    res = matching.fit(panel, spec(**opts))
    t = res.tidy
    did = t[(t.term == "did") & t.event_time.notna()].set_index("event_time")
    for e in range(4):
        bias = did.loc[e, "estimate"] - tau(e)
        assert abs(bias) < 2 * did.loc[e, "std_error"], (opts, e, bias, did.loc[e, "std_error"])
    overall = t[(t.term == "did") & t.event_time.isna()].iloc[0]
    assert abs(overall["estimate"] - tau(np.arange(4)).mean()) < 2 * overall["std_error"]
    # leads: placebo changes are zero in truth
    for e in (-2, -3):
        assert abs(did.loc[e, "estimate"]) < 3 * did.loc[e, "std_error"] + 1e-12
    assert res.meta["pretrend"]["df"] == 2


@pytest.mark.parametrize("opts", [{"method": "ipw"}, {"method": "ebal"}, {"method": "ipw", "trim": [0.01, 0.99]}])
def test_weighting_recovers_truth(panel, opts):
    res = weighting.fit(panel, wspec(**opts))
    t = res.tidy
    did = t[(t.term == "did") & t.event_time.notna()].set_index("event_time")
    for e in range(4):
        assert abs(did.loc[e, "estimate"] - tau(e)) < 2 * did.loc[e, "std_error"], (opts, e)
    assert res.meta["vcov"] == "cluster(firm_id)"


def test_result_contract(matched):
    t, m = matched.tidy, matched.meta
    assert set(t.aggregation) == {"matched"}
    assert set(t.term) == {"level", "did"}
    # overall rows first, event rows e = 0..3 for level; leads -3, -2 and 0..3 for did
    assert t.event_time.isna().sum() == 2
    assert sorted(t[t.term == "level"].event_time.dropna()) == [0, 1, 2, 3]
    assert sorted(t[t.term == "did"].event_time.dropna()) == [-3, -2, 0, 1, 2, 3]
    assert (t.n_treated > 0).all()
    for k in ("n_obs", "n_units", "n_treated_units", "n_clusters", "vcov", "control_group", "dropped", "pretrend"):
        assert k in m, k
    assert m["vcov"] == "cluster(matched_set)"
    assert m["covariates"] == ["log_employment"] and m["trends"] == ["trend_log_labour_productivity"]
    assert m["dropped"]["cohort_rows_missing_pre_trend"] == 0
    bal = matched.tables["balance"]
    assert list(bal.columns) == ["covariate", "sample", "smd", "var_ratio", "ks", "mean_treated", "mean_control", "diff", "ecdf_mean"]
    after = bal[bal["sample"] == "after"].set_index("covariate")
    before = bal[bal["sample"] == "before"].set_index("covariate")
    # matching removes most of the imbalance on size and the pre-trend
    assert (after["smd"].abs() < 0.1).all() and (before["smd"].abs() > 0.3).all()


def test_notyettreated_controls_never_treated_in_compared_years(panel):
    res = matching.fit(panel, EstimatorSpec(yname="y", seed=5, control_group="notyettreated",
                                            options={**matching.OPTIONS, "horizon": 1}))
    # cohort 2010 can use the 2014 joiners (join after 2011 = g + H); the estimate stays unbiased
    did = res.tidy[(res.tidy.term == "did") & res.tidy.event_time.notna()].set_index("event_time")
    for e in (0, 1):
        assert abs(did.loc[e, "estimate"] - tau(e)) < 2 * did.loc[e, "std_error"]


def test_bad_options_and_vcov(panel):
    with pytest.raises(ConfigError) as ei:
        matching.fit(panel, spec(method="optimal", ratio=0))
    assert "method" in str(ei.value) and "ratio" in str(ei.value)
    with pytest.raises(UnsupportedVcovError):
        matching.fit(panel, EstimatorSpec(yname="y", vcov=VcovSpec(kind="iid", by=()), options=dict(matching.OPTIONS)))


def test_no_support_after_trimming_is_design_error(panel):
    with pytest.raises(DesignError) as ei:
        weighting.fit(panel, wspec(trim=[0.98, 0.99]))
    assert ei.value.exit_code == 4
    assert "no common support" in str(ei.value)


def test_separation_in_panel_is_design_error(panel):
    d = panel.copy()
    d["big"] = (d["first_treat"] > 0).astype(float)   # a covariate equal to membership
    with pytest.raises(DesignError) as ei:
        matching.fit(d, spec(covariates=["big"], trends=[]))
    assert "big" in str(ei.value)


@pytest.mark.parametrize("pool,flag,value", [("eligible", "eligible", True), ("not_colocated", "colocated", False)])
def test_control_pool_restricts_controls(panel, pool, flag, value):
    d = panel.copy()
    never = d["first_treat"] == 0
    odd = d["firm_id"].str[-1].isin(list("13579"))
    d["eligible"] = ~(never & odd)          # odd-numbered never-members are outside the pool
    d["colocated"] = never & odd
    res = matching.fit(d, spec(control_pool=pool))
    n_out = d.loc[never & odd, "firm_id"].nunique()
    # every cohort (3, all with base and trend years in the panel) drops the same out-of-pool never-members
    assert res.meta["dropped"][f"cohort_rows_control_not_{pool}"] == 3 * n_out
    with pytest.raises(ConfigError):
        matching.fit(d, spec(control_pool="nearby"))
