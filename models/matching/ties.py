"""Ties in nearest-neighbour matching: ``ties = "all"`` matchers and the tie report.

Registers hold many firms with identical covariates, so the nearest control is often not
unique. Greedy matching then breaks the tie by visiting order (MatchIt: the first control in
data order; ``ties = "first"``, models.matching.nearest), and the answer depends on how firms
are numbered. ``ties = "all"`` uses every control tied at the nearest distance instead, with
the treated unit's weight split equally among them (Abadie & Imbens 2006, §2; Stata
``teffects nnmatch``, whose matching sets ``Omega(i)`` hold all controls within ``dtolerance``
of the M-th nearest distance). Nothing then depends on labels:

* with replacement, treated unit ``i`` is matched to ``J(i) = {j : d_ij <= d_(M)(i) + tol}``,
  ``d_(M)(i)`` its M-th smallest distance to an eligible control (within the caliper), each
  ``j`` with weight ``1/|J(i)|``;
* without replacement, treated units whose visiting key is tied (the same score, or identical
  Mahalanobis coordinates) form a *block* of size ``b``; blocks are visited by the key
  (``m_order`` largest/smallest score; with Mahalanobis distance the lexicographic order of the
  standardised covariates, each oriented so that treated exceed controls on average:
  models.matching.nearest.mahalanobis_visit_key, invariant to relabelling and to rescaling a
  covariate by any non-zero factor, as the distance is), and a block takes its ``b * ratio`` nearest still-available controls plus every
  available control tied with the last of them, in one pass, and every member of the block is
  matched to the whole set (one matched set = one subclass). Treated units in a block have the
  same distances to every control, so which member is "first" cannot matter.

Tie tolerance: distances ``d`` and ``d'`` are tied when ``|d - d'| <= tol`` with
``tol = TIE_RTOL * max|coordinate|`` (the score, or the Mahalanobis-transformed covariates).
Distances are differences of coordinates; two mathematically equal distances computed along
different paths (a treated unit halfway between two controls, a transform computed in another
summation order after the rows were relabelled) differ by a few units in the last place of the
coordinates, ~1e-16 of their magnitude, so 1e-12 is four orders of magnitude above rounding
noise and far below any distance that means something (propensity scores and standardised
covariates are O(1); a difference of 1e-12 in a score is no information). Identical rows give
bit-identical distances and are tied at any tolerance.

The tie report (every nearest-neighbour result's ``ties`` entry, and the pipeline's meta):
``treated_with_tied_controls`` — treated units whose nearest controls (the boundary of their
matched set) included more tied controls than places, so that ``first`` picked by order and
``all`` split the weight; ``treated_tied_in_order`` — treated units sharing their visiting key
with another (only matters without replacement); ``treated_order_contention`` — treated units
that, without replacement, did not get their unconstrained nearest distance because an earlier
unit took it (only matters when the visiting order itself depends on labels, ``m_order`` data or
random); ``relabel_can_change`` — under ``first``, whether renumbering the units could change
the matched set and so the estimate (False is a guarantee; True says it may). Under ``all`` it is
False unless ``m_order`` is data/random (which the pipeline rejects under ``all``).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

TIE_RTOL = 1e-12


def tie_tolerance(coords: np.ndarray) -> float:
    """Absolute tie tolerance for distances between rows of ``coords`` (see module docstring)."""
    a = np.abs(np.asarray(coords, dtype=float))
    scale = float(a.max()) if a.size else 1.0
    return TIE_RTOL * max(scale, 1e-300)


def blocks_by_key(keys: np.ndarray, tol: float) -> list[np.ndarray]:
    """Group positions whose key rows agree within ``tol`` in every coordinate (sorted
    lexicographically first; a block starts where any coordinate moves by more than ``tol``
    from the block's first row). Returns blocks in ascending lexicographic order."""
    K = np.atleast_2d(np.asarray(keys, dtype=float).T).T if np.ndim(keys) == 1 else np.asarray(keys, dtype=float)
    if K.ndim == 1:
        K = K[:, None]
    n = len(K)
    if n == 0:
        return []
    # sort on coordinates quantised at 1000 * tol, so that rounding noise in the coordinates
    # (a transform recomputed after relabelling) cannot reorder distinct blocks
    q = np.floor(K / (1000.0 * tol) + 0.5) if tol > 0 else K
    o = np.lexsort(q.T[::-1])
    Ks = K[o]
    blocks, start = [], 0
    for i in range(1, n + 1):
        if i == n or np.any(np.abs(Ks[i] - Ks[start]) > tol):
            blocks.append(np.sort(o[start:i]))
            start = i
    return blocks


def _csr(sets):
    ptr = np.zeros(len(sets) + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in sets])
    idx = np.concatenate([np.asarray(x, dtype=np.int64) for x in sets]) if sets else np.zeros(0, dtype=np.int64)
    return ptr, idx


