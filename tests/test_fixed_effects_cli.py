"""estimate.fixed_effects and lpdid through the real command (no mocks): names validated
at load and against the panel's columns by ``check`` (exit 5, naming the entry and the fix,
nothing written); ``run`` absorbs sector^year in the regression estimators, says so in meta
and in the report, and runs lpdid with its sentence in the methods appendix; engine duckdb falls back to the
panel for them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from _project import cli, copy_project, make_project, project_params


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("fe_sample")
    make_project(root, n_firms=300, seed=5)
    return root


def _write(root: Path, engine: str = "pandas", **estimate) -> None:
    p = project_params()
    p["engine"] = engine
    p["estimate"].update(estimate)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def _exit_5(r, *needles):
    assert r.returncode == 5, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in r.stderr, (n, r.stderr)


def test_bad_names_exit_5_at_load(sample, tmp_path):
    root = copy_project(sample, tmp_path / "p")
    _write(root, fixed_effects=["firm_id", "sector^year", "__import__('os')"])
    r = cli("check", "--params", "params.yaml", cwd=root)
    _exit_5(r, "estimate.fixed_effects: 'year' is missing", "estimate.fixed_effects[2]", "not a safe column name")
    assert not (root / "data" / "interim").exists()


def test_unknown_column_exit_5_in_check(sample, tmp_path):
    root = copy_project(sample, tmp_path / "p")
    _write(root, fixed_effects=["firm_id", "year", "secto^year"])
    _exit_5(cli("check", "--params", "params.yaml", cwd=root), "estimate.fixed_effects[2]: 'secto' is not a column",
            "did you mean 'sector'")


def test_run_absorbs_sector_year_and_reports_it(sample, tmp_path):
    root = copy_project(sample, tmp_path / "p")
    # engine duckdb: twfe's sufficient-statistics path declines the extra effect and loads the panel
    _write(root, engine="duckdb", outcomes=["log_labour_productivity"], estimators=["twfe", "lpdid", "cs"],
           fixed_effects=["firm_id", "year", "sector^year"], control_group="notyettreated")
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    est = root / "data" / "estimates"
    tw = json.loads((est / "log_labour_productivity-twfe.json").read_text())
    assert tw["fixed_effects"] == ["firm_id", "year", "sector^year"] and "declined" in tw["solver_note"]
    assert tw["formula"].endswith("| firm_id + year + sector^year")
    assert "engine duckdb declined" in tw["engine_fallback"] and "engine_fallback" not in json.loads(
        (est / "log_labour_productivity-cs.json").read_text())
    lp = json.loads((est / "log_labour_productivity-lpdid.json").read_text())
    assert lp["fixed_effects"] == ["firm_id", "year", "sector^year"] and lp["formula"].endswith("| year + sector^year")
    cs = json.loads((est / "log_labour_productivity-cs.json").read_text())
    assert "fixed_effects" not in cs and "not used by cs" in cs["fixed_effects_note"]
    html = (root / "data" / "report" / "report.html").read_text()
    assert "Local-projections DiD" in html and "clean controls" in html
    assert "Fixed effects: firm_id, year, sector × year (Local-projections DiD, TWFE)" in html
    assert "differences out the firm effect" in html
