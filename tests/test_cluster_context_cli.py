"""Cluster map, cluster_strength and the monitoring scoreboard through the real console
command on a small generated sample: the released tables, plots and report sections, the
disclosure blanking, the heterogeneity estimator by cluster strength, a run without sector
and region columns, and bad cluster_map options (exit 5)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from tests._project import cli, make_project, output_files, project_params


def _params(**bg):
    p = project_params(outcomes=["log_labour_productivity"], estimators=["twfe", "heterogeneity"],
                       heterogeneity={"by": ["cluster_strength"], "min_treated": 5})
    p["report"]["formats"] = ["html"]
    p["build_groups"].update(bg)
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("cluster_ctx")
    make_project(root, n_firms=500, seed=5, params=_params(cluster_map={"strength": "strong"}))
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    return root


@pytest.mark.slow
def test_outputs_and_report_sections(run):
    root = run
    cmap = pd.read_parquet(root / "data/processed/cluster_map.parquet")
    assert {"cell", "region", "sector", "initiative"} <= set(cmap["level"])
    panel = pd.read_parquet(root / "data/processed/panel.parquet", columns=["firm_id", "cluster_strength", "first_treat"])
    assert set(panel["cluster_strength"].dropna()) <= {"strong", "not strong", "small cell"}
    assert panel.groupby("firm_id")["cluster_strength"].nunique(dropna=False).max() == 1  # a firm-level dimension
    rel = pd.read_csv(root / "reports/tables/cluster_map.csv")
    assert not {"top1", "top2", "total", "n_contributors", "lq_p", "size_p", "firms_p"} & set(rel.columns)
    # withheld rows carry no statistic
    w = rel[rel["withheld"]]
    assert w[["size", "n_firms", "lq", "hachman", "eg_gamma"]].isna().all().all()
    sb = pd.read_csv(root / "reports/tables/scoreboard.csv")
    assert {"cluster_id", "indicator", "group", "period", "year", "value", "per_firm", "n_firms", "withheld"} <= set(sb.columns)
    assert not any(c.startswith(("num_", "den_")) for c in sb.columns)
    assert sb.loc[sb["withheld"], "value"].isna().all()
    # nothing below the threshold of 10 distinct firms (strict profile) is released
    shown = sb[~sb["withheld"] & sb["indicator"].isin(["employment", "turnover", "exports", "patents"])]
    assert (shown["n_firms"] >= 10).all()
    plots = sorted(p.name for p in (root / "reports/plots/scoreboard").glob("*.csv"))
    assert "employment.csv" in plots and "export_share.csv" in plots
    assert list(pd.read_csv(root / "reports/plots/scoreboard/employment.csv").columns) == ["year", "members", "comparison"]
    html = (root / "reports/report.html").read_text()
    assert 'id="cluster-map"' in html and 'id="scoreboard"' in html
    assert "Strong clusters and starred cells" in html and "All initiatives (the programme)" in html
    disc = json.loads((root / "reports/disclosure.json").read_text())
    assert disc["verdict"] == "pass"
    # the heterogeneity estimator splits by cluster strength
    est = pd.read_csv(root / "reports/estimates.csv")
    terms = set(est.loc[est["estimator"] == "heterogeneity", "term"].dropna())
    assert any(t.startswith("cluster_strength:") for t in terms), terms


@pytest.mark.slow
def test_without_sector_and_region_the_map_is_absent_not_a_crash(tmp_path):
    p = _params()
    p["estimate"]["heterogeneity"] = {"by": ["size_class", "cluster_strength"], "min_treated": 5, "sme_threshold": 20}
    p["columns"] = {k: v for k, v in p["columns"].items() if k not in ("sector", "region")}
    p["data"]["deflators"] = None  # sector deflators need the sector column
    make_project(tmp_path, n_firms=300, seed=8, params=p)
    for stage in ("ingest", "build_groups", "estimate", "report"):
        res = cli(stage, "--params", "params.yaml", cwd=tmp_path)
        assert res.returncode == 0, (stage, res.stderr)
    flow = json.loads((tmp_path / "data/processed/groups_flow.json").read_text())
    assert "no sector column" in flow["cluster_map"]["absent"] and "no region column" in flow["cluster_map"]["absent"]
    html = (tmp_path / "data/report/report.html").read_text()  # the report stage renders here; publish copies to reports/
    assert "The cluster map was not built: no sector column is mapped" in html
    # the scoreboard still has the members, without a comparison group
    sb = pd.read_csv(tmp_path / "reports/tables/scoreboard.csv")
    assert set(sb["group"]) == {"members"}
    assert "No comparison group" in html
    assert not (tmp_path / "reports/tables/cluster_map.csv").exists()
    # the heterogeneity estimator says why it did not split by cluster strength
    meta = json.loads((tmp_path / "data/estimates/log_labour_productivity-heterogeneity.json").read_text())
    assert "no cluster map" in meta["skipped_subgroups"]["cluster_strength"]
    assert "Not split by cluster strength: no cluster map" in html


@pytest.mark.parametrize("bad, needle", [
    ({"year": "latest"}, "build_groups.cluster_map.year"),
    ({"stars": {"focus": 2}}, "build_groups.cluster_map.stars.focus"),
    ({"size": "employees; drop"}, "build_groups.cluster_map.size"),
    ({"typo": 1}, "build_groups.cluster_map.typo"),
])
def test_bad_cluster_map_options_exit_5(tmp_path, bad, needle):
    make_project(tmp_path, n_firms=50, seed=3, params=_params(cluster_map=bad))
    res = cli("run", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 5, res.stderr
    assert needle in res.stderr
    assert output_files(tmp_path) == {}


@pytest.mark.slow
def test_deterministic(run, tmp_path):
    """Same data + params -> byte-identical cluster-context outputs."""
    shutil.copytree(run / "data/raw", tmp_path / "data/raw")
    shutil.copy(run / "params.yaml", tmp_path / "params.yaml")
    for stage in ("ingest", "build_groups"):
        assert cli(stage, "--params", "params.yaml", cwd=tmp_path).returncode == 0
    for f in ("data/processed/cluster_map.parquet", "data/processed/scoreboard.parquet", "data/processed/panel.parquet"):
        assert (tmp_path / f).read_bytes() == (run / f).read_bytes(), f
