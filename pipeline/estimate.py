"""Run the configured outcomes x estimators on the processed panel.

This is orchestration, not econometrics: it reads only the columns each run needs from
the processed panel, drops rows with a missing outcome or covariate (counted), builds the
:class:`~models.spec.EstimatorSpec` from params, and calls the registry. Numbers happen in
``models/``.

With params ``engine`` other than pandas, an estimator module that exposes
``fit_from_moments`` (``cs``, without covariates) is fitted from sufficient statistics that
:mod:`pipeline.engine` computes over the Parquet file (DuckDB), without loading the panel;
with covariates it falls back, with a note, to loading the panel.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from models import registry
from models.fixed_effects import columns as fe_columns
from models.errors import ClusterImpactError, DesignError
from models.inference.few_clusters import annotate_from_data, annotate_meta
from models.result import EstimationResult
from models.spec import EstimatorSpec
from models.vcov import VcovSpec

from . import design_checks
from .config import Params, estimator_base, estimator_options, estimators_for, variant_overrides
from .engine import EngineFallback
from .option_columns import check_columns
from .progress import note, step

BASE_COLUMNS = ("firm_id", "year", "first_treat", "rel_time", "post", "cluster_id")
# columns estimators may use when present (strata, clusters, spillover design, contributors)
CONTEXT_COLUMNS = ("sector", "region", "group_id", "colocated", "eligible", "ever_member", "exposure_year")

PACKAGES = ("cluster-impact", "numpy", "pandas", "scipy", "statsmodels", "linearmodels", "pyfixest", "pyarrow")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out


@dataclass
class EstimateRun:
    results: list[EstimationResult] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)  # failed runs under on_error: skip
    value_for_money: tuple | None = None  # (table, meta) of models.value_for_money, with data.costs


def _option_columns(options: dict[str, Any], schema: set[str]) -> set[str]:
    cols: set[str] = set()
    for v in options.values():
        vals = v if isinstance(v, (list, tuple)) else [v]
        cols.update(x for x in vals if isinstance(x, str) and x in schema)
    return cols


def numeric_columns(panel_path: Path) -> set[str]:
    """Names of the panel's number (and 0/1 boolean) columns, from the Parquet schema (no data read)."""
    import pyarrow.types as pt

    return {f.name for f in pq.read_schema(panel_path)
            if pt.is_integer(f.type) or pt.is_floating(f.type) or pt.is_boolean(f.type) or pt.is_decimal(f.type)}


def extra_fixed_effects(params: Params, key: str) -> tuple[str, ...]:
    """``estimate.fixed_effects`` beyond firm and year, for estimator ``key`` if it takes them."""
    from models.fixed_effects import extra

    if estimator_base(params, key) not in registry.EXTRA_FIXED_EFFECTS:
        return ()
    return extra(params["estimate"].get("fixed_effects"))


def fixed_effects_note(params: Params, key: str) -> str | None:
    """Why ``estimate.fixed_effects`` beyond firm and year do not enter estimator ``key``
    (None when they do, or when none are given)."""
    from models.fixed_effects import extra

    terms = extra(params["estimate"].get("fixed_effects"))
    if not terms or estimator_base(params, key) in registry.EXTRA_FIXED_EFFECTS:
        return None
    return (f"estimate.fixed_effects {list(terms)} not used by {key}: it has no regression fixed effects to add them "
            f"to (they enter {', '.join(registry.EXTRA_FIXED_EFFECTS)})")


def build_spec(params: Params, outcome: str, key: str) -> EstimatorSpec:
    est = params["estimate"]
    over = variant_overrides(params, key)
    return EstimatorSpec(
        fixed_effects=extra_fixed_effects(params, key),
        yname=outcome,
        covariates=tuple(over.get("covariates", est["covariates"]) or ()),
        control_group=over.get("control_group", est["control_group"]),
        vcov=VcovSpec.from_params(est["vcov"]),
        alpha=float(est["alpha"]),
        seed=params.seed,
        options=estimator_options(params, key),
    )


