"""PPML DiD (models.counts.ppml), separation checks and the log-zero screen.

References: pyfixest fepois (same backend, wiring check) and an independent statsmodels
GLM Poisson with explicit firm and year dummies on the same sample; recovery of a known
percentage effect on simulated counts.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from models import registry
from models.counts import ppml
from models.counts.separation import drop_all_zero_groups, relu_separated
from models.counts.zeros import log_zero_check
from models.errors import BadInputError
from models.spec import EstimatorSpec
from models.vcov import VcovSpec


def sim_counts(n_firms=300, n_years=8, effect=1.3, seed=1, n_all_zero=20, base=-0.5):
    """Staggered adoption; E[y] = exp(a_i + l_t) * effect^{D_it}; first n_all_zero firms
    forced to zero in every year (never exporters)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(n_firms), n_years)
    yr = np.tile(np.arange(2010, 2010 + n_years), n_firms)
    g = rng.choice([0, 2013, 2015], n_firms, p=[0.5, 0.25, 0.25])
    gi = g[ids]
    a = rng.normal(base, 1.0, n_firms)[ids] + 0.3 * (gi > 0)
    D = (gi > 0) & (yr >= gi)
    mu0 = np.exp(a + 0.05 * (yr - 2010))
    mu = mu0 * np.where(D, effect, 1.0)
    y = rng.poisson(mu).astype(float)
    y[ids < n_all_zero] = 0.0
    return pd.DataFrame({"firm_id": [f"F{i:04d}" for i in ids], "year": yr, "first_treat": gi, "patents": y})


@pytest.fixture(scope="module")
def panel():
    return sim_counts()


def test_registry_and_options():
    mod = registry.get("ppml")
    assert mod is ppml
    assert set(mod.OPTIONS) == {"dynamic", "ref_period", "window", "separation"}


def test_all_zero_firms_dropped_and_counted(panel):
    res = ppml.fit(panel, EstimatorSpec(yname="patents"))
    zero_firms = panel.groupby("firm_id")["patents"].sum().eq(0)
    n_rows = int(panel["firm_id"].isin(zero_firms[zero_firms].index).sum())
    assert res.meta["dropped"]["all_zero_outcome"] == n_rows
    assert res.meta["separation"]["all_zero_outcome_units"] == int(zero_firms.sum())
    assert res.meta["n_obs"] == len(panel) - n_rows
    assert res.meta["n_units"] == panel["firm_id"].nunique() - int(zero_firms.sum())


