"""Monitoring scoreboard: the indicators a programme manager follows, per initiative and
year, for the members and for a comparison group.

Groups (for initiative c and the programme as a whole, ``cluster_id = "(all)"``):

* ``members``: firms with a spell of c covering the year (join_year <= year <= leave_year,
  an open spell running to the end); for "(all)", members of any initiative;
* ``comparison``: the region x sector's non-members — firms with no spell in the register
  that starts by the last panel year, located (region and sector at their first panel
  year) in a cell that holds a member of c (of any initiative for "(all)").

Rows (``period``):

* ``year``: every panel year;
* ``baseline``: members in the year before each joined c (a member is counted with its
  row of ``join_year − 1`` of its first spell in c, when observed; ``year`` missing); the
  comparison group in the earliest of those members' baseline years (``year`` = that year;
  no row when no member has an observed baseline, e.g. all joined before the panel starts).

Indicators (:data:`INDICATORS`; each over the firms with the inputs non-missing):
``firms`` (distinct firms), ``entries`` (spells of c starting in the year), ``exits``
(spells whose last year is the year before), ``employment``, ``turnover``, ``exports``,
``rd`` and ``patents`` (sums); ``value_added_per_employee`` (Σ value added / Σ
employment), ``export_share`` (Σ exports / Σ turnover), ``rd_intensity`` (Σ R&D / Σ
turnover) — ratios of totals, not means of firm ratios; ``exporters`` (firms with exports
> 0) and ``patenting_firms`` (firms with patents > 0). ``per_firm`` = value / n_firms for
sums (the mean per firm) and for the two firm counts (the share of firms), so that members
and the larger comparison group can be compared. Indicators whose input columns the
panel lacks are not computed (:func:`available`).

Every row carries ``n_firms`` (distinct firms behind the value) and the disclosure inputs of
the sums behind it (``num_*`` and, for ratios, ``den_*``: contributor count, total and the
three largest contributor sums; :func:`models.contributions.top_contributions`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..contributions import top_contributions

ALL = "(all)"
# name: (kind, numerator, denominator)   kind: count | sum | ratio | flag | register
INDICATORS: dict[str, tuple[str, str | None, str | None]] = {
    "firms": ("count", None, None),
    "entries": ("register", None, None),
    "exits": ("register", None, None),
    "employment": ("sum", "employment", None),
    "turnover": ("sum", "turnover", None),
    "value_added_per_employee": ("ratio", "value_added", "employment"),
    "exports": ("sum", "exports", None),
    "export_share": ("ratio", "exports", "turnover"),
    "exporters": ("flag", "exports", None),
    "rd_intensity": ("ratio", "rd", "turnover"),
    "patents": ("sum", "patents", None),
    "patenting_firms": ("flag", "patents", None),
}
KEYS = ["cluster_id", "group", "period", "year"]


def available(columns) -> list[str]:
    """Indicators whose inputs are all among ``columns``."""
    cols = set(columns)
    return [k for k, (_, a, b) in INDICATORS.items() if (a is None or a in cols) and (b is None or b in cols)]


def _first_cells(panel: pd.DataFrame) -> pd.DataFrame:
    first = panel.sort_values(["firm_id", "year"], kind="mergesort").groupby("firm_id", sort=True).first()
    return first[["region", "sector"]].reset_index()


def _group_rows(panel: pd.DataFrame, spells: pd.DataFrame, last: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(member rows, comparison rows, spells used) with a ``cluster_id`` column."""
    sp = spells[["firm_id", "cluster_id", "join_year", "leave_year"]].copy()
    sp["cluster_id"] = sp["cluster_id"].astype(str)
    sp["end"] = pd.to_numeric(sp["leave_year"], errors="coerce").fillna(np.inf)
    sp = sp[sp["firm_id"].isin(set(panel["firm_id"]))]
    rows = panel.merge(sp[["firm_id", "cluster_id", "join_year", "end"]], on="firm_id", how="inner")
    act = rows[(rows["join_year"] <= rows["year"]) & (rows["year"] <= rows["end"])].drop(columns=["join_year", "end"])
    act = act.drop_duplicates(["cluster_id", "firm_id", "year"])
    act_all = act.drop_duplicates(["firm_id", "year"]).assign(cluster_id=ALL)
    members = pd.concat([act, act_all], ignore_index=True)

    ever = set(sp.loc[sp["join_year"] <= last, "firm_id"])
    cells = _first_cells(panel)
    mem_cells = cells[cells["firm_id"].isin(set(members["firm_id"]))].merge(members[["firm_id", "cluster_id"]].drop_duplicates(), on="firm_id")
    mem_cells = mem_cells.dropna(subset=["region", "sector"])[["cluster_id", "region", "sector"]].drop_duplicates()
    non = cells[~cells["firm_id"].isin(ever)].dropna(subset=["region", "sector"])
    comp_firms = non.merge(mem_cells, on=["region", "sector"], how="inner")[["firm_id", "cluster_id"]].drop_duplicates()
    comparison = panel.merge(comp_firms, on="firm_id", how="inner")
    return members, comparison, sp


