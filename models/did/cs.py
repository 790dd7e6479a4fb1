"""Registry estimator ``cs``: Callaway & Sant'Anna (2021) group-time ATTs and aggregations.

Runs :func:`models.did.att_gt.att_gt` once and aggregates with
:func:`models.did.aggte.aggte` (no re-estimation). Tidy rows:

* ``gt``: one per (g,t), term ``ATT(g,t)``, ``cohort``, ``time``, ``event_time = t - g``;
  ``n_treated`` = units of cohort g, ``n_obs`` = unit-periods of the 2x2 sample (2 x units; with
  ``allow_unbalanced_panel`` the rows of the cell's two periods);
* ``simple`` (overall ATT), ``dynamic`` (per event time, term ``ATT(e)``; overall row term
  ``ATT(e>=0)`` with null event_time), ``group`` (per cohort, plus overall ``ATT``),
  ``calendar`` (per period, plus overall ``ATT``). Confidence bounds of per-e/g/t rows use
  the sup-t critical value when ``cband`` is on, the normal one otherwise.

Inference (spec.vcov): ``cluster`` by the unit id (``spec.idname``) = the plain
influence-function SEs; ``cluster`` by a coarser, time-invariant column clusters the
influence function (:math:`\\sqrt{\\sum_c S_c^2}/n`, no G/(G-1) factor, as R did);
``iid``/``hetero`` are treated as unit-level (for an influence-function estimator on a
panel the unit-level variance is already heteroskedasticity-robust and the unit is the
independent draw). ``twoway`` raises UnsupportedVcovError.

meta: ``pretrend`` = chi-square Wald test that all dynamic pre-period (e < 0) estimates are
zero, covariance from their influence functions (event times with zero variance, e.g. the
universal base period's e = -1-anticipation, are left out); ``wald_pretest_gt`` = R did's
pre-test on all pre-treatment ATT(g,t). ``tables["vcov_dynamic"]``: covariance matrix of
the dynamic estimates (index and columns = event_time), for HonestDiD.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .. import options as _opt
from ..errors import ConfigError, DesignError
from ..inference.wald import SingularVcovError, wald_test
from ..result import EstimationResult, normal_inference
from ..spec import EstimatorSpec
from .aggte import AggteResult, aggte
from .att_gt import att_gt

OPTIONS: dict = {
    "est_method": "dr",  # dr | dr_imp | ipw | reg (no covariates: all equal the unconditional estimator)
    "base_period": "varying",  # varying | universal
    "anticipation": 0,
    "bstrap": False,  # multiplier-bootstrap SEs instead of analytic ones
    "biters": 999,
    "cband": False,  # sup-t uniform bands for the per-e/g/t estimates (bootstrap)
    "min_e": None,  # dynamic aggregation window (null = unbounded)
    "max_e": None,
    "balance_e": None,
    "allow_unbalanced_panel": False,  # true: keep firms that enter/exit (R did's repeated-cross-section cells)
}


RULES: dict = {
    "est_method": _opt.choice("dr", "dr_imp", "ipw", "reg"),
    "base_period": _opt.choice("varying", "universal"),
    "anticipation": _opt.integer(0),
    "bstrap": _opt.boolean(),
    "biters": _opt.draws(),
    "cband": _opt.boolean(),
    "min_e": _opt.integer(null=True),
    "max_e": _opt.integer(null=True),
    "balance_e": _opt.integer(0, null=True),
    "allow_unbalanced_panel": _opt.boolean(),
}
validate_options = _opt.validator(OPTIONS, RULES, name="cs")


def _options(spec: EstimatorSpec) -> dict:
    _opt.require(validate_options(spec.options), "estimate.cs")
    if spec.control_group not in ("nevertreated", "notyettreated"):
        raise ConfigError(f"estimate.control_group: {spec.control_group!r}; allowed: nevertreated, notyettreated")
    return {**OPTIONS, **(spec.options or {})}


def _rows(agg: AggteResult, alpha: float, level: str, *, n_treated_by, n_obs: int) -> list[dict]:
    rows = []
    if agg.egt is not None:
        crit = agg.crit_val_egt
        stat, p, lo, hi = normal_inference(agg.att_egt, agg.se_egt, alpha, crit=crit)
        for i, v in enumerate(agg.egt):
            r = {
                "aggregation": agg.type,
                "estimate": agg.att_egt[i],
                "std_error": agg.se_egt[i],
                "statistic": stat[i],
                "p_value": p[i],
                "conf_low": lo[i],
                "conf_high": hi[i],
                "n_obs": n_obs,
                "n_treated": n_treated_by(agg.type, int(v)),
            }
            if agg.type == "dynamic":
                r.update(term=f"ATT(e={int(v)})", event_time=int(v))
            elif agg.type == "group":
                r.update(term=f"ATT(g={int(v)})", cohort=int(v))
            else:
                r.update(term=f"ATT(t={int(v)})", time=int(v))
            rows.append(r)
    stat, p, lo, hi = normal_inference([agg.overall_att], [agg.overall_se], alpha)
    rows.append(
        {
            "aggregation": agg.type,
            "term": {"simple": "ATT", "dynamic": "ATT(e>=0)", "group": "ATT", "calendar": "ATT"}[agg.type],
            "estimate": agg.overall_att,
            "std_error": agg.overall_se,
            "statistic": stat[0],
            "p_value": p[0],
            "conf_low": lo[0],
            "conf_high": hi[0],
            "n_obs": n_obs,
            "n_treated": n_treated_by("overall", None),
        }
    )
    return rows


def fit(data: pd.DataFrame, spec: EstimatorSpec) -> EstimationResult:
    """Callaway & Sant'Anna (2021) through the registry; see the module docstring."""
    o = _options(spec)
    clustervar = _clustervar(spec)
    if spec.control_group == "nevertreated":
        g = pd.to_numeric(data[spec.gname], errors="coerce")
        last = pd.to_numeric(data[spec.tname]).max()
        if not ((g == 0) | (g > last + o["anticipation"])).any():
            # R did would silently use the last cohort as the comparison group; the pipeline
            # contract (DESIGN.md §3.5) makes this an explicit design error instead.
            raise DesignError(_NO_NEVER)
    res = att_gt(
        data,
        yname=spec.yname,
        tname=spec.tname,
        idname=spec.idname,
        gname=spec.gname,
        covariates=tuple(spec.covariates),
        control_group=spec.control_group,
        est_method=o["est_method"],
        base_period=o["base_period"],
        anticipation=o["anticipation"],
        clustervar=clustervar,
        allow_unbalanced_panel=o["allow_unbalanced_panel"],
        alp=spec.alpha,
        bstrap=o["bstrap"],
        biters=o["biters"],
        cband=o["cband"],
        seed=spec.seed,
    )
    return _result(res, spec, o)


