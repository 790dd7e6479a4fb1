"""Triple differences (DDD) with staggered adoption, the doubly robust estimator of
Ortiz-Villavicencio & Sant'Anna (2025, "Better Understanding Triple Differences Estimators",
arXiv:2505.09942); registry key ``ddd``.

Design: a unit's treatment-enabling group is its cohort :math:`S = g` (``first_treat``; 0 =
never) and the partition :math:`Q \\in \\{0, 1\\}` is a time-invariant 0/1 column (option
``partition``, e.g. 1 = in the sector a call targets). Only units with :math:`S = g, Q = 1` are
treated. For each cell (g,t), on the units of cohort g and the never-treated, with subgroups
4 = (S=g, Q=1), 3 = (S=g, Q=0), 2 = (never, Q=1), 1 = (never, Q=0), the estimator is
(their eq. 3.5 / 4.8)

.. math:: \\widehat{ATT}(g,t) = \\widehat{DiD}_{4v3} + \\widehat{DiD}_{4v2} - \\widehat{DiD}_{4v1}

where each :math:`\\widehat{DiD}_{4vj}` is a 2x2 DiD of :math:`Y_t - Y_{b}` on the units of
subgroups 4 and j (:mod:`models.did.drdid`: ``dr`` = Sant'Anna & Zhao's ``drdid_panel``,
``reg`` = ``reg_did_panel``, ``ipw`` = ``std_ipw_did_panel``; propensity score and outcome
regression fitted within each pair, covariates from ``spec.covariates`` at the base period).
Its influence function on all n units is
:math:`\\psi = (n/n_{43})\\psi_{4v3} + (n/n_{42})\\psi_{4v2} - (n/n_{41})\\psi_{4v1}` (moderndid
``compute_all_did`` and ``ddd_mp``). Base period b: ``universal`` (default, as moderndid and
triplediff: g-1 for every t, the cell (g, g-1) is 0) or ``varying`` (t-1 before treatment).

Aggregation (simple, dynamic, group, calendar) is :func:`models.did.aggte.aggte` over the stored
influence functions with cohort shares over all units. Its simple, dynamic and calendar SEs
include the term for the estimated cohort weights (``wif``), as R did's ``aggte`` and the original
R triplediff 0.2.4 (``R/compute_aggregations.R``: ``simple.wif``, ``wif.e``, ``wif.t``); moderndid
0.2.0's ``agg_ddd`` leaves that term out of those three (it keeps it for the group overall), so
there our SEs are larger than moderndid's; the tests check the influence functions against
moderndid and the weight term by construction (aggte's, tested against R did).

Control group (``estimate.control_group``): ``nevertreated`` (cohort g against the never-treated)
or ``notyettreated``: every cohort not yet treated by max(t, b) (and the never-treated) is a
comparison; a cell with several comparison cohorts combines their DDDs with the optimal GMM
weights :math:`\\hat\\Omega^{-1}1/(1'\\hat\\Omega^{-1}1)` (their eq. 4.11-4.12; :math:`\\hat\\Omega` the
covariance of the cell-scaled influence functions, as moderndid) and its influence function is
the same combination. Its SE is :math:`\\sqrt{\\sum\\psi^2}/n` of that combined influence function
(the one the aggregations use); moderndid reports :math:`\\sqrt{1/(n 1'\\hat\\Omega^{-1}1)}` for the cell,
which differs by the factor :math:`\\sqrt{n(n_{cell}-1)}/n_{cell}` (tests/test_ddd.py checks it).

**Partial** (stated in the README): the never-treated must hold eligible and ineligible firms
(also with ``notyettreated``); balanced panels only (firms not observed in every year are dropped
and counted in ``meta["dropped"]["unbalanced_panel"]``, as cs and moderndid do); analytic SEs only,
by firm; firms treated from the first panel year are dropped (no pre-period) and counted, as are
firms with a missing covariate (``missing_covariates``); no ``anticipation`` option.

``meta["cells_2x2x2"]``: per cohort, the number of units in each of the four subgroups (the
never-treated two shared); an empty subgroup is a DesignError naming cohort and cell.
Checked against moderndid 0.2.0 ``ddd`` on its own DGP (``gen_ddd_2periods``,
``gen_ddd_mult_periods``), tests/test_ddd.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from .. import options as _opt
from ..errors import ConfigError, DesignError, first_keys
from ..result import EstimationResult, normal_inference
from .aggte import aggte
from .att_gt import AttGtResult
from .drdid import drdid_panel, reg_did_panel, std_ipw_did_panel

NAME = "ddd"
OPTIONS: dict = {"partition": None, "est_method": "dr", "base_period": "universal"}
RULES: dict = {
    "partition": _opt.custom(lambda v: isinstance(v, str) and bool(_opt.SAFE_NAME.match(v)),
                             "give the 0/1 eligibility column (1 = in the partition the call targets, e.g. the "
                             "targeted sector)", bad=["sector"], null=True),
    "est_method": _opt.choice("dr", "reg", "ipw"),
    "base_period": _opt.choice("universal", "varying"),
}
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)
# ``partition`` has no default: pipeline.option_columns reports it missing when ddd runs (exit 5)
REQUIRED_OPTIONS = {"partition": "give the 0/1 eligibility column, e.g. one that is 1 for firms in the sector the call targets"}
_DID = {"dr": drdid_panel, "reg": reg_did_panel, "ipw": std_ipw_did_panel}
SUBGROUPS = {4: "treated cohort, eligible", 3: "treated cohort, ineligible", 2: "never treated, eligible",
             1: "never treated, ineligible"}
_EPS10 = np.sqrt(np.finfo(float).eps) * 10


def _wide(data, yname, tname, idname, gname, pname, covariates):
    d = data[[idname, tname, gname, pname, yname, *covariates]]
    bad_q = d.loc[~d[pname].isin([0, 1, True, False]), idname]
    if len(bad_q):
        raise DesignError(f"{NAME}: partition column {pname!r} must be 0/1; {bad_q.nunique()} firms have other or "
                          f"missing values (first: {first_keys(bad_q.unique())}). Give a 0/1 eligibility column.")
    if d[pname].groupby(d[idname]).nunique().gt(1).any():
        v = d[pname].groupby(d[idname]).nunique()
        raise DesignError(f"{NAME}: partition column {pname!r} varies within {int(v.gt(1).sum())} firms "
                          f"(first: {first_keys(v.index[v.gt(1)])}); the partition must be time-invariant.")
    d = d.loc[np.isfinite(pd.to_numeric(d[yname], errors="coerce"))]
    n_nocov = 0
    if covariates:  # firms with a missing covariate in some year are dropped and counted
        bad = ~np.isfinite(d[list(covariates)].apply(pd.to_numeric, errors="coerce").to_numpy(float)).all(axis=1)
        gone = d.loc[bad, idname].unique()
        n_nocov = len(gone)
        d = d.loc[~d[idname].isin(gone)]
    Y = d.pivot(index=idname, columns=tname, values=yname).sort_index()
    tlist = np.sort(Y.columns.to_numpy())
    gaps = Y.index[Y.isna().any(axis=1)]
    if len(gaps) == len(Y):
        raise DesignError(f"{NAME}: a balanced panel is needed and none of the {len(Y)} firms has a finite {yname!r} "
                          f"in every year {tlist[0]}-{tlist[-1]} (first: {first_keys(gaps)}).")
    Y = Y.drop(index=gaps)  # balanced panel: firms with gaps, entry or exit are dropped (as cs, moderndid)
    d = d.loc[d[idname].isin(Y.index)]
    first = d.sort_values([idname, tname]).groupby(idname).first().reindex(Y.index)
    g = pd.to_numeric(first[gname]).to_numpy(dtype=float)
    g = np.where(~np.isfinite(g) | (g > tlist[-1]), 0.0, g)
    q = first[pname].astype(int).to_numpy()
    X = {t: np.column_stack([np.ones(len(Y))] + [d.loc[d[tname] == t].set_index(idname)[c].reindex(Y.index).to_numpy(float)
                                                  for c in covariates]) for t in tlist}
    return Y.to_numpy(float), tlist, g, q, X, Y.index.to_numpy(), {"unbalanced_panel": len(gaps), "missing_covariates": n_nocov}


def _cell_counts(g, q, glist) -> dict:
    out = {}
    for c in glist:
        s = {4: (g == c) & (q == 1), 3: (g == c) & (q == 0), 2: (g == 0) & (q == 1), 1: (g == 0) & (q == 0)}
        out[int(c)] = {k: int(v.sum()) for k, v in s.items()}
    return out


def ddd_gt(data: pd.DataFrame, *, yname: str, tname: str, idname: str, gname: str, pname: str,
           covariates: tuple[str, ...] = (), est_method: str = "dr", base_period: str = "universal",
           control_group: str = "nevertreated", alp: float = 0.05) -> tuple[AttGtResult, dict]:
    """DDD ATT(g,t) and their influence functions, as an AttGtResult for aggte; and the
    2x2x2 cell counts per cohort. See the module docstring."""
    Y, tlist, g, q, X, ids, gone = _wide(data, yname, tname, idname, gname, pname, covariates)
    n = Y.shape[0]
    glist = np.sort(np.unique(g[(g > 0) & (g > tlist[0])]))
    early = np.unique(g[(g > 0) & (g <= tlist[0])])
    if early.size:  # treated from the first year: no pre-period; not controls either
        keep = ~np.isin(g, early)
        Y, g, q, ids = Y[keep], g[keep], q[keep], ids[keep]
        X = {t: x[keep] for t, x in X.items()}
        n = Y.shape[0]
    counts = _cell_counts(g, q, glist)
    empty = [f"cohort {c}: {SUBGROUPS[k]}" for c, cc in counts.items() for k, v in cc.items() if v == 0]
    if empty:
        raise DesignError(f"{NAME}: every cohort needs units in all four cells of treated/never x eligible/ineligible "
                          f"(partition {pname!r}); {len(empty)} empty (first: {first_keys(empty)}). Check the partition "
                          "column, or drop the cohorts without ineligible or eligible members.")
    if not glist.size:
        raise DesignError(f"{NAME}: no treated cohort with a pre-treatment year")
    tfac = 0 if base_period == "universal" else 1
    fn = _DID[est_method]

    def pair(y1, y0, Xb, treat, ctrl):
        """DDD of cohort units ``treat`` against comparison units ``ctrl``: (att, psi on all n)."""
        sub = np.where(treat, np.where(q == 1, 4, 3), np.where(q == 1, 2, 1))
        a, psi = 0.0, np.zeros(n)
        for j, sign in ((3, 1.0), (2, 1.0), (1, -1.0)):
            m = (treat | ctrl) & ((sub == 4) | (sub == j))
            r = fn(y1[m], y0[m], (sub[m] == 4).astype(float), Xb[m])
            a += sign * r.att
            psi[m] += sign * (n / m.sum()) * r.inf_func
        return a, psi

    cells, att, psi_cols, bases, n_cell, n_tr, n_comp = [], [], [], [], [], [], []
    for c in glist:
        pre = tlist[tlist < c]
        for ti in range(tfac, tlist.size):
            t = tlist[ti]
            b = pre[-1] if (base_period == "universal" or t >= c) else tlist[ti - 1]
            treat = g == c
            ctrls = [0.0] if control_group == "nevertreated" else \
                [v for v in np.unique(g) if v != c and (v == 0 or v > max(t, b))]
            in_cell = treat | np.isin(g, ctrls)
            psi = np.zeros(n)
            a = 0.0
            if t != b:
                y1, y0 = Y[:, ti], Y[:, np.searchsorted(tlist, b)]
                fits = [pair(y1, y0, X[b], treat, g == v) for v in ctrls]
                if len(fits) == 1:
                    a, psi = fits[0]
                else:  # several comparison cohorts: optimal GMM weights (their eq. 4.11-4.12)
                    A = np.array([f[0] for f in fits])
                    P = np.column_stack([f[1] for f in fits])
                    cellwise = P[in_cell] * (in_cell.sum() / n)  # the cell's own scaling, as moderndid's Omega
                    Om = np.atleast_2d(np.cov(cellwise, rowvar=False))
                    try:
                        Oi = np.linalg.inv(Om)
                    except np.linalg.LinAlgError:
                        Oi = np.linalg.pinv(Om)
                    w = Oi.sum(axis=1) / Oi.sum()
                    a, psi = float(w @ A), P @ w
            cells.append((c, t))
            att.append(a)
            psi_cols.append(psi)
            bases.append(b)
            n_cell.append(int(in_cell.sum()))
            n_tr.append(counts[int(c)][4])
            n_comp.append(len(ctrls))
    Psi = np.column_stack(psi_cols)
    att = np.asarray(att)
    se = np.sqrt((Psi**2).sum(axis=0)) / n
    se[se <= _EPS10] = np.nan
    res = AttGtResult(
        groups=np.array([c for c, _ in cells], dtype=float), times=np.array([t for _, t in cells], dtype=float),
        att=att, se=se, inf_func=Psi, base_periods=np.asarray(bases), n_cell=np.asarray(n_cell),
        n_treated_cell=np.asarray(n_tr), unit_ids=ids, unit_cohort=g, cluster=None, n=n, tlist=tlist, glist=glist,
        crit_val=float(stats.norm.ppf(1 - alp / 2)), wald_pretest=None, n_obs=int(n * tlist.size),
        dropped={k: int(v) for k, v in {**gone, "treated_in_first_year": int((~keep).sum()) if early.size else 0}.items()
                 if v},
        settings={"bstrap": False, "cband": False, "biters": 0, "alp": alp, "seed": 0, "est_method": est_method,
                  "n_comparison_cohorts": np.asarray(n_comp)},
    )
    return res, counts


def _options(spec) -> dict:
    _opt.require(validate_options(spec.options), "estimate.ddd")
    spec.vcov.require(NAME, ("iid", "hetero", "cluster"))  # before the partition: an unsupported vcov is named first
    o = {**OPTIONS, **(spec.options or {})}
    if o["partition"] is None:  # null is the default (no column is a sensible default); check says so at load
        raise ConfigError(f"estimate.ddd.partition: missing; {REQUIRED_OPTIONS['partition']}")
    if spec.control_group not in ("nevertreated", "notyettreated"):
        raise ConfigError(f"estimate.control_group: {spec.control_group!r}; allowed: nevertreated, notyettreated")
    if spec.vcov.kind == "cluster" and spec.vcov.by and spec.vcov.by[0] != spec.idname:
        raise ConfigError(f"estimate.vcov: ddd clusters by the firm only (got {spec.vcov.by[0]!r})")
    return o


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    """Triple differences through the registry; see the module docstring."""
    o = _options(spec)
    res, counts = ddd_gt(data, yname=spec.yname, tname=spec.tname, idname=spec.idname, gname=spec.gname,
                         pname=o["partition"], covariates=tuple(spec.covariates), est_method=o["est_method"],
                         base_period=o["base_period"], control_group=spec.control_group, alp=spec.alpha)
    rows = []
    stat, p, lo, hi = normal_inference(res.att, res.se, spec.alpha)
    for j in range(res.att.size):
        rows.append({"aggregation": "gt", "term": "ATT(g,t)", "cohort": int(res.groups[j]), "time": int(res.times[j]),
                     "event_time": int(res.times[j] - res.groups[j]), "estimate": res.att[j], "std_error": res.se[j],
                     "statistic": stat[j], "p_value": p[j], "conf_low": lo[j], "conf_high": hi[j],
                     "n_obs": int(2 * res.n_cell[j]), "n_treated": int(res.n_treated_cell[j])})
    n_el = {c: v[4] for c, v in counts.items()}
    post = res.groups <= res.times
    for ty in ("simple", "dynamic", "group", "calendar"):
        agg = aggte(res, ty)
        if agg.egt is not None:
            s, pv, l, h = normal_inference(agg.att_egt, agg.se_egt, spec.alpha)
            for i, v in enumerate(agg.egt):
                v = int(v)
                r = {"aggregation": ty, "estimate": agg.att_egt[i], "std_error": agg.se_egt[i], "statistic": s[i],
                     "p_value": pv[i], "conf_low": l[i], "conf_high": h[i], "n_obs": res.n_obs}
                if ty == "dynamic":
                    gs = np.unique(res.groups[res.times - res.groups == v])
                    r.update(term=f"ATT(e={v})", event_time=v)
                elif ty == "group":
                    gs = [v]
                    r.update(term=f"ATT(g={v})", cohort=v)
                else:
                    gs = np.unique(res.groups[(res.times == v) & post])
                    r.update(term=f"ATT(t={v})", time=v)
                r["n_treated"] = int(sum(n_el[int(c)] for c in gs))
                rows.append(r)
        s, pv, l, h = normal_inference([agg.overall_att], [agg.overall_se], spec.alpha)
        rows.append({"aggregation": ty, "term": "ATT(e>=0)" if ty == "dynamic" else "ATT", "estimate": agg.overall_att,
                     "std_error": agg.overall_se, "statistic": s[0], "p_value": pv[0], "conf_low": l[0],
                     "conf_high": h[0], "n_obs": res.n_obs, "n_treated": int(sum(n_el.values()))})
    meta = {
        "n_obs": int(res.n_obs), "n_units": int(res.n), "n_treated_units": int(sum(n_el.values())),
        "n_clusters": int(res.n),
        "vcov": spec.vcov.label() + ("" if spec.vcov.kind == "cluster" else " (unit-level influence function)"),
        "control_group": spec.control_group, "dropped": dict(res.dropped), "est_method": o["est_method"],
        "gmm_cells": int((res.settings["n_comparison_cohorts"] > 1).sum()),
        "base_period": o["base_period"], "partition": o["partition"],
        "se_method": "analytic influence function, sqrt(sum psi^2)/n",
        "cells_2x2x2": {str(c): {SUBGROUPS[k]: v for k, v in cc.items()} for c, cc in counts.items()},
    }
    if spec.vcov.kind == "cluster":  # clusters = firms; the treated ones are the eligible members
        from ..inference import few_clusters

        few_clusters.annotate(meta, n_clusters=meta["n_clusters"], n_treated_clusters=meta["n_treated_units"],
                              by=spec.idname, kind=spec.vcov.kind)
    return EstimationResult(estimator=NAME, outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta)