def _indicators(rows: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """Per (cluster_id, group, period, year) cell of ``rows``: the ``names`` indicators."""
    keys = KEYS
    rows = rows.copy()
    rows["_yr"] = rows["year"].fillna(-1).astype("int64")  # missing year (member baseline) as a key
    k2 = ["cluster_id", "group", "period", "_yr"]
    out = []
    for name in names:
        kind, a, b = INDICATORS[name]
        if kind == "register":
            continue
        if kind == "count":
            valid = rows
        elif kind == "ratio":
            valid = rows[rows[a].notna() & rows[b].notna()]
        else:
            valid = rows[rows[a].notna()]
        g = valid.groupby(k2, sort=True, observed=True)
        n = g["firm_id"].nunique().rename("n_firms")
        if kind == "count":
            val = n.astype(float).rename("value")
        elif kind == "flag":
            val = valid.assign(_f=valid[a] > 0).groupby(k2, sort=True, observed=True)["_f"].sum().astype(float).rename("value")
        elif kind == "sum":
            val = g[a].sum().astype(float).rename("value")
        else:
            den = g[b].sum().astype(float)
            val = (g[a].sum().astype(float) / den.where(den != 0)).rename("value")
        t = pd.concat([val, n], axis=1).reset_index()
        if kind in ("sum", "flag"):  # per firm: a mean for sums, the share of firms for flags
            t["per_firm"] = t["value"] / t["n_firms"].where(t["n_firms"] > 0)
        if kind in ("sum", "ratio"):
            t = t.merge(top_contributions(valid, k2, a, prefix="num_"), on=k2, how="left")
        if kind == "ratio":
            t = t.merge(top_contributions(valid, k2, b, prefix="den_"), on=k2, how="left")
        t.insert(0, "indicator", name)
        out.append(t)
    res = pd.concat(out, ignore_index=True, sort=False) if out else pd.DataFrame(columns=["indicator", *k2, "value", "n_firms"])
    res["year"] = res["_yr"].where(res["_yr"] >= 0).astype("Int64")
    return res.drop(columns="_yr")


def _register(sp: pd.DataFrame, years: tuple[int, int]) -> pd.DataFrame:
    """Entries (spells starting in the year) and exits (spells whose last year is the year
    before) per initiative and year; "(all)": firms entering / leaving the programme as a
    whole counted the same way over every spell."""
    lo, hi = years
    rows = []
    for cid, part in list(sp.groupby("cluster_id", sort=True)) + [(ALL, sp)]:
        for y in range(lo, hi + 1):
            ent = part.loc[part["join_year"] == y, "firm_id"].nunique()
            ex = part.loc[part["end"] == y - 1, "firm_id"].nunique()
            rows.append({"indicator": "entries", "cluster_id": cid, "year": y, "value": float(ent), "n_firms": int(ent)})
            rows.append({"indicator": "exits", "cluster_id": cid, "year": y, "value": float(ex), "n_firms": int(ex)})
    d = pd.DataFrame(rows)
    if d.empty:
        return d
    d["group"], d["period"] = "members", "year"
    d["year"] = d["year"].astype("Int64")
    return d


def scoreboard(panel: pd.DataFrame, spells: pd.DataFrame, years: tuple[int, int], indicators: list[str] | None = None) -> pd.DataFrame:
    """``panel``: firm-year rows with ``firm_id, year, region, sector, contributor`` and the
    indicator inputs (``employment, turnover, value_added, exports, rd, patents`` as
    available); ``spells``: the register (``firm_id, cluster_id, join_year, leave_year``);
    ``years``: the panel window. Returns the tidy scoreboard (module docstring), sorted."""
    lo, hi = int(years[0]), int(years[1])
    names = [n for n in (indicators or available(panel.columns)) if n in INDICATORS]
    members, comparison, sp = _group_rows(panel, spells, hi)
    parts = [members.assign(group="members", period="year"), comparison.assign(group="comparison", period="year")]
    # baseline: members at join_year - 1 of their first spell in the initiative
    first_join = sp.groupby(["cluster_id", "firm_id"], sort=True)["join_year"].min().reset_index()
    fj_all = sp.groupby("firm_id", sort=True)["join_year"].min().reset_index().assign(cluster_id=ALL)
    first_join = pd.concat([first_join, fj_all], ignore_index=True)
    base_m = panel.merge(first_join.assign(year=first_join["join_year"] - 1).drop(columns="join_year"), on=["firm_id", "year"], how="inner")
    base_m = base_m.assign(group="members", period="baseline", _base_year=base_m["year"], year=pd.NA)
    # comparison in the earliest of the members' observed baseline years
    c_first = base_m.groupby("cluster_id", sort=True)["_base_year"].min()
    base_c = comparison[comparison["year"] == comparison["cluster_id"].map(c_first)].assign(group="comparison", period="baseline")
    parts += [base_m, base_c]
    rows = pd.concat(parts, ignore_index=True, sort=False).drop(columns="_base_year")
    rows["year"] = pd.to_numeric(rows["year"], errors="coerce").astype("Float64")
    rows["cluster_id"] = rows["cluster_id"].astype(str)
    res = _indicators(rows, names)
    if "entries" in names or "exits" in names:
        reg = _register(sp, (lo, hi))
        reg = reg[reg["indicator"].isin(names)]
        res = pd.concat([res, reg], ignore_index=True, sort=False)
    order = {n: i for i, n in enumerate(INDICATORS)}
    res["_o"] = res["indicator"].map(order)
    res["_g"] = res["group"].map({"members": 0, "comparison": 1})
    res["_p"] = res["period"].map({"baseline": 0, "year": 1})
    res = res.sort_values(["cluster_id", "_o", "_g", "_p", "year"], na_position="first", kind="mergesort")
    res = res.drop(columns=["_o", "_g", "_p"]).reset_index(drop=True)
    res["cluster_id"] = res["cluster_id"].astype("string")
    res["n_firms"] = res["n_firms"].astype("int64")
    cols = ["cluster_id", "indicator", "group", "period", "year", "value", "n_firms"]
    return res[cols + [c for c in res.columns if c not in cols]]
