"""Benchmark tasks. Each runs in a fresh process (see run.py) so wall time and peak memory
(ru_maxrss of the child) are measured for that task alone. A task gets the path of a panel
Parquet file and returns a small dict of headline numbers, used to check that we and the peers
computed the same thing.

Panel columns: firm_id (int64), year, first_treat (0 = never), rel_time, post, y (log
labour productivity), x (time-invariant covariate: log employment in the first year),
count (patents), treated (ever member, 0/1).
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

TASKS = {}


def task(name):
    def deco(fn):
        TASKS[name] = fn
        return fn

    return deco


def _spec(y="y", covariates=(), options=None):
    from models.spec import EstimatorSpec
    from models.vcov import VcovSpec

    return EstimatorSpec(yname=y, covariates=tuple(covariates), vcov=VcovSpec("cluster", ("firm_id",)), options=options or {})


# --- floor -------------------------------------------------------------------------------
@task("floor_groupby")
def floor_groupby(df):
    """The physical floor: one group-by pass (cohort x year means of y)."""
    m = df.groupby(["first_treat", "year"], sort=False)["y"].mean()
    return {"cells": int(len(m))}


PATH_TASKS = set()  # tasks that read the Parquet file themselves (out-of-core engines)


def path_task(name):
    PATH_TASKS.add(name)
    return task(name)


@path_task("floor_duckdb")
def floor_duckdb(path):
    """The floor for the out-of-core engine: one DuckDB group-by pass over the Parquet file."""
    from pipeline.engine import cohort_period_means

    m = cohort_period_means(path, "y", "year", "first_treat")
    return {"cells": int(len(m))}


@path_task("ours_cs_duckdb")
def ours_cs_duckdb(path):
    """Unconditional CS from sufficient statistics computed by DuckDB (engine: duckdb)."""
    from models.did import cs
    from pipeline.engine import fit_from_parquet

    r = fit_from_parquet(path, _spec(options=dict(cs.OPTIONS)), cs, engine="duckdb")
    row = r.tidy[r.tidy["aggregation"] == "simple"].iloc[0]
    return {"simple_att": float(row["estimate"]), "simple_se": float(row["std_error"])}


@path_task("ours_twfe_duckdb")
def ours_twfe_duckdb(path):
    """Static TWFE from DuckDB sufficient statistics (compressed regression, exact on a balanced panel)."""
    from models.did import twfe
    from pipeline.engine import fit_from_parquet

    r = fit_from_parquet(path, _spec(), twfe, engine="duckdb")
    row = r.headline()
    return {"att": float(row["estimate"]), "se": float(row["std_error"])}


@path_task("ours_event_study_duckdb")
def ours_event_study_duckdb(path):
    """Binned event study from DuckDB sufficient statistics (compressed regression)."""
    from models.did import event_study
    from pipeline.engine import fit_from_parquet

    r = fit_from_parquet(path, _spec(options=dict(event_study.OPTIONS)), event_study, engine="duckdb")
    t = r.tidy[r.tidy["event_time"] == 0].iloc[0]
    return {"e0": float(t["estimate"]), "e0_se": float(t["std_error"])}


# --- Callaway-Sant'Anna ------------------------------------------------------------------
def _ours_cs(df, covariates=(), est_method="dr"):
    from models.did.aggte import aggte
    from models.did.att_gt import att_gt

    r = att_gt(df, yname="y", tname="year", idname="firm_id", gname="first_treat", covariates=list(covariates), est_method=est_method)
    s = aggte(r, type="simple")
    return {"simple_att": float(s.overall_att), "simple_se": float(s.overall_se)}


@task("ours_cs")
def ours_cs(df):
    return _ours_cs(df)


@task("ours_cs_dr")
def ours_cs_dr(df):
    return _ours_cs(df, covariates=["x"], est_method="dr")


def _moderndid(df, xformla=None):
    import moderndid

    r = moderndid.att_gt(df, yname="y", tname="year", idname="firm_id", gname="first_treat", xformla=xformla, est_method="dr", boot=False, cband=False)
    s = moderndid.aggte(r, type="simple")
    return {"simple_att": float(s.overall_att), "simple_se": float(s.overall_se)}


@task("moderndid_cs")
def moderndid_cs(df):
    return _moderndid(df)


@task("moderndid_cs_dr")
def moderndid_cs_dr(df):
    return _moderndid(df, "~ x")


def _csdid(df, xformla=None):
    from csdid.att_gt import ATTgt

    r = ATTgt(yname="y", tname="year", idname="firm_id", gname="first_treat", data=df, xformla=xformla).fit(est_method="dr")
    r.aggte(typec="simple")
    return {"simple_att": float(np.ravel(r.atte["overall_att"])[0]), "simple_se": float(np.ravel(r.atte["overall_se"])[0])}


@task("csdid_cs")
def csdid_cs(df):
    return _csdid(df)


@task("csdid_cs_dr")
def csdid_cs_dr(df):
    return _csdid(df, "y ~ x")


def _differences(df, formula):
    from differences import ATTgt

    d = df.assign(cohort=df["first_treat"].where(df["first_treat"] > 0)).set_index(["firm_id", "year"])
    att = ATTgt(data=d, cohort_column="cohort")
    att.fit(formula=formula, est_method="dr" if "~" in formula and formula.split("~")[1].strip() else "reg", progress_bar=False)
    s = att.aggregate("simple")
    return {"simple_att": float(s.iloc[0, 0]), "simple_se": float(s.iloc[0, 1])}


@task("differences_cs")
def differences_cs(df):
    return _differences(df, "y")


@task("differences_cs_dr")
def differences_cs_dr(df):
    return _differences(df, "y ~ x")


# --- TWFE / event study / Poisson ---------------------------------------------------------
@task("ours_twfe")
def ours_twfe(df):
    from models.did import twfe

    r = twfe.fit(df, _spec())
    row = r.headline()
    return {"att": float(row["estimate"]), "se": float(row["std_error"])}


@task("pyfixest_twfe")
def pyfixest_twfe(df):
    import pyfixest as pf

    m = pf.feols("y ~ post | firm_id + year", data=df.assign(post=df["post"].astype(int)), vcov={"CRV1": "firm_id"})
    return {"att": float(m.coef()["post"]), "se": float(m.se()["post"])}


@task("ours_event_study")
def ours_event_study(df):
    from models.did import event_study

    r = event_study.fit(df, _spec(options=dict(event_study.OPTIONS)))
    t = r.tidy[r.tidy["event_time"] == 0].iloc[0]
    return {"e0": float(t["estimate"]), "e0_se": float(t["std_error"])}


@task("pyfixest_event_study")
def pyfixest_event_study(df):
    import pyfixest as pf

    d = df.assign(rel=df["rel_time"].fillna(-1).clip(-5, 5).astype(int))
    m = pf.feols("y ~ i(rel, ref=-1) | firm_id + year", data=d, vcov={"CRV1": "firm_id"})
    c = m.coef()
    key = [k for k in c.index if k.endswith("[0]") or k.endswith("::0") or k.endswith("0]")][0]
    return {"e0": float(c[key]), "e0_se": float(m.se()[key])}


@task("ours_ppml")
def ours_ppml(df):
    from models.counts import ppml

    r = ppml.fit(df, _spec(y="count", options=dict(ppml.OPTIONS)))
    row = r.tidy[r.tidy["term"] == "post"].iloc[0]
    return {"b": float(row["estimate"]), "se": float(row["std_error"])}


@task("pyfixest_fepois")
def pyfixest_fepois(df):
    import pyfixest as pf

    m = pf.fepois("count ~ post | firm_id + year", data=df.assign(post=df["post"].astype(int)), vcov={"CRV1": "firm_id"})
    return {"b": float(m.coef()["post"]), "se": float(m.se()["post"])}


# --- matching -----------------------------------------------------------------------------
def _cross_section(df):
    first = df.groupby("firm_id", sort=True).first().reset_index()
    return first[["firm_id", "treated", "x", "y"]].rename(columns={"y": "y0"})


@task("ours_matching")
def ours_matching(df):
    from models.matching.matchit import matchit

    cs = _cross_section(df)
    t0 = time.perf_counter()
    m = matchit(cs, treat="treated", covariates=["x", "y0"], method="nearest", distance="glm", ratio=1, replace=False)
    return {"matched_controls": int((m.weights[cs["treated"].to_numpy() == 0] > 0).sum()), "match_seconds": time.perf_counter() - t0}


@task("r_matchit")
def r_matchit(df):
    cs = _cross_section(df)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cs.csv"
        cs.to_csv(path, index=False)
        script = f"""
