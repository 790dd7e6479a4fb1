"""Local-projections difference-in-differences (LP-DiD) of Dube, Girardi, Jordà & Taylor
(2023, NBER WP 31184, "A Local Projections Approach to Difference-in-Differences Event
Studies"); registry key ``lpdid``.

For each horizon :math:`h = 0, ..., H` one regression

.. math::  y_{i,t+h} - y_{i,t-1} = \\beta_h\\, \\Delta D_{it} + \\delta^h_t + e^h_{it}

on the sample of *newly treated* observations (:math:`\\Delta D_{it} = 1`, i.e. :math:`t = g_i`)
and *clean controls*: with ``control_group: notyettreated`` every observation still untreated
at :math:`t+h` (:math:`D_{i,t+h} = 0`: never members and not-yet-treated firms, DGJT's
default), with ``nevertreated`` never members only. Already-treated firms never serve as
controls, so :math:`\\beta_h` is a variance-weighted average of cohort effects at horizon h
without the "forbidden comparisons" of TWFE (DGJT, section 3). Pre-treatment horizons
:math:`h = -2, ..., -K` (placebos; :math:`h=-1` is the reference) regress
:math:`y_{i,t+h} - y_{i,t-1}` on :math:`\\Delta D_{it}` with clean controls untreated at
:math:`t` (pyfixest's convention). ``simple`` (option ``pooled``): the pooled
post-treatment effect, the outcome :math:`\\frac{1}{H+1}\\sum_{k=0}^{H} y_{i,t+k} - y_{i,t-1}`
with clean controls untreated at :math:`t+H` (DGJT eq. 6; pyfixest ``lpdid(att=True)``).

The unit effect is differenced out; :math:`\\delta^h_t` are period effects, and the fixed
effects of ``estimate.fixed_effects`` beyond firm and year (e.g. ``region^year``) are
absorbed as well (DGJT's :math:`\\delta_t` generalised to region-specific shocks). Leads and
lags are taken by calendar period (``year + h``), not by row, so gaps in a firm's years give
a missing difference rather than a wrong one. ``estimate.covariates`` enter every horizon's
regression at their period-t values (as pyfixest's ``xfml``). Regression-weighted: the equally weighted
("reweighted") LP-DiD and pre-mean-differenced outcomes of DGJT section 4 are not
implemented. Singletons of the absorbed effects are removed in each horizon's sample (as
pyfixest's default); each horizon's ``n_obs`` counts the rest.

Standard errors: each horizon's own OLS, ``spec.vcov`` through pyfixest (iid, hetero,
cluster CRV1, twoway); firm-clustered by default, as pyfixest's ``lpdid`` (its default
``{"CRV1": idname}``). The horizons are separate regressions, so there is no joint vcov:
no ``vcov_dynamic`` table, and ``meta["pretrend"]`` is a Bonferroni test over the placebo
horizons (min p times their number), said so in its ``method``.

Outputs: ``dynamic`` rows ``rel_time::h`` (``event_time = h``, ``n_obs`` the horizon's sample,
``n_treated`` its newly treated firms), and with ``pooled`` one ``simple`` row ``ATT``.
Checked against pyfixest 0.60 ``lpdid`` on mpdta (1e-10) and on simulated dynamic effects
(tests/test_lpdid.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import options as _opt
from models.errors import DesignError
from models.result import EstimationResult

from . import _panel
from ._pyfixest import feols_fe

OPTIONS: dict = {"pre_window": None, "post_window": None, "pooled": True}
RULES: dict = {
    "pre_window": _opt.integer(2, null=True, note="placebo horizons -2..-pre_window; null: all observed"),
    "post_window": _opt.integer(0, null=True, note="horizons 0..post_window; null: all observed"),
    "pooled": _opt.boolean(),
}
NAME = "lpdid"
REF = -1
SUPPORTED_VCOV = ("iid", "hetero", "cluster", "twoway")
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)


def _grid(df: pd.DataFrame, col: str, n_units: int, t0: int, span: int) -> np.ndarray:
    """(units, periods) array of ``col`` by unit code and calendar period, NaN where unobserved."""
    out = np.full((n_units, span), np.nan)
    out[df["_unit"].to_numpy(), (df["_t"] - t0).to_numpy()] = df[col].to_numpy(dtype=float)
    return out


def _shift(grid: np.ndarray, u: np.ndarray, c: np.ndarray, h: int) -> np.ndarray:
    """grid[u, c + h] for each row, NaN outside the calendar."""
    cc = c + h
    ok = (cc >= 0) & (cc < grid.shape[1])
    out = np.full(u.size, np.nan)
    out[ok] = grid[u[ok], cc[ok]]
    return out


def _drop_singletons(d: pd.DataFrame, fe: tuple[str, ...]) -> pd.DataFrame:
    while True:
        keep = np.ones(len(d), dtype=bool)
        for c in fe:
            keep &= d.groupby(c, sort=False)[c].transform("size").to_numpy() > 1
        if keep.all() or not len(d):
            return d
        d = d.loc[keep]


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    """LP-DiD event study (and pooled ATT); see the module docstring."""
    _opt.require(validate_options(spec.options), f"estimate.{NAME}")
    spec.vcov.require(NAME, SUPPORTED_VCOV)
    opts = {**OPTIONS, **(spec.options or {})}
    panel = _panel.prepare(data, spec, NAME)
    _panel.require_controls(panel, spec, NAME)
    df = panel.df
    t0 = int(df["_t"].min())
    span = int(df["_t"].max()) - t0 + 1
    U = int(df["_unit"].max()) + 1
    Y, D = _grid(df, "_y", U, t0, span), _grid(df, "_D", U, t0, span)
    u, c = df["_unit"].to_numpy(), (df["_t"] - t0).to_numpy()
    y_lag = _shift(Y, u, c, -1)
    dD = df["_D"].to_numpy() - _shift(D, u, c, -1)  # NaN where t-1 is unobserved
    newly = dD == 1
    never = (df["_g"] == 0).to_numpy()
    if not newly.any():
        raise DesignError(f"{NAME}: no firm is observed in the period before its first treated period (t = g - 1), "
                          "so there is no newly treated observation to project from")
    rel = df["_rel"].to_numpy()
    tr = np.isfinite(rel)
    h_post = int(np.nanmax(rel[tr])) if opts["post_window"] is None else int(opts["post_window"])
    h_pre = int(-np.nanmin(rel[tr])) if opts["pre_window"] is None else int(opts["pre_window"])
    fe = ("_time", *panel.fe_cols)
    vcov = panel.vcov_spec(spec.vcov)
    base = df[["_id", "_time", *panel.covariates, *panel.fe_cols, *panel.cluster_cols]]

    def clean(untreated_at: np.ndarray) -> np.ndarray:
        return never.copy() if spec.control_group == "nevertreated" else untreated_at == 0

    def one(dy: np.ndarray, controls: np.ndarray):
        sel = (newly | controls) & np.isfinite(dy) & np.isfinite(dD)
        d = base.loc[sel].assign(_dy=dy[sel], _dD=dD[sel])
        d = _drop_singletons(d, fe)
        if not (d["_dD"] == 1).any() or (d["_dD"] == 1).all():
            return None
        why = "no newly treated or no clean control observation varies within the absorbed effects"
        res = feols_fe(d.reset_index(drop=True), "_dy", ["_dD", *panel.covariates], vcov, NAME, fe=fe, why_collinear=why)
        return float(res.beta[0]), float(res.vcov[0, 0]), len(d), int(d.loc[d["_dD"] == 1, "_id"].nunique())

    fits: list[tuple[int, tuple]] = []
    skipped: list[int] = []
    for h in [*range(-h_pre, REF), *range(0, h_post + 1)]:
        if h >= 0:
            r = one(_shift(Y, u, c, h) - y_lag, clean(_shift(D, u, c, h)))
        else:
            r = one(_shift(Y, u, c, h) - y_lag, clean(df["_D"].to_numpy()))
        (fits.append((h, r)) if r is not None else skipped.append(h))
    if not any(h >= 0 for h, _ in fits):
        raise DesignError(f"{NAME}: no horizon h >= 0 has both newly treated and clean control observations")
    hs = [h for h, _ in fits]
    beta = np.array([r[0] for _, r in fits])
    V = np.diag([r[1] for _, r in fits])
    rows = _panel.tidy_rows("dynamic", [f"rel_time::{h}" for h in hs], beta, V, spec.alpha,
                            [{"event_time": h, "n_obs": r[2], "n_treated": r[3]} for h, r in fits])
    if opts["pooled"]:
        lead_mean = np.mean([_shift(Y, u, c, k) for k in range(h_post + 1)], axis=0)  # NaN if any is missing
        r = one(lead_mean - y_lag, clean(_shift(D, u, c, h_post)))
        if r is None:
            raise DesignError(f"{NAME}: the pooled effect over horizons 0..{h_post} has no newly treated or no clean "
                              f"control observation; set estimate.{NAME}.pooled: false or a shorter post_window")
        rows = _panel.tidy_rows("simple", ["ATT"], np.array([r[0]]), np.array([[r[1]]]), spec.alpha,
                                [{"n_obs": r[2], "n_treated": r[3]}]) + rows
    meta = _panel.base_meta(
        panel,
        spec,
        formula=f"y[t+h] - y[t-1] ~ dD | {' + '.join([spec.tname, *panel.fe_terms])}",
        horizons=[int(h) for h in hs],
        horizons_without_sample=skipped,
        pre_window=h_pre,
        post_window=h_post,
        pooled=bool(opts["pooled"]),
        clean_controls=("never members only" if spec.control_group == "nevertreated"
                        else "never members and firms not yet treated at t+h (t for placebo horizons)"),
        reference_period=REF,
        pretrend=_bonferroni(beta, np.sqrt(np.diag(V)), hs),
        weights="regression (variance) weights across cohorts; the reweighted LP-DiD is not implemented",
        inference="normal",
    )
    return EstimationResult(estimator=NAME, outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta)


def _bonferroni(beta, se, hs) -> dict:
    from scipy import stats

    leads = [j for j, h in enumerate(hs) if h < REF]
    if not leads:
        return {"statistic": None, "df": 0, "p_value": None, "note": "no placebo horizons"}
    p = 2 * stats.norm.sf(np.abs(beta[leads] / se[leads]))
    return {
        "statistic": float(np.max(np.abs(beta[leads] / se[leads]))),
        "df": len(leads),
        "p_value": float(min(1.0, p.min() * len(leads))),
        "leads": [int(hs[j]) for j in leads],
        "method": "Bonferroni over the placebo horizons (separate regressions: no joint vcov for a Wald test)",
    }
