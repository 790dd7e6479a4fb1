"""Safety of the real command: safe YAML, allowlisted names before any formula library,
paths that cannot escape, no pickle, and text escaped in CSV/HTML outputs."""

from __future__ import annotations

import csv
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from tests._project import copy_project, REPO, cli, make_project, output_files

HOSTILE = '=HYPERLINK("http://x")<script>alert(1)</script>'
CANARY_CODE = "I(__import__('os').system('touch CANARY'))"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("sec")
    make_project(root, n_firms=200, seed=5)
    return root


_copy = copy_project


def test_python_yaml_tag_nested_does_not_run(sample, tmp_path):
    root = _copy(sample, tmp_path)
    text = (root / "params.yaml").read_text()
    text = text.replace("engine: pandas", "engine: !!python/object/new:os.system ['touch CANARY']")
    assert "!!python" in text
    (root / "params.yaml").write_text(text)
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5, res.stderr
    assert not (root / "CANARY").exists()
    assert output_files(root) == {}


def test_hostile_column_name_in_data_file_never_reaches_a_formula(sample, tmp_path):
    """The DATA FILE's header carries code; params map it through `columns:` to the pipeline
    name `exports`. Either the mapping is refused (exit 5) or the file column is renamed on
    read and the code never reaches a formula parser; in both cases: no CANARY file."""
    root = _copy(sample, tmp_path)
    df = pd.read_csv(root / "data/raw/firms.csv", dtype=str, keep_default_na=False)
    df = df.rename(columns={"exports": CANARY_CODE})
    df.to_csv(root / "data/raw/firms.csv", index=False)
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["columns"]["exports"] = CANARY_CODE
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert not (root / "CANARY").exists()
    assert not (Path.cwd() / "CANARY").exists()
    assert res.returncode in (0, 5), res.stderr[-2000:]
    if res.returncode == 0:  # renamed on read: the pipeline only ever saw `exports`
        panel = pd.read_parquet(root / "data/interim/panel.parquet")
        assert "exports" in panel.columns and CANARY_CODE not in panel.columns
        assert (root / "data/estimates").exists()  # the estimate stage (formulas) really ran
    else:
        assert output_files(root) == {}


@pytest.mark.parametrize("key", ["covariates", "outcomes"])
def test_hostile_name_as_formula_term_is_refused(sample, tmp_path, key):
    """The same code as a covariate/outcome (a formula term) is refused by the allowlist."""
    root = _copy(sample, tmp_path)
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["estimate"][key] = [CANARY_CODE] if key == "covariates" else ["log_labour_productivity", CANARY_CODE]
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5, res.stderr[-2000:]
    assert f"estimate.{key}" in res.stderr, res.stderr[-2000:]
    assert not (root / "CANARY").exists()
    assert output_files(root) == {}


@pytest.mark.parametrize("path", ["../outside.csv", "data/../../outside.csv", "/tmp/outside.csv"])
@pytest.mark.slow  # full run / several subprocesses
def test_input_paths_cannot_escape(sample, tmp_path, path):
    root = _copy(sample, tmp_path / "proj")
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["data"]["membership"]["path"] = path
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5, res.stderr
    assert output_files(root) == {}


def test_symlinked_data_dir_pointing_outside_is_refused(sample, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(sample / "data" / "raw", outside / "raw")
    root = tmp_path / "proj"
    (root / "data").mkdir(parents=True)
    shutil.copy(sample / "params.yaml", root / "params.yaml")
    (root / "data" / "raw").symlink_to(outside / "raw", target_is_directory=True)
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5, res.stderr
    assert "outside the project" in res.stderr
    assert output_files(root) == {}


@pytest.mark.slow  # full run / several subprocesses
def test_symlinked_output_dir_pointing_outside_is_refused(sample, tmp_path):
    outside = tmp_path / "outside_interim"
    outside.mkdir()
    root = _copy(sample, tmp_path / "proj")
    (root / "data" / "interim").symlink_to(outside, target_is_directory=True)
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert list(outside.iterdir()) == [], "stage wrote outside the project through a symlink"
    assert res.returncode == 5, res.stderr


def test_no_pickle_in_code():
    # uses, not mentions: imports and calls (a docstring "Never pickle" or a list of
    # forbidden suffixes is fine)
    pat = re.compile(r"(import\s+(c?pickle|joblib|dill|cloudpickle)\b|from\s+(c?pickle|joblib|dill|cloudpickle)\b"
                     r"|\b(c?pickle|joblib|dill|cloudpickle)\.\w+\(|\b(read_pickle|to_pickle)\b)")
    hits = []
    for pkg in ("pipeline", "models"):
        for f in (REPO / pkg).rglob("*.py"):
            for i, line in enumerate(f.read_text().splitlines(), 1):
                if pat.search(line) and not line.lstrip().startswith("#"):
                    hits.append(f"{f.relative_to(REPO)}:{i}: {line.strip()}")
    assert hits == [], "\n".join(hits)


@pytest.fixture(scope="module")
def hostile_run(sample, tmp_path_factory):
    """Full run (light estimators) with a cluster id that is a spreadsheet formula + script."""
    root = _copy(sample, tmp_path_factory.mktemp("hostile"))
    mem = pd.read_csv(root / "data/raw/membership.csv", dtype=str, keep_default_na=False)
    top = mem["cluster_id"].value_counts().index[0]
    mem.loc[mem["cluster_id"] == top, "cluster_id"] = HOSTILE
    mem.to_csv(root / "data/raw/membership.csv", index=False)
    if (root / "data/raw/costs.csv").exists():  # data.costs names the same initiatives
        costs = pd.read_csv(root / "data/raw/costs.csv", dtype=str, keep_default_na=False)
        costs.loc[costs["initiative"] == top, "initiative"] = HOSTILE
        costs.to_csv(root / "data/raw/costs.csv", index=False)
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr[-3000:]
    return root


@pytest.mark.slow  # full run / several subprocesses
def test_reports_contain_no_pickle(hostile_run):
    bad = [p for p in (hostile_run / "reports").rglob("*") if p.suffix in {".pkl", ".pickle", ".joblib"}]
    assert bad == []


@pytest.mark.slow  # full run / several subprocesses
def test_formula_text_stays_text_in_released_csvs(hostile_run):
    """No cell of any released CSV starts with a spreadsheet formula trigger unless it is a
    number; the hostile id appears neutralised (not dropped)."""
    seen = False
    for f in sorted((hostile_run / "reports").rglob("*.csv")):
        with open(f, newline="", encoding="utf-8") as fh:
            for row in csv.reader(fh):
                for cell in row:
                    if "HYPERLINK" in cell:
                        seen = True
                    if cell[:1] in ("=", "+", "-", "@", "\t", "\r"):
                        try:
                            float(cell)
                        except ValueError:
                            pytest.fail(f"{f.name}: formula-like cell {cell!r}")
    assert seen, "the hostile cluster id should still be reported (as text)"


@pytest.mark.slow  # full run / several subprocesses
def test_script_in_cluster_id_is_escaped_in_html(hostile_run):
    html = (hostile_run / "reports" / "report.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
