"""Where each stage reads and writes, relative to the params file's folder (DESIGN.md §1).

Every location goes through :func:`pipeline.config.resolve_path`, so an output folder that is
a symlink to somewhere outside the project is refused (exit 5) before anything is written,
exactly as input paths are.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import Params, resolve_path

LAYOUT = {
    # input fingerprints (DVC's per-input stages, dvc.yaml `input@<name>`)
    "inputs_dir": "data/interim/inputs",
    # ingest
    "interim_panel": "data/interim/panel.parquet",
    "interim_membership": "data/interim/membership.parquet",
    "interim_other_programme": "data/interim/other_programme.parquet",
    "interim_collaborations": "data/interim/collaborations.parquet",
    "interim_costs": "data/interim/costs.parquet",
    "ingest_flow": "data/interim/ingest_flow.json",
    # build_groups
    "processed_panel": "data/processed/panel.parquet",
    "groups_summary": "data/processed/groups_summary.csv",
    "groups_flow": "data/processed/groups_flow.json",
    "cluster_map": "data/processed/cluster_map.parquet",
    "scoreboard": "data/processed/scoreboard.parquet",
    # estimate
    "estimates_dir": "data/estimates",
    # report: the documents are rendered into documents_dir and published (copied) to
    # reports/ by one `publish` step per format in report.formats (dvc.yaml `publish@<fmt>`)
    "reports_dir": "reports",
    "documents_dir": "data/report",
}


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def of(cls, params: Params) -> "Paths":
        return cls(params.root)

    def __getattr__(self, name: str) -> Path:
        if name not in LAYOUT:
            raise AttributeError(name)
        return resolve_path(self.root, LAYOUT[name])
