"""Sun & Abraham IW event study: cohort x event-time cells and IW aggregates against
pyfixest's saturated event study (0.60 has no ``sunab()``), the fixest ATT aggregation,
recovery of heterogeneous dynamic effects where TWFE fails, last-cohort control."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from models.did import event_study, sunab, twfe
from models.errors import DesignError
from tests._did_sim import mpdta, simulate, spec, truth


def pyfixest_saturated(df, yname):
    import pyfixest as pf

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = pf.event_study(df, yname=yname, idname="firm_id", tname="year", gname="first_treat", estimator="saturated")
        agg = f.aggregate()
    cells = {}
    for n, b, s in zip(f._coefnames, f._beta_hat, f._se):
        l, g = str(n).split(":first_treated_period::")
        cells[(int(g), int(float(l.split("::")[1])))] = (b, s)
    agg.index = agg.index.astype(float).astype(int)
    return cells, agg.astype(float)


@pytest.mark.parametrize("data", ["mpdta", "simulated"])
def test_cells_and_iw_aggregates_match_pyfixest(data):
    if data == "mpdta":
        df, y = mpdta(), "lemp"
    else:  # balanced: pyfixest infers cohorts from observed treated periods
        df, y = simulate(n_units=400, seed=31)[0], "y"
    r = sunab.fit(df, spec(y))
    cells, agg = pyfixest_saturated(df, y)
    gt = r.tidy[r.tidy["aggregation"] == "gt"]
    assert len(gt) == len(cells)
    for row in gt.itertuples():
        b, s = cells[(row.cohort, row.event_time)]
        # same regression; 1e-10 = demeaning tolerance on a balanced panel
        assert abs(row.estimate - b) < 1e-10 and abs(row.std_error - s) < 1e-10
    dyn = r.tidy[r.tidy["aggregation"] == "dynamic"].set_index("event_time")
    assert sorted(dyn.index) == sorted(agg.index)
    np.testing.assert_allclose(dyn["estimate"].to_numpy(float), agg.loc[dyn.index, "Estimate"], atol=1e-10)
    np.testing.assert_allclose(dyn["std_error"].to_numpy(float), agg.loc[dyn.index, "Std. Error"], atol=1e-10)


def test_mpdta_published_fixest_sunab():
    """fixest's sunab on mpdta (as printed by pyfixest's saturated aggregate and the
    fixest documentation): event times 0..3 = -0.0199, -0.0510, -0.1373, -0.1008;
    tolerance half a unit in the 4th decimal."""
    r = sunab.fit(mpdta(), spec("lemp"))
    dyn = r.tidy[r.tidy["aggregation"] == "dynamic"].set_index("event_time")["estimate"]
    np.testing.assert_allclose(dyn.loc[[0, 1, 2, 3]].to_numpy(float), [-0.0199, -0.0510, -0.1373, -0.1008], atol=5e-5)


def test_att_is_cell_count_weighted_average():
    r = sunab.fit(mpdta(), spec("lemp"))
    gt = r.tidy[(r.tidy["aggregation"] == "gt") & (r.tidy["event_time"] >= 0)]
    att = (gt["estimate"] * gt["n_obs"]).sum() / gt["n_obs"].sum()
    simple = r.tidy[r.tidy["aggregation"] == "simple"].iloc[0]
    assert abs(simple.estimate - att) < 1e-12
    assert simple.n_treated == 191
    w = r.tables["iw_weights"]
    assert np.allclose(w.groupby("event_time")["weight"].sum(), 1.0)
    vc = r.tables["vcov_dynamic"]
    dyn = r.tidy[r.tidy["aggregation"] == "dynamic"]
    assert list(vc.index) == list(dyn["event_time"]) and -1 not in vc.index
    np.testing.assert_allclose(np.sqrt(np.diag(vc)), dyn["std_error"].to_numpy(float), atol=1e-14)


def test_recovers_heterogeneous_dynamic_effects_where_twfe_fails():
    df, _ = simulate(n_units=1500, seed=32, sigma=0.3, never_share=0.3, cohorts=(2012, 2015, 2017))
    tr = truth(df)
    r = sunab.fit(df, spec("y"))
    dyn = r.tidy[r.tidy["aggregation"] == "dynamic"].set_index("event_time")
    errs = []
    for e, v in tr["dynamic"].items():
        errs.append((dyn.loc[e, "estimate"] - v) / dyn.loc[e, "std_error"])
    assert np.max(np.abs(errs)) < 3.5, errs  # 8 horizons, fixed seed; |z| < 3.5
    leads = dyn[dyn.index < -1]
    assert np.all(np.abs(leads["estimate"] / leads["std_error"]) < 3.5)
    simple = r.tidy[r.tidy["aggregation"] == "simple"].iloc[0]
    assert abs(simple.estimate - tr["simple"]) < 3 * simple.std_error
    # static TWFE and the TWFE event study are biased on the same data
    tw = twfe.fit(df, spec("y")).tidy.iloc[0]
    assert abs(tw.estimate - tr["simple"]) > 5 * tw.std_error
    es = event_study.fit(df, spec("y", event_window=[-7, 7])).tidy.set_index("event_time")
    worst = max(abs(es.loc[e, "estimate"] - v) / es.loc[e, "std_error"] for e, v in tr["dynamic"].items())
    assert worst > 5


def test_last_cohort_as_control():
    df, _ = simulate(n_units=600, seed=33, never_share=0.0, cohorts=(2012, 2014, 2017))
    with pytest.raises(DesignError, match="control_cohort: last"):
        sunab.fit(df, spec("y", control_group="notyettreated"))
    r = sunab.fit(df, spec("y", control_group="notyettreated", control_cohort="last"))
    n_after = int((df["year"] >= 2017).sum())
    assert r.meta["dropped"]["after_last_cohort_treated"] == n_after
    assert r.meta["n_obs"] + sum(r.meta["dropped"].values()) == len(df)
    gt = r.tidy[r.tidy["aggregation"] == "gt"]
    assert set(gt["cohort"]) == {2012, 2014}
    tr = truth(df.loc[df["year"] < 2017])
    dyn = r.tidy[r.tidy["aggregation"] == "dynamic"].set_index("event_time")
    for e, v in tr["dynamic"].items():
        assert abs(dyn.loc[e, "estimate"] - v) < 3.5 * dyn.loc[e, "std_error"], e


def test_event_window_trims_and_counts():
    df, _ = simulate(n_units=300, seed=34)
    rel = (df["year"] - df["first_treat"]).to_numpy()
    outside = (df["first_treat"] > 0).to_numpy() & ((rel < -3) | (rel > 3))
    r = sunab.fit(df, spec("y", event_window=[-3, 3]))
    assert r.meta["dropped"]["outside_event_window"] == int(outside.sum())
    assert r.tidy["event_time"].dropna().between(-3, 3).all()


def test_mpdta_stored_pyfixest_reference():
    """Stored pyfixest 0.60 saturated event study (tests/reference/pyfixest_mpdta.json)."""
    from tests._did_sim import stored

    ref = stored("pyfixest_mpdta")
    r = sunab.fit(mpdta(), spec("lemp")).tidy
    dyn = r[r["aggregation"] == "dynamic"].set_index("event_time")
    for k, v in ref["sunab_dynamic"].items():  # 1e-10: same regression, balanced panel
        assert abs(dyn.loc[int(k), "estimate"] - v["estimate"]) < 1e-10
        assert abs(dyn.loc[int(k), "std_error"] - v["std_error"]) < 1e-10
    gt = r[r["aggregation"] == "gt"]
    assert len(gt) == len(ref["sunab_cells"])
    for row in gt.itertuples():
        v = ref["sunab_cells"][f"rel_time::{float(row.event_time)}:first_treated_period::{row.cohort}"]
        assert abs(row.estimate - v["estimate"]) < 1e-10 and abs(row.std_error - v["std_error"]) < 1e-10


@pytest.mark.parametrize(
    "kw,opts",
    [
        ({"unbalanced": 0.15}, {}),
        ({"unbalanced": 0.15}, {"covariates": ["x"]}),
        ({"never_share": 0.0, "cohorts": (2012, 2014, 2017)}, {"control_cohort": "last", "control_group": "notyettreated"}),
        ({}, {"event_window": [-3, 3]}),
    ],
)
def test_exact_solver_equals_pyfixest_dummies(kw, opts):
    """The dummy-free exact solver (default) against pyfixest feols with explicit cell
    dummies: points and clustered SEs to 1e-10 (pyfixest demeaning tolerance 1e-10)."""
    df, _ = simulate(n_units=250, seed=35, **kw)
    a = sunab.fit(df, spec("y", **opts))
    b = sunab.fit(df, spec("y", solver="pyfixest", **opts))
    np.testing.assert_allclose(a.tidy["estimate"], b.tidy["estimate"], rtol=0, atol=1e-10)
    np.testing.assert_allclose(a.tidy["std_error"], b.tidy["std_error"], rtol=0, atol=1e-10)
    assert a.meta["dropped"] == b.meta["dropped"]
