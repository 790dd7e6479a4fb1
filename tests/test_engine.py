"""Unconditional Callaway-Sant'Anna from sufficient statistics (models.did.cs_moments,
pipeline.engine): DuckDB moments == pandas moments == the dense in-memory att_gt/aggte.

Tolerance 1e-10 throughout: both paths compute the same quantities in a different
summation order (means of differences vs differences of means, Gram matrix vs sum of
squares of the dense influence functions), so they agree to rounding error (observed
<= 1e-12 on these data); 1e-10 leaves two orders of magnitude and still catches any
formula slip (those show up at >= 1e-4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.did import cs
from models.did.aggte import aggte
from models.did.att_gt import att_gt
from models.did.cs_moments import Moments, att_gt_from_moments, moments_from_frame
from models.errors import BadInputError, ConfigError, DesignError
from models.spec import EstimatorSpec
from models.vcov import VcovSpec
from pipeline.engine import cs_moments, fit_from_parquet

TOL = 1e-10  # see the module docstring
MPDTA = pd.read_csv("tests/data/mpdta.csv")


def sim_panel(n_firms: int = 400, years=(2008, 2022), seed: int = 3) -> pd.DataFrame:
    """firm_id, year, first_treat (min join year, 0 = never member), y = log(value added per
    employee), region (coarse cluster) from pipeline.simulate; cohorts before the window
    are always treated and after it never treated (att_gt's rules apply)."""
    from pipeline.simulate import simulate_economy

    e = simulate_economy(n_firms=n_firms, years=years, seed=seed)
    f = e.firms
    ft = e.membership.groupby("firm_id")["join_year"].min()
    out = pd.DataFrame(
        {
            "firm_id": f["firm_id"],
            "year": f["year"].astype("int64"),
            "first_treat": f["firm_id"].map(ft).fillna(0).astype("int64"),
            "y": np.log(f["value_added"] / f["employees"]),
            "region": f["nuts2"],
        }
    )
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("engine")
    mp = MPDTA.assign(state=(MPDTA.countyreal // 1000).astype(str))
    sim = sim_panel()
    # a few messy rows: missing outcomes (one unit loses a period -> unbalanced), one unit
    # missing a year outright
    sim.loc[sim.index[[5, 40]], "y"] = np.nan
    sim = sim.drop(index=sim.index[100]).reset_index(drop=True)
    out = {}
    for name, df, spec in (
        ("mpdta", mp, dict(yname="lemp", tname="year", idname="countyreal", gname="first.treat", coarse="state")),
        ("sim", sim, dict(yname="y", tname="year", idname="firm_id", gname="first_treat", coarse="region")),
    ):
        p = d / f"{name}.parquet"
        df.to_parquet(p, index=False)
        out[name] = (df, p, spec)
    return out


def _dense(df, s, cg, bp, ant, cl):
    df = df.loc[df[s["yname"]].notna()]  # as estimate_all does before fit
    return att_gt(df, s["yname"], s["tname"], s["idname"], s["gname"], control_group=cg, base_period=bp, anticipation=ant, clustervar=cl)


def _max_diff(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    assert a.shape == b.shape
    assert np.array_equal(np.isnan(a), np.isnan(b))
    return float(np.nanmax(np.abs(a - b))) if a.size and np.isfinite(a).any() else 0.0


def compare(r, q) -> float:
    """Largest absolute difference between two AttGtResults in every reported number."""
    assert np.array_equal(r.groups, q.groups) and np.array_equal(r.times, q.times)
    assert np.array_equal(r.n_cell, q.n_cell) and np.array_equal(r.n_treated_cell, q.n_treated_cell)
    assert r.n == q.n and r.n_obs == q.n_obs and r.n_clusters == q.n_clusters
    d = [_max_diff(r.att, q.att), _max_diff(r.se, q.se), _max_diff(r.vcov(), q.vcov())]
    if r.wald_pretest is None:
        assert q.wald_pretest is None
    else:
        # the pre-test solves a system in the pre-period covariance; its condition number
        # kappa (up to ~1e9 on the simulated panel: 44 pre cells of cohorts with 4-12 firms)
        # multiplies the ~1e-16 rounding of both paths, hence a relative bound 1e-13 * kappa
        pre = np.flatnonzero((r.groups > r.times) & np.isfinite(r.se))
        kappa = np.linalg.cond(r.vcov()[np.ix_(pre, pre)])
        assert q.wald_pretest["df"] == r.wald_pretest["df"]
        assert q.wald_pretest["statistic"] == pytest.approx(r.wald_pretest["statistic"], rel=max(TOL, 1e-13 * kappa))
    for ty in ("simple", "dynamic", "group", "calendar"):
        a, b = aggte(r, ty, na_rm=True), aggte(q, ty, na_rm=True)
        d += [_max_diff(a.overall_att, b.overall_att), _max_diff(a.overall_se, b.overall_se)]
        if a.egt is not None:
            assert np.array_equal(a.egt, b.egt)
            d += [_max_diff(a.att_egt, b.att_egt), _max_diff(a.se_egt, b.se_egt), _max_diff(a.vcov_egt(), b.vcov_egt())]
    return max(d)


@pytest.mark.parametrize("name", ["mpdta", "sim"])
@pytest.mark.parametrize("cg", ["nevertreated", "notyettreated"])
@pytest.mark.parametrize("bp", ["varying", "universal"])
@pytest.mark.parametrize("ant", [0, 1])
@pytest.mark.parametrize("cluster", ["unit", "coarse"])
def test_duckdb_equals_pandas_equals_dense(data, name, cg, bp, ant, cluster):
    df, path, s = data[name]
    cl = s["coarse"] if cluster == "coarse" else s["idname"]  # unit id = unit level
    args = (path, s["yname"], s["tname"], s["idname"], s["gname"])
    md = cs_moments(*args, cluster=cl, engine="duckdb", anticipation=ant, control_group=cg)
    mp = cs_moments(*args, cluster=cl, engine="pandas", anticipation=ant, control_group=cg)
    # the moments themselves
    assert md.dropped == mp.dropped and md.notes == mp.notes
    assert np.array_equal(md.periods, mp.periods) and np.array_equal(md.cohorts, mp.cohorts) and np.array_equal(md.n, mp.n)
    assert _max_diff(md.mean, mp.mean) < TOL and _max_diff(md.scatter, mp.scatter) < TOL * max(1.0, np.abs(mp.scatter).max())
    assert md.n_clusters == mp.n_clusters
    dense = _dense(df, s, cg, bp, ant, None if cluster == "unit" else cl)
    assert {k: v for k, v in md.dropped.items() if k != "missing_outcome"} == dense.dropped
    for m in (md, mp):
        q = att_gt_from_moments(m, cg, bp, ant)
        assert compare(dense, q) < TOL


def test_moments_identity_and_raw_moments():
    """Moments.from_arrays: S and Q are the raw sums; a constant shift of Y changes
    neither ATT nor any SE (the influence function is shift invariant)."""
    rng = np.random.default_rng(0)
    Y = rng.normal(5, 1, (60, 4))
    coh = rng.choice([0, 2, 3], 60)
    m = Moments.from_arrays(Y, coh, np.arange(1, 5))
    for i, h in enumerate(m.cohorts):
        Yh = Y[coh == h]
        np.testing.assert_allclose(m.S[i], Yh.sum(0), rtol=1e-12)
        np.testing.assert_allclose(m.Q[i], Yh.T @ Yh, rtol=1e-12)
    a = att_gt_from_moments(m)
    b = att_gt_from_moments(Moments.from_arrays(Y + 1e3, coh, np.arange(1, 5)))
    assert compare(a, b) < 1e-8  # shifting by 1e3 costs ~3 digits of the 1e-16 rounding


def _spec(**kw):
    base = dict(yname="lemp", tname="year", idname="countyreal", gname="first.treat", vcov=VcovSpec("cluster", ("countyreal",)), seed=1)
    base.update(kw)
    return EstimatorSpec(**base)


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"vcov": VcovSpec("cluster", ("state",))},
        {"control_group": "notyettreated", "options": {"base_period": "universal", "anticipation": 1, "min_e": -2, "max_e": 2}},
    ],
)
def test_fit_from_parquet_equals_cs_fit(data, kw):
    df, path, _ = data["mpdta"]
    spec = _spec(**kw)
    a = cs.fit(df, spec)
    b = fit_from_parquet(path, spec, cs, "duckdb")
    ta, tb = a.tidy, b.tidy
    assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb)
    for c in ta.columns:
        if pd.api.types.is_float_dtype(ta[c]):
            assert _max_diff(ta[c], tb[c]) < TOL, c
        else:
            assert ta[c].astype(str).tolist() == tb[c].astype(str).tolist(), c
    np.testing.assert_allclose(a.tables["vcov_dynamic"].to_numpy(), b.tables["vcov_dynamic"].to_numpy(), atol=TOL)
    skip = {"pretrend", "wald_pretest_gt", "engine", "rows_in", "notes"}
    assert {k: v for k, v in a.meta.items() if k not in skip} == {k: v for k, v in b.meta.items() if k not in skip}
    for key in ("pretrend", "wald_pretest_gt"):
        if a.meta[key] is None:
            assert b.meta[key] is None
        else:
            assert b.meta[key]["statistic"] == pytest.approx(a.meta[key]["statistic"], rel=TOL)
            assert b.meta[key]["df"] == a.meta[key]["df"]
    assert b.meta["rows_in"] == len(df)


