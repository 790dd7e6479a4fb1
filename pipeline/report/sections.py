"""Content of the report sections added for the credibility battery, the HonestDiD
sensitivity analysis, the outcome families and the Goodman-Bacon decomposition.

Every function here is pure: it takes the *released* tidy rows (``rel``: disclosure-checked,
suppressed rows blanked, column ``suppressed``), the estimators' ``meta`` dicts and the
released auxiliary tables, and returns plain dicts of display strings for the HTML and PDF
templates (plus the data behind the new figures). A number that derives from a suppressed
row is never shown: a check's verdict sentence and numbers are replaced by
"withheld by disclosure control" when any of its tidy rows was suppressed, and a
sensitivity analysis is withheld when any of the event study's dynamic rows was.

References: Rambachan & Roth (2023), "A More Credible Approach to Parallel Trends", REStud
90(5); Roth (2022), "Pretest with Caution", AER: Insights 4(3); Chen & Roth (2024), "Logs
with Zeros? Some Problems and Solutions", QJE 139(2); Goodman-Bacon (2021), J. Econometrics
225(2).
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import pandas as pd

from .. import disclosure as sdc
from .significance import pct as pct_text
from .tables import ESTIMATOR_LABELS, fmt, fmt_fixed, fmt_int, fmt_p, isnum, label

CHECKS = "checks"  # registry key of the credibility battery: its rows are not effect estimates
HETEROGENEITY = "heterogeneity"  # subgroup effects: shown in their own section, not as headline effects
NOT_EFFECTS = (CHECKS, HETEROGENEITY)
POISSON = ("ppml", "etwfe_poisson")
WITHHELD = "withheld by disclosure control"

CHECK_TITLES = {
    "placebo_adoption": "Placebo: fake adoption date",
    "placebo_group": "Placebo: fake treated group",
    "placebo_outcome": "Placebo: outcome membership cannot move",
    "ri_pvalue": "Randomization inference",
    "leave_one_out": "Leave one cluster out",
    "spillover": "Spillovers onto co-located non-members",
}
CHECK_ORDER = tuple(CHECK_TITLES)


def _check_terms(check: str, terms: list[str]) -> list[str]:
    """The tidy-row terms behind one check's verdict."""
    if check == "leave_one_out":
        return [t for t in terms if t.startswith("loo:")]
    if check == "spillover":
        return [t for t in terms if t.startswith("spillover_")]
    return [t for t in terms if t == check]


def _numbers(v: dict[str, Any], profile: sdc.Profile) -> str:
    """The numeric entries of one verdict dict as 'name = value' text (counts below the
    disclosure threshold shown as '< k')."""
    parts = []
    for k in sorted(v):
        if k in ("verdict", "sentence", "convention", "method"):
            continue
        x = v[k]
        name = k.replace("_", " ")
        if isinstance(x, dict):
            sub = []
            for kk in sorted(x):
                xx = x[kk]
                if isnum(xx) and not isinstance(xx, bool):
                    sub.append(f"{str(kk).replace('_', ' ')} " + (f"< {profile.min_units}" if sdc.small_count(xx, profile) else fmt_int(xx)))
            if sub:
                parts.append(f"{name}: " + ", ".join(sub))
        elif isinstance(x, (list, tuple)):
            parts.append(f"{name}: " + (", ".join(str(i) for i in x[:10]) if x else "none"))
        elif isinstance(x, bool):
            parts.append(f"{name}: {'yes' if x else 'no'}")
        elif isnum(x):
            xf = float(x)
            if k.startswith(("n_", "draws")) and xf.is_integer():
                parts.append(f"{name} = {fmt_int(xf)}")
            elif "p_value" in k:
                parts.append(f"{name} = {fmt_p(xf) if xf >= 0.001 else f'{xf:.2e}'}")
            else:
                parts.append(f"{name} = {fmt(xf, 4)}")
    return "; ".join(parts)


