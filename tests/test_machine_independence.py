"""Byte-identity across machines (issue: a fresh run on another machine gave another
dvc.lock). The CLI pins the BLAS thread count, the OpenBLAS kernel and numpy's SIMD width
before numpy loads (pipeline/cli.py: pinned_environment), so a run does not depend on what
the machine's environment or CPU model would otherwise choose.

We cannot switch CPUs inside a test, but we can make the process *start* as another machine
would: another OpenBLAS kernel (Prescott: SSE3, no FMA; the source of the ACF difference:
elasticities moved by ~3e-11 between kernels and thread counts, measured) and 2 BLAS
threads. Through the real CLI, ingest with the ACF production function (log_tfp) must
write the same bytes.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests._project import make_project, project_params


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("machines")
    params = project_params()
    params["ingest"]["derive"] = list(params["ingest"]["derive"]) + ["log_tfp"]
    make_project(root, n_firms=300, seed=3, params=params)
    return root


def _ingest(root, **env_over) -> dict[str, bytes]:
    env = dict(os.environ, CLUSTER_IMPACT_QUIET="1", **env_over)
    for k in ("PYTHONHASHSEED", "OPENBLAS_NUM_THREADS", "OPENBLAS_CORETYPE", "NPY_DISABLE_CPU_FEATURES", "CLUSTER_IMPACT_NO_REEXEC"):
        if k not in env_over:
            env.pop(k, None)
    res = subprocess.run([sys.executable, "-m", "pipeline", "ingest", "--params", "params.yaml"], cwd=root, env=env,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    return {f.name: f.read_bytes() for f in sorted((root / "data/interim").iterdir())}


def test_ingest_bytes_do_not_depend_on_the_machines_blas(project):
    plain = _ingest(project)
    other = _ingest(project, OPENBLAS_CORETYPE="Prescott", OPENBLAS_NUM_THREADS="2", PYTHONHASHSEED="123")
    assert plain.keys() == other.keys()
    for name in plain:
        assert plain[name] == other[name], name


def test_pinned_environment_names_the_kernel_and_threads():
    from pipeline.cli import pinned_environment

    env = pinned_environment()
    assert env["PYTHONHASHSEED"] == "0" and env["OPENBLAS_NUM_THREADS"] == "1"
    flags = open("/proc/cpuinfo").read() if os.path.exists("/proc/cpuinfo") else ""
    if " avx2" in flags and " fma" in flags:
        assert env["OPENBLAS_CORETYPE"] == "Haswell"
        assert "X86_V4" in env["NPY_DISABLE_CPU_FEATURES"]
