"""Spillovers onto co-located non-members: three designs.

If membership raises the outcomes of non-members in the same region x sector cell
(knowledge spillovers, shared suppliers; or displacement, if negative), those firms are
not valid controls: the stable unit treatment value assumption fails and the naive
members-vs-non-members contrast is biased by the spillover (toward zero when it is
positive). Following the partial-interference / exposure-mapping approach (Aronow &
Samii 2017; Butts 2023, "Difference-in-differences with geographic spillovers",
arXiv:2107.09846; Clarke 2017 on spillover-robust DiD):

(a) ``spillover_naive``: members vs all non-members (the estimator as configured);
(b) ``spillover_free``: members vs non-members *not* co-located with a member
    (``colocated == False``): the co-located non-members are dropped;
(c) ``spillover_effect``: members dropped; co-located non-members are "exposed" from
    their exposure year ``g_c`` = the first join year (min ``first_treat``) of a member in
    their (region, sector) cell, and compared with the spillover-free non-members.

With the exposure mapping right, (b) estimates the members' effect and (c) the effect on
co-located firms; (a) - (b) shows the contamination. The cell of a firm is taken at its
first row (as ``build_groups`` does for ``colocated``). A co-located firm whose cell has
no member left in the panel (e.g. its only member was dropped as an always-member)
has no exposure year; it is dropped from (c) and counted (``no_exposure_year``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import DesignError
from models.spec import EstimatorSpec

from ._common import firm_first, recode_treatment, require_columns, run


def exposure_year(data: pd.DataFrame, spec: EstimatorSpec, sector: str = "sector", region: str = "region") -> pd.Series:
    """Per firm (index ``idname``): the year its exposure starts. With build_groups'
    ``exposure_year`` column (cell or distance-ring co-location, ``build_groups.spillover``)
    that column; otherwise the min ``first_treat`` of the members in its (region, sector)
    cell (taken at the firm's first row). 0 when not exposed."""
    if "exposure_year" in data.columns:
        firms = firm_first(data, spec.idname, ["exposure_year"])
        expo = pd.to_numeric(firms["exposure_year"]).fillna(0).astype(np.int64)
        return pd.Series(expo.to_numpy(), index=firms.index, name="exposure_year")
    firms = firm_first(data, spec.idname, [spec.gname, sector, region])
    cell = firms[region].astype(str) + "\x1f" + firms[sector].astype(str)
    g = firms[spec.gname].to_numpy(dtype=np.int64)
    first = pd.Series(g[g > 0], index=cell[g > 0].to_numpy()).groupby(level=0).min()
    expo = cell.map(first).fillna(0).astype(np.int64)
    return pd.Series(expo.to_numpy(), index=firms.index, name="exposure_year")


def spillover_designs(
    data: pd.DataFrame,
    spec: EstimatorSpec,
    estimator: str = "twfe",
    sector: str = "sector",
    region: str = "region",
    estimator_options: dict | None = None,
) -> dict:
    """Run designs (a)-(c) of the module docstring.

    Returns ``{"naive": row, "free": row, "effect": row, "contamination": naive - free,
    "counts": {...}}`` where each row is the estimator's headline dict (``effect`` is
    ``None`` with a ``note`` when no co-located firm or no spillover-free control exists;
    ``free`` raises DesignError when no spillover-free control exists).
    """
    i, g = spec.idname, spec.gname
    require_columns(data, [i, g, "colocated", sector, region, spec.yname], "spillover_designs")
    gv = data[g].to_numpy(dtype=np.int64)
    member = gv > 0
    coloc = data["colocated"].fillna(False).to_numpy(dtype=bool) & ~member
    free_ctrl = ~member & ~coloc
    counts = {
        "members": int(data.loc[member, i].nunique()),
        "colocated": int(data.loc[coloc, i].nunique()),
        "spillover_free": int(data.loc[free_ctrl, i].nunique()),
    }
    if counts["spillover_free"] == 0:
        raise DesignError(
            "spillover_designs: every non-member is co-located with a member (same region x sector cell), so no "
            "spillover-free control exists; the spillover-free and spillover designs cannot be estimated"
        )
    naive = run(data, spec, estimator, estimator_options)
    free = run(data.loc[~coloc], spec, estimator, estimator_options)
    free["dropped"] = {"colocated": int(coloc.sum())}
    expo = exposure_year(data, spec, sector, region)
    e_row = expo.reindex(data[i]).to_numpy(dtype=np.int64)
    no_expo = coloc & (e_row == 0)
    sample = (coloc & ~no_expo) | free_ctrl
    effect, note = None, ""
    if (coloc & ~no_expo).any():
        df = recode_treatment(data.loc[sample], spec, np.where(coloc, e_row, 0)[sample])
        try:
            effect = run(df, spec, estimator, estimator_options)
            effect["dropped"] = {k: v for k, v in {"members": int(member.sum()), "no_exposure_year": int(no_expo.sum())}.items() if v}
        except DesignError as exc:
            note = str(exc).splitlines()[0]
    else:
        note = "no co-located non-member with an exposure year"
    counts["colocated_no_exposure_year"] = int(data.loc[no_expo, i].nunique())
    return {
        "check": "spillover",
        "naive": naive,
        "free": free,
        "effect": effect,
        "note": note,
        "contamination": naive["estimate"] - free["estimate"],
        "counts": counts,
    }
