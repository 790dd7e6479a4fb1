"""estimate.fixed_effects: effects beyond firm and year (issue 17, item 3).

* pyfixest 0.60 on mpdta with a synthetic sector (countyreal mod 5) and sector^year, for
  twfe, event_study, sunab, imputation, did2s and ppml (tests/reference/pyfixest_mpdta_fe.json,
  script tests/reference/scripts/pyfixest_mpdta_fe.py), at 1e-8;
* the compressed / exact solvers decline with a note in meta (never a different estimator);
* the extended exact solver (TwoWayFE with extra blocks) = dense least squares;
* recovery: region-by-year shocks correlated with treatment bias firm + year FE, region^year
  recovers the truth (tests/_fe_sim.py);
* params: names validated at load, columns checked by ``cluster-impact check`` (exit 5),
  engines fall back to memory.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from models.counts import ppml
from models.did import did2s, event_study, imputation, lpdid, sunab, twfe
from tests._did_sim import mpdta, spec, stored
from tests._fe_sim import region_shock_panel

# 1e-8: pyfixest stops its alternating projections at fixef_tol (1e-13 in the reference script,
# 1e-10 here) and the imputation estimators here solve the normal equations directly; the
# coefficient and SE errors are a small multiple of those tolerances (observed <= 1e-14 on
# this balanced panel), so 1e-8 leaves room for platform BLAS differences while still failing
# on any change of sample, formula or small-sample factor (those move the numbers by >= 1e-5).
TOL = 1e-8


@pytest.fixture(scope="module")
def mp():
    d = mpdta()
    d["sector"] = d["firm_id"] % 5  # as the reference script: mpdta has no sector
    d["emp"] = np.exp(d["lemp"])
    return d


@pytest.fixture(scope="module")
def ref():
    return stored("pyfixest_mpdta_fe")


def _fe(s, *terms):
    return replace(s, fixed_effects=terms or ("sector^year",))


def _close(got, want):
    assert abs(got["estimate"] - want["estimate"]) < TOL, (got, want)
    assert abs(got["std_error"] - want["std_error"]) < TOL, (got, want)


def _by_event(t, agg="dynamic"):
    d = t[t["aggregation"] == agg].set_index("event_time")
    return {int(k): {"estimate": r.estimate, "std_error": r.std_error} for k, r in d.iterrows()}


def test_twfe_mpdta(mp, ref):
    r = twfe.fit(mp, _fe(spec("lemp")))
    _close(r.tidy.iloc[0], ref["twfe"])
    assert r.meta["fixed_effects"] == ["firm_id", "year", "sector^year"]
    assert "declined" in r.meta["solver_note"] and r.meta["solver"].startswith("pyfixest")
    assert r.meta["formula"] == "y ~ post | firm_id + year + sector^year"
    # the extra effect matters here: without it the estimate differs by far more than TOL
    assert abs(twfe.fit(mp, spec("lemp")).tidy.iloc[0].estimate - ref["twfe"]["estimate"]) > 1e-3


def test_event_study_mpdta(mp, ref):
    r = event_study.fit(mp, _fe(spec("lemp", event_window=[-4, 3])))
    got = _by_event(r.tidy)
    assert set(got) == {int(k) for k in ref["event_study"]}
    for k, v in ref["event_study"].items():
        _close(got[int(k)], v)
    assert "declined" in r.meta["solver_note"]


def test_sunab_mpdta(mp, ref):
    r = sunab.fit(mp, _fe(spec("lemp")))
    t = r.tidy
    got = _by_event(t)
    for k, v in ref["sunab_dynamic"].items():
        _close(got[int(k)], v)
    _close(t[t["aggregation"] == "simple"].iloc[0], ref["sunab_simple"])
    cells = t[t["aggregation"] == "gt"]
    assert len(cells) == len(ref["sunab_cells"])
    for row in cells.itertuples():
        _close({"estimate": row.estimate, "std_error": row.std_error}, ref["sunab_cells"][f"{row.cohort}:{row.event_time}"])
    assert "exact cell solver declined" in r.meta["solver_note"]


@pytest.mark.parametrize("mod", [imputation, did2s])
def test_imputation_did2s_mpdta(mp, ref, mod):
    t = mod.fit(mp, _fe(spec("lemp"))).tidy
    _close(t[t["aggregation"] == "simple"].iloc[0], ref["did2s_simple"])
    got = _by_event(t)
    for k, v in ref["did2s_dynamic"].items():
        _close(got[int(k)], v)


def test_ppml_mpdta(mp, ref):
    r = ppml.fit(mp, _fe(spec("emp")))
    _close(r.tidy[r.tidy["term"] == "post"].iloc[0], ref["ppml"])
    assert r.meta["fixed_effects"] == ["firm_id", "year", "sector^year"]


def test_extra_blocks_solver_is_exact_least_squares():
    """TwoWayFE with an extra sector x year block and covariates on a masked fit sample =
    dense least squares with all dummies (1e-10: both direct solves, observed 1e-15)."""
    from models.did._fe import TwoWayFE

    rng = np.random.default_rng(0)
    U, T, S = 60, 7, 4
    unit, time = np.repeat(np.arange(U), T), np.tile(np.arange(T), U)
    sy = np.repeat(rng.integers(0, S, U), T) * T + time
    reg = np.repeat(rng.integers(0, 3, U), T)
    X, y = rng.normal(size=(U * T, 2)), rng.normal(size=U * T)
    mask = rng.random(U * T) > 0.3
    fe = TwoWayFE(unit, time, U, T, X=X, mask=mask, extra=[(sy, S * T), (reg, 3)])
    a, z = fe.fit(y)
    D = np.hstack([np.eye(U)[unit], np.eye(T)[time], X, np.eye(S * T)[sy], np.eye(3)[reg]])
    b = np.linalg.lstsq(D[mask], y[mask], rcond=None)[0]
    np.testing.assert_allclose(fe.predict(a, z)[:, 0], D @ b, rtol=0, atol=1e-10)
    np.testing.assert_allclose(z[T : T + 2, 0], b[U + T : U + T + 2], rtol=0, atol=1e-10)  # covariate slopes


# ---- recovery on simulated truth -------------------------------------------------------------

TAU = 0.3


@pytest.fixture(scope="module")
def sim():
    return region_shock_panel(seed=1, tau=TAU), region_shock_panel(seed=1, tau=TAU, poisson=True)


@pytest.mark.parametrize("name", ["twfe", "event_study", "sunab", "imputation", "did2s", "ppml", "lpdid"])
def test_region_year_effects_recover_the_truth(sim, name):
    """Firm + year FE are biased by region trends correlated with treatment (> 5 SE off);
    adding region^year recovers tau within 3 SE (a 0.3 % two-sided miss rate per estimator
    under correct SEs; the seed is fixed)."""
    mod = {"twfe": twfe, "event_study": event_study, "sunab": sunab, "imputation": imputation, "did2s": did2s,
           "ppml": ppml, "lpdid": lpdid}[name]
    data = sim[1] if name == "ppml" else sim[0]
    s = spec("y", control_group="notyettreated" if name == "lpdid" else "nevertreated")

    def row(r):
        t = r.tidy
        if name == "event_study":  # constant effect: every post-period coefficient is tau
            return t[t["event_time"] == 3].iloc[0]
        return t[t["aggregation"].isin(["simple", "static"])].iloc[0]

    biased = row(mod.fit(data, s))
    fixed = row(mod.fit(data, _fe(s, "region^year")))
    assert abs(biased.estimate - TAU) > 5 * biased.std_error, (name, biased.estimate, biased.std_error)
    assert abs(fixed.estimate - TAU) < 3 * fixed.std_error, (name, fixed.estimate, fixed.std_error)


# ---- boundaries ------------------------------------------------------------------------------

def test_problems_name_the_entry_and_the_fix():
    from models.fixed_effects import problems

    assert problems(["firm_id", "year", "sector^year", "region"]) == []
    msgs = problems(["firm_id", "sector^year", "year^sector", "a;b", "x^y^z^w", "s^s", 3])
    joined = "\n".join(msgs)
    assert "estimate.fixed_effects: 'year' is missing" in joined
    assert "estimate.fixed_effects[2]: 'year^sector' is listed twice" in joined
    assert "estimate.fixed_effects[3]: 'a;b'" in joined and "not a safe column name" in joined
    assert "estimate.fixed_effects[4]" in joined and "estimate.fixed_effects[5]" in joined
    assert "estimate.fixed_effects[6]: 3" in joined
    assert problems("sector") and problems([])


def test_missing_fixed_effect_rows_are_dropped_and_counted(mp):
    d = mp.copy()
    d["sector"] = d["sector"].astype(float)
    d.loc[d.index[:7], "sector"] = np.nan
    r = twfe.fit(d, _fe(spec("lemp")))
    assert r.meta["dropped"]["missing_fixed_effect"] == 7
    assert r.tidy.iloc[0].n_obs == len(d) - 7 - r.meta["dropped"].get("singleton", 0)


def test_few_cluster_vcov_with_extra_effects_is_refused(mp):
    from models.errors import ConfigError
    from models.vcov import VcovSpec

    with pytest.raises(ConfigError, match="not implemented"):
        twfe.fit(mp, replace(_fe(spec("lemp")), vcov=VcovSpec("crv3", ("firm_id",))))


def test_engine_declines_extra_effects(tmp_path, mp):
    from pipeline.engine import EngineFallback, fit_from_parquet

    path = tmp_path / "panel.parquet"
    mp.rename(columns={"lemp": "y"}).to_parquet(path)
    with pytest.raises(EngineFallback, match="fixed effects"):
        fit_from_parquet(path, _fe(spec("y")), twfe, "duckdb")


def test_compressed_path_unchanged_without_extra_effects(mp):
    r = twfe.fit(mp, spec("lemp"))
    assert r.meta["solver"].startswith("compressed") and "solver_note" not in r.meta and "fixed_effects" not in r.meta
    assert "fixed_effects" not in spec("lemp").to_dict()


def test_estimable_equals_the_rank_condition():
    """TwoWayFE.estimable = 'the row is in the row space of the fit design' (dense rank test)
    on small random designs with two extra blocks, where many rows are not estimable."""
    from models.did._fe import TwoWayFE

    n_not = 0
    for seed in range(15):
        rng = np.random.default_rng(seed)
        U, T = 12, 4
        unit, time = np.repeat(np.arange(U), T), np.tile(np.arange(T), U)
        ext = [(np.repeat(rng.integers(0, 2, U), T) * T + time, 2 * T), (np.repeat(rng.integers(0, 3, U), T) * T + time, 3 * T)]
        mask = rng.random(U * T) > 0.55
        fe = TwoWayFE(unit, time, U, T, mask=mask, extra=ext)
        D = np.hstack([np.eye(U)[unit], np.eye(T)[time], np.eye(2 * T)[ext[0][0]], np.eye(3 * T)[ext[1][0]]])
        r0 = np.linalg.matrix_rank(D[mask])
        want = np.array([np.linalg.matrix_rank(np.vstack([D[mask], D[i]])) == r0 for i in np.flatnonzero(~mask)])
        np.testing.assert_array_equal(fe.estimable(~mask), want)
        n_not += int((~want).sum())
    assert n_not > 20


def test_imputation_drops_non_estimable_counterfactuals():
    """Small staggered panels with sector^year and region^year: every treated row whose
    counterfactual is not estimable from the untreated rows is dropped (not_imputable) -- also
    rows whose levels are all seen untreated -- and the ATT is the mean of y - X b over the
    rest, b the dense least-squares fit on untreated rows (1e-10; both direct solves)."""
    beyond_levels = 0
    for seed in range(12):
        rng = np.random.default_rng(seed)
        U, T = 16, 5
        g = rng.choice([0, 0, 2012, 2013, 2014], U)
        d = pd.DataFrame({"firm_id": np.repeat(np.arange(U), T), "year": np.tile(np.arange(2010, 2010 + T), U)})
        d["first_treat"] = np.repeat(g, T)
        d["sector"] = np.repeat(rng.integers(0, 2, U), T)
        d["region"] = np.repeat(rng.integers(0, 3, U), T)
        d["y"] = rng.normal(size=len(d))
        treated = ((d["first_treat"] > 0) & (d["year"] >= d["first_treat"])).to_numpy()
        if (d["first_treat"] == 0).sum() == 0:
            continue
        sy, ry = d["sector"] * 100 + d["year"], d["region"] * 100 + d["year"]
        D = np.hstack([pd.get_dummies(c).to_numpy(float) for c in (d["firm_id"], d["year"], sy, ry)])
        r0 = np.linalg.matrix_rank(D[~treated])
        est = np.array([np.linalg.matrix_rank(np.vstack([D[~treated], D[i]])) == r0 for i in np.flatnonzero(treated)])
        levels = np.ones(treated.sum(), dtype=bool)
        for c in (d["firm_id"], d["year"], sy, ry):
            levels &= c[treated].isin(set(c[~treated])).to_numpy()
        beyond_levels += int((levels & ~est).sum())
        r = imputation.fit(d, _fe(spec("y"), "sector^year", "region^year"))
        assert r.meta["dropped"].get("not_imputable", 0) == int((~est).sum()), seed
        b = np.linalg.lstsq(D[~treated], d["y"].to_numpy()[~treated], rcond=None)[0]
        tau = (d["y"].to_numpy() - D @ b)[treated][est]
        att = r.tidy[r.tidy["aggregation"] == "simple"].iloc[0].estimate
        assert abs(att - tau.mean()) < 1e-10, seed
    assert beyond_levels > 0  # the rank check matters, not only the level check
