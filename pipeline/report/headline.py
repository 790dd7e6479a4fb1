"""Page one of the report: did it work, for which outcome, by how much, how sure.

One row per outcome (productivity first, then exports, then patents, then the rest:
:func:`outcome_order`) for the preferred heterogeneity-robust estimator (the order
``PREFERRED`` of :mod:`pipeline.report.build`): the effect as a percentage for log outcomes
and proportional (Poisson) estimators, in percentage points for 0/1 outcomes and as a level
otherwise; its interval at ``estimate.alpha``; the range of the estimators run for the
outcome on the same scale; and three traffic lights. Nothing here estimates anything: the
numbers are the released tidy rows and the estimators' meta, and the lights are the rules
below applied to them.

Rules (one function each, unit-tested in tests/test_report_headline.py):

* :func:`pretrend_light` — the joint pre-trend Wald test of the outcome's preferred
  estimator with one (the same thresholds as the Pre-trends section): p >= 2 alpha green,
  alpha <= p < 2 alpha amber (weak evidence), p < alpha red (evidence of pre-trends).
  A non-rejection is weak evidence of parallel trends (Roth 2022, AER: Insights 4(3)), so
  green never means "parallel trends hold".
* :func:`sensitivity_light` — the HonestDiD relative-magnitudes breakdown value M̄*
  (Rambachan & Roth 2023, REStud 90(5)): M̄* >= 1 green (the conclusion survives
  post-period violations as large as the largest pre-period one, their benchmark),
  0 < M̄* < 1 amber, M̄* = 0 red (not significant even under exact parallel trends); grey
  when not computed for the outcome, "withheld" when disclosure control withheld it.
* :func:`disclosure_light` — the released status of the outcome's rows: green all
  released, amber some rows withheld, red the preferred estimate withheld.
* :func:`answer` — "higher"/"lower" when the preferred estimate is significant at alpha,
  else "not significant".

Scales are those of :mod:`pipeline.report.units` (the estimator terms' scales in
``models.registry.SCALES``): a proportional effect is shown in percent
(:func:`pipeline.report.units.percent`: 100 p for an ``exp(b) − 1`` term, 100 (e^b − 1) for
log points, interval ends likewise — the transforms are monotone), a level effect with its
unit (:func:`pipeline.report.units.row_unit`, given by the caller as ``unit_of``).
"""

from __future__ import annotations

import math
from typing import Any

from . import units as un
from .tables import fmt, fmt_p, isnum

PRODUCTIVITY = ("log_labour_productivity", "labour_productivity", "log_tfp")
EXPORTS = ("exports", "export_status", "log_exports", "export_intensity")
PATENTS = ("patents", "patent_status")
SHARE_OUTCOMES = ("export_status", "patent_status")  # 0/1 outcomes: percentage points

LIGHT_TEXT = {"green": "no concern", "amber": "caution", "red": "concern", "none": "not available", "withheld": "withheld"}

LEGEND = [
    ("Pre-trends", "joint test that members and comparison firms moved alike before joining: green p ≥ 2α, amber α ≤ p < 2α, red p < α "
     "(a pass is weak evidence; the test has limited power)"),
    ("Sensitivity", "HonestDiD breakdown M̄*: how large post-joining violations of parallel trends may be, relative to the largest pre-joining one, "
     "before the effect is no longer significant: green M̄* ≥ 1, amber 0 < M̄* < 1, red M̄* = 0; grey: not computed for this outcome"),
    ("Disclosure", "green every estimate of the outcome released, amber some withheld by disclosure control (withheld/all rows of the "
     "outcome, event times included), red the headline estimate withheld"),
]


def outcome_order(outcomes: list[str]) -> list[str]:
    """Productivity outcomes first, then exports, then patents (each in the order of the
    tuples above), then the rest alphabetically."""
    first = [o for group in (PRODUCTIVITY, EXPORTS, PATENTS) for o in group if o in outcomes]
    return first + sorted(o for o in set(outcomes) if o not in first)


