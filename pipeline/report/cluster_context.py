"""Report sections on the cluster context: the cluster map (where the clusters are and
whether the initiatives' members sit in them) and the monitoring scoreboard (how the
initiatives are doing). Inputs are the build_groups outputs ``cluster_map.parquet`` and
``scoreboard.parquet`` (numbers computed by :mod:`models.cluster_map` and
:mod:`models.monitoring`); this module only checks them for disclosure, blanks what fails,
and lays out the released values.

Disclosure (:func:`pipeline.disclosure.summary_reasons`, the profile of ``report.disclosure``):

* map cells, regions and sectors: the threshold on distinct contributors and the dominance /
  p % rules on the size total (employment); a failing row keeps its labels and loses every
  statistic (size, firms, LQ, focus, flags, stars, indices);
* small frequencies (a count between 1 and the threshold: members of a cell, members of an
  initiative in strong clusters, exporters, entries …) are blanked on their own;
* scoreboard sums: threshold + dominance / p % on the summed variable; ratios on both the
  numerator and the denominator; firm counts (firms, exporters, patenting firms, entries,
  exits): threshold on the group and the small-frequency rule.

Released files: ``tables/cluster_map.csv``, ``tables/scoreboard.csv``,
``figures/cluster_map.png`` (+ .csv), ``figures/scoreboard.png`` (+ .csv) and
``plots/scoreboard/<indicator>.csv`` (DVC plots: year, members, comparison, programme level).
No secondary suppression: a withheld cell can in principle be recovered from released region
totals and the region's other cells (see :mod:`pipeline.disclosure`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.monitoring import ALL, INDICATORS

from .. import disclosure as sdc
from .tables import fmt, fmt_int, isnum, to_csv_bytes

MAP_RELEASED = ["level", "map_year", "year", "region", "sector", "cluster_id", "size", "n_firms", "n_members", "lq", "small_cell", "strong",
                "stars", "star_size", "star_specialisation", "star_focus", "focus", "hachman", "krugman", "herfindahl", "eg_gamma", "eg_G",
                "eg_H", "n_mapped", "n_strong", "n_starred", "mean_stars"]
MAP_STATS = [c for c in MAP_RELEASED if c not in ("level", "map_year", "year", "region", "sector", "cluster_id")]
MAP_FREQ = ("n_members", "n_mapped", "n_strong", "n_starred")
SB_RELEASED = ["cluster_id", "indicator", "group", "period", "year", "value", "per_firm", "n_firms"]
INDICATOR_LABELS = {
    "firms": "Firms", "entries": "Entries (joined in the year)", "exits": "Exits (left the year before)", "employment": "Employment",
    "turnover": "Turnover", "value_added_per_employee": "Value added per employee", "exports": "Exports", "export_share": "Export share of turnover",
    "exporters": "Exporting firms", "rd_intensity": "R&D intensity (R&D / turnover)", "patents": "Patent applications", "patenting_firms": "Patenting firms",
}
# what the small multiples and the DVC plots show per indicator: the value, or per firm (means of sums, shares of firm counts)
PLOT_METRIC = {"firms": "value", "entries": "value", "exits": "value", "employment": "per_firm", "turnover": "per_firm",
               "value_added_per_employee": "value", "exports": "per_firm", "export_share": "value", "exporters": "per_firm",
               "rd_intensity": "value", "patents": "per_firm", "patenting_firms": "per_firm"}
PLOT_TITLES = {"employment": "Employment per firm", "turnover": "Turnover per firm", "exports": "Exports per firm", "exporters": "Share of firms exporting",
               "patents": "Patent applications per firm", "patenting_firms": "Share of firms patenting", "entries": "Entries", "exits": "Exits"}


def _top_matrix(d: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """The stored largest contributions (cells x 3; missing = 0)."""
    cols = [f"{prefix}top{j}" for j in (1, 2, 3) if f"{prefix}top{j}" in d]
    return d[cols].apply(pd.to_numeric, errors="coerce").to_numpy(float) if cols else np.zeros((len(d), 0))


def _true(v: Any) -> bool:
    """A released flag that is set (missing = not set)."""
    return v is not None and v is not pd.NA and not (isinstance(v, float) and np.isnan(v)) and bool(v)


def _small(v: Any, profile: sdc.Profile) -> bool:
    return isnum(v) and bool(profile.active and profile.min_units and 0 < float(v) < profile.min_units)


# --------------------------------------------------------------------------- cluster map


def release_map(cmap: pd.DataFrame, profile: sdc.Profile) -> tuple[pd.DataFrame, list[sdc.Finding]]:
    """The releasable map (MAP_RELEASED + ``withheld``, ``disclosure_note``) and findings."""
    d = cmap.reset_index(drop=True).copy()
    for c in MAP_RELEASED:
        if c not in d:
            d[c] = pd.NA
    ini = (d["level"] == "initiative").to_numpy()
    cell = sdc.summary_reasons_many(d["n_contributors"].tolist() if "n_contributors" in d else [None] * len(d),
                                    d["total"].tolist() if "total" in d else [0] * len(d), _top_matrix(d), profile)
    count = sdc.summary_reasons_many(d["n_firms"].tolist(), [0] * len(d), np.zeros((len(d), 0)), profile, magnitude=False)
    reasons_all = [count[i] if ini[i] else cell[i] for i in range(len(d))]
    withheld = np.array([bool(r) for r in reasons_all], dtype=bool)
    notes = ["; ".join(r) for r in reasons_all]
    findings: list[sdc.Finding] = []
    for i in np.flatnonzero(withheld):
        r = d.iloc[i]
        where = ", ".join(f"{k}={r[k]}" for k in ("year", "region", "sector", "cluster_id") if not pd.isna(r.get(k)))
        findings.append(sdc.Finding(f"table cluster_map: {r['level']} {where}", "table", reasons_all[i], {"table": "cluster_map"}))
    out = d[MAP_RELEASED].copy()
    for c in MAP_STATS:
        if pd.api.types.is_bool_dtype(out[c]) or str(out[c].dtype) == "boolean":
            out[c] = out[c].astype("boolean")
            out.loc[withheld, c] = pd.NA
        else:
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
            out.loc[withheld, c] = np.nan
    for c in MAP_FREQ:
        bad = out[c].map(lambda v: _small(v, profile)).to_numpy(bool)
        if bad.any():
            out.loc[bad, c] = np.nan
            for j in np.flatnonzero(bad):
                findings.append(sdc.Finding(f"table cluster_map: {out.at[j, 'level']} {out.at[j, 'region'] if not pd.isna(out.at[j, 'region']) else out.at[j, 'cluster_id']}, {c}",
                                            "table", [f"a count below {profile.min_units} (small frequency)"], {"table": "cluster_map"}))
    out["withheld"] = withheld
    out["disclosure_note"] = notes
    return out, findings


def _stars_text(r: pd.Series) -> str:
    if not isnum(r["stars"]):
        return ""
    kinds = [k for k, c in (("size", "star_size"), ("specialisation", "star_specialisation"), ("focus", "star_focus")) if _true(r[c])]
    return ("★" * int(r["stars"])) + (f" ({', '.join(kinds)})" if kinds else "")


def map_content(rel: pd.DataFrame, params: dict[str, Any], flow: dict[str, Any], profile: sdc.Profile) -> dict[str, Any]:
    """Sentences and tables of the cluster-map section from the released map."""
    o = ((params.get("build_groups") or {}).get("cluster_map")) or {}
    from models.cluster_map import options

    o = options(o)
    year = int(rel["map_year"].dropna().iloc[0]) if rel["map_year"].notna().any() else None
    cells = rel[(rel["level"] == "cell") & (rel["year"] == year)]
    size_lab = "Employment" if o["size"] == "employment" else o["size"].replace("_", " ").capitalize()
    strong = cells["strong"].fillna(0).astype(bool)
    listed = cells[strong | (cells["stars"].fillna(0) > 0)].copy()
    listed = listed.sort_values(["strong", "stars", "lq"], ascending=[False, False, False], na_position="last", kind="mergesort")
    rows = [{"region": str(r["region"]), "sector": str(r["sector"]), "size": fmt_int(r["size"]), "firms": fmt_int(r["n_firms"]), "lq": fmt(r["lq"], 2),
             "strong": "yes" if _true(r["strong"]) else "", "stars": _stars_text(r),
             "members": fmt_int(r["n_members"]) if isnum(r["n_members"]) else ("< " + str(profile.min_units) if profile.active else "")}
            for _, r in listed.head(30).iterrows()]
    n_cells = int(len(cells))
    n_strong = int(strong.sum())
    n_withheld = int(cells["withheld"].sum())
    n_small = int(cells["small_cell"].fillna(0).astype(bool).sum())
    ini = rel[rel["level"] == "initiative"]
    irows = []
    for _, r in ini.iterrows():
        share = f" ({float(r['n_strong']) / float(r['n_firms']):.0%})" if isnum(r["n_strong"]) and isnum(r["n_firms"]) and float(r["n_firms"]) > 0 else ""
        irows.append({"cluster_id": str(r["cluster_id"]), "members": fmt_int(r["n_firms"]) or "withheld",
                      "strong": (fmt_int(r["n_strong"]) + share) if isnum(r["n_strong"]) else "withheld",
                      "starred": fmt_int(r["n_starred"]) if isnum(r["n_starred"]) else "withheld", "mean_stars": fmt(r["mean_stars"], 2)})
    tot_m = pd.to_numeric(ini["n_firms"], errors="coerce").sum()
    tot_s = pd.to_numeric(ini["n_strong"], errors="coerce").sum()
    regions = rel[(rel["level"] == "region") & (rel["year"] == year)]
    rrows = [{"region": str(r["region"]), "size": fmt_int(r["size"]), "hachman": fmt(r["hachman"], 3), "krugman": fmt(r["krugman"], 3),
              "herfindahl": fmt(r["herfindahl"], 3)} for _, r in regions.iterrows()]
    sectors = rel[(rel["level"] == "sector") & (rel["year"] == year)]
    srows = [{"sector": str(r["sector"]), "size": fmt_int(r["size"]), "gamma": fmt(r["eg_gamma"], 4), "G": fmt(r["eg_G"], 4), "H": fmt(r["eg_H"], 4)}
             for _, r in sectors.iterrows()]
    st = o["strong"]
    sr = o["stars"]
    intro = (f"Where the clusters are, measured from the firm panel's {o['size'].replace('_', ' ')} by region and sector in {year}"
             + (" (the programme's baseline: the year before the first member joined)" if o["year"] == "baseline" else "")
             + f". Of {n_cells} region × sector cells with employment, {n_strong} are strong clusters"
             + (f"; {n_withheld} cells are withheld by disclosure control" if n_withheld else "")
             + (f"; {n_small} cells with fewer than {o['min_cell_firms']} firms get no location quotient (small-cell rule)" if n_small else "") + ".")
    if len(ini) and tot_m > 0:
        intro += f" Of the initiatives' {fmt_int(tot_m)} members, {fmt_int(tot_s)} ({tot_s / tot_m:.0%}) sat in a strong cluster in the year before they joined."
    rules = [
        "Location quotient LQ = (e_rs / e_r) / (e_s / e): the sector's share of the region's employment relative to its share nationally; LQ ≥ 1 is a specialisation (exactly 1 counts).",
        f"Strong cluster (US Cluster Mapping Project): LQ at or above the {st['lq_quantile']:.0%} percentile of the sector's LQ across regions, LQ ≥ 1, and employment and firm counts above their {st['size_quantile']:.0%} percentiles across regions (percentiles: linear interpolation, R's type 7).",
        f"Stars (European Cluster Observatory): size — employment in the top {1 - sr['size']:.0%} of all cells; specialisation — LQ ≥ {fmt(sr['specialisation'], 2)}; focus — the cell's share of its region's employment in the top {1 - sr['focus']:.0%} of all cells.",
        "Hachman = 1 / Σ_s LQ_rs s_rs (1 = the region's industry mix is the nation's); Krugman = Σ_s |s_rs − s_s| (0 = same mix, up to 2); Herfindahl = Σ_s s_rs². Ellison–Glaeser γ per sector: concentration beyond what the firm-size Herfindahl H would give by chance (γ ≈ 0 random, > 0.05 highly concentrated).",
    ]
    return {"intro": intro, "year": year, "n_cells": n_cells, "n_regions": int(cells["region"].nunique()), "n_sectors": int(cells["sector"].nunique()), "size_label": size_lab, "rows": rows, "more": max(0, len(listed) - 30), "initiatives": irows,
            "regions": rrows[:40], "sectors": srows[:40], "more_regions": max(0, len(rrows) - 40), "more_sectors": max(0, len(srows) - 40), "rules": rules, "strength": o["strength"], "file": "tables/cluster_map.csv",
            "figure": "figures/cluster_map.png"}


# --------------------------------------------------------------------------- scoreboard


def release_scoreboard(sb: pd.DataFrame, profile: sdc.Profile) -> tuple[pd.DataFrame, list[sdc.Finding]]:
    """The releasable scoreboard (SB_RELEASED + ``withheld``, ``disclosure_note``)."""
    d = sb.reset_index(drop=True).copy()
    for c in SB_RELEASED:
        if c not in d:
            d[c] = np.nan
    kind = d["indicator"].astype(str).map(lambda k: INDICATORS.get(k, ("count",))[0]).to_numpy()
    nf = pd.to_numeric(d["n_firms"], errors="coerce").to_numpy(float)
    for c in ("num_n_contributors", "num_total", "den_n_contributors", "den_total"):
        if c not in d:
            d[c] = np.nan
    n_num = np.fmin(nf, pd.to_numeric(d["num_n_contributors"], errors="coerce").to_numpy(float))  # fmin: NaN -> the other
    num = sdc.summary_reasons_many(list(n_num), d["num_total"].tolist(), _top_matrix(d, "num_"), profile)
    den = sdc.summary_reasons_many(d["den_n_contributors"].tolist(), d["den_total"].tolist(), _top_matrix(d, "den_"), profile)
    thr = sdc.summary_reasons_many(list(nf), [0] * len(d), np.zeros((len(d), 0)), profile, magnitude=False)
    small = d["value"].map(lambda v: _small(v, profile)).to_numpy(bool)
    freq = f"a count below {profile.min_units} (small frequency)"
    reasons_all: list[list[str]] = []
    for i in range(len(d)):
        if kind[i] == "sum":
            r = list(num[i])
        elif kind[i] == "ratio":
            r = list(num[i]) + [x for x in den[i] if x not in num[i]]
        elif kind[i] == "flag":
            r = list(thr[i]) + ([freq] if small[i] else [])
        else:  # firms, entries, exits: a count of firms
            r = [freq] if small[i] else []
        reasons_all.append(r)
    withheld = np.array([bool(r) for r in reasons_all], dtype=bool)
    notes = ["; ".join(r) for r in reasons_all]
    findings: list[sdc.Finding] = []
    for i in np.flatnonzero(withheld):
        r = d.iloc[i]
        yr = "baseline" if r["period"] == "baseline" else str(r["year"])
        findings.append(sdc.Finding(f"table scoreboard: {r['cluster_id']} {r['indicator']} {r['group']} {yr}", "table", reasons_all[i], {"table": "scoreboard"}))
    out = d[SB_RELEASED].copy()
    for c in ("value", "per_firm"):
        out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
        out.loc[withheld, c] = np.nan
    out["n_firms"] = pd.to_numeric(out["n_firms"], errors="coerce").astype("float64")
    out.loc[out["n_firms"].map(lambda v: _small(v, profile)).to_numpy(bool), "n_firms"] = np.nan
    out["withheld"] = withheld
    out["disclosure_note"] = notes
    return out, findings


def _cell_text(r: pd.Series | None) -> str:
    if r is None:
        return ""
    if bool(r["withheld"]):
        return "withheld"
    kind = INDICATORS[str(r["indicator"])][0]
    v = r["value"]
    if not isnum(v):
        return ""
    if kind == "sum":
        tot = fmt_int(round(float(v))) if abs(float(v)) >= 100 or float(v).is_integer() else fmt(v, 2)
        return f"{tot} ({fmt(r['per_firm'], 2)} per firm)" if isnum(r["per_firm"]) else tot
    if kind == "flag":
        return f"{fmt_int(v)} ({float(r['per_firm']):.0%})" if isnum(r["per_firm"]) else fmt_int(v)
    if kind == "ratio":
        return f"{float(v):.1%}" if str(r["indicator"]) in ("export_share", "rd_intensity") else fmt(v, 2)
    return fmt_int(v)


def scoreboard_content(rel: pd.DataFrame, flow: dict[str, Any]) -> dict[str, Any]:
    """The baseline-vs-latest table per initiative (the programme first)."""
    annual = rel[rel["period"] == "year"]
    latest = int(annual["year"].max()) if annual["year"].notna().any() else None
    idx = {(str(r["cluster_id"]), str(r["indicator"]), str(r["group"]), str(r["period"]), None if pd.isna(r["year"]) else int(r["year"])): r for _, r in rel.iterrows()}
    inits = sorted(set(rel["cluster_id"].astype(str)) - {ALL})
    blocks = []
    for cid in ([ALL] if ALL in set(rel["cluster_id"].astype(str)) else []) + inits:
        rows = []
        for ind in INDICATORS:
            if not any(k[0] == cid and k[1] == ind for k in idx):
                continue
            rows.append({"indicator": INDICATOR_LABELS.get(ind, ind),
                         "mb": _cell_text(idx.get((cid, ind, "members", "baseline", None))), "ml": _cell_text(idx.get((cid, ind, "members", "year", latest))),
                         "cb": _cell_text(next((v for k, v in idx.items() if k[:4] == (cid, ind, "comparison", "baseline")), None)), "cl": _cell_text(idx.get((cid, ind, "comparison", "year", latest)))})
        cby = sorted({k[4] for k in idx if k[0] == cid and k[2] == "comparison" and k[3] == "baseline" and k[4] is not None})
        name = "All initiatives (the programme)" if cid == ALL else f"Initiative {cid}"
        blocks.append({"cluster_id": name + (f" — comparison baseline {cby[0]}" if cby else " — no comparison baseline (no member observed before joining)"), "rows": rows})
    sbf = (flow or {}).get("scoreboard") or {}
    nc = [INDICATOR_LABELS.get(k, k) for k in sbf.get("not_computed") or []]
    intro = ("How the initiatives are doing: their members' indicators each year beside a comparison group, the non-members of the same region × sector cells. "
             f"The table sets the baseline — each member in the year before it joined; the comparison group in the first of those years — beside the latest year ({latest}). "
             "Totals are sums over the firms observed; ratios are ratios of totals (value added / employment, exports / turnover, R&D / turnover). "
             "These are descriptive monitoring figures: the difference between members and the comparison group is not the effect of membership (the impact estimates are in the sections above).")
    notes = []
    if nc:
        notes.append(f"Not computed (input column not in the panel): {', '.join(nc)}.")
    if str(sbf.get("comparison", "")).startswith("none"):
        notes.append("No comparison group: the panel has no region or sector column.")
    return {"intro": intro, "latest": latest, "blocks": blocks, "notes": notes, "file": "tables/scoreboard.csv", "figure": "figures/scoreboard.png"}


def plot_frames(rel: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per indicator, the programme-level series (year, members, comparison) of the metric in
    :data:`PLOT_METRIC`, from released values (withheld = empty)."""
    a = rel[(rel["cluster_id"].astype(str) == ALL) & (rel["period"] == "year")]
    out = {}
    for ind in INDICATORS:
        part = a[a["indicator"] == ind]
        if part.empty:
            continue
        metric = PLOT_METRIC[ind]
        w = part.pivot_table(index="year", columns="group", values=metric, aggfunc="first", dropna=False)
        years = sorted(part["year"].dropna().astype(int).unique())
        w = w.reindex(years)
        f = pd.DataFrame({"year": years, "members": w["members"].to_numpy(float) if "members" in w else np.nan,
                          "comparison": w["comparison"].to_numpy(float) if "comparison" in w else np.nan})
        out[ind] = f
    return out


