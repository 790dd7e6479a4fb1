"""Pipeline estimator ``matching``: matched difference-in-differences on a staggered panel.

Each cohort ``g`` is matched separately at its base year ``b = g - 1`` (models.matching.stacking
states the treated/control sets: controls are never members, or with
``control_group: notyettreated`` also firms joining after ``g + horizon``), with
:func:`models.matching.matchit.matchit` on base-year covariates and pre-treatment trends
(``x_b - x_{b - trend_lags}``); then per event time ``e`` the weighted mean difference of ``Y_{g+e}``
(``term = level``, MatchIt's ATT on that year's outcome) and of ``Y_{g+e} - Y_b`` (``term = did``;
Heckman, Ichimura & Todd 1997's matched DiD), stacked over cohorts (models.matching.staggered).

Covariates: ``covariates: null`` uses ``estimate.covariates``; when that is empty too,
``default_covariates`` (base-year ``log_employment``) where present. ``trends`` lists the variables
whose pre-trend enters (default ``log_labour_productivity``; the word ``outcome`` means the
outcome itself); absent columns are skipped and noted in meta. ``control_pool`` (``all``,
``eligible``, ``not_colocated``) narrows the controls with build_groups' base-year flags.

Ties (``ties``, models.matching.ties): ``all`` (default) uses every control tied at the nearest
distance with the weight split, so the answer does not depend on firm ids; ``first`` is MatchIt's
rule (first control in firm-id order), and ``meta.ties`` says whether renumbering could change
the estimate. ``meta.ties`` sums the cohorts' tie reports.

Standard errors (``se: cluster``, the default, with ``vcov: cluster by firm_id``): matching without
replacement clusters on the matched set (cohort x pair/subclass, MatchIt's recommendation); with
replacement on the firm (a reused control is one cluster; the matching step is treated as fixed).
``se: abadie_imbens`` (nearest with ``replace: true``): per cohort-year cell the Abadie–Imbens
(2006) variance (``ai_var_matches`` same-group neighbours for sigma^2(x); ``bias_adjust``: the AI
2011 regression correction of the estimate and the variance), with the AI (2016) adjustment for
the estimated logit score; cells are stacked through per-unit contributions whose sum of squares
is the cell's AI variance, summed by firm across cohorts and event times (so cross-cell
covariances are approximated through the signs of the within-group residuals; the G/(G-1) factor
of the stacking is kept). See models.matching.abadie_imbens. A never-member used as a control for several cohorts appears in
several cohorts' matched sets; without replacement those are separate clusters (``cluster:
firm`` clusters on the firm instead and accounts for that reuse). ``vcov: hetero`` treats every
cohort-firm row as its own cluster. Other vcov kinds raise UnsupportedVcovError.
"""

from __future__ import annotations

import numpy as np

from models import options as _opt
from models.errors import ConfigError, DesignError
from models.spec import EstimatorSpec

from .effects import Effect
from .propensity import propensity_score

from .matchit import DISCARDS, DISTANCES, METHODS, TIES, att_ai, matchit
from .nearest import M_ORDERS
from .staggered import CohortWeights, resolve_covariates, run

OPTIONS: dict = {
    "method": "nearest",            # nearest | exact | cem
    "distance": "glm",              # glm | probit | mahalanobis
    "link": "logit",                # logit | probit
    "ratio": 1,
    "replace": False,
    "caliper": None,                # in SD of the score when std_caliper, else in score units
    "std_caliper": True,
    "exact": [],                    # columns to match exactly on (base-year values), e.g. [sector]
    "m_order": None,                # null = MatchIt default: largest (score) / data (mahalanobis)
    "discard": "none",              # none | both | control | treated
    "cutpoints": None,              # cem: {column: number of bins | [cut points]}; default Sturges
    "covariates": None,             # null = estimate.covariates, else default_covariates
    "default_covariates": ["log_employment"],
    "trends": ["log_labour_productivity"],
    "trend_lags": 2,
    "horizon": 5,
    "leads": 2,
    "control_pool": "all",          # all | eligible | not_colocated (spillover-free never-members)
    "cluster": "matched_set",       # matched_set | firm (without replacement)
    "ties": "all",                  # all (tied controls share the weight; label-invariant) | first (MatchIt's rule)
    "se": "cluster",                # cluster | abadie_imbens (nearest with replacement)
    "bias_adjust": False,           # abadie_imbens: AI (2011) regression bias correction on the matching covariates
    "ai_var_matches": 2,            # abadie_imbens: J same-group neighbours for sigma^2(x) (Stata vce(robust, nn(2)))
}


