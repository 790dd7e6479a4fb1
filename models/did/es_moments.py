"""Static TWFE and the binned TWFE event study from per-cohort sufficient statistics
("compressed" regression), exact on balanced panels.

Why it is exact. In a balanced panel (every unit observed in all T periods) with unit and
period fixed effects, every regressor here is a function of the unit's cohort g and the
period t only: the static ``post`` :math:`D_{gt} = 1\\{g>0, t\\ge g\\}` and the event-time
dummies :math:`1\\{\\min(\\max(t-g, lo), hi) = k\\}` (binned endpoints). By the
Frisch–Waugh–Lovell theorem the coefficients are those of the two-way demeaned regressors,
and in a balanced panel two-way demeaning of a cohort x period function is

.. math::  \\tilde X_{gt} = X_{gt} - \\bar X_{g\\cdot} - \\bar X_{\\cdot t} + \\bar X_{\\cdot\\cdot}

(means weighted by cohort sizes :math:`n_g`), so

.. math::  \\hat\\beta = \\Big(\\sum_g n_g \\tilde X_g'\\tilde X_g\\Big)^{-1}\\sum_g n_g \\tilde X_g'\\,\\tilde{\\bar y}_g

needs only cohort x period means of y (Mundlak 1978; the "compression" of Wong, Lewis and
Wardrop 2021, *Efficient computation of linear model treatment effects in an experimentation
platform*, used by duckreg). The residual T-vector of unit i in cohort g is
:math:`e_i = M(y_i - \\bar y_g) + \\bar e_g` with :math:`M = I - 11'/T` and
:math:`\\bar e_g` the cohort-mean residual, so the sandwich meats follow from the
within-cohort scatter :math:`S_g = \\sum_{i\\in g}(y_i-\\bar y_g)(y_i-\\bar y_g)'`:

* unit-clustered (CRV1): :math:`\\sum_{i\\in g} e_ie_i' = MS_gM + n_g\\bar e_g\\bar e_g'`;
* clustered by a time-invariant coarser variable C: the cluster sums
  :math:`\\sum_{i\\in c\\cap g} e_i = M(\\Sigma_{cg} - n_{cg}\\bar y_g) + n_{cg}\\bar e_g`;
* heteroskedastic (HC1) and iid: the diagonals / traces of the same matrices.

These are the statistics :class:`models.did.cs_moments.Moments` holds (computed in one DuckDB
or Spark pass by :mod:`pipeline.engine`), so TWFE and the event study never load the panel.
Small-sample corrections are those pyfixest 0.60 applies in :mod:`._pyfixest` (matched in the
tests): CRV1 :math:`\\frac{G}{G-1}\\frac{N-1}{N-K}` with the unit effects (nested in the
cluster) not counted, :math:`K = k + T`; HC1 :math:`\\frac{N}{N-K}` with
:math:`K = k + n_{units} + T - 1`; iid :math:`SSR/(N-K)` with :math:`K = k + n_{units} + T - 1`. Inference is
normal, as in :mod:`.twfe` and :mod:`.event_study`, whose results these equal to rounding
(tests/test_es_moments.py: 1e-10).

When it is not exact the functions return ``None`` and the caller loads the panel: units
dropped by the moments' sample rules (unbalanced, always treated, missing outcome), no
never-treated units (the moments then trim periods), ``endpoints: trim`` (drops rows, so the
panel is no longer balanced), covariates, two-way clustering, or a rank-deficient design (the
in-memory path then raises the DesignError that names the collinear regressors).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.result import EstimationResult, normal_inference

from . import _panel

FORMULA_TWFE = "y ~ post | {id} + {t}"


def _exact(m, spec) -> bool:
    """True when the moments' sample is exactly the in-memory estimators' sample."""
    if spec.covariates or spec.vcov.kind not in ("iid", "hetero", "cluster"):
        return False
    if any(int(v) for v in (m.dropped or {}).values()):
        return False
    if m.exclude_g is not None or 0 not in set(int(c) for c in m.cohorts) or m.cohorts.size < 2:
        return False
    if spec.vcov.kind == "cluster" and spec.vcov.by[0] != spec.idname and m.cluster_code is None:
        return False
    return m.periods.size >= 2


def _two_way(X: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Two-way demeaning of cohort x period arrays X (H, T, ...) with cohort weights w (H,)."""
    N = w.sum()
    row = X.mean(axis=1, keepdims=True)  # cohort means over periods
    col = np.tensordot(w, X, axes=(0, 0))[None] / N  # period means over units
    tot = col.mean(axis=1, keepdims=True)
    return X - row - col + tot


