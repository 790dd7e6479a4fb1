"""Stage 4 library: estimates + metadata -> the released report files (as bytes).

:func:`build_report` is a pure function of its inputs: it reads and writes no files (the
stage writes ``ReportOutput.files`` atomically), prints nothing, and gives byte-identical
output for identical inputs (sorted keys, fixed float formats, deterministic PNG and PDF,
no timestamps; a date appears only when ``provenance["date"]`` is given).

Order of work: disclosure checks on every tidy row and auxiliary table first, then every
table, figure, CSV and the HTML/PDF are built from the *released* values only (suppressed
cells blanked), then every text the documents show is rewritten so that no firm or group
id remains (:func:`pipeline.disclosure.redact_units`: id lists become counts), then the
release scan runs over all files (the PDF through its Typst source) for the run's ids
(``ReportInputs.unit_ids``), then the disclosure summary. Statements about the run (nominal
or real value added, estimators that failed under ``on_error: skip`` and why, firms the
Callaway–Sant'Anna balanced panel dropped, the withheld count) come from its own meta.

Files (relative to ``reports/``): ``report.html``, ``report.pdf``, ``estimates.csv``,
``metrics.json``, ``plots/event_study.csv``, ``tables/<outcome>.{tex,md,csv}``,
``tables/groups_summary.csv``, ``tables/<outcome>-<estimator>-<table>.csv`` (balance,
bacon, leave_one_out, honest_did), ``figures/*.png`` + ``figures/*.csv`` (event studies,
forest, love plots, ``leave_one_out-<outcome>``, ``sensitivity-<outcome>-<estimator>``),
``disclosure.json``, ``disclosure.md``, ``provenance.json``.

Rows of the credibility battery (estimator ``checks``) are released in ``estimates.csv`` but
kept out of the headline table, forest plot, metrics and regression tables; the sections on
credibility checks, sensitivity (HonestDiD), outcome families and the Goodman-Bacon
decomposition are built by :mod:`pipeline.report.sections`. When the verdict is ``"block"`` only ``disclosure.json`` and
``disclosure.md`` are returned (they name what failed without revealing it).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.result import TIDY_COLUMNS
from models.truth import true_event_time_att, true_simple_att

from .. import disclosure as sdc
from ..io import dumps_json
from . import figures as figs
from . import headline as hl
from . import sections as secs
from . import units as un
from .inference_checks import inference_rows, inference_summary
from .significance import Significance, report_alpha
from .tables import (
    DEFAULT_LABELS,
    ESTIMATOR_LABELS,
    fmt,
    fmt_fixed,
    fmt_int,
    fmt_p,
    headline_rows,
    isnum,
    label,
    regression_table,
    scale_digits,
    to_csv_bytes,
)

def support_text(meta: dict) -> str:
    """The common-support rule and what it discarded, summed over cohorts (matching meta)."""
    cs = meta.get("common_support") or {}
    if not cs:
        return ""
    rules = sorted({str(v.get("discard", "none")) for v in cs.values() if isinstance(v, dict)})
    dt = sum(int(v.get("discarded_treated", 0) or 0) for v in cs.values() if isinstance(v, dict))
    dc = sum(int(v.get("discarded_control", 0) or 0) for v in cs.values() if isinstance(v, dict))
    rule = ", ".join(rules)
    what = {"none": "no common-support rule (discard: none)", "both": "units outside the overlap of the two groups' score ranges discarded",
            "control": "controls outside the members' score range discarded", "treated": "members outside the controls' score range discarded"}
    return (f"Common support: {'; '.join(what.get(r, r) for r in rules) or rule}; discarded {dt} member and {dc} control "
            f"cohort-firm rows over {len(cs)} cohort(s).")


def tie_text(meta: dict) -> str:
    """One line of the tie report (models.matching.ties) for a matching result."""
    t = meta.get("ties") or {}
    if not t:
        return ""
    rule = t.get("ties", "")
    txt = (f"Ties (matching.ties: {rule}): {int(t.get('treated_with_tied_controls', 0))} matched member(s) had several "
           f"equally near controls")
    if rule == "all":
        return txt + "; all of them were used with the weight split, so the estimate does not depend on firm numbering."
    return txt + ("; the first in firm-id order was taken, so renumbering firms could change the estimate."
                  if t.get("relabel_can_change") else "; no tie or visiting-order choice depended on firm numbering.")


def tie_warning(meta: dict) -> str:
    t = meta.get("ties") or {}
    if t.get("ties") == "first" and t.get("relabel_can_change"):
        return (f"matching with ties: first broke ties among equally near controls (or between members visited in a "
                f"firm-id-dependent order) for {int(t.get('treated_with_tied_controls', 0))} member(s); the matched set, "
                "and so this estimate, could change if the firms were numbered differently. Set estimate.matching.ties: all.")
    return ""


AUX_RELEASED = ("balance", "overlap", "bacon", "leave_one_out", "honest_did")  # auxiliary tables released as CSV (vcov etc. are not)
SHARE_OUTCOMES = ("export_status", "patent_status")  # 0/1 outcomes: effects in percentage points
PREFERRED = ("cs", "imputation", "sunab", "did2s", "lpdid", "event_study", "twfe", "matching", "weighting", "etwfe_poisson", "ppml")
# what the dashed line of an event-study figure is (models.truth)
TRUTH_CAPTION = ("dashed line: the true ATT(e) of the simulation over the estimand's own population - the members of the cohorts "
                 "estimated at each event time, weighted by cohort size as the heterogeneity-robust estimators weight them - so a gap "
                 "between a point and the line is that estimator's error (parallel-trends violation or noise), not a difference in who is averaged")
BLANK_ON_SUPPRESS = ("estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high", "n_treated")


@dataclass
class ReportInputs:
    """Everything the report needs; see the module docstring of the stage for the sources.

    ``contributors``: output of :func:`pipeline.disclosure.cell_contributions` on the processed
    panel (per cell x contributor the distinct-firm count and magnitude), or None (then only
    the tidy rows' ``n_treated`` counts are checked)."""

    estimates: pd.DataFrame
    metas: dict[str, dict[str, Any]] = field(default_factory=dict)
    tables: dict[str, dict[str, pd.DataFrame]] = field(default_factory=dict)
    ingest_flow: dict[str, Any] = field(default_factory=dict)
    groups_flow: dict[str, Any] = field(default_factory=dict)
    groups_summary: pd.DataFrame | None = None
    truth: pd.DataFrame | None = None
    params: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)
    contributors: pd.DataFrame | None = None
    skipped: list[dict[str, Any]] = field(default_factory=list)  # runs skipped under estimate.on_error: skip
    cluster_map: pd.DataFrame | None = None  # data/processed/cluster_map.parquet (models.cluster_map)
    scoreboard: pd.DataFrame | None = None  # data/processed/scoreboard.parquet (models.monitoring)
    # every firm (and enterprise-group) id of the processed panel: the report text never
    # shows one (pipeline.disclosure.redact_units) and the release scan fails on any
    unit_ids: set[str] | None = None
    # (table, meta) of models.value_for_money (data/estimates/_value_for_money.*), with data.costs
    value_for_money: tuple | None = None


@dataclass
class ReportOutput:
    files: dict[str, bytes]
    blocked: list[dict[str, Any]]
    verdict: str  # "pass" | "block"
    summary: dict[str, Any] = field(default_factory=dict)


# --------------------------------------------------------------------------- helpers


def _sort_tidy(df: pd.DataFrame) -> pd.DataFrame:
    order = {a: i for i, a in enumerate(("simple", "static", "matched", "dynamic", "group", "calendar", "gt"))}
    d = df.copy()
    d["_agg"] = d["aggregation"].map(lambda a: order.get(a, 99) if isinstance(a, str) else 99)
    d = d.sort_values(["outcome", "estimator", "_agg", "term", "cohort", "event_time", "time"], na_position="first", kind="mergesort")
    return d.drop(columns="_agg").reset_index(drop=True)


def _normalise_estimates(est: pd.DataFrame) -> pd.DataFrame:
    d = est.copy()
    for c in TIDY_COLUMNS:
        if c not in d.columns:
            d[c] = pd.NA
    d = d[TIDY_COLUMNS]
    for c in ("outcome", "estimator", "aggregation", "term"):
        d[c] = d[c].astype("string")
    for c in ("event_time", "cohort", "time", "n_obs", "n_treated"):
        d[c] = pd.to_numeric(d[c], errors="coerce").astype("Int64")
    for c in ("estimate", "std_error", "statistic", "p_value", "conf_low", "conf_high"):
        d[c] = pd.to_numeric(d[c], errors="coerce").astype("float64")
    return _sort_tidy(d)