def scale(outcome: str, estimator: str, term: Any = None) -> str:
    """``percent`` (a proportional effect: Poisson log/proportion terms, any effect on a log
    outcome; :func:`pipeline.report.units.effect_scale`), ``pp`` (a level effect on a 0/1
    outcome) or ``level``. ``estimator``: the registry key (a variant's base)."""
    if un.effect_scale(outcome, estimator, term) == "proportional":
        return "percent"
    return "pp" if outcome in SHARE_OUTCOMES else "level"


def value(x: Any, kind: str, estimator: str = "", term: Any = None) -> float:
    """``x`` on its display scale: percent, percentage points or the level itself."""
    if not isnum(x):
        return float("nan")
    v = float(x)
    return un.percent(v, estimator, term) if kind == "percent" else 100 * v if kind == "pp" else v


def show(x: Any, kind: str, sign: bool = True) -> str:
    """A value already on its display scale (:func:`value`) as text ('' when missing)."""
    if not isnum(x):
        return ""
    v = float(x)
    if kind == "percent":
        return f"{v:{'+' if sign else ''}.1f}%"
    if kind == "pp":
        return f"{v:{'+' if sign else ''}.1f} pp"
    s = fmt(v)
    return ("+" + s if sign and v > 0 else s)


def pretrend_light(p: Any, alpha: float) -> str:
    if not isnum(p):
        return "none"
    p = float(p)
    return "green" if p >= 2 * alpha else "amber" if p >= alpha else "red"


def sensitivity_light(breakdown: Any, withheld: bool = False) -> str:
    if withheld:
        return "withheld"
    if not isnum(breakdown):
        return "none"
    b = float(breakdown)
    return "green" if b >= 1 else "amber" if b > 0 else "red"


def disclosure_light(headline_suppressed: bool, n_rows: int, n_withheld: int) -> str:
    if headline_suppressed:
        return "red"
    return "amber" if n_withheld > 0 else "green"


def answer(estimate: Any, p: Any, alpha: float) -> str:
    if not isnum(estimate):
        return "withheld"
    if not (isnum(p) and float(p) < alpha):
        return "not significant"
    return "higher" if float(estimate) > 0 else "lower"


