"""Imputation (BJS 2024) and two-stage (Gardner 2021) DiD: against pyfixest's did2s
(points and GMM SEs), equality of the two modules, the BJS pre-trend test, dropped
rows, and recovery of heterogeneous dynamic effects."""

from __future__ import annotations

import contextlib
import functools
import sys
import warnings

import numpy as np
import pandas as pd
import pytest

from models.did import did2s, imputation
from models.errors import DesignError, UnsupportedVcovError
from tests._did_sim import mpdta, simulate, spec, truth


@contextlib.contextmanager
def pyfixest_did2s_without_singleton_removal():
    """pyfixest's did2s fits its first stage with feols' default fixef_rm="singleton":
    on mpdta the 2004 cohort has a single untreated year, so pyfixest silently drops it
    (its own vcov step then fails on mismatched lengths). R did2s (fixest, whose feols
    does not drop singletons by default) keeps them; we reproduce that by running
    pyfixest's own did2s code with fixef_rm="none"."""
    import pyfixest as pf
    import pyfixest.did.did2s

    mod = sys.modules["pyfixest.did.did2s"]
    orig = mod.feols
    mod.feols = functools.partial(pf.feols, fixef_rm="none", fixef_tol=1e-13)
    try:
        yield
    finally:
        mod.feols = orig


def pyfixest_did2s(df, y):
    import pyfixest as pf

    d = df.copy()
    d["firm_id"] = pd.factorize(d["firm_id"])[0]  # pyfixest's vcov loop needs numpy-backed ids
    d["treat"] = ((d["year"] >= d["first_treat"]) & (d["first_treat"] > 0)).astype(bool)
    d["rel"] = np.where(d["treat"], d["year"] - d["first_treat"], -1000).astype(float)
    with warnings.catch_warnings(), pyfixest_did2s_without_singleton_removal():
        warnings.simplefilter("ignore")
        s = pf.did2s(d, yname=y, first_stage="~0|firm_id+year", second_stage="~i(treat)", treatment="treat", cluster="firm_id")
        dyn = pf.did2s(d, yname=y, first_stage="~0|firm_id+year", second_stage="~i(rel, ref=-1000.0)",
                       treatment="treat", cluster="firm_id")
    static = (float(s._beta_hat[0]), float(s._se[0]))
    et = [int(float(str(n).split("::")[1])) for n in dyn._coefnames]
    return static, pd.DataFrame({"estimate": dyn._beta_hat, "std_error": dyn._se}, index=et)


@pytest.mark.parametrize("data", ["mpdta", "simulated"])
def test_matches_pyfixest_did2s(data):
    if data == "mpdta":
        df, y = mpdta(), "lemp"
    else:
        df, y = simulate(n_units=400, seed=41)[0], "y"
    (b, s), dyn = pyfixest_did2s(df, y)
    for mod in (imputation, did2s):
        r = mod.fit(df, spec(y))
        simple = r.tidy[r.tidy["aggregation"] == "simple"].iloc[0]
        # points: 1e-6. Ours is exact (see test_first_stage_is_exact_ls); pyfixest recovers
        # the fixed effects with fixef() whose own iteration leaves ~1e-7 on unbalanced-
        # cohort designs (observed 1.4e-7 on the simulated panel, 1e-12 on mpdta)
        assert abs(simple.estimate - b) < 1e-6
        # SEs: the same GMM formula, no small-sample factor on either side; same 1e-6
        assert abs(simple.std_error - s) < 1e-6
        rows = r.tidy[(r.tidy["aggregation"] == "dynamic") & (r.tidy["event_time"] >= 0)].set_index("event_time")
        assert sorted(rows.index) == sorted(dyn.index)
        np.testing.assert_allclose(rows["estimate"].to_numpy(float), dyn.loc[rows.index, "estimate"], atol=1e-6)
        np.testing.assert_allclose(rows["std_error"].to_numpy(float), dyn.loc[rows.index, "std_error"], atol=1e-6)


