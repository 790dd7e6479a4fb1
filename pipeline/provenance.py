"""Provenance of a run: code version, input hashes, params, seed, packages, machine.

Deterministic on purpose: no wall-clock timestamps or host names, so two runs on the
same inputs give byte-identical reports. Input hashes are the md5 of each file, the
same digest DVC records in dvc.lock for a file dependency.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .config import Params
from .estimate import package_versions
from .fingerprint import md5_file


def git_commit(root: Path) -> str | None:
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


def git_dirty(root: Path) -> bool | None:
    try:
        res = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no", "--", "pipeline", "models"],
            capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return bool(res.stdout.strip()) if res.returncode == 0 else None


def collect(params: Params, inputs: dict[str, Path]) -> dict[str, Any]:
    data_hashes = {}
    for name, path in sorted(inputs.items()):
        if path.is_file():
            data_hashes[name] = {"path": os.path.relpath(path, params.root), "md5": md5_file(path)}
        elif path.is_dir():
            for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
                data_hashes[f"{name}/{f.relative_to(path)}"] = {"path": os.path.relpath(f, params.root), "md5": md5_file(f)}
    return {
        "git_commit": git_commit(params.root),
        "code_modified_since_commit": git_dirty(params.root),
        "data": data_hashes,
        "params_file": os.path.relpath(params.path, params.root),
        "params": params.raw,
        "seed": params.seed,
        "packages": package_versions(),
        "machine": {
            "system": platform.system(),
            "machine": platform.machine(),
            "python": platform.python_implementation() + " " + platform.python_version(),
            "cpus": os.cpu_count(),
        },
    }
