"""Abadie–Imbens standard errors for nearest-neighbour matching estimators of the ATT.

Matching with replacement, matched sets ``S(i)`` per treated unit ``i`` (all controls tied at the
M-th nearest distance included, weights ``1/|S(i)|``: ``ties = "all"``, models.matching.ties).

Estimator (Abadie & Imbens 2006, Econometrica 74(1), eq. 3-4; bias correction Abadie & Imbens
2011, JBES 29(1), §3):

    tau_i = Y_i - (1/|S(i)|) sum_{j in S(i)} [Y_j + (Z_i - Z_j)' alpha]     (alpha = 0 unadjusted)
    tau   = (1/N1) sum_i tau_i

``alpha``: the slopes of the least-squares regression of ``Y`` on ``(1, Z)`` among controls with
weights ``K_j`` (AI 2011: mu_0 fitted on the matched controls, each as often as it is used).

Variance (AI 2006 Theorem 7 and §4.3; the population ATT variance that Stata ``teffects
nnmatch`` reports and R ``Matching::Match`` returns as ``se``):

    V = (1/N1^2) [ sum_{treated} (tau_i - tau)^2 + sum_{controls} (K_j^2 - K'_j) sigma^2_j ]

with ``K_j = sum_i 1{j in S(i)}/|S(i)|`` and ``K'_j = sum_i 1{j in S(i)}/|S(i)|^2``.
``sigma^2_j`` (heteroskedastic, AI 2006 §4.2 with ``J`` = ``var_matches``): the sample variance
(denominator count-1) of ``Y_j`` and the outcomes of the ``J`` nearest other controls in the
matching metric (ties at the J-th distance included), as Stata's ``vce(robust, nn(J))`` and
Matching's ``Var.calc = J``; ``var_matches = 0`` assumes homoskedasticity: ``sigma^2 = (1/2) *
weighted mean over matched pairs of (Y_i - Y_j - tau)^2`` (Matching's ``Var.calc = 0``).

Propensity-score matching with an estimated logit score (Abadie & Imbens 2016, Econometrica 84(2),
Theorem 2 and §5, the ATET): with ``F`` the logistic cdf, ``f = F'``, ``theta`` the logit
coefficients, ``I = E[f^2/(F(1-F)) X X'] = E[F(1-F) X X']`` the information matrix,

    V_adj = V + ( g' I^{-1} g - c' I^{-1} c ) / N
    g = (1/E[F]) E[ X f(X'theta) (mu(1, F) - mu(0, F) - tau) ]
    c = (1/E[F]) E[ f(X'theta) ( cov(X, mu(1,X) | F) + F/(1-F) cov(X, mu(0,X) | F) ) ]

estimated as in AI 2016 §5: ``mu(w, F(X_i))`` by matching unit ``i`` to its M nearest units of
treatment ``w`` on the score (its own outcome when ``W_i = w``), the conditional covariances by
the sample covariance of ``(X, Y)`` over the ``L`` units of treatment ``w`` nearest to ``i`` on
the score (``L = var_matches``, at least 2). N is the total sample size (treated + controls).

``contributions``: per-unit terms ``u`` with ``sum u^2 = V`` (treated ``(tau_i - tau)/N1``,
controls ``sign(e_j) sqrt((K_j^2 - K'_j) sigma^2_j)/N1`` with ``e_j`` the within-group residual),
so that the pipeline can stack cells and cluster by firm (models.matching.staggered); the PS
adjustment is added to the variance of the cell, not to the contributions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree


@dataclass
class AIResult:
    estimate: float
    std_error: float
    variance: float
    n_treated: int
    n_controls_used: int
    contributions: np.ndarray     # aligned with the input rows (0 for unused units)
    tau_i: np.ndarray             # per matched treated unit
    K: np.ndarray                 # per input row (controls)
    sigma2: np.ndarray            # per input row (controls; nan for others)
    ps_adjustment: float | None = None


def _sets_stats(ptr, cidx, n):
    sizes = np.diff(ptr)
    owner = np.repeat(np.arange(len(sizes)), sizes)
    K = np.bincount(cidx, weights=1.0 / sizes[owner], minlength=n)
    KK = np.bincount(cidx, weights=1.0 / sizes[owner] ** 2, minlength=n)
    return sizes, owner, K, KK


def _knn_with_ties(C_from, C_to, k, tol, exclude=None):
    """For each row of ``C_from``, the rows of ``C_to`` within ``tol`` of its k-th nearest
    distance (``exclude[i]``: a row of ``C_to`` to leave out, e.g. the unit itself). One
    vectorised k-d tree query; rows whose tie group may continue past the returned neighbours
    are re-queried with a larger k."""
    m = len(C_to)
    tree = cKDTree(C_to)
    out = [None] * len(C_from)
    todo = np.arange(len(C_from))
    kq = min(k + (1 if exclude is not None else 0) + 4, m)
    while len(todo):
        dist, idx = tree.query(C_from[todo], k=kq)
        dist, idx = dist.reshape(len(todo), kq), idx.reshape(len(todo), kq)
        if exclude is not None:
            dist = np.where(idx == exclude[todo][:, None], np.inf, dist)
        ds = np.sort(dist, axis=1)
        kk = min(k, kq - (1 if exclude is not None else 0))
        dk = ds[:, kk - 1]
        done = (kq >= m) | (dist.max(axis=1, where=np.isfinite(dist), initial=-np.inf) > dk + tol)
        for r in np.flatnonzero(done):
            out[todo[r]] = idx[r][dist[r] <= dk[r] + tol]
        todo = todo[~done]
        kq = min(2 * kq, m)
    return out


def within_group_sigma2(y, coords, rows, J, tol):
    """AI (2006) heteroskedastic conditional variance at each of ``rows``: sample variance of the
    unit's outcome and those of its ``J`` nearest other units of ``rows`` (ties at the J-th
    distance included). Also returns the residual ``y - mean(neighbours)`` (its sign)."""
    rows = np.asarray(rows)
    C = np.asarray(coords, dtype=float)[rows]
    if C.ndim == 1:
        C = C[:, None]
    yy = y[rows]
    m = len(rows)
    out = np.full(m, np.nan)
    resid = np.zeros(m)
    if m < 2:
        return out, resid
    nbs = _knn_with_ties(C, C, min(J, m - 1), tol, exclude=np.arange(m))
    for i, nb in enumerate(nbs):
        vals = np.concatenate([[yy[i]], yy[nb]])
        out[i] = vals.var(ddof=1)
        resid[i] = yy[i] - yy[nb].mean()
    return out, resid


def ai_att(y, treat, ptr, cidx, coords, *, var_matches: int = 2, Z=None, tol: float = 0.0,
           ps_logit=None, observed=None) -> AIResult:
    """Abadie–Imbens ATT and SE from matched sets (see the module docstring).

    ``ptr``/``cidx``: CSR sets over the treated rows (in row order) holding control row indices;
    ``coords``: the matching coordinates (score, or Mahalanobis/scaled covariates) for the
    within-group variance; ``Z``: covariates for the AI (2011) bias correction (None = none);
    ``ps_logit``: ``(X, theta)`` of the fitted logit propensity score (with intercept column) to
    apply the AI (2016) adjustment, with matching on the score ``coords``.
    Treated units without a match are dropped (they are not in the ATT). ``observed`` (bool per
    row): units whose outcome is missing are left out of the within-group variances and the score
    adjustment (the sets must already exclude them)."""
    y = np.asarray(y, dtype=float)
    t = np.asarray(treat, dtype=bool)
    n = len(y)
    obs = np.ones(n, dtype=bool) if observed is None else np.asarray(observed, dtype=bool)
    t_rows = np.flatnonzero(t)
    sizes, owner, K, KK = _sets_stats(ptr, cidx, n)
    has = sizes > 0
    N1 = int(has.sum())
    if N1 == 0:
        return AIResult(np.nan, np.nan, np.nan, 0, 0, np.zeros(n), np.zeros(0), K, np.full(n, np.nan))
    alpha = None
    if Z is not None:
        Zm = np.asarray(Z, dtype=float)
        Zm = Zm[:, None] if Zm.ndim == 1 else Zm
        c = (K > 0) & ~t
        A = np.column_stack([np.ones(int(c.sum())), Zm[c]])
        sw = np.sqrt(K[c])
        coef, *_ = np.linalg.lstsq(A * sw[:, None], y[c] * sw, rcond=None)
        alpha = coef[1:]
    # matched-control mean (bias-adjusted) per treated
    yj = y[cidx]
    if alpha is not None:
        adj = (Zm[t_rows[owner]] - Zm[cidx]) @ alpha
        yj = yj + adj
    m0 = np.bincount(owner, weights=yj, minlength=len(sizes))
    m0 = np.divide(m0, sizes, out=np.full(len(sizes), np.nan), where=sizes > 0)
    tau_i = y[t_rows] - m0
    tau = float(np.mean(tau_i[has]))
    ctrl_used = np.flatnonzero(~t & (K > 0))
    sigma2 = np.full(n, np.nan)
    resid = np.zeros(n)
    if var_matches > 0:
        crow = np.flatnonzero(~t & obs)
        s2, r = within_group_sigma2(y, coords, crow, var_matches, tol)
        sigma2[crow] = s2
        resid[crow] = r
    else:
        # Matching's Var.calc = 0: half the weighted mean of squared pair deviations
        pair_tau = y[t_rows[owner]] - yj
        s2 = 0.5 * float(np.sum((pair_tau - tau) ** 2 / sizes[owner]) / N1)
        sigma2[~t] = s2
        resid[~t] = 1.0
    var_c = np.clip(K[ctrl_used] ** 2 - KK[ctrl_used], 0, None) * sigma2[ctrl_used]
    V = float((np.sum((tau_i[has] - tau) ** 2) + np.sum(var_c)) / N1**2)
    u = np.zeros(n)
    u[t_rows[has]] = (tau_i[has] - tau) / N1
    u[ctrl_used] = np.where(resid[ctrl_used] < 0, -1.0, 1.0) * np.sqrt(var_c) / N1
    ps_adj = None
    if ps_logit is not None:
        X, theta = ps_logit
        o = np.flatnonzero(obs)
        ps_adj = _ps_adjustment(y[o], t[o], np.asarray(X, float)[o], np.asarray(theta, float),
                                np.asarray(coords, float).ravel()[o], tau, max(var_matches, 2),
                                int(max(1, np.max(sizes))), tol)
        V = V + ps_adj
    se = float(np.sqrt(V)) if V >= 0 else np.nan
    return AIResult(tau, se, V, N1, int(len(ctrl_used)), u, tau_i[has], K, sigma2, ps_adj)


def _nearest_in_group(score, rows_from, rows_group, k, tol, include_self=False):
    """For each of ``rows_from``, the units of ``rows_group`` nearest on ``score`` (the k-th
    distance's ties included; a unit itself is left out unless ``include_self``)."""
    g = np.asarray(rows_group)
    rows_from = np.asarray(rows_from)
    pos = {int(u): i for i, u in enumerate(g.tolist())}
    excl = None if include_self else np.array([pos.get(int(r), -1) for r in rows_from])
    nbs = _knn_with_ties(score[rows_from][:, None], score[g][:, None], min(k, len(g) - (0 if include_self else 1)), tol,
                         exclude=excl)
    return [g[nb] for nb in nbs]


def _ps_adjustment(y, t, X, theta, score, tau, L, M, tol) -> float:
    """AI (2016) adjustment term ``(g' I^-1 g - c' I^-1 c) / N`` for the ATET with a logit score
    (``theta`` fitted on all units; the expectations over the units given here)."""
    n = len(y)
    t_rows = np.flatnonzero(t)
    eta = X @ theta
    F = 1.0 / (1.0 + np.exp(-eta))
    f = F * (1.0 - F)
    EF = t.mean()
    I = (X * (f**2 / (F * (1 - F)))[:, None]).T @ X / n
    c_rows = np.flatnonzero(~t)
    # mu(1, F_i) - mu(0, F_i) for every unit, by matching on the score (M matches)
    diff = np.zeros(n)
    m_ctrl = _nearest_in_group(score, t_rows, c_rows, M, tol)
    for i, r in enumerate(t_rows):
        diff[r] = y[r] - y[m_ctrl[i]].mean() if len(m_ctrl[i]) else 0.0
    m_tr = _nearest_in_group(score, c_rows, t_rows, M, tol)
    for i, r in enumerate(c_rows):
        diff[r] = y[m_tr[i]].mean() - y[r] if len(m_tr[i]) else 0.0
    g = (X * (f * (diff - tau))[:, None]).sum(axis=0) / n / EF
    # conditional covariances cov(X, mu(w, X) | F) by the L nearest units of treatment w
    cov1 = _local_cov(X, y, score, np.arange(n), t_rows, L, tol)
    cov0 = _local_cov(X, y, score, np.arange(n), c_rows, L, tol)
    c = ((cov1 + (F / (1 - F))[:, None] * cov0) * f[:, None]).sum(axis=0) / n / EF
    Ii = np.linalg.pinv(I)
    return float((g @ Ii @ g - c @ Ii @ c) / n)


def _local_cov(X, y, score, rows_from, rows_group, L, tol):
    nb = _nearest_in_group(score, rows_from, rows_group, L, tol, include_self=True)
    out = np.zeros((len(rows_from), X.shape[1]))
    for i, idx in enumerate(nb):
        if len(idx) < 2:
            continue
        Xi, yi = X[idx], y[idx]
        out[i] = ((Xi - Xi.mean(axis=0)) * (yi - yi.mean())[:, None]).sum(axis=0) / (len(idx) - 1)
    return out
