"""Poisson pseudo-maximum likelihood (PPML) difference-in-differences with firm and year
fixed effects (registry key ``ppml``).

Model (Santos Silva & Tenreyro 2006; Wooldridge 1999 for the FE Poisson QMLE):

.. math::  E[y_{it} \\mid \\alpha_i, \\lambda_t, D_{it}] = \\exp(\\alpha_i + \\lambda_t + \\beta D_{it})

with :math:`D_{it} = 1\\{g_i > 0, t \\ge g_i\\}` (the processed panel's ``post`` under
absorbing membership). Only the conditional mean needs to be right; ``y`` may be a count or
any non-negative amount (exports with many zeros). The percentage effect on the expected
outcome is :math:`\\exp(\\beta) - 1` with delta-method SE :math:`\\exp(\\beta)\\,se(\\beta)`.

With ``dynamic: true`` a second fit replaces :math:`D` by event-time dummies
:math:`1\\{t - g_i = e\\}` for :math:`e \\ne` ``ref_period`` (default -1), endpoints binned
at ``window`` when given, and the leads are tested jointly (chi-square Wald, ``pretrend``).

Tidy rows (document for the report):

* ``aggregation="static"``, ``term="post"``: :math:`\\beta` on the log scale;
* ``aggregation="static"``, ``term="pct"``: :math:`\\exp(\\beta)-1` (a proportion: 0.10 =
  +10 %), SE by the delta method, CI the delta-method interval (the exact transformed
  interval ``exp(ci) - 1`` is in ``meta["pct_ci_transformed"]``);
* with ``dynamic``: ``aggregation="dynamic"`` rows with ``term="post"`` and ``term="pct"``
  per ``event_time`` (the reference period is omitted).

Separation (Correia, Guimarães & Zylkin 2020): firms whose outcome is always zero are
dropped under firm FE (``meta["dropped"]["all_zero_outcome"]``, rows), years with no
positive outcome likewise (``all_zero_period``), then regressor separation is detected by
the iterative rectifier (:mod:`models.counts.separation`) and those rows dropped
(``separated``). ``meta["separation"]`` counts firms as well as rows.

Backend: pyfixest ``fepois`` (IRLS with tightened tolerances ``iwls_tol=1e-12``,
``fixef_tol=1e-12``; separation and singleton handling switched off there because it is
done, and counted, here). vcov: iid, hetero, cluster (fixest CRV1: G/(G-1) x (n-1)/(n-k)
with FE nested in the cluster not counted in k), twoway.

Fixed effects beyond firm and year (``estimate.fixed_effects``, e.g. ``sector^year``) are
absorbed by fepois as well, and their all-zero groups are dropped and counted
(``all_zero_fixed_effect:<term>``) before the separation check, which takes them too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from models import options as _opt
from models.errors import DesignError
from models.result import EstimationResult, normal_inference, tidy_frame
from models.spec import EstimatorSpec

from ._panel import CountPanel, prepare
from .separation import drop_all_zero_groups, relu_separated

OPTIONS: dict = {
    "dynamic": False,  # also fit event-time dummies (event study on the log scale)
    "ref_period": -1,  # omitted event time in the dynamic fit
    "window": None,  # [lo, hi]: bin event times below lo / above hi into the endpoints
    "separation": "relu",  # relu | fe_only : regressor-separation check after the FE check
}

RULES: dict = {
    "dynamic": _opt.boolean(),
    "ref_period": _opt.integer(note="an event time, default -1"),
    "window": _opt.int_pair(null=True),
    "separation": _opt.choice("relu", "fe_only"),
}


def _cross(o: dict, where: str) -> list[str]:
    w = o["window"]
    if w is not None and not w[0] < o["ref_period"] < w[1]:
        return [f"{where}.window: {w!r}; give [lo, hi] integers with lo < ref_period ({o['ref_period']}) < hi, or null"]
    return []


validate_options = _opt.validator(OPTIONS, RULES, _cross, name="ppml")
SUPPORTED_VCOV = ("iid", "hetero", "cluster", "twoway")
IWLS_TOL = 1e-12
FIXEF_TOL = 1e-12


def _event_dummies(df: pd.DataFrame, ref: int, window) -> tuple[pd.DataFrame, list[int]]:
    rel = df["_rel"].to_numpy()
    if window is not None:
        lo, hi = int(window[0]), int(window[1])
        rel = np.where(np.isnan(rel), np.nan, np.clip(rel, lo, hi))
    evs = sorted(int(e) for e in np.unique(rel[~np.isnan(rel)]) if int(e) != ref)
    cols = {}
    for e in evs:
        cols[_ev_name(e)] = (rel == e).astype(float)
    return pd.DataFrame(cols, index=df.index), evs


def _ev_name(e: int) -> str:
    return f"_ev_m{-e}" if e < 0 else f"_ev_p{e}"


def _groups(p: CountPanel) -> dict[str, np.ndarray]:
    """Fixed-effect groups whose all-zero outcome separates them (reason: codes)."""
    out = {"all_zero_outcome": p.df["_unit"].to_numpy(), "all_zero_period": p.df["_time"].to_numpy()}
    for c, term in zip(p.fe_cols, p.fe_terms):
        out[f"all_zero_fixed_effect:{term}"] = p.df[c].to_numpy()
    return out


def _separate(p: CountPanel, xcols: list[str], method: str) -> dict:
    """Drop FE-separated groups then regressor-separated rows; return counts."""
    df = p.df
    n_units0 = df["_id"].nunique()
    masks = drop_all_zero_groups(df["_y"].to_numpy(), _groups(p))
    info = {"all_zero_outcome_units": int(df.loc[masks["all_zero_outcome"], "_id"].nunique())}
    for reason, m in masks.items():
        p.drop(~m, reason)
    p.recode()
    sep_rows = 0
    if method == "relu" and len(p.df):
        X = p.df[xcols].to_numpy(dtype=float) if xcols else None
        sep = relu_separated(p.df["_y"].to_numpy(), X, [p.df[c].to_numpy() for c in ("_unit", "_time", *p.fe_cols)])
        sep_rows = int(sep.sum())
        info["separated_units"] = int(p.df.loc[sep, "_id"].nunique())
        p.drop(~sep, "separated")
        if sep_rows:
            # dropping separated rows can leave new all-zero groups
            masks = drop_all_zero_groups(p.df["_y"].to_numpy(), _groups(p))
            for reason, m in masks.items():
                p.drop(~m, reason)
        p.recode()
    info["separated_rows"] = sep_rows
    info["units_dropped"] = int(n_units0 - p.df["_id"].nunique())
    return info


def fepois_fit(df: pd.DataFrame, xcols: list[str], spec: EstimatorSpec, cluster_cols: list[str],
               fe: tuple[str, ...] = ("_unit", "_time")):
    """Fit y ~ xcols | fe by pyfixest fepois (``fe``: internal code columns, never user
    strings); return (beta, vcov, n_obs) as numpy."""
    import pyfixest as pf

    from models.vcov import VcovSpec

    vc = VcovSpec(kind=spec.vcov.kind, by=tuple(cluster_cols)).to_pyfixest("ppml")
    cols = list(dict.fromkeys(["_y", *xcols, *fe, *cluster_cols]))
    fml = f"_y ~ {' + '.join(xcols)} | {' + '.join(fe)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = pf.fepois(
            fml,
            data=df[cols],
            vcov=vc,
            fixef_rm="none",
            separation_check=[],
            iwls_tol=IWLS_TOL,
            iwls_maxiter=200,
            fixef_tol=FIXEF_TOL,
            fixef_maxiter=100_000,
            copy_data=False,
            store_data=False,
        )
    names = [str(n) for n in fit._coefnames]
    dropped = [c for c in xcols if c not in names]
    if dropped:
        raise DesignError(
            f"ppml: regressor(s) {dropped} are collinear with the firm and year fixed effects "
            "(e.g. every firm treated in the same year, or an event time observed for one cohort only)."
        )
    order = [names.index(c) for c in xcols]
    beta = np.asarray(fit._beta_hat, dtype=float)[order]
    V = np.asarray(fit._vcov, dtype=float)[np.ix_(order, order)]
    return beta, V, int(fit._N)


def pct_effect(beta, se):
    """exp(b) - 1 and its delta-method SE exp(b) * se(b)."""
    beta = np.asarray(beta, float)
    return np.expm1(beta), np.exp(beta) * np.asarray(se, float)


def _rows(agg: str, beta, se, alpha, event_times=None, n_obs=None, n_treated=None):
    rows = []
    stat, p, lo, hi = normal_inference(beta, se, alpha)
    pb, pse = pct_effect(beta, se)
    pstat, pp, plo, phi = normal_inference(pb, pse, alpha)
    for j in range(len(beta)):
        e = None if event_times is None else event_times[j]
        nt = n_treated if not isinstance(n_treated, (list, np.ndarray)) else n_treated[j]
        base = {"aggregation": agg, "event_time": e, "n_obs": n_obs, "n_treated": nt}
        rows.append({**base, "term": "post", "estimate": beta[j], "std_error": se[j], "statistic": stat[j], "p_value": p[j], "conf_low": lo[j], "conf_high": hi[j]})
        rows.append({**base, "term": "pct", "estimate": pb[j], "std_error": pse[j], "statistic": pstat[j], "p_value": pp[j], "conf_low": plo[j], "conf_high": phi[j]})
    return rows


def fit(data: pd.DataFrame, spec: EstimatorSpec) -> EstimationResult:
    """PPML DiD with firm and year FE; see the module docstring."""
    from scipy import stats

    spec.vcov.require("ppml", SUPPORTED_VCOV)
    _opt.require(validate_options(spec.options), "estimate.ppml")
    opts = {**OPTIONS, **(spec.options or {})}
    p = prepare(data, spec, "ppml")
    if (p.df["_D"] > 0).sum() == 0:
        raise DesignError("ppml: no treated firm-years (first_treat > 0 and year >= first_treat) in the sample.")
    sep_info = _separate(p, ["_D"], opts["separation"])
    df = p.df
    if len(df) == 0 or df["_D"].sum() == 0 or df["_D"].sum() == len(df):
        raise DesignError(
            f"ppml: after dropping separated observations ({p.dropped}) no variation in treatment remains; "
            "the outcome is zero for all treated (or all control) firms."
        )
    fe = ("_unit", "_time", *p.fe_cols)
    beta, V, n_obs = fepois_fit(df, ["_D"], spec, p.cluster_cols, fe)
    se = np.sqrt(np.diag(V))
    n_tr = int(df.loc[df["_D"] > 0, "_id"].nunique())
    rows = _rows("static", beta, se, spec.alpha, n_obs=n_obs, n_treated=n_tr)
    z = stats.norm.ppf(1 - spec.alpha / 2)
    meta = {
        **p.counts(),
        "vcov": spec.vcov.label(),
        "control_group": "implicit TWFE (never and not-yet treated firms)",
        "dropped": dict(p.dropped),
        "separation": sep_info,
        "spec": spec.to_dict(),
        "pct_ci_transformed": [float(np.expm1(beta[0] - z * se[0])), float(np.expm1(beta[0] + z * se[0]))],
        "backend": "pyfixest.fepois",
        **({"fixed_effects": [spec.idname, spec.tname, *p.fe_terms]} if p.fe_terms else {}),
        "scale": {"post": "log (coefficient)", "pct": "exp(b)-1, proportion"},
    }
    if opts["dynamic"]:
        ref = int(opts["ref_period"])
        dyn = p.df.copy()
        ev, evs = _event_dummies(dyn, ref, opts["window"])
        dyn = pd.concat([dyn, ev], axis=1)
        xcols = list(ev.columns)
        pd_ = CountPanel(df=dyn, cluster_cols=p.cluster_cols, fe_cols=p.fe_cols, fe_terms=p.fe_terms)
        dyn_info = _separate(pd_, xcols, opts["separation"])
        keep = [c for c, e in zip(xcols, evs) if pd_.df[c].sum() > 0]
        evs = [e for c, e in zip(xcols, evs) if c in keep]
        b2, V2, n2 = fepois_fit(pd_.df, keep, spec, pd_.cluster_cols, fe)
        se2 = np.sqrt(np.diag(V2))
        ntr = [int(pd_.df.loc[pd_.df[c] > 0, "_id"].nunique()) for c in keep]
        rows += _rows("dynamic", b2, se2, spec.alpha, event_times=evs, n_obs=n2, n_treated=ntr)
        leads = [j for j, e in enumerate(evs) if e < ref]
        if leads:
            from models.inference.wald import wald_test

            R = np.zeros((len(leads), len(evs)))
            R[np.arange(len(leads)), leads] = 1.0
            meta["pretrend"] = wald_test(b2, V2, R)
        else:
            meta["pretrend"] = None
        meta["dynamic"] = {"ref_period": ref, "window": opts["window"], "dropped": pd_.dropped, "separation": dyn_info, "n_obs": n2}
    return EstimationResult(estimator="ppml", outcome=spec.yname, tidy=tidy_frame(rows), meta=meta)
