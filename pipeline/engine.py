"""Sufficient statistics for unconditional Callaway-Sant'Anna straight from the Parquet panel.

:func:`cs_moments` computes the per-cohort moments of :class:`models.did.cs_moments.Moments`
(counts, means, within-cohort scatter of the outcome vector, and per-(cluster, cohort)
counts and sums) with an embedded SQL engine, DuckDB, reading only the needed columns of
the Parquet file; the panel is never materialised in pandas (DuckDB holds one row per unit
with the T outcomes in a temporary table and spills to disk above ``memory_limit``).
``engine="pandas"`` loads the columns and runs att_gt's own in-memory preparation (the
reference the DuckDB path is tested against).

Sample rules are att_gt's (:func:`models.did.att_gt.cohort_rules`, the same thresholds, applied
in SQL): rows with a missing id/period/outcome/cohort/cluster are dropped (counted as
``missing_values``; a null outcome separately as ``missing_outcome``), cohorts after the last
period + anticipation recoded as never treated, the no-never-treated rule, always-treated
units dropped (``treated_in_first_period``) and units not observed in every period dropped
(``unbalanced_panel``), all counted in rows. Duplicate (unit, period) rows, a cohort or a
cluster varying within a unit raise BadInputError, as att_gt.

Engines: ``duckdb`` (embedded, 2 threads, spills to disk) and ``spark`` (PySpark; local mode
or a cluster, see :mod:`pipeline.spark`) run the same SQL strings (:func:`_sql_moments`,
one implementation): each engine class supplies only what is not SQL -- identifier quoting,
temporary views, a materialised table and fetching a small result. Six statements on a valid
panel: (period, cohort) counts; the units table (one row per unit); one aggregate holding
every check and drop count; cohort means; centred scatter; (cluster, cohort) sums. The results are small (cohorts x
periods^2 and clusters x cohorts x periods) and feed :func:`models.did.cs_moments.att_gt_from_moments`
and the compressed TWFE/event study of :mod:`models.did.es_moments`. Ibis was considered for
the shared path; plain SQL in the common subset of both dialects needed no translation layer
(and ibis-framework is not a dependency).
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from models.did.att_gt import cohort_rules
from models.did.cs_moments import Moments, moments_from_frame
from models.errors import BadInputError, ConfigError, DesignError, first_keys

from .progress import step

DUCKDB_THREADS = 2  # the machine has 2 cores
DUCKDB_MEMORY_LIMIT = "3GB"  # spills to temp_directory above this


def _q(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _lit(x: float) -> str:
    return repr(float(x))


def cs_moments(
    panel_path: Path | str,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    periods=None,
    cluster: str | None = None,
    engine: str = "duckdb",
    *,
    anticipation: int = 0,
    control_group: str = "nevertreated",
    threads: int = DUCKDB_THREADS,
    memory_limit: str = DUCKDB_MEMORY_LIMIT,
) -> Moments:
    """Per-cohort moments of ``yname`` for unconditional CS from a Parquet panel.

    ``periods``: restrict to these periods (None = all). ``cluster``: a time-invariant
    column coarser than the unit (None or ``idname`` = unit level). ``dropped`` of the
    result counts rows, with the outcome's missing rows under ``missing_outcome``.
    """
    if cluster == idname:
        cluster = None
    path = Path(panel_path)
    if engine == "pandas":
        return _pandas(path, yname, tname, idname, gname, periods, cluster, anticipation, control_group)
    if engine not in ("duckdb", "spark"):
        raise ConfigError(f"engine={engine!r}: the moments path runs on duckdb, spark or pandas")
    if not path.exists():
        raise BadInputError(f"engine {engine}: panel {path} does not exist")
    db = _DuckDB(path, threads, memory_limit) if engine == "duckdb" else _Spark(path)
    try:
        return _sql_moments(db, path, yname, tname, idname, gname, periods, cluster, anticipation, control_group)
    finally:
        db.close()


def _pandas(path, yname, tname, idname, gname, periods, cluster, anticipation, control_group) -> Moments:
    cols = list(dict.fromkeys([idname, tname, yname, gname] + ([cluster] if cluster else [])))
    with step(f"moments (pandas) of {yname}"):
        data = pd.read_parquet(path, columns=cols)
        if periods is not None:
            data = data.loc[data[tname].isin(list(periods))]
        miss = data[yname].isna()
        n_miss = int(miss.sum())
        data = data.loc[~miss]
        m = moments_from_frame(data, yname, tname, idname, gname, cluster, anticipation, control_group)
    if n_miss:
        m.dropped = {"missing_outcome": n_miss, **m.dropped}
    return m


class _DuckDB:
    """DuckDB: the embedded engine (2 threads, spills to a temporary folder above ``memory_limit``)."""

    name = "duckdb"

    def __init__(self, path: Path, threads: int, memory_limit: str):
        import duckdb

        self._tmp = tempfile.mkdtemp(prefix="cs-duckdb-")
        self.con = duckdb.connect(
            config={"threads": int(threads), "memory_limit": memory_limit, "temp_directory": self._tmp, "preserve_insertion_order": False}
        )
        self.con.execute(f"CREATE TEMPORARY VIEW src AS SELECT * FROM read_parquet({_lit_path(path)})")

    def q(self, name: str) -> str:
        return '"' + str(name).replace('"', '""') + '"'

    def columns(self) -> list[str]:
        return [r[0] for r in self.con.execute("DESCRIBE SELECT * FROM src").fetchall()]

    def view(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE TEMPORARY VIEW {name} AS {sql}")

    def table(self, name: str, sql: str) -> None:
        self.con.execute(f"CREATE TEMPORARY TABLE {name} AS {sql}")

    def frame(self, sql: str) -> pd.DataFrame:
        return self.con.execute(sql).fetchdf()

    def close(self) -> None:
        import shutil

        self.con.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


class _Spark:
    """Apache Spark through PySpark (session from :func:`pipeline.spark.session`): the same
    SQL, with temporary views and a cached table."""

    name = "spark"

    def __init__(self, path: Path):
        from .spark import session

        self.spark = session()
        self._views: list[str] = []
        self.spark.read.parquet(str(path)).createOrReplaceTempView("src")
        self._views.append("src")

    def q(self, name: str) -> str:
        return "`" + str(name).replace("`", "``") + "`"

    def columns(self) -> list[str]:
        return list(self.spark.table("src").columns)

    def view(self, name: str, sql: str) -> None:
        self.spark.sql(sql).createOrReplaceTempView(name)
        self._views.append(name)

    def table(self, name: str, sql: str) -> None:
        self.spark.sql(f"CACHE TABLE {name} AS {sql}")
        self._views.append(name)

    def frame(self, sql: str) -> pd.DataFrame:
        return self.spark.sql(sql).toArrow().to_pandas()

    def close(self) -> None:
        for v in reversed(self._views):
            self.spark.sql(f"UNCACHE TABLE IF EXISTS {v}")
            self.spark.catalog.dropTempView(v)


def _finite(col: str) -> str:
    """Finite and not null, in SQL both engines read alike (NaN sorts above every number in
    DuckDB and Spark, so the comparison is false for NaN, +-inf and NULL)."""
    return f"abs({col}) < 1e308"


def _count_if(cond: str) -> str:
    return f"sum(CASE WHEN {cond} THEN 1 ELSE 0 END)"


def _n_periods(periods: np.ndarray) -> str:
    """Distinct periods per unit, in SQL both engines run alike: the unit's periods as bits
    of a BIGINT (``bit_or`` of one bit per period, then ``bit_count``); count(DISTINCT) is
    ~5x slower in DuckDB and makes Spark expand every row. Beyond 62 periods
    count(DISTINCT)."""
    if periods.size > 62:
        return "count(DISTINCT t)"
    bits = " ".join(f"WHEN t = {_lit(p)} THEN CAST({1 << k} AS BIGINT)" for k, p in enumerate(periods))
    return f"bit_count(bit_or(CASE {bits} END))"


def _sql_moments(db, path, yname, tname, idname, gname, periods, cluster, anticipation, control_group) -> Moments:
    """The moments in three passes of SQL that DuckDB and Spark run alike (``db`` supplies
    quoting, views, a materialised table and fetching)."""
    q = db.q
    have = set(db.columns())
    need = [idname, tname, yname, gname] + ([cluster] if cluster else [])
    lack = [c for c in dict.fromkeys(need) if c not in have]
    if lack:
        raise BadInputError(f"engine {db.name}: {path.name} lacks column(s) {lack} (available: {', '.join(sorted(have))})")
    cl_sel = f", {q(cluster)} AS cl" if cluster else ""
    where_p = f" WHERE {q(tname)} IN ({', '.join(_lit(p) for p in periods)})" if periods is not None else ""
    db.view(
        "raw",
        f"SELECT {q(idname)} AS id, CAST({q(tname)} AS DOUBLE) AS t, CAST({q(yname)} AS DOUBLE) AS y, "
        f"CAST({q(gname)} AS DOUBLE) AS g{cl_sel} FROM src{where_p}",
    )
    ok_cond = f"id IS NOT NULL AND {_finite('t')} AND {_finite('g')} AND {_finite('y')}"
    if cluster:
        ok_cond += " AND cl IS NOT NULL"
    dropped: dict[str, int] = {}
    notes: list[str] = []
    # pass 1: (period, cohort) row counts -> periods, cohorts, missing rows, rules
    with step(f"{db.name}: period x cohort counts of {yname}"):
        tg = db.frame(
            f"SELECT t, g, count(*) AS n, {_count_if(ok_cond)} AS n_ok, "
            f"{_count_if('y IS NULL OR isnan(y)')} AS n_ymiss FROM raw GROUP BY t, g"
        )
    n_ymiss = int(tg["n_ymiss"].sum())
    n_other = int((tg["n"] - tg["n_ok"]).sum()) - n_ymiss
    if n_ymiss:
        dropped["missing_outcome"] = n_ymiss
    if n_other:
        dropped["missing_values"] = n_other
    tg = tg.loc[tg["n_ok"] > 0]
    if tg.empty:
        raise DesignError("att_gt: no rows left after dropping missing values")
    rules = cohort_rules(np.unique(tg["t"]), np.unique(tg["g"]), anticipation, control_group)
    late = (tg["g"] != 0) & (tg["g"] > rules.late_after)
    if late.any():
        notes.append(f"{int(tg.loc[late, 'n_ok'].sum())} rows with {gname} after the last period (+anticipation) treated as never treated")
    tkeep = np.unique(tg["t"])
    if rules.period_cutoff is not None:
        tkeep = tkeep[tkeep < rules.period_cutoff]
    # pass 2: one row per unit with its T outcomes; checks (sum of the one matching row:
    # duplicates are rejected below)
    piv = ", ".join(f"sum(CASE WHEN t = {_lit(p)} THEN y END) AS y{k}" for k, p in enumerate(tkeep))
    nt = _n_periods(np.unique(tg["t"]))
    cl_agg = ", min(cl) AS cl, count(DISTINCT cl) AS ncl" if cluster else ""
    cut = f"t < {_lit(rules.period_cutoff)}" if rules.period_cutoff is not None else "TRUE"
    geff = f"CASE WHEN g = 0 OR g > {_lit(rules.late_after)} THEN 0 " + (
        f"WHEN g = {_lit(rules.latest)} THEN 0 " if rules.latest_as_never else ""
    ) + "ELSE g END"
    with step(f"{db.name}: pivot units x {tkeep.size} periods"):
        db.table(
            "units",
            f"SELECT id, count(*) AS nrows, {nt} AS nt, min(g) AS g, max(g) AS gmax, "
            f"{_count_if(cut)} AS nkeep{cl_agg}, {piv} FROM raw WHERE {ok_cond} GROUP BY id",
        )
    # every check and drop count in one aggregate over the units (one job on Spark); the
    # first offending ids are fetched only when a check fails
    always = f"(({geff}) <> 0 AND ({geff}) <= {_lit(rules.always_upto)})"
    checks = ["nrows > nt", "g <> gmax"] + (["ncl > 1"] if cluster else [])
    row = db.frame(
        "SELECT " + ", ".join(f"{_count_if(c)} AS c{i}" for i, c in enumerate(checks))
        + f", sum(nrows - nkeep) AS cut, sum(CASE WHEN {always} THEN nkeep END) AS a, sum(CASE WHEN NOT {always} THEN nkeep END) AS kept, "
        + ", ".join(f"count(CASE WHEN NOT {always} THEN y{k} END) AS k{k}" for k in range(tkeep.size))
        + " FROM units"
    ).iloc[0].tolist()
    n_bad = [int(_num(v)) for v in row[: len(checks)]]
    row = row[len(checks) :]

    def first(cond: str) -> str:
        return first_keys(list(db.frame(f"SELECT id FROM units WHERE {cond} ORDER BY id LIMIT 5")["id"]))

    if n_bad[0]:
        raise BadInputError(
            f"engine {db.name}: {n_bad[0]} unit(s) have more than one row for a ({idname}, {tname}) pair; the panel needs one row per unit "
            f"and period. First: {first(checks[0])}. Deduplicate the panel."
        )
    problems = []
    if n_bad[1]:
        problems.append(f"column {gname!r} varies within {n_bad[1]} unit(s) ({first(checks[1])}); the first treatment period must be constant per unit")
    if cluster and n_bad[2]:
        problems.append(f"cluster column {cluster!r} varies over time within {n_bad[2]} unit(s) ({first(checks[2])}); use a time-invariant cluster variable")
    if problems:
        raise BadInputError(f"engine {db.name}: bad input:", problems=problems)
    n_cut, n_always, n_kept = int(_num(row[0])), int(_num(row[1])), int(_num(row[2]))
    if rules.period_cutoff is not None:
        dropped["periods_without_comparison_group"] = n_cut
        notes.append(
            f"no never-treated units: periods >= {rules.period_cutoff:g} dropped; cohort {rules.latest:g} "
            + ("serves as never treated" if control_group == "nevertreated" else "kept only as not-yet-treated comparison")
        )
    if n_always:
        dropped["treated_in_first_period"] = n_always
    cols = [k for k in range(tkeep.size) if row[3 + k] > 0]  # periods left after dropping always-treated units
    T = len(cols)
    if not T:
        raise DesignError("att_gt: no units left after dropping always-treated and unbalanced units")
    full = f"NOT {always} AND nkeep = {T} AND " + " AND ".join(f"y{k} IS NOT NULL" for k in cols)
    # pass 3: per-cohort counts, means, within-cohort scatter (two-pass, centred)
    with step(f"{db.name}: cohort moments ({T} periods)"):
        db.view("bal", f"SELECT ({geff}) AS h{', cl' if cluster else ''}, {', '.join(f'y{k}' for k in cols)} FROM units WHERE {full}")
        means = db.frame(f"SELECT h, count(*) AS n, {', '.join(f'avg(y{k}) AS m{k}' for k in cols)} FROM bal GROUP BY h ORDER BY h")
        if means.empty:
            raise DesignError("att_gt: no units left after dropping always-treated and unbalanced units")
        # rows of the units not kept: every kept (balanced) unit has exactly T rows
        n_unbal = n_kept - T * int(means["n"].sum())
        if n_unbal:
            dropped["unbalanced_panel"] = n_unbal
        db.view("means", f"SELECT * FROM ({means_values(means, cols)}) AS mv(h, {', '.join(f'm{k}' for k in cols)})")
        pairs = [(a, b) for i, a in enumerate(cols) for b in cols[i:]]
        # centre once per unit and period (T subtractions a row, not T(T+1))
        db.view("cen", f"SELECT b.h, {', '.join(f'b.y{k} - m.m{k} AS z{k}' for k in cols)} FROM bal b JOIN means m ON b.h = m.h")
        sc = db.frame(
            "SELECT h, " + ", ".join(f"sum(z{a} * z{c}) AS s{j}" for j, (a, c) in enumerate(pairs)) + " FROM cen GROUP BY h ORDER BY h"
        )
    H = len(means)
    mean = means[[f"m{k}" for k in cols]].to_numpy(float)
    scatter = np.zeros((H, T, T))
    pos = {k: i for i, k in enumerate(cols)}
    for j, (a, c) in enumerate(pairs):
        v = sc[f"s{j}"].to_numpy(float)
        scatter[:, pos[a], pos[c]] = v
        scatter[:, pos[c], pos[a]] = v
    cohorts = means["h"].to_numpy(float)
    n_h = means["n"].to_numpy(np.int64)
    cl = {}
    if cluster:
        with step(f"{db.name}: (cluster, cohort) sums of {yname}"):
            cs_ = db.frame(
                f"SELECT cl, h, count(*) AS n, {', '.join(f'sum(y{k}) AS s{k}' for k in cols)} FROM bal GROUP BY cl, h ORDER BY cl, h"
            )
        cl = dict(
            cluster_code=pd.factorize(cs_["cl"])[0].astype(np.int64),
            cluster_cohort=np.searchsorted(cohorts, cs_["h"].to_numpy(float)).astype(np.int64),
            cluster_n=cs_["n"].to_numpy(np.int64),
            cluster_sum=cs_[[f"s{k}" for k in cols]].to_numpy(float),
        )
    n = int(n_h.sum())
    return Moments(
        periods=tkeep[cols].astype(np.int64),
        cohorts=cohorts.astype(np.int64),
        n=n_h,
        mean=mean,
        scatter=scatter,
        exclude_g=rules.exclude_g,
        n_obs=n * T,
        dropped=dropped,
        notes=notes,
        **cl,
    )


def means_values(means: pd.DataFrame, cols: list[int]) -> str:
    """The per-cohort means as an inline VALUES table (exact: repr of each double), so the
    centring pass needs no second scan to recompute them."""
    rows = []
    for _, r in means.iterrows():
        rows.append("(" + ", ".join([_lit(r["h"])] + [_lit(r[f"m{k}"]) for k in cols]) + ")")
    return "VALUES " + ", ".join(rows)


def _num(x) -> float:
    """A SQL aggregate that may be NULL (no rows) as a number."""
    return 0.0 if x is None or (isinstance(x, float) and np.isnan(x)) or x is pd.NA else float(x)


def _lit_path(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


def cohort_period_means(panel_path: Path | str, yname: str, tname: str, gname: str, *, threads: int = DUCKDB_THREADS, memory_limit: str = DUCKDB_MEMORY_LIMIT) -> pd.DataFrame:
    """One DuckDB group-by pass: mean outcome by (cohort, period) -- the floor any
    sufficient-statistics estimator pays (used for timing comparisons)."""
    import duckdb

    con = duckdb.connect(config={"threads": int(threads), "memory_limit": memory_limit})
    try:
        return con.execute(
            f"SELECT {_q(gname)} AS g, {_q(tname)} AS t, count(*) AS n, avg({_q(yname)}) AS y FROM read_parquet({_lit_path(Path(panel_path))}) "
            f"WHERE {_q(yname)} IS NOT NULL GROUP BY ALL ORDER BY g, t"
        ).fetchdf()
    finally:
        con.close()


_MOMENTS_CACHE: dict[tuple, Moments] = {}


class EngineFallback(Exception):
    """The sufficient-statistics path is not exact for this sample; load the panel instead."""


def fit_from_parquet(panel_path: Path | str, spec, module, engine: str = "duckdb"):
    """Fit a registry estimator that exposes ``fit_from_moments`` (``models.did.cs``) from
    sufficient statistics computed by ``engine`` over the Parquet panel; the result carries
    the same tidy rows and meta as ``module.fit`` on the loaded panel (to rounding), with
    ``meta["dropped"]`` using estimate_all's key for the outcome's missing rows and
    ``meta["rows_in"]`` = rows of the file. Covariates need unit-level data (ConfigError:
    the caller loads the panel instead). Fixed effects beyond firm and year
    (``spec.fixed_effects``) are not cohort x period functions: EngineFallback (the caller
    loads the panel, with a note)."""
    if getattr(spec, "fixed_effects", ()):
        raise EngineFallback(f"fixed effects {list(spec.fixed_effects)} need unit-level data")
    import pyarrow.parquet as pq

    if spec.covariates:
        raise ConfigError("the sufficient-statistics path is unconditional; with covariates load the panel (engine pandas)")
    o = {**module.OPTIONS, **(spec.options or {})}
    cluster = spec.vcov.by[0] if spec.vcov.kind == "cluster" and spec.vcov.by else None
    cs_rules = getattr(module, "MOMENTS_SAMPLE", "cs") == "cs"
    # the regression estimators (MOMENTS_SAMPLE "all") take CS's moments as they are: with
    # never-treated units the control-group rules change nothing, without them es_moments
    # declines (exclude_g) and the panel is loaded
    key = (str(Path(panel_path).resolve()), Path(panel_path).stat().st_mtime_ns, engine, spec.yname, spec.tname,
           spec.idname, spec.gname, cluster, int(o.get("anticipation") or 0) if cs_rules else 0, spec.control_group)
    m = _MOMENTS_CACHE.get(key)
    if m is None:
        try:
            m = cs_moments(
                panel_path, spec.yname, spec.tname, spec.idname, spec.gname, cluster=cluster, engine=engine,
                anticipation=key[8], control_group=spec.control_group,
            )
        except DesignError as exc:
            if o.get("allow_unbalanced_panel"):
                # e.g. no complete unit at all: the balanced moments cannot be formed, the
                # unbalanced estimator in memory can
                raise EngineFallback(f"the balanced moments cannot be formed ({exc}); allow_unbalanced_panel loads the panel") from exc
            raise
        except BadInputError as exc:
            if cs_rules:
                raise
            # e.g. a cluster that varies within a unit: fine for the regression in memory
            raise EngineFallback(f"the moments cannot be formed ({exc}); the in-memory path decides") from exc
        _MOMENTS_CACHE.clear()  # one outcome's moments at a time (estimate_all loops estimators within an outcome)
        _MOMENTS_CACHE[key] = m
    if not cs_rules and m.dropped.get("missing_outcome"):
        raise EngineFallback(f"{m.dropped['missing_outcome']} rows with a missing {spec.yname} make the panel unbalanced")
    d = dict(m.dropped)
    n_missing = d.pop("missing_outcome", 0)
    result = module.fit_from_moments(dataclasses.replace(m, dropped=d, notes=list(m.notes)), spec)
    if result is None:  # not exact on this sample (e.g. an unbalanced panel): the caller loads it
        raise EngineFallback("the compressed regression is exact only on a balanced panel with never-treated units and no dropped rows")
    if n_missing:
        result.meta["dropped"] = {**result.meta["dropped"], "missing_outcome_or_covariate": n_missing}
    result.meta["rows_in"] = int(pq.read_metadata(panel_path).num_rows)
    result.meta["engine"] = f"{engine} (sufficient statistics: per-cohort moments)"
    return result
