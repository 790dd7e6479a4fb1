"""Row accounting across stages on data with defects injected at known rates
(pipeline.simulate.inject_defects returns the exact injected counts): every dropped row is
counted under its reason, and the flows add up from stage to stage."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests._project import cli, project_params

# defects the pipeline drops (and counts) instead of refusing the file; each maps to the
# ingest_flow["firms"]["excluded"] reason it must be counted under
DROPPED = {
    "duplicate": "exact_duplicate",
    "year_out_of_window": "outside_window",
    "zero_value_added": "nonpositive_for_log:value_added",
}
RATES = {"duplicate": 0.02, "year_out_of_window": 0.015, "zero_value_added": 0.01}


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from pipeline.simulate import inject_defects, simulate_economy, write_sample

    root = tmp_path_factory.mktemp("acct")
    econ, counts = inject_defects(simulate_economy(n_firms=300, seed=21), RATES, seed=4)
    write_sample(root / "data" / "raw", econ)
    p = project_params(outcomes=["log_labour_productivity", "exports"], estimators=["twfe", "event_study", "cs"])
    p["ingest"]["log_nonpositive"] = "drop"
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    for stage in ("ingest", "build_groups", "estimate"):
        cli(stage, "--params", "params.yaml", cwd=root, check=True)
    return root, counts


def _json(root: Path, rel: str) -> dict:
    return json.loads((root / rel).read_text())


def test_ingest_counts_equal_injected(run):
    root, counts = run
    firms = _json(root, "data/interim/ingest_flow.json")["firms"]
    assert firms["rows_in"] == counts["rows_total"]
    for defect, reason in DROPPED.items():
        assert counts[defect] > 0
        assert firms["excluded"][reason] == counts[defect], (defect, firms["excluded"])
    assert firms["rows_kept"] == firms["rows_in"] - sum(firms["excluded"].values())
    panel = pd.read_parquet(root / "data/interim/panel.parquet")
    assert len(panel) == firms["rows_kept"]
    assert not panel.duplicated(["firm_id", "year"]).any()


def test_groups_flow_adds_up(run):
    root, _ = run
    ing = _json(root, "data/interim/ingest_flow.json")
    g = _json(root, "data/processed/groups_flow.json")
    assert g["rows_in"] == ing["firms"]["rows_kept"]
    assert g["rows_kept"] == g["rows_in"] - sum(g["excluded"].values())
    assert g["firms_kept"] == g["firms_in"] - sum(g["firms_excluded"].values())
    assert g["firms_kept"] == g["treated_firms_kept"] + g["never_member_firms_kept"]
    processed = pd.read_parquet(root / "data/processed/panel.parquet")
    assert len(processed) == g["rows_kept"]
    assert processed["firm_id"].nunique() == g["firms_kept"]


def test_estimate_rows_in_equals_n_obs_plus_dropped(run):
    root, _ = run
    g = _json(root, "data/processed/groups_flow.json")
    metas = sorted((root / "data/estimates").glob("*-*.json"))
    metas = [m for m in metas if not m.name.startswith("_")]
    assert len(metas) >= 6
    for m in metas:
        meta = json.loads(m.read_text())
        assert meta["rows_in"] == g["rows_kept"], m.name
        assert meta["rows_in"] == meta["n_obs"] + sum(meta["dropped"].values()), (m.name, meta["dropped"])