def score_with_replacement_all(score, treat, eligible, ratio, caliper, tol):
    """``ties = all`` with replacement on a scalar score. Returns CSR sets ``(ptr, idx)`` over the
    stratum's treated units (control positions within the stratum) and a per-treated flag "had
    more tied controls than places". The M-th nearest distance comes from the greedy stepping of
    models.matching.nearest; the tie band ``[s - d_M - tol, s + d_M + tol]`` is then read off the
    sorted control scores (``searchsorted``), so the cost is O(n log n + sum |J(i)|)."""
    from .nearest import nn_score_with_replacement

    t_units = np.flatnonzero(treat)
    c_units = np.flatnonzero((~treat) & eligible)
    n1 = len(t_units)
    mm = nn_score_with_replacement(score, treat, eligible, ratio, caliper)
    cu = c_units[np.argsort(score[c_units], kind="stable")]
    cs = score[cu]
    got = mm >= 0
    dk = np.where(got, np.abs(score[np.clip(mm, 0, None)] - score[t_units][:, None]), -np.inf).max(axis=1)
    has = got.any(axis=1)
    st = score[t_units]
    lo = np.searchsorted(cs, st - dk - tol, side="left")
    hi = np.searchsorted(cs, st + dk + tol, side="right")
    cal = np.inf if caliper is None else float(caliper)
    sets, tied = [], np.zeros(n1, dtype=bool)
    for i in range(n1):
        if not has[i]:
            sets.append(np.zeros(0, dtype=np.int64))
            continue
        band = cu[lo[i]:hi[i]]
        d = np.abs(cs[lo[i]:hi[i]] - st[i])
        keep = (d <= dk[i] + tol) & (d <= cal)
        sets.append(np.sort(band[keep]))
        tied[i] = keep.sum() > got[i].sum()
    ptr, idx = _csr(sets)
    return ptr, idx, tied


def mahalanobis_with_replacement_all(Y, treat, eligible, ratio, tol):
    """``ties = all`` with replacement on Mahalanobis coordinates ``Y`` (Euclidean = Mahalanobis)."""
    t_units = np.flatnonzero(treat)
    c_units = np.flatnonzero((~treat) & eligible)
    n1, m = len(t_units), len(c_units)
    tied = np.zeros(n1, dtype=bool)
    if m == 0:
        return np.zeros(n1 + 1, dtype=np.int64), np.zeros(0, dtype=np.int64), tied
    tree = cKDTree(Y[c_units])
    k = min(ratio, m)
    sets = []
    for i, tu in enumerate(t_units.tolist()):
        if not eligible[tu]:
            sets.append(np.zeros(0, dtype=np.int64))
            continue
        dist, _ = tree.query(Y[tu], k=k)
        dk = float(np.atleast_1d(dist)[-1])
        cand = np.array(tree.query_ball_point(Y[tu], r=dk + 4 * tol), dtype=np.int64)
        dd = np.sqrt(((Y[c_units[cand]] - Y[tu]) ** 2).sum(axis=1))
        keep = dd <= np.sort(dd)[k - 1] + tol
        sets.append(np.sort(c_units[cand[keep]]))
        tied[i] = keep.sum() > k
    ptr, idx = _csr(sets)
    return ptr, idx, tied