def rows(effects, heads, metas: dict[str, dict], preferred: tuple[str, ...], lab_o: dict[str, str], lab_e, alpha: float,
         withheld_sensitivity: set[str], unit_of=None) -> list[dict[str, Any]]:
    """The page-one rows. ``effects``: released tidy rows of effect estimators (column
    ``suppressed``); ``heads``: their headline rows (one per outcome x estimator);
    ``withheld_sensitivity``: meta keys whose HonestDiD analysis disclosure control withheld;
    ``unit_of(row)``: the unit label of a level row ('' when not given)."""
    unit_of = unit_of or (lambda r: "")

    def base(o: str, e: str) -> str:  # a named variant's registry key
        return str((metas.get(f"{o}-{e}") or {}).get("base_estimator") or e)

    def kind_of(r) -> str:
        return scale(str(r["outcome"]), base(str(r["outcome"]), str(r["estimator"])), r.get("term"))

    out = []
    outcomes = sorted(heads["outcome"].dropna().astype(str).unique())
    for o in outcome_order(outcomes):
        h = heads[heads["outcome"] == o]
        part = effects[effects["outcome"] == o]
        ests = sorted(set(part["estimator"].dropna().astype(str)))  # incl. event studies without a headline row
        hests = [str(e) for e in h["estimator"]]
        released = h[~h["suppressed"].astype(bool) & h["estimate"].notna()]
        rel_ests = set(released["estimator"].astype(str))
        pref = next((e for e in preferred if e in rel_ests), None) or (sorted(rel_ests)[0] if rel_ests else
                                                                       next((e for e in preferred if e in hests), hests[0]))
        r = h[h["estimator"] == pref].iloc[0]
        sup = pref not in rel_ests
        kind = kind_of(r)
        unit = {"percent": "%", "pp": "percentage points"}.get(kind) or unit_of(r)
        # the range over the estimators on the preferred one's scale (and unit) only
        same = [x for _, x in released.iterrows() if kind_of(x) == kind and (kind != "level" or unit_of(x) == unit_of(r))]
        vals = [value(x["estimate"], kind, base(o, str(x["estimator"])), x.get("term")) for x in same]
        rng = f"{show(min(vals), kind)} to {show(max(vals), kind)} ({len(vals)})" if len(vals) > 1 else ""
        conv = lambda x: value(x, kind, base(o, pref), r.get("term"))  # noqa: E731
        # pre-trend test: the preferred estimator's, else the first in preference order with one
        pt_est = next((e for e in [pref, *preferred, *sorted(ests)] if e in ests and isnum(((metas.get(f"{o}-{e}") or {}).get("pretrend") or {}).get("p_value"))), None)
        pt_p = ((metas.get(f"{o}-{pt_est}") or {}).get("pretrend") or {}).get("p_value") if pt_est else None
        # sensitivity: the first estimator in preference order with a HonestDiD analysis
        sens_est = next((e for e in [pref, *preferred, *sorted(ests)] if e in ests and isinstance((metas.get(f"{o}-{e}") or {}).get("sensitivity"), dict)
                         and "not_run" not in metas[f"{o}-{e}"]["sensitivity"]), None)
        bd = ((metas.get(f"{o}-{sens_est}") or {}).get("sensitivity") or {}).get("breakdown_mbar") if sens_est else None
        s_withheld = bool(sens_est) and f"{o}-{sens_est}" in withheld_sensitivity
        n_wh = int(part["suppressed"].astype(bool).sum())
        lights = {
            "pretrend": {"light": pretrend_light(pt_p, alpha), "text": f"p = {fmt_p(pt_p)}" if pt_est else "no test",
                         "source": lab_e(pt_est) if pt_est and pt_est != pref else ""},
            "sensitivity": {"light": sensitivity_light(bd, s_withheld),
                            "text": "withheld" if s_withheld else (f"M̄* = {float(bd):.2f}" if isnum(bd) else "not computed"),
                            "source": lab_e(sens_est) if sens_est and sens_est != pref else ""},
            "disclosure": {"light": disclosure_light(sup, len(part), n_wh),
                           "text": "withheld" if sup else (f"{n_wh}/{len(part)} withheld" if n_wh else "released"), "source": ""},
        }
        out.append({
            "key": o,
            "outcome": lab_o.get(o, o),
            "estimator": lab_e(pref),
            "answer": answer(None if sup else r["estimate"], r["p_value"], alpha),
            "effect": "withheld" if sup else show(conv(r["estimate"]), kind),
            "ci": "" if sup else f"{show(conv(r['conf_low']), kind)} to {show(conv(r['conf_high']), kind)}",
            "scale": {"percent": "percent", "pp": "percentage points"}.get(kind, "level"),
            "unit": unit,
            "range": rng,
            "lights": lights,
        })
    return out


def sources_note(page_rows: list[dict[str, Any]]) -> str:
    """Which estimator a light comes from when it is not the row's own (e.g. HonestDiD on
    the TWFE event study behind a Callaway–Sant'Anna effect)."""
    names = {"pretrend": "pre-trend test", "sensitivity": "sensitivity"}
    parts = []
    for r in page_rows:
        for k, what in names.items():
            src = r["lights"][k].get("source")
            if src:
                parts.append(f"{r['outcome']}: {what} from {src}")
    return ("Lights not from the row's estimator: " + "; ".join(parts) + ".") if parts else ""


def caveats(candidates: list[tuple[str, str]], n: int = 3) -> list[str]:
    """The first ``n`` statements of distinct kinds from ``candidates`` ((kind, sentence) in
    priority order, written elsewhere from the run's meta); empty sentences are skipped."""
    out, kinds = [], set()
    for kind, s in candidates:
        if s and kind not in kinds:
            out.append(s)
            kinds.add(kind)
        if len(out) == n:
            break
    return out
