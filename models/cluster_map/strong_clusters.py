"""Which region x sector cells are clusters: the US Cluster Mapping Project's "strong
cluster" rule and a European Cluster Observatory star count.

Percentiles: the empirical quantile with linear interpolation between order statistics
(Hyndman & Fan 1996 type 7; numpy's default, R's ``quantile`` default, Excel
``PERCENTILE.INC``), taken per sector and year across the regions where the sector has
employment and an LQ (cells that pass the small-cell rule).

* **Strong cluster** (US Cluster Mapping Project, Delgado, Porter & Stern 2014; the
  Project's "strong clusters" definition): LQ_rs >= the sector's ``lq_quantile`` (0.75)
  percentile of LQ across regions, LQ_rs >= 1, and employment and establishment (firm)
  counts *strictly above* the sector's ``size_quantile`` (0.25) percentiles across regions.
* **Stars** (European Cluster Observatory, Ketels & Sölvell 2006, *Innovation clusters in
  the 10 new member states*): one star each for size (the cell's employment at or above the
  ``size`` quantile, 0.90, of all cells of the year), specialisation (LQ >= ``specialisation``,
  2.0) and focus (the cell's share of its region's employment at or above the ``focus``
  quantile, 0.90, of all cells of the year); 0 to 3 stars.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def quantile7(x, q: float) -> float:
    """Type-7 (linear) empirical quantile of the finite values of ``x``; NaN if none."""
    x = np.asarray(x, dtype=float)
    x = x[np.isfinite(x)]
    return float(np.quantile(x, q, method="linear")) if x.size else float("nan")


def strong_clusters(cells: pd.DataFrame, lq_quantile: float = 0.75, size_quantile: float = 0.25) -> pd.DataFrame:
    """``cells`` with ``year, sector, size, n_firms, lq`` -> adds ``lq_p``, ``size_p``,
    ``firms_p`` (the sector-year percentiles) and ``strong`` (bool)."""
    d = cells.copy()
    ok = d["lq"].notna() & (d["size"] > 0)
    ref = d[ok]
    g = ref.groupby(["year", "sector"], sort=True)
    pct = pd.DataFrame({
        "lq_p": g["lq"].apply(lambda s: quantile7(s, lq_quantile)),
        "size_p": g["size"].apply(lambda s: quantile7(s, size_quantile)),
        "firms_p": g["n_firms"].apply(lambda s: quantile7(s, size_quantile)),
    }).reset_index()
    d = d.drop(columns=[c for c in ("lq_p", "size_p", "firms_p") if c in d]).merge(pct, on=["year", "sector"], how="left")
    tol = 1e-12  # LQ at the percentile counts as "at or above" despite rounding
    d["strong"] = (ok.to_numpy() & (d["lq"] >= d["lq_p"] - tol) & (d["lq"] >= 1 - tol)
                   & (d["size"] > d["size_p"]) & (d["n_firms"] > d["firms_p"])).astype(bool)
    return d


def stars(cells: pd.DataFrame, size: float = 0.90, specialisation: float = 2.0, focus: float = 0.90) -> pd.DataFrame:
    """``cells`` with ``year, size, e_r, lq`` -> adds ``focus`` (size / e_r), ``star_size``,
    ``star_specialisation``, ``star_focus`` (bool) and ``stars`` (0-3)."""
    d = cells.copy()
    ok = d["lq"].notna() & (d["size"] > 0)
    d["focus"] = d["size"] / d["e_r"].where(d["e_r"] > 0)
    thr = d[ok].groupby("year", sort=True).agg(size_q=("size", lambda s: quantile7(s, size)), focus_q=("focus", lambda s: quantile7(s, focus))).reset_index()
    d = d.merge(thr, on="year", how="left")
    tol = 1e-12
    d["star_size"] = ok.to_numpy() & (d["size"] >= d["size_q"] - tol)
    d["star_specialisation"] = ok.to_numpy() & (d["lq"] >= specialisation - tol)
    d["star_focus"] = ok.to_numpy() & (d["focus"] >= d["focus_q"] - tol)
    d["stars"] = d[["star_size", "star_specialisation", "star_focus"]].sum(axis=1).astype("int64")
    return d.drop(columns=["size_q", "focus_q"])