def _cut_ok(c) -> bool:
    return c == "sturges" or (_opt.is_int(c) and c >= 0) or (
        isinstance(c, list) and bool(c) and all(_opt.is_number(x) for x in c))


def _cutpoints_ok(v) -> bool:
    return isinstance(v, dict) and all(isinstance(k, str) and _opt.SAFE_NAME.match(k) and _cut_ok(c) for k, c in v.items())


RULES: dict = {
    "method": _opt.choice(*METHODS),
    "distance": _opt.choice(*DISTANCES),
    "link": _opt.choice("logit", "probit"),
    "ratio": _opt.integer(1),
    "replace": _opt.boolean(),
    "caliper": _opt.number(0, lo_open=True, null=True),
    "std_caliper": _opt.boolean(),
    "exact": _opt.names(single=True),
    "m_order": _opt.choice(*M_ORDERS, null=True),
    "discard": _opt.choice(*DISCARDS),
    "cutpoints": _opt.custom(_cutpoints_ok, "give {column: number of bins (0 = no coarsening) | [cut points] | sturges}",
                             bad={"x": "many"}, null=True),
    "covariates": _opt.names(null=True),
    "default_covariates": _opt.names(),
    "trends": _opt.names(extra=("outcome",)),
    "trend_lags": _opt.integer(1),
    "horizon": _opt.integer(0),
    "leads": _opt.integer(0),
    "control_pool": _opt.choice("all", "eligible", "not_colocated"),
    "cluster": _opt.choice("matched_set", "firm"),
    "ties": _opt.choice(*TIES),
    "se": _opt.choice("cluster", "abadie_imbens"),
    "bias_adjust": _opt.boolean(),
    "ai_var_matches": _opt.integer(0, note="0 = homoskedastic"),
}


def _cross(o: dict, where: str) -> list[str]:
    p = []
    if o["ties"] == "all" and not o["replace"] and o["m_order"] in ("data", "random"):
        p.append(f"{where}.ties: all without replacement needs an order that does not depend on firm ids; "
                 f"m_order {o['m_order']!r} does (set m_order: null/largest/smallest, replace: true, or ties: first)")
    if o["se"] == "abadie_imbens" and not (o["method"] == "nearest" and o["replace"] is True):
        p.append(f"{where}.se: abadie_imbens needs method: nearest with replace: true (Abadie-Imbens 2006 "
                 "is the variance of matching with replacement); use se: cluster otherwise")
    return p


validate_options = _opt.validator(OPTIONS, RULES, _cross, name="matching")


def _ai_effect(m, o):
    """Cell effect with Abadie-Imbens contributions (models.matching.abadie_imbens): units with a
    missing outcome that year leave the matched sets (a treated unit without any remaining match
    leaves the cell). The AI (2016) score adjustment rescales the contributions so that their
    sum of squares is the adjusted variance of the cell."""
    ptr, cidx = m.sets
    t_rows = np.flatnonzero(m.treat)

    def effect(yy):
        ok = np.isfinite(yy)
        owner = np.repeat(np.arange(len(t_rows)), np.diff(ptr))
        keep = ok[cidx] & ok[t_rows[owner]]
        sizes = np.bincount(owner[keep], minlength=len(t_rows))
        p2 = np.concatenate([[0], np.cumsum(sizes)])
        r = att_ai(m, np.where(ok, yy, 0.0), var_matches=o["ai_var_matches"], bias_adjust=o["bias_adjust"],
                   ps_adjust=True, sets=(p2, cidx[keep]), observed=ok)
        used = (m.weights > 0) & ok
        u = r.contributions
        if r.ps_adjustment is not None and r.variance > 0:
            base = r.variance - r.ps_adjustment
            u = u * np.sqrt(r.variance / base) if base > 0 else u
        return Effect(r.estimate, r.std_error, int(used.sum()), r.n_treated, int(used.sum()), np.arange(int(used.sum())), u[used])

    return effect


