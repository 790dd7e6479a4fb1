"""Stage 2, build_groups: interim panel + register -> data/processed/panel.parquet (with
``cluster_strength``), groups_summary.csv, groups_flow.json, and the cluster context:
cluster_map.parquet and scoreboard.parquet (:mod:`pipeline.cluster_context`)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from ..cluster_context import STRENGTH_COLUMN, cluster_context, needed_columns
from ..config import Params
from ..groups import INPUT_COLUMNS, NEW_COLUMNS, OVERLAP_COLUMNS, build_groups
from ..io import StageOutputs, read_parquet
from ..paths import Paths


def _collaboration_columns(paths: Paths, schema: list[str], membership: pd.DataFrame, edges: pd.DataFrame, keep,
                           new: pd.DataFrame) -> dict:
    """The collaboration outcomes (models.collaboration) as new panel columns. Derived here, not in
    ingest: ingest streams the panel shard by shard, while an edge joins two firms of any shard,
    and the membership spells that define ``partners_same_initiative`` are the register's. They
    are computed over all interim rows (a partner dropped from the estimation sample is still a
    partner, with its region and spells), then the kept rows are taken."""
    from models.collaboration import OUTCOMES, collaboration_outcomes
    from models.errors import BadInputError

    taken = [c for c in OUTCOMES if c in schema]
    if taken:
        raise BadInputError(f"interim panel: already has column(s) {', '.join(taken)}, which build_groups derives from "
                            "data.collaborations; map the firm file's column under another name (params.yaml columns:)")
    full = read_parquet(paths.interim_panel, columns=[c for c in ("firm_id", "year", "region") if c in schema])
    co = collaboration_outcomes(full, edges, membership)
    rows = co.to_numpy()[keep] if keep is not None else co.to_numpy()
    for j, c in enumerate(OUTCOMES):
        new[c] = rows[:, j]
    return {c: {"n_rows": int(len(rows)), "n_missing": int(pd.isna(rows[:, j]).sum())} for j, c in enumerate(OUTCOMES)}


def run(params: Params) -> None:
    paths = Paths.of(params)
    years = params["ingest"]["years"]
    schema = pq.read_schema(paths.interim_panel).names
    # only the columns build_groups reads (and any it would overwrite, so it can refuse them);
    # the rest stream from the interim file into the processed one
    cols = [c for c in schema if c in INPUT_COLUMNS or c in NEW_COLUMNS or c in OVERLAP_COLUMNS or c == STRENGTH_COLUMN]
    other = read_parquet(paths.interim_other_programme) if paths.interim_other_programme.exists() else None
    opts = params.section("build_groups")
    cmap_opts = opts.pop("cluster_map", None)
    membership = read_parquet(paths.interim_membership)
    panel = read_parquet(paths.interim_panel, columns=cols)
    if STRENGTH_COLUMN in panel:
        from models.errors import BadInputError

        raise BadInputError(f"interim panel: already has column {STRENGTH_COLUMN!r}, which build_groups creates; rename it in the raw file's mapping (params.yaml columns:)")
    out = build_groups(panel, membership, opts, years=tuple(years) if years else None, other_programme=other)
    kept = pd.DataFrame({"firm_id": out.panel["firm_id"].astype(str), "first_treat": out.new["first_treat"].to_numpy()}).drop_duplicates("firm_id")
    ctx = cluster_context(read_parquet(paths.interim_panel, columns=needed_columns(schema, cmap_opts)), membership, kept, cmap_opts,
                          tuple(out.flow["years"]))
    new = out.new.copy()
    new[STRENGTH_COLUMN] = ctx.strength_for(out.panel["firm_id"]).to_numpy()
    flow = {**out.flow, **ctx.flow}
    edges = read_parquet(paths.interim_collaborations) if paths.interim_collaborations.exists() else None
    if edges is not None and len(edges):  # data.collaborations set (ingest refuses an edge list with no edge left)
        flow["collaborations"] = _collaboration_columns(paths, schema, membership, edges, out.keep, new)
    with StageOutputs() as w:
        w.parquet_extended(paths.processed_panel, paths.interim_panel, out.keep, new)
        w.csv(paths.groups_summary, out.summary)
        w.json(paths.groups_flow, flow)
        w.parquet(paths.cluster_map, ctx.cluster_map)
        w.parquet(paths.scoreboard, ctx.scoreboard)
