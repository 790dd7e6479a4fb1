"""Synthetic difference-in-differences (Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021,
AER 111(12), "Synthetic Difference-in-Differences"); registry key ``sdid``.

SDID re-weights the control units (unit weights :math:`\\omega`, so that their pre-period path
is parallel to the treated units') and the pre-periods (time weights :math:`\\lambda`, so that
the weighted pre-periods predict the post-periods of the controls), then takes the weighted
2x2 difference in differences. It is meant for few treated units of an aggregate level
(regions, initiatives); the numerics (weights, solver, variance) are in :mod:`._sdid`, with R
synthdid 0.0.9's conventions.

**Level** (option ``level``): ``firm`` (or the unit id column) fits the firm panel itself; any other value names a panel
column (``region`` by default, e.g. ``cluster_id`` for initiatives) and the outcome is first
averaged over the firms of each value of that column in each year (the rows with a finite
outcome). Treatment of an aggregate unit: the share of its rows in that year that belong to
firms already treated (:math:`t \\ge g_i`); the unit's first treated year is the first year in
which that share *exceeds* ``treated_share`` (default 0.5), and it stays treated from then on.
Units whose share is positive in some year but never exceeds the threshold are neither clean
controls nor treated: they are dropped and counted (``meta["dropped"]["partly_treated_units"]``).
Controls are the units with no treated firm in any year. At ``level: firm`` a firm's first
treated year is ``first_treat``; firms first treated after the last panel year are controls.

**Staggered adoption**: one SDID per cohort (units first treated in year g) against all
controls on every panel year (pre = years before g), averaged with weights
:math:`N_g T_{post,g}` (the cohort's treated unit-years; Clarke, Pailañir, Athey & Imbens 2023,
Stata ``sdid``). Cohorts with fewer than 2 pre-periods (incl. units treated from the first year)
are left out and listed in ``meta["cohorts_excluded"]``.

**Balanced panels only**: every aggregate (or firm) must have a finite outcome in every year;
otherwise a DesignError names the units. No covariates (ConfigError).

**Variance** (option ``vcov``): ``placebo`` (default; Algorithm 4, the only one valid with a
single treated unit; needs more controls than treated), ``jackknife`` (Algorithm 3,
deterministic; needs at least two treated units in every cohort and more than one control of
non-zero weight), ``bootstrap`` (Algorithm 2). ``replications`` draws (default 200, synthdid's
default) from ``spec.seed``. Confidence intervals are normal (synthdid's). ``spec.vcov`` is not
used (``meta["vcov"]`` names the method); its kinds ``wild``/``crv3`` (few-cluster corrections of
regressions) raise UnsupportedVcovError rather than being ignored. ``meta["inference_verdict"]``
is the report's sentence on this inference (over aggregate units, not firm clusters).

Outputs: a ``simple`` row ``ATT`` (the aggregated effect; ``n_obs`` the firm-year rows behind
the aggregates, ``n_treated`` the distinct treated firms in treated units), one ``group`` row per
cohort (``cohort::<g>``); ``tables["sdid_time_weights"]`` (cohort, time, weight) and, above the
firm level, ``tables["sdid_unit_weights"]`` (cohort, unit, weight: the aggregate units' weights;
not kept at the firm level, where they would be firm-level rows). ``meta["did_estimate"]`` is the
unweighted DiD on the same cohorts and controls (uniform weights) for comparison. Checked
against R synthdid on California Proposition 99 (estimate -15.6038, and the placebo SE with R's
own permutations, both to 1e-9 relative) and on simulated interactive-fixed-effect panels
(tests/test_sdid.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import options as _opt
from models.errors import BadInputError, ConfigError, DesignError, first_keys
from models.result import EstimationResult, normal_inference
from models.vcov import PYFIXEST_KINDS

from . import _panel, _sdid

NAME = "sdid"
VCOV_METHODS = ("placebo", "jackknife", "bootstrap")
OPTIONS: dict = {"level": "region", "treated_share": 0.5, "vcov": "placebo", "replications": 200}
RULES: dict = {
    "level": _opt.custom(lambda v: isinstance(v, str) and bool(_opt.SAFE_NAME.match(v)),
                         "give firm, or a panel column to aggregate to (e.g. region, cluster_id)", bad=["region"]),
    "treated_share": _opt.number(0, 1, lo_open=True, hi_open=True),
    "vcov": _opt.choice(*VCOV_METHODS),
    "replications": _opt.draws(2),
}
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)


def _aggregate(df: pd.DataFrame, level: str, share: float, years: np.ndarray) -> tuple[pd.DataFrame, dict]:
    """One row per (unit, year) of the chosen level: ``unit, t, y, n_rows, treated_share`` and
    each unit's first treated year ``g`` (0 = control) by the rule of the module docstring."""
    dropped: dict[str, int] = {}
    if level == "firm":
        g = np.where(df["_g"] > years[-1], 0, df["_g"])
        cells = pd.DataFrame({"unit": df["_id"], "t": df["_t"], "y": df["_y"], "n_rows": 1, "g": g})
        return cells, dropped
    d = df.assign(unit=df["_level"])
    cells = (
        d.groupby(["unit", "_t"], sort=True)
        .agg(y=("_y", "mean"), n_rows=("_y", "size"), share=("_D", "mean"))
        .reset_index()
        .rename(columns={"_t": "t"})
    )
    over = cells.loc[cells["share"] > share].groupby("unit")["t"].min()
    any_treated = cells.loc[cells["share"] > 0, "unit"].unique()
    partly = sorted(set(any_treated) - set(over.index), key=str)
    if partly:
        dropped["partly_treated_units"] = len(partly)
        cells = cells.loc[~cells["unit"].isin(partly)]
    cells = cells.assign(g=cells["unit"].map(over).fillna(0).astype(np.int64))
    return cells.drop(columns="share"), dropped


