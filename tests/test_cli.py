"""The real console command: exit codes, messages, nothing half-written, security of params."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests._project import cli, make_project, output_files, project_params


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    make_project(root, n_firms=300, seed=11)
    return root


def _with_params(root, tmp_path, mutate):
    """Copy the sample's raw data into tmp_path with mutated params; return the folder."""
    import shutil

    shutil.copytree(root / "data" / "raw", tmp_path / "data" / "raw")
    params = yaml.safe_load((root / "params.yaml").read_text())
    mutate(params)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return tmp_path


BAD_CONFIGS = {
    "unknown top-level key": (lambda p: p.update(colour="blue"), "colour: unknown top-level key"),
    "unknown nested key": (lambda p: p["estimate"].update(contrl_group="x"), "estimate.contrl_group"),
    "unknown estimator": (lambda p: p["estimate"].update(estimators=["twfe", "magic"]), "unknown estimator 'magic'"),
    "bad control group": (lambda p: p["estimate"].update(control_group="everyone"), "estimate.control_group"),
    "path escapes project": (lambda p: p["data"]["firms"].update(path="../../etc/passwd"), "outside the project folder"),
    "absolute path": (lambda p: p["data"]["firms"].update(path="/etc/passwd"), "is absolute"),
    "formula injection in outcome": (
        lambda p: p["estimate"].update(outcomes=["I(__import__('os').system('touch CANARY'))"]),
        "not a safe column name",
    ),
    "bad vcov kind": (lambda p: p["estimate"].update(vcov={"kind": "bootstrap"}), "estimate.vcov.kind"),
    "seed not an integer": (lambda p: p.update(seed="abc"), "seed: must be an integer"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_exits_5_and_writes_nothing(sample, tmp_path, case):
    mutate, needle = BAD_CONFIGS[case]
    root = _with_params(sample, tmp_path, mutate)
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5, res.stderr
    assert needle in res.stderr
    assert output_files(root) == {}
    assert not (root / "CANARY").exists()


def test_yaml_tags_are_not_executed(sample, tmp_path):
    root = _with_params(sample, tmp_path, lambda p: None)
    text = (root / "params.yaml").read_text()
    (root / "params.yaml").write_text("evil: !!python/object/apply:os.system ['touch CANARY']\n" + text)
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5
    assert not (root / "CANARY").exists()


def test_missing_params_file(tmp_path):
    res = cli("run", "--params", "nope.yaml", cwd=tmp_path)
    assert res.returncode == 5
    assert "nope.yaml not found" in res.stderr


def test_conflicting_duplicate_exits_2_names_file_column_count_keys(sample, tmp_path):
    root = _with_params(sample, tmp_path, lambda p: None)
    firms = root / "data/raw/firms.csv"
    df = pd.read_csv(firms, dtype={"firm_id": str, "nace2": str})
    dup = df.iloc[[0, 1]].copy()
    dup["employees"] = dup["employees"] + 5  # same firm-years, different values
    pd.concat([df, dup]).to_csv(firms, index=False)
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 2, res.stderr
    msg = res.stderr
    assert "firms.csv" in msg and "duplicate" in msg.lower()
    assert str(df.iloc[0]["firm_id"]) in msg
    assert output_files(root) == {}


def test_no_never_members_with_nevertreated_exits_4(sample, tmp_path):
    """No never-members under control_group: nevertreated is exit 4, not a silent switch."""
    root = _with_params(sample, tmp_path, lambda p: p["estimate"].update(outcomes=["log_labour_productivity"]))
    firms = pd.read_csv(root / "data/raw/firms.csv", dtype={"firm_id": str, "nace2": str})
    mem = pd.read_csv(root / "data/raw/membership.csv", dtype={"firm_id": str})
    first_join = mem.groupby("firm_id")["join_year"].min()
    members = set(first_join[(first_join > 2008) & (first_join <= 2022)].index)  # in-window joiners only
    firms[firms["firm_id"].isin(members)].to_csv(root / "data/raw/firms.csv", index=False)
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 4, res.stderr
    assert "never" in res.stderr.lower()
    assert not (root / "data/estimates").exists()
