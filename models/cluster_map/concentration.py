"""Ellison–Glaeser (1997) index of geographic concentration per sector.

For sector i with firms k (sizes e_ik) in regions j:

    G_i = Σ_j (s_ij − x_j)²,  s_ij = e_ij / e_i (the region's share of the sector),
                              x_j = e_j / e (the region's share of all employment)
    H_i = Σ_k z_ik²,          z_ik = e_ik / e_i (firm-size Herfindahl of the sector)
    γ_i = (G_i − (1 − Σ_j x_j²) H_i) / ((1 − Σ_j x_j²)(1 − H_i))

γ = 0 is the "dartboard" (random location given the firm sizes), > 0 concentration.
Exactly R REAT's ``ellison.a(e_ik, e_j, regions)`` (Wieland 2019), whose documented
Farhauer–Kröll (2014) example gives γ = 0.05990628 (a stored reference test); regions
without firms of the sector enter G with s_ij = 0. γ is undefined (NaN) when H_i = 1 (one
firm) or Σ x² = 1 (one region).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def ellison_glaeser(e_ik, firm_region, e_j: dict) -> dict[str, float]:
    """``e_ik``: sizes of the sector's firms; ``firm_region``: their regions; ``e_j``:
    {region: total size of the region (all sectors)}. Returns gamma, G, H."""
    e_ik = np.asarray(e_ik, dtype=float)
    regions = list(e_j)
    ej = np.array([e_j[r] for r in regions], dtype=float)
    x = ej / ej.sum()
    e_i = e_ik.sum()
    s = pd.Series(e_ik).groupby(np.asarray(firm_region)).sum().reindex(regions, fill_value=0.0).to_numpy(float) / e_i
    G = float(((s - x) ** 2).sum())
    H = float(((e_ik / e_i) ** 2).sum())
    sx2 = float((x**2).sum())
    den = (1 - sx2) * (1 - H)
    gamma = float((G - (1 - sx2) * H) / den) if den > 0 else float("nan")
    return {"gamma": gamma, "G": G, "H": H}


def sector_indices(firms: pd.DataFrame) -> pd.DataFrame:
    """Per (year, sector): ``eg_gamma``, ``eg_G``, ``eg_H`` from firm rows (year, region,
    sector, size), regions' totals over all sectors of the year."""
    out = []
    for year, part in firms.groupby("year", sort=True):
        e_j = part.groupby("region", sort=True)["size"].sum()
        e_j = e_j[e_j > 0].to_dict()
        for sector, sp in part.groupby("sector", sort=True):
            sp = sp[sp["size"] > 0]
            if sp.empty or len(e_j) == 0:
                continue
            r = ellison_glaeser(sp["size"].to_numpy(), sp["region"].to_numpy(), e_j)
            out.append({"year": year, "sector": str(sector), "eg_gamma": r["gamma"], "eg_G": r["G"], "eg_H": r["H"]})
    return pd.DataFrame(out, columns=["year", "sector", "eg_gamma", "eg_G", "eg_H"])