def _clustervar(spec: EstimatorSpec) -> str | None:
    spec.vcov.require("cs", ("iid", "hetero", "cluster"))
    if spec.vcov.kind == "cluster" and spec.vcov.by[0] != spec.idname:
        return spec.vcov.by[0]
    return None


_NO_NEVER = (
    "cs: control_group 'nevertreated' but the panel has no never-member firms. "
    "Set estimate.control_group: notyettreated (not-yet members as controls) or add "
    "never-member firms to the panel."
)


def fit_from_moments(moments, spec: EstimatorSpec) -> EstimationResult:
    """Unconditional CS from per-cohort sufficient statistics
    (:class:`models.did.cs_moments.Moments`, e.g. computed by DuckDB over the Parquet panel
    in :mod:`pipeline.engine`): the same tidy rows and meta as :func:`fit` on the same panel
    without covariates, to rounding. ``bstrap``/``cband`` raise ConfigError (the multiplier
    bootstrap needs per-unit influence functions: use engine pandas); so do covariates."""
    from .cs_moments import att_gt_from_moments

    o = _options(spec)
    clustervar = _clustervar(spec)
    problems = []
    if spec.covariates:
        problems.append("covariates need unit-level data; the sufficient-statistics path (engine duckdb) is unconditional only")
    if o["bstrap"] or o["cband"]:
        problems.append(
            "bstrap/cband (multiplier bootstrap) need per-unit influence functions, which the sufficient-statistics "
            "path of engine duckdb does not form; set engine: pandas, or bstrap: false and cband: false"
        )
    if problems:
        raise ConfigError("estimate.cs (moments path):", problems=problems)
    if spec.control_group == "nevertreated" and moments.exclude_g is not None:
        raise DesignError(_NO_NEVER)
    if o["allow_unbalanced_panel"] and moments.dropped.get("unbalanced_panel"):
        return None  # the moments hold the balanced sub-panel only: the caller loads the panel
    res = att_gt_from_moments(
        moments,
        control_group=spec.control_group,
        base_period=o["base_period"],
        anticipation=o["anticipation"],
        alp=spec.alpha,
        settings={"yname": spec.yname, "tname": spec.tname, "idname": spec.idname, "gname": spec.gname, "clustervar": clustervar},
    )
    g1 = None
    if moments.cluster_code is not None and moments.cluster_cohort is not None:  # per (cluster, cohort) rows
        treated = np.asarray(moments.cohorts)[np.asarray(moments.cluster_cohort)] != 0
        if moments.cluster_n is not None:
            treated &= np.asarray(moments.cluster_n) > 0
        g1 = int(np.unique(np.asarray(moments.cluster_code)[treated]).size)
    return _result(res, spec, o, treated_clusters=g1)


