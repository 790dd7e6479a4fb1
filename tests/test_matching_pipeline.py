"""End to end: ``cluster-impact ingest / build_groups / estimate`` with the ``matching`` and
``weighting`` estimators on the project's own generator (selection on observables and trends).
Opt-in (``pytest -m slow``): three CLI stages take ~20 s on the shared 2-core machine."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from _project import cli, make_project, project_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    params = project_params(estimators=["matching", "weighting"], outcomes=["log_labour_productivity"])
    params["estimate"]["matching"] = {"method": "nearest", "ratio": 1, "horizon": 3}
    params["estimate"]["weighting"] = {"method": "ebal", "horizon": 3}
    p = make_project(tmp_path_factory.mktemp("matching"), n_firms=1500, seed=3, params=params,
                     selection="observables+trends")
    for stage in ("ingest", "build_groups", "estimate"):
        cli(stage, "--params", str(p), cwd=p.parent, check=True)
    return p.parent


@pytest.mark.parametrize("key", ["matching", "weighting"])
def test_pipeline_outputs_and_recovery(project, key):
    est = project / "data" / "estimates"
    tidy = pd.read_parquet(est / f"log_labour_productivity-{key}.parquet")
    meta = json.loads((est / f"log_labour_productivity-{key}.json").read_text())
    assert set(tidy["aggregation"]) == {"matched"} and set(tidy["term"]) == {"level", "did"}
    for k in ("n_obs", "n_units", "n_treated_units", "n_clusters", "vcov", "control_group", "dropped", "pretrend"):
        assert k in meta
    assert (est / f"log_labour_productivity-{key}--balance.parquet").exists()
    truth = pd.read_csv(project / "data" / "raw" / "truth.csv")
    truth = truth[(truth["outcome"] == "log_labour_productivity") & truth["cohort"].isin(meta["cohorts"])
                  & truth["event_time"].between(0, 3)]
    by_e = truth.groupby("event_time").apply(lambda x: np.average(x["att"], weights=x["n_firms"]), include_groups=False)
    overall = tidy[(tidy["term"] == "did") & tidy["event_time"].isna()].iloc[0]
    # the overall DiD averages e = 0..3; 2.5 SE: one seed, and the cohort weights (matched treated
    # firms) differ slightly from truth.csv's member counts
    assert abs(overall["estimate"] - by_e.mean()) < 2.5 * overall["std_error"]
