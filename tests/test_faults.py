"""Faults: a run killed with SIGKILL at random points leaves, for every output file, either
the complete file or nothing (never a partial file), and the next run completes and equals an
uninterrupted run byte for byte."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests._project import cli, make_project, output_files, project_params


def _visible(files: dict[str, bytes]) -> dict[str, bytes]:
    # temporaries are hidden dot-files (".name.XXXX.tmp"); they are never read as outputs
    return {k: v for k, v in files.items() if not any(part.startswith(".") for part in k.split("/"))}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    root = tmp_path_factory.mktemp("faults-ref")
    params = project_params(outcomes=["log_labour_productivity", "exports"], estimators=["twfe", "event_study"])
    make_project(root, n_firms=300, seed=21, params=params)
    t0 = time.perf_counter()
    cli("run", "--params", "params.yaml", cwd=root, check=True)
    return root, time.perf_counter() - t0


def test_sigkill_leaves_complete_outputs_or_none(reference, tmp_path):
    ref_root, duration = reference
    ref = _visible(output_files(ref_root))
    rng = np.random.default_rng(20261122)
    for trial, delay in enumerate(rng.uniform(0.2, max(duration, 1.0), size=4)):
        root = tmp_path / f"trial{trial}"
        shutil.copytree(ref_root / "data" / "raw", root / "data" / "raw")
        shutil.copy2(ref_root / "params.yaml", root / "params.yaml")
        env = dict(os.environ, CLUSTER_IMPACT_QUIET="1", MPLBACKEND="Agg")
        proc = subprocess.Popen([sys.executable, "-m", "pipeline", "run", "--params", "params.yaml"], cwd=root, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        after_kill = _visible(output_files(root))
        partial = [k for k, v in after_kill.items() if ref.get(k) != v]
        assert partial == [], f"trial {trial} (kill after {delay:.2f}s): partial or foreign files {partial}"
        cli("run", "--params", "params.yaml", cwd=root, check=True)
        rerun = _visible(output_files(root))
        differing = sorted(k for k in set(rerun) | set(ref) if rerun.get(k) != ref.get(k))
        assert differing == [], f"trial {trial}: rerun differs from an uninterrupted run in {differing}"
