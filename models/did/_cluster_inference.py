"""Few-clusters inference for the TWFE regressions (``twfe``, ``event_study``): the vcov
kinds ``wild`` and ``crv3`` of :mod:`models.vcov`, and the few-clusters warnings.

Design. The two-way FE regression ``y_it = a_i + l_t + x_it'b + e_it`` is written as
``y~ = X~ b + e~`` where ``~`` is the within-unit transformation and X holds the
regressors, the covariates and T-1 period dummies (the period effects as explicit
regressors). By Frisch-Waugh-Lovell this gives exactly the TWFE coefficients and residuals.

* ``wild``: wild cluster restricted bootstrap (WCR11) of each coefficient of interest,
  :func:`models.inference.wild_bootstrap.wild_cluster_bootstrap_many` on that design
  (boottest/fwildclusterboot also project the fixed effects out first). p-value: share of
  bootstrap t's with ``|t*| > |t|`` (symmetric). Confidence interval: **test inversion**
  (the r0 whose WCR p-value exceeds alpha, every r0 with the same weights; boottest's and
  fwildclusterboot's default), not the percentile-t interval. ``std_error`` and
  ``statistic`` stay fixest's CRV1 ones (the bootstrap p-value and interval are invariant
  to the CRV1 small-sample factor). One seed (``spec.seed``) for all coefficients: every
  coefficient sees the same weight draws.
* ``crv3``: leave-one-cluster-out jackknife V3 = (G-1)/G sum_g (b_(g) - b)(b_(g) - b)'
  (MacKinnon, Nielsen & Webb 2023, JAE), with t(G-1) p-values and intervals (their
  recommendation). Exact refits with the fixed effects require the units to be nested in
  the clusters (then dropping a cluster drops whole units and the within-unit transform
  of the other rows is unchanged; summclust's ``absorb()`` rule); the period effects are
  re-estimated with each leave-out because they are explicit dummies. Not nested ->
  DesignError.

Both materialise the N x (k + T - 1) design and are meant for few clusters: more than
:data:`MAX_CLUSTERS` clusters is a ConfigError (with that many, CRV1 is reliable).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from models import linalg
from models.errors import ConfigError, DesignError
from models.inference import few_clusters
from models.inference.wild_bootstrap import crv3_vcov, wild_cluster_bootstrap_many

#: above this many clusters the few-cluster kinds are refused (memory O(G x 4096) per
#: bootstrap block, O(G k^2) for CRV3; and CRV1 is reliable there)
MAX_CLUSTERS = 5000
#: largest design (rows x columns) materialised, 2^28 doubles = 2 GiB
MAX_CELLS = 2**28


def cluster_meta(panel, spec) -> dict:
    """n_treated_clusters + few-clusters warnings for a regression panel (internal names
    ``_g``, ``_cl0``/``_cl1``), as keyword arguments for :func:`few_clusters.annotate`."""
    if not panel.cluster_cols:
        return {}
    treated = panel.df["_g"].to_numpy() > 0
    counts = [few_clusters.cluster_counts(panel.df[c].to_numpy(), treated) for c in panel.cluster_cols]
    j = int(np.argmin([g for g, _ in counts]))
    return {"n_clusters": counts[j][0], "n_treated_clusters": counts[j][1], "by": spec.vcov.by[j], "kind": spec.vcov.kind}


def annotate(meta: dict, panel, spec) -> dict:
    kw = cluster_meta(panel, spec)
    return few_clusters.annotate(meta, **kw) if kw else meta


def inference_label(spec, extra: dict) -> str:
    """``meta["inference"]``: 'normal' for the pyfixest kinds, else the few-cluster method."""
    d = extra.get("vcov_detail")
    if spec.vcov.kind == "wild" and d:
        return f"wild cluster bootstrap (WCR11, {d['weights']}, B={d['draws']}); CI by test inversion"
    if spec.vcov.kind == "crv3" and d:
        return f"CRV3 jackknife, {d['reference_distribution']}"
    return "normal"


def _design(panel, xcols: list[str]):
    """Within-unit transformed y and [xcols, period dummies 1..T-1]."""
    df = panel.df
    unit = df["_unit"].to_numpy()
    time = df["_time"].to_numpy()
    T = int(time.max()) + 1
    N = len(df)
    k = len(xcols) + T - 1
    if N * (k + 1) > MAX_CELLS:
        raise ConfigError(
            f"vcov kinds 'wild'/'crv3' build the {N:,} x {k} design in memory ({N * (k + 1) * 8 / 2**30:.1f} GiB > "
            f"{MAX_CELLS * 8 / 2**30:.0f} GiB); use kind 'cluster' (CRV1) on a sample this large"
        )
    Z = np.empty((N, k + 1))
    Z[:, 0] = df["_y"].to_numpy(dtype=float)
    Z[:, 1 : 1 + len(xcols)] = df[xcols].to_numpy(dtype=float)
    Z[:, 1 + len(xcols) :] = (time[:, None] == np.arange(1, T)[None, :]).astype(float)
    n_u = np.bincount(unit).astype(float)
    means = np.stack([np.bincount(unit, weights=Z[:, j], minlength=n_u.size) for j in range(k + 1)], axis=1) / n_u[:, None]
    Z -= means[unit]
    names = list(xcols) + [f"period_{t}" for t in range(1, T)]
    return Z[:, 0], Z[:, 1:], names


def few_cluster_inference(panel, spec, xcols: list[str], m: int, estimator: str, labels: list[str] | None = None) -> dict:
    """Inference for the first ``m`` of ``xcols`` (regressors, then covariates) under
    ``spec.vcov`` of kind ``wild`` or ``crv3``.

    Returns arrays (length m) ``estimate, p_value, conf_low, conf_high`` and, for crv3,
    ``std_error, statistic`` and ``vcov`` (m x m); ``meta``: what was done. ``labels``:
    display names of the first entries of ``xcols`` (for error messages)."""
    vc = spec.vcov
    if getattr(panel, "fe_cols", None):
        raise ConfigError(
            f"{estimator}: vcov '{vc.label()}' with fixed effects beyond firm and year ({panel.fe_terms}) is not "
            "implemented (the bootstrap design here absorbs unit and period effects only); use "
            f"estimate.vcov: {{kind: cluster, by: [{vc.by[0]}]}} or estimate.fixed_effects: [firm_id, year]"
        )
    cl = panel.df[panel.cluster_cols[0]].to_numpy()
    G = int(pd.unique(cl).size)
    if G > MAX_CLUSTERS:
        raise ConfigError(
            f"{estimator}: vcov '{vc.label()}' has {G:,} clusters (> {MAX_CLUSTERS}): the wild cluster bootstrap "
            "and CRV3 are few-clusters methods; with this many clusters CRV1 is reliable: set "
            f"estimate.vcov: {{kind: cluster, by: [{vc.by[0]}]}}"
        )
    if G < 2:
        raise DesignError(f"{estimator}: vcov '{vc.label()}' needs at least 2 clusters, the sample has {G}")
    y, X, names = _design(panel, xcols)
    for j, lab in enumerate(labels or []):
        names[j] = lab
    nested = bool((panel.df.groupby("_unit")[panel.cluster_cols[0]].nunique() <= 1).all())
    alpha = spec.alpha
    if vc.kind == "wild":
        k_fe = 0 if nested else int(panel.df["_unit"].nunique()) - 1
        res = wild_cluster_bootstrap_many(
            X, y, cl, list(range(m)), B=vc.draws, weights=vc.weights, impose_null=True, seed=spec.seed,
            ci_level=1 - alpha, k_fe=k_fe,
        )
        B = res[0]["B"]
        enumerated = res[0]["enumerated"]
        return {
            "estimate": np.array([r["estimate"] for r in res]),
            "p_value": np.array([r["p_value"] for r in res]),
            "conf_low": np.array([r["ci"][0] for r in res]),
            "conf_high": np.array([r["ci"][1] for r in res]),
            "meta": {
                "method": "wild cluster restricted bootstrap (WCR11)",
                "weights": vc.weights,
                "draws": int(B),
                "enumerated": bool(enumerated),
                "seed": int(spec.seed),
                "p_value": "symmetric bootstrap-t: share of |t*| > |t| under H0: beta = 0",
                "ci": "test inversion (WCR p-value > alpha, same weights for every null value; boottest/fwildclusterboot default)",
                "std_error": "CRV1 (fixest small-sample convention); the bootstrap p-value and interval do not depend on it",
                "n_clusters": G,
            },
        }
    if vc.kind == "crv3":
        if not nested:
            raise DesignError(
                f"{estimator}: vcov 'crv3' needs every unit inside one cluster of '{vc.by[0]}' (the unit fixed "
                "effects must be nested in the clusters for leave-one-cluster-out refits); some units span "
                "several clusters. Use kind 'wild', or cluster by a variable constant within units."
            )
        V3 = crv3_vcov(X, y, cl, names=names)
        beta = linalg.ols(X, y, names=names).beta
        se = np.sqrt(np.diag(V3)[:m])
        t = beta[:m] / se
        q = stats.t.ppf(1 - alpha / 2, G - 1)
        return {
            "estimate": beta[:m],
            "std_error": se,
            "statistic": t,
            "p_value": 2 * stats.t.sf(np.abs(t), G - 1),
            "conf_low": beta[:m] - q * se,
            "conf_high": beta[:m] + q * se,
            "vcov": V3[:m, :m],
            "meta": {
                "method": "CRV3 leave-one-cluster-out jackknife, (G-1)/G sum_g (b_(g) - b)(b_(g) - b)'",
                "reference_distribution": f"t({G - 1})",
                "n_clusters": G,
            },
        }
    raise AssertionError(vc.kind)