def credibility(rel: pd.DataFrame, metas: dict[str, dict], aux: dict[str, dict[str, pd.DataFrame]], profile: sdc.Profile,
                lab_o: dict[str, str]) -> list[dict[str, Any]]:
    """One block per outcome that ran the battery: rows check / verdict / sentence / numbers
    and the leave-one-out plot data (released ``leave_one_out`` table + full-sample line)."""
    out = []
    for key in sorted(metas):
        o, _, e = key.partition("-")
        if e != CHECKS:
            continue
        meta = metas[key] or {}
        verdicts = meta.get("verdicts") or {}
        part = rel[(rel["outcome"] == o) & (rel["estimator"] == CHECKS)]
        terms = part["term"].astype(str).tolist()
        supp = dict(zip(terms, part["suppressed"].astype(bool)))
        rows = []
        for check in sorted(verdicts, key=lambda c: (CHECK_ORDER.index(c) if c in CHECK_ORDER else 99, c)):
            v = verdicts[check] or {}
            behind = _check_terms(check, terms)
            withheld = any(supp.get(t, False) for t in behind)
            verdict = str(v.get("verdict", ""))
            rows.append({
                "check": CHECK_TITLES.get(check, check.replace("_", " ")),
                "verdict": verdict,
                "css": {"pass": "good", "concern": "warn"}.get(verdict, "muted"),
                "sentence": WITHHELD if withheld else str(v.get("sentence", "")),
                "numbers": "" if withheld else _numbers(v, profile),
            })
        loo = None
        tab = (aux.get(key) or {}).get("leave_one_out")
        if tab is not None and len(tab):
            lv = verdicts.get("leave_one_out") or {}
            full = lv.get("full_estimate")
            full_ci = (None, None)
            # the full-sample estimate is the battery's own estimate on the actual design
            # (rows ri_pvalue / spillover_naive): shown only when that row was released
            ref = part[part["term"].isin(["spillover_naive", "ri_pvalue"]) & ~part["suppressed"].astype(bool)]
            if ref.empty or not isnum(full):
                full = None
            else:
                r = ref[ref["term"] == "spillover_naive"]
                if len(r) and isnum(r["conf_low"].iloc[0]) and math.isclose(float(r["estimate"].iloc[0]), float(full), rel_tol=1e-9, abs_tol=1e-12):
                    full_ci = (float(r["conf_low"].iloc[0]), float(r["conf_high"].iloc[0]))
            loo = {"table": tab, "full": full, "full_ci": full_ci, "by": str(tab["by"].iloc[0]) if "by" in tab.columns else "cluster"}
        n_concern = sum(r["verdict"] == "concern" for r in rows)
        n_pass = sum(r["verdict"] == "pass" for r in rows)
        n_not = sum(r["verdict"] not in ("pass", "concern") for r in rows)
        summary = (f"{lab_o.get(o, o)}: {n_pass} of {len(rows)} credibility checks passed"
                   + (f", {n_concern} raised a concern ({', '.join(r['check'].lower() for r in rows if r['verdict'] == 'concern')})" if n_concern else "")
                   + (f", {n_not} not run" if n_not else "")
                   + (f" (estimator re-run on each design: {label(meta['estimator_checked'], {}, ESTIMATOR_LABELS)})" if meta.get("estimator_checked") else "") + ".")
        out.append({"key": key, "outcome": lab_o.get(o, o), "rows": rows, "loo": loo, "summary": summary,
                    "figure": f"figures/leave_one_out-{o}.png" if loo is not None else None})
    return out


# --------------------------------------------------------------------------- sensitivity


def _original_ci(rel_part: pd.DataFrame, vcov: pd.DataFrame | None, post: list[int], alpha: float) -> tuple[float, float, float] | None:
    """Estimate and (1 - alpha) CI of the average of the post-period dynamic coefficients,
    l'beta with l = 1/|post| on the post periods, SE = sqrt(l' V l) from ``vcov_dynamic``."""
    if vcov is None or not post:
        return None
    from scipy.stats import norm

    d = rel_part[(rel_part["aggregation"] == "dynamic") & rel_part["event_time"].notna()]
    est = d.set_index(d["event_time"].astype(int))["estimate"]
    V = vcov.copy()
    if "event_time" in V.columns:  # as stored: the event-time index written as a column
        V = V.set_index("event_time")
    try:
        V.index = [int(i) for i in V.index]
        V.columns = [int(c) for c in V.columns]
    except (TypeError, ValueError):
        return None
    if any(p not in est.index or not isnum(est[p]) or p not in V.index for p in post):
        return None
    b = float(np.mean([float(est[p]) for p in post]))
    S = V.loc[post, post].to_numpy(float)
    se = float(np.sqrt(S.sum()) / len(post))
    z = float(norm.ppf(1 - alpha / 2))
    return b, b - z * se, b + z * se


