"""Stage-2 library for the cluster context: the cluster map, each firm's
``cluster_strength`` and the monitoring scoreboard, from the interim panel and the register.

:func:`cluster_context` is the one call the build_groups stage makes. It prepares the inputs
(counts every row left out of the map with its reason), then calls the pure functions of
:mod:`models.cluster_map` and :mod:`models.monitoring`. Nothing is computed here.

Missing inputs do not stop the stage: without a sector or region column, or without the
size column, the map is empty and ``flow["cluster_map"]["absent"]`` says why (the report
prints it); ``cluster_strength`` is then missing for every firm. The scoreboard needs only
the register; without region and sector it has no comparison group (said in the flow).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models import cluster_map as cm
from models.monitoring import INDICATORS, scoreboard

# panel columns the context reads (besides the map's size column)
COLUMNS = ("firm_id", "year", "region", "sector", "group_id", "employment", "turnover", "value_added", "exports", "rd", "patents")
STRENGTH_COLUMN = "cluster_strength"


@dataclass
class ClusterContext:
    cluster_map: pd.DataFrame  # tidy map (models.cluster_map.cluster_map) + initiative rows; empty when absent
    scoreboard: pd.DataFrame  # tidy scoreboard (models.monitoring.scoreboard)
    strength: pd.DataFrame  # per firm: firm_id, cluster_strength, ...
    flow: dict[str, Any] = field(default_factory=dict)

    def strength_for(self, firm_ids: pd.Series) -> pd.Series:
        """``cluster_strength`` for each row's firm (missing when unmapped)."""
        st = self.strength
        idx = pd.Index(st["firm_id"].astype(str)).get_indexer(firm_ids.astype(str)) if len(st) else np.full(len(firm_ids), -1)
        vals = pd.array(st["cluster_strength"].to_numpy() if len(st) else [], dtype="string")
        out = vals.take(idx, allow_fill=True) if len(vals) else pd.array([pd.NA] * len(firm_ids), dtype="string")
        return pd.Series(out, name=STRENGTH_COLUMN)


def _contributor(panel: pd.DataFrame) -> pd.Series:
    firm = "f:" + panel["firm_id"].astype(str)
    if "group_id" in panel:
        grp = panel["group_id"].astype("string")
        return ("g:" + grp).where(grp.notna() & (grp != ""), firm).astype(str)
    return firm


def needed_columns(schema: list[str], opts: dict[str, Any] | None) -> list[str]:
    size = cm.options(opts)["size"]
    return [c for c in schema if c in COLUMNS or c == size]


def cluster_context(panel: pd.DataFrame, membership: pd.DataFrame, first_treat: pd.DataFrame, opts: dict[str, Any] | None,
                    years: tuple[int, int] | None) -> ClusterContext:
    """``panel``: interim firm-year rows (:func:`needed_columns`); ``membership``: the
    harmonised register; ``first_treat``: ``firm_id, first_treat`` of the kept firms (the
    processed panel's cohorts); ``opts``: ``build_groups.cluster_map``."""
    o = cm.options(opts)
    size = o["size"]
    if years is None:
        years = (int(panel["year"].min()), int(panel["year"].max())) if len(panel) else (0, 0)
    years = (int(years[0]), int(years[1]))
    p = panel.copy()
    p["contributor"] = _contributor(p)
    for c in ("region", "sector"):
        if c not in p:
            p[c] = pd.Series(pd.NA, index=p.index, dtype="string")
    flow: dict[str, Any] = {}

    # ---- the map
    absent = []
    for c, why in (("sector", "no sector column is mapped (columns.sector)"), ("region", "no region column is mapped (columns.region)")):
        if p[c].isna().all():
            absent.append(why)
    if size not in panel:
        absent.append(f"the size column {size!r} (build_groups.cluster_map.size) is not in the panel")
    strength = pd.DataFrame(columns=["firm_id", "cluster_strength"])
    if absent:
        cmap = pd.DataFrame()
        flow["cluster_map"] = {"absent": "; ".join(absent)}
    else:
        s = pd.to_numeric(p[size], errors="coerce")
        reasons = {
            "missing_region": p["region"].isna().to_numpy(),
            "missing_sector": p["sector"].isna().to_numpy(),
            "missing_size": s.isna().to_numpy(),
            "negative_size": (s < 0).fillna(False).to_numpy(),
        }
        drop = np.zeros(len(p), bool)
        excluded = {}
        for k, m in reasons.items():  # first reason wins, so the counts add up
            excluded[k] = int((m & ~drop).sum())
            drop |= m
        f = p.loc[~drop, ["firm_id", "year", "region", "sector", "contributor"]].assign(size=s[~drop].to_numpy())
        cmap = cm.cluster_map(f, o)
        my = cm.map_year(first_treat["first_treat"].to_numpy(), years, o)
        first = p.sort_values(["firm_id", "year"], kind="mergesort").groupby("firm_id", sort=True)[["region", "sector"]].first().reset_index()
        fc = first_treat[["firm_id", "first_treat"]].merge(first, on="firm_id", how="left")
        strength = cm.cluster_strength(cmap, fc, years, o)
        # members per cell (time-invariant: the member's first-year cell), on the map year's rows
        nm = cm.cell_members(fc).assign(level="cell", year=np.int64(my))
        cmap = cmap.merge(nm, on=["level", "year", "region", "sector"], how="left")
        at = (cmap["level"] == "cell") & (cmap["year"] == my)
        cmap.loc[at, "n_members"] = cmap.loc[at, "n_members"].fillna(0)
        members = first_treat[first_treat["first_treat"] > 0]
        reg = membership[["firm_id", "cluster_id"]].drop_duplicates()
        reg = reg[reg["firm_id"].astype(str).isin(set(members["firm_id"].astype(str)))]
        ini = cm.initiative_cells(strength, reg)
        cmap = pd.concat([cmap, ini], ignore_index=True, sort=False)
        cmap["map_year"] = np.int64(my)
        flow["cluster_map"] = {"rows_in": int(len(p)), "rows_kept": int((~drop).sum()), "excluded": excluded,
                               "size": size, "strength": o["strength"],
                               "firms_with_strength": int(strength["cluster_strength"].notna().sum())}

    # ---- the scoreboard
    sb_cols = ["firm_id", "year", "region", "sector", "contributor"] + [c for c in ("employment", "turnover", "value_added", "exports", "rd", "patents") if c in p]
    sb = scoreboard(p[sb_cols], membership, years)
    flow["scoreboard"] = {"indicators": sorted(set(sb["indicator"])) if len(sb) else [],
                          "not_computed": [k for k in INDICATORS if len(sb) == 0 or k not in set(sb["indicator"])],
                          "comparison": "region x sector non-members" if not (p["region"].isna().all() or p["sector"].isna().all())
                          else "none (no region or sector column)"}
    return ClusterContext(cluster_map=cmap, scoreboard=sb, strength=strength, flow=flow)
