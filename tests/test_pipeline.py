"""End to end through the real CLI and real DVC on generated samples."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from tests._project import REPO, cli, dvc_project, make_project, output_files, project_params


@pytest.fixture(scope="module")
def run_once(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    make_project(root, n_firms=600, seed=3, params=project_params(full=True))
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    return root


def test_outputs_exist_for_every_outcome(run_once):
    root = run_once
    for f in ("reports/report.html", "reports/metrics.json", "reports/estimates.csv"):
        assert (root / f).is_file(), f
    est = pd.read_csv(root / "reports/estimates.csv")
    params = project_params(full=True)
    assert set(est["outcome"]) == set(params["estimate"]["outcomes"])
    assert len(set(est["outcome"])) >= 3
    metrics = json.loads((root / "reports/metrics.json").read_text())
    assert set(metrics) == set(params["estimate"]["outcomes"])


def test_row_accounting_identity(run_once):
    flow = json.loads((run_once / "data/interim/ingest_flow.json").read_text())
    for name in ("firms", "membership"):
        f = flow[name]
        assert f["rows_in"] == f["rows_kept"] + sum(f["excluded"].values()), name
    panel = pd.read_parquet(run_once / "data/interim/panel.parquet")
    assert len(panel) == flow["firms"]["rows_kept"]
    gflow = json.loads((run_once / "data/processed/groups_flow.json").read_text())
    processed = pd.read_parquet(run_once / "data/processed/panel.parquet")
    assert gflow["rows_in"] == len(panel)
    assert gflow["rows_in"] == gflow["rows_kept"] + sum(gflow["excluded"].values())
    assert len(processed) == gflow["rows_kept"]


def test_estimate_rows_accounted(run_once):
    """Rows reaching each estimator = rows used + rows dropped by reason."""
    processed = pd.read_parquet(run_once / "data/processed/panel.parquet")
    for meta_file in sorted((run_once / "data/estimates").glob("*-*.json")):
        meta = json.loads(meta_file.read_text())
        assert meta["rows_in"] == len(processed), meta_file.name
        if "counts" in meta:
            # matching/weighting work on cohort cross-sections of firms: each treated
            # firm-cohort is matched (weighted), unmatched, discarded or trimmed, counted
            c = meta["counts"]
            if "n_treated" in c:
                assert c["n_treated"] == c["matched_treated"] + c["unmatched_treated"] + c["discarded_treated"], meta_file.name
            else:
                assert c["weighted_treated"] + c["trimmed_treated"] >= meta["n_treated_units"] > 0, meta_file.name
            continue
        assert meta["rows_in"] == meta["n_obs"] + sum(meta["dropped"].values()), meta_file.name


def test_same_inputs_give_identical_bytes(run_once, tmp_path):
    make_project(tmp_path, n_firms=600, seed=3, params=project_params(full=True))
    res = cli("run", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    a, b = output_files(run_once), output_files(tmp_path)
    assert a.keys() == b.keys()
    differing = [k for k in a if a[k] != b[k]]
    assert differing == []


def test_twfe_recovers_single_cohort_homogeneous_effect(tmp_path):
    """With one cohort and a homogeneous effect TWFE is unbiased: truth within 2 SE."""
    params = project_params(outcomes=["log_labour_productivity"], estimators=["twfe"])
    make_project(tmp_path, n_firms=800, seed=5, params=params, cohorts=[2015], effect="homogeneous", selection="random")
    cli("run", "--params", "params.yaml", cwd=tmp_path, check=True)
    est = pd.read_parquet(tmp_path / "data/estimates/log_labour_productivity-twfe.parquet")
    row = est[est["aggregation"] == "static"].iloc[0]
    truth = pd.read_csv(tmp_path / "data/raw/truth.csv")
    t = truth[(truth["outcome"] == "log_labour_productivity") & (truth["event_time"] >= 0)]
    true_att = (t["att"] * t["n_firms"]).sum() / t["n_firms"].sum()
    assert abs(row["estimate"] - true_att) < 2 * row["std_error"], (row["estimate"], true_att, row["std_error"])


def test_dvc_repro_twice_second_does_nothing(tmp_path):
    """A fresh git+DVC checkout of the project runs `dvc repro`; the second is a no-op."""
    # a small sample in place of the embedded one keeps this test fast
    dvc_project(tmp_path, params=project_params(estimators=["twfe", "event_study"]))
    env_cmd = [sys.executable, "-m", "dvc"]
    first = subprocess.run([*env_cmd, "repro"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (tmp_path / "reports/report.html").is_file()
    second = subprocess.run([*env_cmd, "repro"], cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert second.returncode == 0
    assert "Running stage" not in second.stdout, second.stdout
    metrics = subprocess.run([*env_cmd, "metrics", "show", "--json"], cwd=tmp_path, capture_output=True, text=True)
    assert metrics.returncode == 0 and "log_labour_productivity" in metrics.stdout
    # `dvc plots show` renders offline: the page template inlines vega (no <script src=...>)
    plots = subprocess.run([*env_cmd, "plots", "show", "-o", "plots_out"], cwd=tmp_path, capture_output=True, text=True)
    assert plots.returncode == 0, plots.stderr
    page = (tmp_path / "plots_out" / "index.html").read_text()
    assert "vegaEmbed(" in page and "<script src=" not in page and "cdn.jsdelivr" not in page


def _readme_pattern(rel: str, outcomes: list[str]) -> str:
    from models.registry import REGISTRY

    if rel.startswith("reports/plots/scoreboard/"):  # one series per scoreboard indicator
        return "reports/plots/scoreboard/<indicator>.csv"
    for o in sorted(outcomes, key=len, reverse=True):
        rel = rel.replace(o, "<outcome>")
    for key in sorted(REGISTRY, key=len, reverse=True):
        rel = rel.replace(f"<outcome>-{key}-", "<outcome>-<estimator>-")
    if "<estimator>" not in rel:
        for key in sorted(REGISTRY, key=len, reverse=True):
            rel = rel.replace(f"<outcome>-{key}.", "<outcome>-<estimator>.")
    return rel


def test_readme_lists_every_released_file(run_once):
    """The README's 'List of tables and figures' names every file the report releases."""
    text = (REPO / "README.md").read_text()
    section = text.split("## List of tables and figures", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `reports/")]
    outcomes = project_params(full=True)["estimate"]["outcomes"]
    missing = []
    for f in sorted((run_once / "reports").rglob("*")):
        if not f.is_file():
            continue
        pattern = _readme_pattern(str(f.relative_to(run_once)), outcomes)
        stem, ext = pattern.rsplit(".", 1)
        if not any(f"`{stem}." in row and f".{ext}`" in row for row in rows):
            missing.append(pattern)
    assert sorted(set(missing)) == []