def load_columns(panel_path: Path, needed: set[str]) -> pd.DataFrame:
    schema = set(pq.read_schema(panel_path).names)
    cols = [c for c in sorted(needed) if c in schema]
    return pd.read_parquet(panel_path, columns=cols)


def estimate_all(panel_path: Path, params: Params) -> EstimateRun:
    """Fit every estimator in ``estimate.estimators`` to every outcome in ``estimate.outcomes``."""
    est = params["estimate"]
    schema = set(pq.read_schema(panel_path).names)
    # every column-valued option against the panel's schema, before anything is fitted
    check_columns(params, schema, numeric_columns(panel_path), f"data/processed/{panel_path.name}")
    on_error = est.get("on_error", "fail")
    run = EstimateRun()
    versions = package_versions()
    engine = params["engine"]
    where = f"data/processed/{panel_path.name}"
    base_panel = load_columns(panel_path, {"firm_id", "year", "first_treat"})
    why = design_checks.panel_problem(base_panel, where)
    if why:
        raise DesignError(why)
    checks = {}  # outcome -> (problem, levels_ok), all outcomes checked before any estimate
    for outcome in est["outcomes"]:
        check = design_checks.outcome_problem(load_columns(panel_path, {"firm_id", outcome}), outcome, where)
        if check and not check[1] and "no value in any" in check[0]:  # name the blank input columns
            blank = design_checks.blank_columns(panel_path, sorted(params["columns"]))
            check = design_checks.outcome_problem(load_columns(panel_path, {"firm_id", outcome}), outcome, where, blank)
        if check:
            checks[outcome] = check

    def refused(outcome: str, base: str) -> str | None:
        check = checks.get(outcome)
        return check[0] if check and not (check[1] and base in design_checks.LEVEL_ESTIMATORS) else None

    if on_error != "skip":
        bad = {o: [k for k in estimators_for(params, o) if refused(o, estimator_base(params, k))] for o in checks}
        bad = {o: ks for o, ks in bad.items() if ks}
        if bad:
            raise DesignError(
                f"{len(bad)} outcome(s) cannot be estimated (estimate.on_error: skip would list them in the report "
                "and run the rest):",
                problems=[f"{', '.join(ks)}: {checks[o][0]}" for o, ks in bad.items()],
            )
    for outcome in est["outcomes"]:
        for key in estimators_for(params, outcome):
            spec = build_spec(params, outcome, key)
            base = estimator_base(params, key)
            why = refused(outcome, base)
            if why:  # on_error: skip
                note(f"skipped {outcome} x {key}: {why}")
                run.skipped.append({"outcome": outcome, "estimator": key, "reason": why})
                continue
            module = registry.get(base)
            fe_note = fixed_effects_note(params, key)
            if engine != "pandas" and hasattr(module, "fit_from_moments"):
                if spec.fixed_effects:
                    note(f"{outcome} x {key}: fixed effects {list(spec.fixed_effects)} need unit-level data; engine "
                         f"{engine} falls back to loading the panel")
                elif not spec.covariates:  # sufficient statistics; the panel is never loaded
                    try:
                        result = _fit_engine(panel_path, spec, module, engine, key, on_error, run)
                    except EngineFallback as why:
                        note(f"{outcome} x {key}: {why}; engine {engine} falls back to loading the panel")
                    else:
                        if result is not None:  # None: skipped under on_error: skip
                            _name_variant(result, key, base)
                            result.meta.setdefault("spec", spec.to_dict())
                            result.meta["seed"] = params.seed
                            result.meta["package_versions"] = versions
                            annotate_meta(result.meta, spec)
                            if fe_note:
                                result.meta["fixed_effects_note"] = fe_note
                            _attach_sensitivity(result, params)
                            run.results.append(result)
                        continue
                else:
                    note(f"{outcome} x {key}: covariates need unit-level data; engine {engine} falls back to loading the panel")
            needed = set(BASE_COLUMNS) | set(CONTEXT_COLUMNS) | {outcome} | set(spec.covariates)
            needed |= set(spec.vcov.by) | _option_columns(spec.options, schema)
            needed |= set(getattr(module, "COLUMNS", ()))  # extra columns a module declares
            needed |= set(fe_columns(spec.fixed_effects))
            data = load_columns(panel_path, needed)
            required = [outcome, *spec.covariates]
            missing = data[required].isna().any(axis=1)
            n_missing = int(missing.sum())
            full = data
            if n_missing:
                data = data.loc[~missing].reset_index(drop=True)
            try:
                with step(f"estimate {outcome} x {key}"):
                    result = module.fit(data, spec)
            except ClusterImpactError as exc:
                if n_missing and isinstance(exc, DesignError):
                    exc = DesignError(f"{exc} {_missing_context(full, missing, required)}")
                if on_error == "skip" and isinstance(exc, DesignError):
                    note(f"skipped {outcome} x {key}: {exc}")
                    run.skipped.append({"outcome": outcome, "estimator": key, "reason": str(exc)})
                    continue
                raise
            _name_variant(result, key, base)
            dropped = dict(result.meta.get("dropped") or {})
            if n_missing:
                dropped["missing_outcome_or_covariate"] = dropped.get("missing_outcome_or_covariate", 0) + n_missing
            result.meta["dropped"] = dropped
            result.meta.setdefault("spec", spec.to_dict())
            result.meta["seed"] = params.seed
            result.meta["package_versions"] = versions
            result.meta["rows_in"] = int(len(data) + n_missing)
            annotate_from_data(result.meta, data, spec)
            if fe_note:
                result.meta["fixed_effects_note"] = fe_note
            if engine != "pandas" and spec.fixed_effects and hasattr(module, "fit_from_moments"):
                result.meta["engine_fallback"] = (f"engine {engine} declined: fixed effects {list(spec.fixed_effects)} "
                                                  "need unit-level data; the panel was loaded")
            _attach_sensitivity(result, params)
            run.results.append(result)
    _attach_romano_wolf(run, params)
    _attach_value_for_money(run, params, panel_path)
    return run


