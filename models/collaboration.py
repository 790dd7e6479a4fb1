"""Collaboration outcomes: firm-year counts derived from an undirected edge list.

The cluster literature names collaboration — firms finding partners, and partners inside
the initiative — as the first effect of a cluster policy (Porter 1998, "Clusters and the
new economics of competition", HBR 76(6); Giuliani & Bell 2005, Research Policy 34(1), on
knowledge networks in clusters; Falck, Heblich & Kipar 2010, Research Policy 39(5), and
Nishimura & Okamuro 2011, J. Technology Transfer 36(1), who measure cluster effects on
R&D cooperation). :func:`collaboration_outcomes` turns edges ``(firm_a, firm_b, year)``
into four firm-year outcomes, estimated like any other outcome:

``n_partners``
    distinct partners of the firm in the year (an edge is undirected: (a, b) = (b, a); two
    edges of different kinds between the same pair in one year are one partner).
``partners_same_initiative``
    of those, partners that are members of an initiative the firm is a member of *in that
    year*: a spell covers ``join_year <= year <= leave_year`` (blank leave = still a member),
    the convention of the membership register.
``new_partners``
    partners with whom the firm had no edge in any earlier year of the file. Missing (NA)
    in the first covered year: nothing earlier is observed, so every partner would count as
    new (left censoring).
``share_partners_outside_region``
    partners whose region differs from the firm's / partners whose region is known, both
    regions taken in the edge's year (a partner without a panel row that year: its last
    observed region). NA when the firm has no partner (0/0) or without a region column.

Coverage: the edge list covers the years from its first to its last edge year. In a
covered year a firm without edges has 0 partners (0, not NA: no collaboration was
recorded); outside them every outcome is NA. The estimators drop firm-years with a missing
outcome (counted in the estimate flow), so a ratio outcome uses only firm-years with
partners — a conditional (intensive-margin) outcome, which the README says.

All counts are vectorised (integer codes, ``np.unique`` and merges on edge arrays); no
Python loop over firms or edges.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

OUTCOMES = ("n_partners", "partners_same_initiative", "new_partners", "share_partners_outside_region")
KINDS = ("co-patent", "joint project", "supplier", "other")


def _key(a: np.ndarray, b: np.ndarray, base: int) -> np.ndarray:
    return a.astype(np.int64) * base + b.astype(np.int64)


def collaboration_outcomes(panel: pd.DataFrame, edges: pd.DataFrame, membership: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per row of ``panel`` (columns firm_id, year and optionally region), the four outcomes of
    the module docstring, in the panel's row order (float64; NA as NaN).

    ``edges``: firm_a, firm_b, year (validated: no self-loops, ids of panel firms);
    ``membership``: firm_id, cluster_id, join_year, leave_year (leave missing = still in)."""
    n = len(panel)
    out = pd.DataFrame({c: np.full(n, np.nan) for c in OUTCOMES}, index=panel.index)
    if not len(edges) or not n:
        return out
    firms = pd.Index(pd.unique(pd.concat([panel["firm_id"].astype(str), edges["firm_a"].astype(str), edges["firm_b"].astype(str)], ignore_index=True)))
    nf = len(firms)
    a = firms.get_indexer(edges["firm_a"].astype(str))
    b = firms.get_indexer(edges["firm_b"].astype(str))
    ey = edges["year"].to_numpy(np.int64)
    y_lo, y_hi = int(ey.min()), int(ey.max())
    ny = y_hi - y_lo + 1
    assert nf * nf * ny < 2**63, "firm-pair-year keys overflow int64"  # 1M firms x 20 years: 2e13
    # directed, distinct (firm, partner, year): each undirected edge once in each direction
    src = np.concatenate([a, b])
    dst = np.concatenate([b, a])
    yr = np.concatenate([ey, ey]) - y_lo
    pair_year = np.unique((_key(src, dst, nf)) * ny + yr)
    yr = pair_year % ny
    pair = pair_year // ny
    src, dst = pair // nf, pair % nf
    fy = _key(src, yr, ny)  # firm-year key of each directed partner-year

    counts: dict[str, np.ndarray] = {}
    # n_partners
    counts["n_partners"] = np.ones(len(fy))
    # new_partners: the pair's first year is this year
    first = np.r_[True, pair[1:] != pair[:-1]]  # sorted by (pair, year): the first row of a pair is its first year
    counts["new_partners"] = first.astype(float)
    # partners_same_initiative: both ends active in one initiative in the year
    same = np.zeros(len(fy), bool)
    if membership is not None and len(membership):
        m = membership
        mf = firms.get_indexer(m["firm_id"].astype(str))
        ok = mf >= 0
        join = pd.to_numeric(m["join_year"]).to_numpy(np.float64)[ok]
        leave = pd.to_numeric(m["leave_year"]).to_numpy(np.float64, na_value=np.nan)[ok]
        cl = pd.factorize(m["cluster_id"].astype(str))[0][ok]
        mf = mf[ok]
        lo = np.clip(join, y_lo, y_hi + 1).astype(np.int64) - y_lo
        hi = np.clip(np.where(np.isnan(leave), y_hi, leave), y_lo - 1, y_hi).astype(np.int64) - y_lo
        length = np.maximum(hi - lo + 1, 0)
        rep = np.repeat(np.arange(len(mf)), length)
        offs = np.arange(rep.size) - np.repeat(np.cumsum(length) - length, length)
        active = pd.DataFrame({"f": mf[rep], "y": lo[rep] + offs, "c": cl[rep]}).drop_duplicates()
        d = pd.DataFrame({"i": np.arange(len(fy)), "f": src, "g": dst, "y": yr})
        hit = d.merge(active, on=["f", "y"]).merge(active.rename(columns={"f": "g"}), on=["g", "y", "c"])
        same[np.unique(hit["i"].to_numpy())] = True
    counts["partners_same_initiative"] = same.astype(float)
    # share outside the region: region of each end in the edge year
    have_region = "region" in panel
    if have_region:
        reg = panel["region"].astype("str")
        pf = firms.get_indexer(panel["firm_id"].astype(str))
        py = panel["year"].to_numpy(np.int64)
        rcode = pd.factorize(reg, use_na_sentinel=True)[0]  # -1: region missing
        rows = pd.DataFrame({"f": pf, "y": py, "r": rcode}).drop_duplicates(["f", "y"])
        firm_last = np.full(nf, -1, np.int64)
        lastr = rows.sort_values(["f", "y"], kind="stable").groupby("f")["r"].last()
        firm_last[lastr.index.to_numpy()] = lastr.to_numpy()

        def region_of(f: np.ndarray, y: np.ndarray) -> np.ndarray:
            r = pd.DataFrame({"f": f, "y": y + y_lo}).merge(rows, on=["f", "y"], how="left")["r"].to_numpy(np.float64, na_value=np.nan)
            return np.where(np.isnan(r), firm_last[f], r).astype(np.int64)

        rs, rd = region_of(src, yr), region_of(dst, yr)
        known = (rs >= 0) & (rd >= 0)
        counts["_known"] = known.astype(float)
        counts["_outside"] = (known & (rs != rd)).astype(float)

    # aggregate per firm-year and map onto the panel rows
    ufy, inv = np.unique(fy, return_inverse=True)
    agg = {k: np.bincount(inv, weights=v, minlength=ufy.size) for k, v in counts.items()}
    pf = firms.get_indexer(panel["firm_id"].astype(str))
    py = panel["year"].to_numpy(np.int64)
    covered = (py >= y_lo) & (py <= y_hi)
    row_key = _key(pf, np.clip(py - y_lo, 0, ny - 1), ny)
    pos = np.searchsorted(ufy, row_key)
    pos_c = np.minimum(pos, max(ufy.size - 1, 0))
    found = covered & (ufy[pos_c] == row_key)
    for k in ("n_partners", "partners_same_initiative", "new_partners"):
        v = np.where(found, agg[k][pos_c], 0.0)
        out[k] = np.where(covered, v, np.nan)
    out.loc[py == y_lo, "new_partners"] = np.nan  # left-censored: nothing earlier observed
    if have_region:
        known = np.where(found, agg["_known"][pos_c], 0.0)
        outside = np.where(found, agg["_outside"][pos_c], 0.0)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(covered & (known > 0), outside / np.where(known > 0, known, 1.0), np.nan)
        out["share_partners_outside_region"] = share
    return out
