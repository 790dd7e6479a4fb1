"""Greedy nearest-neighbour matching, reproducing R MatchIt's algorithm (Ho, Imai, King &
Stuart 2011, J. Stat. Softw. 42(8); MatchIt >= 4.5.3 ``nn_matchC_vec`` / ``nn_matchC``).

Score distance (``distance`` = a propensity score), MatchIt's rules, which we follow exactly:

1. All units are sorted by score, ascending, ties kept in data order (R ``order``, stable).
2. Treated units are visited in ``m_order``: ``largest`` / ``smallest`` score first (stable:
   ties in data order), ``data`` (row order) or ``random`` (a seeded permutation; R's RNG
   differs from numpy's, so random orders are not comparable with R). With ``ratio = k`` there
   are k passes over the treated: every treated unit gets its 1st match before any its 2nd.
3. A treated unit takes the nearest still-available control to its left (smaller score, or an
   equal score that comes earlier in the sort) and to its right, and keeps the left one when
   ``|p_t - p_left| <= |p_t - p_right|`` (ties go left).
4. A caliper drops a side whose nearest available control is farther than the caliper.
5. ``exact`` strata are matched separately (as MatchIt does), with the order of rule 2 taken
   within each stratum.

Complexity: MatchIt rescans the availability vector after every match (O(n) per match, O(n1·n)
in all). We keep the available controls in two union-find "next available" forests over the
sorted controls (left and right, path compression), so finding the nearest available control is
amortised near O(1): the whole greedy pass is O(n log n) for the sort plus ~O(n1·α(n)).
With replacement, treated units do not interact, and the k nearest controls are found for all
treated at once with vectorised two-pointer steps.

Mahalanobis distance (``nn_mahalanobis``): MatchIt's transform (pooled within-group covariance of
the standardised covariates, generalised inverse if singular; factors expanded to one column per
level; distinct rows transformed once, so identical rows get bit-identical coordinates), then for
each treated unit in data order the nearest available control, the first minimum in data order
(``which_min``); with replacement the first ``ratio`` positions of libstdc++'s ``partial_sort``
(:func:`_partial_sort_first`), which is how MatchIt's ``nn_matchC`` breaks ties. Without
replacement we search a :class:`scipy.spatial.cKDTree` (growing k until every possible minimum is
in hand) instead of scanning every control. This is ``ties = "first"``; ``ties = "all"`` is in
models.matching.ties.

Output: a match matrix ``mm`` of shape ``(n_treated, ratio)`` holding row indices of controls,
``-1`` where no match was found.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

M_ORDERS = ("largest", "smallest", "data", "random")


def treated_order(score_t: np.ndarray | None, m_order: str, rng: np.random.Generator | None) -> np.ndarray:
    """Visiting order of treated units (positions among the treated)."""
    n1 = 0 if score_t is None else len(score_t)
    if m_order == "largest":
        return np.argsort(-score_t, kind="stable")
    if m_order == "smallest":
        return np.argsort(score_t, kind="stable")
    if m_order == "data":
        return np.arange(n1)
    if m_order == "random":
        if rng is None:
            raise ValueError("m_order='random' needs a seeded numpy Generator")
        return rng.permutation(n1)
    raise ValueError(f"m_order must be one of {M_ORDERS}, got {m_order!r}")


def _find_left(parent: list, j: int) -> int:
    # largest available node <= j; node 0 is the "none" sentinel (candidate c <-> node c+1)
    root = j
    while parent[root] != root:
        root = parent[root]
    while parent[j] != root:
        parent[j], j = root, parent[j]
    return root


def nn_score_without_replacement(score: np.ndarray, treat: np.ndarray, eligible: np.ndarray, ratio: int,
                                 order_t: np.ndarray, caliper: float | None, tol: float = 0.0,
                                 tied_out: np.ndarray | None = None) -> np.ndarray:
    """Greedy 1:k matching without replacement on a scalar score within one stratum.

    ``score``, ``treat`` (bool), ``eligible`` (bool, not discarded) cover the stratum's units;
    ``order_t`` gives the visiting order as positions among this stratum's treated units.
    Returns ``mm`` (n1_stratum x ratio) of positions within the stratum, -1 = unmatched.
    ``tied_out`` (bool, n1_stratum), if given, is set for treated units that had another available
    control within ``tol`` of the one taken (the tie was broken by MatchIt's rule)."""
    n = len(score)
    srt = np.argsort(score, kind="stable")
    is_cand = (~treat[srt]) & eligible[srt]
    cand_units = srt[is_cand]                       # available controls, sorted by score
    cand_score = score[cand_units].tolist()
    m = len(cand_units)
    before = np.cumsum(is_cand) - is_cand           # candidates strictly before each sorted position
    pos = np.empty(n, dtype=np.int64)
    pos[srt] = np.arange(n)
    t_units = np.flatnonzero(treat)
    n1 = len(t_units)
    mm = np.full((n1, ratio), -1, dtype=np.int64)
    if m == 0 or n1 == 0:
        return mm
    L_of_t = before[pos[t_units]].tolist()          # nearest-left candidate index is L-1, right is L
    s_t = score[t_units].tolist()
    elig_t = eligible[t_units].tolist()
    left = list(range(m + 1))                       # node c+1 <-> candidate c; 0 = none
    right = list(range(m + 1))                      # node c <-> candidate c; m = none
    cal = np.inf if caliper is None else float(caliper)
    remaining = m
    order = order_t.tolist()
    for r in range(ratio):
        for ti in order:
            if not elig_t[ti]:
                continue
            L = L_of_t[ti]
            st = s_t[ti]
            # left
            jl = _find_left(left, L) - 1            # node L = candidate L-1
            # right
            root = L
            while right[root] != root:
                root = right[root]
            j = L
            while right[j] != root:
                right[j], j = root, right[j]
            jr = root if root < m else -1
            dl = abs(st - cand_score[jl]) if jl >= 0 else np.inf
            dr = abs(st - cand_score[jr]) if jr >= 0 else np.inf
            if dl > cal:
                dl = np.inf
            if dr > cal:
                dr = np.inf
            if dl == np.inf and dr == np.inf:
                continue
            k = jl if dl <= dr else jr
            if tied_out is not None and not tied_out[ti]:
                if k == jl:
                    alt = dr <= dl + tol
                    if not alt:
                        j2 = _find_left(left, jl) - 1
                        alt = j2 >= 0 and st - cand_score[j2] <= min(dl + tol, cal)
                else:
                    alt = dl <= dr + tol
                    if not alt and jr + 1 < m:
                        root2 = jr + 1
                        while right[root2] != root2:
                            root2 = right[root2]
                        alt = root2 < m and cand_score[root2] - st <= min(dr + tol, cal)
                tied_out[ti] = alt
            mm[ti, r] = cand_units[k]
            left[k + 1] = k                         # remove candidate k from both forests
            right[k] = k + 1
            remaining -= 1
            if remaining == 0:
                return mm
    return mm


def nn_score_with_replacement(score: np.ndarray, treat: np.ndarray, eligible: np.ndarray, ratio: int,
                              caliper: float | None) -> np.ndarray:
    """k nearest controls per treated unit on a scalar score, with replacement (vectorised).

    Same tie rule as without replacement: step outward from the treated unit's sorted
    position, taking the left neighbour when it is at least as close."""
    n = len(score)
    srt = np.argsort(score, kind="stable")
    is_cand = (~treat[srt]) & eligible[srt]
    cand_units = srt[is_cand]
    cs = score[cand_units]
    m = len(cand_units)
    before = np.cumsum(is_cand) - is_cand
    pos = np.empty(n, dtype=np.int64)
    pos[srt] = np.arange(n)
    t_units = np.flatnonzero(treat)
    n1 = len(t_units)
    mm = np.full((n1, ratio), -1, dtype=np.int64)
    if m == 0 or n1 == 0:
        return mm
    st = score[t_units]
    ok_t = eligible[t_units]
    lp = before[pos[t_units]] - 1
    rp = lp + 1
    cal = np.inf if caliper is None else float(caliper)
    for r in range(ratio):
        dl = np.where(lp >= 0, np.abs(st - cs[np.clip(lp, 0, m - 1)]), np.inf)
        dr = np.where(rp < m, np.abs(st - cs[np.clip(rp, 0, m - 1)]), np.inf)
        dl[dl > cal] = np.inf
        dr[dr > cal] = np.inf
        found = ok_t & (np.isfinite(dl) | np.isfinite(dr))
        take_left = found & (dl <= dr)
        take_right = found & ~take_left
        k = np.where(take_left, lp, rp)
        mm[found, r] = cand_units[np.clip(k[found], 0, m - 1)]
        lp = np.where(take_left, lp - 1, lp)
        rp = np.where(take_right, rp + 1, rp)
    return mm


def mahalanobis_transform(X: np.ndarray, treat: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Rows mapped so that Euclidean distance = Mahalanobis distance with the pooled
    within-group covariance (MatchIt ``transform_covariates(method = "mahalanobis")``; Rubin
    1980). Constant columns are dropped; a singular covariance uses the generalised inverse."""
    X = np.asarray(X, dtype=float)
    keep = (X.max(axis=0) - X.min(axis=0)) >= np.sqrt(np.finfo(float).eps)
    X = X[:, keep]
    if X.shape[1] == 0:
        return np.zeros((len(X), 1))
    sd = X.std(axis=0, ddof=1)
    Z = (X - X.mean(axis=0)) / sd
    Ze = Z[eligible]
    te = treat[eligible]
    C = Ze.copy()
    for g in (True, False):
        C[te == g] -= C[te == g].mean(axis=0)
    ne = len(Ze)
    S = (C.T @ C) / (ne - 2)
    # S^-1 = root @ root.T from the eigen-decomposition of S itself, keeping eigenvalues above
    # 1e-8 of the largest: MatchIt's generalized_inverse() tolerance (R/aux_functions.R, a port of
    # MASS::ginv). A covariance that is singular in exact arithmetic (full dummy sets: a factor's
    # indicators sum to one) has a null eigenvalue of rounding size, ~1e-15 relative, whose sign
    # and size depend on the BLAS kernel; inverting first and decomposing the inverse (as before)
    # let that 1/1e-15 eigenvalue perturb every other eigenvector by ~eps * 1e15, so the matched
    # set changed with the machine (found on an AVX-512 machine). MatchIt 4.5.1 first tries
    # solve(), which succeeds up to a condition number of ~4.5e15: the two rules differ only for
    # covariances with a condition number between 1e8 and that, where R's own answer is rounding.
    vals, vecs = np.linalg.eigh((S + S.T) / 2)
    keep_ev = vals > 1e-8 * max(float(vals.max()), 0.0)
    root = vecs[:, keep_ev] / np.sqrt(vals[keep_ev])   # S^+ = root @ root.T
    # transform the distinct rows once: identical covariate rows then get bit-identical
    # coordinates (a BLAS product can round rows differently by position), so exact ties stay
    # exact ties whatever the row order or BLAS threading
    U, inv_idx = np.unique(Z, axis=0, return_inverse=True)
    Yu = np.column_stack([U @ root[:, j] for j in range(root.shape[1])])
    return Yu[np.asarray(inv_idx).reshape(-1)]


def mahalanobis_visit_key(X: np.ndarray, treat: np.ndarray, eligible: np.ndarray) -> np.ndarray:
    """Visiting key of treated units for ``ties = "all"`` without replacement on the Mahalanobis
    distance: the standardised covariates (the ``Z`` of :func:`mahalanobis_transform`, same
    constant columns dropped), each column oriented so that the treated mean is at least the
    control mean among eligible units. Blocks are visited in the lexicographic order of this key.

    Why not the transformed coordinates: the Mahalanobis matching problem is invariant to
    relabelling, translation and rescaling of any covariate, negative factors included, and so
    should be the order in which treated units choose. Coordinates from an eigen-decomposition
    carry arbitrary eigenvector signs, and a lexicographic order of raw covariates flips when a
    covariate is negated (an outcome's pre-trend of ``-y``). The oriented ``Z`` changes by
    rounding only under any such change (negation flips a column's values and its orientation
    sign exactly). A mean difference within ``1e-9`` of zero (rounding noise for standardised
    data) falls back to the sign of the treated third central moment, then to +1."""
    X = np.asarray(X, dtype=float)
    keep = (X.max(axis=0) - X.min(axis=0)) >= np.sqrt(np.finfo(float).eps)
    X = X[:, keep]
    if X.shape[1] == 0:
        return np.zeros((len(X), 1))
    Z = (X - X.mean(axis=0)) / X.std(axis=0, ddof=1)
    te, ce = treat & eligible, (~treat) & eligible
    if te.any() and ce.any():
        diff = Z[te].mean(axis=0) - Z[ce].mean(axis=0)
        zt = Z[te] - Z[te].mean(axis=0)
        skew = (zt ** 3).mean(axis=0)
        sign = np.where(np.abs(diff) > 1e-9, np.sign(diff), np.where(np.abs(skew) > 1e-9, np.sign(skew), 1.0))
        Z = Z * sign
    return Z


def snap_ties(md: np.ndarray, tol: float) -> np.ndarray:
    """Distances with rounding ties made exact: sorted values closer than ``tol`` to their
    predecessor join its group, and every member of a group takes the group's smallest value.

    Why: distinct covariate rows are often at exactly equal Mahalanobis distances from a treated
    unit in exact arithmetic (integer and 0/1 covariates: the controls at ``x + d`` and ``x - d``),
    but the computed distances differ in the last bits, and which one is smaller depends on the
    BLAS kernel and SIMD width of the machine. MatchIt's rule (``which_min``: the first minimum in
    data order; ``std::partial_sort`` with replacement) is meant for equal distances; applied to
    snapped distances it gives the same matched set on every machine. ``tol`` (``ties.TIE_RTOL``
    relative to the coordinates) is four orders of magnitude above rounding and far below any
    real difference between distances of distinct rows."""
    md = np.asarray(md, dtype=float)
    if md.size < 2 or tol <= 0:
        return md
    o = np.argsort(md, kind="stable")
    v = md[o]
    start = np.concatenate([[True], np.diff(v) > tol])
    out = np.empty_like(md)
    out[o] = v[np.flatnonzero(start)[np.cumsum(start) - 1]]
    return out


def _partial_sort_first(md: np.ndarray, k: int) -> np.ndarray:
    """Positions of the first ``k`` entries after libstdc++'s ``std::partial_sort(first, first + k,
    last, comp)`` with ``comp(a, b) = md[a] < md[b]`` over positions ``0..len-1`` -- what MatchIt's
    ``nn_matchC`` does with replacement to pick a treated unit's ``ratio`` nearest controls. It is
    not a stable sort: among distances tied at the k-th place, which positions survive depends on
    the heap (``__heap_select``: ``make_heap`` on the first k, then every later element strictly
    smaller than the heap top replaces it via ``__pop_heap``; then ``__sort_heap``). We follow the
    algorithm step for step (GCC's bits/stl_heap.h / stl_algo.h), visiting only later elements
    smaller than the initial maximum (no other element can enter the heap)."""
    n = len(md)
    if k >= n:
        return np.arange(n)
    h = list(range(k))
    v = md.tolist()

    def adjust(hole, length, value):
        top = hole
        child = hole
        while child < (length - 1) // 2:
            child = 2 * (child + 1)
            if v[h[child]] < v[h[child - 1]]:
                child -= 1
            h[hole] = h[child]
            hole = child
        if (length & 1) == 0 and child == (length - 2) // 2:
            child = 2 * (child + 1)
            h[hole] = h[child - 1]
            hole = child - 1
        parent = (hole - 1) // 2
        while hole > top and v[h[parent]] < v[value]:
            h[hole] = h[parent]
            hole = parent
            parent = (hole - 1) // 2
        h[hole] = value

    if k >= 2:  # make_heap
        parent = (k - 2) // 2
        while True:
            adjust(parent, k, h[parent])
            if parent == 0:
                break
            parent -= 1
    first_max = max(v[:k])
    for i in (np.flatnonzero(md[k:] < first_max) + k).tolist():
        if v[i] < v[h[0]]:
            adjust(0, k, i)       # __pop_heap(first, middle, i): *i = old top, then sift value i
    last = k                     # __sort_heap
    while last > 1:
        last -= 1
        value = h[last]
        h[last] = h[0]
        adjust(0, last, value)
    return np.array(h, dtype=np.int64)


def nn_mahalanobis(Y: np.ndarray, treat: np.ndarray, eligible: np.ndarray, ratio: int, replace: bool,
                   order_t: np.ndarray, tol: float = 0.0, tied_out: np.ndarray | None = None) -> np.ndarray:
    """Nearest neighbours on transformed covariates ``Y`` (see :func:`mahalanobis_transform`),
    MatchIt's ``nn_matchC`` rule exactly (``ties = "first"``): distances
    ``sqrt(sum((y_t - y_c)^2))`` to the eligible controls in data order; without replacement the
    first minimum (``which_min``: ties to the lowest row, exact comparison), with replacement the
    ``ratio`` first positions of libstdc++'s ``std::partial_sort`` (:func:`_partial_sort_first`).
    We search a k-d tree for the candidates (growing ``k`` until every control that could be
    the minimum is in hand) and compute the distances of those exactly as MatchIt does.
    ``tied_out`` flags treated units with another available control within ``tol`` of the
    boundary distance (more tied controls than places)."""
    t_units = np.flatnonzero(treat)
    c_units = np.flatnonzero((~treat) & eligible)
    n1, m = len(t_units), len(c_units)
    mm = np.full((n1, ratio), -1, dtype=np.int64)
    if m == 0 or n1 == 0:
        return mm
    Yc = Y[c_units]
    ok_t = eligible[t_units]

    def dist_to(y, idx=None):
        D = (Yc if idx is None else Yc[idx]) - y
        return np.sqrt(np.sum(D * D, axis=1))

    if replace:
        k = min(ratio, m)
        for ti in np.flatnonzero(ok_t).tolist():
            if m <= ratio:
                mm[ti, :m] = c_units
                continue
            md = snap_ties(dist_to(Y[t_units[ti]]), tol)
            pos = _partial_sort_first(md, k)
            mm[ti, :k] = c_units[pos]
            if tied_out is not None:
                dk = md[pos].max()
                tied_out[ti] = int((md <= dk + tol).sum()) > k
        return mm
    tree = cKDTree(Yc)
    used = np.zeros(m, dtype=bool)
    remaining = m
    for r in range(ratio):
        for ti in order_t.tolist():
            if not ok_t[ti] or remaining == 0:
                continue
            y = Y[t_units[ti]]
            k = min(8, m)
            j = -1
            while True:
                dist, idx = tree.query(y, k=k)
                idx = np.atleast_1d(idx)
                dist = np.atleast_1d(dist)
                avail = ~used[idx]
                if avail.any():
                    best = dist[avail].min()
                    # every control that could tie with (or, computed exactly, beat) the best
                    if k < m and dist[-1] <= best + 4 * tol + 1e-12 * max(best, 1.0):
                        k = min(2 * k, m)
                        continue
                    cand = idx[avail & (dist <= best + 4 * tol + 1e-12 * max(best, 1.0))]
                    cand.sort()                        # data order, as MatchIt's c_eligible
                    dd = snap_ties(dist_to(y, cand), tol)
                    j = int(cand[int(np.argmin(dd))])  # first minimum (data order among ties)
                    if tied_out is not None:
                        tied_out[ti] = tied_out[ti] or int((dd <= dd.min() + tol).sum()) > 1
                    break
                if k >= m:
                    break
                k = min(4 * k, m)
            if j < 0:
                continue
            used[j] = True
            remaining -= 1
            mm[ti, r] = c_units[j]
    return mm
