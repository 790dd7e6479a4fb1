"""Stage 1, ingest: raw files -> data/interim/{panel,membership}.parquet + ingest_flow.json.

The panel is streamed into its (temporary) output file shard by shard; all four files are
renamed into place together when the stage succeeds, and removed when it fails."""

from __future__ import annotations

from ..config import Params
from ..ingest import ingest
from ..io import StageOutputs
from ..paths import Paths


def run(params: Params) -> None:
    paths = Paths.of(params)
    with StageOutputs() as w:
        out = ingest(params, panel_path=w.stream(paths.interim_panel))
        w.parquet(paths.interim_membership, out.membership)
        w.parquet(paths.interim_other_programme, out.other_programme)
        w.parquet(paths.interim_collaborations, out.collaborations)
        w.parquet(paths.interim_costs, out.costs)
        w.json(paths.ingest_flow, out.flow)
