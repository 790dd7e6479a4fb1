"""dvc.yaml against the code and the params it runs (issue: DVC habits must work).

* Each stage's code deps are exactly its import closure (tests/_imports.py): nothing a stage
  imports is missing (a stale result), nothing it does not import is listed (a needless rerun).
* Each stage's params are the top-level sections it reads, recorded while the stage runs on
  a small project.
* Through real git + DVC: inputs outside data/raw, no truth file, `report.formats: [html]`;
  `dvc repro` twice (the second runs nothing); `dvc exp run -S ...` then `dvc exp show`
  lists both runs' headline metrics.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests._imports import REPO, minimal_cover, stage_closure
from tests._project import dvc_project, make_project, project_params

DVC = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
CODE_ROOTS = ("pipeline/", "models/", "pipeline", "models")


def _stage(name: str) -> dict:
    st = DVC[name]
    return st.get("do", st)


def _code_deps(name: str) -> list[str]:
    return sorted(d for d in _stage(name)["deps"] if str(d).startswith(CODE_ROOTS))


@pytest.mark.parametrize("stage", sorted(DVC))
def test_code_deps_are_the_import_closure(stage):
    want = minimal_cover(stage_closure(stage))
    have = _code_deps(stage)
    assert have == want, (
        f"dvc.yaml stage {stage}: code deps differ from the stage's imports.\n"
        f"missing: {sorted(set(want) - set(have))}\nnot imported: {sorted(set(have) - set(want))}\n"
        "(rewrite them with: uv run python -m tests._imports --write)"
    )


class Recording(dict):
    """A params mapping that remembers which top-level sections were read."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.read: set[str] = set()

    def __getitem__(self, key):
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key, default=None):
        self.read.add(key)
        return super().get(key, default)

    def _all(self):
        self.read.update(dict.keys(self))

    def items(self):
        self._all()
        return super().items()

    def values(self):
        self._all()
        return super().values()

    def __iter__(self):
        self._all()
        return super().__iter__()

    def __deepcopy__(self, memo):  # a deep copy of the whole mapping reads all of it
        import copy

        self._all()
        return {k: copy.deepcopy(v, memo) for k, v in dict.items(self)}


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    root = tmp_path_factory.mktemp("dvcparams")
    params = project_params(estimators=["twfe", "cs"])
    params["ingest"]["derive"] = list(params["ingest"]["derive"]) + ["log_tfp"]  # the TFP bootstrap reads seed
    make_project(root, n_firms=200, seed=5, params=params)
    return root


def test_stage_params_are_the_sections_it_reads(small):
    import importlib

    from pipeline.config import Params, load_params

    base = load_params(small / "params.yaml")
    runs = [("input", ("firms",)), ("ingest", ()), ("build_groups", ()), ("estimate", ()), ("report", ()), ("publish", ("html",))]
    for stage, args in runs:
        rec = Recording(base.raw)
        params = Params(raw=rec, root=base.root, path=base.path)
        importlib.import_module(f"pipeline.stages.{stage}").run(params, *args)
        declared = {str(p).split(".")[0].replace("${key}", "") for p in _stage(stage).get("params", [])}
        declared = {d for d in declared if d}
        assert rec.read == declared, f"dvc.yaml stage {stage}: params {sorted(declared)}, reads {sorted(rec.read)}"


def _dvc(*args, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    res = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=cwd, capture_output=True, text=True, timeout=900)
    if check:
        assert res.returncode == 0, f"dvc {' '.join(args)}\n{res.stdout}\n{res.stderr}"
    return res


@pytest.mark.slow
def test_dvc_habits_inputs_elsewhere_no_truth_html_only_experiments(tmp_path):
    params = project_params(estimators=["twfe", "cs"], outcomes=["log_labour_productivity"])
    params["report"]["formats"] = ["html"]
    params["data"].pop("truth", None)
    dvc_project(tmp_path, params=params, n_firms=250, seed=4)
    # the evaluator keeps inputs in a folder of their own
    (tmp_path / "inputs").mkdir()
    for name in ("firms", "membership", "deflators"):
        src = tmp_path / params["data"][name]["path"]
        shutil.move(src, tmp_path / "inputs" / src.name)
        params["data"][name]["path"] = f"inputs/{src.name}"
    (tmp_path / "data/raw/truth.csv").unlink(missing_ok=True)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "own inputs"], cwd=tmp_path, check=True)

    first = _dvc("repro", cwd=tmp_path)
    assert (tmp_path / "reports/report.html").is_file() and not (tmp_path / "reports/report.pdf").exists()
    assert "input@firms" in first.stdout and "publish@html" in first.stdout and "publish@pdf" not in first.stdout
    second = _dvc("repro", cwd=tmp_path)
    assert "Running stage" not in second.stdout, second.stdout
    # an input changed where the evaluator keeps it: DVC sees it
    with open(tmp_path / "inputs" / "membership.csv", "a") as fh:
        fh.write("")
    with open(tmp_path / "inputs" / "deflators.csv", "a") as fh:
        fh.write("\n")
    status = _dvc("status", cwd=tmp_path)
    assert "input@deflators" in status.stdout and "inputs/deflators.csv" in status.stdout

    _dvc("repro", cwd=tmp_path)
    subprocess.run(["git", "add", "-A"], cwd=tmp_path, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "baseline run"], cwd=tmp_path, check=True)
    _dvc("exp", "run", "-S", "estimate.control_group=notyettreated", "-S", "engine=duckdb", cwd=tmp_path)
    show = json.loads(_dvc("exp", "show", "--json", cwd=tmp_path).stdout)
    text = json.dumps(show)
    assert "notyettreated" in text and "nevertreated" in text
    atts = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "att" and isinstance(v, (int, float)):
                    atts.append(v)
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(show)
    assert len(atts) >= 4, text[:2000]  # twfe and cs headline ATTs of the baseline and the experiment