def _truth_by_event_time(truth: pd.DataFrame | None, profile: sdc.Profile, metas: dict[str, dict] | None = None) -> dict[str, pd.DataFrame]:
    """Per outcome: the true ATT(e) over the estimand's population (:func:`models.truth.true_event_time_att`:
    members of the cohorts the heterogeneity-robust estimator estimated, weighted by its cohort
    sizes - CS meta ``cohort_sizes`` when given); an event time whose cohorts together hold
    fewer firms than the threshold is dropped."""
    if truth is None or len(truth) == 0:
        return {}
    out = {}
    for o in sorted(truth["outcome"].dropna().astype(str).unique()):
        d = true_event_time_att(truth, _cohort_sizes(metas, o)).get(o)
        if d is None:
            continue
        if profile.active and profile.min_units:
            d = d[d["n_firms"] >= profile.min_units]
        out[o] = d[["event_time", "att", "n_firms"]].reset_index(drop=True)
    return out


def _cohort_sizes(metas: dict[str, dict] | None, outcome: str) -> dict | None:
    """Cohort sizes the estimator used (the first robust estimator of ``outcome`` that reports them)."""
    for e in PREFERRED:
        cs = ((metas or {}).get(f"{outcome}-{e}") or {}).get("cohort_sizes")
        if cs:
            return cs
    return None


def _true_overall(truth: pd.DataFrame | None, metas: dict[str, dict] | None, outcome: str, profile: sdc.Profile) -> float | None:
    """The true overall ATT (CS ``simple`` aggregation of the true cells, :func:`models.truth.true_simple_att`),
    or None when the truth is missing or its event times were all withheld."""
    if truth is None or len(truth) == 0:
        return None
    return true_simple_att(truth, _cohort_sizes(metas, outcome), outcome)


def _units_params(params: dict | None, ingest_flow: dict | None = None) -> tuple[dict, bool]:
    """(``units`` section of the run's params, whether value added was deflated): the ingest
    flow's ``deflated`` (the deflators were usable) when known, else ``data.deflators`` is set."""
    p = params or {}
    deflated = (ingest_flow or {}).get("deflated")
    return (p.get("units") or {}), bool((p.get("data") or {}).get("deflators")) if deflated is None else bool(deflated)


def _base(estimator: Any, metas: dict, outcome: Any) -> str:
    """The registry key behind ``estimator`` (a named variant's ``base_estimator``)."""
    m = (metas or {}).get(f"{outcome}-{estimator}") or {}
    return str(m.get("base_estimator") or estimator)


def _row_unit(r: Any, metas: dict, units: dict, has_deflators: bool) -> str:
    """Unit label of a tidy row (pipeline.report.units.row_unit)."""
    return un.row_unit(str(r["outcome"]), _base(r["estimator"], metas, r["outcome"]), r["term"], units, has_deflators)


def _regtab_scales(effects: pd.DataFrame, heads: pd.DataFrame, metas: dict, outcome: str, units: dict, has_deflators: bool) -> dict[str, dict]:
    """Per estimator of ``outcome``: the unit of its headline term and the decimals of its
    scale (level: from the outcome's level-scale rows only; pipeline.report.units.digits_for)."""
    part = effects[effects["outcome"] == outcome]
    lev = part[np.array([un.effect_scale(outcome, _base(e, metas, outcome), t) == "level" for e, t in zip(part["estimator"], part["term"])], dtype=bool)] if len(part) else part
    level_digits = scale_digits(lev["estimate"].tolist() + lev["std_error"].tolist())
    unit_of, digits_of = {}, {}
    h = heads[heads["outcome"] == outcome]
    # an estimator without a headline row (event study: dynamic rows only) by its first row
    rows = pd.concat([h, part[~part["estimator"].isin(h["estimator"])].drop_duplicates("estimator")])
    for _, r in rows.iterrows():
        e = str(r["estimator"])
        unit_of[e] = _row_unit(r, metas, units, has_deflators)
        digits_of[e] = un.digits_for(un.effect_scale(outcome, _base(e, metas, outcome), r["term"]), level_digits)
    return {"units": unit_of, "digits_of": digits_of}


def _forest_parts(heads: pd.DataFrame, metas: dict, units: dict, has_deflators: bool, labels: dict, sig: Significance):
    """``[(scale, (rows, x labels per outcome, caption))]`` for the forest figures: ``level``
    (each outcome's own unit) and ``proportional`` (percent: ``exp(b) - 1`` terms x 100, log
    points as 100 (e^b - 1), interval ends likewise - the transformation is monotone)."""
    if heads.empty:
        return []
    from .tables import label as _label

    scales = np.array([un.effect_scale(str(r["outcome"]), _base(r["estimator"], metas, r["outcome"]), r["term"]) for _, r in heads.iterrows()], dtype=object)
    out = []
    lev = heads[scales == "level"]
    if len(lev):
        xl = {str(o): un.axis_label(_label(str(o), labels), _row_unit(lev[lev["outcome"] == o].iloc[0], metas, units, has_deflators)) + f", {sig.ci} interval"
              for o in lev["outcome"].astype(str).unique()}
        out.append(("level", (lev.reset_index(drop=True), xl,
                              f"Headline average effect on members (ATT) by estimator with {sig.interval}s, level effects in each outcome's own unit (axis).")))
    prop = heads[scales == "proportional"].copy()
    if len(prop):
        for c in ("estimate", "conf_low", "conf_high"):
            prop[c] = [un.percent(v, _base(e, metas, o), t) for v, e, o, t in zip(prop[c], prop["estimator"], prop["outcome"], prop["term"])]
        xl = {str(o): un.axis_label(_label(str(o), labels), un.PERCENT) + f", {sig.ci} interval" for o in prop["outcome"].astype(str).unique()}
        out.append(("proportional", (prop.reset_index(drop=True), xl,
                                     f"Proportional effects in percent by estimator with {sig.interval}s: Poisson (PPML, ETWFE Poisson) "
                                     "exp(b) − 1 and effects on log outcomes as 100 (e^b − 1); drawn apart from the level effects, whose units differ.")))
    return out


def _flow_rows(name: str, flow: Any, profile: sdc.Profile) -> list[dict[str, str]]:
    """Flatten a flow dict ({rows_in, rows_kept, excluded: {reason: n}} possibly nested)."""
    rows: list[dict[str, str]] = []
    if not isinstance(flow, dict):
        return rows

    def cnt(n: Any) -> str:
        if sdc.small_count(n, profile):
            return f"< {profile.min_units}"
        return fmt_int(n) if isnum(n) else str(n)

    if "rows_in" in flow or "rows_kept" in flow or "excluded" in flow:
        if "rows_in" in flow:
            rows.append({"stage": name, "item": "rows in", "count": cnt(flow["rows_in"]), "kind": "in"})
        zero = []
        for reason, n in sorted((flow.get("excluded") or {}).items()):
            if isnum(n) and float(n) == 0:
                zero.append(str(reason).replace("_", " "))
                continue
            rows.append({"stage": name, "item": f"excluded: {str(reason).replace('_', ' ')}", "count": cnt(n), "kind": "excluded"})
        if "rows_kept" in flow:
            rows.append({"stage": name, "item": "rows kept", "count": cnt(flow["rows_kept"]), "kind": "kept"})
        if zero:
            rows.append({"stage": name, "item": "checked, no rows excluded: " + ", ".join(zero), "count": "0", "kind": "zero"})
        for k, v in sorted(flow.items()):
            if k in ("rows_in", "rows_kept", "excluded"):
                continue
            if isinstance(v, dict):
                rows += _flow_rows(f"{name} / {str(k).replace('_', ' ')}", v, profile)
            elif isnum(v) and not isinstance(v, bool):
                rows.append({"stage": name, "item": str(k).replace("_", " "), "count": cnt(v), "kind": "info"})
        return rows
    for k, v in sorted(flow.items()):
        if isinstance(v, dict):
            rows += _flow_rows(f"{name}: {k}" if name else str(k), v, profile)
        elif isnum(v) and not isinstance(v, bool):
            rows.append({"stage": name, "item": str(k).replace("_", " "), "count": cnt(v), "kind": "info"})
    return rows


def _withheld_by_reason(withheld: list[dict[str, Any]]) -> list[dict[str, str]]:
    """Counts of withheld items by (what, rule) for the report's summary table."""
    counts: dict[tuple[str, str], int] = {}
    for w in withheld:
        what = w["kind"]
        if w["kind"] == "estimate" and w["where"].get("estimator"):
            what = f"estimates ({w['where']['estimator']})"
        elif w["kind"] in ("table", "column") and w["where"].get("table"):
            what = f"table {w['where']['table']}"
        for r in w["reasons"]:
            rule = r
            counts[(what, rule)] = counts.get((what, rule), 0) + 1
    return [{"what": k[0], "rule": k[1], "n": str(v)} for k, v in sorted(counts.items())]


