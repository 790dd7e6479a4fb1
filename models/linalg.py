"""Numerically careful least-squares core shared by the linear estimators.

``ols`` solves min_b ||W^{1/2}(y - X b)||_2 by Householder QR with column pivoting
(LAPACK ``geqp3`` through :func:`scipy.linalg.qr`) on the column-equilibrated design,
never by forming X'X: the forward error of QR least squares is of order
kappa(X) * eps (plus kappa(X)^2 * eps * ||r||/||X b||), whereas the normal equations
square the condition number (Golub & Van Loan 2013, *Matrix Computations*, 4th ed.,
§5.3.8; Higham 2002, *Accuracy and Stability of Numerical Algorithms*, §20.4).
Weighted least squares: rows scaled by sqrt(w).

Numerical rank is decided on the pivoted R (Businger & Golub 1965): column k is
treated as dependent when |R_kk| <= tol * |R_00| with tol = max(n, p) * eps.
A rank-deficient design raises :class:`models.errors.DesignError` naming the
dependent columns and the columns they are a combination of (read off
R11^{-1} R12). A full-rank design whose 2-norm condition number of the
equilibrated R exceeds ``max_cond`` raises too: beyond ~1/(1e3 eps) fewer than
about three significant digits survive in double precision.

Accuracy is checked against the NIST StRD linear regression sets
(tests/test_nist.py).

Used by: the outcome regressions of the DR/OR Callaway–Sant'Anna cells and the improved-DR
weighted regression (models/did/drdid.py), the wild cluster bootstrap and CRV1 (models/
inference/wild_bootstrap.py), the two-stage (Gardner/BJS) sandwich (models/did/_twostage.py),
the first-stage OLS production function (models/production/tfp.py), compressed TWFE
(models/did/es_moments.py checks conditioning before its closed-form solve). Not through
this core, by design: Newton/IRLS steps of the logit, Poisson and entropy-balancing fits
(``np.linalg.solve`` of a Hessian: an optimisation step, not a least-squares solution; the
fits' convergence is tested), the leave-one-cluster-out CRV3 blocks (k x k solves per
cluster), and the fixed-effect regressions run by pyfixest (checked against R fixest and plm).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import scipy.linalg as sla

from models.errors import DesignError

EPS = np.finfo(float).eps
_CONTROLLER = None


def single_thread_blas():
    """Context in which BLAS/LAPACK run on one thread.

    OpenBLAS splits a product (and LAPACK's blocked QR and triangular solves) differently
    with 1 and 2 threads, and its edge micro-kernels round differently from the full ones:
    ``R^-1 R^-T`` of a 30-column design changed in the last bits with the thread count,
    and a wild-bootstrap confidence bound obtained by bisection inherited it. The least-
    squares core runs single-threaded so that library results do not depend on the
    caller's thread setting (the CLI additionally pins the kernel: pipeline/cli.py). About
    17 microseconds per entry (threadpoolctl's controller is built once).
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1, user_api="blas")
#: default ceiling on kappa_2 of the column-equilibrated design (about 4.5e12):
#: kappa * eps > 1e-3, i.e. fewer than ~3 reliable digits, is refused.
MAX_COND = 1.0 / (1e3 * EPS)


@dataclass(frozen=True)
class OLSFit:
    """Result of :func:`ols`.

    beta: coefficients (p,); resid: y - X beta on the original (unweighted) scale (n,);
    rank: numerical rank (== p, otherwise DesignError is raised); cond: 2-norm condition
    number of the column-equilibrated (weighted) design; xtx_inv: (X'WX)^{-1}, from
    R^{-1} R^{-T} (never by inverting X'X); sigma2: sum(w r^2) / (n - p);
    se: classical standard errors sqrt(sigma2 * diag(xtx_inv)).
    """

    beta: np.ndarray
    resid: np.ndarray
    rank: int
    cond: float
    xtx_inv: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]
    sigma2: float = float("nan")
    se: np.ndarray = field(repr=False, default=None)  # type: ignore[assignment]