def _treated_clusters(meta: dict, res, spec: EstimatorSpec, n_treated_units: int, g1: int | None = None) -> None:
    """``n_treated_clusters`` (and the few-clusters warnings) of the *estimation sample*: the
    units left after the balanced-panel drop, not the whole panel. Clustering by firm: one
    cluster per treated firm; by another column: the distinct clusters holding a treated
    unit (``res.cluster`` per unit; on the sufficient-statistics path ``g1`` from the
    moments' per (cluster, cohort) rows). Unknown otherwise (then
    :func:`models.inference.few_clusters.annotate_from_data` counts on the data it is given)."""
    if spec.vcov.kind != "cluster" or not spec.vcov.by:
        return
    from ..inference import few_clusters

    if g1 is not None:
        pass
    elif res.cluster is None and spec.vcov.by[0] == spec.idname:
        g1 = int(n_treated_units)
    elif res.cluster is not None and res.unit_cohort is not None:
        g1 = int(np.unique(np.asarray(res.cluster)[np.asarray(res.unit_cohort) != 0]).size)
    else:
        return
    few_clusters.annotate(meta, n_clusters=meta.get("n_clusters"), n_treated_clusters=g1, by=spec.vcov.by[0], kind=spec.vcov.kind)


def _result(res, spec: EstimatorSpec, o: dict, treated_clusters: int | None = None) -> EstimationResult:
    cohort_sizes = res.cohort_sizes
    post_cells = res.groups <= res.times

    def n_treated_by(kind, v):
        if kind == "group":
            return cohort_sizes.get(v, 0)
        if kind == "dynamic":
            return int(sum(cohort_sizes.get(int(g), 0) for g in np.unique(res.groups[res.event_times == v])))
        if kind == "calendar":
            return int(sum(cohort_sizes.get(int(g), 0) for g in np.unique(res.groups[(res.times == v) & post_cells])))
        return int(sum(cohort_sizes.get(int(g), 0) for g in np.unique(res.groups[post_cells])))

    rows = []
    stat, p, lo, hi = normal_inference(res.att, res.se, spec.alpha, crit=res.crit_val)
    for j in range(res.att.size):
        rows.append(
            {
                "aggregation": "gt",
                "term": "ATT(g,t)",
                "cohort": int(res.groups[j]),
                "time": int(res.times[j]),
                "event_time": int(res.times[j] - res.groups[j]),
                "estimate": res.att[j],
                "std_error": res.se[j],
                "statistic": stat[j],
                "p_value": p[j],
                "conf_low": lo[j],
                "conf_high": hi[j],
                "n_obs": int(2 * res.n_cell[j] if res.obs_cell is None else res.obs_cell[j]),
                "n_treated": int(res.n_treated_cell[j]),
            }
        )
    na_rm = bool(np.isnan(res.att).any())
    inf_e = -math.inf if o["min_e"] is None else o["min_e"]
    sup_e = math.inf if o["max_e"] is None else o["max_e"]
    aggs = {}
    for ty in ("simple", "dynamic", "group", "calendar"):
        kw = dict(min_e=inf_e, max_e=sup_e, balance_e=o["balance_e"]) if ty == "dynamic" else {}
        aggs[ty] = aggte(res, ty, na_rm=na_rm, **kw)
        rows += _rows(aggs[ty], spec.alpha, ty, n_treated_by=n_treated_by, n_obs=res.n_obs)

    dyn = aggs["dynamic"]
    V = dyn.vcov_egt()  # att_gt's clustering
    ev = dyn.egt.astype(int)
    vcov_dynamic = pd.DataFrame(V, index=pd.Index(ev, name="event_time"), columns=pd.Index(ev, name="event_time"))
    lead = (dyn.egt < 0) & np.isfinite(dyn.se_egt)
    pretrend = None
    pretrend_note = None
    if lead.any():
        try:
            pretrend = wald_test(dyn.att_egt[lead], V[np.ix_(lead, lead)])
            pretrend["event_times"] = [int(e) for e in dyn.egt[lead]]
        except SingularVcovError as exc:
            pretrend_note = str(exc)
    else:
        pretrend_note = "no pre-treatment event times to test"

    n_treated_units = int(sum(v for g, v in cohort_sizes.items() if g != 0))
    meta = {
        "n_obs": int(res.n_obs),
        "n_units": int(res.n),
        "n_treated_units": n_treated_units,
        "n_never_treated_units": int(cohort_sizes.get(0, 0)),
        "n_clusters": int(res.n_clusters),
        "vcov": spec.vcov.label() + ("" if spec.vcov.kind == "cluster" else " (unit-level influence function)"),
        "control_group": spec.control_group,
        "dropped": dict(res.dropped),
        "est_method": res.settings["est_method"],
        "base_period": o["base_period"],
        "anticipation": o["anticipation"],
        "se_method": "multiplier bootstrap (Rademacher)" if o["bstrap"] else "analytic influence function, sqrt(sum psi^2)/n",
        "cband": o["cband"],
        "crit_val_gt": float(res.crit_val),
        "crit_val_dynamic": float(dyn.crit_val_egt),
        "pretrend": pretrend,
        "pretrend_note": pretrend_note,
        "wald_pretest_gt": res.wald_pretest,
        "covariates_time_varying": res.settings["covariates_time_varying"],
        "cohort_sizes": {str(k): v for k, v in cohort_sizes.items()},
        "notes": list(res.notes),
        "na_cells_dropped_in_aggregation": int(np.isnan(res.att).sum()),
    }
    if res.dropped_units:  # whole firms dropped (balanced panel: firms with gaps, entry or exit)
        meta["dropped_units"] = {k: dict(v) for k, v in sorted(res.dropped_units.items())}
    _treated_clusters(meta, res, spec, n_treated_units, treated_clusters)
    out = EstimationResult(estimator="cs", outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta, tables={"vcov_dynamic": vcov_dynamic})
    psi = aggs["simple"].inf_func_overall
    if psi is not None and res.unit_ids is not None:  # kept in memory for joint inference (Romano-Wolf)
        out.influence = {"ids": np.asarray(res.unit_ids), "psi": np.asarray(psi, dtype=float), "n": int(res.n)}
    if out.influence is not None:  # the ATT(g,t) basis, for further aggregations (models.value_for_money totals)
        out.influence["att_gt"] = res
    return out