def _pct_from_log(b: float) -> str:
    return f"{(math.exp(b) - 1) * 100:+.1f}%"


def _pretrend_verdict(p: float, alpha: float = 0.05) -> str:
    """Judged at ``alpha`` (``estimate.alpha``): weak evidence between alpha and 2 alpha
    (the rule of :func:`pipeline.report.headline.pretrend_light`)."""
    light = hl.pretrend_light(p, alpha)
    if light == "green":
        return f"no evidence of pre-trends (p = {fmt_p(p)})"
    if light == "amber":
        return f"weak evidence of pre-trends (p = {fmt_p(p)}); interpret with care"
    return f"evidence of differential pre-trends (p = {fmt_p(p)}): the parallel-trends assumption is doubtful"


METHODS = [
    {
        "key": "twfe",
        "title": "Two-way fixed effects (TWFE)",
        "html": "Y<sub>it</sub> = α<sub>i</sub> + λ<sub>t</sub> + β D<sub>it</sub> + ε<sub>it</sub>",
        "typst": "$Y_(i t) = alpha_i + lambda_t + beta D_(i t) + epsilon_(i t)$",
        "text": "β is the ATT only if effects are homogeneous across cohorts and time; with staggered adoption and heterogeneous effects it is a weighted average that can carry negative weights (Goodman-Bacon 2021; de Chaisemartin & D'Haultfœuille 2020).",
        "ref": "Wooldridge (2010), Econometric Analysis of Cross Section and Panel Data, ch. 10.",
    },
    {
        "key": "event_study",
        "title": "Event study (dynamic TWFE)",
        "html": "Y<sub>it</sub> = α<sub>i</sub> + λ<sub>t</sub> + Σ<sub>k≠−1</sub> β<sub>k</sub> 1[t − G<sub>i</sub> = k] + ε<sub>it</sub>",
        "typst": "$Y_(i t) = alpha_i + lambda_t + sum_(k != -1) beta_k bb(1)[t - G_i = k] + epsilon_(i t)$",
        "text": "Leads (k < 0) test for pre-trends: a joint Wald test that all β_k, k < −1, are zero. Under heterogeneous effects the β_k can be contaminated by other periods' effects (Sun & Abraham 2021).",
        "ref": "Freyaldenhoven, Hansen, Pérez & Shapiro (2021), Visualization, identification and estimation in the linear panel event-study design.",
    },
    {
        "key": "cs",
        "title": "Callaway–Sant'Anna group-time ATT",
        "html": "ATT(g,t) = E[Y<sub>t</sub> − Y<sub>g−1</sub> | G = g] − E[Y<sub>t</sub> − Y<sub>g−1</sub> | C], aggregated as θ = Σ<sub>g,t</sub> w(g,t) ATT(g,t)",
        "typst": "$\"ATT\"(g,t) = E[Y_t - Y_(g-1) | G = g] - E[Y_t - Y_(g-1) | C]$, aggregated as $theta = sum_(g,t) w(g,t) \"ATT\"(g,t)$",
        "text": "Each cohort g is compared with never-treated (or not-yet-treated) firms C; doubly robust with covariates. Aggregations: simple, dynamic (by event time), group, calendar. Inference from influence functions.",
        "ref": "Callaway & Sant'Anna (2021), Journal of Econometrics 225(2); Sant'Anna & Zhao (2020).",
    },
    {
        "key": "sunab",
        "title": "Sun–Abraham interaction-weighted estimator",
        "html": "Y<sub>it</sub> = α<sub>i</sub> + λ<sub>t</sub> + Σ<sub>g</sub> Σ<sub>k≠−1</sub> δ<sub>g,k</sub> 1[G<sub>i</sub> = g] 1[t − g = k] + ε<sub>it</sub>; β<sub>k</sub> = Σ<sub>g</sub> Pr(G = g | k) δ<sub>g,k</sub>",
        "typst": "$Y_(i t) = alpha_i + lambda_t + sum_g sum_(k != -1) delta_(g,k) bb(1)[G_i = g] bb(1)[t - g = k] + epsilon_(i t)$, $beta_k = sum_g Pr(G = g | k) delta_(g,k)$",
        "text": "Cohort-specific event-time effects, averaged with cohort shares; free of the contamination of dynamic TWFE.",
        "ref": "Sun & Abraham (2021), Journal of Econometrics 225(2).",
    },
    {
        "key": "imputation",
        "title": "Imputation estimator (Borusyak–Jaravel–Spiess)",
        "html": "Fit Y<sub>it</sub> = α<sub>i</sub> + λ<sub>t</sub> + ε<sub>it</sub> on untreated observations; τ̂<sub>it</sub> = Y<sub>it</sub> − α̂<sub>i</sub> − λ̂<sub>t</sub> for treated ones; ATT = mean of τ̂<sub>it</sub>",
        "typst": "$hat(tau)_(i t) = Y_(i t) - hat(alpha)_i - hat(lambda)_t$ for treated observations, with $alpha, lambda$ fitted on untreated observations; ATT $= overline(hat(tau))$",
        "text": "Efficient under homoskedastic errors and parallel trends; two-stage DiD (Gardner 2022) gives the same point estimates.",
        "ref": "Borusyak, Jaravel & Spiess (2024), Review of Economic Studies 91(6); Gardner (2022).",
    },
    {
        "key": "lpdid",
        "title": "Local-projections DiD (Dube–Girardi–Jordà–Taylor)",
        "html": "Y<sub>i,t+h</sub> − Y<sub>i,t−1</sub> = β<sub>h</sub> ΔD<sub>it</sub> + δ<sup>h</sup><sub>t</sub> + e<sub>it</sub>, one regression per horizon h, on firms that join in t and clean controls not yet treated by t + h",
        "typst": "$Y_(i,t+h) - Y_(i,t-1) = beta_h Delta D_(i t) + delta^h_t + e_(i t)$, one regression per horizon $h$, on firms joining in $t$ and clean controls not yet treated by $t + h$",
        "text": "For each number of years h after joining, it compares how much the outcome of firms that have just joined changed since the year before joining with the change over the same years among firms that had not joined by then; already-joined firms are never used as comparisons. Horizons before joining (h ≤ −2) are placebo checks.",
        "ref": "Dube, Girardi, Jordà & Taylor (2023), A Local Projections Approach to Difference-in-Differences Event Studies, NBER WP 31184.",
    },
    {
        "key": "sdid",
        "title": "Synthetic difference-in-differences (Arkhangelsky–Athey–Hirshberg–Imbens–Wager)",
        "html": "τ̂ = (Ȳ<sub>tr,post</sub> − Σ<sub>t</sub> λ<sub>t</sub> Ȳ<sub>tr,t</sub>) − (Σ<sub>j</sub> ω<sub>j</sub> Ȳ<sub>j,post</sub> − Σ<sub>j,t</sub> ω<sub>j</sub> λ<sub>t</sub> Y<sub>jt</sub>), unit weights ω and pre-period weights λ fitted on the pre-periods, per cohort, on regional (or other aggregate) means",
        "typst": "$hat(tau) = (overline(Y)_(\"tr,post\") - sum_t lambda_t overline(Y)_(\"tr\",t)) - (sum_j omega_j overline(Y)_(j,\"post\") - sum_(j,t) omega_j lambda_t Y_(j t))$, unit weights $omega$ and pre-period weights $lambda$ fitted on the pre-periods, per cohort, on regional (or other aggregate) means",
        "text": "For a few treated regions (or initiatives), it builds a comparison from the untreated regions weighted so that, before the programme, their average outcome moved in parallel with the treated regions', and weights the pre-programme years that best resemble the later ones; the effect is the difference in differences between these weighted averages. Cohorts joining in different years are estimated separately and averaged by their treated region-years; standard errors come (by default) from placebo re-assignments of the programme to untreated regions.",
        "ref": "Arkhangelsky, Athey, Hirshberg, Imbens & Wager (2021), Synthetic Difference-in-Differences, American Economic Review 111(12); R synthdid.",
    },
    {
        "key": "ddd",
        "title": "Triple differences (Ortiz-Villavicencio–Sant'Anna)",
        "html": "ATT(g,t) = DiD<sub>4v3</sub> + DiD<sub>4v2</sub> − DiD<sub>4v1</sub>: doubly robust 2×2 DiDs of eligible members of cohort g (4) against the cohort's ineligible firms (3), eligible never-members (2) and ineligible never-members (1)",
        "typst": "$\"ATT\"(g,t) = \"DiD\"_(4 \"v\" 3) + \"DiD\"_(4 \"v\" 2) - \"DiD\"_(4 \"v\" 1)$: doubly robust 2×2 DiDs of eligible members of cohort g against the cohort's ineligible firms, eligible never-members and ineligible never-members",
        "text": "For a call that targets an eligible group (for example one sector), it compares how the outcome of eligible member firms changed with the change among ineligible firms joining in the same year and among eligible and ineligible firms that never joined; shocks common to a joining cohort, or to the eligible sector, cancel out, so it needs only that the gap between eligible and ineligible firms would have evolved alike with and without the programme.",
        "ref": "Ortiz-Villavicencio & Sant'Anna (2025), Better Understanding Triple Differences Estimators, arXiv:2505.09942; moderndid / R triplediff.",
    },
    {
        "key": "bacon",
        "title": "Goodman-Bacon decomposition",
        "html": "β̂<sup>TWFE</sup> = Σ<sub>k</sub> s<sub>k</sub> β̂<sub>k</sub><sup>2×2</sup>, Σ s<sub>k</sub> = 1",
        "typst": "$hat(beta)^\"TWFE\" = sum_k s_k hat(beta)_k^(2 times 2)$, $sum_k s_k = 1$",
        "text": "The TWFE estimate as a weighted average of all 2×2 DiD comparisons; weight on 'later vs earlier treated' comparisons signals bias under dynamic effects.",
        "ref": "Goodman-Bacon (2021), Journal of Econometrics 225(2).",
    },
    {
        "key": "matching",
        "title": "Matching and weighting",
        "html": "ATT = (1/N<sub>1</sub>) Σ<sub>i: D=1</sub> [ Y<sub>i</sub> − Σ<sub>j: D=0</sub> w<sub>ij</sub> Y<sub>j</sub> ], weights from nearest-neighbour matching on the propensity score e(X) = Pr(D = 1 | X), exact matching, or entropy balancing",
        "typst": "$\"ATT\" = 1/N_1 sum_(i: D = 1) [Y_i - sum_(j: D = 0) w_(i j) Y_j]$ with $e(X) = Pr(D = 1 | X)$",
        "text": "Balance is judged by standardised mean differences (|SMD| < 0.1). Combined with differencing (level and change since the base year) it relaxes parallel trends to conditional parallel trends.",
        "ref": "Ho, Imai, King & Stuart (2007/2011), MatchIt; Hainmueller (2012), Political Analysis 20(1); Heckman, Ichimura & Todd (1997).",
    },
    {
        "key": "ppml",
        "title": "Poisson pseudo-maximum likelihood (counts)",
        "html": "E[Y<sub>it</sub> | ·] = exp(α<sub>i</sub> + λ<sub>t</sub> + β D<sub>it</sub>), effect in percent: 100 (e<sup>β</sup> − 1)",
        "typst": "$E[Y_(i t) | dot] = exp(alpha_i + lambda_t + beta D_(i t))$, effect in percent $100 (e^beta - 1)$",
        "text": "Consistent for counts and zero-heavy magnitudes (patents, exports) without log-transforming zeros; Wooldridge's extended TWFE Poisson allows heterogeneous cohort-time effects.",
        "ref": "Santos Silva & Tenreyro (2006), REStat 88(4); Wooldridge (2023), Econometrics Journal 26(3).",
    },
]