def sensitivity(rel: pd.DataFrame, metas: dict[str, dict], tables: dict[str, dict[str, pd.DataFrame]], profile: sdc.Profile,
                lab_o: dict[str, str], alpha: float, units: dict | None = None, has_deflators: bool = False) -> tuple[list[dict[str, Any]], list[sdc.Finding]]:
    """Per outcome x estimator with ``meta["sensitivity"]``: the robust-interval table, the
    plot data (original CI at M̄ = 0, then robust CIs by M̄), the breakdown sentence and the
    pre-test power sentence. Withheld when any dynamic row of that event study was."""
    out, findings = [], []
    for key in sorted(metas):
        sens = (metas[key] or {}).get("sensitivity")
        if not isinstance(sens, dict):
            continue
        o, _, e = key.partition("-")
        title = f"{lab_o.get(o, o)} / {label(e, {}, ESTIMATOR_LABELS)}"
        if "not_run" in sens:
            out.append({"key": key, "title": title, "withheld": False, "not_run": str(sens["not_run"]), "rows": [], "sentences": [], "plot": None, "figure": None})
            continue
        part = rel[(rel["outcome"] == o) & (rel["estimator"] == e)]
        dyn = part[part["aggregation"] == "dynamic"]
        n_tr = (metas[key] or {}).get("n_treated_units")
        if bool(dyn["suppressed"].astype(bool).any()) or (profile.min_units and sdc.threshold_fails(n_tr, profile.min_units) and profile.active):
            findings.append(sdc.Finding(f"sensitivity {key}", "table", ["derived from event-study coefficients withheld by disclosure control"], {"table": f"{key}-honest_did"}))
            out.append({"key": key, "title": title, "withheld": True, "not_run": "", "rows": [], "sentences": [], "plot": None, "figure": None})
            continue
        tab = (tables.get(key) or {}).get("honest_did")
        post = [int(p) for p in sens.get("post_periods") or []]
        pre = [int(p) for p in sens.get("pre_periods") or []]
        orig = _original_ci(part, (tables.get(key) or {}).get("vcov_dynamic"), post, alpha)
        rows, plot = [], []
        if orig is not None:
            rows.append({"M": "0 (original)", "lb": fmt(orig[1], 4), "ub": fmt(orig[2], 4), "method": "conventional", "inference": "normal",
                         "Delta": "exact parallel trends", "excludes_zero": "yes" if orig[1] > 0 or orig[2] < 0 else "no"})
            plot.append({"outcome": o, "estimator": e, "mbar": 0.0, "kind": "original", "estimate": orig[0], "conf_low": orig[1], "conf_high": orig[2]})
        if tab is not None and len(tab):
            for r in tab.sort_values("M", kind="mergesort").itertuples(index=False):
                rows.append({"M": fmt(r.M, 2), "lb": fmt(r.lb, 4), "ub": fmt(r.ub, 4), "method": str(getattr(r, "method", "")), "inference": str(getattr(r, "inference", "")),
                             "Delta": str(getattr(r, "Delta", "")), "excludes_zero": "yes" if (isnum(r.lb) and float(r.lb) > 0) or (isnum(r.ub) and float(r.ub) < 0) else "no"})
                plot.append({"outcome": o, "estimator": e, "mbar": float(r.M), "kind": "robust", "estimate": np.nan, "conf_low": float(r.lb), "conf_high": float(r.ub)})
        sentences = []
        bd = sens.get("breakdown_mbar")
        if isnum(bd):
            if float(bd) > 0:
                sentences.append(f"The average effect remains significantly different from zero as long as post-treatment violations of parallel trends are at most "
                                 f"M̄* = {float(bd):.2f} times the largest pre-treatment violation (Rambachan & Roth 2023).")
            else:
                sentences.append("The average post-period effect is not significantly different from zero even under exact parallel trends (M̄ = 0), so there is no "
                                 "breakdown value to report (Rambachan & Roth 2023).")
        s50, s80 = sens.get("slope_power_50"), sens.get("slope_power_80")
        if isnum(s50):
            # bias of the average post-period coefficient from an undetected linear trend
            # delta_t = slope * (t + 1) (reference period -1), averaged over the post periods
            bias = float(s50) * float(np.mean([p + 1 for p in post])) if post else float("nan")
            from .units import row_unit

            u = row_unit(o, str((metas[key] or {}).get("base_estimator") or e), None, units, has_deflators)
            s = (f"A linear pre-trend with slope {fmt(s50, 4)} {u} per year would be detected only half of the time"
                 + (f" (80% of the time at slope {fmt(s80, 4)})" if isnum(s80) else "")
                 + f" by the pre-test over {len(pre)} pre-period(s).")
            if orig is not None and isnum(bias) and orig[0] != 0:
                s += (f" Such a trend would shift the average post-period effect by about {fmt(bias, 4)} {u}, {abs(bias / orig[0]):.0%} of the estimate ({fmt(orig[0], 4)} {u}); "
                      "the pre-test is weak evidence of parallel trends when trends it misses this often would matter for the conclusion (Roth 2022).")
            else:
                s += " The pre-test is weak evidence of parallel trends when trends of this size would matter for the conclusion (Roth 2022)."
            sentences.append(s)
        elif sens.get("power_note"):
            sentences.append(f"Pre-test power could not be computed: {sens['power_note']}.")
        out.append({"key": key, "title": title, "withheld": False, "not_run": "", "rows": rows, "sentences": sentences, "method": str(sens.get("method", "")),
                    "plot": pd.DataFrame(plot, columns=["outcome", "estimator", "mbar", "kind", "estimate", "conf_low", "conf_high"]) if plot else None,
                    "figure": f"figures/sensitivity-{key}.png" if plot else None})
    return out, findings


