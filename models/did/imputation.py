"""Imputation DiD estimator of Borusyak, Jaravel & Spiess (2024, Review of Economic
Studies, "Revisiting Event-Study Designs: Robust and Efficient Estimation").

1. Fit :math:`y_{it}(0) = \\alpha_i + \\lambda_t + x_{it}'\\gamma` by OLS on the untreated
   observations :math:`\\Omega_0`: never members and members' periods with
   :math:`t - g_i < -\\text{anticipation}` (BJS's Theorem 2, step 1). This always uses all
   untreated observations (never and not-yet-treated): unit effects of members are only
   identified by their own pre-periods, so there is no never-only variant; with
   ``control_group: nevertreated`` never members must exist (else DesignError).
2. Impute :math:`\\hat\\tau_{it} = y_{it} - \\hat y_{it}(0)` for treated observations
   :math:`\\Omega_1` (those whose unit and period appear in :math:`\\Omega_0`; others are
   dropped and counted as ``not_imputable``).
3. Average: ``simple`` ATT = mean of :math:`\\hat\\tau_{it}` over observations with
   :math:`t \\ge g_i` (BJS's equally weighted ATT); ``dynamic`` = mean at each horizon
   :math:`h = t - g_i` (option ``horizons`` = [lo, hi] limits them, default all);
   ``group`` = mean over each cohort's post-treatment observations.

Standard errors (option ``se``): ``"gardner"`` (default) = Gardner's (2021) GMM
two-stage sandwich (exactly R ``did2s`` / pyfixest ``did2s``), clustered by ``vcov.by``
(``cluster``) or by observation (``hetero``); see :mod:`._twostage`. ``"bjs"`` = BJS's
conservative estimator (Theorem 3): the same influence form
:math:`\\sum_c (\\sum_{it\\in c} v_{it}\\tilde\\varepsilon_{it})^2` but with the treated
residual :math:`\\tilde\\varepsilon_{it} = \\hat\\tau_{it} - \\bar\\tau_{g,e}` (mean of
the imputed effects in the observation's cohort x event-time cell, did_imputation's
default ``avgeffectsby``) instead of the deviation from the target estimate; without
the leave-out correction of their Appendix A.6 (not implemented). The two coincide when
a target holds a single cohort x event-time cell (tested) and differ when effects
vary across the cells of a target (no general ordering). BJS's formula is implemented
from the paper; it has not been checked against Stata ``did_imputation``. Point estimates equal
:mod:`models.did.did2s` (Gardner's two-stage regression) exactly.

Pre-trends (BJS Test 1, Section 4.4): on :math:`\\Omega_0` only, regress
:math:`y` on unit and period effects (and covariates) plus lead indicators
:math:`1\\{t - g_i = k\\}`, :math:`k = -1-a, ..., -a-K` (``pretrend_leads`` = K), and test
them jointly (chi2 Wald with the ``vcov`` clustering). The lead coefficients are reported
as ``dynamic`` rows with negative ``event_time`` (as Stata ``did_imputation``'s ``pre#``).

Fixed effects beyond firm and year (``estimate.fixed_effects``, e.g. ``sector^year``) enter the
untreated-outcome model of step 1 (and the GMM variance's first stage) as dummy blocks of the
exact solver (:class:`._fe.TwoWayFE`); a treated observation is imputed when its counterfactual
is an estimable function of the untreated observations (every level of its effects seen untreated,
and :meth:`._fe.TwoWayFE.estimable`); the others are dropped and counted as ``not_imputable``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import options as _opt
from models.errors import DesignError
from models.result import EstimationResult

from . import _panel, _twostage
from ._pyfixest import feols_fe

OPTIONS: dict = {"anticipation": 0, "horizons": None, "pretrend_leads": 3, "se": "gardner"}
TWOSTAGE_OPTIONS = ("anticipation", "horizons", "pretrend_leads")  # shared with did2s
NAME = "imputation"


RULES: dict = {
    "anticipation": _opt.integer(0),
    "horizons": _opt.int_pair(null=True),
    "pretrend_leads": _opt.integer(0, null=True),
    "se": _opt.choice("gardner", "bjs"),
}
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)


def _options(spec, name):
    if name == NAME:
        problems = validate_options(spec.options)
    else:
        from . import did2s

        problems = did2s.validate_options(spec.options)
    _opt.require(problems, f"estimate.{name}")
    return {**OPTIONS, **(spec.options or {})}


_rows = _panel.tidy_rows


def pretrend(panel, untreated, spec, a: int, K: int, name: str):
    """BJS Test 1 on the untreated observations. Returns (test dict, rows)."""
    if K <= 0:
        return {"statistic": None, "df": 0, "p_value": None, "note": "pretrend_leads = 0"}, []
    df = panel.df.loc[untreated].reset_index(drop=True)
    rel = df["_rel"].to_numpy()
    leads = [k for k in range(-a - 1, -a - K - 1, -1) if np.any(rel == k)]
    if not leads:
        return {"statistic": None, "df": 0, "p_value": None, "note": "no pre-treatment observations of members"}, []
    cols = [f"_lead{-k}" for k in leads]
    D = _panel.event_dummies(rel, leads)
    df = pd.concat([df, pd.DataFrame(D, columns=cols, index=df.index)], axis=1)
    try:
        res = feols_fe(df, "_y", cols + panel.covariates, panel.vcov_spec(spec.vcov), name, fe=panel.fe)
    except DesignError as exc:
        return {"statistic": None, "df": len(leads), "p_value": None, "note": str(exc)}, []
    m = len(leads)
    beta, V = res.beta[:m], res.vcov[:m, :m]
    test = _panel.pretrend_test(beta, V, leads, ref=0)  # every lead here is tested
    test["method"] = "BJS (2024) Test 1: leads regression on untreated observations"
    ntr = _panel.n_treated_by(df, "_rel")
    extra = [
        {"event_time": k, "n_obs": int((rel == k).sum()), "n_treated": int(ntr.get(float(k), 0))} for k in leads
    ]
    return test, _rows("dynamic", [f"rel_time::{k}" for k in leads], beta, V, spec.alpha, extra)


def estimate(data: pd.DataFrame, spec, name: str = NAME, regression: bool = False) -> EstimationResult:
    """Shared by imputation (weighted means of tau_it) and did2s (``regression=True``:
    Gardner's second-stage OLS of the stage-1 residual on the treatment indicators)."""
    opts = _options(spec, name)
    spec.vcov.require(name, _twostage.SUPPORTED_VCOV)
    panel = _panel.prepare(data, spec, name)
    _panel.require_controls(panel, spec, name)
    a = int(opts["anticipation"])
    fe, u1, untreated = _twostage.stage_one(panel, a, name)
    df = panel.df
    clusters = _twostage.cluster_codes(panel, spec.vcov, name)
    rel = df["_rel"].to_numpy()
    g = df["_g"].to_numpy()
    post = np.isfinite(rel) & (rel >= 0) & ~untreated

    # BJS (2024, Thm 3) treated residuals: tau_it minus its cohort x event-time cell mean
    cell = pd.Series(u1).groupby([g, np.nan_to_num(rel, nan=-10**6)]).transform("mean").to_numpy()
    u2_bjs = np.where(untreated, u1, u1 - cell)

    def second_stage(X2):
        X2 = np.asarray(X2, dtype=float)
        if regression:
            beta = np.linalg.lstsq(X2, u1, rcond=None)[0]
        else:  # imputation: weighted (here equal-weight) means of tau over each target set
            beta = (X2 * u1[:, None]).sum(axis=0) / X2.sum(axis=0)
        u2 = u1 - X2 @ beta if opts["se"] == "gardner" else u2_bjs
        V = _twostage.gmm_vcov(fe, X2, u1, u2, untreated, clusters)
        return beta, V

    rows = []
    ids = df["_id"].to_numpy()
    # simple ATT
    b, V = second_stage(post[:, None].astype(float))
    rows += _rows(
        "simple", ["ATT"], b, V, spec.alpha, [{"n_obs": int(post.sum()), "n_treated": int(pd.unique(ids[post]).size)}]
    )
    # dynamic
    horizons = _twostage.select_horizons(rel, untreated, opts["horizons"])
    if not horizons:
        raise DesignError(f"{name}: no treated observations within horizons {opts['horizons']}")
    X2 = _twostage.horizon_design(np.where(untreated, np.nan, rel), horizons)
    bd, Vd = second_stage(X2)
    ntr = _panel.n_treated_by(df.loc[~untreated], "_rel")
    extra = [
        {"event_time": h, "n_obs": int(X2[:, j].sum()), "n_treated": int(ntr.get(float(h), 0))}
        for j, h in enumerate(horizons)
    ]
    test, lead_rows = pretrend(panel, untreated, spec, a, int(opts["pretrend_leads"] or 0), name)
    rows += lead_rows
    rows += _rows("dynamic", [f"rel_time::{h}" for h in horizons], bd, Vd, spec.alpha, extra)
    # group (cohort) ATTs
    cohorts = sorted(int(c) for c in np.unique(g[post]))
    Xg = (post[:, None] & (g[:, None] == np.asarray(cohorts)[None, :])).astype(float)
    bg, Vg = second_stage(Xg)
    extra = [
        {"cohort": c, "n_obs": int(Xg[:, j].sum()), "n_treated": int(pd.unique(ids[Xg[:, j] > 0]).size)}
        for j, c in enumerate(cohorts)
    ]
    rows += _rows("group", [f"cohort::{c}" for c in cohorts], bg, Vg, spec.alpha, extra)

    vc = pd.DataFrame(Vd, index=pd.Index(horizons, name="event_time"), columns=pd.Index(horizons, name="event_time"))
    meta = _panel.base_meta(
        panel,
        spec,
        comparison="all untreated observations (never members and not-yet-treated periods), BJS (2024)",
        anticipation=a,
        n_untreated_obs=int(untreated.sum()),
        n_treated_obs=int((~untreated).sum()),
        pretrend=test,
        se_method=(
            "Gardner (2021) GMM two-stage sandwich (as R did2s / pyfixest did2s), no small-sample factor"
            if opts["se"] == "gardner"
            else "BJS (2024) Theorem 3 conservative variance, cohort x event-time averages, no leave-out"
        ),
        inference="normal",
    )
    return EstimationResult(estimator=name, outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta, tables={"vcov_dynamic": vc})


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    return estimate(data, spec, NAME, regression=False)
