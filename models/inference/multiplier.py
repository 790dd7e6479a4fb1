"""Multiplier bootstrap for influence-function estimators, with sup-t uniform bands.

For an estimator with influence function :math:`\\psi_i` (n x k, scaled so that
:math:`\\hat\\theta-\\theta = n^{-1}\\sum_i\\psi_i`), each bootstrap draw is
:math:`\\hat\\theta^*_b - \\hat\\theta = n^{-1}\\sum_i V_{ib}\\psi_i` with i.i.d. Rademacher
multipliers :math:`V_{ib}\\in\\{-1,1\\}` (Callaway & Sant'Anna 2021, Algorithm 1; R did's
``mboot``). With a cluster variable the influence function is first summed within clusters
and one multiplier is drawn per cluster (Remark 10 there).

Following R did exactly:

* ``bres = sqrt(G) * mean_c(V_c S_c)`` with ``G`` clusters (``G = n`` without clustering);
* bootstrap standard error ``se = IQR(bres) / (z_.75 - z_.25) * sqrt(G) / n`` (robust to
  heavy tails), IQR from type-1 (inverse-ECDF) quantiles;
* sup-t critical value: the (1-alpha) type-1 quantile over draws of
  :math:`\\max_j |bres_{bj}| / \\hat\\sigma_j` (uniform band over the k parameters);
* columns with (numerically) zero variance are left out (se NaN).

Multipliers come from ``numpy.random.default_rng(seed)``; they are drawn in blocks of rows
so memory stays O(block x n).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

_EPS10 = np.sqrt(np.finfo(float).eps) * 10


def _type1(sorted_col: np.ndarray, p: float) -> float:
    nb = sorted_col.shape[0]
    return sorted_col[int(np.ceil(p * nb)) - 1]


def cluster_sums(inf_func: np.ndarray, cluster: np.ndarray | None) -> np.ndarray:
    """Sum influence-function rows within clusters (``cluster``: integer codes per row)."""
    if cluster is None:
        return inf_func
    G = int(cluster.max()) + 1
    out = np.zeros((G, inf_func.shape[1]))
    np.add.at(out, cluster, inf_func)
    return out


def mboot(
    inf_func: np.ndarray,
    *,
    cluster: np.ndarray | None = None,
    biters: int = 999,
    alpha: float = 0.05,
    seed: int | np.random.Generator = 0,
    block: int | None = None,
) -> dict:
    """Multiplier bootstrap of an n x k influence-function matrix.

    Returns ``{"se": (k,), "crit_val": float, "bres": (biters, k)}``.
    """
    psi = np.asarray(inf_func, dtype=float)
    if psi.ndim == 1:
        psi = psi[:, None]
    n, k = psi.shape
    S = cluster_sums(psi, cluster)
    G = S.shape[0]
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    S = np.nan_to_num(S, nan=0.0)
    block = block or max(1, min(biters, 4_000_000 // max(G, 1)))
    bres = np.empty((biters, k))
    done = 0
    while done < biters:
        m = min(block, biters - done)
        V = rng.integers(0, 2, size=(m, G), dtype=np.int8).astype(float) * 2.0 - 1.0
        bres[done : done + m] = (V @ S) / np.sqrt(G)  # sqrt(G) * mean_c(V S)
        done += m
    ok = np.isfinite(bres.sum(axis=0)) & ((bres**2).sum(axis=0) > _EPS10)
    if np.isnan(psi).any():
        ok &= ~np.isnan(psi).any(axis=0)
    se = np.full(k, np.nan)
    iqr_norm = stats.norm.ppf(0.75) - stats.norm.ppf(0.25)
    sigma = np.full(k, np.nan)
    for j in np.flatnonzero(ok):
        b = np.sort(bres[:, j])
        sigma[j] = (_type1(b, 0.75) - _type1(b, 0.25)) / iqr_norm
    se[ok] = sigma[ok] * np.sqrt(G) / n
    crit = np.nan
    good = ok & (sigma > _EPS10)
    if good.any():
        bT = np.max(np.abs(bres[:, good] / sigma[good]), axis=1)
        bT = np.sort(bT[np.isfinite(bT)])
        if bT.size:
            crit = float(_type1(bT, 1 - alpha))
    return {"se": se, "crit_val": crit, "bres": bres}