def _names(p: int, names: Sequence[str] | None) -> list[str]:
    if names is None:
        return [f"x{j}" for j in range(p)]
    names = [str(n) for n in names]
    if len(names) != p:
        raise ValueError(f"names has {len(names)} entries, X has {p} columns")
    return names


def _check_finite(arr: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(arr)):
        bad = np.flatnonzero(~np.isfinite(arr).reshape(len(arr), -1).all(axis=1))
        raise DesignError(
            f"{what} has {bad.size} rows with NaN/inf (first rows: {bad[:5].tolist()}); "
            "drop or impute them before estimation."
        )


def ols(
    X,
    y,
    w=None,
    *,
    names: Sequence[str] | None = None,
    max_cond: float = MAX_COND,
) -> OLSFit:
    """(Weighted) least squares by pivoted Householder QR.

    b = argmin sum_i w_i (y_i - x_i'b)^2. Raises DesignError when the design is rank
    deficient (naming the collinear columns) or kappa_2 of the equilibrated design
    exceeds ``max_cond``. Runs with single-threaded BLAS (:func:`single_thread_blas`).
    """
    with single_thread_blas():
        return _ols(X, y, w, names=names, max_cond=max_cond)


def _ols(X, y, w, *, names, max_cond) -> OLSFit:
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    n, p = X.shape
    cols = _names(p, names)
    if y.shape != (n,):
        raise ValueError(f"y has shape {y.shape}, expected ({n},)")
    if n < p:
        raise DesignError(f"design has {n} rows but {p} columns ({', '.join(cols)}): not estimable.")
    _check_finite(X, "design matrix X")
    _check_finite(y, "outcome y")
    if w is not None:
        w = np.asarray(w, dtype=float)
        if w.shape != (n,) or not np.all(np.isfinite(w)) or np.any(w < 0):
            raise DesignError("weights must be a finite, non-negative vector with one entry per row.")
        sw = np.sqrt(w)
        Xw, yw = X * sw[:, None], y * sw
    else:
        Xw, yw = X, y

    # column equilibration: kappa of the scaled design is what limits accuracy
    scale = np.sqrt(np.einsum("ij,ij->j", Xw, Xw))
    zero = scale == 0
    if zero.any():
        raise DesignError(
            f"design column(s) {', '.join(c for c, z in zip(cols, zero) if z)} are identically zero "
            "(after weighting): drop them or check the sample."
        )
    Xs = Xw / scale
    Q, R, piv = sla.qr(Xs, mode="economic", pivoting=True, check_finite=False)
    d = np.abs(np.diag(R))
    tol = max(n, p) * EPS * d[0]
    rank = int(np.sum(d > tol))
    if rank < p:
        dep = piv[rank:]
        base = piv[:rank]
        # dependent column k = Xs[:, base] @ z with z = R11^{-1} R12[:, k]
        Z = sla.solve_triangular(R[:rank, :rank], R[:rank, rank:], check_finite=False)
        parts = []
        for k, j in enumerate(dep):
            z = Z[:, k]
            big = np.abs(z) > 1e-8 * max(np.abs(z).max(), 1e-300)
            involved = [cols[base[i]] for i in np.flatnonzero(big)]
            parts.append(f"'{cols[j]}' ~ {' + '.join(repr(c) for c in involved) or 'constant 0'}")
        raise DesignError(
            f"design is rank deficient: rank {rank} < {p} columns. Collinear: "
            + "; ".join(parts)
            + ". Drop one of the collinear columns (e.g. a treatment absorbed by the fixed effects).",
        )
    cond = float(np.linalg.cond(R))
    if not cond <= max_cond:
        raise DesignError(
            f"design is ill-conditioned: condition number {cond:.3g} of the column-scaled design "
            f"exceeds {max_cond:.3g}; fewer than {max(0.0, -np.log10(cond * EPS)):.0f} digits would be "
            f"reliable in double precision. Worst-determined column: '{cols[piv[-1]]}'. "
            "Centre/rescale the regressors or drop near-collinear ones."
        )
    qty = Q.T @ yw
    bs = sla.solve_triangular(R, qty, check_finite=False)
    # one step of iterative refinement on the residual (Bjorck 1967): recovers the
    # digits lost to the kappa^2 * ||r|| term when residuals are large (Wampler4/5)
    for _ in range(2):
        bs = bs + sla.solve_triangular(R, Q.T @ (yw - Xs[:, piv] @ bs), check_finite=False)
    beta = np.empty(p)
    beta[piv] = bs / scale[piv]
    resid = y - X @ beta
    Rinv = sla.solve_triangular(R, np.eye(p), check_finite=False)
    cov_s = Rinv @ Rinv.T  # (Xs'Xs)^{-1} in pivoted order
    xtx_inv = np.empty((p, p))
    xtx_inv[np.ix_(piv, piv)] = cov_s / np.outer(scale[piv], scale[piv])
    rw = resid * (np.sqrt(w) if w is not None else 1.0)
    dof = n - p
    sigma2 = float(rw @ rw / dof) if dof > 0 else float("nan")
    # diag from row norms of R^{-1} (avoids cancellation in the product)
    var_s = np.einsum("ij,ij->i", Rinv, Rinv)
    se = np.empty(p)
    se[piv] = np.sqrt(sigma2 * var_s) / scale[piv]
    return OLSFit(beta=beta, resid=resid, rank=rank, cond=cond, xtx_inv=xtx_inv, sigma2=sigma2, se=se)


