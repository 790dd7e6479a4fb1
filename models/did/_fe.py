"""Exact least squares with unit and time fixed effects (plus a few covariates).

The model on a *fit sample* (rows with ``mask`` True) is

.. math::  y_{it} = \\alpha_i + \\lambda_t + x_{it}'\\gamma + e_{it}.

Instead of iterating (alternating projections, as fixest/pyfixest do up to a tolerance),
the normal equations are solved exactly by eliminating the high-dimensional unit block:
with :math:`A = D'D = \\mathrm{diag}(n_i)` (observations per unit), :math:`Z = [T, X]`
(time dummies and covariates, :math:`p = T + K` columns), :math:`B = D'Z` and
:math:`G = Z'Z`, the Schur complement :math:`S = G - B'A^{-1}B` is only :math:`p \\times p`:

.. math::  z = S^{+}(c_Z - B'A^{-1}c_D), \\qquad a = A^{-1}(c_D - B z)

for any right-hand side :math:`c = (c_D, c_Z)` in the column space of the design (the
one-dimensional null space :math:`(\\alpha + c, \\lambda - c)` is handled by the
pseudo-inverse; predictions :math:`\\alpha_i + \\lambda_t` are unique). Cost is
:math:`O(n p + N_{units} p^2 + p^3)`: linear in the number of firm-years, so 1M firms x 20
years is cheap.

This serves (i) the imputation / two-stage estimators (Borusyak, Jaravel & Spiess 2024;
Gardner 2021), where the first stage is fitted on untreated observations only and then
predicted for treated ones, and (ii) exact two-way residualisation (Frisch–Waugh–Lovell)
used for collinearity checks and independent TWFE checks.

Further fixed effects (``extra``: e.g. sector x year codes, :mod:`models.fixed_effects`) join
the low-dimensional block as dummy columns after the covariates, :math:`Z = [T, X, E]`; the
unit block is still eliminated exactly and :math:`S^{+}` handles the collinearity between
the blocks (sector x year dummies sum to the year dummies). Still a direct solve (no
iteration); :math:`p` grows by the number of extra levels, so this is meant for a few
hundred to a few thousand of them (cost :math:`O(N_{units} p^2 + p^3)`).
"""

from __future__ import annotations

import numpy as np