def _missing_context(data: pd.DataFrame, missing: pd.Series, required: list[str]) -> str:
    """What dropping the rows with a missing outcome or covariate did to the groups (a
    DesignError after the drop is about the rows left, not about the data as given)."""
    firms = data.drop_duplicates("firm_id").set_index("firm_id")["first_treat"].fillna(0)
    kept = data.loc[~missing.to_numpy(), "firm_id"].unique()
    never, members = firms.index[firms == 0], firms.index[firms > 0]
    return (
        f"(Before estimating, {int(missing.sum())} of {len(data)} rows were dropped because "
        f"{' or '.join(required)} is missing there: never-member firms {len(never)} -> "
        f"{int(pd.Index(never).isin(kept).sum())}, member firms {len(members)} -> {int(pd.Index(members).isin(kept).sum())}. "
        f"Fix the missing values in data.firms, or see data/interim/ingest_flow.json for why they are missing.)"
    )


RW_DRAWS = 999  # R did's default number of multiplier-bootstrap draws (biters)


def _attach_romano_wolf(run: EstimateRun, params: Params) -> None:
    """Romano–Wolf step-down p-values across outcomes for the Callaway–Sant'Anna simple ATT
    (the report's headline estimator), from the estimates' influence functions with one
    multiplier weight per firm shared across outcomes (the joint bootstrap RW needs); Holm
    beside it. Recorded in each family member's ``meta["multiple_testing"]``. Skipped when
    fewer than two outcomes have a unit-level CS estimate (engine duckdb computes CS from
    cohort moments, without per-firm influence functions) and, with a note, when the vcov
    clusters above the firm."""
    from models.inference.multiple_testing import holm, influence_t_boot, romano_wolf

    fam = [r for r in run.results if r.estimator == "cs" and r.influence is not None]
    vc = VcovSpec.from_params(params["estimate"]["vcov"])
    if len(fam) < 2:
        return
    if vc.kind not in ("cluster", "hetero") or (vc.kind == "cluster" and tuple(vc.by) != ("firm_id",)):
        note(f"Romano-Wolf across outcomes skipped: it resamples firms, the vcov is {vc.label()}")
        return
    rows = [r.tidy[r.tidy["aggregation"] == "simple"].iloc[0] for r in fam]
    t = np.array([float(x["estimate"]) / float(x["std_error"]) for x in rows])
    p = np.array([float(x["p_value"]) for x in rows])
    with step(f"Romano-Wolf across {len(fam)} outcomes ({RW_DRAWS} draws)"):
        tb = influence_t_boot([r.influence for r in fam], [float(x["std_error"]) for x in rows], RW_DRAWS, params.seed)
        rw = romano_wolf(t, tb)
    ho = holm(p)
    ho = ho[0] if isinstance(ho, tuple) else ho
    family = [r.outcome for r in fam]
    for r, pj, hj, rj in zip(fam, p, ho, rw):
        r.meta["multiple_testing"] = {
            "family": family,
            "estimate": "simple ATT",
            "p_value": float(pj),
            "p_holm": float(hj),
            "p_romano_wolf": float(rj),
            "draws": RW_DRAWS,
            "method": "Romano-Wolf step-down (Romano & Wolf 2005, 2016) on multiplier-bootstrap t statistics: "
            "one Rademacher weight per firm and draw, shared across outcomes; Holm (1979) beside it",
        }