# --------------------------------------------------------------------------- outcome families

ZEROS_NOTE = ("For outcomes with many zeros (exports, patent applications) the report does not use log(1 + y) or asinh(y): with zeros, an average effect on "
              "such a transformation is not a percentage effect and depends on the arbitrary units of y (rescaling y, e.g. from thousands of the currency to single units, "
              "changes it), because it mixes the extensive and intensive margins (Chen & Roth 2024, QJE 139(2)). The report shows instead the level effect, "
              "the extensive margin (share with y > 0) and the Poisson (PPML) proportional effect, which is well defined with zeros.")

ESTIMANDS = {
    "log_labour_productivity": "% change in real value added per employee (log points; 100 (e^β − 1) is the percentage effect).",
    "labour_productivity": "Change in real value added per employee ({unit}).",
    "log_tfp": "% change in total factor productivity (log points): log real value added minus the estimated labour and capital elasticities times log employment and log capital.",
    "export_status": "Extensive margin of exporting: change in the probability of exporting, in percentage points (the estimate × 100).",
    "exports": "Level effect on exports per firm and year, {unit} (zeros included); the PPML estimator gives the proportional (percentage) effect.",
    "log_exports": "Intensive margin: % change in exports among exporting firms (log points; zeros excluded).",
    "export_intensity": "Change in the export share of turnover.",
    "patents": "Change in the number of patent applications per firm and year (count, zeros included); PPML and ETWFE Poisson give the proportional (percentage) effect.",
    "patent_status": "Extensive margin of patenting: change in the probability of filing at least one patent application in a year, in percentage points (the estimate × 100).",
    "employment_growth": "Change in the annual employment growth rate.",
    "log_employment": "% change in employment (log points).",
    "rd_intensity": "Change in R&D expenditure as a share of turnover.",
}
EXTENSIVE = {"exports": ("export_status",), "patents": ("patent_status", "any_patent", "patents_any", "has_patents")}
INTENSIVE = {"exports": ("log_exports",), "patents": ()}


