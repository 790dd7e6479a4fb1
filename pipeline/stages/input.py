"""Per-input fingerprint (dvc.yaml ``input@<name>``, one stage per entry of ``data:``):
data/interim/inputs/<name>.json with the input's path, size and md5.

DVC cannot list a dependency that may or may not exist, but it can generate one stage per
entry of a mapping (``foreach: ${data}``): each input set in params.yaml becomes a tracked
dependency wherever it lies in the project, and the ingest stage depends on the folder of
fingerprints. An input left out of ``data:`` has no stage and is no dependency."""

from __future__ import annotations

from ..config import Params
from ..io import StageOutputs
from ..paths import Paths
from ..fingerprint import fingerprint


def run(params: Params, name: str) -> None:
    with StageOutputs() as w:
        w.json(Paths.of(params).inputs_dir / f"{name}.json", fingerprint(params, name))
