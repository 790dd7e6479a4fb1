"""Exposure of firms to members within a distance ring (geographic spillovers).

A firm is *exposed* from the first year in which a member within ``radius`` of it has joined
(Butts 2023, "Difference-in-differences with geographic spillovers", arXiv:2107.09846: the
exposure mapping is "any treated unit within distance d"; Clarke 2017 uses the same rings).
Distances are Euclidean in the coordinates' own units (the generator and most registers use
projected kilometres; project latitude/longitude before use).

Computed without pairwise distances: for each distinct join year, in increasing order, one
k-d tree of the members who have joined by then answers "is there a member within radius?"
for the firms not yet exposed (one nearest-neighbour query each, O(log n)): a million firms
and twenty join years take seconds. One implementation, used by the generator
(:mod:`pipeline.simulate`, where the truth is known) and by :mod:`pipeline.groups`.
"""

from __future__ import annotations

import numpy as np


def ring_exposure(xy: np.ndarray, member: np.ndarray, join: np.ndarray, radius: float) -> np.ndarray:
    """Per firm: the first join year of a member within ``radius`` (excluding the firm itself),
    0 when none. ``xy`` (n, 2) coordinates (rows with a NaN are never exposed and never a
    source), ``member`` (n,) bool, ``join`` (n,) join years of the members."""
    from scipy.spatial import cKDTree

    xy = np.asarray(xy, dtype=float)
    member = np.asarray(member, dtype=bool)
    join = np.asarray(join, dtype=np.int64)
    ok = np.isfinite(xy).all(axis=1)
    src = member & ok
    out = np.zeros(len(xy), dtype=np.int64)
    todo = ok.copy()
    for year in np.unique(join[src]):
        pts = np.flatnonzero(src & (join <= year))
        tree = cKDTree(xy[pts])
        cand = np.flatnonzero(todo)
        if cand.size == 0:
            break
        # two nearest sources: a member's nearest source is itself (distance 0)
        k = 2 if pts.size > 1 else 1
        dist, idx = tree.query(xy[cand], k=k, distance_upper_bound=radius)
        dist = dist.reshape(cand.size, k)
        idx = idx.reshape(cand.size, k)
        valid = np.isfinite(dist) & (dist <= radius)
        src_id = np.where(valid, pts[np.minimum(idx, pts.size - 1)], -1)
        hit = (valid & (src_id != cand[:, None])).any(axis=1)
        out[cand[hit]] = year
        todo[cand[hit]] = False
    return out
