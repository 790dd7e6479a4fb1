"""Compressed TWFE / event study (models.did.es_moments) equals the in-memory estimators
(pyfixest feols behind models.did.twfe / event_study) on balanced panels, and falls back
(None) wherever compression would not be exact.

Tolerance 1e-10 (relative for SEs): both are exact least squares; the in-memory path
demeans iteratively to 1e-10 (models/did/_pyfixest.py FIXEF_TOL), the compressed one in
closed form, so they agree to that demeaning tolerance, not to machine precision."""

from __future__ import annotations

import functools

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


@functools.lru_cache(maxsize=1)
def _embedded_panel() -> pd.DataFrame:
    """The embedded sample's processed panel, built from the committed raw files through the
    real ingest and build_groups commands in a temporary copy (a clean clone has no DVC
    outputs)."""
    import tempfile
    from pathlib import Path

    import yaml

    from tests._project import REPO, cli, copy_project

    root = copy_project(REPO, Path(tempfile.mkdtemp(prefix="es-embedded-")))
    params = yaml.safe_load((root / "params.yaml").read_text())
    params["ingest"]["derive"] = [d for d in params["ingest"]["derive"] if d != "log_tfp"]  # not needed here
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    cli("ingest", cwd=root, check=True)
    cli("build_groups", cwd=root, check=True)
    return pd.read_parquet(root / "data" / "processed" / "panel.parquet",
                           columns=["firm_id", "year", "first_treat", "log_labour_productivity", "cluster_id", "region"])


def _embedded():
    """The embedded sample (pipeline.simulate, balanced 15 years), clustered by firm or by
    cluster_id (never members' null cluster_id filled with their region: the in-memory path
    rejects a null cluster)."""
    df = _embedded_panel().copy()
    df["cluster_id"] = df["cluster_id"].fillna("none_" + df["region"].astype(str))
    return df


