"""Where each stage reads and writes, relative to the params file's folder (DESIGN.md §1)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .config import Params


@dataclass(frozen=True)
class Paths:
    root: Path

    @classmethod
    def of(cls, params: Params) -> "Paths":
        return cls(params.root)

    # ingest
    @property
    def interim_panel(self) -> Path:
        return self.root / "data/interim/panel.parquet"

    @property
    def interim_membership(self) -> Path:
        return self.root / "data/interim/membership.parquet"

    @property
    def ingest_flow(self) -> Path:
        return self.root / "data/interim/ingest_flow.json"

    # build_groups
    @property
    def processed_panel(self) -> Path:
        return self.root / "data/processed/panel.parquet"

    @property
    def groups_summary(self) -> Path:
        return self.root / "data/processed/groups_summary.csv"

    @property
    def groups_flow(self) -> Path:
        return self.root / "data/processed/groups_flow.json"

    # estimate
    @property
    def estimates_dir(self) -> Path:
        return self.root / "data/estimates"

    # report
    @property
    def reports_dir(self) -> Path:
        return self.root / "reports"
