"""Regional specialisation indices on a region x sector matrix (regions in rows), with
EconGeo's conventions (Balland, R package EconGeo: ``Hachman``, ``Krugman.index``,
``Herfindahl``), s_rs = e_rs / e_r (sector share in the region), s_s = e_s / e (the
sector's share of the whole economy, the region included):

* Hachman (1995): HI_r = 1 / Σ_s LQ_rs s_rs, in (0, 1]; 1 = the region's structure is
  the economy's. Undefined quotients (e_s = 0) count as 0, as in EconGeo.
* Krugman (1991) specialisation: K_r = Σ_s |s_rs − s_s|, in [0, 2).
* Herfindahl (1959): H_r = Σ_s s_rs².

All cells enter (the LQ small-cell rule of the map is a reporting rule, not applied here).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _shares(mat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mat = np.asarray(mat, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        s_rs = mat / mat.sum(axis=1, keepdims=True)
    s_s = mat.sum(axis=0) / mat.sum()
    return s_rs, s_s


def hachman(mat) -> np.ndarray:
    s_rs, s_s = _shares(mat)
    with np.errstate(divide="ignore", invalid="ignore"):
        lq = s_rs / s_s
    lq = np.where(np.isfinite(lq), lq, 0.0)
    return 1.0 / (lq * s_rs).sum(axis=1)


def krugman(mat) -> np.ndarray:
    s_rs, s_s = _shares(mat)
    return np.abs(s_rs - s_s[None, :]).sum(axis=1)


def herfindahl(mat) -> np.ndarray:
    s_rs, _ = _shares(mat)
    return (s_rs**2).sum(axis=1)


def region_indices(cells: pd.DataFrame) -> pd.DataFrame:
    """Per (year, region): ``hachman``, ``krugman``, ``herfindahl`` from ``cells`` (year,
    region, sector, size)."""
    out = []
    for year, part in cells.groupby("year", sort=True):
        mat = part.pivot_table(index="region", columns="sector", values="size", aggfunc="sum", fill_value=0.0, observed=True).sort_index()
        keep = mat.sum(axis=1) > 0
        mat = mat[keep]
        if mat.empty:
            continue
        m = mat.to_numpy(float)
        out.append(pd.DataFrame({"year": year, "region": mat.index.astype(str), "hachman": hachman(m), "krugman": krugman(m), "herfindahl": herfindahl(m)}))
    if not out:
        return pd.DataFrame(columns=["year", "region", "hachman", "krugman", "herfindahl"])
    return pd.concat(out, ignore_index=True)