def test_engine_refuses_what_moments_cannot_do(data):
    _, path, _ = data["mpdta"]
    with pytest.raises(ConfigError, match="bstrap"):
        fit_from_parquet(path, _spec(options={"bstrap": True}), cs, "duckdb")
    with pytest.raises(ConfigError, match="unconditional"):
        fit_from_parquet(path, _spec(covariates=("lpop",)), cs, "duckdb")
    with pytest.raises(ConfigError, match="duckdb, spark or pandas"):
        fit_from_parquet(path, _spec(), cs, "polars")
    m = cs_moments(path, "lemp", "year", "countyreal", "first.treat")
    with pytest.raises(ConfigError, match="bstrap"):
        att_gt_from_moments(m, bstrap=True)


def test_duckdb_validates_like_att_gt(tmp_path):
    dup = pd.concat([MPDTA, MPDTA.iloc[:1]])
    dup.to_parquet(tmp_path / "dup.parquet")
    with pytest.raises(BadInputError, match="more than one row"):
        cs_moments(tmp_path / "dup.parquet", "lemp", "year", "countyreal", "first.treat")
    moving = MPDTA.copy()
    moving.loc[moving.index[0], "first.treat"] = 2006
    moving.to_parquet(tmp_path / "moving.parquet")
    with pytest.raises(BadInputError, match="varies within 1 unit"):
        cs_moments(tmp_path / "moving.parquet", "lemp", "year", "countyreal", "first.treat")
    with pytest.raises(BadInputError, match="lacks column"):
        cs_moments(tmp_path / "moving.parquet", "nope", "year", "countyreal", "first.treat")


