"""Triple differences through the real command (no mocks): a generated project whose firm file
gets a 0/1 column ``targeted`` (1 = in one of the sectors a call targets, the odd-numbered
NACE-2 codes), ``estimators: [ddd]`` with ``partition: targeted``; ``run`` exits 0 and writes
the result with its 2x2x2 cell counts and the report sentence (byte-identical on a second run); bad options exit 5 at
``check`` naming the key and the fix."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest
import yaml

from _project import cli, copy_project, make_project, project_params


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("ddd_sample")
    make_project(root, n_firms=400, seed=7)
    raw = root / "data" / "raw"
    firms = pd.read_csv(raw / "firms.csv", dtype=str, keep_default_na=False)
    firms["targeted"] = (firms["nace2"].astype(int) % 2).astype(str)
    firms.to_csv(raw / "firms.csv", index=False)
    return root


def _write(root: Path, **ddd) -> None:
    p = project_params()
    p["estimate"].update(outcomes=["log_labour_productivity"], estimators=["ddd"], ddd=ddd)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def test_run_writes_the_ddd_result(sample, tmp_path):
    root = copy_project(sample, tmp_path / "p")
    _write(root, partition="targeted")
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    est = root / "data" / "estimates"
    meta = json.loads((est / "log_labour_productivity-ddd.json").read_text())
    tidy = pd.read_parquet(est / "log_labour_productivity-ddd.parquet")
    assert meta["partition"] == "targeted" and meta["est_method"] == "dr"
    cells = meta["cells_2x2x2"]
    assert cells and all(min(c.values()) > 0 for c in cells.values())
    att = tidy.set_index(["aggregation", "term"]).loc[("simple", "ATT")]
    assert att["std_error"] > 0
    assert set(tidy["aggregation"]) == {"gt", "simple", "dynamic", "group", "calendar"}
    # inference over firms; the treated clusters are the eligible members (not every member)
    assert meta["n_clusters"] == meta["n_units"] and meta["n_treated_clusters"] == meta["n_treated_units"]
    assert meta["n_treated_units"] == sum(c["treated cohort, eligible"] for c in cells.values())
    html = (root / "data" / "report" / "report.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
    n, k = meta["n_units"], meta["n_treated_units"]
    assert re.search(rf"Triple differences\W+(pass\W+)?Inference clusters by firm id with {n} clusters\. "
                     rf"vcov = cluster\(firm_id\); clusters = {n}; treated clusters = {k}\b", text), text[:3000]
    assert "Triple differences" in html and "gap between eligible and ineligible firms" in html
    # byte-reproducible: a second project from the same inputs writes the same ddd files
    again = copy_project(sample, tmp_path / "q")
    _write(again, partition="targeted")
    cli("run", "--params", "params.yaml", cwd=again, check=True)
    for f in sorted(est.glob("*-ddd*")):
        assert f.read_bytes() == (again / "data" / "estimates" / f.name).read_bytes(), f.name


@pytest.mark.parametrize("opts,needles", [
    ({"partition": "targetd"}, ["estimate.ddd.partition: 'targetd' is not a column of the panel"]),
    ({}, ["estimate.ddd.partition: missing", "0/1 eligibility column"]),
    ({"partition": "targeted", "est_method": "dr_imp"}, ["estimate.ddd.est_method: 'dr_imp'", "allowed: dr, reg, ipw"]),
])
def test_bad_options_exit_5_at_check(sample, tmp_path, opts, needles):
    root = copy_project(sample, tmp_path / "p")
    _write(root, **opts)
    r = cli("check", "--params", "params.yaml", cwd=root)
    assert r.returncode == 5, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)
    assert not (root / "data" / "interim").exists()
