"""Multiple-testing adjustments across outcomes / estimators / event times.

* **Holm (1979)** step-down, "A simple sequentially rejective multiple test procedure",
  Scand. J. Statistics 6: with ``p_(1) <= ... <= p_(m)``,
  ``p_adj_(i) = max_{j <= i} min(1, (m - j + 1) p_(j))``; controls the family-wise error
  rate (FWER) under any dependence. Identical to statsmodels ``multipletests(method="holm")``.
* **Romano & Wolf (2005, Econometrica 73(4); 2016, Stat. & Prob. Letters 113)** step-down
  with bootstrap max-t statistics, which exploits the dependence between the tests. Given
  the observed ``t_j`` and a ``B x m`` matrix of bootstrap t statistics centred under the
  null (e.g. ``(beta*_b - beta_hat) / se*_b``, or WCR draws), order hypotheses by ``|t|``
  descending; for step ``s`` the bootstrap distribution of ``max_{j in remaining} |t*_{bj}|``
  gives ``p_init_s = #{b: max >= |t_(s)|} / B`` and the adjusted p-values are the running
  maxima ``p_adj_(s) = max(p_init_s, p_adj_(s-1))`` (the algorithm of hdm's
  ``p_adjust(method = "RW")``, used by wildrwolf). ``plus_one=True`` uses
  ``(# + 1) / (B + 1)`` as Stata's ``rwolf`` (Clarke, Romano & Wolf 2020, Stata Journal).
"""

from __future__ import annotations

import numpy as np

from models.errors import BadInputError

__all__ = ["holm", "romano_wolf", "influence_t_boot"]


def holm(p_values, alpha: float | None = None):
    """Holm step-down adjusted p-values (and reject flags if ``alpha`` is given)."""
    p = np.asarray(p_values, dtype=float).ravel()
    if np.any(np.isnan(p)) or np.any((p < 0) | (p > 1)):
        raise BadInputError("holm: p-values must lie in [0, 1] without missing values")
    m = p.size
    order = np.argsort(p, kind="stable")
    stepped = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adj_sorted = np.maximum.accumulate(stepped)
    adj = np.empty(m)
    adj[order] = adj_sorted
    if alpha is None:
        return adj
    return adj, adj <= alpha


def romano_wolf(t_stats, t_boot, plus_one: bool = False) -> np.ndarray:
    """Romano-Wolf step-down adjusted p-values from bootstrap t statistics.

    Parameters
    ----------
    t_stats:
        Observed t statistics, length m.
    t_boot:
        ``B x m`` bootstrap t statistics, centred under each null (draw b of all m
        statistics must come from the same resample so their dependence is kept).
    plus_one:
        ``(count + 1) / (B + 1)`` instead of ``count / B``.
    """
    t = np.abs(np.asarray(t_stats, dtype=float).ravel())
    tb = np.abs(np.asarray(t_boot, dtype=float))
    if tb.ndim != 2 or tb.shape[1] != t.size:
        raise BadInputError(f"romano_wolf: t_boot must be B x {t.size}, got shape {tb.shape}")
    if not np.all(np.isfinite(t)) or not np.all(np.isfinite(tb)):
        raise BadInputError("romano_wolf: non-finite t statistics")
    B, m = tb.shape
    order = np.argsort(-t, kind="stable")
    # max over the remaining hypotheses {order[s], ..., order[m-1]}: reverse cumulative max
    rev_max = np.maximum.accumulate(tb[:, order[::-1]], axis=1)[:, ::-1]  # (B, m)
    counts = np.sum(rev_max >= t[order][None, :], axis=0)
    p_init = (counts + 1) / (B + 1) if plus_one else counts / B
    p_init = np.minimum(1.0, p_init)
    adj_sorted = np.maximum.accumulate(p_init)
    adj = np.empty(m)
    adj[order] = adj_sorted
    return adj


def influence_t_boot(influences, ses, draws: int, seed: int, chunk: int = 2048) -> np.ndarray:
    """Joint multiplier-bootstrap t statistics (``draws x m``) of m estimates from their
    per-unit influence functions, with ONE Rademacher weight per unit and draw shared by all
    m estimates (so their dependence is kept, as Romano–Wolf needs):

        t*_bj = (sum_i v_bi psi_ij / n_j) / se_j

    ``influences``: m dicts ``{"ids", "psi", "n"}`` (units absent from an estimate contribute
    0 to it). Units are taken in sorted-id order in fixed chunks, each chunk's weights from its
    own child of ``numpy.random.SeedSequence(seed)``: the draws do not depend on thread count
    or on the order of the inputs' rows. Memory O(draws x chunk)."""
    m = len(influences)
    if m == 0:
        return np.zeros((draws, 0))
    ids = np.unique(np.concatenate([np.asarray(f["ids"]).astype(str) for f in influences]))
    A = np.zeros((ids.size, m))
    for j, f in enumerate(influences):
        pos = np.searchsorted(ids, np.asarray(f["ids"]).astype(str))
        A[pos, j] = np.asarray(f["psi"], dtype=float) / (float(f["n"]) * float(ses[j]))
    out = np.zeros((draws, m))
    n_chunks = -(-ids.size // chunk)
    for c, child in zip(range(n_chunks), np.random.SeedSequence(seed).spawn(n_chunks)):
        rows = slice(c * chunk, min((c + 1) * chunk, ids.size))
        v = np.random.default_rng(child).integers(0, 2, size=(draws, rows.stop - rows.start), dtype=np.int8)
        out += (2.0 * v - 1.0) @ A[rows]
    return out
