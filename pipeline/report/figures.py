"""Figures of the report as deterministic PNG bytes (matplotlib Agg, no Software/date
metadata, fixed DPI and fonts shipped with matplotlib), each with the plotted values as a
CSV (values and counts), so a reader can check every point.

* :func:`event_study_figure` — one outcome, several estimators overlaid (dodged), (1 − alpha)
  intervals, the true effect as a line when the synthetic truth is given.
* :func:`forest_figure` — headline estimates across estimators, one panel per outcome.
* :func:`love_figure` — standardised mean differences before/after matching.
* :func:`loo_figure` — leave-one-cluster-out estimates with intervals and the full-sample line.
* :func:`sensitivity_figure` — HonestDiD: original interval at M̄ = 0, robust intervals by M̄.

Suppressed points (disclosure control) are not drawn; a note under the axis says how many.

Every text is drawn as plain text: labels from ``report.labels`` and values from the data
(cluster ids, sector codes, outcome names) may contain ``$`` or backslashes, which matplotlib
would otherwise parse as mathtext (a ``$\\undefinedmacro$`` label stopped the report). Mathtext
and usetex are off in :data:`RC`, and :func:`png_bytes` turns math parsing off on every text
artist of the figure before drawing, so no caller can forget it.
"""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .tables import ESTIMATOR_LABELS, label  # noqa: E402

PALETTE = ["#1f4e79", "#c0504d", "#4f8a3c", "#8064a2", "#d08a1f", "#2c9bb3", "#7f7f7f", "#a4343a", "#3b6e8f", "#6b8e23", "#b8860b"]
RC = {
    "font.family": "DejaVu Sans",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e3e3e3",
    "grid.linewidth": 0.6,
    "legend.frameon": False,
    "svg.hashsalt": "cluster-impact",
    "path.simplify": False,
    # labels and data are plain text, never mathtext or LaTeX (see the module docstring)
    "text.parse_math": False,
    "text.usetex": False,
}
DPI = 130
# legend entry of the truth line (models.truth: the estimated cohorts, cohort-size weights)
TRUTH_LABEL = "True ATT(e) (simulation; estimated cohorts, cohort-size weights)"


def plain_text(fig) -> None:
    """Turn math parsing off on every text artist of ``fig`` (titles, axis and tick labels,
    legends, annotations): ``$`` and ``\\`` are drawn as they are."""
    from matplotlib.text import Text

    for ax in fig.axes:  # tick labels are made lazily: create them now, under our settings
        for axis in (ax.xaxis, ax.yaxis):
            axis.get_major_ticks()
    for t in fig.findobj(Text):
        t.set_parse_math(False)
        t.set_usetex(False)


def png_bytes(fig) -> bytes:
    plain_text(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


def _color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def event_study_figure(rows: pd.DataFrame, truth: pd.DataFrame | None, outcome: str, labels: dict,
                       ylabel: str | None = None) -> tuple[bytes, pd.DataFrame] | None:
    """``rows``: released dynamic rows of one outcome on one scale (estimate NaN where
    suppressed, column ``suppressed``). ``truth``: per event time ``att`` (models.truth) or
    None. ``ylabel``: the axis text with the unit (pipeline.report.units.axis_label); it is
    also the ``y_label`` column of the returned data."""
    d = rows[(rows["aggregation"] == "dynamic") & rows["event_time"].notna()].copy()
    if d.empty:
        return None
    d["event_time"] = d["event_time"].astype(int)
    ests = sorted(d["estimator"].astype(str).unique())
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7.2, 3.9), layout="constrained")
        width = 0.6
        n = len(ests)
        n_supp = 0
        for i, est in enumerate(ests):
            part = d[d["estimator"] == est].sort_values("event_time")
            shown = part[~part["suppressed"].astype(bool) & part["estimate"].notna()]
            n_supp += int(part["suppressed"].astype(bool).sum())
            off = (i - (n - 1) / 2) * (width / max(n, 1)) if n > 1 else 0.0
            x = shown["event_time"].to_numpy(float) + off
            y = shown["estimate"].to_numpy(float)
            lo = shown["conf_low"].to_numpy(float)
            hi = shown["conf_high"].to_numpy(float)
            ax.errorbar(x, y, yerr=[y - lo, hi - y], fmt="o", ms=4, lw=1.1, capsize=2, color=_color(i),
                        label=label(est, labels, ESTIMATOR_LABELS))
        et_lo, et_hi = int(d["event_time"].min()), int(d["event_time"].max())
        if truth is not None and len(truth):
            # the truth line only over the estimated event-time window
            t = truth[(truth["event_time"] >= et_lo) & (truth["event_time"] <= et_hi)].sort_values("event_time")
            ax.plot(t["event_time"].to_numpy(float), t["att"].to_numpy(float), color="#222222", lw=1.2, ls="--", label=TRUTH_LABEL)
        ax.axhline(0, color="#555555", lw=0.8)
        ax.axvline(-0.5, color="#999999", lw=0.8, ls=":")
        ax.set_xlabel("Years relative to joining the cluster")
        ylabel = ylabel or f"Effect on {label(outcome, labels)}"
        ax.set_ylabel(ylabel)
        et = sorted(d["event_time"].unique())
        if len(et) <= 25:
            ax.set_xticks(et)
        ax.legend(loc="upper left", fontsize=8, ncol=2)
        if n_supp:
            ax.annotate(f"{n_supp} coefficient(s) withheld by disclosure control", xy=(1, -0.16), xycoords="axes fraction",
                        ha="right", fontsize=7, color="#7a2020")
        png = png_bytes(fig)
    data = d[["outcome", "estimator", "event_time", "estimate", "conf_low", "conf_high", "n_treated", "suppressed"]].copy()
    if truth is not None and len(truth):
        data = data.merge(truth[["event_time", "att"]].rename(columns={"att": "truth"}), on="event_time", how="left")
    else:
        data["truth"] = np.nan
    data["y_label"] = ylabel
    return png, data.sort_values(["estimator", "event_time"]).reset_index(drop=True)


