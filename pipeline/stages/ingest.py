"""Stage 1, ingest: raw files -> data/interim/{panel,membership}.parquet + ingest_flow.json."""

from __future__ import annotations

from ..config import Params
from ..ingest import ingest
from ..io import StageOutputs
from ..paths import Paths


def run(params: Params) -> None:
    paths = Paths.of(params)
    out = ingest(params)
    with StageOutputs() as w:
        w.parquet(paths.interim_panel, out.panel)
        w.parquet(paths.interim_membership, out.membership)
        w.parquet(paths.interim_other_programme, out.other_programme)
        w.json(paths.ingest_flow, out.flow)