def test_equals_pyfixest_fepois(panel):
    import pyfixest as pf

    res = ppml.fit(panel, EstimatorSpec(yname="patents"))
    keep = panel.groupby("firm_id")["patents"].transform("sum") > 0
    d = panel.loc[keep].copy()
    d["D"] = ((d.first_treat > 0) & (d.year >= d.first_treat)).astype(float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        f = pf.fepois("patents ~ D | firm_id + year", data=d, vcov={"CRV1": "firm_id"}, iwls_tol=1e-12, fixef_tol=1e-12)
    row = res.tidy.query("aggregation == 'static' and term == 'post'").iloc[0]
    # same backend and sample: agreement to optimiser tolerance
    assert abs(row.estimate - f.coef().iloc[0]) < 1e-8
    assert abs(row.std_error - f.se().iloc[0]) < 1e-8


def test_equals_statsmodels_glm_with_dummies():
    """Independent computation: GLM Poisson with explicit firm and year dummies on the same
    sample (all-zero firms removed, as the estimator does)."""
    import statsmodels.api as sm

    small = sim_counts(n_firms=60, n_years=6, seed=7, n_all_zero=5)
    res = ppml.fit(small, EstimatorSpec(yname="patents", vcov=VcovSpec(kind="iid", by=())))
    keep = small.groupby("firm_id")["patents"].transform("sum") > 0
    d = small.loc[keep].reset_index(drop=True)
    D = ((d.first_treat > 0) & (d.year >= d.first_treat)).astype(float).rename("D")
    X = pd.concat([D, pd.get_dummies(d.firm_id, dtype=float), pd.get_dummies(d.year, drop_first=True, dtype=float)], axis=1)
    glm = sm.GLM(d.patents, X, family=sm.families.Poisson()).fit(tol=1e-14, maxiter=200)
    row = res.tidy.query("aggregation == 'static' and term == 'post'").iloc[0]
    assert res.meta["dropped"]["all_zero_outcome"] == int((~keep).sum())
    # both solve the same score equations to ~1e-12; 1e-8 leaves room for conditioning
    assert abs(row.estimate - glm.params["D"]) < 1e-8
    # (SEs are not compared: pyfixest's iid Poisson vcov carries a small-sample factor
    # that statsmodels' inverse Fisher information does not.)


def test_pct_row_is_delta_method(panel):
    res = ppml.fit(panel, EstimatorSpec(yname="patents"))
    post = res.tidy.query("term == 'post' and aggregation == 'static'").iloc[0]
    pct = res.tidy.query("term == 'pct' and aggregation == 'static'").iloc[0]
    assert pct.estimate == pytest.approx(np.expm1(post.estimate), rel=1e-12)
    assert pct.std_error == pytest.approx(np.exp(post.estimate) * post.std_error, rel=1e-12)


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_recovers_percentage_effect(seed):
    """True proportional effect +30 %: estimate within 3.5 SE (false-failure rate < 0.1 % per seed)."""
    d = sim_counts(n_firms=2000, n_years=8, effect=1.3, seed=seed, n_all_zero=100)
    res = ppml.fit(d, EstimatorSpec(yname="patents"))
    pct = res.tidy.query("term == 'pct' and aggregation == 'static'").iloc[0]
    assert abs(pct.estimate - 0.3) < 3.5 * pct.std_error
    assert pct.std_error < 0.06  # informative


def test_dynamic_separated_event_time_detected():
    """An event time whose treated observations are all zero is separated: its rows are
    dropped (counted) and the remaining event times estimated."""
    d = sim_counts(n_firms=400, n_years=8, seed=3, n_all_zero=0, base=0.5)
    rel = np.where(d.first_treat > 0, d.year - d.first_treat, np.nan)
    sep_rows = rel == 4  # only cohort 2013 reaches e = 4 (year 2017)
    d.loc[sep_rows, "patents"] = 0.0
    res = ppml.fit(d, EstimatorSpec(yname="patents", options={"dynamic": True}))
    dyn = res.meta["dynamic"]
    firm_pos = d.groupby("firm_id")["patents"].transform("sum").to_numpy() > 0
    # rows of firms that became all-zero are removed earlier, as all_zero_outcome
    assert dyn["dropped"].get("separated", 0) == int((sep_rows & firm_pos).sum()) > 0
    ets = res.tidy.query("aggregation == 'dynamic' and term == 'post'").event_time.tolist()
    assert 4 not in ets and -1 not in ets and 0 in ets
    assert res.meta["pretrend"]["df"] == len([e for e in ets if e < -1])
    assert 0 <= res.meta["pretrend"]["p_value"] <= 1


def test_relu_finds_textbook_separation():
    # x = 1 only where y = 0: the coefficient on x diverges to -inf; those rows are separated
    y = np.array([0, 0, 1, 2, 0, 3, 1, 0], float)
    x = np.array([1, 1, 0, 0, 0, 0, 0, 0], float)
    fe = [np.zeros(8, dtype=np.int64)]
    assert relu_separated(y, x[:, None], fe).tolist() == [True, True] + [False] * 6
    # no separation when x = 1 also on a positive row
    x2 = x.copy()
    x2[2] = 1
    assert not relu_separated(y, x2[:, None], fe).any()


def test_drop_all_zero_groups_iterates():
    y = np.array([0, 0, 1, 0, 2, 0], float)
    unit = np.array([0, 0, 1, 1, 2, 2])
    time = np.array([0, 1, 0, 1, 0, 1])
    m = drop_all_zero_groups(y, {"u": unit, "t": time})
    assert m["u"].tolist() == [True, True, False, False, False, False]
    assert m["t"].tolist() == [False, False, False, True, False, True]


def test_bad_input_negative_outcome(panel):
    d = panel.copy()
    d.loc[3, "patents"] = -1.0
    with pytest.raises(BadInputError, match="negative"):
        ppml.fit(d, EstimatorSpec(yname="patents"))


@pytest.mark.parametrize(
    "y, status",
    [([1, 2, 3], "ok"), ([0] + [1] * 99, "flag"), ([0, 0, 1, 5], "refuse"), ([-1, 2], "refuse")],
)
def test_log_zero_check(y, status):
    out = log_zero_check(y)
    assert out["status"] == status
    assert isinstance(out["sentence"], str) and len(out["sentence"]) > 20
    if status == "flag":
        assert "Chen and Roth" in out["sentence"]


@pytest.mark.parametrize("opts", [{"window": [0, 3]}, {"dynamic": "yes"}, {"separation": "none"}])
def test_bad_options_are_config_errors(panel, opts):
    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="estimate.ppml"):
        ppml.fit(panel, EstimatorSpec(yname="patents", options=opts))


def test_dynamic_window_bins_endpoints(panel):
    res = ppml.fit(panel, EstimatorSpec(yname="patents", options={"dynamic": True, "window": [-3, 2]}))
    ets = sorted(res.tidy.query("aggregation == 'dynamic' and term == 'post'").event_time.tolist())
    assert ets == [-3, -2, 0, 1, 2]
