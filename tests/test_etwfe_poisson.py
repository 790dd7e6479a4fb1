"""Wooldridge (2023) ETWFE Poisson (models.counts.etwfe_poisson).

Checks: (1) the cell-level QMLE equals statsmodels GLM Poisson on the observation-level
design matrix (coefficients and the inverse-Hessian vcov); (2) the clustered sandwich equals
a direct computation from observation scores; (3) tau equals pyfixest fepois with *unit*
fixed effects on a balanced panel (Wooldridge 2023's equivalence); (4) recovery of a known
level ATT and percentage effect; (5) separation of an all-zero treated cell.

(6) R etwfe's published Poisson ``emfx(type = "event")`` values on mpdta
(``emp ~ lpop``; tests/reference/etwfe_emfx_poisson_mpdta.json).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models import registry
from models.counts import etwfe_poisson as E
from models.spec import EstimatorSpec
from models.vcov import VcovSpec


def sim(n_firms=2000, n_years=8, effect=1.3, seed=1, balanced=True):
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_firms), n_years)
    yr = np.tile(np.arange(2010, 2010 + n_years), n_firms)
    g = rng.choice([0, 2013, 2015], n_firms, p=[0.5, 0.25, 0.25])
    gi = g[ids]
    a = rng.normal(-0.5, 1.0, n_firms)[ids] + 0.2 * (gi == 2013)
    D = (gi > 0) & (yr >= gi)
    mu0 = np.exp(a + 0.05 * (yr - 2010))
    mu = mu0 * np.where(D, effect, 1.0)
    y = rng.poisson(mu).astype(float)
    df = pd.DataFrame({"firm_id": [f"F{i:05d}" for i in ids], "year": yr, "first_treat": gi, "patents": y, "_mu": mu, "_mu0": mu0})
    if not balanced:
        df = df.sample(frac=0.9, random_state=seed).sort_values(["firm_id", "year"]).reset_index(drop=True)
    return df


def obs_design(df, control_group):
    """Observation-level design with the same columns as E.cell_design."""
    cells = df[["first_treat", "year"]].rename(columns={"first_treat": "g", "year": "t"}).drop_duplicates().sort_values(["g", "t"]).reset_index(drop=True)
    Xc, names, _ = E.cell_design(cells, control_group)
    key = pd.MultiIndex.from_frame(cells)
    pos = key.get_indexer(pd.MultiIndex.from_frame(df[["first_treat", "year"]].rename(columns={"first_treat": "g", "year": "t"})))
    return Xc[pos], names


@pytest.fixture(scope="module")
def small():
    return sim(n_firms=300, n_years=6, seed=5, balanced=False)


def test_registry():
    assert registry.get("etwfe_poisson") is E


@pytest.mark.parametrize("cg", ["notyettreated", "nevertreated"])
def test_coefficients_and_hessian_equal_statsmodels_glm(small, cg):
    import statsmodels.api as sm

    res = E.fit(small, EstimatorSpec(yname="patents", control_group=cg, vcov=VcovSpec(kind="iid", by=())))
    X, names = obs_design(small, cg)
    glm = sm.GLM(small["patents"].to_numpy(), X, family=sm.families.Poisson()).fit(tol=1e-14, maxiter=300)
    b = np.array([res.meta["coef"][n] for n in names])
    # same estimating equations, different algorithms (cell Newton vs observation IRLS)
    assert np.max(np.abs(b - glm.params)) < 1e-8
    tau = res.tidy.query("aggregation == 'gt' and term == 'tau'")
    j = [names.index(f"tau::{g}::{t}") for g, t in zip(tau.cohort, tau.time)]
    # iid = inverse Hessian (Poisson variance), statsmodels' nonrobust covariance
    assert np.max(np.abs(tau.std_error.to_numpy() - glm.bse[j]) / glm.bse[j]) < 1e-6


def test_cluster_sandwich_matches_direct_computation(small):
    res = E.fit(small, EstimatorSpec(yname="patents", control_group="notyettreated"))
    X, names = obs_design(small, "notyettreated")
    b = np.array([res.meta["coef"][n] for n in names])
    mu = np.exp(X @ b)
    e = small["patents"].to_numpy() - mu
    A = (X * mu[:, None]).T @ X
    cl = pd.factorize(small["firm_id"])[0]
    S = np.column_stack([np.bincount(cl, weights=X[:, j] * e) for j in range(X.shape[1])])
    G, n = cl.max() + 1, len(small)
    k_eff = X.shape[1] - small["first_treat"].nunique()  # intercept + cohort dummies nested in firms
    Ai = np.linalg.inv(A)
    V = Ai @ S.T @ S @ Ai * G / (G - 1) * (n - 1) / (n - k_eff)
    tau = res.tidy.query("aggregation == 'gt' and term == 'tau'")
    j = [names.index(f"tau::{g}::{t}") for g, t in zip(tau.cohort, tau.time)]
    assert np.max(np.abs(tau.std_error.to_numpy() - np.sqrt(np.diag(V))[j])) < 1e-10
    # ATT(g,t) = exp(eta) - exp(eta - tau) at the cell's regressors
    att = res.tidy.query("aggregation == 'gt' and term == 'att'")
    for (g, t, a_), tau_ in zip(att[["cohort", "time", "estimate"]].itertuples(index=False), tau.estimate):
        eta = res.meta["coef"]["(Intercept)"] + res.meta["coef"].get(f"cohort::{g}", 0) + res.meta["coef"].get(f"year::{t}", 0) + tau_
        assert a_ == pytest.approx(np.exp(eta) - np.exp(eta - tau_), rel=1e-10)


def test_tau_equals_unit_fe_poisson_on_balanced_panel():
    """Wooldridge (2023, §4.2): Poisson QMLE with cohort dummies = with unit FE (balanced)."""
    import pyfixest as pf

    d = sim(n_firms=400, n_years=6, seed=9)
    res = E.fit(d, EstimatorSpec(yname="patents"))
    d = d.copy()
    tau = res.tidy.query("aggregation == 'gt' and term == 'tau'")
    cols = []
    for g, t in zip(tau.cohort, tau.time):
        c = f"c{g}_{t}"
        d[c] = ((d.first_treat == g) & (d.year == t)).astype(float)
        cols.append(c)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = pf.fepois(f"patents ~ {' + '.join(cols)} | firm_id + year", data=d, iwls_tol=1e-12, fixef_tol=1e-12)
    # unit-FE fit drops all-zero firms, which carry no information on tau in Poisson FE
    assert np.max(np.abs(f.coef()[cols].to_numpy() - tau.estimate.to_numpy())) < 1e-6


@pytest.mark.parametrize("cg", ["notyettreated", "nevertreated"])
@pytest.mark.parametrize("seed", [21, 22])
def test_recovers_level_att_and_pct(cg, seed):
    d = sim(n_firms=3000, n_years=8, seed=seed)
    res = E.fit(d, EstimatorSpec(yname="patents", control_group=cg))
    D = (d.first_treat > 0) & (d.year >= d.first_treat)
    true_att = float((d._mu - d._mu0)[D].mean())  # sample ATT of E[Y(1)-Y(0)]
    s = res.tidy.query("aggregation == 'simple'").set_index("term")
    # 3.5 SE: false-failure probability < 0.1 % per case
    assert abs(s.loc["att", "estimate"] - true_att) < 3.5 * s.loc["att", "std_error"]
    assert abs(s.loc["pct", "estimate"] - 0.3) < 3.5 * s.loc["pct", "std_error"]
    dyn = res.tidy.query("aggregation == 'dynamic' and term == 'att'")
    assert (dyn.event_time >= 0).any()
    if cg == "nevertreated":
        assert (dyn.event_time < -1).any() and res.meta["pretrend"]["df"] == int((res.tidy.query("aggregation=='gt' and term=='tau'").event_time < -1).sum())
    else:
        assert res.meta["pretrend"] is None


def test_separated_treated_cell_dropped_and_counted():
    d = sim(n_firms=500, n_years=6, seed=4)
    cell = (d.first_treat == 2015) & (d.year == 2015)
    d.loc[cell, "patents"] = 0.0
    res = E.fit(d, EstimatorSpec(yname="patents"))
    assert res.meta["dropped"]["separated"] == int(cell.sum())
    assert res.meta["separation"]["separated_cells"] == [[2015, 2015]]
    gt = res.tidy.query("aggregation == 'gt'")
    assert not ((gt.cohort == 2015) & (gt.time == 2015)).any()


def test_matches_r_etwfe_poisson_mpdta():
    import json
    from pathlib import Path

    from moderndid import load_mpdta

    ref = json.loads((Path(__file__).parent / "reference" / "etwfe_emfx_poisson_mpdta.json").read_text())["event_response_scale"]
    m = load_mpdta().to_pandas()
    m["emp"] = np.exp(m["lemp"])
    spec = EstimatorSpec(yname="emp", idname="countyreal", gname="first.treat", covariates=("lpop",),
                         control_group="notyettreated", vcov=VcovSpec(kind="cluster", by=("countyreal",)))
    d = E.fit(m, spec).tidy.query("aggregation == 'dynamic' and term == 'att'").sort_values("event_time")
    assert d.event_time.tolist() == ref["event"]
    # points: both converge the same QMLE (fixest glm tolerance ~1e-8 on the deviance);
    # observed max abs difference 4e-8 on values up to 102 employees
    assert np.max(np.abs(d.estimate.to_numpy() - ref["estimate"])) < 1e-6
    # SEs: marginaleffects' finite-difference Jacobian vs our analytic one; observed 3e-6 rel.
    assert np.max(np.abs(d.std_error.to_numpy() / ref["std_error"] - 1)) < 2e-5


def test_covariate_constant_within_cohort_refused(small):
    """A covariate that only varies by cohort adds nothing once cohort slopes are in; the
    cohort-level slopes are then collinear, so the estimator must refuse rather than guess."""
    from models.errors import DesignError

    d = small.copy()
    d["x"] = d["first_treat"].map({0: 0.1, 2013: 0.5, 2015: -0.2}).astype(float)
    with pytest.raises(DesignError, match="rank deficient"):
        E.fit(d, EstimatorSpec(yname="patents", covariates=("x",)))
