"""Joint Wald tests of linear restrictions on estimated coefficients.

For coefficients :math:`\\hat\\beta` with covariance :math:`\\hat V` and restrictions
:math:`R\\beta = r` (here :math:`r = 0`), the Wald statistic is

.. math::  W = (R\\hat\\beta)' (R \\hat V R')^{-1} (R\\hat\\beta) \\sim \\chi^2_q

under the null, with :math:`q` = rank of :math:`R` (Wooldridge 2010, *Econometric Analysis
of Cross Section and Panel Data*, eq. 7.52). Used for the pre-trend test of an event study
(all leads jointly zero). The chi-square (not F) form is reported, as in pyfixest's
``wald_test(distribution="chi2")`` and the HonestDiD/event-study literature.
"""

from __future__ import annotations

import numpy as np
from scipy import stats


class SingularVcovError(ValueError):
    """R V R' is singular: the restrictions are not jointly testable with this vcov."""


def wald_test(beta, vcov, R=None, *, rcond: float = 1e-12) -> dict:
    """Chi-square Wald test of ``R beta = 0``.

    Parameters
    ----------
    beta : (k,) array of estimates.
    vcov : (k, k) covariance matrix of ``beta``.
    R : (q, k) restriction matrix; default the identity (all coefficients zero).
    rcond : relative eigenvalue threshold below which ``R V R'`` counts as singular.

    Returns
    -------
    dict with ``statistic`` (W), ``df`` (q) and ``p_value`` (upper chi2 tail).

    Raises
    ------
    SingularVcovError
        if ``R V R'`` is singular (e.g. a lead with zero variance, more restrictions
        than clusters allow, or linearly dependent restrictions); the message gives the
        smallest/largest eigenvalues so the user can see why.
    """
    beta = np.asarray(beta, dtype=float).reshape(-1)
    V = np.asarray(vcov, dtype=float)
    k = beta.size
    if V.shape != (k, k):
        raise ValueError(f"wald_test: vcov has shape {V.shape}, expected ({k}, {k})")
    R = np.eye(k) if R is None else np.atleast_2d(np.asarray(R, dtype=float))
    if R.shape[1] != k:
        raise ValueError(f"wald_test: R has {R.shape[1]} columns, expected {k}")
    q = R.shape[0]
    if q == 0:
        raise ValueError("wald_test: no restrictions to test (R has zero rows)")
    if not (np.all(np.isfinite(beta)) and np.all(np.isfinite(V))):
        raise SingularVcovError("wald_test: beta or vcov contains non-finite values")
    Rb = R @ beta
    M = R @ V @ R.T
    M = 0.5 * (M + M.T)
    eig = np.linalg.eigvalsh(M)
    top = float(np.max(np.abs(eig))) if eig.size else 0.0
    if top <= 0 or eig.min() <= rcond * top:
        raise SingularVcovError(
            f"wald_test: R V R' ({q}x{q}) is singular or not positive definite "
            f"(eigenvalues min {eig.min():.3g}, max {eig.max():.3g}); the {q} restrictions "
            "cannot be tested jointly with this covariance matrix (too few clusters, a "
            "coefficient with zero variance, or linearly dependent restrictions)."
        )
    stat = float(Rb @ np.linalg.solve(M, Rb))
    return {"statistic": stat, "df": int(q), "p_value": float(stats.chi2.sf(stat, q))}