def _pref_row(rel: pd.DataFrame, outcome: str, prefer: tuple[str, ...]) -> pd.Series | None:
    """The headline row of the first preferred estimator with a released estimate."""
    from .tables import headline_rows

    part = rel[(rel["outcome"] == outcome) & ~rel["estimator"].isin(NOT_EFFECTS + POISSON)]
    h = headline_rows(part)
    if h.empty:
        return None
    h = h[~h["suppressed"].astype(bool) & h["estimate"].notna()]
    for e in prefer:
        r = h[h["estimator"] == e]
        if len(r):
            return r.iloc[0]
    return h.iloc[0] if len(h) else None


def _ci(r: pd.Series, scale: float = 1.0, d: int = 3) -> str:
    return f"{fmt_fixed(float(r['estimate']) * scale, d)} [{fmt_fixed(float(r['conf_low']) * scale, d)}, {fmt_fixed(float(r['conf_high']) * scale, d)}]"


def _holm_across_outcomes(rel: pd.DataFrame, outcomes: list[str], prefer: tuple[str, ...], metas: dict[str, dict] | None = None) -> dict[str, str]:
    """Holm (1979) step-down adjustment of the headline p-values across outcomes, so a
    ministry reading several outcomes is not misled by one lucky p-value; beside it the
    Romano–Wolf step-down p-value of the Callaway–Sant'Anna simple ATT when the estimate stage
    computed it (``meta["multiple_testing"]``: a joint bootstrap across outcomes, less
    conservative than Holm when outcomes are correlated)."""
    from models.inference.multiple_testing import holm

    rows = {o: _pref_row(rel, o, prefer) for o in outcomes}
    rows = {o: r for o, r in rows.items() if r is not None and isnum(r.get("p_value"))}
    if len(rows) < 2:
        return {}
    keys = sorted(rows)
    adj = holm([float(rows[o]["p_value"]) for o in keys])
    adj = adj[0] if isinstance(adj, tuple) else adj
    def p_text(x: float) -> str:
        f = fmt_p(x)
        return f"p {f}" if f.startswith("<") else f"p = {f}"

    def rw_text(o: str) -> str:
        mt = ((metas or {}).get(f"{o}-cs") or {}).get("multiple_testing") or {}
        if not isnum(mt.get("p_romano_wolf")):
            return ""
        return (f" Romano–Wolf-adjusted ({label('cs', {}, ESTIMATOR_LABELS)} simple ATT, joint bootstrap across the "
                f"{len(mt.get('family') or [])} outcomes, {mt.get('draws')} draws): {p_text(float(mt['p_romano_wolf']))}.")

    return {
        o: (f"Multiple testing: headline {p_text(float(rows[o]['p_value']))} "
            f"({label(rows[o]['estimator'], {}, ESTIMATOR_LABELS)}); Holm-adjusted across the {len(keys)} outcomes: {p_text(float(a))}."
            + rw_text(o))
        for o, a in zip(keys, adj)
    }


