"""Dynamic (event-study) two-way fixed effects regression.

.. math::  y_{it} = \\alpha_i + \\lambda_t + \\sum_{k \\in W,\\ k \\ne -1}
           \\beta_k\\, 1\\{t - g_i = k\\} + x_{it}'\\gamma + \\varepsilon_{it}

with window :math:`W = [lo, hi]` (option ``event_window``, default [-5, 5]), reference
period :math:`k=-1` and never members as the reference group (all their event-time
dummies are zero). Leads (:math:`k<-1`) test parallel pre-trends; ``meta["pretrend"]`` is
the joint chi2 Wald test that they are all zero using the clustered coefficient vcov.

End points (option ``endpoints``):

* ``"bin"`` (default): :math:`1\\{t-g_i \\le lo\\}` and :math:`1\\{t-g_i \\ge hi\\}`
  accumulate all more distant event times (Schmidheiny & Siegloch 2023, J. Appl.
  Econometrics: binning is what identifies the fully dynamic TWFE model; Stata
  ``eventdd, accum``).
* ``"trim"``: treated units' observations outside the window are dropped (counted as
  ``outside_event_window``).

fixest's ``feols(y ~ i(rel_time, ref = -1) | id + t)`` (and pyfixest's) estimate every
observed event time (no binning, no trimming) unless ``bin=`` is used; with a window that
covers all observed event times both options here reproduce it (tested to 1e-10).

Under staggered adoption with heterogeneous effects these coefficients are contaminated
by other periods' effects (Sun & Abraham 2021); use ``sunab``/``imputation``/``cs`` for
robust event studies. Backend: pyfixest ``feols``; vcov kinds iid, hetero, cluster, twoway
through pyfixest, and the few-clusters kinds computed on the same fit by
:mod:`._cluster_inference`:

* ``wild``: every event-time coefficient gets its wild cluster restricted bootstrap
  p-value and a confidence interval by test inversion (boottest/fwildclusterboot's
  default, not the percentile-t interval); ``std_error``, ``vcov_dynamic`` and the
  pre-trend Wald test stay CRV1 (``meta["pretrend"]["vcov"]`` says so). Same weight draws
  (seed ``spec.seed``) for every coefficient.
* ``crv3``: CRV3 jackknife vcov for all coefficients (rows, ``vcov_dynamic`` and the
  pre-trend test), t(G-1) p-values and intervals.

``meta["warnings"]`` names the number of clusters (and of treated clusters) when few.

Outputs: tidy rows ``aggregation="dynamic"``, ``term="rel_time::k"``, ``event_time=k``,
``n_treated`` = treated firms observed at event time k; ``tables["vcov_dynamic"]`` the
covariance of the event-time coefficients (index/columns = event time; reference omitted),
for HonestDiD.

Fixed effects beyond firm and year (``estimate.fixed_effects``, e.g. ``sector^year``;
:mod:`models.fixed_effects`) are absorbed as further pyfixest effects (internal code columns
``_fe0..``); the compressed path then declines (``meta["solver_note"]``), since such effects are
not functions of cohort and period, and the few-clusters kinds are refused (ConfigError).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.result import EstimationResult, normal_inference
from models.vcov import FEW_CLUSTER_KINDS, VcovSpec

from models import options as _opt

from . import _cluster_inference, _panel
from ._pyfixest import feols_fe
from models.fixed_effects import label as fe_label

OPTIONS: dict = {"event_window": [-5, 5], "endpoints": "bin"}
RULES: dict = {"event_window": _opt.EVENT_WINDOW, "endpoints": _panel.ENDPOINTS}
NAME = "event_study"
REF = -1
SUPPORTED_VCOV = ("iid", "hetero", "cluster", "twoway", "crv3", "wild")
MOMENTS_SAMPLE = "all"  # engine duckdb/spark: compressed regression on the whole balanced panel


def fit_from_moments(moments, spec) -> EstimationResult | None:
    """The same result from per-cohort sufficient statistics (:mod:`.es_moments`, binned
    or trimmed endpoints); None where that is not exact (the caller then loads the panel)."""
    from .es_moments import fit_event_study_from_moments

    opts = {**OPTIONS, **(spec.options or {})}
    if set(opts) - set(OPTIONS):
        return None  # fit() raises the ConfigError
    return fit_event_study_from_moments(moments, spec, opts, ref=REF)


def _col(k: int) -> str:
    return f"_ev_m{-k}" if k < 0 else f"_ev_{k}"


validate_options = _opt.validator(OPTIONS, RULES, name=NAME)


def _check_options(spec) -> dict:
    _opt.require(validate_options(spec.options), f"estimate.{NAME}")
    spec.vcov.require(NAME, SUPPORTED_VCOV)
    return {**OPTIONS, **(spec.options or {})}


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    """The event study: from per-cohort moments where that is exact (balanced panel, no
    covariates, iid/hetero/cluster, binned or trimmed endpoints;
    :func:`models.did.es_moments.fit_in_memory`), else the unit-level fit
    (:func:`fit_dense`). Same numbers to 1e-10 (tests); ``meta["solver"]`` says which ran."""
    _check_options(spec)
    from .es_moments import fit_compressed_or_dense

    return fit_compressed_or_dense(data, spec, fit_from_moments, fit_dense)


def fit_dense(data: pd.DataFrame, spec) -> EstimationResult:
    """The event study on the unit-level panel through pyfixest (any panel, covariates, every vcov kind)."""
    from .es_moments import SOLVER_DENSE

    opts = _check_options(spec)
    panel = _panel.prepare(data, spec, NAME)
    lo, hi = _panel.bin_event_time(panel, opts["event_window"], opts["endpoints"], NAME)
    _panel.drop_singletons(panel)
    _panel.require_controls(panel, spec, NAME)
    df = panel.df
    e = df["_e"].to_numpy()
    times = [int(k) for k in np.unique(e[np.isfinite(e)]) if k != REF]
    if not any(k >= 0 for k in times):
        from models.errors import DesignError

        raise DesignError(f"{NAME}: no treated observations at event time >= 0 in the window [{lo}, {hi}]")
    cols = [_col(k) for k in times]
    dummies = _panel.event_dummies(e, times)
    df = pd.concat([df, pd.DataFrame(dummies, columns=cols, index=df.index)], axis=1)
    why = (
        "Event-time dummies are not identified next to firm and year fixed effects: without never "
        "members (or with few cohorts) a fully dynamic TWFE needs more normalisations; use "
        "endpoints: bin with a narrower event_window, or add never members."
    )
    few = spec.vcov.kind in FEW_CLUSTER_KINDS
    # few-cluster kinds: point estimates and CRV1 from pyfixest, then the bootstrap / jackknife
    fit_vcov = VcovSpec("cluster", spec.vcov.by) if few else spec.vcov
    res = feols_fe(df, "_y", cols + panel.covariates, panel.vcov_spec(fit_vcov), NAME, fe=panel.fe, why_collinear=why)
    m = len(times)
    beta, V = res.beta[:m], res.vcov[:m, :m]
    se = np.sqrt(np.diag(V))
    stat, p, clo, chi = normal_inference(beta, se, alpha=spec.alpha)
    extra = {}
    if few:
        panel.df = df  # the event-time dummies are columns of the design
        fc = _cluster_inference.few_cluster_inference(
            panel, spec, cols + panel.covariates, m, NAME, labels=[f"rel_time::{k}" for k in times] + list(spec.covariates)
        )
        p, clo, chi = fc["p_value"], fc["conf_low"], fc["conf_high"]
        if "vcov" in fc:  # crv3: its vcov replaces CRV1 everywhere
            V, se, stat = fc["vcov"], fc["std_error"], fc["statistic"]
        extra["vcov_detail"] = fc["meta"]
    ntr = _panel.n_treated_by(df.assign(_e=e), "_e")
    nobs = df.loc[np.isfinite(e)].groupby("_e").size()
    rows = [
        {
            "aggregation": "dynamic",
            "term": f"rel_time::{k}",
            "event_time": k,
            "estimate": beta[j],
            "std_error": se[j],
            "statistic": stat[j],
            "p_value": p[j],
            "conf_low": clo[j],
            "conf_high": chi[j],
            "n_obs": int(nobs.get(float(k), 0)),
            "n_treated": int(ntr.get(float(k), 0)),
        }
        for j, k in enumerate(times)
    ]
    vc = pd.DataFrame(V, index=pd.Index(times, name="event_time"), columns=pd.Index(times, name="event_time"))
    meta = _panel.base_meta(
        panel,
        spec,
        event_window=[lo, hi],
        endpoints=opts["endpoints"],
        reference_period=REF,
        pretrend=_pretrend(beta, V, times, spec),
        formula=f"y ~ i(rel_time, ref={REF}) | {fe_label(panel.fe_terms, spec.idname, spec.tname)}",
        inference=_cluster_inference.inference_label(spec, extra),
        **extra,
    )
    _cluster_inference.annotate(meta, panel, spec)
    meta["solver"] = SOLVER_DENSE
    return EstimationResult(
        estimator=NAME, outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta, tables={"vcov_dynamic": vc}
    )


def _pretrend(beta, V, times, spec) -> dict:
    out = _panel.pretrend_test(beta, V, times, ref=REF)
    if spec.vcov.kind == "wild":
        out["vcov"] = f"cluster({spec.vcov.by[0]}) CRV1 (chi2 Wald; the wild bootstrap is per coefficient)"
    elif spec.vcov.kind == "crv3":
        out["vcov"] = f"crv3({spec.vcov.by[0]})"
    return out