def fit(data, spec: EstimatorSpec):
    _opt.require(validate_options(spec.options), "estimate.matching")
    o = {**OPTIONS, **(spec.options or {})}
    spec.vcov.require("matching", ("cluster", "hetero"))
    if spec.vcov.kind == "cluster" and tuple(spec.vcov.by) != (spec.idname,):
        raise ConfigError(f"estimate.vcov: matching clusters on matched sets or on {spec.idname}; "
                          f"cluster by {list(spec.vcov.by)} is not supported (use by: [{spec.idname}] or kind: hetero)")
    covariates, trends, notes = resolve_covariates(data, spec, o)
    exact = [o["exact"]] if isinstance(o["exact"], str) else list(o["exact"] or [])
    if o["method"] == "nearest" and not covariates and not trends:
        raise ConfigError("estimate.matching: no matching covariates (set estimate.covariates, matching.covariates or trends)")
    by_firm = o["replace"] or o["cluster"] == "firm"
    if spec.vcov.kind == "hetero":
        label = "hetero (each cohort-firm row its own cluster)"
    elif o["method"] == "nearest" and not by_firm:
        label = "cluster(matched_set)"
    elif o["method"] in ("exact", "cem") and o["cluster"] == "matched_set":
        label = "cluster(subclass)"
    else:
        label = f"cluster({spec.idname})"
    if o["se"] == "abadie_imbens":
        label = (f"abadie_imbens (AI 2006, J={o['ai_var_matches']}"
                 + (", AI 2011 bias correction" if o["bias_adjust"] else "")
                 + (", AI 2016 estimated-score adjustment" if o["distance"] == "glm" and o["link"] == "logit" else "")
                 + f"; stacked by {spec.idname})")

    def weigh(cf):
        fr = cf.frame
        m = matchit(fr, "treat", cf.covariates, method=o["method"], distance=o["distance"], link=o["link"],
                    ratio=o["ratio"], replace=o["replace"], caliper=o["caliper"], std_caliper=o["std_caliper"],
                    exact=cf.exact, m_order=o["m_order"], discard=o["discard"], cutpoints=o["cutpoints"],
                    seed=int(spec.seed) + int(cf.cohort), ids=fr[spec.idname].to_numpy(), ties=o["ties"])
        effect = None
        if o["se"] == "abadie_imbens":
            cl, scope = fr[spec.idname].to_numpy(), "firm"
            effect = _ai_effect(m, o)
        elif spec.vcov.kind == "hetero":
            cl, scope = np.arange(len(fr)), "cohort"
        elif label in ("cluster(matched_set)", "cluster(subclass)"):
            cl, scope = m.subclass, "cohort"
        else:
            cl, scope = fr[spec.idname].to_numpy(), "firm"
        support = dict(m.common_support)
        support.update({k: v for k, v in m.counts.items()})
        if m.caliper is not None:
            support["caliper_score_units"] = m.caliper
        if m.ties:
            support["ties"] = dict(m.ties)
        score = m.distance
        if score is None:  # Mahalanobis / exact / CEM: a logit score for the overlap display only
            try:
                score = propensity_score(fr, fr["treat"].to_numpy().astype(bool), cf.covariates)
            except DesignError:
                score = None
        return CohortWeights(m.weights, cl, scope, support, m.counts, effect=effect, ties=dict(m.ties),
                             score=score, discarded=m.discarded)

    return run(data, spec, estimator="matching", weigh=weigh, covariates=covariates, trends=trends, exact=exact,
               vcov_label=label, notes=notes,
               extra_meta={"matching": {k: o[k] for k in OPTIONS}, "propensity": "own IRLS (models.matching.propensity)"})
