"""Static TWFE and the binned TWFE event study from per-cohort sufficient statistics
("compressed" regression), exact on balanced panels (binned or trimmed event-time endpoints).

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
(tests/test_es_moments.py: 1e-10, the in-memory path's demeaning tolerance).

Unbalanced by design (``endpoints: trim``): every unit of cohort g is observed in the same
periods :math:`P_g`, so with :math:`M_g` the within-unit projection on :math:`P_g` and the
period dummies partialled out explicitly (FWL once more, at the cohort x period level), the
same formulas hold with :math:`M_g` in place of :math:`M`; the tests check this against
dense least squares with explicit unit and period dummies (1e-12).

When it is not exact the functions return ``None`` and the caller loads the panel (the
in-memory path then fits, or raises its own error), never a silently different sample:

* any row the moments dropped (``dropped`` non-empty: unbalanced units, always-treated units,
  missing outcome/cluster values, periods cut for want of never-treated units);
* cohorts after the last period (recoded as never treated by the moments, a treated unit with
  leads in memory; detected from the moments' note, :data:`LATE_NOTE`);
* no never-treated units or ``exclude_g`` set (CS's control-group rules changed the sample);
* covariates, vcov kinds other than iid/hetero/cluster (twoway, crv3, wild), a coarser
  cluster without per-(cluster, cohort) sums;
* fewer than two periods or cohorts, singletons after trimming, no event time >= 0, or a
  rank-deficient design (the in-memory path then raises the DesignError that names it).

Meta equals the in-memory meta key by key, including ``n_treated_clusters`` and the
few-clusters warnings of :func:`models.inference.few_clusters.annotate`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.inference import few_clusters
from models.result import EstimationResult, normal_inference

from . import _panel

SOLVER_COMPRESSED = "compressed: per-cohort moments, closed-form FWL (exact on this balanced panel)"
SOLVER_DENSE = "pyfixest feols: iterative demeaning of the unit-level panel"

FORMULA_TWFE = "y ~ post | {id} + {t}"
#: the note models.did.att_gt._prepare and pipeline.engine write when they recode cohorts
#: after the last period as never treated
LATE_NOTE = "after the last period"


#: meta["solver_note"] when the compressed path declines because of extra fixed effects
DECLINED_FE = ("compressed per-cohort solver declined: fixed effects beyond firm and year ({terms}) are not "
               "functions of cohort and period, so the per-cohort moments are not sufficient; fitted by pyfixest")


def declined_note(spec) -> str | None:
    """The solver note for ``spec`` (None when the compressed path was allowed to try)."""
    terms = getattr(spec, "fixed_effects", ())
    return DECLINED_FE.format(terms=", ".join(terms)) if terms else None


def _exact(m, spec) -> bool:
    """True when the moments' sample is exactly the in-memory estimators' sample."""
    if getattr(spec, "fixed_effects", ()):
        return False
    if spec.covariates or spec.vcov.kind not in ("iid", "hetero", "cluster"):
        return False
    if any(int(v) for v in (m.dropped or {}).values()):
        return False
    # cohorts after the last period are recoded as never treated in the moments (their note
    # is the only trace: Moments has no field for it); the in-memory path keeps them as
    # treated units (n_treated_units) with event-time leads, so the samples differ
    if any(LATE_NOTE in str(x) for x in (m.notes or [])):
        return False
    if m.exclude_g is not None or 0 not in set(int(c) for c in m.cohorts) or m.cohorts.size < 2:
        return False
    if spec.vcov.kind == "cluster" and spec.vcov.by[0] != spec.idname and m.cluster_code is None:
        return False
    return m.periods.size >= 2


def _within(P: np.ndarray) -> np.ndarray:
    """(H, T, T) within-unit projections :math:`M_h = \\mathrm{diag}(P_h) - P_hP_h'/|P_h|` of
    units observed in the periods ``P_h`` (bool (H, T)); zero outside ``P_h``."""
    Pf = P.astype(float)
    return np.einsum("ht,ts->hts", Pf, np.eye(P.shape[1])) - np.einsum("ht,hs->hts", Pf, Pf) / Pf.sum(axis=1)[:, None, None]


def _partial(m, X: np.ndarray, Mh: np.ndarray):
    """FWL at the cohort x period level: within-unit transform (``Mh``), then partial the
    T-1 period dummies out with weights n_h. Returns (X~ (H, T, k), y~ (H, T) the cohort
    means of the partialled outcome). Balanced (every P_h full): X~ is the two-way demeaned
    X of the module docstring."""
    H, T, k = X.shape
    w = m.n.astype(float)
    Dt = np.broadcast_to(np.eye(T)[None, :, 1:], (H, T, T - 1))
    Z = np.concatenate([X, m.mean[:, :, None], Dt], axis=2)  # [X, ybar, period dummies]
    Zt = np.einsum("hts,hsp->htp", Mh, Z)
    Dw = Zt[:, :, k + 1 :]
    Add = np.einsum("h,htp,htq->pq", w, Dw, Dw)
    Adz = np.einsum("h,htp,htq->pq", w, Dw, Zt[:, :, : k + 1])
    R = Zt[:, :, : k + 1] - Dw @ np.linalg.solve(Add, Adz)
    return R[:, :, :k], R[:, :, k]


def _fit(m, spec, X: np.ndarray, P: np.ndarray | None = None):
    """(beta, V, n_obs, n_clusters) of y on cohort x period regressors X (H, T, k) with unit
    and period fixed effects, units of cohort h observed in the periods ``P[h]`` (default:
    all); None when the regressors are collinear with the fixed effects."""
    H, T, k = X.shape
    P = np.ones((H, T), dtype=bool) if P is None else P
    w = m.n.astype(float)
    N_units = w.sum()
    n_obs = int((w[:, None] * P).sum())
    Mh = _within(P)
    Xt, yt = _partial(m, X, Mh)
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
    ebar = yt - Xt @ beta  # (H, T) cohort-mean residuals (zero outside P_h)
    # per-cohort sum of e_i e_i' (T x T), e_i = M_h (y_i - ybar_h) + ebar_h
    MSM = np.einsum("hts,hsu,hvu->htv", Mh, m.scatter, Mh)
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
            R = (m.cluster_sum - ncg[:, None] * m.mean[h]) + 0.0  # (rows, T) -> residual sums
            for j in range(H):  # per cohort: memory O(rows x T), not O(rows x T^2)
                r = h == j
                R[r] = R[r] @ Mh[j]  # M_h symmetric
            R += ncg[:, None] * ebar[h]
            contrib = np.einsum("rt,rtk->rk", R, Xt[h])
            G = int(m.cluster_code.max()) + 1
            S = np.zeros((G, k))
            np.add.at(S, m.cluster_code, contrib)
            meat = S.T @ S
        K = k + T
        V = Ainv @ meat @ Ainv * (G / (G - 1)) * (n_obs - 1) / (n_obs - K)
        n_clusters = G
    return beta, V, n_obs, n_clusters


def _meta(m, spec, n_obs: int, n_clusters, dropped=None, **extra) -> dict:
    treated = m.cohorts > 0
    meta = {
        "n_obs": n_obs,
        "n_units": int(m.n.sum()),
        "n_treated_units": int(m.n[treated].sum()),
        "n_clusters": n_clusters,
        "vcov": spec.vcov.label(),
        "control_group": spec.control_group,
        "dropped": dict(dropped or {}),
    }
    meta.update(extra)
    meta["solver"] = SOLVER_COMPRESSED
    if spec.vcov.kind == "cluster":
        # n_treated_clusters and the few-clusters warnings, as models.did._cluster_inference.annotate
        if spec.vcov.by[0] == spec.idname or m.cluster_code is None:
            g1 = meta["n_treated_units"]
        else:
            g1 = int(np.unique(m.cluster_code[treated[m.cluster_cohort]]).size)
        few_clusters.annotate(meta, n_clusters=n_clusters, n_treated_clusters=g1, by=spec.vcov.by[0], kind=spec.vcov.kind)
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
    """TWFE event study (:mod:`.event_study`) from :class:`Moments`, ``endpoints`` ``bin`` or
    ``trim``; None when not exact (see module doc).

    ``trim`` keeps treated units' periods inside the window: units of cohort g are then
    observed in :math:`P_g = \\{t: lo \\le t-g \\le hi\\}`, the same periods for every unit of
    the cohort, so the within-unit projection :math:`M_g` on :math:`P_g` replaces
    :math:`I - 11'/T` (period effects partialled out explicitly) and the result is still
    exact."""
    endpoints = options.get("endpoints", "bin")
    if endpoints not in ("bin", "trim") or not _exact(m, spec):
        return None  # fit() raises the ConfigError for a bad endpoints value
    lo, hi = _panel.check_window(options["event_window"], "event_study")
    g = m.cohorts.astype(float)[:, None]
    t = m.periods.astype(float)[None, :]
    rel = np.where(g > 0, t - g, np.nan)  # (H, T) event time, NaN for never treated
    P = np.ones(rel.shape, dtype=bool)
    dropped = {}
    if endpoints == "trim":
        P = ~(np.isfinite(rel) & ((rel < lo) | (rel > hi)))
        n_out = int((m.n[:, None] * ~P).sum())
        if n_out:
            dropped["outside_event_window"] = n_out
        # singletons (a unit left with one period, a period with one unit) are dropped by the
        # in-memory path and change its sample: not exact
        if (P.sum(axis=1) < 2).any() or ((m.n[:, None] * P).sum(axis=0) < 2).any():
            return None
    e = np.where(P, np.clip(rel, lo, hi), np.nan)  # binned event time, NaN never / trimmed
    times = [int(k) for k in np.unique(e[np.isfinite(e)]) if k != ref]
    if not any(k >= 0 for k in times):
        return None  # the in-memory path raises its DesignError
    X = (e[:, :, None] == np.asarray(times, float)[None, None, :]).astype(float)
    fit = _fit(m, spec, X, P)
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
        m, spec, n_obs, n_cl, dropped, event_window=[lo, hi], endpoints=endpoints, reference_period=ref,
        pretrend=_panel.pretrend_test(beta, V, times, ref=ref),
        formula=f"y ~ i(rel_time, ref={ref}) | {spec.idname} + {spec.tname}", inference="normal",
    )
    return EstimationResult(estimator="event_study", outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta, tables={"vcov_dynamic": vc})


def fit_compressed_or_dense(data: pd.DataFrame, spec, fit_from_moments, fit_dense) -> EstimationResult:
    """TWFE / event study: the compressed closed form where it is exact (:func:`fit_in_memory`),
    else the unit-level fit, with ``meta["solver_note"]`` saying why the compressed path declined."""
    res = fit_in_memory(data, spec, fit_from_moments)
    if res is not None:
        return res
    res = fit_dense(data, spec)
    note = declined_note(spec)
    if note:
        res.meta["solver_note"] = note
    return res


def fit_in_memory(data: pd.DataFrame, spec, fit_from_moments) -> EstimationResult | None:
    """The compressed fit of an in-memory panel: its per-cohort moments (one numpy pass,
    :func:`models.did.cs_moments.moments_from_frame`, with CS's validation and recodings)
    and ``fit_from_moments``; None wherever that is not exact (covariates, a vcov kind the
    moments do not carry, any row the moments would drop, ...), so the caller fits the
    unit-level panel. This is how :func:`models.did.twfe.fit` and
    :func:`models.did.event_study.fit` avoid forming a dense design of millions of rows
    (pyfixest needs about 14 GiB for the event study at 1M firms x 20 years)."""
    from ..errors import BadInputError, DesignError
    from .cs_moments import moments_from_frame

    if spec.covariates or spec.vcov.kind not in ("iid", "hetero", "cluster") or getattr(spec, "fixed_effects", ()):
        return None
    cl = spec.vcov.by[0] if spec.vcov.kind == "cluster" and spec.vcov.by else None
    need = [spec.idname, spec.tname, spec.yname, spec.gname] + ([cl] if cl else [])
    if any(c not in data.columns for c in need):
        return None  # the dense path names the missing column
    try:
        # notyettreated: no control-group recoding of the latest cohort (es_moments declines
        # panels without never-treated units anyway)
        m = moments_from_frame(data, spec.yname, spec.tname, spec.idname, spec.gname, clustervar=cl, control_group="notyettreated")
    except (BadInputError, DesignError):
        return None  # e.g. a cluster varying within a unit: the dense path decides
    return fit_from_moments(m, spec)
