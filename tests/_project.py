"""Helpers for stage/CLI tests: a throw-away project folder with a small generated sample,
driven through the real console command (no mocks)."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


LIGHT = {
    "outcomes": ["log_labour_productivity", "exports", "patents"],
    "estimators": ["twfe", "event_study", "cs"],
    "outcome_estimators": {},
    "sensitivity": {"estimators": [], "outcomes": None, "mbar": [1.0]},
}


def project_params(full: bool = False, **estimate_overrides) -> dict:
    """The project's params.yaml; unless ``full``, with a light estimate section (three
    outcomes x TWFE, event study, CS; no sensitivity) so stage tests stay fast."""
    params = copy.deepcopy(yaml.safe_load((REPO / "params.yaml").read_text()))
    if not full:
        params["estimate"].update(copy.deepcopy(LIGHT))
        params["ingest"]["derive"] = [d for d in params["ingest"]["derive"] if d != "log_tfp"]
        params["data"].pop("collaborations", None)  # the light projects have no edge list (make_project draws one for full)
    params["estimate"].update(estimate_overrides)
    return params


def make_project(tmp: Path, *, n_firms: int = 400, seed: int = 7, params: dict | None = None, **sim) -> Path:
    """Write a small synthetic sample + params.yaml under ``tmp``; return the params path."""
    from pipeline.simulate import simulate_economy, write_sample

    params = params or project_params()
    if params["data"].get("collaborations") is not None and "collab_rate" not in sim:
        sim = {**sim, "collab_rate": 1.0}  # as the embedded sample
    econ = simulate_economy(n_firms=n_firms, seed=seed, **sim)
    write_sample(tmp / "data" / "raw", econ)
    params = params or project_params()
    p = tmp / "params.yaml"
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    return p


def cli(*args: str, cwd: Path, check: bool = False) -> subprocess.CompletedProcess:
    env = dict(os.environ, CLUSTER_IMPACT_QUIET="1", MPLBACKEND="Agg", DVC_NO_ANALYTICS="1")
    res = subprocess.run(
        [sys.executable, "-m", "pipeline", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900
    )
    if check and res.returncode != 0:
        raise AssertionError(f"cluster-impact {' '.join(args)} exited {res.returncode}\n{res.stderr}")
    return res


def output_files(root: Path) -> dict[str, bytes]:
    """Every file the stages wrote (data/interim, data/processed, data/estimates, reports)."""
    out = {}
    for sub in ("data/interim", "data/processed", "data/estimates", "reports"):
        base = root / sub
        if base.exists():
            for f in sorted(base.rglob("*")):
                if f.is_file():
                    out[str(f.relative_to(root))] = f.read_bytes()
    return out


def copy_project(sample: Path, dst: Path) -> Path:
    """A fresh project folder with ``sample``'s raw data and params.yaml."""
    import shutil

    shutil.copytree(sample / "data" / "raw", dst / "data" / "raw")
    shutil.copy(sample / "params.yaml", dst / "params.yaml")
    return dst


def dvc_project(dst: Path, *, params: dict, n_firms: int = 300, seed: int = 9) -> Path:
    """A fresh git + DVC checkout of this repository at ``dst`` with a small generated sample
    in place of the embedded one (every tracked file but data/raw), committed."""
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    import shutil

    for f in files:
        if f.startswith("data/raw/"):
            continue
        target = dst / f
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, target)
    make_project(dst, n_firms=n_firms, seed=seed, params=params)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    # a fixed author/committer date: the same files give the same commit id in every copy
    # (the report's provenance records it)
    env = dict(os.environ, GIT_AUTHOR_DATE="2026-01-01T00:00:00Z", GIT_COMMITTER_DATE="2026-01-01T00:00:00Z")
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "x"], cwd=dst, check=True, env=env)
    return dst
