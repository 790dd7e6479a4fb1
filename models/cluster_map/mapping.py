"""The cluster map: location quotients, specialisation, concentration, strong clusters and
stars for every region x sector x year of the firm panel, and each firm's
``cluster_strength`` (the map of its region x sector at baseline).

:func:`cluster_map` returns one tidy frame with a ``level`` column:

* ``cell`` (year, region, sector): ``size`` (sum of the size column, employment by
  default), ``n_firms`` (distinct firms = establishments), ``lq`` and ``small_cell``
  (:mod:`.location_quotient`), the US Cluster Mapping Project percentiles and ``strong``
  flag, ``focus`` and the European Cluster Observatory stars (:mod:`.strong_clusters`);
* ``region`` (year, region): ``size``, ``n_firms``, ``hachman``, ``krugman``,
  ``herfindahl`` (:mod:`.specialisation`);
* ``sector`` (year, sector): ``size``, ``n_firms``, ``eg_gamma``, ``eg_G``, ``eg_H``
  (:mod:`.concentration`).

Every row carries the disclosure inputs of its ``size`` total (``n_contributors``,
``total``, ``top1..top3``: :func:`models.contributions.top_contributions`).

Options (``build_groups.cluster_map`` in params.yaml; :data:`DEFAULTS` is the single place
of the defaults, validated by :func:`check_options`):

* ``size``: the panel column measuring size (``employment``);
* ``year``: ``baseline`` — each member's strength is read in the year before it joined
  (its ``first_treat − 1``, clamped to the panel years), a non-member's in the first panel
  year, and the report's map shows the programme's baseline (the year before the first
  member joined); or a calendar year used for everybody and for the map;
* ``min_cell_firms``: the small-cell rule (cells with fewer firms get no LQ, flag or star);
* ``strength``: what ``cluster_strength`` holds: ``stars`` ("0 stars" … "3 stars"),
  ``strong`` ("strong" / "not strong") or ``lq_band`` ("LQ < 1", "1 <= LQ < 2",
  "LQ >= 2"); a cell without a quotient (small cell) is "small cell";
* ``strong: {lq_quantile, size_quantile}``: the US CMP percentiles (0.75, 0.25);
* ``stars: {size, specialisation, focus}``: the star thresholds (0.90 quantile of cell
  employment, LQ 2.0, 0.90 quantile of the cell's share of regional employment).
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd

from ..contributions import top_contributions
from .concentration import sector_indices
from .location_quotient import location_quotients
from .specialisation import region_indices
from .strong_clusters import stars, strong_clusters

DEFAULTS: dict[str, Any] = {
    "size": "employment",
    "year": "baseline",
    "min_cell_firms": 3,
    "strength": "stars",
    "strong": {"lq_quantile": 0.75, "size_quantile": 0.25},
    "stars": {"size": 0.90, "specialisation": 2.0, "focus": 0.90},
}
STRENGTHS = ("stars", "strong", "lq_band")


def options(given: dict[str, Any] | None) -> dict[str, Any]:
    """DEFAULTS overlaid with ``given`` (nested mappings merged)."""
    out = copy.deepcopy(DEFAULTS)
    for k, v in (given or {}).items():
        out[k] = {**out[k], **v} if isinstance(out.get(k), dict) and isinstance(v, dict) else v
    return out


def check_options(given: Any, where: str = "build_groups.cluster_map") -> list[str]:
    """Problems with the options (empty list = valid)."""
    if given is None:
        return []
    if not isinstance(given, dict):
        return [f"{where}: give a mapping ({', '.join(DEFAULTS)}), got {given!r}"]
    p = [f"{where}.{k}: unknown key (allowed: {', '.join(DEFAULTS)})" for k in sorted(set(given) - set(DEFAULTS))]
    o = options({k: v for k, v in given.items() if k in DEFAULTS})
    if not isinstance(o["size"], str) or not o["size"]:
        p.append(f"{where}.size: a panel column name (e.g. employment), got {o['size']!r}")
    y = o["year"]
    if not (y == "baseline" or (isinstance(y, int) and not isinstance(y, bool))):
        p.append(f"{where}.year: 'baseline' or a calendar year (integer), got {y!r}")
    m = o["min_cell_firms"]
    if not isinstance(m, int) or isinstance(m, bool) or m < 1:
        p.append(f"{where}.min_cell_firms: a whole number >= 1, got {m!r}")
    if o["strength"] not in STRENGTHS:
        p.append(f"{where}.strength: {o['strength']!r}; allowed: {', '.join(STRENGTHS)}")
    for sub, keys in (("strong", ("lq_quantile", "size_quantile")), ("stars", ("size", "specialisation", "focus"))):
        s = o[sub]
        if not isinstance(s, dict):
            p.append(f"{where}.{sub}: give a mapping with {', '.join(keys)}")
            continue
        p += [f"{where}.{sub}.{k}: unknown key (allowed: {', '.join(keys)})" for k in sorted(set(s) - set(keys))]
        for k in keys:
            v = s.get(k)
            num = isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v)
            if k == "specialisation":
                if not (num and v > 0):
                    p.append(f"{where}.{sub}.{k}: a location quotient > 0 (default 2.0), got {v!r}")
            elif not (num and 0 < v < 1):
                p.append(f"{where}.{sub}.{k}: a quantile strictly between 0 and 1, got {v!r}")
    return p


def cluster_map(firms: pd.DataFrame, opts: dict[str, Any] | None = None) -> pd.DataFrame:
    """``firms``: firm-year rows with ``firm_id, year, region, sector, size, contributor``
    (rows with a missing region, sector or size, or a negative size, must already be
    removed and counted by the caller). Returns the tidy map (module docstring)."""
    o = options(opts)
    f = firms[["firm_id", "year", "region", "sector", "size", "contributor"]].copy()
    f["region"] = f["region"].astype(str)
    f["sector"] = f["sector"].astype(str)
    f["size"] = f["size"].astype(float)
    keys = ["year", "region", "sector"]
    g = f.groupby(keys, sort=True, observed=True)
    cells = pd.DataFrame({"size": g["size"].sum(), "n_firms": g["firm_id"].nunique()}).reset_index()
    cells = cells.merge(top_contributions(f, keys, "size"), on=keys, how="left")
    cells = location_quotients(cells, o["min_cell_firms"])
    cells = strong_clusters(cells, **o["strong"])
    cells = stars(cells, **o["stars"])
    cells.insert(0, "level", "cell")

    parts = [cells]
    for level, k, extra in (("region", ["year", "region"], region_indices(cells)), ("sector", ["year", "sector"], sector_indices(f))):
        gg = f.groupby(k, sort=True, observed=True)
        t = pd.DataFrame({"size": gg["size"].sum(), "n_firms": gg["firm_id"].nunique()}).reset_index()
        t = t.merge(top_contributions(f, k, "size"), on=k, how="left").merge(extra, on=k, how="left")
        t.insert(0, "level", level)
        parts.append(t)
    out = pd.concat(parts, ignore_index=True, sort=False)
    for c in ("region", "sector"):
        out[c] = out[c].astype("string")
    for c in ("small_cell", "strong", "star_size", "star_specialisation", "star_focus"):
        out[c] = out[c].astype("boolean")
    out["stars"] = out["stars"].astype("Int64")
    out["year"] = out["year"].astype("int64")
    out["n_firms"] = out["n_firms"].astype("int64")
    out["n_contributors"] = out["n_contributors"].astype("int64")
    return out.sort_values(["level", "year", "region", "sector"], na_position="first", kind="mergesort").reset_index(drop=True)


def map_year(first_treat: np.ndarray, years: tuple[int, int], opts: dict[str, Any] | None = None) -> int:
    """The year the report's map shows: ``year`` when a calendar year is given, else the
    year before the first member joined, clamped to the panel ``years``."""
    o = options(opts)
    lo, hi = int(years[0]), int(years[1])
    if o["year"] != "baseline":
        return int(o["year"])
    ft = np.asarray(first_treat, dtype=float)
    ft = ft[ft > 0]
    y = int(ft.min()) - 1 if ft.size else lo
    return min(max(y, lo), hi)


def strength_label(row_stars, row_strong, row_lq, strength: str) -> pd.Series:
    """``cluster_strength`` labels from a cell's stars / strong flag / LQ."""
    lq = pd.Series(row_lq, dtype="float64").reset_index(drop=True)
    if strength == "stars":
        s = pd.Series(row_stars).reset_index(drop=True)
        lab = s.map(lambda n: None if pd.isna(n) else (f"{int(n)} star" if int(n) == 1 else f"{int(n)} stars"))
    elif strength == "strong":
        s = pd.Series(row_strong).reset_index(drop=True)
        lab = s.map(lambda b: None if pd.isna(b) else ("strong" if bool(b) else "not strong"))
    else:
        lab = lq.map(lambda v: None if pd.isna(v) else ("LQ < 1" if v < 1 else ("1 <= LQ < 2" if v < 2 else "LQ >= 2")))
    lab = lab.where(lq.notna(), "small cell")
    return lab.astype("string")