def forest_figure(heads: pd.DataFrame, labels: dict, ci: str = "95%", xlabels: dict | None = None) -> tuple[bytes, pd.DataFrame] | None:
    """Headline estimate and ``ci`` interval (the report's 1 − alpha) per estimator, one panel
    per outcome, all rows on one scale (the report draws one figure per scale). ``xlabels``:
    per outcome the axis text with its unit (column ``x_label`` of the returned data)."""
    if heads.empty:
        return None
    outcomes = sorted(heads["outcome"].astype(str).unique())
    with plt.rc_context(RC):
        heights = [max(1.0, 0.32 * (heads["outcome"] == o).sum() + 0.6) for o in outcomes]
        fig, axes = plt.subplots(len(outcomes), 1, figsize=(7.2, sum(heights) + 0.4), gridspec_kw={"height_ratios": heights}, squeeze=False, layout="constrained")
        for ax, o in zip(axes[:, 0], outcomes):
            part = heads[heads["outcome"] == o].sort_values("estimator", ascending=False).reset_index(drop=True)
            ys = np.arange(len(part))
            for j, r in part.iterrows():
                if bool(r["suppressed"]) or pd.isna(r["estimate"]):
                    ax.text(0.5, ys[j], "withheld (disclosure control)", transform=ax.get_yaxis_transform(), va="center", ha="center", fontsize=7, color="#7a2020")
                    continue
                ax.errorbar([r["estimate"]], [ys[j]], xerr=[[r["estimate"] - r["conf_low"]], [r["conf_high"] - r["estimate"]]],
                            fmt="s", ms=5, capsize=3, color=_color(sorted(heads["estimator"].astype(str).unique()).index(str(r["estimator"]))))
            ax.axvline(0, color="#555555", lw=0.8)
            ax.set_yticks(ys)
            ax.set_yticklabels([label(e, labels, ESTIMATOR_LABELS) for e in part["estimator"]])
            ax.set_ylim(-0.6, len(part) - 0.4)
            ax.set_title(label(o, labels), loc="left", fontsize=9, fontweight="bold")
            ax.grid(axis="y", visible=False)
            ax.set_xlabel((xlabels or {}).get(o) or f"Average effect on members (ATT) with {ci} interval", fontsize=8)
        png = png_bytes(fig)
    data = heads[["outcome", "estimator", "aggregation", "estimate", "conf_low", "conf_high", "n_obs", "n_treated", "suppressed"]].copy()
    data["x_label"] = data["outcome"].astype(str).map(lambda o: (xlabels or {}).get(o) or f"Average effect on members (ATT) with {ci} interval")
    return png, data.sort_values(["outcome", "estimator"]).reset_index(drop=True)


def balance_wide(bal: pd.DataFrame) -> pd.DataFrame:
    """Long balance tables (``covariate, sample, smd, ...`` as models.matching.balance
    writes them) -> one row per covariate with ``smd_<sample>`` columns; wide tables as is."""
    if {"covariate", "sample", "smd"} <= set(bal.columns):
        w = bal.pivot_table(index="covariate", columns="sample", values="smd", aggfunc="first", sort=True, dropna=False)
        w.columns = [f"smd_{c}" for c in w.columns]
        return w.reset_index()
    return bal


