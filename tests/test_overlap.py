"""Overlapping programmes: a second register (data.other_programme) whose firms are excluded,
controlled for, or split into an arm (build_groups.overlap), through the real CLI on a
generated economy where the second programme has its own effect and favours members (so
ignoring it biases the naive estimate)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests._project import cli, make_project, project_params

Y = "log_labour_productivity"
SIM = dict(n_firms=3000, seed=5, cohorts=[2014], effect="homogeneous", selection="random", other_share=0.12, other_effect=0.15)


def _project(tmp, overlap: str | None, covariates=(), **sim):
    params = project_params(outcomes=[Y], estimators=["twfe"], covariates=list(covariates))
    if overlap is not None:
        params["data"]["other_programme"] = {"path": "data/raw/other_programme.csv"}
        params["build_groups"]["overlap"] = overlap
    params["report"]["formats"] = ["html"]
    make_project(tmp, params=params, **{**SIM, **sim})
    return tmp


def _twfe(root):
    row = pd.read_parquet(root / "data/estimates" / f"{Y}-twfe.parquet").iloc[0]
    return float(row["estimate"]), float(row["std_error"])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = {}
    for name, overlap, cov in [("naive", None, ()), ("exclude", "exclude", ()), ("control", "control", ("other_programme",)), ("arm", "arm", ())]:
        root = _project(tmp_path_factory.mktemp(name), overlap, cov)
        cli("ingest", cwd=root, check=True)
        cli("build_groups", cwd=root, check=True)
        if name != "arm":
            cli("estimate", cwd=root, check=True)
        out[name] = root
    truth = pd.read_csv(out["naive"] / "data/raw/truth.csv")
    t = truth[(truth["outcome"] == Y) & (truth["group"] == "member")]
    out["truth"] = float(np.average(t["att"], weights=t["n_firms"]))
    return out


@pytest.mark.slow  # four projects of 3000 firms through ingest, build_groups and estimate
def test_ignoring_the_other_programme_biases_and_excluding_or_controlling_recovers_truth(runs):
    truth = runs["truth"]
    naive, se_n = _twfe(runs["naive"])
    excl, se_e = _twfe(runs["exclude"])
    ctrl, se_c = _twfe(runs["control"])
    assert naive - truth > 2 * se_n, (naive, truth, se_n)  # members get more of the other programme's effect
    assert abs(excl - truth) < 2.5 * se_e, (excl, truth, se_e)
    assert abs(ctrl - truth) < 2.5 * se_c, (ctrl, truth, se_c)


@pytest.mark.slow
def test_exclusion_is_counted_and_the_control_is_time_varying(runs):
    reg = pd.read_csv(runs["exclude"] / "data/raw/other_programme.csv", dtype={"firm_id": str})
    flow = json.loads((runs["exclude"] / "data/processed/groups_flow.json").read_text())
    op = flow["other_programme"]
    assert op["policy"] == "exclude" and op["firms"] == reg["firm_id"].nunique() == op["firms_excluded"]
    assert flow["firms_excluded"]["other_programme"] == op["firms"]
    assert flow["rows_in"] == flow["rows_kept"] + sum(flow["excluded"].values())
    p = pd.read_parquet(runs["control"] / "data/processed/panel.parquet")
    start = reg.set_index("firm_id")["start_year"]
    s = p["firm_id"].map(start)
    expected = s.notna() & (p["year"] >= s.fillna(10**6))
    assert (p["other_programme"].to_numpy() == expected.to_numpy()).all()


@pytest.mark.slow
def test_arm_splits_members_and_non_members(runs):
    p = pd.read_parquet(runs["arm"] / "data/processed/panel.parquet")
    firms = p.groupby("firm_id").first()
    assert set(firms["arm"]) == {"cluster only", "cluster+other", "other only", "neither"}
    assert ((firms["arm"].isin(["cluster only", "cluster+other"])) == (firms["first_treat"] > 0)).all()


def test_bad_other_register_exit_2_names_file_and_keys(tmp_path):
    root = _project(tmp_path, "exclude", n_firms=400)
    reg = pd.read_csv(root / "data/raw/other_programme.csv", dtype=str, keep_default_na=False)
    reg.loc[0, "end_year"] = str(int(reg.loc[0, "start_year"]) - 1)
    reg.to_csv(root / "data/raw/other_programme.csv", index=False)
    res = cli("ingest", cwd=root)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "other_programme.csv" in res.stderr and "end_year < start_year" in res.stderr and reg.loc[0, "firm_id"] in res.stderr
    assert not (root / "data/interim").exists() or not any((root / "data/interim").iterdir())
