"""Separation in Poisson models with fixed effects.

Correia, Guimarães & Zylkin (2020, "Fast Poisson estimation with high-dimensional fixed
effects", Stata Journal 20(1); and 2021, "Verifying the existence of maximum likelihood
estimates for generalized linear models", arXiv:1903.01633): the Poisson (pseudo-)MLE
does not exist when some linear combination ``z = X gamma + alpha_i + lambda_t`` satisfies
``z = 0`` where ``y > 0`` and ``z >= 0`` where ``y = 0`` with ``z > 0`` somewhere. The
observations with ``z > 0`` are *separated*: their fitted mean goes to zero, they carry no
information on the identified coefficients, and dropping them gives the MLE of the
remaining parameters.

Two checks, in the order ppmlhdfe runs them:

1. :func:`drop_all_zero_groups` — fixed-effect groups whose outcome is always zero (a firm
   that never exports or never patents under firm FE; a year with no positive outcome under
   year FE). Iterated to a fixed point because one drop can create another.
2. :func:`relu_separated` — the iterative rectifier ("ReLU") algorithm of CGZ (2021, §4)
   for separation involving the regressors (e.g. an event-time dummy whose treated
   observations are all zero): repeatedly regress ``u`` on ``X`` and the fixed effects by
   weighted least squares with a large weight ``K`` on ``y > 0`` rows (forcing fitted
   values to 0 there), set ``u = max(xb, 0)`` on ``y = 0`` rows, and stop when all fitted
   values on ``y = 0`` rows are non-negative and those on ``y > 0`` rows are zero (both to
   ``tol``); rows with fitted value > 0 are separated.
"""

from __future__ import annotations

import numpy as np


def drop_all_zero_groups(y: np.ndarray, codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Flag rows of fixed-effect groups whose outcome sums to zero, iterated to a fixed point.

    Parameters
    ----------
    y : outcome (>= 0).
    codes : {reason: integer group codes per row}, e.g. ``{"all_zero_outcome": unit,
        "all_zero_period": time}``.

    Returns
    -------
    {reason: boolean mask of rows dropped for that reason} (masks are disjoint; a row is
    attributed to the first reason that removed it).
    """
    y = np.asarray(y, dtype=float)
    keep = np.ones(y.size, dtype=bool)
    out = {r: np.zeros(y.size, dtype=bool) for r in codes}
    changed = True
    while changed:
        changed = False
        for reason, c in codes.items():
            c = np.asarray(c)
            n = int(c.max()) + 1 if c.size else 0
            s = np.bincount(c[keep], weights=y[keep], minlength=n)
            present = np.bincount(c[keep], minlength=n) > 0
            zero_groups = present & (s <= 0)
            if zero_groups.any():
                hit = keep & zero_groups[c]
                out[reason] |= hit
                keep &= ~hit
                changed = True
    return out


def _demean(v: np.ndarray, w: np.ndarray, fes: list[np.ndarray], tol: float, maxiter: int) -> np.ndarray:
    """Weighted within transformation for several fixed effects (alternating projections).
    ``v`` is (n, p); returns v minus its weighted projection on the FE dummies."""
    v = v.copy()
    sw = [np.bincount(f, weights=w) for f in fes]
    scale = max(1.0, float(np.max(np.abs(v))) if v.size else 1.0)
    for _ in range(maxiter):
        delta = 0.0
        for f, s in zip(fes, sw):
            for j in range(v.shape[1]):
                m = np.bincount(f, weights=w * v[:, j], minlength=s.size) / np.where(s > 0, s, 1.0)
                v[:, j] -= m[f]
                delta = max(delta, float(np.max(np.abs(m))) if m.size else 0.0)
        if delta < tol * scale:  # relative: weights of ~1e5 leave ~1e-11 rounding noise
            break
    return v


def relu_separated(
    y: np.ndarray,
    X: np.ndarray | None,
    fes: list[np.ndarray],
    *,
    K: float | None = None,
    tol: float = 1e-6,
    maxiter: int = 100,
    demean_tol: float = 1e-10,
    demean_maxiter: int = 5000,
) -> np.ndarray:
    """Rows separated by the regressors and fixed effects (CGZ 2021 iterative rectifier).

    Returns a boolean mask (True = separated). ``X`` (n, k) may be None (FE only). The
    weight ``K`` on positive-outcome rows defaults to ``1 / sqrt(machine eps)``-scaled as in
    ppmlhdfe's ``relu`` check; ``tol`` is the zero threshold for fitted values.
    """
    y = np.asarray(y, dtype=float)
    n = y.size
    zero = y <= 0
    if not zero.any():
        return np.zeros(n, dtype=bool)
    X = np.zeros((n, 0)) if X is None else np.asarray(X, dtype=float).reshape(n, -1)
    if K is None:
        K = float(np.sqrt(1.0 / np.finfo(float).eps)) / 1000.0  # ~6.7e4
    w = np.where(zero, 1.0, K)
    Xd = _demean(X, w, fes, demean_tol, demean_maxiter) if X.shape[1] else X
    sw = np.sqrt(w)
    u = zero.astype(float)
    for _ in range(maxiter):
        ud = _demean(u[:, None], w, fes, demean_tol, demean_maxiter)[:, 0]
        if Xd.shape[1]:
            gamma, *_ = np.linalg.lstsq(Xd * sw[:, None], ud * sw, rcond=None)
            resid = ud - Xd @ gamma
        else:
            resid = ud
        xb = u - resid
        # a certificate needs xb = 0 on positive rows (enforced only approximately by K)
        # and xb >= 0 on zero rows, both up to tol
        pos_ok = not (~zero).any() or float(np.max(np.abs(xb[~zero]))) <= tol
        xb[np.abs(xb) < tol] = 0.0
        if pos_ok and np.all(xb[zero] >= 0):
            return zero & (xb > 0)
        u = np.where(zero, np.maximum(xb, 0.0), 0.0)
    return zero & (xb > 0)
