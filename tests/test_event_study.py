"""Event-study TWFE: pyfixest i(rel_time, ref=-1) to 1e-10, binning/trimming, the
pre-trend Wald test, n_treated per event time, vcov table; models.inference.wald."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models.did import event_study
from models.errors import ConfigError, DesignError
from models.inference.wald import SingularVcovError, wald_test
from tests._did_sim import mpdta, simulate, spec


def pyfixest_es(df, yname, rel, ref=-1):
    """pyfixest feols(y ~ i(rel, ref=-1) | firm_id + year), never members coded to the
    reference so their dummies are all zero. Returns {event_time: (beta, se)} and vcov."""
    import pyfixest as pf

    d = df.assign(_r=np.where(df["first_treat"] > 0, rel, ref).astype(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = pf.feols(f"{yname} ~ i(_r, ref={float(ref)}) | firm_id + year", data=d, vcov={"CRV1": "firm_id"},
                     fixef_rm="none", fixef_tol=1e-13)
    names = [str(n) for n in f._coefnames]
    et = [int(float(n.split("::")[1])) for n in names]
    return pd.Series(f._beta_hat, index=et), pd.DataFrame(f._vcov, index=et, columns=et)


def _check(r, b, V, tol):
    got = r.tidy.set_index("event_time")
    assert list(got.index) == sorted(b.index)
    np.testing.assert_allclose(got["estimate"].to_numpy(float), b.sort_index().to_numpy(), rtol=0, atol=tol)
    vc = r.tables["vcov_dynamic"]
    np.testing.assert_allclose(vc.to_numpy(), V.loc[vc.index, vc.columns].to_numpy(), rtol=0, atol=tol)


@pytest.mark.parametrize("endpoints", ["bin", "trim"])
def test_full_window_matches_pyfixest_on_unbalanced_simulation(endpoints):
    df, _ = simulate(n_units=300, seed=21, unbalanced=0.1)
    rel = (df["year"] - df["first_treat"]).to_numpy()
    lo, hi = int(rel[df["first_treat"] > 0].min()), int(rel[df["first_treat"] > 0].max())
    r = event_study.fit(df, spec("y", event_window=[lo, hi], endpoints=endpoints))
    b, V = pyfixest_es(df, "y", rel)
    # 1e-10: pyfixest demeaning at 1e-13 vs ours at 1e-10 on an unbalanced panel
    _check(r, b, V, 1e-10)
    assert r.meta["dropped"] == {}


def test_mpdta_matches_pyfixest():
    mp = mpdta()
    r = event_study.fit(mp, spec("lemp"))
    b, V = pyfixest_es(mp, "lemp", (mp["year"] - mp["first_treat"]).to_numpy())
    _check(r, b, V, 1e-10)  # balanced: both exact up to rounding
    # pretrend = chi2 Wald of the leads with their vcov block
    leads = [-4, -3, -2]
    w = wald_test(b.loc[leads].to_numpy(), V.loc[leads, leads].to_numpy())
    assert r.meta["pretrend"]["df"] == 3
    assert abs(r.meta["pretrend"]["statistic"] - w["statistic"]) < 1e-8
    # treated counties observed at each event time (cohorts 2004: 20, 2006: 40, 2007: 131)
    ntr = r.tidy.set_index("event_time")["n_treated"]
    assert ntr.loc[0] == 191 and ntr.loc[1] == 60 and ntr.loc[3] == 20 and ntr.loc[-4] == 131


def test_binned_endpoints_equal_manual_binning():
    df, _ = simulate(n_units=300, seed=22)
    rel = (df["year"] - df["first_treat"]).to_numpy()
    r = event_study.fit(df, spec("y", event_window=[-3, 2], endpoints="bin"))
    b, V = pyfixest_es(df, "y", np.clip(rel, -3, 2))
    _check(r, b, V, 1e-10)
    assert sorted(r.tidy["event_time"]) == [-3, -2, 0, 1, 2]


def test_trimmed_endpoints_drop_and_count():
    df, _ = simulate(n_units=300, seed=23)
    rel = (df["year"] - df["first_treat"]).to_numpy()
    outside = (df["first_treat"] > 0).to_numpy() & ((rel < -3) | (rel > 2))
    r = event_study.fit(df, spec("y", event_window=[-3, 2], endpoints="trim"))
    assert r.meta["dropped"]["outside_event_window"] == int(outside.sum())
    assert r.meta["n_obs"] + sum(r.meta["dropped"].values()) == len(df)
    b, V = pyfixest_es(df.loc[~outside], "y", rel[~outside])
    _check(r, b, V, 1e-10)


def test_pretrend_test_detects_violation_and_not_under_null():
    null, _ = simulate(n_units=600, seed=24, effect="homogeneous")
    bad, _ = simulate(n_units=600, seed=24, effect="homogeneous", pretrend=0.15)
    p_null = event_study.fit(null, spec("y")).meta["pretrend"]["p_value"]
    p_bad = event_study.fit(bad, spec("y")).meta["pretrend"]["p_value"]
    assert p_bad < 1e-6  # 0.15 per year pre-trend, 600 firms: overwhelming
    assert p_null > 0.01  # fixed seed; a true null


def test_recovers_homogeneous_dynamic_path():
    df, _ = simulate(n_units=800, cohorts=(2015,), effect="dynamic", seed=25)
    r = event_study.fit(df, spec("y"))
    t = r.tidy.set_index("event_time")
    truth = {e: 1 + 0.25 * e for e in range(5)}  # single cohort: rank 0
    for e, v in truth.items():
        assert abs(t.loc[e, "estimate"] - v) < 3 * t.loc[e, "std_error"], e
    for e in (-5, -4, -3, -2):
        assert abs(t.loc[e, "estimate"]) < 3 * t.loc[e, "std_error"], e


def test_errors():
    df, _ = simulate(n_units=100, seed=26, never_share=0.0)
    with pytest.raises(DesignError, match="never members"):
        event_study.fit(df, spec("y"))
    with pytest.raises(ConfigError):
        event_study.fit(df, spec("y", event_window=[0, 3]))
    with pytest.raises(ConfigError):
        event_study.fit(df, spec("y", endpoints="wrap"))
    # single cohort, no never members: fully dynamic TWFE not identified -> DesignError
    one, _ = simulate(n_units=100, seed=27, never_share=0.0, cohorts=(2015,))
    with pytest.raises(DesignError, match="event_study"):
        event_study.fit(one, spec("y", control_group="notyettreated", event_window=[-5, 4]))


def test_wald_test():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 4))
    V = A @ A.T + np.eye(4)
    b = rng.normal(size=4)
    out = wald_test(b, V)
    assert out["df"] == 4 and abs(out["statistic"] - b @ np.linalg.solve(V, b)) < 1e-10
    R = np.array([[1.0, -1.0, 0, 0]])
    out = wald_test(b, V, R)
    assert out["df"] == 1
    assert abs(out["statistic"] - (b[0] - b[1]) ** 2 / (R @ V @ R.T)[0, 0]) < 1e-10
    from scipy import stats

    assert abs(out["p_value"] - stats.chi2.sf(out["statistic"], 1)) < 1e-14
    Vs = V.copy()
    Vs[:, 3] = 0
    Vs[3, :] = 0
    with pytest.raises(SingularVcovError, match="singular"):
        wald_test(b, Vs)


def test_mpdta_stored_pyfixest_reference():
    """Stored pyfixest 0.60 values (tests/reference/pyfixest_mpdta.json): 1e-10."""
    from tests._did_sim import stored

    ref = stored("pyfixest_mpdta")["event_study"]
    r = event_study.fit(mpdta(), spec("lemp")).tidy.set_index("event_time")
    assert sorted(r.index) == sorted(int(k) for k in ref)
    for k, v in ref.items():
        assert abs(r.loc[int(k), "estimate"] - v["estimate"]) < 1e-10
        assert abs(r.loc[int(k), "std_error"] - v["std_error"]) < 1e-10


@pytest.mark.parametrize("key", ["twfe", "event_study", "sunab", "imputation", "did2s", "bacon"])
def test_result_contract_and_json_meta(key):
    """Registry protocol: OPTIONS dict + fit -> EstimationResult with JSON-serialisable
    meta holding the contract keys, tidy rows with n_obs/n_treated, row accounting."""
    import json

    from models import registry

    mod = registry.get(key)
    assert isinstance(mod.OPTIONS, dict)
    df, _ = simulate(n_units=150, seed=28)
    r = mod.fit(df, spec("y", **mod.OPTIONS))
    json.dumps(r.meta)
    for k in ("n_obs", "n_units", "n_treated_units", "n_clusters", "vcov", "control_group", "dropped"):
        assert k in r.meta, k
    assert r.meta["n_obs"] + sum(r.meta["dropped"].values()) == len(df)
    assert r.tidy["n_treated"].notna().all() and r.tidy["n_obs"].notna().all()
    assert r.headline() is not None or key == "event_study"
    if key in ("event_study", "sunab", "imputation", "did2s"):
        assert {"statistic", "df", "p_value"} <= set(r.meta["pretrend"])
