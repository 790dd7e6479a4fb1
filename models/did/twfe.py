"""Static two-way fixed effects DiD.

.. math::  y_{it} = \\alpha_i + \\lambda_t + \\beta\\, D_{it} + x_{it}'\\gamma + \\varepsilon_{it},
           \\qquad D_{it} = 1\\{g_i > 0,\\ t \\ge g_i\\}

(the ``post`` term; Angrist & Pischke 2009, ch. 5). With staggered adoption and
heterogeneous effects :math:`\\hat\\beta` is a variance-weighted average of all 2x2
comparisons, including "forbidden" ones that use already-treated units as controls
(Goodman-Bacon 2021, see :mod:`models.did.bacon`); report it next to the
heterogeneity-robust estimators (cs, sunab, imputation).

Solver: on a balanced panel without covariates (iid, hetero or cluster vcov) the closed-form
compressed regression of :mod:`.es_moments` (per-cohort moments, exact there); otherwise
pyfixest ``feols(y ~ post + x | firm + year)`` (:func:`fit_dense`); ``spec.vcov`` translated with
:meth:`VcovSpec.to_pyfixest` (iid, hetero, cluster, twoway). The few-clusters kinds
``wild`` (wild cluster restricted bootstrap p-value, CI by test inversion, CRV1 standard
error) and ``crv3`` (jackknife vcov, t(G-1) inference) are computed on the same fit by
:mod:`._cluster_inference` (seeded by ``spec.seed``). ``meta["warnings"]`` names the number
of clusters (and of treated clusters) when they are few (:mod:`models.inference.few_clusters`). Singleton observations are removed
iteratively before fitting and counted in ``meta["dropped"]["singleton"]``. A treatment
with no variation left after the fixed effects (all units treated at the same time and
no controls, ...) raises :class:`DesignError`; so does ``control_group: nevertreated``
without never members (no silent switch).

Fixed effects beyond firm and year (``estimate.fixed_effects``, e.g. ``sector^year``;
:mod:`models.fixed_effects`) are absorbed as further pyfixest effects (internal code columns
``_fe0..``); the compressed path then declines (``meta["solver_note"]``), since such effects are
not functions of cohort and period, and the few-clusters kinds are refused (ConfigError).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from models import options as _opt
from models.result import EstimationResult, normal_inference
from models.vcov import FEW_CLUSTER_KINDS, VcovSpec

from . import _cluster_inference, _panel
from ._pyfixest import feols_fe
from models.fixed_effects import label as fe_label

OPTIONS: dict = {}
RULES: dict = {}
NAME = "twfe"
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)
SUPPORTED_VCOV = ("iid", "hetero", "cluster", "twoway", "crv3", "wild")
MOMENTS_SAMPLE = "all"  # engine duckdb/spark: compressed regression on the whole balanced panel


def fit_from_moments(moments, spec) -> EstimationResult | None:
    """The same result from per-cohort sufficient statistics (:mod:`.es_moments`); None
    where that is not exact (the caller then loads the panel)."""
    from .es_moments import fit_twfe_from_moments

    return fit_twfe_from_moments(moments, spec)


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    """Static TWFE: from per-cohort moments where that is exact (balanced panel, no
    covariates, iid/hetero/cluster; :func:`models.did.es_moments.fit_in_memory`), else the
    unit-level fit (:func:`fit_dense`). Both give the same numbers to 1e-10 (tests);
    ``meta["solver"]`` says which ran."""
    _opt.require(validate_options(spec.options), f"estimate.{NAME}")
    spec.vcov.require(NAME, SUPPORTED_VCOV)
    from .es_moments import fit_compressed_or_dense

    return fit_compressed_or_dense(data, spec, fit_from_moments, fit_dense)


def fit_dense(data: pd.DataFrame, spec) -> EstimationResult:
    """Static TWFE on the unit-level panel through pyfixest (any panel, covariates, every vcov kind)."""
    from .es_moments import SOLVER_DENSE

    spec.vcov.require(NAME, SUPPORTED_VCOV)
    panel = _panel.prepare(data, spec, NAME)
    _panel.drop_singletons(panel)
    _panel.require_controls(panel, spec, NAME)
    df = panel.df
    why = (
        "The treatment dummy 'post' has no variation within units and periods once the firm and "
        "year fixed effects are absorbed (e.g. every unit treated in the same period with no "
        "never/not-yet-treated comparison, or treatment only in the first period)."
    )
    few = spec.vcov.kind in FEW_CLUSTER_KINDS
    # few-cluster kinds: point estimate and CRV1 from pyfixest, then the bootstrap / jackknife
    fit_spec = replace(spec, vcov=VcovSpec("cluster", spec.vcov.by)) if few else spec
    row, res = static_row(panel, fit_spec, NAME, why, covariates=tuple(panel.covariates))
    extra = {}
    if few:
        fc = _cluster_inference.few_cluster_inference(
            panel, spec, ["_D", *panel.covariates], 1, NAME, labels=["post", *spec.covariates]
        )
        for key in ("std_error", "statistic", "p_value", "conf_low", "conf_high"):
            if key in fc:
                row[key] = float(fc[key][0])
        extra["vcov_detail"] = fc["meta"]
    meta = _panel.base_meta(
        panel,
        spec,
        formula="y ~ post" + "".join(f" + {c}" for c in spec.covariates) + f" | {fe_label(panel.fe_terms, spec.idname, spec.tname)}",
        covariate_coefficients={c: float(b) for c, b in zip(spec.covariates, res.beta[1:])},
        inference=_cluster_inference.inference_label(spec, extra),
        **extra,
    )
    _cluster_inference.annotate(meta, panel, spec)
    meta["solver"] = SOLVER_DENSE
    return EstimationResult(estimator=NAME, outcome=spec.yname, tidy=pd.DataFrame([row]), meta=meta)


def static_row(panel, spec, name: str, why: str, covariates: tuple[str, ...] = ()):
    """The static TWFE coefficient on ``post`` (absorbing unit and period effects) as a tidy
    row, plus the backend-free fit; shared by :mod:`twfe` and :mod:`bacon` (whose
    decomposition sums to exactly this coefficient)."""
    _panel.check_not_collinear(panel, ["_D"], name, why)
    res = feols_fe(panel.df, "_y", ["_D", *covariates], panel.vcov_spec(spec.vcov), name, fe=panel.fe, why_collinear=why)
    est, se = float(res.beta[0]), float(np.sqrt(res.vcov[0, 0]))
    stat, p, lo, hi = normal_inference(est, se, alpha=spec.alpha)
    counts = panel.counts()
    row = {
        "aggregation": "static",
        "term": "post",
        "estimate": est,
        "std_error": se,
        "statistic": float(stat),
        "p_value": float(p),
        "conf_low": float(lo),
        "conf_high": float(hi),
        "n_obs": counts["n_obs"],
        "n_treated": counts["n_treated_units"],
    }
    return row, res