def _wide(cells: pd.DataFrame, years: np.ndarray, level: str) -> pd.DataFrame:
    """unit x year outcome matrix; DesignError for units not observed in every year."""
    W = cells.pivot(index="unit", columns="t", values="y").reindex(columns=years)
    bad = W.index[W.isna().any(axis=1)]
    if len(bad):
        what = "firms" if level == "firm" else f"values of {level!r}"
        raise DesignError(
            f"{NAME}: synthetic DiD needs a balanced panel; {len(bad)} {what} lack a finite outcome in some of the "
            f"{years.size} years {years[0]}-{years[-1]} (first: {first_keys(bad)}). Restrict the sample to units "
            "observed in every year" + (", or aggregate with estimate.sdid.level: region." if level == "firm" else
                                         ", or choose a coarser estimate.sdid.level.")
        )
    return W


def _inference_verdict(method: str, level: str, n_tr: int, n_co: int, n_draws: int) -> dict:
    """What the report says of this result's inference (pipeline.report.inference_checks)."""
    units = "firms" if level == "firm" else f"{level} units"
    how = {
        "placebo": f"{n_draws} placebo re-assignments of the treatment to the {n_co} control {units} (Arkhangelsky et "
                   "al. 2021, Algorithm 4); valid if the treated units' errors are like the controls' (homoskedastic "
                   "across units)",
        "jackknife": f"the leave-one-unit-out jackknife over {n_tr + n_co} {units} with fixed weights (Algorithm 3); "
                     "conservative",
        "bootstrap": f"{n_draws} bootstrap re-samples of the {n_tr + n_co} {units} (Algorithm 2); needs many treated units",
    }[method]
    one = "firm" if level == "firm" else f"{level} unit"
    few = f" Only {n_tr} treated {one if n_tr == 1 else units}: read p-values as indicative." if n_tr < 10 else ""
    return {"verdict": "note", "sentence": f"Standard errors from {how}.{few}",
            "numbers": f"vcov = sdid {method}; treated {units} = {n_tr}; control {units} = {n_co}"}


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    _opt.require(validate_options(spec.options), f"estimate.{NAME}")
    spec.vcov.require(NAME, PYFIXEST_KINDS)  # wild / crv3: few-cluster corrections of regressions, refused
    o = {**OPTIONS, **spec.options}
    level = "firm" if o["level"] == spec.idname else o["level"]  # the unit id itself: no aggregation
    if level in (spec.tname, spec.gname, "post", "rel_time"):
        raise ConfigError(f"estimate.{NAME}.level: {level!r} is a period or treatment column; give firm or a unit "
                          "column to aggregate to (e.g. region, cluster_id)")
    if level != "firm" and level not in data.columns:
        raise BadInputError(f"estimate.{NAME}.level: {level!r} is not a column of the panel; give firm or a column "
                            f"(have: {', '.join(map(str, data.columns))})")
    panel = _panel.prepare(data, spec, NAME, allow_covariates=False)
    _panel.require_controls(panel, spec, NAME)
    if level != "firm":  # the level of each estimation row, by (unit, year) (prepare may have dropped rows)
        lv = pd.Series(data[level].to_numpy(), index=pd.MultiIndex.from_arrays(
            [data[spec.idname].to_numpy(), data[spec.tname].to_numpy(dtype=np.int64)]))
        at = pd.MultiIndex.from_arrays([panel.df["_id"].to_numpy(), panel.df["_t"].to_numpy()])
        panel.df["_level"] = lv.reindex(at).to_numpy()
        panel.drop(panel.df["_level"].notna().to_numpy(), f"missing_{level}")
    df = panel.df
    years = np.sort(df["_t"].unique())
    cells, dropped = _aggregate(df, level, float(o["treated_share"]), years)
    W = _wide(cells, years, level)
    g_unit = cells.groupby("unit")["g"].first().reindex(W.index)
    n_rows = cells.groupby("unit")["n_rows"].sum().reindex(W.index)
    controls = W.index[g_unit == 0]
    cohorts_all = sorted(int(g) for g in g_unit.unique() if g > 0)
    keep, excluded = [], []
    for g in cohorts_all:
        T0 = int(np.searchsorted(years, g))
        (keep if T0 >= 2 else excluded).append(g)
    if not keep:
        raise DesignError(f"{NAME}: no cohort with at least 2 pre-treatment years (cohorts: {cohorts_all}); SDID "
                          "needs pre-periods to fit its weights")
    if len(controls) < 2:
        raise DesignError(f"{NAME}: {len(controls)} control units at level {level!r} (units with no treated firm); "
                          "SDID needs at least 2. Choose a finer estimate.sdid.level or a lower treated_share.")
    Y0 = W.loc[controls].to_numpy(float)
    blocks = []
    for g in keep:
        members = W.index[g_unit == g]
        blocks.append(_sdid.Cohort(W.loc[members].to_numpy(float), int(np.searchsorted(years, g))))
    att = _sdid.fit(Y0, blocks)
    n_tr = sum(c.N1 for c in blocks)
    method = o["vcov"]
    rng = np.random.default_rng(spec.seed)
    if method == "placebo":
        if len(controls) <= n_tr:
            raise DesignError(f"{NAME}: the placebo variance needs more controls ({len(controls)}) than treated units "
                              f"({n_tr}); set estimate.sdid.vcov: bootstrap or jackknife.")
        se, n_draws = _sdid.placebo_se(Y0, blocks, int(o["replications"]), rng)
    elif method == "jackknife":
        small = [g for g, c in zip(keep, blocks) if c.N1 < 2 or np.count_nonzero(c.omega) < 2]
        if small:
            raise DesignError(f"{NAME}: the jackknife variance is undefined for cohorts with one treated unit or one "
                              f"control of non-zero weight (cohorts {small}); set estimate.sdid.vcov: placebo.")
        se, n_draws = _sdid.jackknife_se(Y0, blocks)
    else:
        if n_tr < 2:
            raise DesignError(f"{NAME}: the bootstrap variance needs at least 2 treated units (have {n_tr}); set "
                              "estimate.sdid.vcov: placebo.")
        se, n_draws = _sdid.bootstrap_se(Y0, blocks, int(o["replications"]), rng)
    # plain DiD on the same blocks (uniform weights), for comparison
    did = _sdid.aggregate(
        [_sdid.tau(np.vstack([Y0, c.Y1]), Y0.shape[0], c.T0, np.full(Y0.shape[0], 1 / Y0.shape[0]),
                   np.full(c.T0, 1 / c.T0)) for c in blocks], [c.N1 for c in blocks], [c.T1 for c in blocks])

    treated_units = {g: W.index[g_unit == g] for g in keep}
    tr_firms = df.loc[df["_g"] > 0]
    if level != "firm":
        tr_firms = tr_firms.loc[tr_firms["_level"].isin(np.concatenate([np.asarray(v) for v in treated_units.values()]))]
    else:
        tr_firms = tr_firms.loc[tr_firms["_id"].isin(np.concatenate([np.asarray(v) for v in treated_units.values()]))]
    n_obs_all = int(n_rows.loc[list(controls) + [u for v in treated_units.values() for u in v]].sum())
    est = np.array([c.estimate for c in blocks] + [att])
    stat, p, lo, hi = normal_inference(est, se, spec.alpha)
    rows = []
    for k, (g, c) in enumerate(zip(keep, blocks)):
        units = treated_units[g]
        col = "_level" if level != "firm" else "_id"
        rows.append({"aggregation": "group", "term": f"cohort::{g}", "cohort": g, "estimate": est[k],
                     "std_error": se[k], "statistic": stat[k], "p_value": p[k], "conf_low": lo[k], "conf_high": hi[k],
                     "n_obs": int(n_rows.loc[list(controls) + list(units)].sum()),
                     "n_treated": int(tr_firms.loc[tr_firms[col].isin(units), "_id"].nunique())})
    rows.insert(0, {"aggregation": "simple", "term": "ATT", "estimate": att, "std_error": se[-1], "statistic": stat[-1],
                    "p_value": p[-1], "conf_low": lo[-1], "conf_high": hi[-1], "n_obs": n_obs_all,
                    "n_treated": int(tr_firms["_id"].nunique())})
    tw = pd.DataFrame([{"cohort": g, "time": int(years[t]), "weight": float(c.lam[t])}
                       for g, c in zip(keep, blocks) for t in range(c.T0)])
    tables = {"sdid_time_weights": tw}
    if level != "firm":
        tables["sdid_unit_weights"] = pd.DataFrame(
            [{"cohort": g, "unit": str(u), "weight": float(w)} for g, c in zip(keep, blocks) for u, w in zip(controls, c.omega)])
    weights = _sdid.cohort_weights([c.N1 for c in blocks], [c.T1 for c in blocks])
    meta = _panel.base_meta(
        panel, spec,
        vcov=f"sdid {method}",
        level=level,
        treated_share=float(o["treated_share"]) if level != "firm" else None,
        n_units=int(W.shape[0]), n_treated_units=n_tr, n_control_units=int(len(controls)),
        n_years=int(years.size),
        cohorts=[int(g) for g in keep], cohorts_excluded=excluded,
        cohort_weights={str(g): float(w) for g, w in zip(keep, weights)},
        noise_level={str(g): c.opts.noise_level for g, c in zip(keep, blocks)},
        zeta_omega={str(g): c.opts.zeta_omega for g, c in zip(keep, blocks)},
        unit_weights_nonzero={str(g): int(np.count_nonzero(c.omega)) for g, c in zip(keep, blocks)},
        did_estimate=did,
        replications=int(n_draws) if method != "jackknife" else None,
        seed=int(spec.seed) if method != "jackknife" else None,
        inference="normal",
    )
    meta["dropped"] = {**meta["dropped"], **dropped}
    # inference is over the aggregate units, not firm clusters: no firm-cluster counts (the
    # estimate stage's few-clusters annotation is skipped when n_treated_clusters is present)
    meta["n_clusters"] = None
    meta["n_treated_clusters"] = None
    meta["inference_verdict"] = _inference_verdict(method, level, n_tr, len(controls), n_draws)
    return EstimationResult(estimator=NAME, outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta, tables=tables)