def _attach_value_for_money(run: EstimateRun, params: Params, panel_path: Path) -> None:
    """With data.costs: the value-for-money table (models.value_for_money) from the costs that
    ingest validated and the in-memory ATT(g,t) influence-function basis of the cs results: a cs
    result of estimate.outcomes is reused (no re-estimation); an outcome value_for_money needs
    that estimate.outcomes does not fit with cs (e.g. real_value_added in levels) is fitted here
    with cs on the same specification (estimate.covariates, control_group, vcov, cs options),
    in memory whatever the engine. It is used only for these totals (not an estimator table)."""
    if params["data"].get("costs") is None:
        return
    from models.value_for_money import value_for_money

    from .paths import Paths

    vfm = params["value_for_money"]
    costs = pd.read_parquet(Paths.of(params).interim_costs)
    att_gts = {r.outcome: r.influence["att_gt"] for r in run.results
               if r.estimator == "cs" and r.influence is not None and "att_gt" in r.influence}
    fitted = []
    module = registry.get("cs")
    for o in dict.fromkeys([*(vfm.get("totals") or []), vfm["benefit"], vfm["jobs"]]):
        if o in att_gts:
            continue
        if o not in pq.read_schema(panel_path).names:  # a default the panel lacks (checked at load when named)
            continue
        spec = build_spec(params, o, "cs")
        needed = set(BASE_COLUMNS) | set(CONTEXT_COLUMNS) | {o} | set(spec.covariates) | set(spec.vcov.by)
        data = load_columns(panel_path, needed)
        data = data.loc[~data[[o, *spec.covariates]].isna().any(axis=1)].reset_index(drop=True)
        try:
            with step(f"value for money: cs on {o} (levels)"):
                res = module.fit(data, spec)
        except DesignError as exc:
            note(f"value for money: cs on {o} failed ({exc}); its rows are left out")
            continue
        if res.influence is not None and "att_gt" in res.influence:
            att_gts[o] = res.influence["att_gt"]
            fitted.append(o)
    with step("value for money"):
        table, meta = value_for_money(att_gts, costs, vfm, float(params["estimate"]["alpha"]))
    meta["fitted_for_value_for_money"] = fitted
    if meta["missing"]:
        note(f"value for money: no cs estimate of {', '.join(meta['missing'])}; those rows are left out")
    run.value_for_money = (table, meta)


def _name_variant(result: EstimationResult, key: str, base: str) -> None:
    """A variant's result carries the variant's key (its files, rows and report label)."""
    if key == base:
        return
    result.estimator = key
    result.tidy["estimator"] = key
    result.meta["estimator"] = key
    result.meta["base_estimator"] = base