def balance_columns(bal: pd.DataFrame) -> tuple[str | None, list[str]]:
    """(covariate column, standardised-difference columns in before -> after order)."""
    bal = balance_wide(bal)
    name = next((c for c in bal.columns if str(c).lower() in ("covariate", "variable", "term", "name")), None)
    if name is None:
        name = next((c for c in bal.columns if not pd.api.types.is_numeric_dtype(bal[c])), None)
    smd = [c for c in bal.columns if pd.api.types.is_numeric_dtype(bal[c]) and any(k in str(c).lower() for k in ("smd", "std_mean_diff", "std_diff", "standardized", "standardised"))]

    def order(c: str) -> int:
        c = c.lower()
        return 0 if any(k in c for k in ("before", "all", "unmatched", "raw", "pre")) else 1

    return name, sorted(smd, key=lambda c: (order(str(c)), str(c)))


def love_figure(bal: pd.DataFrame, title: str, labels: dict) -> tuple[bytes, pd.DataFrame] | None:
    bal = balance_wide(bal)
    name, smd = balance_columns(bal)
    if name is None or not smd:
        return None
    b = bal[[name, *smd]].copy()
    b = b.groupby(name, sort=True, as_index=False).first()
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7.2, 0.3 * len(b) + 1.2), layout="constrained")
        ys = np.arange(len(b))
        markers = ["o", "s", "^", "D"]
        for i, c in enumerate(smd):
            ax.scatter(b[c].abs().to_numpy(float), ys, marker=markers[i % 4], s=22, color=_color(i), label=str(c).replace("_", " "), zorder=3,
                       facecolors="none" if i == 0 and len(smd) > 1 else _color(i))
        ax.axvline(0.1, color="#999999", lw=0.8, ls="--")
        ax.set_yticks(ys)
        ax.set_yticklabels([label(v, labels) for v in b[name]])
        ax.set_xlabel("Absolute standardised mean difference (dashed: 0.1)")
        ax.set_title(title, loc="left", fontsize=9, fontweight="bold")
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8)
        png = png_bytes(fig)
    return png, b.reset_index(drop=True)


def overlap_figure(tab: pd.DataFrame, title: str) -> tuple[bytes, pd.DataFrame] | None:
    """Propensity-score distributions (released ``overlap`` table of models.matching.balance:
    share of members / controls per score bin) before and after matching, side by side;
    the discarded units' distribution is outlined in the "before" panel. Blanked bins
    (disclosure) are drawn as empty."""
    need = {"group", "sample", "bin_low", "bin_high", "share"}
    if tab is None or not len(tab) or not need <= set(tab.columns):
        return None
    d = tab.copy()
    d["share"] = pd.to_numeric(d["share"], errors="coerce")
    with plt.rc_context(RC):
        fig, axes = plt.subplots(1, 2, figsize=(7.2, 2.8), sharey=True, layout="constrained")
        for ax, sample in zip(axes, ("before", "after")):
            for i, g in enumerate(("member", "control")):
                part = d[(d["group"] == g) & (d["sample"] == sample)].sort_values("bin_low")
                if not len(part):
                    continue
                lo, hi = part["bin_low"].to_numpy(float), part["bin_high"].to_numpy(float)
                ax.bar(lo, part["share"].fillna(0).to_numpy(float), width=hi - lo, align="edge", alpha=0.45,
                       color=_color(i), edgecolor=_color(i), label={"member": "Members", "control": "Controls"}[g])
            if sample == "before":
                disc = d[(d["sample"] == "discarded")]
                if len(disc) and pd.to_numeric(disc["n_units"], errors="coerce").fillna(0).sum() > 0:
                    ax.text(0.98, 0.95, "common-support discards: see caption", transform=ax.transAxes, ha="right", va="top", fontsize=7)
            ax.set_title({"before": "All units (before matching)", "after": "Matched (matching weights)"}[sample], fontsize=8)
            ax.set_xlabel("Propensity score")
        axes[0].set_ylabel("Share of group")
        axes[1].legend(fontsize=7)
        fig.suptitle(title, x=0.01, ha="left", fontsize=9, fontweight="bold")
        png = png_bytes(fig)
    return png, d.reset_index(drop=True)