def test_first_stage_is_exact_ls():
    """Independent check: OLS with explicit firm and year dummies (statsmodels) on the
    untreated observations, predicted for the treated ones, averaged: same ATT to 1e-10."""
    import statsmodels.api as sm

    df, _ = simulate(n_units=150, seed=48, unbalanced=0.1)
    D = df["post"].to_numpy()
    X = pd.get_dummies(df[["firm_id"]].astype(str), dtype=float)
    X = X.join(pd.get_dummies(df["year"].astype(str), prefix="yr", drop_first=True, dtype=float))
    X["x"] = df["x"]
    m = sm.OLS(df["y"].to_numpy()[~D], X.to_numpy()[~D]).fit()
    att = float(np.mean(df["y"].to_numpy()[D] - X.to_numpy()[D] @ m.params))
    r = imputation.fit(df, spec("y", covariates=["x"]))
    assert r.meta["dropped"] == {}
    assert abs(r.tidy.loc[r.tidy["aggregation"] == "simple", "estimate"].iloc[0] - att) < 1e-10


def test_mpdta_values():
    """BJS imputation ATT on mpdta: -0.04771 (R didimputation / did2s report -0.0477;
    pyfixest did2s, fixef_rm none, prints -0.04771, SE 0.013478)."""
    r = imputation.fit(mpdta(), spec("lemp"))
    simple = r.tidy[r.tidy["aggregation"] == "simple"].iloc[0]
    assert abs(simple.estimate - (-0.04771)) < 5e-6 and abs(simple.std_error - 0.013478) < 5e-7
    assert r.meta["n_obs"] == 2500 and r.meta["dropped"] == {}


def test_imputation_equals_did2s_with_covariates_unbalanced():
    df, _ = simulate(n_units=300, seed=42, unbalanced=0.2)
    a = imputation.fit(df, spec("y", covariates=["x"]))
    b = did2s.fit(df, spec("y", covariates=["x"]))
    # same estimator computed as means (imputation) vs least squares (did2s)
    np.testing.assert_allclose(a.tidy["estimate"], b.tidy["estimate"], rtol=0, atol=1e-8)
    np.testing.assert_allclose(a.tidy["std_error"], b.tidy["std_error"], rtol=0, atol=1e-8)


def test_recovers_heterogeneous_dynamic_effects():
    df, _ = simulate(n_units=1500, seed=43, sigma=0.3, never_share=0.3, cohorts=(2012, 2015, 2017), unbalanced=0.05)
    tr = truth(df)
    r = imputation.fit(df, spec("y", covariates=["x"]))
    t = r.tidy
    simple = t[t["aggregation"] == "simple"].iloc[0]
    assert abs(simple.estimate - tr["simple"]) < 3 * simple.std_error, (simple.estimate, tr["simple"])
    dyn = t[(t["aggregation"] == "dynamic") & (t["event_time"] >= 0)].set_index("event_time")
    z = [(dyn.loc[e, "estimate"] - v) / dyn.loc[e, "std_error"] for e, v in tr["dynamic"].items()]
    assert np.max(np.abs(z)) < 3.5, z
    # cohort ATTs: truth = mean effect over each cohort's post observations
    grp = t[t["aggregation"] == "group"].set_index("cohort")
    post = df[df["post"]]
    for g, v in post.groupby("first_treat")["true_effect"].mean().items():
        assert abs(grp.loc[g, "estimate"] - v) < 3.5 * grp.loc[g, "std_error"], g
    assert r.meta["pretrend"]["p_value"] > 0.01  # parallel trends hold (fixed seed)


def test_pretrend_detects_violation():
    df, _ = simulate(n_units=800, seed=44, pretrend=0.15, effect="homogeneous")
    r = imputation.fit(df, spec("y"))
    assert r.meta["pretrend"]["df"] == 3 and r.meta["pretrend"]["p_value"] < 1e-6
    leads = r.tidy[(r.tidy["aggregation"] == "dynamic") & (r.tidy["event_time"] < 0)]
    assert sorted(leads["event_time"]) == [-3, -2, -1]