DATA = {
    "embedded": lambda: (_embedded(), dict(yname="log_labour_productivity", coarse="cluster_id")),
    "sim": lambda: (_sim(), dict(yname="y", coarse="region")),
    "sim_static_effect": lambda: (_sim(seed=5, effect="homogeneous", cohorts=(2012, 2016)), dict(yname="y", coarse="region")),
    "mpdta": lambda: (mpdta().assign(state=lambda d: (d["firm_id"] // 1000).astype(str)), dict(yname="lemp", coarse="state")),
}
VCOVS = ["firm", "coarse", "hetero", "iid"]
WINDOWS = [[-5, 5], [-2, 0], [-3, 2]]
# (endpoints, window): every window binned, two trimmed (trim drops treated rows outside the
# window: each cohort keeps its own period set, still exact)
ENDPOINTS = [("bin", w) for w in WINDOWS] + [("trim", [-3, 2]), ("trim", [-5, 5])]


def _vcov(v, coarse):
    return {"firm": dict(kind="cluster", by=("firm_id",)), "coarse": dict(kind="cluster", by=(coarse,)),
            "hetero": dict(kind="hetero", by=()), "iid": dict(kind="iid", by=())}[v]


def _moments(df, info, v):
    cl = info["coarse"] if v == "coarse" else None
    return moments_from_frame(df, info["yname"], "year", "firm_id", "first_treat", clustervar=cl, control_group="notyettreated")


def _same(a, b, engine=False):
    """Same tidy rows and the same meta (every key; the engine path adds only its own
    ``engine`` label), numbers to TOL."""
    cols = ["estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"]
    assert list(a.tidy.columns) == list(b.tidy.columns)
    x, y = a.tidy[cols].to_numpy(float), b.tidy[cols].to_numpy(float)
    np.testing.assert_allclose(y, x, rtol=TOL, atol=TOL)
    for c in a.tidy.columns.difference(cols):
        assert a.tidy[c].tolist() == b.tidy[c].tolist(), c
    extra = {"engine"} if engine else set()
    assert set(b.meta) - extra == set(a.meta), set(a.meta) ^ (set(b.meta) - extra)
    for k in a.meta:
        if k == "solver":
            continue  # which solver ran: the point of the comparison
        if k == "pretrend":
            pa, pb = a.meta[k], b.meta[k]
            assert set(pa) == set(pb) and pa["df"] == pb["df"] and pa.get("leads") == pb.get("leads")
            for s in ("statistic", "p_value"):
                assert (pa[s] is None) == (pb[s] is None)
                if pa[s] is not None:
                    assert pb[s] == pytest.approx(pa[s], rel=TOL, abs=TOL), s
        else:
            assert a.meta[k] == b.meta[k], k


@pytest.mark.parametrize("v", VCOVS)
@pytest.mark.parametrize("name", sorted(DATA))
def test_twfe_compressed_equals_in_memory(name, v):
    df, info = DATA[name]()
    s = spec(info["yname"], **_vcov(v, info["coarse"]))
    _same(twfe.fit_dense(df, s), twfe.fit_from_moments(_moments(df, info, v), s))


@pytest.mark.parametrize("endpoints,window", ENDPOINTS)
@pytest.mark.parametrize("v", VCOVS)
@pytest.mark.parametrize("name", ["embedded", "sim", "mpdta"])
def test_event_study_compressed_equals_in_memory(name, v, endpoints, window):
    df, info = DATA[name]()
    s = spec(info["yname"], **_vcov(v, info["coarse"]), event_window=window, endpoints=endpoints)
    a, b = event_study.fit_dense(df, s), event_study.fit_from_moments(_moments(df, info, v), s)
    _same(a, b)
    Va, Vb = a.tables["vcov_dynamic"].to_numpy(), b.tables["vcov_dynamic"].to_numpy()
    # off-diagonal covariances can be ~1e-2 of the variances; trimmed panels are unbalanced and
    # pyfixest demeans them iteratively (tol 1e-10), so elements agree to TOL x the largest variance
    np.testing.assert_allclose(Vb, Va, rtol=TOL, atol=TOL * np.abs(np.diag(Va)).max())


def test_compressed_recovers_a_homogeneous_effect():
    """Truth, not only agreement: one cohort, constant effect 1.0 -> TWFE within 3 SE."""
    df, _ = simulate(n_units=2000, cohorts=(2015,), effect="homogeneous", seed=11)
    s = spec("y")
    r = twfe.fit_from_moments(_moments(df, {"yname": "y", "coarse": None}, "firm"), s)
    est, se = r.tidy["estimate"].iloc[0], r.tidy["std_error"].iloc[0]
    assert abs(est - 1.0) < 3 * se


@pytest.mark.parametrize(
    "case",
    ["unbalanced", "bad_endpoints", "covariates", "no_never", "twoway", "always_treated", "late_cohort", "wild"],
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
    first = df["firm_id"].isin(df["firm_id"].unique()[:7])
    if case == "always_treated":  # treated from the first period: the moments drop them, the panel keeps them
        df.loc[first, "first_treat"] = df["year"].min()
    if case == "late_cohort":  # joins after the last period: recoded never by the moments, treated in memory
        df.loc[first, "first_treat"] = df["year"].max() + 2
    vc = {"twoway": dict(kind="twoway", by=("firm_id", "region")), "wild": dict(kind="wild", by=("region",))}.get(case, dict(kind="cluster", by=("firm_id",)))
    opts = {"event_window": [-3, 3], "endpoints": "middle" if case == "bad_endpoints" else "bin"}
    s = spec("y", **vc, **kw, **opts)
    m = moments_from_frame(df, "y", "year", "firm_id", "first_treat", control_group="notyettreated")
    assert event_study.fit_from_moments(m, s) is None
    if case != "bad_endpoints":
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
    _same(out["pandas"], out["duckdb"], engine=not unbalanced)
    assert ("engine" in out["duckdb"].meta) is (not unbalanced)


def test_trimmed_event_study_equals_dense_least_squares():
    """``endpoints: trim`` leaves an unbalanced panel; the compressed fit (per-cohort period
    sets) equals exact OLS with explicit unit and period dummies (numpy lstsq, CRV1 with
    fixest's small-sample factor, unit effects nested in the firm clusters not counted).
    Tolerance 1e-12: both are direct solves of a well-conditioned system (no iterative
    demeaning), so only rounding separates them."""
    df, _ = simulate(n_units=300, seed=3)
    lo, hi = -3, 2
    rel = np.where(df["first_treat"] > 0, df["year"] - df["first_treat"], np.nan)
    keep = ~(np.isfinite(rel) & ((rel < lo) | (rel > hi)))
    d, e = df.loc[keep].reset_index(drop=True), np.clip(rel[keep], lo, hi)
    times = [k for k in sorted(set(e[np.isfinite(e)])) if k != -1]
    X = np.column_stack([(e == k).astype(float) for k in times])
    Z = np.column_stack([X, pd.get_dummies(d["firm_id"]).to_numpy(float), pd.get_dummies(d["year"]).to_numpy(float)[:, 1:]])
    y = d["y"].to_numpy()
    b = np.linalg.lstsq(Z, y, rcond=None)[0]
    bread = np.linalg.pinv(Z.T @ Z)
    sc = pd.DataFrame(Z * (y - Z @ b)[:, None]).groupby(d["firm_id"].to_numpy()).sum().to_numpy()
    N, G, k = len(y), d["firm_id"].nunique(), len(times)
    V = (bread @ sc.T @ sc @ bread)[:k, :k] * G / (G - 1) * (N - 1) / (N - (k + d["year"].nunique()))
    r = event_study.fit_from_moments(moments_from_frame(df, "y", "year", "firm_id", "first_treat"),
                                     spec("y", event_window=[lo, hi], endpoints="trim"))
    np.testing.assert_allclose(r.tidy["estimate"].to_numpy(), b[:k], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(r.tables["vcov_dynamic"].to_numpy(), V, rtol=1e-10, atol=1e-14)
    assert r.meta["n_obs"] == N and r.meta["dropped"] == {"outside_event_window": int((~keep).sum())}


@pytest.mark.parametrize("case", ["balanced", "coarse", "unbalanced", "covariates", "twoway", "always_treated", "late_cohort", "no_never"])
@pytest.mark.parametrize("module", [twfe, event_study], ids=["twfe", "event_study"])
def test_fit_dispatch_compressed_when_exact_else_dense(module, case):
    """``fit`` (engine pandas) takes the compressed solver exactly where it is exact and
    otherwise the unit-level fit; either way it equals ``fit_dense`` (pyfixest)."""
    df = _sim()
    kw = {"event_window": [-3, 3]} if module is event_study else {}
    first = df["firm_id"].isin(df["firm_id"].unique()[:7])
    if case == "unbalanced":
        df = df.drop(index=df.index[::37]).reset_index(drop=True)
    if case == "no_never":  # with never-treated controls both raise the DesignError that names it
        df = df.loc[df["first_treat"] > 0].reset_index(drop=True)
        kw["control_group"] = "notyettreated"
    if case == "always_treated":
        df.loc[first, "first_treat"] = df["year"].min()
    if case == "late_cohort":
        df.loc[first, "first_treat"] = df["year"].max() + 2
    if case == "covariates":
        kw["covariates"] = ("x",)
    vc = {"twoway": dict(kind="twoway", by=("firm_id", "region")),
          "coarse": dict(kind="cluster", by=("region",))}.get(case, dict(kind="cluster", by=("firm_id",)))
    s = spec("y", **vc, **kw)
    got = module.fit(df, s)
    exact = case in ("balanced", "coarse")
    assert got.meta["solver"] == (es_moments.SOLVER_COMPRESSED if exact else es_moments.SOLVER_DENSE)
    ref = module.fit_dense(df, s)
    if exact:
        _same(ref, got)
    else:
        pd.testing.assert_frame_equal(got.tidy, ref.tidy)
