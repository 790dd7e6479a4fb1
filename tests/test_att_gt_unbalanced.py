"""Callaway-Sant'Anna on unbalanced panels (``allow_unbalanced_panel=True``).

References:

* tests/reference/mpdta_unbalanced_csdid.json -- csdid 0.4.3 ``ATTgt(allow_unbalanced_panel=True)``
  on mpdta with 10 % of the rows removed, five configurations (no covariates; lpop with dr,
  ipw, reg; a time-varying covariate with dr and not-yet-treated controls; varying and
  universal base periods); script tests/reference/scripts/mpdta_unbalanced_csdid.py.
  Tolerance 1e-10 for points and SEs: both sides are closed forms and one logit per cell
  (our Newton tolerance 1e-12 on the deviance; statsmodels' IRLS in csdid), observed
  agreement ~1e-13.
* The truth behind the influence functions: the exact empirical influence function of a
  smooth estimator is N times its derivative in the observation weights, so the directional
  derivative of the weighted estimate (central finite difference, step 1e-4) must equal
  mean(v * psi) for any direction v. The weighted point estimates come from moderndid 0.2.0
  (whose points equal ours to 1e-13; we have no weights). Tolerance 1e-6: the finite
  difference's truncation error is O(h^2) = 1e-8 times the third derivative, and
  statsmodels' logit stops at a 1e-8 relative deviance change.
* reg and ipw 2x2 estimators against moderndid's ports of R DRDID (1e-10); drdid_rc against
  csdid's (1e-10) -- R DRDID's drdid_rc has a sign slip in its influence function that the
  finite-difference test exposes (models/did/drdid_rc.py).
* Simulated truth: a staggered panel with unit effects and outcome-unrelated attrition,
  recovered within 3 SE, and the balanced path unchanged when the panel is balanced.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.did.aggte import aggte
from models.did.att_gt import att_gt
from models.did.drdid_rc import drdid_rc, reg_did_rc, std_ipw_did_rc
from models.errors import ConfigError

HERE = Path(__file__).parent
REF = json.loads((HERE / "reference" / "mpdta_unbalanced_csdid.json").read_text())
MPDTA = pd.read_csv(HERE / "data" / "mpdta.csv")


def _unbalanced_mpdta() -> pd.DataFrame:
    # the same rule as the reference script (and checked against its stored removed keys)
    rng = np.random.default_rng(7)
    drop = rng.random(len(MPDTA)) < 0.1
    du = MPDTA.loc[~drop].reset_index(drop=True)
    du["x2"] = du["lpop"] + 0.05 * rng.standard_normal(len(du))
    assert MPDTA.loc[drop, ["countyreal", "year"]].astype(int).values.tolist() == REF["removed_keys"]
    return du


DU = _unbalanced_mpdta()


def _fit(o):
    return att_gt(DU, "lemp", "year", "countyreal", "first.treat", covariates=o["covariates"], est_method=o["est_method"],
                  control_group=o["control_group"], base_period=o["base_period"], allow_unbalanced_panel=True)


@pytest.fixture(scope="module")
def fits():
    return {name: _fit(c["options"]) for name, c in REF["configs"].items()}


@pytest.mark.parametrize("name", list(REF["configs"]))
def test_gt_matches_csdid(fits, name):
    ref, r = REF["configs"][name]["gt"], fits[name]
    np.testing.assert_array_equal(r.groups, ref["group"])
    np.testing.assert_array_equal(r.times, ref["time"])
    np.testing.assert_allclose(r.att, np.asarray(ref["att"], float), rtol=0, atol=1e-10)
    np.testing.assert_allclose(r.se, np.asarray(ref["se"], float), rtol=0, atol=1e-10)


@pytest.mark.parametrize("agg", ["simple", "dynamic", "group", "calendar"])
@pytest.mark.parametrize("name", list(REF["configs"]))
def test_aggte_matches_csdid(fits, name, agg):
    ref, a = REF["configs"][name]["agg"][agg], aggte(fits[name], type=agg)
    assert a.overall_att == pytest.approx(ref["overall_att"], abs=1e-10)
    assert a.overall_se == pytest.approx(ref["overall_se"], abs=1e-10)


def test_unbalanced_panel_is_kept_and_counted(fits):
    r = fits["unconditional_never_varying"]
    assert "unbalanced_panel" not in r.dropped
    assert r.n_obs == len(DU) and r.n == DU["countyreal"].nunique()
    assert r.settings["unbalanced_panel"] is True
    assert any("unbalanced panel kept" in s for s in r.notes)
    assert r.obs_cell is not None and (r.obs_cell <= 2 * r.n_cell).all() and (r.obs_cell < 2 * r.n_cell).any()
    # the default still balances, dropping (and counting) every row of an incomplete unit
    b = att_gt(DU, "lemp", "year", "countyreal", "first.treat")
    incomplete = DU.groupby("countyreal")["year"].transform("size") < MPDTA["year"].nunique()
    assert b.dropped["unbalanced_panel"] == int(incomplete.sum())


def test_balanced_panel_takes_the_panel_path():
    """On a balanced panel the option changes nothing (R did: panel estimators)."""
    a = att_gt(MPDTA, "lemp", "year", "countyreal", "first.treat", covariates=["lpop"], allow_unbalanced_panel=True)
    b = att_gt(MPDTA, "lemp", "year", "countyreal", "first.treat", covariates=["lpop"])
    np.testing.assert_array_equal(a.att, b.att)
    np.testing.assert_array_equal(a.se, b.se)
    assert a.settings["unbalanced_panel"] is False


def test_dr_imp_unbalanced_is_refused():
    with pytest.raises(ConfigError, match="dr_imp"):
        att_gt(DU, "lemp", "year", "countyreal", "first.treat", covariates=["lpop"], est_method="dr_imp", allow_unbalanced_panel=True)


def _rc_data(seed=3, N=400):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(N)
    D = (rng.random(N) < 1 / (1 + np.exp(-0.8 * x))).astype(float)
    post = (rng.random(N) < 0.5).astype(float)
    y = 1 + x + 0.5 * D + 0.3 * post + 0.7 * D * post + 0.8 * x * post * D + x**2 + rng.standard_normal(N)
    return y, post, D, np.column_stack([np.ones(N), x])


@pytest.mark.parametrize("ours,peer_name", [(drdid_rc, "drdid_rc"), (reg_did_rc, "reg_did_rc"), (std_ipw_did_rc, "std_ipw_did_rc")])
def test_rc_influence_function_is_the_weight_derivative(ours, peer_name):
    import importlib

    peer = getattr(importlib.import_module(f"moderndid.drdid.estimators.{peer_name}"), peer_name)
    y, post, D, X = _rc_data()
    r = ours(y, post, D, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert peer(y, post, D, X).att == pytest.approx(r.att, abs=1e-12)
        rng = np.random.default_rng(11)
        for _ in range(4):
            v = rng.standard_normal(y.size)
            h = 1e-4
            num = (peer(y, post, D, X, i_weights=1 + h * v).att - peer(y, post, D, X, i_weights=1 - h * v).att) / (2 * h)
            # weights are renormalised to mean 1, so the direction is v - mean(v)
            assert np.mean((v - v.mean()) * r.inf_func) == pytest.approx(num, abs=1e-6)


def test_rc_estimators_match_peers():
    from csdid.attgt_fnc.drdid_trim import drdid_rc as c_drdid_rc
    from moderndid.drdid.estimators.reg_did_rc import reg_did_rc as m_reg
    from moderndid.drdid.estimators.std_ipw_did_rc import std_ipw_did_rc as m_ipw

    y, post, D, X = _rc_data(seed=5, N=600)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        c_att, c_if = c_drdid_rc(y, post, D, X[:, 1:])
        r = drdid_rc(y, post, D, X)
        assert r.att == pytest.approx(c_att, abs=1e-12)
        np.testing.assert_allclose(r.inf_func, c_if, rtol=0, atol=1e-9)
        for ours, peer in ((reg_did_rc, m_reg), (std_ipw_did_rc, m_ipw)):
            p, o = peer(y, post, D, X, influence_func=True), ours(y, post, D, X)
            assert o.att == pytest.approx(p.att, abs=1e-12)
            np.testing.assert_allclose(o.inf_func, p.att_inf_func, rtol=0, atol=1e-9)


@pytest.mark.parametrize("fn", [drdid_rc, reg_did_rc, std_ipw_did_rc])
def test_rc_intercept_only_is_the_four_means_difference(fn):
    y, post, D, X = _rc_data(seed=8)
    m = {(d, t): y[(D == d) & (post == t)].mean() for d in (0, 1) for t in (0, 1)}
    assert fn(y, post, D, X[:, :1]).att == pytest.approx((m[1, 1] - m[1, 0]) - (m[0, 1] - m[0, 0]), abs=1e-12)


def _staggered(seed: int, n: int = 3000, T: int = 8, keep: float = 0.8) -> tuple[pd.DataFrame, float]:
    """Cohorts 4, 6 and never; unit effects sd 2; effect 1 + 0.5 e; rows kept at random."""
    rng = np.random.default_rng(seed)
    g = rng.choice([4, 6, 0], size=n, p=[0.25, 0.25, 0.5])
    alpha = 2 * rng.standard_normal(n)
    t = np.tile(np.arange(1, T + 1), n)
    u = np.repeat(np.arange(n), T)
    gu = np.repeat(g, T)
    e = t - gu
    eff = np.where((gu > 0) & (e >= 0), 1 + 0.5 * e, 0.0)
    y = np.repeat(alpha, T) + 0.2 * t + eff + rng.standard_normal(n * T)
    df = pd.DataFrame({"id": u, "t": t, "g": gu, "y": y})
    df = df.loc[rng.random(len(df)) < keep]
    # the true simple ATT of the units in the sample (R did's weights: cohort sizes)
    post = df.loc[(df["g"] > 0) & (df["t"] >= df["g"])]
    sizes = df.drop_duplicates("id").groupby("g").size()
    w = {4: sizes[4] * (T - 4 + 1), 6: sizes[6] * (T - 6 + 1)}
    truth = sum(w[c] * np.mean(1 + 0.5 * np.arange(T - c + 1)) for c in (4, 6)) / sum(w.values())
    assert len(post) > 0
    return df, truth


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_recovers_truth_under_random_attrition(seed):
    df, truth = _staggered(seed)
    r = att_gt(df, "y", "t", "id", "g", allow_unbalanced_panel=True)
    a = aggte(r, type="simple")
    assert abs(a.overall_att - truth) < 3 * a.overall_se, (a.overall_att, truth, a.overall_se)
    # dynamic effects 1 + 0.5 e, e = 0..4
    d = aggte(r, type="dynamic")
    post = d.egt >= 0
    z = (d.att_egt[post] - (1 + 0.5 * d.egt[post])) / d.se_egt[post]
    assert np.all(np.abs(z) < 3.5), z


def test_cs_registry_estimator_with_unbalanced_panel():
    from models.did import cs
    from models.spec import EstimatorSpec, VcovSpec

    spec = EstimatorSpec(yname="lemp", tname="year", idname="countyreal", gname="first.treat", covariates=("lpop",),
                         vcov=VcovSpec("cluster", ("countyreal",)), options={"allow_unbalanced_panel": True})
    res = cs.fit(DU, spec)
    simple = res.tidy.query("aggregation == 'simple'")
    ref = REF["configs"]["lpop_dr_never_varying"]["agg"]["simple"]
    assert simple["estimate"].iloc[0] == pytest.approx(ref["overall_att"], abs=1e-10)
    assert simple["std_error"].iloc[0] == pytest.approx(ref["overall_se"], abs=1e-10)
    gt = res.tidy.query("aggregation == 'gt'")
    assert (gt["n_obs"] < 2 * DU["countyreal"].nunique()).all()


def test_engine_path_declines_an_unbalanced_panel_under_the_option(tmp_path):
    """engine duckdb: the moments hold the balanced sub-panel only, so with
    allow_unbalanced_panel the stage loads the panel (EngineFallback); on a balanced panel the
    moments path stays and equals the in-memory estimator."""
    from models.did import cs
    from models.spec import EstimatorSpec, VcovSpec
    from pipeline.engine import EngineFallback, fit_from_parquet

    spec = EstimatorSpec(yname="lemp", tname="year", idname="countyreal", gname="first.treat",
                         vcov=VcovSpec("cluster", ("countyreal",)), options={"allow_unbalanced_panel": True})
    DU.to_parquet(tmp_path / "unbalanced.parquet")
    with pytest.raises(EngineFallback):
        fit_from_parquet(tmp_path / "unbalanced.parquet", spec, cs, engine="duckdb")
    MPDTA.to_parquet(tmp_path / "balanced.parquet")
    a = fit_from_parquet(tmp_path / "balanced.parquet", spec, cs, engine="duckdb").tidy
    b = cs.fit(MPDTA, spec).tidy
    np.testing.assert_allclose(a["estimate"].to_numpy(), b["estimate"].to_numpy(), rtol=0, atol=1e-10)
    np.testing.assert_allclose(a["std_error"].to_numpy(), b["std_error"].to_numpy(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("name", ["drdid_panel", "reg_did_panel", "std_ipw_did_panel", "drdid_imp_panel"])
def test_panel_influence_function_is_the_weight_derivative(name):
    """The same truth check for the balanced-panel 2x2 estimators (models.did.drdid): their
    influence functions are the exact weight derivatives (R DRDID's panel formulas are)."""
    import importlib

    from models.did import drdid

    peer = getattr(importlib.import_module(f"moderndid.drdid.estimators.{name}"), name)
    rng = np.random.default_rng(3)
    N = 500
    x = rng.standard_normal(N)
    D = (rng.random(N) < 1 / (1 + np.exp(-0.8 * x))).astype(float)
    y0 = x + rng.standard_normal(N)
    y1 = y0 + 0.3 + 0.7 * D + 0.8 * x * D + 0.5 * x**2 + rng.standard_normal(N)
    X = np.column_stack([np.ones(N), x])
    r = getattr(drdid, name)(y1, y0, D, X)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(3):
            v = rng.standard_normal(N)
            h = 1e-4
            num = (peer(y1, y0, D, X, i_weights=1 + h * v).att - peer(y1, y0, D, X, i_weights=1 - h * v).att) / (2 * h)
            assert np.mean((v - v.mean()) * r.inf_func) == pytest.approx(num, abs=1e-6)


def test_balanced_default_counts_the_firms_it_drops_and_their_treated_clusters():
    """The default (balanced) CS on the unbalanced mpdta drops every county not observed
    in all 5 years: ``meta["dropped_units"]`` counts them (and the treated among them) and
    ``n_treated_clusters`` is counted on the kept counties, not the whole panel (issue 20).
    Truth by hand from the rows: per county the number of years observed."""
    from models.did import cs
    from models.spec import EstimatorSpec
    from models.vcov import VcovSpec

    years = DU.groupby("countyreal")["year"].nunique()
    g = DU.groupby("countyreal")["first.treat"].first()
    gap = years < DU["year"].nunique()
    kept_treated = int(((~gap) & (g > 0)).sum())
    spec = EstimatorSpec(yname="lemp", tname="year", idname="countyreal", gname="first.treat", vcov=VcovSpec("cluster", ("countyreal",)))
    m = cs.fit(DU, spec).meta
    assert m["dropped_units"] == {"unbalanced_panel": {"units": int(gap.sum()), "treated_units": int((gap & (g > 0)).sum())}}
    assert m["n_units"] == int((~gap).sum()) and m["n_treated_units"] == kept_treated
    assert m["n_treated_clusters"] == kept_treated < int((g > 0).sum())
    # clustered by a coarser column: the distinct clusters holding a kept treated county
    df = DU.assign(state=DU.countyreal // 1000)
    ms = cs.fit(df, EstimatorSpec(yname="lemp", tname="year", idname="countyreal", gname="first.treat", vcov=VcovSpec("cluster", ("state",)))).meta
    kept = df[df.countyreal.isin(years.index[~gap]) & (df["first.treat"] > 0)]
    assert ms["n_treated_clusters"] == kept["state"].nunique()
    # a balanced panel drops nothing and records no unit drop
    assert "dropped_units" not in cs.fit(MPDTA, spec).meta