def _fit_engine(panel_path: Path, spec: EstimatorSpec, module, engine: str, key: str, on_error: str, run: EstimateRun):
    """The sufficient-statistics path (pipeline.engine.fit_from_parquet); None when the run
    was skipped under on_error: skip."""
    from .engine import fit_from_parquet

    try:
        with step(f"estimate {spec.yname} x {key} (engine {engine})"):
            return fit_from_parquet(panel_path, spec, module, engine)
    except ClusterImpactError as exc:
        if on_error == "skip" and isinstance(exc, DesignError):
            note(f"skipped {spec.yname} x {key}: {exc}")
            run.skipped.append({"outcome": spec.yname, "estimator": key, "reason": str(exc)})
            return None
        raise


def _attach_sensitivity(result: EstimationResult, params: Params) -> None:
    """HonestDiD robust intervals and pre-test power for the event studies params name."""
    from models.inference.sensitivity import event_study_sensitivity

    sens = params["estimate"]["sensitivity"]
    outcomes = sens.get("outcomes")
    if result.estimator not in (sens.get("estimators") or []) or "vcov_dynamic" not in result.tables:
        return
    if outcomes is not None and result.outcome not in outcomes:
        return
    try:
        with step(f"sensitivity {result.outcome} x {result.estimator}"):
            table, summary = event_study_sensitivity(
                result.tidy, result.tables["vcov_dynamic"], mbar=tuple(sens.get("mbar") or (0.5, 1, 1.5, 2)),
                window=tuple(sens.get("window") or (-5, 5)),
                alpha=float(params["estimate"]["alpha"]), seed=params.seed,
            )
    except ValueError as exc:
        result.meta["sensitivity"] = {"not_run": str(exc)}
        return
    result.tables["honest_did"] = table
    result.meta["sensitivity"] = summary


def write_results(run: EstimateRun, out_dir: Path) -> None:
    """Persist every result as ``<outcome>-<estimator>.parquet`` (tidy rows), ``.json``
    (meta) and ``<outcome>-<estimator>--<table>.parquet`` (auxiliary tables), plus
    ``_summary.json`` (what ran, what was skipped and why). Never pickle."""
    from .io import replace_directory

    def fill(out, tmp: Path) -> None:
        summary = {"results": [], "skipped": run.skipped}
        for r in run.results:
            stem = f"{r.outcome}-{r.estimator}"
            out.parquet(tmp / f"{stem}.parquet", r.tidy)
            meta = dict(r.meta)
            meta["tables"] = sorted(r.tables)
            out.json(tmp / f"{stem}.json", meta)
            for name, table in sorted(r.tables.items()):
                tab = table.copy()
                if not isinstance(tab.index, pd.RangeIndex):
                    tab = tab.reset_index()
                tab.columns = [str(c) for c in tab.columns]
                out.parquet(tmp / f"{stem}--{name}.parquet", tab)
            summary["results"].append({"outcome": r.outcome, "estimator": r.estimator, "stem": stem})
        if run.value_for_money is not None:
            out.parquet(tmp / "_value_for_money.parquet", run.value_for_money[0])
            out.json(tmp / "_value_for_money.json", run.value_for_money[1])
        out.json(tmp / "_summary.json", summary)

    replace_directory(out_dir, fill)


def read_results(out_dir: Path) -> tuple[pd.DataFrame, dict[str, dict], dict[str, dict[str, pd.DataFrame]], list[dict]]:
    """Read what :func:`write_results` wrote: (all tidy rows, metas, tables, skipped)."""
    from .io import read_json

    summary = read_json(out_dir / "_summary.json")
    tidies, metas, tables = [], {}, {}
    for item in summary["results"]:
        stem = item["stem"]
        tidies.append(pd.read_parquet(out_dir / f"{stem}.parquet"))
        meta = read_json(out_dir / f"{stem}.json")
        metas[stem] = meta
        tables[stem] = {name: pd.read_parquet(out_dir / f"{stem}--{name}.parquet") for name in meta.get("tables", [])}
    tidy = pd.concat(tidies, ignore_index=True) if tidies else pd.DataFrame()
    return tidy, metas, tables, summary["skipped"]