def solve_spd(A, b, *, max_cond: float = MAX_COND) -> np.ndarray:
    """Solve A x = b for symmetric positive definite A by Cholesky, after checking
    symmetry, definiteness and the condition number of the Jacobi-scaled matrix
    D^{-1/2} A D^{-1/2} (van der Sluis 1969: near-optimal diagonal scaling).
    Raises DesignError when A is not SPD or kappa exceeds ``max_cond``. Runs with
    single-threaded BLAS (:func:`single_thread_blas`)."""
    with single_thread_blas():
        return _solve_spd(A, b, max_cond=max_cond)


def _solve_spd(A, b, *, max_cond: float) -> np.ndarray:
    A = np.asarray(A, dtype=float)
    b = np.asarray(b, dtype=float)
    if A.ndim != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"A must be square, got shape {A.shape}")
    if not np.all(np.isfinite(A)) or not np.all(np.isfinite(b)):
        raise DesignError("matrix or right-hand side contains NaN/inf.")
    asym = np.max(np.abs(A - A.T)) if A.size else 0.0
    if asym > 1e-10 * max(np.max(np.abs(A)), 1e-300):
        raise DesignError(f"matrix is not symmetric (max |A - A'| = {asym:.3g}).")
    dg = np.diag(A)
    if np.any(dg <= 0):
        raise DesignError(
            f"matrix is not positive definite: diagonal entries {np.flatnonzero(dg <= 0).tolist()} <= 0 "
            "(a regressor with no variation?)."
        )
    s = 1.0 / np.sqrt(dg)
    As = A * np.outer(s, s)
    try:
        c = sla.cho_factor(As, check_finite=False)
    except np.linalg.LinAlgError as exc:
        raise DesignError(f"matrix is not positive definite (Cholesky failed: {exc}).") from None
    cond = float(np.linalg.cond(As))
    if not cond <= max_cond:
        raise DesignError(
            f"matrix is ill-conditioned: condition number {cond:.3g} (Jacobi-scaled) exceeds {max_cond:.3g}."
        )
    bs = b * (s if b.ndim == 1 else s[:, None])
    x = sla.cho_solve(c, bs, check_finite=False)
    return x * (s if b.ndim == 1 else s[:, None])