def test_no_never_treated_rule(tmp_path):
    """Without never-treated units: periods >= last cohort - anticipation dropped, the last
    cohort is only a not-yet-treated comparison (R did's rule), as in att_gt."""
    df = MPDTA.loc[MPDTA["first.treat"] != 0]
    df.to_parquet(tmp_path / "nn.parquet")
    m = cs_moments(tmp_path / "nn.parquet", "lemp", "year", "countyreal", "first.treat", control_group="notyettreated")
    r = att_gt(df, "lemp", "year", "countyreal", "first.treat", control_group="notyettreated")
    assert m.dropped == r.dropped and m.dropped["periods_without_comparison_group"] > 0
    assert compare(r, att_gt_from_moments(m, "notyettreated")) < TOL
    with pytest.raises(DesignError, match="never-member"):
        fit_from_parquet(tmp_path / "nn.parquet", _spec(), cs, "duckdb")


def test_pandas_moments_match_frame_path(data):
    df, path, s = data["sim"]
    a = cs_moments(path, s["yname"], s["tname"], s["idname"], s["gname"], engine="pandas")
    b = moments_from_frame(df.loc[df.y.notna()], s["yname"], s["tname"], s["idname"], s["gname"])
    assert a.dropped == {"missing_outcome": 2, **b.dropped} and b.dropped["unbalanced_panel"] > 0


@pytest.mark.parametrize("vcov", [{"kind": "cluster", "by": ["firm_id"]}, {"kind": "cluster", "by": ["region"]}])
def test_estimate_all_engine_duckdb_equals_pandas(tmp_path, data, vcov):
    """The orchestration hook: engine duckdb computes cs from moments without loading the
    panel; the EstimationResult rows equal engine pandas (cs.fit on the loaded panel)."""
    import yaml

    from pipeline.config import load_params
    from pipeline.estimate import estimate_all
    from tests._project import project_params

    df, _, _ = data["sim"]
    panel = df.assign(rel_time=lambda d: (d.year - d.first_treat).where(d.first_treat > 0), post=lambda d: (d.first_treat > 0) & (d.year >= d.first_treat))
    panel = panel.assign(cluster_id=None)
    path = tmp_path / "panel.parquet"
    panel.to_parquet(path, index=False)
    runs = {}
    for engine in ("pandas", "duckdb"):
        params = project_params(outcomes=["y"], estimators=["cs"], covariates=[], vcov=vcov, outcome_estimators={}, on_error="fail")
        params["engine"] = engine
        params["data"].pop("costs", None)  # no interim files here: only the panel (value for money needs data/interim/costs.parquet)
        params["estimate"]["sensitivity"] = {"estimators": [], "outcomes": None, "mbar": [1.0]}
        (tmp_path / f"{engine}.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        runs[engine] = estimate_all(path, load_params(tmp_path / f"{engine}.yaml")).results
    (a,), (b,) = runs["pandas"], runs["duckdb"]
    assert "engine" not in a.meta and b.meta["engine"].startswith("duckdb")
    ta, tb = a.tidy, b.tidy
    assert list(ta.columns) == list(tb.columns) and len(ta) == len(tb) > 50
    for c in ta.columns:
        if pd.api.types.is_float_dtype(ta[c]):
            assert _max_diff(ta[c], tb[c]) < TOL, c
        else:
            assert ta[c].astype(str).tolist() == tb[c].astype(str).tolist(), c
    for key in ("dropped", "rows_in", "n_obs", "n_units", "n_clusters", "cohort_sizes", "vcov"):
        assert a.meta[key] == b.meta[key], key
    assert b.meta["dropped"]["missing_outcome_or_covariate"] == 2
