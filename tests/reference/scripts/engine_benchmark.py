"""Timing of unconditional CS at scale (a measurement, not a test; see the engine report).

    uv run python tests/reference/scripts/engine_benchmark.py generate PANEL N_FIRMS
    uv run python tests/reference/scripts/engine_benchmark.py duckdb PANEL
    uv run python tests/reference/scripts/engine_benchmark.py dense PANEL

Each step prints wall times and the peak resident memory of its own process
(resource.getrusage ru_maxrss), so run them as separate processes.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import numpy as np
import pandas as pd


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(path: str, n_firms: int) -> None:
    from pipeline.simulate import simulate_economy

    t0 = time.perf_counter()
    e = simulate_economy(n_firms=n_firms, years=(2003, 2022))
    f = e.firms
    ft = e.membership.groupby("firm_id")["join_year"].min()
    g = f["firm_id"].map(ft).fillna(0).astype("int64")
    g = g.where((g >= 2003) & (g <= 2022), 0)  # outside the window -> 0, as the brief asks
    out = pd.DataFrame({"firm_id": f["firm_id"], "year": f["year"].astype("int64"), "first_treat": g, "y": np.log(f["value_added"] / f["employees"])})
    out.to_parquet(path, index=False)
    print(json.dumps({"step": "generate", "rows": len(out), "firms": int(out.firm_id.nunique()), "seconds": round(time.perf_counter() - t0, 1), "peak_mb": round(peak_mb())}))


def duckdb_path(path: str) -> None:
    from models.did.aggte import aggte
    from models.did.cs_moments import att_gt_from_moments
    from pipeline.engine import cs_moments, cohort_period_means

    t0 = time.perf_counter()
    cohort_period_means(path, "y", "year", "first_treat")
    t1 = time.perf_counter()
    m = cs_moments(path, "y", "year", "firm_id", "first_treat")
    t2 = time.perf_counter()
    r = att_gt_from_moments(m)
    aggs = {ty: aggte(r, ty, na_rm=True) for ty in ("simple", "dynamic", "group", "calendar")}
    t3 = time.perf_counter()
    print(json.dumps({
        "step": "duckdb", "floor_cohort_year_means_s": round(t1 - t0, 2), "moments_s": round(t2 - t1, 2),
        "cells_and_aggte_s": round(t3 - t2, 3), "full_cs_s": round(t3 - t1, 2), "cells": int(r.att.size), "n": r.n,
        "simple": [aggs["simple"].overall_att, aggs["simple"].overall_se], "peak_mb": round(peak_mb()),
    }))


def dense(path: str) -> None:
    from models.did.aggte import aggte
    from models.did.att_gt import att_gt

    t0 = time.perf_counter()
    df = pd.read_parquet(path)
    t1 = time.perf_counter()
    r = att_gt(df, "y", "year", "firm_id", "first_treat")
    t2 = time.perf_counter()
    aggs = {ty: aggte(r, ty, na_rm=True) for ty in ("simple", "dynamic", "group", "calendar")}
    t3 = time.perf_counter()
    print(json.dumps({
        "step": "dense", "read_s": round(t1 - t0, 2), "att_gt_s": round(t2 - t1, 2), "aggte_s": round(t3 - t2, 2),
        "total_s": round(t3 - t0, 2), "cells": int(r.att.size), "n": r.n,
        "simple": [aggs["simple"].overall_att, aggs["simple"].overall_se], "peak_mb": round(peak_mb()),
    }))


if __name__ == "__main__":
    step, path = sys.argv[1], sys.argv[2]
    if step == "generate":
        generate(path, int(sys.argv[3]))
    elif step == "duckdb":
        duckdb_path(path)
    else:
        dense(path)