def _fixed_effects_text(metas: dict[str, dict], labels: dict[str, str]) -> str:
    """One sentence naming the fixed effects the regression estimators absorbed
    (``meta["fixed_effects"]``, written by models/ when estimate.fixed_effects adds any)."""
    used: dict[tuple[str, ...], list[str]] = {}
    lp = False
    for stem, m in metas.items():
        fe = m.get("fixed_effects")
        if fe:
            key = str(m.get("estimator") or stem.partition("-")[2])  # stems are <outcome>-<estimator>
            lp = lp or key == "lpdid" or m.get("base_estimator") == "lpdid"
            name = label(key, labels, ESTIMATOR_LABELS)
            used.setdefault(tuple(str(x) for x in fe), [])
            if name not in used[tuple(str(x) for x in fe)]:
                used[tuple(str(x) for x in fe)].append(name)
    if not used:
        return "Fixed effects: the regression estimators absorb firm and year effects (α_i, λ_t) only."
    parts = []
    for fe, names in sorted(used.items()):
        shown = ", ".join(x.replace("^", " × ") for x in fe)
        parts.append(f"{shown} ({', '.join(sorted(names))})")
    return ("Fixed effects: " + "; ".join(parts) + ". An interaction such as sector × year is one effect per sector and "
            "year, so members are compared with non-members of the same sector in the same year"
            + ("; the local-projections estimator differences out the firm effect instead of estimating it." if lp else "."))


# --------------------------------------------------------------------------- main