def test_not_imputable_rows_dropped_and_counted():
    df, _ = simulate(n_units=300, seed=45)
    # 5 members treated from the first panel year: no untreated period -> not imputable
    firms = df.loc[df["first_treat"] > 0, "firm_id"].unique()[:5]
    df.loc[df["firm_id"].isin(firms), "first_treat"] = 2010
    r = imputation.fit(df, spec("y"))
    assert r.meta["dropped"] == {"not_imputable": int(df["firm_id"].isin(firms).sum())}
    assert r.meta["n_obs"] + sum(r.meta["dropped"].values()) == len(df)


def test_anticipation_shifts_the_untreated_sample():
    df, _ = simulate(n_units=300, seed=46)
    r0 = imputation.fit(df, spec("y"))
    r1 = imputation.fit(df, spec("y", anticipation=1))
    assert r1.meta["n_untreated_obs"] == r0.meta["n_untreated_obs"] - int((df["rel_time"] == -1).sum())
    assert -1 in set(r1.tidy.loc[r1.tidy["term"] == "rel_time::-1", "event_time"])


def test_design_and_vcov_errors():
    df, _ = simulate(n_units=100, seed=47, never_share=0.0)
    with pytest.raises(DesignError, match="never members"):
        imputation.fit(df, spec("y"))
    with pytest.raises(UnsupportedVcovError):
        imputation.fit(df, spec("y", kind="iid", control_group="notyettreated"))
    r = did2s.fit(df, spec("y", kind="hetero", control_group="notyettreated"))
    assert r.meta["vcov"] == "hetero"


def test_mpdta_stored_pyfixest_reference():
    """Stored pyfixest 0.60 did2s (first stage without singleton removal) on mpdta."""
    from tests._did_sim import stored

    ref = stored("pyfixest_mpdta")
    for mod in (imputation, did2s):
        t = mod.fit(mpdta(), spec("lemp")).tidy
        s = t[t["aggregation"] == "simple"].iloc[0]
        # 1e-9: balanced panel, pyfixest's fixef() recovery converges to ~1e-12 here
        assert abs(s.estimate - ref["did2s_simple"]["estimate"]) < 1e-9
        assert abs(s.std_error - ref["did2s_simple"]["std_error"]) < 1e-9
        dyn = t[(t["aggregation"] == "dynamic") & (t["event_time"] >= 0)].set_index("event_time")
        for k, v in ref["did2s_dynamic"].items():
            assert abs(dyn.loc[int(k), "estimate"] - v["estimate"]) < 1e-9
            assert abs(dyn.loc[int(k), "std_error"] - v["std_error"]) < 1e-9


def test_bjs_variance_option():
    # one cohort: each horizon target is a single cohort x event-time cell, where BJS's
    # treated residual (tau - cell mean) equals Gardner's (tau - target estimate)
    one, _ = simulate(n_units=300, seed=49, cohorts=(2015,))
    g = imputation.fit(one, spec("y")).tidy
    b = imputation.fit(one, spec("y", se="bjs")).tidy
    dyn = (g["aggregation"] == "dynamic") & (g["event_time"] >= 0)
    np.testing.assert_allclose(b.loc[dyn, "std_error"], g.loc[dyn, "std_error"], rtol=1e-12)
    np.testing.assert_allclose(b["estimate"], g["estimate"], rtol=0, atol=0)  # points unchanged
    # several cohorts with homogeneous effects: same order of magnitude (within 10 %)
    hom, _ = simulate(n_units=800, seed=50, effect="homogeneous")
    g = imputation.fit(hom, spec("y")).tidy
    b = imputation.fit(hom, spec("y", se="bjs"))
    assert "BJS" in b.meta["se_method"]
    ratio = b.tidy["std_error"].to_numpy(float) / g["std_error"].to_numpy(float)
    assert np.all(np.abs(ratio - 1) < 0.1), ratio
    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="did2s"):
        did2s.fit(hom, spec("y", se="bjs"))
