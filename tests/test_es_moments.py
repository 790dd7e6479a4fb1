"""Compressed TWFE / event study (models.did.es_moments) equals the in-memory estimators
(pyfixest feols behind models.did.twfe / event_study) on balanced panels, and falls back
(None) wherever compression would not be exact.

Tolerance 1e-10 (relative for SEs): both are exact least squares; the in-memory path
demeans iteratively to 1e-10 (models/did/_pyfixest.py FIXEF_TOL), the compressed one in
closed form, so they agree to that demeaning tolerance, not to machine precision."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.did import es_moments, event_study, twfe
from models.did.cs_moments import moments_from_frame
from tests._did_sim import mpdta, simulate, spec

TOL = 1e-10


def _sim(seed=3, **kw):
    df, _ = simulate(n_units=500, seed=seed, **kw)
    df["region"] = (pd.factorize(df["firm_id"])[0] % 17).astype(str)
    return df


DATA = {
    "sim": lambda: (_sim(), dict(yname="y", coarse="region")),
    "sim_static_effect": lambda: (_sim(seed=5, effect="homogeneous", cohorts=(2012, 2016)), dict(yname="y", coarse="region")),
    "mpdta": lambda: (mpdta().assign(state=lambda d: (d["firm_id"] // 1000).astype(str)), dict(yname="lemp", coarse="state")),
}
VCOVS = ["firm", "coarse", "hetero", "iid"]
WINDOWS = [[-5, 5], [-2, 0], [-3, 2]]


def _vcov(v, coarse):
    return {"firm": dict(kind="cluster", by=("firm_id",)), "coarse": dict(kind="cluster", by=(coarse,)),
            "hetero": dict(kind="hetero", by=()), "iid": dict(kind="iid", by=())}[v]


def _moments(df, info, v):
    cl = info["coarse"] if v == "coarse" else None
    return moments_from_frame(df, info["yname"], "year", "firm_id", "first_treat", clustervar=cl, control_group="notyettreated")


def _same(a, b):
    cols = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
    x, y = a.tidy[cols].to_numpy(float), b.tidy[cols].to_numpy(float)
    np.testing.assert_allclose(y, x, rtol=TOL, atol=TOL)
    for c in ("term", "aggregation", "n_obs", "n_treated"):
        assert a.tidy[c].tolist() == b.tidy[c].tolist(), c
    for k in ("n_obs", "n_units", "n_treated_units", "n_clusters", "vcov", "control_group", "dropped", "formula"):
        assert a.meta[k] == b.meta[k], k


@pytest.mark.parametrize("v", VCOVS)
@pytest.mark.parametrize("name", sorted(DATA))
def test_twfe_compressed_equals_in_memory(name, v):
    df, info = DATA[name]()
    s = spec(info["yname"], **_vcov(v, info["coarse"]))
    _same(twfe.fit(df, s), twfe.fit_from_moments(_moments(df, info, v), s))


@pytest.mark.parametrize("window", WINDOWS)
@pytest.mark.parametrize("v", VCOVS)
@pytest.mark.parametrize("name", ["sim", "mpdta"])
def test_event_study_compressed_equals_in_memory(name, v, window):
    df, info = DATA[name]()
    s = spec(info["yname"], **_vcov(v, info["coarse"]), event_window=window, endpoints="bin")
    a, b = event_study.fit(df, s), event_study.fit_from_moments(_moments(df, info, v), s)
    _same(a, b)
    np.testing.assert_allclose(b.tables["vcov_dynamic"].to_numpy(), a.tables["vcov_dynamic"].to_numpy(), rtol=TOL, atol=1e-14)
    for k in ("statistic", "p_value"):
        assert b.meta["pretrend"][k] == pytest.approx(a.meta["pretrend"][k], rel=1e-8)
    assert b.meta["pretrend"]["df"] == a.meta["pretrend"]["df"]


def test_compressed_recovers_a_homogeneous_effect():
    """Truth, not only agreement: one cohort, constant effect 1.0 -> TWFE within 3 SE."""
    df, _ = simulate(n_units=2000, cohorts=(2015,), effect="homogeneous", seed=11)
    s = spec("y")
    r = twfe.fit_from_moments(_moments(df, {"yname": "y", "coarse": None}, "firm"), s)
    est, se = r.tidy["estimate"].iloc[0], r.tidy["std_error"].iloc[0]
    assert abs(est - 1.0) < 3 * se


@pytest.mark.parametrize(
    "case",
    ["unbalanced", "trim", "covariates", "no_never", "twoway"],
)
def test_not_exact_returns_none(case):
    df = _sim()
    kw = {}
    if case == "unbalanced":
        df = df.drop(index=df.index[::37]).reset_index(drop=True)
    if case == "no_never":
        df = df.loc[df["first_treat"] > 0].reset_index(drop=True)
    if case == "covariates":
        kw["covariates"] = ("x",)
    vc = dict(kind="twoway", by=("firm_id", "region")) if case == "twoway" else dict(kind="cluster", by=("firm_id",))
    opts = {"event_window": [-3, 3], "endpoints": "trim" if case == "trim" else "bin"}
    s = spec("y", **vc, **kw, **opts)
    m = moments_from_frame(df, "y", "year", "firm_id", "first_treat", control_group="notyettreated")
    assert event_study.fit_from_moments(m, s) is None
    if case != "trim":
        assert twfe.fit_from_moments(m, spec("y", **vc, **kw)) is None


@pytest.mark.parametrize("key", ["twfe", "event_study"])
@pytest.mark.parametrize("unbalanced", [False, True])
def test_estimate_all_duckdb_equals_pandas(tmp_path, key, unbalanced):
    """Through the estimate stage's library call: engine duckdb (compressed, or a counted
    fall-back to the loaded panel when unbalanced) equals engine pandas."""
    import yaml

    from pipeline.config import load_params
    from pipeline.estimate import estimate_all
    from pipeline.io import parquet_bytes_writer

    df = _sim()
    if unbalanced:
        df = df.drop(index=df.index[::53]).reset_index(drop=True)
    df = df.rename(columns={"y": "outcome_y"})
    path = tmp_path / "panel.parquet"
    parquet_bytes_writer(df)(path)
    out = {}
    for engine in ("pandas", "duckdb"):
        raw = {
            "engine": engine,
            "data": {"firms": "f.csv", "membership": "m.csv"},
            "estimate": {"outcomes": ["outcome_y"], "estimators": [key], "sensitivity": {"estimators": []}},
        }
        (tmp_path / f"{engine}.yaml").write_text(yaml.safe_dump(raw))
        out[engine] = estimate_all(path, load_params(tmp_path / f"{engine}.yaml")).results[0]
    _same(out["pandas"], out["duckdb"])
    assert ("engine" in out["duckdb"].meta) is (not unbalanced)