def outcome_families(rel: pd.DataFrame, ingest_flow: dict[str, Any], lab_o: dict[str, str], prefer: tuple[str, ...], labels: dict[str, str], metas: dict[str, dict] | None = None,
                     units: dict | None = None, has_deflators: bool = False) -> list[dict[str, Any]]:
    """Per outcome: the estimand in words, notes (TFP production function, zeros), and for
    exports / patents the margin split from whatever was estimated. Units of level effects
    from ``units`` (params) via :func:`pipeline.report.units.unit_label`."""
    from .units import unit_label

    outcomes = sorted(rel["outcome"].dropna().astype(str).unique())
    mt = _holm_across_outcomes(rel, outcomes, prefer, metas)
    out = []
    for o in outcomes:
        notes = []
        if o == "log_tfp":
            d = ((ingest_flow or {}).get("derived") or {}).get("log_tfp") or {}
            el = [x for x in d.get("elasticities") or [] if isinstance(x, dict)]
            if d:
                els = "; ".join(", ".join(f"{k.replace('beta_', 'β_')} = {fmt(v, 3)}" for k, v in sorted(x.items()) if isnum(v)) for x in el[:5])
                notes.append(f"Production function estimated by {str(d.get('method', '?')).upper()} on {str(d.get('output', 'value_added')).replace('_', ' ')}"
                             + (f" ({len(el)} groups)" if len(el) > 1 else "") + (f": {els}." if els else ".")
                             + (f" Definition: {d['formula']}." if d.get("formula") else ""))
            notes.append("TFP is itself an estimate: the estimation error of the production-function elasticities is NOT propagated into the standard error of the "
                         "effect, so the reported intervals for TFP are too narrow (by an unknown amount).")
        if o in ("exports", "patents"):
            notes.append(ZEROS_NOTE)
        margins = []
        if o in EXTENSIVE:
            for x in EXTENSIVE[o]:
                r = _pref_row(rel, x, prefer)
                if r is not None:
                    margins.append({"margin": "Extensive (share with y > 0)", "source": f"{label(x, labels)}, {label(r['estimator'], {}, ESTIMATOR_LABELS)}",
                                    "value": _ci(r, 100.0, 2) + " percentage points"})
                    break
            else:
                margins.append({"margin": "Extensive (share with y > 0)", "source": "", "value": "not estimated"})
            for x in INTENSIVE.get(o, ()):
                r = _pref_row(rel, x, prefer)
                if r is not None:
                    margins.append({"margin": "Intensive (among firms with y > 0)", "source": f"{label(x, labels)}, {label(r['estimator'], {}, ESTIMATOR_LABELS)}",
                                    "value": _ci(r) + " log points"})
                else:
                    margins.append({"margin": "Intensive (among firms with y > 0)", "source": label(x, labels), "value": "not estimated"})
            r = _pref_row(rel, o, prefer)
            if r is not None:
                margins.append({"margin": "Level (zeros included)", "source": f"{label(o, labels)}, {label(r['estimator'], {}, ESTIMATOR_LABELS)}",
                                "value": _ci(r, 1.0, 2) + " " + unit_label(o, "level", units, has_deflators)})
            for e in POISSON:
                part = rel[(rel["outcome"] == o) & (rel["estimator"] == e) & ~rel["suppressed"].astype(bool) & rel["estimate"].notna()]
                pct = part[part["term"] == "pct"]
                if len(pct):
                    margins.append({"margin": "Proportional (Poisson)", "source": label(e, {}, ESTIMATOR_LABELS), "value": _ci(pct.iloc[0], 100.0, 1) + " %"})
                elif e == "etwfe_poisson":
                    s = part[part["aggregation"] == "simple"]
                    if len(s):
                        r = s.iloc[0]
                        margins.append({"margin": "Level (ETWFE Poisson average partial effect), heterogeneous cohort-time effects", "source": f"{label(e, {}, ESTIMATOR_LABELS)} ({r['term']})",
                                        "value": _ci(r, 1.0, 3) + " " + unit_label(o, "level", units, has_deflators)})
        if o in mt:
            notes.append(mt[o])
        out.append({"outcome": lab_o.get(o, o), "key": o, "estimand": ESTIMANDS.get(o, "Change in the outcome on its own scale ({unit}).").format(unit=unit_label(o, "level", units, has_deflators)), "notes": notes, "margins": margins})
    return out


# --------------------------------------------------------------------------- bacon

FORBIDDEN = ("later_vs_earlier", "treated_vs_always")


