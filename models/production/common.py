"""Shared pieces of the control-function production-function estimators.

Conventions for every estimator in this package (Olley & Pakes 1996; Levinsohn & Petrin
2003; Ackerberg, Caves & Frazer 2015; Wooldridge 2009):

.. math::  y_{it} = \\beta_0 + \\beta_l l_{it} + \\beta_k k_{it} [+ \\beta_m m_{it}] + \\omega_{it} + \\varepsilon_{it}

in logs of real value added (default; ``output="value_added"``) or real gross output
(``output="gross_output"``, where intermediates ``m`` are an input). Productivity follows a
first-order Markov process :math:`\\omega_{it} = g(\\omega_{i,t-1}) + \\xi_{it}` with ``g`` a
polynomial of degree ``g_degree`` (default 3; degree 1 = AR(1)).

Data arrive as :class:`Arrays`: numpy vectors sorted by firm and year with ``has_prev``
marking rows whose firm is also observed in the previous year (the previous row). Lags are
positional (row ``j - 1``), so a firm-block bootstrap that concatenates whole firms keeps
them valid without recomputation.

The second stage is GMM on :math:`E[\\xi_{it}(\\beta) z_{it}] = 0` with
:math:`\\omega_{it}(\\beta) = \\hat\\phi_{it} - x_{it}'\\beta` and :math:`\\xi` the residual of the
polynomial regression of :math:`\\omega_{it}` on :math:`\\omega_{i,t-1}` (concentrating out
``g``). Just-identified in every method here, so the weight matrix does not affect the
estimate; it is :math:`(Z'Z/n)^{-1}` for scaling. Solved by Levenberg–Marquardt on the
scaled moment vector from several starts (OLS and perturbations of it), keeping the
solution with the smallest objective.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations_with_replacement

import numpy as np
from scipy import optimize


@dataclass
class Arrays:
    """Estimation sample as aligned numpy arrays (sorted by firm, year)."""

    y: np.ndarray
    l: np.ndarray
    k: np.ndarray
    m: np.ndarray | None
    firm: np.ndarray  # integer firm codes
    has_prev: np.ndarray  # row j-1 is the same firm, previous year
    inv: np.ndarray | None = None  # log investment (OP proxy), NaN where unavailable
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.y.size

    def take(self, rows: np.ndarray, firm_blocks: bool = True) -> "Arrays":
        """Rows ``rows`` (whole firm blocks, in order); ``has_prev`` re-derived positionally."""
        hp = self.has_prev[rows].copy()
        # a row keeps its lag only if the row before it in the new order is its old predecessor
        prev_ok = np.zeros(rows.size, dtype=bool)
        prev_ok[1:] = rows[1:] == rows[:-1] + 1
        hp &= prev_ok
        return Arrays(
            y=self.y[rows],
            l=self.l[rows],
            k=self.k[rows],
            m=None if self.m is None else self.m[rows],
            firm=self.firm[rows],
            has_prev=hp,
            inv=None if self.inv is None else self.inv[rows],
        )


def poly(cols: list[np.ndarray], degree: int, include_linear: bool = True) -> np.ndarray:
    """All monomials of ``cols`` of total degree 1..``degree`` (no constant)."""
    X = np.column_stack(cols)
    out = []
    for d in range(1 if include_linear else 2, degree + 1):
        for comb in combinations_with_replacement(range(X.shape[1]), d):
            out.append(np.prod(X[:, comb], axis=1))
    return np.column_stack(out) if out else np.zeros((X.shape[0], 0))


def ols(y: np.ndarray, X: np.ndarray) -> np.ndarray:
    b, *_ = np.linalg.lstsq(X, y, rcond=None)
    return b


def standardise(cols: list[np.ndarray]) -> list[np.ndarray]:
    """Centre and scale before forming polynomials (numerical conditioning only)."""
    return [(c - c.mean()) / (c.std() or 1.0) for c in cols]


def lagged(x: np.ndarray, has_prev: np.ndarray) -> np.ndarray:
    """x_{t-1} aligned to rows with has_prev (NaN elsewhere)."""
    out = np.full(x.shape, np.nan)
    out[1:][has_prev[1:]] = x[:-1][has_prev[1:]]
    return out


@dataclass
class SecondStage:
    """Data of the GMM second stage on rows that have a lag."""

    phi: np.ndarray
    phi_lag: np.ndarray
    X: np.ndarray  # inputs whose elasticities are estimated here (n, p)
    X_lag: np.ndarray
    Z: np.ndarray  # instruments (n, p)
    g_degree: int = 3

    def xi(self, beta: np.ndarray) -> np.ndarray:
        w = self.phi - self.X @ beta
        wl = self.phi_lag - self.X_lag @ beta
        G = np.column_stack([np.ones_like(wl)] + [wl**d for d in range(1, self.g_degree + 1)])
        rho = ols(w, G)
        return w - G @ rho

    def moments(self, beta: np.ndarray) -> np.ndarray:
        return self.Z.T @ self.xi(beta) / self.Z.shape[0]


def gmm_second_stage(ss: SecondStage, starts: list[np.ndarray]) -> tuple[np.ndarray, float]:
    """Minimise g(b)' W g(b) with W = (Z'Z/n)^{-1} from each start; return the best."""
    n = ss.Z.shape[0]
    W = np.linalg.inv(ss.Z.T @ ss.Z / n)
    L = np.linalg.cholesky(W)

    def resid(b):
        return L.T @ ss.moments(b)

    best, best_obj = None, np.inf
    for s in starts:
        try:
            r = optimize.least_squares(resid, np.asarray(s, float), method="lm", xtol=1e-12, ftol=1e-14, gtol=1e-14, max_nfev=2000)
        except (np.linalg.LinAlgError, ValueError):
            continue
        obj = float(r.fun @ r.fun)
        if np.all(np.isfinite(r.x)) and obj < best_obj:
            best, best_obj = r.x, obj
    if best is None:
        raise np.linalg.LinAlgError("second-stage GMM failed from every start")
    return best, best_obj


def default_starts(b0: np.ndarray) -> list[np.ndarray]:
    """OLS start plus deterministic perturbations (multiple roots are common in ACF)."""
    b0 = np.asarray(b0, float)
    out = [b0]
    for d in (-0.2, 0.2):
        out.append(b0 + d)
    out.append(np.full_like(b0, 0.5))
    return out
