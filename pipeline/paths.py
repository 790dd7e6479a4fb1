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
    # ingest
    "interim_panel": "data/interim/panel.parquet",
    "interim_membership": "data/interim/membership.parquet",
    "interim_other_programme": "data/interim/other_programme.parquet",
    "ingest_flow": "data/interim/ingest_flow.json",
    # build_groups
    "processed_panel": "data/processed/panel.parquet",
    "groups_summary": "data/processed/groups_summary.csv",
    "groups_flow": "data/processed/groups_flow.json",
    "cluster_map": "data/processed/cluster_map.parquet",
    "scoreboard": "data/processed/scoreboard.parquet",
    # estimate
    "estimates_dir": "data/estimates",
    # report
    "reports_dir": "reports",
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
