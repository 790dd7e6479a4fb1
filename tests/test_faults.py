"""Faults: a run killed with SIGKILL at random points leaves, for every output file, either
the complete file or nothing (never a partial file), and the next run completes and equals an
uninterrupted run byte for byte — through the CLI and through `dvc repro` (whole process
group killed: DVC and the stage it runs)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from tests._project import cli, dvc_project, make_project, output_files, project_params


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


def _dvc_env() -> dict:
    # dvc.yaml calls `cluster-impact`: the environment's bin folder goes first on PATH
    path = os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "")
    return dict(os.environ, CLUSTER_IMPACT_QUIET="1", MPLBACKEND="Agg", DVC_NO_ANALYTICS="1", PATH=path)


def _dvc(root, *args, **kw):
    env = _dvc_env()
    return subprocess.run([sys.executable, "-m", "dvc", *args], cwd=root, env=env, capture_output=True, text=True, timeout=900, **kw)


@pytest.mark.slow  # four `dvc repro` runs of a small project plus three killed ones
def test_sigkill_during_dvc_repro_then_repro_equals_uninterrupted(tmp_path):
    params = project_params(outcomes=["log_labour_productivity", "exports"], estimators=["twfe", "event_study", "cs"])
    # one pristine git + DVC checkout, copied for the reference and for every trial (the same
    # commit id everywhere: the report's provenance records it)
    template = dvc_project(tmp_path / "template", params=params, seed=21)
    ref_root = tmp_path / "ref"
    shutil.copytree(template, ref_root, symlinks=True)
    t0 = time.perf_counter()
    res = _dvc(ref_root, "repro")
    assert res.returncode == 0, res.stdout + res.stderr
    duration = time.perf_counter() - t0
    ref = _visible(output_files(ref_root))
    ref_lock = (ref_root / "dvc.lock").read_text()
    rng = np.random.default_rng(7)
    for trial, delay in enumerate(rng.uniform(1.0, max(duration, 2.0), size=3)):
        root = tmp_path / f"trial{trial}"
        shutil.copytree(template, root, symlinks=True)
        env = _dvc_env()
        proc = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=root, env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGKILL)  # DVC and the stage's own process
        proc.wait()
        after_kill = _visible(output_files(root))
        partial = [k for k, v in after_kill.items() if ref.get(k) != v]
        assert partial == [], f"trial {trial} (kill after {delay:.2f}s): partial or foreign files {partial}"
        res = _dvc(root, "repro")
        assert res.returncode == 0, f"trial {trial}: dvc repro after the kill failed\n{res.stdout}{res.stderr}"
        rerun = _visible(output_files(root))
        differing = sorted(k for k in set(rerun) | set(ref) if rerun.get(k) != ref.get(k))
        assert differing == [], f"trial {trial}: rerun differs from an uninterrupted run in {differing}"
        assert (root / "dvc.lock").read_text() == ref_lock, f"trial {trial}: dvc.lock differs"