class TwoWayFE:
    """Normal-equation structure of the two-way FE design on the fit sample.

    Parameters
    ----------
    unit, time : integer codes ``0..n_units-1`` / ``0..n_times-1`` for *all* rows.
    X : (n, K) covariates for all rows, or None.
    mask : boolean (n,), rows in the fit sample (default all).
    extra : list of (codes (n,), n_levels) of further fixed effects (default none).
    """

    def __init__(self, unit, time, n_units: int, n_times: int, X=None, mask=None, extra=None):
        self.unit = np.asarray(unit, dtype=np.int64)
        self.time = np.asarray(time, dtype=np.int64)
        n = self.unit.size
        self.n_units, self.n_times = int(n_units), int(n_times)
        self.X = None if X is None or np.size(X) == 0 else np.asarray(X, dtype=float).reshape(n, -1)
        self.K = 0 if self.X is None else self.X.shape[1]
        self.mask = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        self.extra = [(np.asarray(c, dtype=np.int64), int(L)) for c, L in (extra or [])]
        self.L = sum(L for _, L in self.extra)
        m = self.mask
        u, t = self.unit[m], self.time[m]
        U, T = self.n_units, self.n_times
        self.n_i = np.bincount(u, minlength=U).astype(float)
        self.n_t = np.bincount(t, minlength=T).astype(float)
        C = np.bincount(u * T + t, minlength=U * T).reshape(U, T).astype(float)
        p = T + self.K + self.L
        B = np.empty((U, p))
        B[:, :T] = C
        G = np.zeros((p, p))
        G[:T, :T] = np.diag(self.n_t)
        if self.K:
            Xm = self.X[m]
            for k in range(self.K):
                B[:, T + k] = np.bincount(u, weights=Xm[:, k], minlength=U)
                G[:T, T + k] = np.bincount(t, weights=Xm[:, k], minlength=T)
            G[T : T + self.K, :T] = G[:T, T : T + self.K].T
            G[T : T + self.K, T : T + self.K] = Xm.T @ Xm
        if self.L:
            E = self._extra_dummies(m)  # sparse (n_m, L)
            B[:, T + self.K :] = (self._dummies(u, U).T @ E).toarray()
            Zd = self._dummies(t, T)
            G[:T, T + self.K :] = (Zd.T @ E).toarray()
            G[T + self.K :, :T] = G[:T, T + self.K :].T
            G[T + self.K :, T + self.K :] = (E.T @ E).toarray()
            if self.K:
                G[T + self.K :, T : T + self.K] = E.T @ Xm
                G[T : T + self.K, T + self.K :] = G[T + self.K :, T : T + self.K].T
        self.B = B
        self._G = G
        with np.errstate(divide="ignore", invalid="ignore"):
            self.inv_n = np.where(self.n_i > 0, 1.0 / self.n_i, 0.0)
        S = G - B.T @ (B * self.inv_n[:, None])
        S = 0.5 * (S + S.T)
        self.S_pinv = np.linalg.pinv(S, rcond=1e-11, hermitian=True)
        # rank of the Schur complement: T + K - (#connected components); used for dof
        ev = np.linalg.eigvalsh(S)
        self.rank_S = int(np.sum(ev > 1e-11 * max(ev.max(), 1.0)))

    @staticmethod
    def _dummies(codes, n_levels):
        from scipy import sparse

        codes = np.asarray(codes, dtype=np.int64)
        return sparse.csr_matrix((np.ones(codes.size), (np.arange(codes.size), codes)), shape=(codes.size, n_levels))

    def _extra_dummies(self, rows):
        """Sparse (rows, L) indicator matrix of the extra fixed effects, blocks in order."""
        from scipy import sparse

        return sparse.hstack([self._dummies(c[rows], L) for c, L in self.extra], format="csr")

    # -- right-hand sides ---------------------------------------------------------------
    def crossprod(self, W, rows=None) -> tuple[np.ndarray, np.ndarray]:
        """Design' W over ``rows`` (bool mask over all rows; default the fit sample):
        returns (c_D (U, m), c_Z (p, m))."""
        rows = self.mask if rows is None else np.asarray(rows, dtype=bool)
        W = np.asarray(W, dtype=float)
        W = W.reshape(W.shape[0], -1)[rows]
        u, t = self.unit[rows], self.time[rows]
        m = W.shape[1]
        cD = np.empty((self.n_units, m))
        cZ = np.empty((self.n_times + self.K + self.L, m))
        for j in range(m):
            cD[:, j] = np.bincount(u, weights=W[:, j], minlength=self.n_units)
            cZ[: self.n_times, j] = np.bincount(t, weights=W[:, j], minlength=self.n_times)
        if self.K:
            cZ[self.n_times : self.n_times + self.K] = self.X[rows].T @ W
        if self.L:
            cZ[self.n_times + self.K :] = self._extra_dummies(rows).T @ W
        return cD, cZ

    def solve(self, cD, cZ) -> tuple[np.ndarray, np.ndarray]:
        """Solve the normal equations for right-hand side (cD, cZ); returns (a, z) with
        a = unit effects (U, m) and z = [time effects; covariate coefficients] (p, m)."""
        z = self.S_pinv @ (cZ - self.B.T @ (cD * self.inv_n[:, None]))
        a = (cD - self.B @ z) * self.inv_n[:, None]
        return a, z

    def predict(self, a, z, rows=None) -> np.ndarray:
        """Fitted values a_i + b_t + x'g for ``rows`` (default all rows), shape (n_rows, m)."""
        rows = np.ones(self.unit.size, dtype=bool) if rows is None else np.asarray(rows, dtype=bool)
        u, t = self.unit[rows], self.time[rows]
        out = a[u] + z[: self.n_times][t]
        if self.K:
            out = out + self.X[rows] @ z[self.n_times : self.n_times + self.K]
        if self.L:
            out = out + self._extra_dummies(rows) @ z[self.n_times + self.K :]
        return out

    def fit(self, Y):
        """OLS of the columns of Y on the design over the fit sample: (a, z)."""
        cD, cZ = self.crossprod(Y)
        return self.solve(cD, cZ)

    def residualize(self, Y) -> np.ndarray:
        """Exact two-way (plus covariate) residuals of Y's columns on the fit sample rows."""
        Y = np.asarray(Y, dtype=float)
        Y2 = Y.reshape(Y.shape[0], -1)
        a, z = self.fit(Y2)
        res = Y2[self.mask] - self.predict(a, z, rows=self.mask)
        return res

    def estimable(self, rows, tol: float = 1e-8) -> np.ndarray:
        """For ``rows`` (bool mask over all rows), whether the fitted value there is unique,
        i.e. the row's design vector lies in the row space of the fit sample's design (an
        estimable function; Searle 1971, ch. 5). The design's null space is
        :math:`\\{(a, z): z \\in \\ker S,\\ a = -A^{-1}Bz\\}` (units with observations); a
        row is estimable iff its prediction does not move along any null vector (relative
        tolerance ``tol``). Rows of units without fit observations are not estimable."""
        rows = np.asarray(rows, dtype=bool)
        S = self._G - self.B.T @ (self.B * self.inv_n[:, None])  # the Schur complement of __init__
        ev, vec = np.linalg.eigh(0.5 * (S + S.T))
        null = vec[:, ev <= 1e-11 * max(float(ev.max()), 1.0)]
        ok = self.n_i[self.unit[rows]] > 0
        if null.shape[1]:
            a = -(self.B @ null) * self.inv_n[:, None]
            move = self.predict(a, null, rows=rows)  # (n_rows, k) change of the fitted value
            ok &= np.all(np.abs(move) <= tol * np.sqrt((null**2).sum(axis=0) + (a**2).sum(axis=0))[None, :], axis=1)
        return ok

    @property
    def n_params(self) -> int:
        """Number of identified parameters (units with obs + rank of Schur block)."""
        return int(np.sum(self.n_i > 0)) + self.rank_S