suppressMessages(library(MatchIt))
d <- read.csv("{path}")
t0 <- Sys.time()
m <- matchit(treated ~ x + y0, data = d, method = "nearest", distance = "glm", ratio = 1, replace = FALSE)
el <- as.numeric(difftime(Sys.time(), t0, units = "secs"))
cat(sum(m$weights[d$treated == 0] > 0), el, "\\n")
"""
        out = subprocess.run(["Rscript", "-e", script], capture_output=True, text=True, check=True).stdout.split()
    return {"matched_controls": int(out[0]), "match_seconds": float(out[1])}


# Modules each task family imports, loaded before the clock starts: the tables time the
# estimator call on data already in memory, not Python's module imports (about 1-2 s for
# scipy.stats, statsmodels, polars or numba-based packages alike). JIT compilation inside
# a peer's first call (pyfixest's numba kernels) stays in its time.
PRELOAD = {
    "ours": ["models.did.att_gt", "models.did.aggte", "models.did.cs", "models.did.twfe", "models.did.event_study",
             "models.counts.ppml", "models.matching.matchit", "models.spec", "models.vcov", "pipeline.engine"],
    "floor": ["pipeline.engine"],
    "moderndid": ["moderndid"],
    "csdid": ["csdid.att_gt"],
    "differences": ["differences"],
    "pyfixest": ["pyfixest"],
}


def main(argv):
    import importlib

    name, panel_path = argv[0], argv[1]
    import pyarrow.parquet as pq

    arg = panel_path if name in PATH_TASKS else pd.read_parquet(panel_path)
    for mod in PRELOAD.get(name.split("_")[0], ()):
        importlib.import_module(mod)
    t0 = time.perf_counter()
    out = TASKS[name](arg)
    out["seconds"] = time.perf_counter() - t0
    if "match_seconds" in out:  # matching: compare the matching call itself (R's own timer for MatchIt)
        out["task_seconds"], out["seconds"] = out["seconds"], out.pop("match_seconds")
    print("RESULT " + json.dumps(out))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main(sys.argv[1:])
