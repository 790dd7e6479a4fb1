"""Entropy balancing for the ATT (Hainmueller 2012, Political Analysis 20(1), 25-46).

Control weights ``w_j`` minimise the Kullback-Leibler divergence ``sum_j w_j log(w_j / q_j)``
from base weights ``q`` (uniform) subject to ``sum_j w_j c_r(X_j) = m_r`` (the treated
moments: means, and with ``moments = 2`` also the means of squares of non-binary covariates)
and ``sum_j w_j = 1``. The solution is ``w_j ∝ q_j exp(c(X_j)'λ)``, with λ minimising the
convex dual ``log sum_j q_j exp((c(X_j) - m)'λ)``. We solve the dual by damped Newton steps
(gradient = weighted moment gap, Hessian = weighted covariance of the centred constraints),
with constraints standardised by their control SD for conditioning (the weights are invariant to
that scaling), until the largest standardised moment gap is below ``tol`` (default 1e-10).

Returned weights: treated 1, controls ``n_treated * w_j`` (so the control weights sum to the
number of treated, as WeightIt/ebal normalise for the ATT).
"""

from __future__ import annotations

import numpy as np

from models.errors import DesignError


def constraint_matrix(X: np.ndarray, moments: int = 1) -> np.ndarray:
    X = np.asarray(X, dtype=float)
    if moments >= 2:
        nonbin = np.array([len(np.unique(X[:, j])) > 2 for j in range(X.shape[1])], dtype=bool)
        X = np.column_stack([X, X[:, nonbin] ** 2])
    return X


def entropy_balance(X: np.ndarray, treat: np.ndarray, moments: int = 1, tol: float = 1e-10,
                    max_iter: int = 200) -> tuple[np.ndarray, dict]:
    """ATT entropy-balancing weights. Returns ``(weights, info)`` where info holds the number
    of Newton iterations and ``max_abs_gap`` (standardised units)."""
    t = np.asarray(treat, dtype=bool)
    Z = constraint_matrix(X, moments)
    Zc, Zt = Z[~t], Z[t]
    if len(Zc) == 0 or len(Zt) == 0:
        raise DesignError("entropy balancing needs treated and control units")
    target = Zt.mean(axis=0)
    sd = Zc.std(axis=0, ddof=1)
    const = ~(sd > 0)
    if const.any():
        bad = np.flatnonzero(const)
        gap = np.abs(Zc[0, const] - target[const])
        if np.any(gap > 1e-12):
            raise DesignError(f"entropy balancing: constraint column(s) {bad.tolist()} are constant among controls "
                              "but differ from the treated mean: the moments cannot be balanced (no common support)")
        Zc, target, sd = Zc[:, ~const], target[~const], sd[~const]
    C = (Zc - target) / sd
    lam = np.zeros(C.shape[1])

    def probs(l):
        a = C @ l
        p = np.exp(a - a.max())
        return p / p.sum()

    def dual(l):
        a = C @ l
        m = a.max()
        return m + np.log(np.exp(a - m).sum())

    it = 0
    p = probs(lam)
    g = C.T @ p
    for it in range(1, max_iter + 1):
        if np.max(np.abs(g)) < tol:
            break
        H = (C * p[:, None]).T @ C - np.outer(g, g)
        try:
            step = np.linalg.solve(H + 1e-14 * np.eye(len(g)), g)
        except np.linalg.LinAlgError:
            step = np.linalg.lstsq(H, g, rcond=None)[0]
        f0, s = dual(lam), 1.0
        while s > 1e-10:
            cand = lam - s * step
            if dual(cand) <= f0 - 1e-4 * s * (g @ step):
                break
            s /= 2
        lam = lam - s * step
        p = probs(lam)
        g = C.T @ p
    gap = float(np.max(np.abs(g))) if len(g) else 0.0
    if not gap < max(tol, 1e-8):
        raise DesignError(
            f"entropy balancing did not converge (largest standardised moment gap {gap:.2e} after {it} Newton steps): "
            "the treated moments lie outside the controls' convex hull (no common support). Use fewer moments or covariates."
        )
    w = np.zeros(len(t))
    w[t] = 1.0
    w[~t] = p * t.sum()
    return w, {"iterations": it, "max_abs_gap": gap}
