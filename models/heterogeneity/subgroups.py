"""Callaway–Sant'Anna effects by subgroup, with a joint test of equality.

Registry key ``heterogeneity``. For each dimension in ``by`` (``size_class``, ``sector``,
``region``, ``cluster_id``, ``cluster_strength``) the panel is split by a **pre-determined** characteristic:

* ``size_class``: SME (< ``sme_threshold`` employees) vs large, from the firm's employment in
  its first panel year (before any member joined: always-members are dropped upstream);
* ``sector``, ``region``: the firm's value in its first panel year;
* ``cluster_id``: the initiative a member joined; every initiative shares the never-member
  controls;
* ``cluster_strength``: the strength of the firm's region x sector at baseline (stars,
  strong-cluster flag or LQ band from the cluster map, :mod:`models.cluster_map`; members
  read in the year before joining, non-members in the first panel year): is the effect
  larger in strong clusters? Controls are the non-members in cells of the same strength.

In each subgroup k, the simple ATT θ_k is estimated by ``att_gt`` + ``aggte(type="simple")``
(Callaway & Sant'Anna 2021) on the subgroup's members and its controls (controls of the same
size class / sector / region; all controls for ``cluster_id``). Equality H0: θ_1 = … = θ_K is
tested with the Wald statistic W = (Rθ)'(RVR')⁻¹(Rθ) ~ χ²(K−1), R the successive
differences. V is built from the per-unit influence functions: for estimates a and b on unit
sets with sizes n_a, n_b, Cov(θ_a, θ_b) = Σ_i ψ_ai ψ_bi / (n_a n_b) over the units they share,
so the shared controls of the ``cluster_id`` split are accounted for exactly, and subgroups
with disjoint samples are independent. Subgroups with fewer than ``min_treated`` member firms
are not estimated (counted in meta).

Tidy rows: ``static`` rows with ``term = "<dimension>:<level>"``
(the subgroup ATT), and ``term = "<dimension>:equality"`` carrying the Wald test (statistic,
p_value) with a null estimate.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from .. import options as _opt
from ..errors import ConfigError, DesignError
from ..result import EstimationResult, normal_inference
from ..spec import EstimatorSpec

OPTIONS: dict[str, Any] = {
    "by": ["size_class", "sector", "region", "cluster_id", "cluster_strength"],
    "sme_threshold": 250,
    "min_treated": 10,
    "est_method": "dr",
}
DIMENSIONS = ("size_class", "sector", "region", "cluster_id", "cluster_strength")
RULES: dict = {
    "by": _opt.names(),
    "sme_threshold": _opt.number(0, lo_open=True),
    "min_treated": _opt.integer(1),
    "est_method": _opt.choice("dr", "dr_imp", "ipw", "reg"),
}
validate_options = _opt.validator(OPTIONS, RULES, name="heterogeneity")
COLUMNS = ("employment", "sector", "region", "cluster_id", "cluster_strength")  # panel columns read besides the spec's


def _first_values(data: pd.DataFrame, spec: EstimatorSpec, col: str) -> pd.Series:
    first = data.sort_values([spec.idname, spec.tname]).groupby(spec.idname, sort=True)[col].first()
    return first


def _labels(data: pd.DataFrame, spec: EstimatorSpec, dim: str, sme_threshold: float) -> pd.Series:
    if dim == "size_class":
        if "employment" not in data:
            raise ConfigError("heterogeneity by size_class needs the employment column (map columns.employment)")
        emp = _first_values(data, spec, "employment")
        return pd.Series(np.where(emp < sme_threshold, "SME", "large"), index=emp.index)
    if dim not in data:
        raise ConfigError(f"heterogeneity by {dim}: the panel has no column {dim!r}")
    return _first_values(data, spec, dim).astype("string")


def _fit_group(data: pd.DataFrame, spec: EstimatorSpec, est_method: str):
    from ..did.aggte import aggte
    from ..did.att_gt import att_gt

    res = att_gt(data, yname=spec.yname, tname=spec.tname, idname=spec.idname, gname=spec.gname,
                 covariates=tuple(spec.covariates), control_group=spec.control_group, est_method=est_method)
    agg = aggte(res, type="simple")
    psi = np.asarray(agg.inf_func_overall, dtype=float)
    return agg.overall_att, agg.overall_se, res.unit_ids, psi, res


def fit(data: pd.DataFrame, spec: EstimatorSpec) -> EstimationResult:
    _opt.require(validate_options(spec.options), "estimate.heterogeneity")
    o = {**OPTIONS, **(spec.options or {})}
    # any column of the panel is a dimension (a firm file's own columns pass through ingest)
    bad = [d for d in o["by"] if d not in DIMENSIONS and d not in data.columns]
    if bad:
        raise ConfigError(f"estimate.heterogeneity.by: unknown dimension(s) {bad}; allowed: {', '.join(DIMENSIONS)} "
                          "or any column of the processed panel (a column of the firm file under its own name)")
    spec.vcov.require("heterogeneity", ("iid", "hetero", "cluster"))
    if spec.vcov.kind == "cluster" and spec.vcov.by[0] != spec.idname:
        raise ConfigError("heterogeneity: subgroup equality tests cluster at the firm (vcov cluster by firm_id)")
    g_unit = _first_values(data, spec, spec.gname)
    treated_units = g_unit.index[g_unit > 0]
    rows, skipped, tests = [], {}, {}
    for dim in o["by"]:
        if dim == "cluster_strength" and (dim not in data or data[dim].isna().all()):
            skipped[dim] = "no cluster map (cluster_strength missing: build_groups found no sector, region or size column)"
            continue
        labels = _labels(data, spec, dim, o["sme_threshold"])
        if dim == "cluster_id":
            member_label = _first_values(data[data[spec.gname] > 0], spec, "cluster_id").astype("string")
            levels = sorted(member_label.dropna().unique())
        else:
            levels = sorted(labels.loc[treated_units].dropna().unique())
        fits = []
        for level in levels:
            if dim == "cluster_id":
                members = member_label.index[member_label == level]
                units = members.union(g_unit.index[g_unit == 0])
            else:
                units = labels.index[labels == level]
            n_tr = int(np.isin(units, treated_units).sum())
            if n_tr < o["min_treated"]:
                skipped[f"{dim}:{level}"] = f"{n_tr} member firms < min_treated {o['min_treated']}"
                continue
            sub = data[data[spec.idname].isin(units)]
            try:
                att, se, ids, psi, res = _fit_group(sub, spec, o["est_method"])
            except DesignError as exc:
                skipped[f"{dim}:{level}"] = str(exc)
                continue
            fits.append((level, att, se, ids, psi, n_tr, len(sub)))
        for level, att, se, _, _, n_tr, n_obs in fits:
            rows.append({"aggregation": "static", "term": f"{dim}:{level}", "estimate": att, "std_error": se,
                         "n_obs": n_obs, "n_treated": n_tr})
        if len(fits) >= 2:
            theta = np.array([f[1] for f in fits])
            V = _joint_vcov([(f[3], f[4]) for f in fits])
            R = np.eye(len(fits))[1:] - np.eye(len(fits))[:-1]
            d = R @ theta
            W = float(d @ np.linalg.solve(R @ V @ R.T, d))
            df = len(fits) - 1
            p = float(stats.chi2.sf(W, df))
            tests[dim] = {"statistic": W, "df": df, "p_value": p, "levels": [str(f[0]) for f in fits]}
            rows.append({"aggregation": "static", "term": f"{dim}:equality", "statistic": W, "p_value": p,
                         "n_treated": int(sum(f[5] for f in fits))})
    if not rows:
        why = "; ".join(f"{k}: {v}" for k, v in sorted(skipped.items()) if ":" not in k)
        raise DesignError("heterogeneity: no subgroup has enough member firms to be estimated" + (f" ({why})" if why else ""))
    tidy = pd.DataFrame(rows)
    est = tidy["estimate"].to_numpy(float) if "estimate" in tidy else np.full(len(tidy), np.nan)
    se = tidy["std_error"].to_numpy(float) if "std_error" in tidy else np.full(len(tidy), np.nan)
    stat, pv, lo, hi = normal_inference(est, se, spec.alpha)
    is_test = tidy["term"].str.endswith(":equality").to_numpy()
    tidy["statistic"] = np.where(is_test, tidy.get("statistic"), stat)
    tidy["p_value"] = np.where(is_test, tidy.get("p_value"), pv)
    tidy["conf_low"], tidy["conf_high"] = lo, hi
    n_units = int(data[spec.idname].nunique())
    meta = {
        "n_obs": int(len(data)),
        "n_units": n_units,
        "n_treated_units": int(len(treated_units)),
        "n_clusters": n_units,
        "vcov": spec.vcov.label(),
        "control_group": spec.control_group,
        "dropped": {},
        "equality_tests": tests,
        "skipped_subgroups": skipped,
        "method": "Callaway-Sant'Anna simple ATT per subgroup; Wald test of equality with influence-function covariance",
        "sme_threshold": o["sme_threshold"],
    }
    return EstimationResult("heterogeneity", spec.yname, tidy, meta)


def _joint_vcov(parts: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """Covariance of K estimates from their influence functions on (possibly overlapping)
    unit sets: V_ab = Σ_{i in a∩b} ψ_ai ψ_bi / (n_a n_b)."""
    K = len(parts)
    V = np.zeros((K, K))
    series = [pd.Series(psi, index=pd.Index(ids)) for ids, psi in parts]
    for a in range(K):
        for b in range(a, K):
            common = series[a].index.intersection(series[b].index)
            v = float(series[a].loc[common].to_numpy() @ series[b].loc[common].to_numpy()) / (len(series[a]) * len(series[b]))
            V[a, b] = V[b, a] = v
    return V