def score_without_replacement_all(score, treat, eligible, ratio, blocks, caliper, tol):
    """``ties = all`` without replacement on a scalar score: ``blocks`` (lists of treated positions
    among the stratum's treated, in visiting order) each take their ``b * ratio`` nearest available
    controls and every available control tied with the last. Controls are kept sorted by score
    with "next available" pointers (path-compressed), so a block costs O(its set size)."""
    t_units = np.flatnonzero(treat)
    c_units = np.flatnonzero((~treat) & eligible)
    cu = c_units[np.argsort(score[c_units], kind="stable")]
    cs = score[cu].tolist()
    m = len(cu)
    left = list(range(m + 1))     # node c+1 <-> candidate c; 0 = none
    right = list(range(m + 1))    # node c <-> candidate c; m = none
    cal = np.inf if caliper is None else float(caliper)

    def find(par, j):
        root = j
        while par[root] != root:
            root = par[root]
        while par[j] != root:
            par[j], j = root, par[j]
        return root

    def remove(c):
        left[c + 1] = c
        right[c] = c + 1

    sets, tied = [], []
    for blk in blocks:
        tu = t_units[blk]
        if not eligible[tu[0]] or m == 0:
            sets.append(np.zeros(0, dtype=np.int64))
            tied.append(False)
            continue
        s = float(score[tu].min())
        p = _bisect(cs, s)
        need = len(blk) * ratio
        taken, last = [], None
        jl, jr = find(left, p) - 1, find(right, p)
        while True:
            dl = s - cs[jl] if jl >= 0 else np.inf
            dr = cs[jr] - s if jr < m else np.inf
            if dl > cal:
                dl = np.inf
            if dr > cal:
                dr = np.inf
            d = min(dl, dr)
            if d == np.inf:
                break
            if len(taken) >= need and d > last + tol:
                break
            if dl <= dr:
                taken.append(jl)
                remove(jl)
                jl = find(left, jl) - 1
            else:
                taken.append(jr)
                remove(jr)
                jr = find(right, jr)
            if len(taken) <= need:
                last = d
        sets.append(np.sort(cu[taken]) if taken else np.zeros(0, dtype=np.int64))
        tied.append(len(taken) > need)
    return sets, np.array(tied, dtype=bool)


def _bisect(a, x):
    import bisect

    return bisect.bisect_left(a, x)


def mahalanobis_without_replacement_all(Y, treat, eligible, ratio, blocks, tol):
    """``ties = all`` without replacement on Mahalanobis coordinates (see
    :func:`score_without_replacement_all`); nearest available controls by a k-d tree query whose
    ``k`` grows until the block's set (and its boundary tie group) is complete."""
    t_units = np.flatnonzero(treat)
    c_units = np.flatnonzero((~treat) & eligible)
    m = len(c_units)
    used = np.zeros(m, dtype=bool)
    tree = cKDTree(Y[c_units]) if m else None
    sets, tied = [], []
    remaining = m
    for blk in blocks:
        tu = t_units[blk]
        if not eligible[tu[0]] or remaining == 0:
            sets.append(np.zeros(0, dtype=np.int64))
            tied.append(False)
            continue
        need = min(len(blk) * ratio, remaining)
        y = Y[tu[0]]
        k = min(need + 8, m)
        while True:
            dist, idx = tree.query(y, k=k)
            dist, idx = np.atleast_1d(dist), np.atleast_1d(idx)
            av = ~used[idx]
            if av.sum() >= need:
                dn = np.sort(dist[av])[need - 1]
                if k >= m or dist[-1] > dn + tol:
                    break
            elif k >= m:
                break
            k = min(2 * k, m)
        av = ~used[idx]
        if not av.any():
            sets.append(np.zeros(0, dtype=np.int64))
            tied.append(False)
            continue
        dn = np.sort(dist[av])[min(need, int(av.sum())) - 1]
        sel = idx[av & (dist <= dn + tol)]
        used[sel] = True
        remaining -= len(sel)
        sets.append(np.sort(c_units[sel]))
        tied.append(len(sel) > need)
    return sets, np.array(tied, dtype=bool)