# --------------------------------------------------------------------------- entry point


def build(cmap: pd.DataFrame | None, sb: pd.DataFrame | None, params: dict[str, Any], groups_flow: dict[str, Any],
          profile: sdc.Profile) -> dict[str, Any]:
    """Files, figures, content and findings of the two sections."""
    from .cluster_figures import heatmap_figure, scoreboard_figure

    files: dict[str, bytes] = {}
    figures: list[dict[str, Any]] = []
    findings: list[sdc.Finding] = []
    content: dict[str, Any] = {"cluster_map": None, "scoreboard": None, "cluster_map_absent": "", "scoreboard_absent": ""}
    cflow = (groups_flow or {}).get("cluster_map") or {}
    if cmap is None or len(cmap) == 0:
        content["cluster_map_absent"] = ("The cluster map was not built: " + cflow["absent"] + "." if cflow.get("absent")
                                         else "The cluster map was not built (no data/processed/cluster_map.parquet; re-run build_groups).")
    else:
        rel, f = release_map(cmap, profile)
        findings += f
        files["tables/cluster_map.csv"] = to_csv_bytes(rel)
        mc = map_content(rel, params, groups_flow, profile)
        res = heatmap_figure(rel, mc["year"], profile)
        if res is not None:
            files[mc["figure"]], data = res
            files[mc["figure"].replace(".png", ".csv")] = to_csv_bytes(data)
            figures.append({"kind": "cluster_map", "file": mc["figure"], "png": files[mc["figure"]],
                            "caption": f"Cluster map {mc['year']}" + (f" ({len(res[1]['region'].unique())} of {mc['n_regions']} regions, {len(res[1]['sector'].unique())} of {mc['n_sectors']} sectors: those holding members or strong clusters, then the largest)" if len(res[1]) < mc["n_cells"] else "") + ": location quotient of each region × sector cell (colour; grey = no quotient: small cell, no employment or withheld), "
                            "strong clusters framed in black, European Cluster Observatory stars as ★, "
                            + (f"• = the cell holds at least {profile.min_units} members of the initiatives (fewer are not shown)." if profile.active and profile.min_units else "• = the cell holds members of the initiatives.")})
        else:
            mc["figure"] = None
        content["cluster_map"] = mc
    if sb is None or len(sb) == 0:
        content["scoreboard_absent"] = "The monitoring scoreboard was not built (no data/processed/scoreboard.parquet or no members in the register; re-run build_groups)."
    else:
        rel, f = release_scoreboard(sb, profile)
        findings += f
        files["tables/scoreboard.csv"] = to_csv_bytes(rel)
        sc = scoreboard_content(rel, groups_flow)
        frames = plot_frames(rel)
        for ind, fr in frames.items():
            files[f"plots/scoreboard/{ind}.csv"] = to_csv_bytes(fr)
        res = scoreboard_figure(frames, {k: PLOT_TITLES.get(k, INDICATOR_LABELS.get(k, k)) for k in frames})
        if res is not None:
            files[sc["figure"]], data = res
            files[sc["figure"].replace(".png", ".csv")] = to_csv_bytes(data)
            figures.append({"kind": "scoreboard", "file": sc["figure"], "png": files[sc["figure"]],
                            "caption": "Monitoring scoreboard, all initiatives: members (solid) and the region × sector comparison group of non-members (dashed) by year; "
                            "sums shown per firm, firm counts as shares of firms; withheld values are not drawn."})
        else:
            sc["figure"] = None
        content["scoreboard"] = sc
    return {"files": files, "figures": figures, "content": content, "findings": findings}
