"""Pipeline estimator ``weighting``: IPW (ATT odds weights) or entropy balancing per cohort,
then the same per-event-time stacked ``level``/``did`` effects as ``matching``
(models.matching.staggered; cohorts, controls and covariates as in models.matching.estimator).

* ``method: ipw`` — logit/probit score by IRLS (models.matching.propensity), treated weight 1,
  control ``e/(1-e)`` (Hirano, Imbens & Ridder 2003); ``trim: [lo, hi]`` drops units whose score
  lies outside (counted per cohort in ``meta.common_support``); a cohort left without treated or
  controls is skipped, and no estimable cohort at all is a DesignError (exit 4).
* ``method: ebal`` — entropy balancing (Hainmueller 2012) on the covariates' means
  (``moments: 2`` adds squares of non-binary covariates), models.matching.ebal.

SEs: clustered by firm across the stacked cohorts (a never-member reused by several cohorts is
one cluster), conditional on the estimated weights (no correction for estimating them).
``vcov: hetero`` clusters each cohort-firm row by itself.
"""

from __future__ import annotations

import numpy as np

from models import options as _opt
from models.errors import ConfigError, DesignError
from models.spec import EstimatorSpec

from .ebal import entropy_balance
from .ipw import att_odds_weights, trim_mask
from .propensity import design_matrix, propensity_score
from .staggered import CohortWeights, resolve_covariates, run

OPTIONS: dict = {
    "method": "ipw",                # ipw | ebal
    "link": "logit",
    "moments": 1,                   # ebal: 1 = means, 2 = means and squares
    "trim": None,                   # ipw: [lo, hi] propensity bounds, e.g. [0.01, 0.99]
    "covariates": None,
    "default_covariates": ["log_employment"],
    "trends": ["log_labour_productivity"],
    "trend_lags": 2,
    "horizon": 5,
    "leads": 2,
    "control_pool": "all",          # all | eligible | not_colocated (spillover-free never-members)
}


RULES: dict = {
    "method": _opt.choice("ipw", "ebal"),
    "link": _opt.choice("logit", "probit"),
    "moments": _opt.choice(1, 2),
    "trim": _opt.custom(lambda t: isinstance(t, list) and len(t) == 2 and all(_opt.is_number(x) for x in t)
                        and 0 <= t[0] < t[1] <= 1, "give [lo, hi] with 0 <= lo < hi <= 1", bad=[0.9, 0.1], null=True),
    "covariates": _opt.names(null=True),
    "default_covariates": _opt.names(),
    "trends": _opt.names(extra=("outcome",)),
    "trend_lags": _opt.integer(1),
    "horizon": _opt.integer(0),
    "leads": _opt.integer(0),
    "control_pool": _opt.choice("all", "eligible", "not_colocated"),
}
validate_options = _opt.validator(OPTIONS, RULES, name="weighting")


def fit(data, spec: EstimatorSpec):
    _opt.require(validate_options(spec.options), "estimate.weighting")
    o = {**OPTIONS, **(spec.options or {})}
    spec.vcov.require("weighting", ("cluster", "hetero"))
    if spec.vcov.kind == "cluster" and tuple(spec.vcov.by) != (spec.idname,):
        raise ConfigError(f"estimate.vcov: weighting clusters on {spec.idname}; cluster by {list(spec.vcov.by)} "
                          "is not supported (use by: [firm_id] or kind: hetero)")
    covariates, trends, notes = resolve_covariates(data, spec, o)
    if not covariates and not trends:
        raise ConfigError("estimate.weighting: no covariates (set estimate.covariates, weighting.covariates or trends)")

    def weigh(cf):
        fr = cf.frame
        t = fr["treat"].to_numpy(dtype=bool)
        support = {"n_treated": int(t.sum()), "n_control": int((~t).sum())}
        if o["method"] == "ipw":
            ps = propensity_score(fr, t, cf.covariates, link=o["link"])
            keep = trim_mask(ps, o["trim"])
            support.update(treated_range=[float(ps[t].min()), float(ps[t].max())],
                           control_range=[float(ps[~t].min()), float(ps[~t].max())],
                           trimmed_treated=int((t & ~keep).sum()), trimmed_control=int((~t & ~keep).sum()))
            if not (t & keep).any() or not (~t & keep).any():
                raise DesignError(f"cohort {cf.cohort}: no common support after trimming to {o['trim']} "
                                  f"({support['trimmed_treated']} treated, {support['trimmed_control']} controls trimmed)")
            w = np.where(keep, att_odds_weights(ps, t), 0.0)
        else:
            X, _, _ = design_matrix(fr, cf.covariates)
            w, info = entropy_balance(X[:, 1:], t, moments=int(o["moments"]))
            support.update(ebal_max_abs_gap=info["max_abs_gap"], ebal_iterations=info["iterations"])
        if spec.vcov.kind == "hetero":
            cl, scope = np.arange(len(fr)), "cohort"
        else:
            cl, scope = fr[spec.idname].to_numpy(), "firm"
        counts = {"weighted_treated": int((t & (w > 0)).sum()), "weighted_control": int((~t & (w > 0)).sum()),
                  "trimmed_treated": support.get("trimmed_treated", 0), "trimmed_control": support.get("trimmed_control", 0)}
        return CohortWeights(w, cl, scope, support, counts)

    label = "hetero (each cohort-firm row its own cluster)" if spec.vcov.kind == "hetero" else f"cluster({spec.idname})"
    return run(data, spec, estimator="weighting", weigh=weigh, covariates=covariates, trends=trends, exact=[],
               vcov_label=label, notes=notes, extra_meta={"weighting": {k: o[k] for k in OPTIONS}})
