"""params.yaml validation and atomic, deterministic output writing."""

from __future__ import annotations

import os

import pandas as pd
import pytest
import yaml

from models.errors import ConfigError
from pipeline.config import load_params, resolve_path
from pipeline.io import StageOutputs, replace_directory
from tests._project import REPO


def test_project_params_are_valid():
    p = load_params(REPO / "params.yaml")
    assert p.seed == 20261122
    assert p["estimate"]["control_group"] in ("nevertreated", "notyettreated")


def test_all_problems_reported_at_once(tmp_path):
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["colour"] = 1
    raw["estimate"]["control_group"] = "x"
    raw["ingest"]["log_nonpositive"] = "maybe"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as e:
        load_params(tmp_path / "p.yaml")
    msg = str(e.value)
    assert "3 problem(s)" in msg
    assert "colour" in msg and "control_group" in msg and "log_nonpositive" in msg


def test_symlink_out_of_project_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    proj = tmp_path / "proj"
    proj.mkdir()
    os.symlink(outside, proj / "link")
    with pytest.raises(ConfigError, match="outside the project"):
        resolve_path(proj, "link/firms.csv")
    assert resolve_path(proj, "data/raw/firms.csv") == (proj / "data/raw/firms.csv").resolve()


def test_stage_outputs_all_or_nothing(tmp_path):
    a, b = tmp_path / "a.json", tmp_path / "sub" / "b.csv"
    with pytest.raises(RuntimeError):
        with StageOutputs() as out:
            out.json(a, {"x": 1})
            out.csv(b, pd.DataFrame({"x": [1]}))
            raise RuntimeError("stage failed")
    assert not a.exists() and not b.exists()
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == []
    with StageOutputs() as out:
        out.json(a, {"b": 2, "a": float("nan")})
    assert a.read_text() == '{\n  "a": null,\n  "b": 2\n}\n'


def test_replace_directory_keeps_old_on_failure(tmp_path):
    target = tmp_path / "est"
    replace_directory(target, lambda out, d: out.text(d / "one.txt", "1"))
    with pytest.raises(ValueError):
        def fill(out, d):
            out.text(d / "two.txt", "2")
            raise ValueError("boom")
        replace_directory(target, fill)
    assert sorted(p.name for p in target.iterdir()) == ["one.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["est"]  # no temporaries left


def test_parquet_bytes_are_deterministic(tmp_path):
    df = pd.DataFrame({"a": [1.5, 2.5], "b": ["x", "y"]})
    for name in ("1.parquet", "2.parquet"):
        with StageOutputs() as out:
            out.parquet(tmp_path / name, df)
    assert (tmp_path / "1.parquet").read_bytes() == (tmp_path / "2.parquet").read_bytes()


def test_readme_documents_every_estimator_option():
    """README's 'Estimator options' table lists every OPTIONS key of every registry module."""
    from models import registry

    text = (REPO / "README.md").read_text()
    section = text.split("### Estimator options", 1)[1].split("\n### ", 1)[0]
    missing = []
    for key in registry.REGISTRY:
        row = next((line for line in section.splitlines() if line.startswith(f"| `estimate.{key}` |")), "")
        missing += [f"{key}.{opt}" for opt in registry.get(key).OPTIONS if f"`{opt}:" not in row]
        if not row:
            missing.append(key)
    assert missing == []
