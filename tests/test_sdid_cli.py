"""Synthetic DiD through the real command (no mocks): ``estimators: [sdid]`` with
``level: region`` on a generated project whose member firms are moved into regions of their
own (one per initiative: treated regions; the eight original regions keep only non-members:
controls); ``run`` exits 0 and writes the result (byte-identical on a second run), its weights and
the report sentence; bad options exit 5 at ``check`` naming the key and the fix."""

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
    root = tmp_path_factory.mktemp("sdid_sample")
    make_project(root, n_firms=300, seed=5)
    raw = root / "data" / "raw"
    firms = pd.read_csv(raw / "firms.csv", dtype=str, keep_default_na=False)
    members = pd.read_csv(raw / "membership.csv", dtype=str, keep_default_na=False)
    home = dict(zip(members["firm_id"], "M" + members["cluster_id"]))
    firms["nuts2"] = firms["firm_id"].map(home).fillna(firms["nuts2"])
    firms.to_csv(raw / "firms.csv", index=False)
    return root


def _write(root: Path, **sdid) -> None:
    p = project_params()
    p["estimate"].update(outcomes=["log_labour_productivity"], estimators=["sdid"], sdid=sdid)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def test_run_writes_the_sdid_result(sample, tmp_path):
    root = copy_project(sample, tmp_path / "p")
    _write(root, level="region", replications=50)
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    est = root / "data" / "estimates"
    meta = json.loads((est / "log_labour_productivity-sdid.json").read_text())
    tidy = pd.read_parquet(est / "log_labour_productivity-sdid.parquet")
    assert meta["level"] == "region" and meta["vcov"] == "sdid placebo" and meta["replications"] == 50
    assert meta["n_control_units"] == 8 and meta["n_treated_units"] >= 2
    att = tidy.set_index("term").loc["ATT"]
    assert att["aggregation"] == "simple" and att["std_error"] > 0
    assert set(tidy["aggregation"]) == {"simple", "group"}
    html = (root / "data" / "report" / "report.html").read_text()
    assert "Synthetic DiD" in html and "placebo re-assignments of the programme" in html  # methods sentence
    # the inference verdict is the estimator's own (placebo over regions), not "not clustered"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))  # the verdict is a table row (estimate | verdict)
    row = re.search(r"Synthetic DiD[^|]{0,200}?Standard errors from 50 placebo re-assignments of the treatment to the 8 control region", text)
    assert row, "the SDID inference verdict is missing from the report"
    # byte-reproducible: a second project from the same inputs writes the same sdid files
    again = copy_project(sample, tmp_path / "q")
    _write(again, level="region", replications=50)
    cli("run", "--params", "params.yaml", cwd=again, check=True)
    for f in sorted(est.glob("*-sdid*.parquet")):
        assert f.read_bytes() == (again / "data" / "estimates" / f.name).read_bytes(), f.name


@pytest.mark.parametrize("opts,needles", [
    ({"vcov": "wild"}, ["estimate.sdid.vcov: 'wild'", "allowed: placebo, jackknife, bootstrap"]),
    ({"treated_share": 1.5}, ["estimate.sdid.treated_share: 1.5", "< 1"]),
    ({"level": "regio"}, ["estimate.sdid.level: 'regio' is not a column", "did you mean 'region'"]),
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
