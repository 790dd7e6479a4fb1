"""Location quotients (Florence 1939; the Hoover–Balassa index).

    LQ_rs = (e_rs / e_r) / (e_s / e)

with e_rs the size (employment by default) of sector s in region r, e_r the region's
total, e_s the sector's total and e the total of the whole panel in the same year. Argument
names and order follow R REAT's ``locq(e_ij, e_j, e_i, e)`` (Wieland 2019, *REGION* 6(3)),
whose documented example ``locq(1714, 79006, 879213, 15593224) = 0.3847623`` is a stored
reference test. ``LQ >= 1`` marks a specialisation; as EconGeo's binary rule
(``location.quotient(mat, binary = TRUE)`` sets values *below* 1 to 0 and *above* 1 to 1) a
quotient of exactly 1 stays specialised.

Small-cell rule (:func:`location_quotients`): a cell with fewer than ``min_cell_firms``
distinct firms gets no LQ (missing, flag ``small_cell``); its size still counts in the
region, sector and national totals, so the other cells' quotients do not change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def locq(e_ij, e_j, e_i, e):
    """REAT ``locq``: (e_ij / e_j) / (e_i / e); NaN where a denominator is zero."""
    e_ij, e_j, e_i, e = (np.asarray(x, dtype=float) for x in (e_ij, e_j, e_i, e))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = (e_ij / e_j) / (e_i / e)
    out = np.where((e_j > 0) & (e_i > 0) & (e > 0), out, np.nan)
    return float(out) if out.ndim == 0 else out


def specialised(lq) -> np.ndarray:
    """EconGeo's binary LQ: 1 for LQ >= 1 (exactly 1 kept), 0 below, missing stays missing."""
    lq = np.asarray(lq, dtype=float)
    return np.where(np.isnan(lq), np.nan, (lq >= 1).astype(float))


def location_quotients(cells: pd.DataFrame, min_cell_firms: int) -> pd.DataFrame:
    """``cells``: one row per (year, region, sector) with ``size`` and ``n_firms``.

    Adds ``e_r``, ``e_s``, ``e`` (totals of the cell's year), ``lq`` and ``small_cell``."""
    d = cells.copy()
    d["e_r"] = d.groupby(["year", "region"], sort=False)["size"].transform("sum")
    d["e_s"] = d.groupby(["year", "sector"], sort=False)["size"].transform("sum")
    d["e"] = d.groupby("year", sort=False)["size"].transform("sum")
    d["small_cell"] = d["n_firms"] < int(min_cell_firms)
    lq = locq(d["size"], d["e_r"], d["e_s"], d["e"])
    d["lq"] = np.where(d["small_cell"], np.nan, lq)
    return d