def bacon(tables: dict[str, dict[str, pd.DataFrame]], aux: dict[str, dict[str, pd.DataFrame]], lab_o: dict[str, str]) -> list[dict[str, Any]]:
    """Per outcome: weight and weighted-average estimate by comparison type (aggregates over
    all 2x2 components, from the unsuppressed components) and the forbidden-comparison share."""
    out = []
    for key in sorted(tables or {}):
        b = (tables[key] or {}).get("bacon")
        if b is None or not len(b) or not {"type", "weight"} <= set(b.columns):
            continue
        o, _, _e = key.partition("-")
        # weights are design quantities (group sizes and treatment-timing variances): from
        # all components, as in the executive summary. Estimates by type come from the
        # *released* components only: a type with a blanked component shows "withheld".
        g = b.groupby("type", sort=True).agg(weight=("weight", "sum"), n=("weight", "size"))
        tot = float(g["weight"].sum())
        relb = (aux.get(key) or {}).get("bacon")
        rows = []
        for t, r in g.iterrows():
            est = ""
            if relb is not None and {"type", "estimate", "weight"} <= set(relb.columns):
                pt = relb[relb["type"].astype(str) == str(t)]
                if pt["estimate"].isna().any() or pt["weight"].isna().any():
                    est = "withheld"
                elif float(pt["weight"].sum()) > 0:
                    est = fmt(float((pt["estimate"] * pt["weight"]).sum() / pt["weight"].sum()), 4)
            rows.append({"type": str(t).replace("_", " "), "n": str(int(r["n"])), "weight": f"{float(r['weight']) / tot:.1%}" if tot else "",
                         "estimate": est, "forbidden": str(t) in FORBIDDEN})
        forb = float(g.loc[[t for t in g.index if str(t) in FORBIDDEN], "weight"].sum()) / tot if tot else 0.0
        sentence = (f"{forb:.1%} of the TWFE weight comes from 'forbidden' comparisons (later-treated firms compared with already-treated firms as controls); "
                    + ("with effects that change over time these comparisons bias TWFE, so prefer the heterogeneity-robust estimators."
                       if forb >= 0.05 else "this is small, so the TWFE estimate is little affected by them (Goodman-Bacon 2021)."))
        out.append({"key": key, "outcome": lab_o.get(o, o), "rows": rows, "forbidden_share": forb, "sentence": sentence,
                    "released": f"tables/{key}-bacon.csv" if key in aux and "bacon" in aux[key] else ""})
    return out


# --------------------------------------------------------------------------- heterogeneity


def heterogeneity(rel: pd.DataFrame, metas: dict[str, dict], lab_o: dict[str, str], alpha: float = 0.05,
                  units: dict | None = None, has_deflators: bool = False) -> list[dict[str, Any]]:
    """Per outcome: subgroup ATTs (Callaway-Sant'Anna) by dimension with the Wald test of
    equality judged at ``alpha`` (``estimate.alpha``), from the *released* rows (suppressed
    subgroups show as withheld)."""
    from .tables import fmt_p

    out = []
    part_all = rel[rel["estimator"] == HETEROGENEITY]
    for o in sorted(part_all["outcome"].dropna().unique()):
        part = part_all[part_all["outcome"] == o]
        meta = metas.get(f"{o}-{HETEROGENEITY}", {})
        dims = []
        for dim in ("size_class", "sector", "region", "cluster_id", "cluster_strength"):
            rows_d = part[part["term"].astype(str).str.startswith(dim + ":")]
            if not len(rows_d):
                continue
            rows, test = [], None
            for _, r in rows_d.iterrows():
                level = str(r["term"]).split(":", 1)[1]
                if level == "equality":
                    test = r
                    continue
                value = "withheld" if pd.isna(r["estimate"]) else f"{fmt(r['estimate'], 4)} [{fmt(r['conf_low'], 4)}, {fmt(r['conf_high'], 4)}]"
                rows.append({"level": level, "value": value, "n": "" if pd.isna(r["n_treated"]) else str(int(r["n_treated"]))})
            sentence = ""
            if test is not None and not pd.isna(test["p_value"]):
                p = float(test["p_value"])
                sentence = (f"Test of equal effects across {dim.replace('_', ' ')} groups: Wald chi2 = {fmt(test['statistic'], 2)}, p = {fmt_p(p)}; "
                            + (f"the effects differ significantly at the {pct_text(alpha)} level." if p < alpha else "no evidence that the effects differ."))
            dims.append({"dimension": dim.replace("_", " "), "rows": rows, "sentence": sentence})
        skipped = meta.get("skipped_subgroups") or {}
        small = [k for k in skipped if ":" in k]  # "<dimension>:<level>" too small; a bare dimension was not split at all
        whole = [f"Not split by {k.replace('_', ' ')}: {skipped[k]}." for k in sorted(skipped) if ":" not in k]
        note = (f"{len(small)} subgroup(s) too small to estimate (fewer than the minimum of member firms)." if small else "")
        from .units import row_unit

        unit = row_unit(o, "cs", None, units, has_deflators)  # subgroup ATTs are Callaway-Sant'Anna simple ATTs
        out.append({"outcome": f"{lab_o.get(o, o)} (ATT in {unit})", "dims": dims, "skipped": " ".join([note] + whole).strip()})
    return out


