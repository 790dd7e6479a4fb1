"""Provenance of a run: code version, input hashes, params, seed, packages, machine.

Deterministic on purpose: no wall-clock timestamps or host names, so two runs on the
same inputs give byte-identical reports. Input hashes are the md5 of each file, the
same digest DVC records in dvc.lock for a file dependency.

Provenance describes what was read, when it was read: the ingest stage hashes each raw input
it reads (before and after reading it; a file that changes while being read is refused) and
records the digests in ``ingest_flow.json`` (``inputs``); the report carries those digests
forward, and a file that has changed on disk since flags it (``changed_since_read`` and its
``current_md5``) instead of silently recording the new file's digest.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

from .config import Params
from .fingerprint import digests, md5_file


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


def collect(params: Params, inputs: dict[str, Path], read: dict[str, dict] | None = None) -> dict[str, Any]:
    """Provenance of a report. ``inputs``: name -> path of every input; ``read``: the digests
    an earlier stage recorded when it read some of them (``ingest_flow.json["inputs"]``),
    which take precedence over the files' current digests (see the module docstring)."""
    from .estimate import package_versions

    read = read or {}
    data_hashes = {}
    for name, path in sorted(inputs.items()):
        now = digests(params.root, name, path)
        recorded = {k: v for k, v in read.items() if k == name or k.startswith(name + "/")}
        if not recorded:
            data_hashes.update(now)
            continue
        for key, entry in sorted(recorded.items()):
            entry = {"path": entry["path"], "md5": entry["md5"], "read_by": "ingest"}
            current = now.get(key, {}).get("md5")
            if current != entry["md5"]:
                entry["changed_since_read"] = True
                entry["current_md5"] = current  # None: removed since
            data_hashes[key] = entry
        for key in sorted(set(now) - set(recorded)):  # a file added since ingest (not read)
            data_hashes[key] = {**now[key], "read_by": None, "changed_since_read": True}
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