def _fit(m, spec, X: np.ndarray):
    """(beta, V, df_info) of y on cohort x period regressors X (H, T, k) with unit and
    period fixed effects; None when X'X is singular."""
    H, T, k = X.shape
    w = m.n.astype(float)
    N_units = w.sum()
    n_obs = int(N_units * T)
    Xt = _two_way(X, w)
    yt = _two_way(m.mean[:, :, None], w)[:, :, 0]  # cohort means of the two-way demeaned y
    A = np.einsum("h,htk,htl->kl", w, Xt, Xt)
    b = np.einsum("h,htk,ht->k", w, Xt, yt)
    scale = np.sqrt(np.diag(A))
    if not np.all(scale > 0):
        return None
    As = A / np.outer(scale, scale)
    if np.linalg.cond(As) > 1e10:  # the in-memory path reports which regressor is collinear
        return None
    Ainv = np.linalg.inv(As) / np.outer(scale, scale)
    beta = Ainv @ b
    ebar = yt - Xt @ beta  # (H, T) cohort-mean residuals
    Mc = np.eye(T) - 1.0 / T
    # per-cohort sum of e_i e_i' (T x T)
    MSM = np.einsum("ts,hsu,uv->htv", Mc, m.scatter, Mc)
    E = MSM + w[:, None, None] * np.einsum("ht,hs->hts", ebar, ebar)
    kind = spec.vcov.kind
    # degrees-of-freedom counts as pyfixest 0.60 applies them (matched in the tests): iid
    # counts the unit and period effects with one normalisation and HC1 scales by N/(N-K), CRV1
    # drops the unit effects (nested in any time-invariant cluster) and counts T periods
    K_all = k + int(N_units) + T - 1
    if kind == "iid":
        ssr = float(np.trace(E, axis1=1, axis2=2).sum())
        V = Ainv * ssr / (n_obs - K_all)
        n_clusters = None
    elif kind == "hetero":
        e2 = np.diagonal(E, axis1=1, axis2=2)  # (H, T) sums of e_it^2
        meat = np.einsum("ht,htk,htl->kl", e2, Xt, Xt)
        V = Ainv @ meat @ Ainv * n_obs / (n_obs - K_all)
        n_clusters = None
    else:
        if spec.vcov.by[0] == spec.idname or m.cluster_code is None:
            meat = np.einsum("htk,hts,hsl->kl", Xt, E, Xt)
            G = int(N_units)
        else:
            h = m.cluster_cohort
            ncg = m.cluster_n.astype(float)
            R = (m.cluster_sum - ncg[:, None] * m.mean[h]) @ Mc + ncg[:, None] * ebar[h]  # (rows, T) residual sums
            contrib = np.einsum("rt,rtk->rk", R, Xt[h])
            G = int(m.cluster_code.max()) + 1
            S = np.zeros((G, k))
            np.add.at(S, m.cluster_code, contrib)
            meat = S.T @ S
        K = k + T
        V = Ainv @ meat @ Ainv * (G / (G - 1)) * (n_obs - 1) / (n_obs - K)
        n_clusters = G
    return beta, V, n_obs, n_clusters


