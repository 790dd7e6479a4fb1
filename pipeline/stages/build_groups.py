"""Stage 2, build_groups: interim panel + register -> data/processed/panel.parquet,
groups_summary.csv and groups_flow.json."""

from __future__ import annotations

import pyarrow.parquet as pq

from ..config import Params
from ..groups import INPUT_COLUMNS, NEW_COLUMNS, OVERLAP_COLUMNS, build_groups
from ..io import StageOutputs, read_parquet
from ..paths import Paths


def run(params: Params) -> None:
    paths = Paths.of(params)
    years = params["ingest"]["years"]
    schema = pq.read_schema(paths.interim_panel).names
    # only the columns build_groups reads (and any it would overwrite, so it can refuse them);
    # the rest stream from the interim file into the processed one
    cols = [c for c in schema if c in INPUT_COLUMNS or c in NEW_COLUMNS or c in OVERLAP_COLUMNS]
    other = read_parquet(paths.interim_other_programme) if paths.interim_other_programme.exists() else None
    out = build_groups(
        read_parquet(paths.interim_panel, columns=cols),
        read_parquet(paths.interim_membership),
        params.section("build_groups"),
        years=tuple(years) if years else None,
        other_programme=other,
    )
    with StageOutputs() as w:
        w.parquet_extended(paths.processed_panel, paths.interim_panel, out.keep, out.new)
        w.csv(paths.groups_summary, out.summary)
        w.json(paths.groups_flow, out.flow)