def build_report(inputs: ReportInputs, options: dict[str, Any], seed: int) -> ReportOutput:
    """Build every released report file from ``inputs`` (see module docstring)."""
    options = dict(options or {})
    labels = {str(k): str(v) for k, v in (options.get("labels") or {}).items()}
    formats = list(options.get("formats") or ["html"])
    title = str(options.get("title") or "Cluster programme impact evaluation")
    profile = sdc.resolve_profile(options.get("disclosure", "strict"))
    # one significance level for every label, star and verdict: the one the estimates used
    sig = Significance(report_alpha(inputs.metas or {}, inputs.params))

    est = _normalise_estimates(inputs.estimates if inputs.estimates is not None else pd.DataFrame(columns=TIDY_COLUMNS))
    metas = {str(k): dict(v or {}) for k, v in sorted((inputs.metas or {}).items())}
    deflated = (inputs.ingest_flow or {}).get("deflated")  # None: not known (no ingest flow)
    for k, v in DEFAULT_LABELS.items():  # figure and table titles in the run's price basis
        if k not in labels and secs.price_wording(v, deflated) != v:
            labels[k] = secs.price_wording(v, deflated)
    for m in metas.values():  # a named variant (estimate.variants) reads "<base label> (<name>)"
        key, base = m.get("estimator"), m.get("base_estimator")
        if base and key and str(key) not in labels:
            labels[str(key)] = f"{ESTIMATOR_LABELS.get(str(base), str(base))} ({key})"

    # ---- disclosure: estimates
    flags, findings = sdc.check_estimates(est, metas, inputs.contributors, profile)
    rel = est.copy()
    rel["suppressed"] = flags["suppressed"].to_numpy()
    rel["disclosure_note"] = flags["reasons"].to_numpy()
    for c in BLANK_ON_SUPPRESS:
        if c == "n_treated":
            rel.loc[rel["suppressed"], c] = pd.NA
        else:
            rel.loc[rel["suppressed"], c] = np.nan

    files: dict[str, bytes] = {}
    figures: list[dict[str, Any]] = []

    unit_ids = _unit_ids(inputs)

    def disclosure_files(summary: sdc.DisclosureSummary) -> tuple[dict[str, Any], dict[str, bytes]]:
        """disclosure.json/.md, their items (table rows, labels) rewritten to counts like
        every other released text (pipeline.disclosure.redact_units)."""
        sd = sdc.redact_tree(summary.to_dict(), unit_ids)
        return sd, {"disclosure.json": dumps_json(sd).encode(), "disclosure.md": sdc.redact_units(summary.to_markdown(), unit_ids).encode()}

    def blocked_output(summary: sdc.DisclosureSummary) -> ReportOutput:
        sd, disc = disclosure_files(summary)
        return ReportOutput(files=disc, blocked=sd["withheld"] + sd["release_scan"], verdict="block", summary=sd)

    # ---- auxiliary tables
    aux: dict[str, dict[str, pd.DataFrame]] = {}
    for key in sorted(inputs.tables or {}):
        for name in sorted(inputs.tables[key] or {}):
            if name not in AUX_RELEASED:
                continue
            df = inputs.tables[key][name]
            if df is None or len(df) == 0:
                continue
            n_tr = (metas.get(key) or {}).get("n_treated_units") if name in ("balance", "honest_did") else None
            if name == "honest_did":
                o_, _, e_ = key.partition("-")
                dyn = rel[(rel["outcome"] == o_) & (rel["estimator"] == e_) & (rel["aggregation"] == "dynamic")]
                if bool(dyn["suppressed"].astype(bool).any()):
                    continue  # derived from withheld coefficients: not released (finding in sections.sensitivity)
            safe, f2 = sdc.check_table(f"{key}-{name}", df.reset_index(drop=True), profile, n_units=n_tr)
            findings += f2
            aux.setdefault(key, {})[name] = safe
            files[f"tables/{key}-{name}.csv"] = to_csv_bytes(safe)

    gsum = None
    if inputs.groups_summary is not None and len(inputs.groups_summary):
        gsum, f3 = sdc.check_table("groups_summary", inputs.groups_summary.reset_index(drop=True), profile,
                                   row_counts=("n_firms",), cell_counts=("n_members",))
        findings += f3
        files["tables/groups_summary.csv"] = to_csv_bytes(gsum)

    # ---- cluster context: map + monitoring scoreboard (pipeline.report.cluster_context)
    from . import cluster_context as ccx

    ctx = ccx.build(inputs.cluster_map, inputs.scoreboard, inputs.params or {}, inputs.groups_flow or {}, profile)
    findings += ctx["findings"]
    files.update(ctx["files"])
    figures += ctx["figures"]

    # ---- value for money (pipeline.report.value_for_money): tables/value_for_money.csv
    from . import value_for_money as vfm_sec

    _u, _hd = _units_params(inputs.params, inputs.ingest_flow)
    vfm = vfm_sec.build(inputs.value_for_money, inputs.params or {}, profile,
                        un.money_label("value_added", _u, True, _hd) or "(units of the data)")
    findings += vfm["findings"]
    files.update(vfm["files"])

    truth_et = _truth_by_event_time(inputs.truth, profile, metas)
    units_p, has_defl = _units_params(inputs.params, inputs.ingest_flow)
    early = sdc.DisclosureSummary(profile, findings, [], len(est))
    if early.verdict == "block":  # on_fail: block and something failed: nothing else is built
        return blocked_output(early)

    # ---- estimates.csv, metrics.json
    files["estimates.csv"] = to_csv_bytes(rel)
    # rows of the credibility battery are checks, not effect estimates: they are released in
    # estimates.csv and shown in their own section, never in the headline table/forest plot
    effects = rel[~rel["estimator"].isin(secs.NOT_EFFECTS)].reset_index(drop=True)
    heads = headline_rows(effects)
    metrics: dict[str, dict[str, Any]] = {}
    for _, r in heads.iterrows():
        meta = metas.get(f"{r['outcome']}-{r['estimator']}", {})
        sup = bool(r["suppressed"])
        metrics.setdefault(str(r["outcome"]), {})[str(r["estimator"])] = {
            "att": None if sup or not isnum(r["estimate"]) else float(r["estimate"]),
            "se": None if sup or not isnum(r["std_error"]) else float(r["std_error"]),
            "n_obs": int(meta["n_obs"]) if isnum(meta.get("n_obs")) else (int(r["n_obs"]) if isnum(r["n_obs"]) else None),
            "n_treated": None if sup else (int(meta["n_treated_units"]) if isnum(meta.get("n_treated_units")) else (int(r["n_treated"]) if isnum(r["n_treated"]) else None)),
        }
    files["metrics.json"] = dumps_json(metrics).encode()

    # ---- event-study long CSV and figures
    outcomes = sorted(rel["outcome"].dropna().astype(str).unique())
    es_frames = []
    for o in outcomes:
        eo = effects[(effects["outcome"] == o) & (effects["aggregation"] == "dynamic")]
        # one scale per figure (pipeline.report.units): the estimator terms on the outcome's own
        # scale; Poisson exp(b) - 1 terms only when no level estimator has dynamic rows (then
        # without the truth line, which is on the level scale)
        es_scale = np.array([un.estimator_scale(_base(e, metas, o), t) for e, t in zip(eo["estimator"], eo["term"])], dtype=object)
        level = bool((es_scale == "level").any())
        eo = eo[es_scale == ("level" if level else "proportion")]
        if eo.empty:
            continue
        unit = _row_unit(eo.iloc[0], metas, units_p, has_defl)
        res = figs.event_study_figure(eo, truth_et.get(o) if level else None, o, labels, ylabel=un.axis_label(label(o, labels), unit))
        if res is None:
            continue
        png, data = res
        files[f"figures/event_study-{o}.png"] = png
        files[f"figures/event_study-{o}.csv"] = to_csv_bytes(data)
        figures.append({"kind": "event_study", "outcome": o, "file": f"figures/event_study-{o}.png", "png": png,
                        "caption": f"Event study: effect of joining a cluster on {label(o, labels)}, in {unit}, by years since joining, {sig.interval}s"
                        + (f"; {TRUTH_CAPTION}" if o in truth_et else "") + "."})
        es_frames.append(data)
    if es_frames:
        es = pd.concat(es_frames, ignore_index=True)
        plot = es[["outcome", "estimator", "event_time", "estimate", "conf_low", "conf_high", "truth"]]
        files["plots/event_study.csv"] = to_csv_bytes(plot)
    else:
        files["plots/event_study.csv"] = to_csv_bytes(pd.DataFrame(columns=["outcome", "estimator", "event_time", "estimate", "conf_low", "conf_high", "truth"]))
    # one forest figure per scale: level effects in each outcome's unit, proportional ones
    # (Poisson, log outcomes) in percent, 100 (e^b - 1) for log points; never on one axis
    for scale_name, part in _forest_parts(heads, metas, units_p, has_defl, labels, sig):
        rows, xlabels, caption = part
        forest = figs.forest_figure(rows, labels, sig.ci, xlabels=xlabels)
        if forest is None:
            continue
        fname = f"figures/forest-{scale_name}.png"
        files[fname], data = forest
        files[fname.replace(".png", ".csv")] = to_csv_bytes(data)
        figures.append({"kind": "forest", "scale": scale_name, "file": fname, "png": files[fname], "caption": caption})
    for key in sorted(aux):
        if "balance" in aux[key]:
            o, _, e = key.partition("-")
            res = figs.love_figure(aux[key]["balance"], f"Covariate balance: {label(o, labels)}, {label(e, labels, ESTIMATOR_LABELS)}", labels)
            if res is not None:
                files[f"figures/love-{key}.png"], data = res
                files[f"figures/love-{key}.csv"] = to_csv_bytes(data)
                figures.append({"kind": "love", "key": key, "file": f"figures/love-{key}.png", "png": files[f"figures/love-{key}.png"],
                                "caption": f"Love plot: absolute standardised mean differences of covariates, {label(o, labels)} / {label(e, labels, ESTIMATOR_LABELS)}."})
        if "overlap" in aux[key]:
            o, _, e = key.partition("-")
            res = figs.overlap_figure(aux[key]["overlap"], f"Overlap: {label(o, labels)}, {label(e, labels, ESTIMATOR_LABELS)}")
            if res is not None:
                files[f"figures/overlap-{key}.png"], data = res
                files[f"figures/overlap-{key}.csv"] = to_csv_bytes(data)
                figures.append({"kind": "overlap", "key": key, "file": f"figures/overlap-{key}.png", "png": files[f"figures/overlap-{key}.png"],
                                "caption": f"Propensity-score distributions of members and controls before and after matching, {label(o, labels)} / {label(e, labels, ESTIMATOR_LABELS)}. {support_text((metas.get(key) or {}))}"})

    # ---- credibility battery, sensitivity, bacon (content + figures)
    lab_o_all = {o: label(o, labels) for o in outcomes}
    alpha = sig.alpha
    cred = secs.credibility(rel, metas, aux, profile, lab_o_all)
    for cb in cred:
        if cb["loo"] is None:
            continue
        o = cb["key"].partition("-")[0]
        res = figs.loo_figure(cb["loo"]["table"], cb["loo"]["full"], cb["loo"]["full_ci"], f"Leave one {cb['loo']['by'].replace('_', ' ')} out: {label(o, labels)}", cb["loo"]["by"], sig.ci,
                             unit=un.row_unit(o, "cs", None, units_p, has_defl))
        if res is None:
            cb["figure"] = None
            continue
        files[cb["figure"]], data = res
        files[cb["figure"].replace(".png", ".csv")] = to_csv_bytes(data)
        figures.append({"kind": "loo", "key": cb["key"], "file": cb["figure"], "png": files[cb["figure"]],
                        "caption": f"Leave-one-out: the effect on {label(o, labels)} re-estimated leaving out the members of one {cb['loo']['by'].replace('_', ' ')} at a time, "
                        f"{sig.interval}s; dashed line: full-sample estimate (shaded: its {sig.interval})."})
    sens, f4 = secs.sensitivity(rel, metas, inputs.tables or {}, profile, lab_o_all, alpha, units_p, has_defl)
    findings += f4
    for sb in sens:
        if sb["plot"] is None:
            continue
        bd = (metas.get(sb["key"]) or {}).get("sensitivity", {}).get("breakdown_mbar")
        so, _, se_ = sb["key"].partition("-")
        png = figs.sensitivity_figure(sb["plot"], f"Sensitivity: {sb['title']}", float(bd) if isnum(bd) else None, sig.ci,
                                      unit=un.row_unit(so, _base(se_, metas, so), None, units_p, has_defl))
        if png is None:
            sb["figure"] = None
            continue
        files[sb["figure"]] = png
        files[sb["figure"].replace(".png", ".csv")] = to_csv_bytes(sb["plot"])
        figures.append({"kind": "sensitivity", "key": sb["key"], "file": sb["figure"], "png": png,
                        "caption": f"Sensitivity to violations of parallel trends ({sb['title']}): original {sig.interval} of the average post-period effect at M̄ = 0 "
                        f"and HonestDiD relative-magnitude robust {sig.interval}s for each M̄ (Rambachan & Roth 2023)."})

    # ---- regression tables
    regtabs = []
    for o in sorted(effects["outcome"].dropna().astype(str).unique()):
        rt = regression_table(effects, metas, o, labels, sig=sig, **_regtab_scales(effects, heads, metas, o, units_p, has_defl))
        regtabs.append(rt)
        files[f"tables/{o}.tex"] = rt.to_latex().encode()
        files[f"tables/{o}.md"] = rt.to_markdown().encode()
        files[f"tables/{o}.csv"] = to_csv_bytes(rt.to_frame())

    # ---- provenance
    prov = dict(inputs.provenance or {})
    prov.setdefault("seed", seed)
    files["provenance.json"] = dumps_json(prov).encode()

    # ---- content for HTML / PDF
    summary_placeholder = sdc.DisclosureSummary(profile, findings, [], len(est))
    content = _content(title, effects, heads, metas, aux, gsum, inputs, truth_et, labels, prov, figures, regtabs, summary_placeholder, profile, sig,
                       {sb["key"] for sb in sens if sb["withheld"]})
    content["credibility"] = cred_content(cred)
    content["sensitivity"] = [{k: v for k, v in sb.items() if k != "plot"} for sb in sens]
    content["families"] = secs.outcome_families(effects, inputs.ingest_flow or {}, lab_o_all, PREFERRED, labels, metas, units_p, has_defl)
    content["bacon_detail"] = secs.bacon(inputs.tables or {}, aux, lab_o_all)
    content["heterogeneity"] = secs.heterogeneity(rel, metas, lab_o_all, sig.alpha, units_p, has_defl)
    content["inference"] = inference_rows(rel, metas, lab_o_all)
    content["inference_summary"] = inference_summary(content["inference"])
    content["check_summary"] = [cb["summary"] for cb in cred]
    content["sens_summary"] = [f"{sb['title']}: {sb['sentences'][0]}" for sb in sens if sb["sentences"]]
    content.update(ctx["content"])
    content.update(vfm["content"])
    content["missing"].update({"credibility": not cred, "sensitivity": not sens, "bacon": not content["bacon_detail"]})

    from .html import render_html
    from .pdf import render_pdf, typst_source

    # ---- identifiers: every text the documents show is rewritten to counts (one function,
    # pipeline.disclosure.redact_units), then the scan checks every released byte
    ids = unit_ids
    content = sdc.redact_tree(_price_tree(content, deflated), ids)
    for f in figures:
        f["caption"] = sdc.redact_units(secs.price_wording(f["caption"], deflated), ids)
    sources: dict[str, bytes] = {}
    if "html" in formats:
        files["report.html"] = render_html(content, figures).encode("utf-8")
    if "pdf" in formats:
        src = typst_source(content, figures)
        files["report.pdf"] = render_pdf(content, figures, prov.get("date"), source=src)
        sources["report.pdf"] = src.encode("utf-8")

    # ---- release scan and summary
    scan = sdc.release_scan(files, forbidden_ids=ids, sources=sources)
    summary = sdc.DisclosureSummary(profile, findings, scan, len(est))
    # a scan finding blocks the release (nothing but the summary is returned), so the
    # verdict rendered in the report (from ``summary_placeholder``) is the final one
    if summary.verdict == "block":
        return blocked_output(summary)
    sd, disc = disclosure_files(summary)
    files.update(disc)
    return ReportOutput(files=dict(sorted(files.items())), blocked=sd["withheld"], verdict="pass", summary=sd)


