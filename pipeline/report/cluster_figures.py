"""Figures of the cluster-context sections (deterministic PNG, same style as
:mod:`pipeline.report.figures`), each returned with the plotted values as a frame:

* :func:`heatmap_figure` — the cluster map: region x sector location quotients, strong
  clusters framed, stars, cells holding members;
* :func:`scoreboard_figure` — small multiples, one panel per indicator: members vs the
  comparison group by year (programme level).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .figures import RC, png_bytes, plt


MAX_REGIONS, MAX_SECTORS = 40, 30  # beyond: the rows / columns holding members or strong clusters, then the largest


def _shown(cells: pd.DataFrame, dim: str, cap: int) -> list[str]:
    """Levels of ``dim`` on the heatmap: all when at most ``cap``; else those with members or
    strong clusters first, then by size, up to ``cap``."""
    levels = sorted(cells[dim].unique())
    if len(levels) <= cap:
        return levels
    g = cells.assign(_m=cells["n_members"].fillna(0), _s=cells["strong"].fillna(False).astype(bool), _z=cells["size"].fillna(0))
    rank = g.groupby(dim).agg(m=("_m", "sum"), s=("_s", "sum"), z=("_z", "sum")).sort_values(["m", "s", "z"], ascending=False)
    return sorted(rank.index[:cap])


def heatmap_figure(rel: pd.DataFrame, year: int | None, profile) -> tuple[bytes, pd.DataFrame] | None:
    cells = rel[(rel["level"] == "cell") & (rel["year"] == year)].copy()
    if cells.empty:
        return None
    cells["region"], cells["sector"] = cells["region"].astype(str), cells["sector"].astype(str)
    regions, sectors = _shown(cells, "region", MAX_REGIONS), _shown(cells, "sector", MAX_SECTORS)
    sectors = sorted(sectors, key=lambda s: (len(s), s))
    cells = cells[cells["region"].isin(regions) & cells["sector"].isin(sectors)]
    lq = cells.pivot_table(index="region", columns="sector", values="lq", aggfunc="first").reindex(index=regions, columns=sectors)
    z = np.log2(lq.to_numpy(float))
    with plt.rc_context(RC):
        w = max(6.0, 0.55 * len(sectors) + 2.2)
        h = max(3.0, 0.45 * len(regions) + 1.6)
        fig, ax = plt.subplots(figsize=(w, h))
        cmap = plt.get_cmap("RdBu_r").with_extremes(bad="#d9d9d9")
        im = ax.imshow(np.ma.masked_invalid(z), cmap=cmap, vmin=-1.5, vmax=1.5, aspect="auto")
        ax.grid(False)
        ax.set_xticks(range(len(sectors)), sectors)
        ax.set_yticks(range(len(regions)), regions)
        ax.set_xlabel("Sector")
        ax.set_ylabel("Region")
        ax.set_title(f"Location quotients and clusters, {year}")
        for _, r in cells.iterrows():
            i, j = regions.index(r["region"]), sectors.index(r["sector"])
            if not pd.isna(r["strong"]) and bool(r["strong"]):
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.0))
            st = int(r["stars"]) if not pd.isna(r["stars"]) else 0
            if st:
                ax.text(j, i - 0.12, "★" * st, ha="center", va="center", fontsize=6.5, color="#222222")
            nm = r["n_members"]
            if not pd.isna(nm) and float(nm) > 0 and (not profile.active or not profile.min_units or float(nm) >= profile.min_units):
                ax.text(j, i + 0.22, "•", ha="center", va="center", fontsize=11, color="#111111")
        cb = fig.colorbar(im, ax=ax, fraction=0.035, pad=0.02)
        ticks = [-1.5, -1, 0, 1, 1.5]
        cb.set_ticks(ticks, labels=[f"{2 ** t:.2g}" for t in ticks])
        cb.set_label("LQ (log scale)")
        fig.tight_layout()
        png = png_bytes(fig)
    data = cells[["region", "sector", "size", "n_firms", "lq", "strong", "stars", "n_members"]].sort_values(["region", "sector"]).reset_index(drop=True)
    return png, data


def scoreboard_figure(frames: dict[str, pd.DataFrame], titles: dict[str, str]) -> tuple[bytes, pd.DataFrame] | None:
    keys = [k for k, f in frames.items() if f[["members", "comparison"]].notna().any().any()]
    if not keys:
        return None
    ncol = 4
    nrow = math.ceil(len(keys) / ncol)
    with plt.rc_context(RC):
        fig, axes = plt.subplots(nrow, ncol, figsize=(10.5, 2.3 * nrow + 0.6), squeeze=False)
        for ax in axes.flat[len(keys):]:
            ax.set_visible(False)
        for ax, k in zip(axes.flat, keys):
            f = frames[k]
            ax.plot(f["year"], f["members"], color="#1f4e79", linewidth=1.6, marker="o", markersize=2.5, label="members")
            if f["comparison"].notna().any():
                ax.plot(f["year"], f["comparison"], color="#c0504d", linewidth=1.3, linestyle="--", label="comparison")
            ax.set_title(titles.get(k, k), fontsize=8.5)
            ax.tick_params(labelsize=7)
            yrs = f["year"].to_numpy()
            if len(yrs):
                step = max(1, int(math.ceil((yrs.max() - yrs.min()) / 4)))
                ax.set_xticks(list(range(int(yrs.min()), int(yrs.max()) + 1, step)))
            if k in ("firms", "entries", "exits"):  # counts: from zero (an all-zero series sits on the axis)
                top = float(np.nanmax(f[["members", "comparison"]].to_numpy(float)))
                ax.set_ylim(0, max(1.0, top * 1.08))
            if k in ("export_share", "rd_intensity", "exporters", "patenting_firms"):
                top = float(np.nanmax(f[["members", "comparison"]].to_numpy(float))) if f[["members", "comparison"]].notna().any().any() else 1.0
                ax.yaxis.set_major_formatter(plt.FuncFormatter((lambda v, _: f"{v:.0%}") if top >= 0.1 else (lambda v, _: f"{v:.1%}")))
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, ["members", "comparison (non-members, same region × sector)"][: len(handles)], loc="lower center", ncol=2, fontsize=8)
        fig.tight_layout(rect=(0, 0.05, 1, 1))
        png = png_bytes(fig)
    data = pd.concat([f.assign(indicator=k) for k, f in frames.items()], ignore_index=True)[["indicator", "year", "members", "comparison"]]
    return png, data
