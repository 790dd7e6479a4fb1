"""Goodman-Bacon (2021, J. Econometrics, "Difference-in-differences with variation in
treatment timing") decomposition of the static TWFE coefficient.

In a balanced panel without covariates, the TWFE coefficient of :math:`D_{it}` is a
weighted average of all 2x2 DiD comparisons between timing groups (Theorem 1):

.. math:: \\hat\\beta^{DD} = \\sum_{k \\ne U} s_{kU}\\hat\\beta_{kU}
          + \\sum_{k<l} \\big[s^k_{kl}\\hat\\beta^k_{kl} + s^l_{kl}\\hat\\beta^l_{kl}\\big]

with group shares :math:`n_k`, treated-time shares :math:`\\bar D_k`,
:math:`n_{kl} = n_k/(n_k+n_l)` and :math:`\\hat V^D` the variance of the two-way demeaned
treatment dummy:

* earlier (k) vs later (l) treated, window before l is treated:
  :math:`s^k_{kl} = (n_k+n_l)^2 n_{kl}(1-n_{kl})(\\bar D_k-\\bar D_l)(1-\\bar D_k)/\\hat V^D`,
* later (l) vs earlier (k) treated as controls (the "forbidden" comparison, after k is
  treated): :math:`s^l_{kl} = (n_k+n_l)^2 n_{kl}(1-n_{kl})\\bar D_l(\\bar D_k-\\bar D_l)/\\hat V^D`,
* treated vs never (U, :math:`\\bar D_U = 0`): the first formula with l = U.

(the paper's eqs. 10a-c, written without the :math:`(1-\\bar D_l)` and :math:`\\bar D_k`
normalisations that cancel). Always-treated units (first treated at or before the first
period, :math:`\\bar D = 1`) enter as a control group ("treated vs always"), like R
``bacondecomp``. All pairs are computed at once from the cohort-by-period mean matrix
(cumulative sums over periods give every window mean in O(1)); cost O(NT + G^2).

Requirements (else :class:`DesignError`): balanced panel (every unit in every period),
no covariates (ConfigError), at least one timing group. The tidy row is the TWFE
estimate from pyfixest (``spec.vcov``); ``tables["bacon"]`` holds the components (type,
treated, control, estimate, weight, n units) and ``meta["bacon_sum"]`` the weighted sum,
equal to the TWFE coefficient up to rounding (tested to 1e-10).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import DesignError, first_keys
from models import options as _opt
from models.result import EstimationResult

from . import _panel
from .twfe import static_row

OPTIONS: dict = {}
RULES: dict = {}
NAME = "bacon"
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)
NEVER = 0


def decompose(y: np.ndarray, unit: np.ndarray, time: np.ndarray, g: np.ndarray, years: np.ndarray) -> pd.DataFrame:
    """2x2 components of a balanced panel. ``unit``/``time`` integer codes, ``g`` first
    treated period per row (0 never), ``years`` the sorted periods. Returns the
    component table (weights sum to 1)."""
    T = years.size
    N = unit.max() + 1
    first, last = years[0], years[-1]
    # group label per unit: never (incl. treated after the window) -> 0, always -> first year
    gu = np.zeros(N, dtype=np.int64)
    gu[unit] = g
    gu = np.where((gu == 0) | (gu > last), NEVER, np.maximum(gu, first))
    labels, ginv = np.unique(gu, return_inverse=True)
    G = labels.size
    # timing position p (index of the first treated period; T for never) and Dbar
    p = np.where(labels == NEVER, T, np.searchsorted(years, labels))
    Dbar = (T - p) / T
    nk = np.bincount(ginv, minlength=G) / N
    # cohort x period means and cumulative sums
    gr = ginv[unit]
    cnt = np.bincount(gr * T + time, minlength=G * T).reshape(G, T)
    Ybar = np.bincount(gr * T + time, weights=y, minlength=G * T).reshape(G, T) / cnt
    cs = np.concatenate([np.zeros((G, 1)), np.cumsum(Ybar, axis=1)], axis=1)

    def wmean(k, a, b):  # mean of Ybar[k, a:b]
        with np.errstate(invalid="ignore", divide="ignore"):
            return (cs[k, b] - cs[k, a]) / (b - a)

    # two-way demeaned D variance
    D = (years[None, :] >= np.where(labels == NEVER, np.iinfo(np.int64).max, labels)[:, None]).astype(float)
    Dit = D[ginv]  # (N, T): every unit's treatment path (balanced panel)
    Dt = Dit - Dit.mean(axis=1, keepdims=True) - Dit.mean(axis=0, keepdims=True) + Dit.mean()
    VD = float((Dt**2).mean())
    # pairs k earlier than l (order by p ascending; never has p = T, always p = 0)
    order = np.argsort(p, kind="stable")
    i, j = np.triu_indices(G, k=1)
    k, l = order[i], order[j]
    keep = p[k] < p[l]
    k, l = k[keep], l[keep]
    pk, pl = p[k], p[l]
    ntot = nk[k] + nk[l]
    nkl = nk[k] / ntot
    base = ntot**2 * nkl * (1 - nkl) / VD
    s_early = base * (Dbar[k] - Dbar[l]) * (1 - Dbar[k])  # k treated, l control (pre l)
    s_late = base * Dbar[l] * (Dbar[k] - Dbar[l])  # l treated, k control (post k)
    b_early = (wmean(k, pk, pl) - wmean(k, 0, pk)) - (wmean(l, pk, pl) - wmean(l, 0, pk))
    b_late = (wmean(l, pl, T) - wmean(l, pk, pl)) - (wmean(k, pl, T) - wmean(k, pk, pl))
    is_never_l = labels[l] == NEVER
    is_always_k = p[k] == 0
    t_early = np.where(is_never_l, "treated_vs_never", "earlier_vs_later")
    t_late = np.where(is_always_k, "treated_vs_always", "later_vs_earlier")
    nunits = np.bincount(ginv, minlength=G)
    comp = pd.concat(
        [
            pd.DataFrame(
                {"type": t_early, "treated": labels[k], "control": labels[l], "estimate": b_early, "weight": s_early,
                 "n_treated_units": nunits[k], "n_control_units": nunits[l]}
            ).loc[(pk > 0) & ~is_always_k],
            pd.DataFrame(
                {"type": t_late, "treated": labels[l], "control": labels[k], "estimate": b_late, "weight": s_late,
                 "n_treated_units": nunits[l], "n_control_units": nunits[k]}
            ).loc[(pl < T) & ~is_never_l],
        ],
        ignore_index=True,
    )
    comp = comp.astype({"type": "string", "treated": "int64", "control": "int64"})
    return comp.sort_values(["type", "treated", "control"]).reset_index(drop=True)


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    _opt.require(validate_options(spec.options), f"estimate.{NAME}")
    panel = _panel.prepare(data, spec, NAME, allow_covariates=False)
    _panel.require_controls(panel, spec, NAME)
    df = panel.df
    years = panel.years
    per_unit = df.groupby("_id", sort=False).size()
    unbalanced = per_unit.index[per_unit != years.size]
    if len(unbalanced):
        raise DesignError(
            f"{NAME}: the Goodman-Bacon decomposition needs a balanced panel; {len(unbalanced)} units "
            f"are not observed in all {years.size} periods (first: {first_keys(unbalanced)}). Restrict the "
            "sample to a balanced panel (e.g. firms present in every year) or drop 'bacon'."
        )
    if not ((df["_g"] > years[0]) & (df["_g"] <= years[-1])).any():
        raise DesignError(f"{NAME}: no unit starts treatment inside the panel; nothing to decompose")
    comp = decompose(
        df["_y"].to_numpy(float), df["_unit"].to_numpy(), df["_time"].to_numpy(), df["_g"].to_numpy(), years
    )
    why = "The treatment dummy has no variation after the firm and year fixed effects."
    row, _ = static_row(panel, spec, NAME, why)
    est = row["estimate"]
    bsum = float((comp["weight"] * comp["estimate"]).sum())
    by_type = (
        comp.assign(we=comp["weight"] * comp["estimate"])
        .groupby("type")
        .agg(weight=("weight", "sum"), we=("we", "sum"))
    )
    summary = {
        t: {"weight": float(r.weight), "estimate": float(r.we / r.weight) if r.weight > 0 else None}
        for t, r in by_type.iterrows()
    }
    meta = _panel.base_meta(
        panel,
        spec,
        bacon_sum=bsum,
        bacon_weight_total=float(comp["weight"].sum()),
        twfe_minus_bacon_sum=est - bsum,
        bacon_by_type=summary,
        inference="normal",
    )
    return EstimationResult(estimator=NAME, outcome=spec.yname, tidy=pd.DataFrame([row]), meta=meta, tables={"bacon": comp})