def _unit_ids(inputs: ReportInputs) -> set[str]:
    """The run's firm and group ids as strings: ``inputs.unit_ids`` (the processed panel),
    else the contributors' ids (treated firms only: a report built by hand without the panel)."""
    if inputs.unit_ids is not None:
        return {str(i) for i in inputs.unit_ids}
    if inputs.contributors is not None and len(inputs.contributors):
        raw = inputs.contributors["contributor"].astype(str).str.replace(r"^[fg]:", "", regex=True)
        return set(raw.unique())
    return set()


def _price_tree(content: Any, deflated: bool | None) -> Any:
    """:func:`sections.price_wording` on every string of the content (nominal without deflators)."""
    if deflated is not False:
        return content
    if isinstance(content, str):
        return secs.price_wording(content, deflated)
    if isinstance(content, dict):
        return {k: _price_tree(v, deflated) for k, v in content.items()}
    if isinstance(content, list):
        return [_price_tree(v, deflated) for v in content]
    return content


SKIP_SECTIONS = {"bacon": "bacon", "checks": "credibility", "heterogeneity": "heterogeneity", "matching": "balance", "weighting": "balance"}
SECTION_KEYS = ("estimates", "credibility", "bacon", "heterogeneity", "balance", "pretrend")
DYNAMIC = ("event_study", "cs", "sunab", "imputation", "did2s")  # estimators with a pre-trend test


def skipped_content(skipped: list[dict[str, Any]], labels: dict[str, str]) -> dict[str, Any]:
    """What the report says of runs that failed under ``estimate.on_error: skip``: one
    sentence per run (estimator, outcome, the reason), the sections whose estimator failed
    (their "absent" text says so, and their contents entry is marked "failed"), and the
    estimators that failed (kept out of the methods appendix's "not run" list)."""
    rows, absent, notes, failed = [], {}, {k: "" for k in SECTION_KEYS}, set()
    for sk in skipped or []:
        est, out = str(sk.get("estimator")), str(sk.get("outcome"))
        why = secs.reason_text(sk.get("reason", ""))
        text = (f"{label(est, labels, ESTIMATOR_LABELS)} for {label(out, labels)} failed and was skipped "
                f"(estimate.on_error: skip): {why}")
        rows.append({"estimator": est, "outcome": out, "reason": why, "text": text})
        failed.add(est)
        sec = SKIP_SECTIONS.get(est, "estimates")
        absent.setdefault(sec, []).append(f"Not estimated: {text}")
        if est in DYNAMIC:  # shown only when no other estimator gave a pre-trend test
            absent.setdefault("pretrend", []).append(f"No pre-trend test from {label(est, labels, ESTIMATOR_LABELS)} for {label(out, labels)}: it failed (see Limitations).")
        notes[sec] = " (failed)" if sec != "estimates" else " (some failed)"
    notes["pretrend"] = ""
    return {"rows": rows, "absent": {k: " ".join(absent.get(k, [])) for k in SECTION_KEYS}, "notes": notes, "failed": failed}


# --------------------------------------------------------------------------- content