def cluster_strength(cmap: pd.DataFrame, firm_cells: pd.DataFrame, years: tuple[int, int], opts: dict[str, Any] | None = None) -> pd.DataFrame:
    """Per firm: its region x sector's strength at baseline.

    ``firm_cells``: one row per firm with ``firm_id, region, sector`` (at the firm's first
    panel year, missing when unmapped) and ``first_treat`` (0 = never member). Returns
    ``firm_id, strength_year, cluster_strength, lq, stars, strong``; missing when the firm's
    region or sector is missing or its cell has no size in that year."""
    o = options(opts)
    lo, hi = int(years[0]), int(years[1])
    ft = firm_cells["first_treat"].to_numpy(dtype=np.int64)
    if o["year"] == "baseline":
        y = np.where(ft > 0, ft - 1, lo)
        y = np.clip(y, lo, hi)
    else:
        y = np.full(len(ft), int(o["year"]))
    d = pd.DataFrame({"firm_id": firm_cells["firm_id"].to_numpy(), "strength_year": y.astype("int64"),
                      "region": firm_cells["region"].astype("string").to_numpy(), "sector": firm_cells["sector"].astype("string").to_numpy()})
    cells = cmap[cmap["level"] == "cell"][["year", "region", "sector", "lq", "stars", "strong"]]
    d = d.merge(cells, left_on=["strength_year", "region", "sector"], right_on=["year", "region", "sector"], how="left").drop(columns="year")
    mapped = d["region"].notna() & d["sector"].notna() & d["stars"].notna()
    lab = strength_label(d["stars"], d["strong"], d["lq"], o["strength"])
    d["cluster_strength"] = lab.where(mapped.to_numpy(), pd.NA).astype("string").to_numpy()
    return d[["firm_id", "strength_year", "cluster_strength", "lq", "stars", "strong"]]


