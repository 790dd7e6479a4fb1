"""Stage 2, build_groups: interim panel + register -> data/processed/panel.parquet,
groups_summary.csv and groups_flow.json."""

from __future__ import annotations

from ..config import Params
from ..groups import build_groups
from ..io import StageOutputs, read_parquet
from ..paths import Paths


def run(params: Params) -> None:
    paths = Paths.of(params)
    years = params["ingest"]["years"]
    out = build_groups(
        read_parquet(paths.interim_panel),
        read_parquet(paths.interim_membership),
        params.section("build_groups"),
        years=tuple(years) if years else None,
    )
    with StageOutputs() as w:
        w.parquet(paths.processed_panel, out.panel)
        w.csv(paths.groups_summary, out.summary)
        w.json(paths.groups_flow, out.flow)
