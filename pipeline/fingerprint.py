"""md5 digests of input files (the digest DVC records in dvc.lock) and the per-input
fingerprint that dvc.yaml's ``input@<name>`` stages write."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from models.errors import BadInputError, ConfigError

from .config import Params


def md5_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(params: Params, name: str) -> dict[str, Any]:
    """Path (relative to the project), size and md5 of input ``data.<name>``: the record the
    per-input DVC stage writes, so that an input anywhere in the project is a tracked
    dependency (dvc.yaml ``input@<name>``)."""
    spec = params["data"].get(name)
    if not spec or not spec.get("path"):
        set_ = sorted(k for k, v in params["data"].items() if v)
        raise ConfigError(f"data.{name}: not set in {params.path.name} (inputs set: {', '.join(set_)})")
    path = params.resolve(spec["path"])
    if not path.is_file():
        raise BadInputError(f"data.{name}: file {path} not found; fix data.{name}.path in {params.path.name}")
    return {"name": name, "path": os.path.relpath(path, params.root), "bytes": path.stat().st_size, "md5": md5_file(path)}


def digests(root: Path, name: str, path: Path) -> dict[str, dict[str, str]]:
    """``{name: {path, md5}}`` for a file, or one entry per (non-hidden) file of a folder."""
    out = {}
    if path.is_file():
        out[name] = {"path": os.path.relpath(path, root), "md5": md5_file(path)}
    elif path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")):
            out[f"{name}/{f.relative_to(path)}"] = {"path": os.path.relpath(f, root), "md5": md5_file(f)}
    return out
