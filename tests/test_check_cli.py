"""`cluster-impact check` through the real CLI: params and the input files' headers are
validated before any stage runs, with the stages' exit codes, and nothing is written."""

from __future__ import annotations

import pytest
import yaml

from tests._project import cli, copy_project, make_project, output_files


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("check")
    make_project(root, n_firms=150, seed=3)
    return root


def _mutate(root, fn):
    p = yaml.safe_load((root / "params.yaml").read_text())
    fn(p)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


CASES = [
    ("valid", lambda p: None, 0, ["is valid", "data/raw/firms.csv"]),
    ("unknown key", lambda p: p["ingest"].update(yeers=[2008, 2010]), 5, ["ingest.yeers: unknown key"]),
    ("mapped column missing", lambda p: p["columns"].update(employment="staff"), 2, ["'staff'", "not found", "columns:"]),
    ("register column missing", lambda p: p["membership_columns"].update(join_year="start"), 2, ["'start'", "membership_columns"]),
    ("unsafe own column", lambda p: p["estimate"].update(covariates=["my.cov"]), 5, ["my.cov"]),
    ("unknown estimator", lambda p: p["estimate"].update(estimators=["twfee"]), 5, ["twfee"]),
]


@pytest.mark.parametrize("name,mutate,code,needles", CASES, ids=[c[0] for c in CASES])
def test_check(sample, tmp_path, name, mutate, code, needles):
    root = copy_project(sample, tmp_path / "p")
    _mutate(root, mutate)
    res = cli("check", "--params", "params.yaml", cwd=root)
    out = res.stdout + res.stderr
    assert res.returncode == code, out
    assert "Traceback" not in out
    for n in needles:
        assert n in out, (n, out)
    assert output_files(root) == {}  # nothing written, whatever the verdict
