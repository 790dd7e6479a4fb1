"""The README's tutorial (a Stata panel with German names, an Excel register with dates),
run exactly as printed in a fresh git + DVC copy of the project.

The commands are read from README.md's first ```bash block after "### Tutorial" and each
line runs through bash unchanged; only `uv run` is served by the test's own environment (a
shell function that drops the two words), because a fresh `uv sync` per test would download
nothing new but take minutes. Then: every register oddity is counted, and the simulated
effect on productivity is recovered within 2 SE.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests._project import REPO


def tutorial_commands() -> list[str]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    part = text[text.index("### Tutorial"):]
    block = re.search(r"```bash\n(.*?)```", part, re.S).group(1)
    return [ln for ln in block.splitlines() if ln.strip() and not ln.lstrip().startswith("#")]


def _fresh_clone(dst: Path) -> None:
    import shutil

    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    for f in files:
        (dst / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / f, dst / f)
    subprocess.run(["git", "init", "-q"], cwd=dst, check=True)
    subprocess.run(["git", "add", "-A"], cwd=dst, check=True)
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", "commit", "-qm", "clone"], cwd=dst, check=True)


def test_tutorial_commands_are_the_readme_block():
    cmds = tutorial_commands()
    assert any(c.startswith("uv run cluster-impact init") for c in cmds) and "uv run dvc repro" in cmds
    assert any(c.startswith("uv run dvc exp run -S") for c in cmds) and cmds[-1] == "uv run dvc exp show"


@pytest.mark.slow
def test_tutorial_runs_as_printed(tmp_path):
    _fresh_clone(tmp_path)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}", CLUSTER_IMPACT_QUIET="1",
               DVC_NO_ANALYTICS="1", MPLBACKEND="Agg")
    shim = 'uv() { if [ "$1" = run ]; then shift; fi; "$@"; }\n'
    outputs = {}
    for cmd in tutorial_commands():
        res = subprocess.run(["bash", "-c", shim + cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1800)
        assert res.returncode == 0, f"{cmd}\nexit {res.returncode}\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
        outputs[cmd] = res.stdout

    added = json.loads((tmp_path / "data/own/register_style.json").read_text())
    flow = json.loads((tmp_path / "data/interim/ingest_flow.json").read_text())
    text = json.dumps(flow["membership"])
    for fid in added["absent_from_panel"]:
        assert fid in text or len(added["absent_from_panel"]) == 3  # counted (first ids may be capped)
    checks = flow["membership"].get("register_checks", {})
    assert any(v == 3 for k, v in checks.items() if "panel" in k), checks
    assert any(isinstance(v, int) and v >= 1 for k, v in checks.items() if "initiative" in k or "several" in k), checks
    assert flow["firms"]["excluded"] or flow["firms"]["rows_in"] == flow["firms"]["rows_kept"]

    # the simulated effect on productivity, CS simple ATT against the truth over the same cells
    est = pd.read_parquet(tmp_path / "data/estimates/log_labour_productivity-cs.parquet")
    simple = est[est["aggregation"] == "simple"].iloc[0]
    gt = est[(est["aggregation"] == "gt") & (est["time"] >= est["cohort"])]
    truth = pd.read_csv(tmp_path / "data/own/truth.csv")
    t = truth[(truth["outcome"] == "log_labour_productivity") & (truth["event_time"] >= 0) & truth["cohort"].isin(gt["cohort"].unique())]
    true_att = (t["att"] * t["n_firms"]).sum() / t["n_firms"].sum()
    assert abs(simple["estimate"] - true_att) < 2 * simple["std_error"], (simple["estimate"], true_att, simple["std_error"])
    assert 0.03 < true_att < 0.12  # the homogeneous design's productivity effect (about +6 %)

    # `dvc exp show` printed the table; its JSON form says what it lists: the workspace run
    # (never-treated controls) and the experiment (not-yet-treated), each with headline ATTs
    assert "[" in outputs["uv run dvc exp show"]  # an experiment row, e.g. "└── 64e37f2 [gruff-work]"
    res = subprocess.run([sys.executable, "-m", "dvc", "exp", "show", "--json"], cwd=tmp_path, env=env, capture_output=True, text=True)
    text = res.stdout
    assert "notyettreated" in text and "nevertreated" in text, text[:3000]
    assert text.count('"att"') >= 4