# --------------------------------------------------------------------------- statements from the run


_REAL = (("real value added", "nominal value added"), ("thousand euro of the base year", "thousand euro at current prices"))


def price_wording(text: str, deflated: bool | None) -> str:
    """``text`` in the price basis of the run: without deflators (``data.deflators`` absent,
    ingest_flow ``deflated: false``) value added is nominal, so "real value added" becomes
    "nominal value added" and "thousand euro of the base year" "thousand euro at current
    prices". ``deflated`` True or unknown (None) leaves the text as it is."""
    if deflated is not False or not isinstance(text, str):
        return text
    for a, b in _REAL:
        text = text.replace(a, b)
    return text


def price_sentence(outcomes: list[str], deflated: bool | None, names: dict[str, str] | None = None, base_year: int | None = None) -> str:
    """One limitation sentence on the price basis of value-added outcomes (none when no
    estimated outcome is deflated in :mod:`pipeline.outcomes`, or the basis is unknown);
    ``base_year``: ``units.price_base_year`` (the year the deflators equal 1), if stated."""
    from ..outcomes import REGISTRY

    hit = [o for o in outcomes if getattr(REGISTRY.get(o), "deflated", False)]
    if deflated is None or not hit:
        return ""
    if deflated:
        return ("Value added is deflated by the sector-year price indices of data.deflators (real values"
                + (f", {int(base_year)} prices)." if base_year is not None else "; the base year is not stated: set units.price_base_year)."))
    return ("Value added is nominal (current prices): no deflators were given (data.deflators), so effects on "
            + ", ".join((names or {}).get(o, o) for o in hit) + " include any price changes. Add data.deflators for real values.")


def unbalanced_drop(meta: dict) -> dict | None:
    """The firms an estimator dropped for not being observed in every year (the balanced
    panel Callaway–Sant'Anna needs by default; ``meta["dropped_units"]``, models.did.att_gt):
    ``{"firms", "members", "members_before", "firms_before"}``; ``{"rows", "members_kept"}``
    when only the dropped rows are known (engine duckdb); None without such a drop."""
    d = ((meta or {}).get("dropped_units") or {}).get("unbalanced_panel") or {}
    if not d.get("units"):
        rows = ((meta or {}).get("dropped") or {}).get("unbalanced_panel")
        # the sufficient-statistics path (engine duckdb) counts the rows only
        return {"rows": int(rows), "members_kept": int(meta.get("n_treated_units") or 0)} if rows else None
    kept_m, kept_f = int(meta.get("n_treated_units") or 0), int(meta.get("n_units") or 0)
    return {"firms": int(d["units"]), "members": int(d.get("treated_units", 0)),
            "members_before": kept_m + int(d.get("treated_units", 0)), "firms_before": kept_f + int(d["units"])}


def reason_text(reason: Any, limit: int = 400) -> str:
    """An error message for the report: its first line, cut only at a sentence end (never
    mid-word) when longer than ``limit`` characters. Identifiers are removed before (by
    :func:`pipeline.disclosure.redact_units` on the whole content)."""
    s = " ".join(str(reason or "").split("\n")[0].split())
    if len(s) <= limit:
        return s
    parts = re.split(r"(?<=[.;])\s+", s)
    out = parts[0]
    for p in parts[1:]:
        if len(out) + 1 + len(p) > limit:
            break
        out += " " + p
    return out  # whole sentences only: the first one even when it alone is longer