def _meta(m, spec, n_obs: int, n_clusters, **extra) -> dict:
    treated = m.cohorts > 0
    meta = {
        "n_obs": n_obs,
        "n_units": int(m.n.sum()),
        "n_treated_units": int(m.n[treated].sum()),
        "n_clusters": n_clusters,
        "vcov": spec.vcov.label(),
        "control_group": spec.control_group,
        "dropped": {},
    }
    meta.update(extra)
    return meta


def fit_twfe_from_moments(m, spec) -> EstimationResult | None:
    """Static TWFE (:mod:`.twfe`) from :class:`Moments`; None when not exact (see module doc)."""
    if not _exact(m, spec):
        return None
    g = m.cohorts.astype(float)[:, None]
    t = m.periods.astype(float)[None, :]
    D = ((g > 0) & (t >= g)).astype(float)[:, :, None]
    fit = _fit(m, spec, D)
    if fit is None:
        return None
    beta, V, n_obs, n_cl = fit
    est, se = float(beta[0]), float(np.sqrt(V[0, 0]))
    stat, p, lo, hi = normal_inference(est, se, alpha=spec.alpha)
    meta = _meta(m, spec, n_obs, n_cl, formula=f"y ~ post | {spec.idname} + {spec.tname}", covariate_coefficients={}, inference="normal")
    row = {
        "aggregation": "static", "term": "post", "estimate": est, "std_error": se, "statistic": float(stat),
        "p_value": float(p), "conf_low": float(lo), "conf_high": float(hi),
        "n_obs": n_obs, "n_treated": meta["n_treated_units"],
    }
    return EstimationResult(estimator="twfe", outcome=spec.yname, tidy=pd.DataFrame([row]), meta=meta)


def fit_event_study_from_moments(m, spec, options: dict, ref: int = -1) -> EstimationResult | None:
    """Binned TWFE event study (:mod:`.event_study`, ``endpoints: bin``) from :class:`Moments`;
    None when not exact (see module doc)."""
    if options.get("endpoints", "bin") != "bin" or not _exact(m, spec):
        return None
    lo, hi = _panel.check_window(options["event_window"], "event_study")
    g = m.cohorts.astype(float)[:, None]
    t = m.periods.astype(float)[None, :]
    e = np.where(g > 0, np.clip(t - g, lo, hi), np.nan)  # (H, T) binned event time
    times = [int(k) for k in np.unique(e[np.isfinite(e)]) if k != ref]
    if not any(k >= 0 for k in times):
        return None  # the in-memory path raises its DesignError
    X = (e[:, :, None] == np.asarray(times, float)[None, None, :]).astype(float)
    fit = _fit(m, spec, X)
    if fit is None:
        return None
    beta, V, n_obs, n_cl = fit
    se = np.sqrt(np.diag(V))
    stat, p, clo, chi = normal_inference(beta, se, alpha=spec.alpha)
    w = m.n
    rows = []
    for j, k in enumerate(times):
        at = e == k  # (H, T)
        rows.append({
            "aggregation": "dynamic", "term": f"rel_time::{k}", "event_time": k,
            "estimate": beta[j], "std_error": se[j], "statistic": stat[j], "p_value": p[j],
            "conf_low": clo[j], "conf_high": chi[j],
            "n_obs": int((w[:, None] * at).sum()), "n_treated": int(w[at.any(axis=1)].sum()),
        })
    vc = pd.DataFrame(V, index=pd.Index(times, name="event_time"), columns=pd.Index(times, name="event_time"))
    meta = _meta(
        m, spec, n_obs, n_cl, event_window=[lo, hi], endpoints="bin", reference_period=ref,
        pretrend=_panel.pretrend_test(beta, V, times, ref=ref),
        formula=f"y ~ i(rel_time, ref={ref}) | {spec.idname} + {spec.tname}", inference="normal",
    )
    return EstimationResult(estimator="event_study", outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta, tables={"vcov_dynamic": vc})
