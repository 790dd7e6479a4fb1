"""data.collaborations end to end through the real CLI: a generated economy whose members gain
a known number of partners inside their initiative is recovered by TWFE and CS; bad edge files
stop ingest with exit 2 naming file, column, count, first keys and the fix; exclusions are
counted; the generator's other files are unchanged by the collaboration process."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml

from tests._project import cli, make_project, project_params

OUTCOMES = ["partners_same_initiative", "n_partners", "new_partners", "share_partners_outside_region"]
SIM = dict(n_firms=1500, seed=11, cohorts=[2014], effect="homogeneous", selection="random", collab_rate=1.5)


def _project(tmp, **sim):
    params = project_params(outcomes=OUTCOMES, estimators=["twfe", "cs"])
    params["data"]["collaborations"] = {"path": "data/raw/collaborations.csv"}
    params["report"]["formats"] = ["html"]
    make_project(tmp, params=params, **{**SIM, **sim})
    return tmp


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = _project(tmp_path_factory.mktemp("collab"))
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    return root


def _truth(root, outcome):
    t = pd.read_csv(root / "data/raw/truth.csv")
    t = t[(t["outcome"] == outcome) & (t["group"] == "member") & (t["cohort"] > 2008) & (t["cohort"] <= 2022)]
    return float(np.average(t["att"], weights=t["n_firms"]))


def _est(root, outcome, estimator):
    d = pd.read_parquet(root / "data/estimates" / f"{outcome}-{estimator}.parquet")
    if estimator == "cs":
        d = d[d["aggregation"] == "simple"]
    r = d.iloc[0]
    return float(r["estimate"]), float(r["std_error"])


@pytest.mark.parametrize("outcome", ["partners_same_initiative", "n_partners"])
@pytest.mark.parametrize("estimator", ["twfe", "cs"])
def test_membership_effect_on_partnering_is_recovered(run, outcome, estimator):
    # truth: mean over member firm-years after joining of Y(1) - Y(0), exact for the written edges
    # (Y(0): background edges only; partners_same_initiative of a non-member is 0). 2 SE: a
    # two-sided 95 % check of an unbiased estimator (one cohort, random selection, no trend).
    truth = _truth(run, outcome)
    est, se = _est(run, outcome, estimator)
    assert truth > 1.0  # collab_rate 1.5 partners a member-year, minus pairs drawn twice
    assert abs(est - truth) < 2 * se, (outcome, estimator, est, truth, se)


def test_ratio_outcome_is_na_without_partners_and_columns_are_in_the_panel(run):
    p = pd.read_parquet(run / "data/processed/panel.parquet")
    assert set(OUTCOMES) <= set(p.columns)
    none = p["n_partners"] == 0
    assert none.any() and p.loc[none, "share_partners_outside_region"].isna().all()
    assert p.loc[~none, "share_partners_outside_region"].between(0, 1).all()
    assert p.loc[p["year"] == p["year"].min(), "new_partners"].isna().all()  # left-censored first year
    flow = json.loads((run / "data/processed/groups_flow.json").read_text())["collaborations"]
    assert flow["share_partners_outside_region"]["n_missing"] == int(p["share_partners_outside_region"].isna().sum())
    ests = pd.read_csv(run / "reports/estimates.csv")
    assert set(OUTCOMES) <= set(ests["outcome"])


def test_check_knows_the_derived_outcomes_only_with_the_edge_list(tmp_path):
    root = _project(tmp_path, n_firms=200)
    res = cli("check", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0 and "collaborations: data/raw/collaborations.csv ok" in res.stdout, res.stderr[-2000:]
    params = yaml.safe_load((root / "params.yaml").read_text())
    del params["data"]["collaborations"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    res = cli("check", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5 and "'partners_same_initiative' is not a column" in res.stderr, res.stderr[-2000:]


def test_exclusions_are_counted(tmp_path):
    root = _project(tmp_path, n_firms=300)
    path = root / "data/raw/collaborations.csv"
    e = pd.read_csv(path, dtype=str, keep_default_na=False)
    n = len(e)
    extra = pd.DataFrame([
        {"firm_a": e.loc[0, "firm_b"], "firm_b": e.loc[0, "firm_a"], "year": e.loc[0, "year"], "kind": e.loc[0, "kind"]},  # reversed duplicate
        {"firm_a": e.loc[1, "firm_a"], "firm_b": "X999", "year": "2012", "kind": "supplier"},  # partner not in the panel
        {"firm_a": e.loc[2, "firm_a"], "firm_b": e.loc[2, "firm_b"], "year": "2030", "kind": "Joint_Project"},  # after the window
    ])
    pd.concat([e, extra]).to_csv(path, index=False)
    cli("ingest", cwd=root, check=True)
    flow = json.loads((root / "data/interim/ingest_flow.json").read_text())["collaborations"]
    assert flow["excluded"] == {"duplicate_edge": 1, "not_in_panel": 1, "outside_window": 1}
    assert flow["rows_in"] == n + 3 and flow["rows_kept"] == n
    assert "X999" in flow["first_excluded"]["not_in_panel"][0]
    kept = pd.read_parquet(root / "data/interim/collaborations.parquet")
    assert len(kept) == n and (kept["firm_a"] < kept["firm_b"]).all()


def test_bad_edges_exit_2_with_file_column_count_keys_fix_and_nothing_written(tmp_path):
    root = _project(tmp_path, n_firms=300)
    path = root / "data/raw/collaborations.csv"
    e = pd.read_csv(path, dtype=str, keep_default_na=False)
    a0, b0 = e.loc[0, "firm_a"], e.loc[0, "firm_b"]
    e.loc[0, "firm_b"] = a0  # self-loop
    e.loc[1, "kind"] = "friendship"  # unknown kind
    e.loc[2, "kind"] = "friendship"
    e.loc[3, "year"] = "20x4"  # text in a numeric column
    e.loc[4, "firm_a"] = ""  # missing id
    e.to_csv(path, index=False)
    res = cli("ingest", cwd=root)
    assert res.returncode == 2, res.stderr[-2000:]
    err = res.stderr
    assert "collaborations.csv: 1 self-loop(s)" in err and f"({a0}, {a0}," in err and "two different firms" in err
    assert "column 'kind': 2 edge(s) with an unknown kind" in err and "'friendship'" in err and "co-patent" in err
    assert "column 'year'" in err and "20x4" in err
    assert "column 'firm_a': 1 edge(s) without a firm id" in err
    assert not (root / "data/interim").exists() or not any((root / "data/interim").iterdir())


def _md5(p):
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_generator_leaves_the_other_files_byte_identical(tmp_path):
    cli("simulate", "--firms", "400", "--out", str(tmp_path / "a"), cwd=tmp_path, check=True)
    cli("simulate", "--firms", "400", "--out", str(tmp_path / "b"), "--collab-rate", "1", cwd=tmp_path, check=True)
    for f in ("firms.csv", "membership.csv", "deflators.csv"):
        assert _md5(tmp_path / "a" / f) == _md5(tmp_path / "b" / f), f
    ta, tb = (tmp_path / "a/truth.csv").read_bytes(), (tmp_path / "b/truth.csv").read_bytes()
    assert tb.startswith(ta) and len(tb) > len(ta)  # collaboration rows appended, existing rows unchanged
    assert not (tmp_path / "a/collaborations.csv").exists() and (tmp_path / "b/collaborations.csv").exists()