def cred_content(cred: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Credibility blocks without the (DataFrame) plot data."""
    return [{"key": c["key"], "outcome": c["outcome"], "rows": c["rows"], "summary": c["summary"], "figure": c["figure"]} for c in cred]


BALANCE_COLUMNS = {"covariate": "Covariate", "variable": "Covariate", "sample": "Sample", "smd": "SMD", "var_ratio": "Variance ratio",
                   "ks": "KS statistic", "mean_treated": "Mean, members", "mean_control": "Mean, controls", "diff": "Difference",
                   "ecdf_mean": "Mean eCDF difference", "smd_before": "SMD before", "smd_after": "SMD after"}
MD5_SHOWN = 10  # hex digits of an input's md5 shown in the report; the full digest is in provenance.json


def _covariate_label(v: Any, labels: dict[str, str]) -> str:
    """A balance covariate by its label; ``trend_<outcome>`` (the pre-joining trend
    matched on) as 'Pre-joining trend: <label>'."""
    k = str(v)
    if k.startswith("trend_") and k not in labels:
        return f"Pre-joining trend: {label(k[len('trend_'):], labels)}"
    return label(k, labels)


def _md5_cell(v: dict) -> str:
    """The digest of what was read (its first MD5_SHOWN hex digits), and a warning with the
    full digests when the file on disk is no longer it."""
    md5 = str(v.get("md5", ""))
    if not v.get("changed_since_read"):
        return md5[:MD5_SHOWN] + ("…" if len(md5) > MD5_SHOWN else "")
    if v.get("read_by") is None:
        return f"{md5} (not read by ingest: added after it ran; rerun the pipeline)"
    now = v.get("current_md5")
    return f"{md5} (as read; the file changed since{f', now {now}' if now else ' and was removed'}: rerun the pipeline)"


def _content(title, rel, heads, metas, aux, gsum, inputs: ReportInputs, truth_et, labels, prov, figures, regtabs, summary: sdc.DisclosureSummary, profile,
             sig: Significance | None = None, withheld_sensitivity: set[str] | None = None) -> dict[str, Any]:
    sig = sig or Significance()
    outcomes = sorted(rel["outcome"].dropna().astype(str).unique())
    lab_o = {o: label(o, labels) for o in outcomes}
    lab_e = lambda e: label(e, labels, ESTIMATOR_LABELS)  # noqa: E731

    # headline table
    headline = []
    # rounding per scale: a level outcome's decimals come from its level-scale rows alone
    # (proportional Poisson / log rows never take them: pipeline.report.units.digits_for)
    units_p, has_defl = _units_params(inputs.params, inputs.ingest_flow)
    lev = [un.effect_scale(str(o), _base(e, metas, o), t) == "level" for o, e, t in zip(rel["outcome"], rel["estimator"], rel["term"])]
    lev_rows = rel[np.array(lev, dtype=bool)] if len(rel) else rel
    digits_by_outcome = {o: scale_digits(lev_rows.loc[lev_rows["outcome"] == o, "estimate"].tolist() + lev_rows.loc[lev_rows["outcome"] == o, "std_error"].tolist()) for o in outcomes}
    for _, r in heads.iterrows():
        sup = bool(r["suppressed"])
        sc = un.effect_scale(str(r["outcome"]), _base(r["estimator"], metas, r["outcome"]), r["term"])
        dg = un.digits_for(sc, digits_by_outcome.get(str(r["outcome"]), 3))
        meta = metas.get(f"{r['outcome']}-{r['estimator']}", {})
        headline.append({
            "outcome": lab_o.get(str(r["outcome"]), str(r["outcome"])),
            "unit": _row_unit(r, metas, units_p, has_defl),
            "scale": sc,
            "estimator": lab_e(r["estimator"]),
            "estimate": "withheld" if sup else fmt_fixed(r["estimate"], dg),
            "ci": "" if sup else f"[{fmt_fixed(r['conf_low'], dg)}, {fmt_fixed(r['conf_high'], dg)}]",
            "se": "" if sup else fmt_fixed(r["std_error"], dg),
            "p": "" if sup else fmt_p(r["p_value"]),
            "n_obs": fmt_int(meta.get("n_obs", r["n_obs"])),
            "n_treated": "" if sup else fmt_int(meta.get("n_treated_units", r["n_treated"])),
            "suppressed": sup,
        })

    # executive summary per outcome (in the page-one order: productivity, exports, patents, rest)
    findings_text = []
    drop_statements: list[str] = []  # CS balanced-panel drops, also a page-one caveat
    drop_first: dict[str, str] = {}  # drop sentence -> the outcome it was first stated for
    for o in hl.outcome_order(outcomes):
        h = heads[(heads["outcome"] == o) & ~heads["suppressed"].astype(bool) & heads["estimate"].notna()]
        if h.empty:
            findings_text.append(f"{lab_o[o]}: no headline estimate can be released (withheld by disclosure control or not estimated).")
            continue
        pref = next((e for e in PREFERRED if e in set(h["estimator"].astype(str))), str(h["estimator"].iloc[0]))
        r = h[h["estimator"] == pref].iloc[0]
        b = float(r["estimate"])
        significant = sig.significant(r["p_value"])
        direction = "higher" if b > 0 else "lower"
        unit = _row_unit(r, metas, units_p, has_defl)
        s = (f"{lab_o[o]}: according to the {lab_e(pref)} estimator, members' outcomes were {fmt(abs(b))} {unit} {direction} than they would have been without membership "
             f"({sig.interval} {fmt(r['conf_low'])} to {fmt(r['conf_high'])} {unit}")
        if o.startswith("log_"):
            s += f"; about {_pct_from_log(b)}"
        elif o in SHARE_OUTCOMES:  # 0/1 outcomes: the effect on a probability
            s += f"; {abs(b) * 100:.1f} percentage points {direction} probability"
        s += "). " + (f"The effect is statistically significant at the {sig.level} level." if significant else "The interval includes zero: no significant effect can be established.")
        # the range only over estimators on the preferred one's scale (Poisson estimators
        # report proportional effects, the others effects on the outcome's own scale)
        same = h[np.array([_row_unit(x, metas, units_p, has_defl) == unit for _, x in h.iterrows()], dtype=bool)]
        if len(same) > 1:
            lo, hi = float(same["estimate"].min()), float(same["estimate"].max())
            s += f" Across {len(same)} estimators on this scale the headline estimate ranges from {fmt(lo)} to {fmt(hi)} {unit}."
        for e in [e for e in PREFERRED if e in set(h["estimator"].astype(str))] + sorted(set(h["estimator"].astype(str)) - set(PREFERRED)):
            drop = secs.unbalanced_drop(metas.get(f"{o}-{e}") or {})
            ds = ""
            if drop and "rows" in drop:
                ds = (f"The {lab_e(e)} estimate uses only firms observed in every year: it dropped {drop['rows']} firm-years of firms with gaps, "
                      f"entry or exit and rests on {drop['members_kept']} members; estimate.cs.allow_unbalanced_panel: true keeps them.")
            elif drop:  # the default CS keeps only firms observed in every year (models.did.att_gt)
                ds = (f"The {lab_e(e)} estimate uses only firms observed in every year: it dropped {drop['firms']} firms with gaps, entry or exit, "
                      f"so it rests on {drop['members_before'] - drop['members']} of {drop['members_before']} members "
                      f"({drop['firms_before'] - drop['firms']} of {drop['firms_before']} firms); estimate.cs.allow_unbalanced_panel: true keeps them.")
            if ds and ds in drop_first:  # the same firms dropped: said once, then referred to
                s += f" The {lab_e(e)} estimate uses the same balanced panel as for {drop_first[ds]} (see there)."
            elif ds:
                s += " " + ds
                drop_first[ds] = lab_o[o]
                drop_statements.append(f"{lab_o[o]}: {ds}")
        shown_truth = truth_et.get(o)
        tt = _true_overall(inputs.truth, metas, o, profile) if shown_truth is not None and (shown_truth["event_time"] >= 0).any() else None
        if tt is not None:
            s += f" In this simulated sample the true average effect is {fmt(tt)} {unit}."
        findings_text.append(s)

    # credibility checks
    pretrends = []
    for key, meta in sorted(metas.items()):
        pt = meta.get("pretrend") or {}
        p = pt.get("p_value")
        if isnum(p):
            o, _, e = key.partition("-")
            pretrends.append({"outcome": lab_o.get(o, o), "estimator": lab_e(e), "statistic": fmt(pt.get("statistic")), "df": fmt_int(pt.get("df")),
                              "p": fmt_p(p), "verdict": _pretrend_verdict(float(p), sig.alpha), "light": hl.pretrend_light(float(p), sig.alpha)})
    n_light = {k: sum(p["light"] == k for p in pretrends) for k in ("green", "amber", "red")}
    pretrend_counts = (f"of {len(pretrends)} tests, {n_light['green']} show no evidence of pre-trends, {n_light['amber']} weak evidence "
                       f"(p between {sig.alpha:g} and {2 * sig.alpha:g}) and {n_light['red']} evidence (p < {sig.alpha:g})")
    bacon = []
    for key in sorted(inputs.tables or {}):
        # weight shares by comparison type: an aggregate over all 2x2 components, computed
        # from the unsuppressed components (the per-component rows may be blanked)
        b = (inputs.tables[key] or {}).get("bacon")
        if b is not None and len(b) and {"type", "weight"} <= set(b.columns):
            w = b.groupby("type", sort=True)["weight"].sum()
            o, _, e = key.partition("-")
            bacon.append({"outcome": lab_o.get(o, o), "rows": [{"type": str(t).replace("_", " "), "weight": f"{float(v) / float(w.sum()):.1%}"} for t, v in w.items()]})

    # sample flow
    flow = _flow_rows("ingest", inputs.ingest_flow or {}, profile) + _flow_rows("build groups", inputs.groups_flow or {}, profile)

    # group composition
    groups = []
    if gsum is not None and len(gsum):
        g = gsum.copy()
        dimcol = "dimension" if "dimension" in g.columns else None
        code_labels = (inputs.ingest_flow or {}).get("labels") or {}  # Stata value labels / Excel label sheets
        for dim, part in (g.groupby(dimcol, sort=True) if dimcol else [("all", g)]):
            rows = []
            for _, r in part.head(40).iterrows():
                lev = str(r.get("level", ""))
                if str(dim) == "cohort" and lev == "0":
                    lev = "0 (never members)"
                elif lev in (code_labels.get(str(dim)) or {}):
                    lev = f"{lev} ({code_labels[str(dim)][lev]})"
                rows.append({"level": lev, "n_firms": fmt_int(r.get("n_firms")) or "withheld",
                             "n_firm_years": fmt_int(r.get("n_firm_years")) or "withheld", "n_members": fmt_int(r.get("n_members")) or ("withheld" if "n_members" in part.columns else "")})
            groups.append({"dimension": str(dim), "rows": rows, "more": max(0, len(part) - 40)})

    balance = []
    for key in sorted(aux):
        bal = aux[key].get("balance")
        if bal is None:
            continue
        name, smd = figs.balance_columns(bal)
        o, _, e = key.partition("-")
        cols = [c for c in bal.columns][:8]
        # labels everywhere: column names and covariates as the rest of the report names them
        balance.append({"title": f"{lab_o.get(o, o)} / {lab_e(e)}", "columns": [BALANCE_COLUMNS.get(str(c), label(c, labels)) for c in cols],
                        "rows": [[fmt(v) if isnum(v) and not isinstance(v, str) else _covariate_label(v, labels) if c == name else str(v)
                                  for c, v in zip(cols, rec)] for rec in bal[cols].itertuples(index=False)],
                        "figure": f"figures/love-{key}.png", "overlap": f"figures/overlap-{key}.png",
                        "overlap_caption": support_text(metas.get(key) or {}),
                        "ties": tie_text(metas.get(key) or {})})

    n_supp = int(rel["suppressed"].sum())
    skip = skipped_content(inputs.skipped or [], labels)
    deflated = (inputs.ingest_flow or {}).get("deflated")
    limitations = [
        "The estimates are causal only under (conditional) parallel trends: absent membership, members' outcomes would have evolved like those of the comparison firms. The pre-trend tests can reveal violations before joining but cannot prove the assumption afterwards.",
        "Firms choose to join clusters; if they join because of expected future growth that is not visible in earlier outcomes, the estimates overstate the programme's effect.",
        "Spillovers to non-member firms nearby (in the same region and sector) would bias the comparison; the report's estimates assume none unless a spillover-free control group was chosen.",
        "Two-way fixed-effects estimates can be biased when effects differ across cohorts or grow over time; the heterogeneity-robust estimators (Callaway–Sant'Anna, Sun–Abraham, imputation) do not have this problem.",
    ]
    for key in sorted(metas):
        tw = tie_warning(metas.get(key) or {})
        if tw:
            o, _, e = key.partition("-")
            limitations.append(f"{lab_o.get(o, o)} / {lab_e(e)}: {tw}")
    if summary.n_withheld:  # the one count of pipeline.disclosure.DisclosureSummary (badge, box, here)
        limitations.append(f"{summary.n_withheld} item(s) were withheld by disclosure control (too few firms or dominated cells; "
                           "see Disclosure control) and are blank in all tables and figures.")
    for r in skip["rows"]:
        limitations.append(f"Not estimated: {r['text']}")
    ps = secs.price_sentence(outcomes, deflated, lab_o, ((inputs.params or {}).get("units") or {}).get("price_base_year"))
    if ps:
        limitations.append(ps)
    synthetic = "These results come from a synthetic (simulated) economy, not from real firms." if inputs.truth is not None and len(inputs.truth) else ""
    if synthetic:
        limitations.append(synthetic)
    # page one: three caveats, each a statement written above from the run's meta
    withheld_s = limitations[[i for i, l in enumerate(limitations) if "withheld by disclosure control" in l][0]] if summary.n_withheld else ""
    caveats = hl.caveats([("synthetic", synthetic), ("prices", ps or ""), ("dropped", drop_statements[0] if drop_statements else ""),
                          ("failed", f"Not estimated: {skip['rows'][0]['text']}" if skip["rows"] else ""), ("withheld", withheld_s),
                          ("assumption", limitations[0])])

    missing = {
        "flow": not flow,
        "groups": not groups,
        "estimates": not headline,
        "event_study": not any(f["kind"] == "event_study" for f in figures),
        "pretrend": not pretrends,
        "balance": not balance,
    }
    used = sorted(set(rel["estimator"].dropna().astype(str)))
    methods = [m for m in METHODS if m["key"] in used or (m["key"] == "matching" and "weighting" in used) or (m["key"] == "ppml" and "etwfe_poisson" in used) or (m["key"] == "imputation" and "did2s" in used)]
    methods_other = [m if m["key"] not in skip["failed"] else {**m, "title": m["title"] + " (attempted: failed, see Limitations)"}
                     for m in METHODS if m not in methods]
    fixed_effects_text = _fixed_effects_text(metas, labels)

    params = inputs.params or {}
    est_p = params.get("estimate") or {}
    prov_rows = []
    for k in ("git_commit", "code_modified_since_commit", "date", "seed", "params_file"):
        if k in prov:
            prov_rows.append({"key": k.replace("_", " "), "value": str(prov[k])})
    # provenance, compact: the inputs read by the pipeline one per row; the stage outputs the
    # report read (data/estimates/*) as one count unless one changed since it was read
    data_all = [(str(k), v) for k, v in sorted((prov.get("data") or {}).items()) if isinstance(v, dict)]
    inter = [(k, v) for k, v in data_all if k.startswith("estimates/") and not v.get("changed_since_read")]
    data_rows = [{"name": k, "path": str((v or {}).get("path", "")), "md5": _md5_cell(v)} for k, v in data_all if (k, v) not in inter]
    data_note = (f"Digests: the first {MD5_SHOWN} hex digits; the full md5 of every file, and of the {len(inter)} estimation outputs under "
                 "data/estimates/ that the report read, are in provenance.json.") if data_all else ""
    pkg_rows = [{"name": str(k), "version": str(v)} for k, v in sorted((prov.get("packages") or {}).items())]
    pkg_grid = [pkg_rows[i:i + 3] for i in range(0, len(pkg_rows), 3)]
    mach_rows = [{"key": str(k), "value": str(v)} for k, v in sorted((prov.get("machine") or {}).items())]

    page_one = hl.rows(rel, heads, metas, PREFERRED, lab_o, lab_e, sig.alpha, withheld_sensitivity or set(),
                       unit_of=lambda r: _row_unit(r, metas, units_p, has_defl))
    sd = summary.to_dict()
    return {
        "title": title,
        "ci_label": sig.interval,
        "alpha": sig.alpha,
        "subtitle": "Impact evaluation report" + (f" · {prov['date']}" if prov.get("date") else ""),
        "commit": str(prov.get("git_commit") or "")[:12],
        "estimand": "The estimand is the average treatment effect on the treated (ATT): the average difference, among firms that joined a cluster initiative, between their outcomes after joining and the outcomes the same firms would have had without joining. Comparison firms are "
        + ("firms that never joined" if est_p.get("control_group", "nevertreated") == "nevertreated" else "firms that had not yet joined")
        + ("." if not est_p.get("covariates") else f", compared conditional on {', '.join(label(c, labels) for c in est_p.get('covariates'))}."),
        "findings": findings_text,
        "page_one": page_one,
        "page_one_sources": hl.sources_note(page_one),
        "page_one_legend": [{"name": n, "text": t} for n, t in hl.LEGEND],
        "caveats": caveats,
        "pretrends": pretrends,
        "pretrend_counts": pretrend_counts,
        "bacon": bacon,
        "limitations": limitations,
        "flow": [r for r in flow if r["kind"] != "info"],
        "flow_info": [r for r in flow if r["kind"] == "info" and "derived" not in r["stage"]],
        "groups": groups,
        "headline": headline,
        "regtabs": [{"title": rt.title, "columns": rt.column_labels, "rows": [{"label": lab, "est": [rt.cells.get(k, {}).get(c, ("", ""))[0] for c in rt.columns],
                                                                                 "se": [rt.cells.get(k, {}).get(c, ("", ""))[1] for c in rt.columns]} for k, lab in rt.rows],
                     "foot": [{"label": lab, "vals": [v.get(c, "") for c in rt.columns]} for lab, v in rt.foot], "note": rt.note, "file": f"tables/{rt.outcome}"} for rt in regtabs],
        "balance": balance,
        "missing": missing,
        "methods": methods,
        "methods_other": methods_other,
        "fixed_effects_text": fixed_effects_text,
        "prov_rows": prov_rows,
        "data_rows": data_rows,
        "pkg_rows": pkg_rows,
        "pkg_grid": pkg_grid,
        "data_note": data_note,
        "mach_rows": mach_rows,
        "params_json": json.dumps(params, sort_keys=True, indent=2, default=str),
        "disclosure": {
            "profile": profile.name,
            "on_fail": profile.on_fail,
            "verdict": sd["verdict"],
            "verdict_label": "not checked" if profile.name == "off" else (
                f"{sd['verdict']}, {summary.n_withheld} withheld" if summary.n_withheld and sd["verdict"] == "pass" else sd["verdict"]),
            "status": sd["status"],
            "checks": sd["checks"],
            "withheld": sd["withheld"][:40],
            "withheld_by_reason": _withheld_by_reason(sd["withheld"]),
            "n_withheld": sd["n_withheld"],
            "scan": sd["release_scan"],
        },
        "n_suppressed": n_supp,
        "skipped": skip["rows"],
        "absent": skip["absent"],
        "section_note": skip["notes"],
        "has_truth": bool(truth_et),
    }