def cell_members(firm_cells: pd.DataFrame) -> pd.DataFrame:
    """Member firms per (region, sector): ``firm_cells`` with ``firm_id, region, sector,
    first_treat`` (cell at the firm's first panel year). Returns ``region, sector,
    n_members`` (distinct members with ``first_treat > 0``)."""
    m = firm_cells[(firm_cells["first_treat"] > 0) & firm_cells["region"].notna() & firm_cells["sector"].notna()]
    out = m.groupby(["region", "sector"], sort=True)["firm_id"].nunique().rename("n_members").reset_index()
    out["region"], out["sector"] = out["region"].astype(str), out["sector"].astype(str)
    out["n_members"] = out["n_members"].astype("int64")
    return out


def initiative_cells(strength: pd.DataFrame, firm_cluster: pd.DataFrame) -> pd.DataFrame:
    """Per initiative: do its members sit in clusters? ``firm_cluster``: ``firm_id,
    cluster_id`` of members. Returns ``level="initiative", cluster_id, n_firms`` (members),
    ``n_mapped`` (members whose cell has a quotient), ``n_strong`` (in a strong cluster),
    ``n_starred`` (in a cell with at least one star), ``mean_stars``, each at the member's
    baseline."""
    d = firm_cluster.merge(strength, on="firm_id", how="left")
    d["_mapped"] = d["lq"].notna()
    d["_strong"] = d["strong"].fillna(False).astype(bool) & d["_mapped"]
    d["_starred"] = (d["stars"].fillna(0) > 0) & d["_mapped"]
    d["_stars"] = d["stars"].where(d["_mapped"])
    g = d.groupby("cluster_id", sort=True)
    out = pd.DataFrame({"n_firms": g["firm_id"].nunique(), "n_mapped": g["_mapped"].sum(), "n_strong": g["_strong"].sum(),
                        "n_starred": g["_starred"].sum(), "mean_stars": g["_stars"].mean()}).reset_index()
    out.insert(0, "level", "initiative")
    for c in ("n_firms", "n_mapped", "n_strong", "n_starred"):
        out[c] = out[c].astype("int64")
    out["cluster_id"] = out["cluster_id"].astype("string")
    return out
