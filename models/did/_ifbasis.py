"""What analytic inference on Callaway-Sant'Anna estimates needs from the influence functions.

Every estimate the CS pipeline reports -- a cell ATT(g,t) or an aggregation of aggte -- has
an influence function that is a linear combination of the cell influence functions
:math:`\\Psi` (n x k) and the cohort indicators :math:`G` (n x H, one column per cohort,
never treated included; they carry the estimated-weights term "wif" of aggte):

.. math::  f = \\Phi v, \\qquad \\Phi = [\\Psi, G], \\qquad v \\in \\mathbb R^{k+H}.

Its analytic variance is :math:`\\sum_c (\\sum_{i\\in c} f_i)^2 / n^2` (c = units, or the
clusters of ``clustervar``), a quadratic form :math:`v' M v / n^2` in the "meat"
:math:`M = S'S` with :math:`S` the cluster sums of :math:`\\Phi`. Two representations:

* :class:`DenseBasis` -- holds :math:`\\Psi` (att_gt's in-memory path); evaluates
  :math:`\\Phi v` densely (O(n k m)) and is the only one that can feed the multiplier
  bootstrap or return per-unit aggregated influence functions;
* :class:`GramBasis` -- holds only :math:`M` ((k+H) x (k+H)), e.g. computed from
  per-cohort moments of the outcome (:mod:`models.did.cs_moments`); no per-unit data.

Both give the same numbers up to floating-point rounding.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ..inference.multiplier import cluster_sums


class DenseBasis:
    """Dense influence functions: ``psi0`` (n x k, NaN cells zeroed), per-unit cohort
    position ``cohort_pos`` (index into the H cohort columns) and ``cluster`` codes."""

    dense = True

    def __init__(self, psi0: np.ndarray, cohort_pos: np.ndarray, n_cohorts: int, cluster: np.ndarray | None):
        self.psi0, self.cohort_pos, self.H, self.cluster = psi0, cohort_pos, n_cohorts, cluster
        self.k = psi0.shape[1]

    def functions(self, V: np.ndarray) -> np.ndarray:
        """Per-unit influence functions :math:`\\Phi V` (n x m)."""
        V = V if V.ndim == 2 else V[:, None]
        W = V[: self.k]
        nz = np.flatnonzero((W != 0).any(axis=1))  # the cells used (NaN counts as used)
        if nz.size > self.k // 4:  # a column copy of psi would cost more memory than it saves time
            return self.psi0 @ W + V[self.k :][self.cohort_pos]
        return self.psi0[:, nz] @ W[nz] + V[self.k :][self.cohort_pos]

    def quad(self, V: np.ndarray) -> np.ndarray:
        """:math:`V' M V` (m x m)."""
        S = cluster_sums(self.functions(V), self.cluster)
        return S.T @ S

    def quad_diag(self, V: np.ndarray) -> np.ndarray:
        S = cluster_sums(self.functions(V), self.cluster)
        return np.einsum("ij,ij->j", S, S)

    def cells_quad(self, idx: np.ndarray) -> np.ndarray:
        S = cluster_sums(self.psi0[:, idx], self.cluster)
        return S.T @ S

    def cells_quad_diag(self) -> np.ndarray:
        S = cluster_sums(self.psi0, self.cluster)
        return np.einsum("ij,ij->j", S, S)


class GramBasis:
    """Only the meat :math:`M` ((k+H) x (k+H)) with k cells."""

    dense = False

    def __init__(self, meat: np.ndarray, k: int):
        self.M, self.k = meat, k
        self.H = meat.shape[0] - k

    def functions(self, V: np.ndarray) -> np.ndarray:
        raise ConfigError(
            "per-unit influence functions are not available: this ATT(g,t) result was computed from "
            "sufficient statistics (engine duckdb); the multiplier bootstrap and uniform bands need the "
            "in-memory path (engine: pandas) -- or set bstrap: false and cband: false"
        )

    def quad(self, V: np.ndarray) -> np.ndarray:
        V = V if V.ndim == 2 else V[:, None]
        return V.T @ self.M @ V

    def quad_diag(self, V: np.ndarray) -> np.ndarray:
        V = V if V.ndim == 2 else V[:, None]
        return np.einsum("ij,ij->j", V, self.M @ V)

    def cells_quad(self, idx: np.ndarray) -> np.ndarray:
        return self.M[np.ix_(idx, idx)]

    def cells_quad_diag(self) -> np.ndarray:
        return np.diag(self.M)[: self.k].copy()