def loo_figure(tab: pd.DataFrame, full: float | None, full_ci: tuple, title: str, by: str, ci: str = "95%",
               unit: str | None = None) -> tuple[bytes, pd.DataFrame] | None:
    """Estimate (``ci`` CI, the report's 1 − alpha) per left-out value of ``by`` (released ``leave_one_out`` table:
    blanked rows are not drawn) with the full-sample estimate as a line (CI band if given)."""
    if tab is None or not len(tab) or not {"left_out", "estimate", "conf_low", "conf_high"} <= set(tab.columns):
        return None
    d = tab.copy()
    d["left_out"] = d["left_out"].astype(str)
    d = d.sort_values("left_out", kind="mergesort").reset_index(drop=True)
    shown = d[d["estimate"].notna()]
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7.2, 0.28 * len(d) + 1.3), layout="constrained")
        ys = np.arange(len(d))[::-1]
        ypos = dict(zip(d["left_out"], ys))
        y = shown["left_out"].map(ypos).to_numpy(float)
        est = shown["estimate"].to_numpy(float)
        ax.errorbar(est, y, xerr=[est - shown["conf_low"].to_numpy(float), shown["conf_high"].to_numpy(float) - est], fmt="o", ms=4, capsize=2, color=_color(0),
                    label="Estimate without this cluster")
        if full is not None:
            if full_ci[0] is not None:
                ax.axvspan(full_ci[0], full_ci[1], color=_color(0), alpha=0.08, lw=0, label=f"Full-sample {ci} interval")
            ax.axvline(full, color="#222222", lw=1.1, ls="--", label="Full-sample estimate")
        ax.axvline(0, color="#555555", lw=0.8)
        ax.set_yticks(ys)
        ax.set_yticklabels([str(v) for v in d["left_out"]])
        ax.set_ylabel(f"Left out ({by.replace('_', ' ')})")
        xlabel = f"Average effect on members (ATT){', ' + unit if unit else ''}, {ci} interval"
        ax.set_xlabel(xlabel)
        ax.set_title(title, loc="left", fontsize=9, fontweight="bold")
        ax.grid(axis="y", visible=False)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.28 if len(d) < 8 else -0.12), ncol=3, fontsize=7.5)
        n_supp = int(d["estimate"].isna().sum())
        if n_supp:
            ax.annotate(f"{n_supp} estimate(s) withheld by disclosure control", xy=(1, 1.02), xycoords="axes fraction", ha="right", fontsize=7, color="#7a2020")
        png = png_bytes(fig)
    cols = [c for c in ("left_out", "estimate", "conf_low", "conf_high", "n_treated") if c in d.columns]
    data = d[cols].copy()
    data["full_sample_estimate"] = np.nan if full is None else float(full)
    data["full_sample_conf_low"] = np.nan if full_ci[0] is None else float(full_ci[0])
    data["full_sample_conf_high"] = np.nan if full_ci[1] is None else float(full_ci[1])
    data["x_label"] = xlabel
    return png, data


def sensitivity_figure(plot: pd.DataFrame, title: str, breakdown: float | None, ci: str = "95%", unit: str | None = None) -> bytes | None:
    """Original CI (M̄ = 0, the average of the post-period coefficients) and HonestDiD
    relative-magnitude robust CIs for each M̄ (Rambachan & Roth 2023, their Figure 4 style)."""
    if plot is None or not len(plot):
        return None
    with plt.rc_context(RC):
        fig, ax = plt.subplots(figsize=(7.2, 3.3), layout="constrained")
        orig = plot[plot["kind"] == "original"]
        rob = plot[plot["kind"] == "robust"].sort_values("mbar")
        step = float(np.diff(rob["mbar"].to_numpy(float)).min()) if len(rob) > 1 else 0.5
        w = 0.12 * (step if step > 0 else 0.5)
        if len(orig):
            r = orig.iloc[0]
            ax.errorbar([0.0], [r["estimate"]], yerr=[[r["estimate"] - r["conf_low"]], [r["conf_high"] - r["estimate"]]], fmt="o", ms=5, capsize=4, lw=1.4,
                        color=_color(1), label=f"Original {ci} CI (parallel trends)")
        for j, r in enumerate(rob.itertuples(index=False)):
            ax.plot([r.mbar, r.mbar], [r.conf_low, r.conf_high], color=_color(0), lw=2.2, solid_capstyle="butt", label=f"Robust {ci} CI (relative magnitudes)" if j == 0 else None)
            ax.plot([r.mbar - w, r.mbar + w], [r.conf_low, r.conf_low], color=_color(0), lw=1.2)
            ax.plot([r.mbar - w, r.mbar + w], [r.conf_high, r.conf_high], color=_color(0), lw=1.2)
        if breakdown is not None and breakdown > 0:
            ax.axvline(breakdown, color="#999999", lw=0.9, ls=":", label=f"Breakdown M̄* = {breakdown:.2f}")
        ax.axhline(0, color="#555555", lw=0.8)
        ticks = sorted({0.0, *rob["mbar"].astype(float).tolist()})
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}" for t in ticks])
        ax.set_xlabel("M̄: post-treatment violation at most M̄ × the largest pre-treatment violation")
        ax.set_ylabel("Average post-period effect" + (f", {unit}" if unit else ""))
        ax.set_title(title, loc="left", fontsize=9, fontweight="bold")
        ax.legend(loc="upper left", fontsize=7.5)
        return png_bytes(fig)
