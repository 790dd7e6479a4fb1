"""Gather :class:`~pipeline.report.build.ReportInputs` from a project's stage outputs.

A convenience for the report stage (and for users building a report by hand): reads the
estimates directory (:func:`pipeline.estimate.read_results`), the ingest and group flows,
the groups summary, the optional truth file, computes the disclosure contributions from the
processed panel (:func:`pipeline.disclosure.cell_contributions`, reading only the columns it
needs), the panel's firm and group ids (never shown, scanned for) and collects provenance (:func:`pipeline.provenance.collect`).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

from ..config import Params
from ..disclosure import cell_contributions
from ..estimate import read_results
from ..io import read_json
from ..paths import Paths
from .build import ReportInputs


def load_inputs(params: Params) -> ReportInputs:
    paths = Paths.of(params)
    tidy, metas, tables, skipped = read_results(paths.estimates_dir)
    outcomes = sorted(set(tidy["outcome"].dropna().astype(str))) if len(tidy) else []
    schema = set(pq.read_schema(paths.processed_panel).names)
    cols = [c for c in ("firm_id", "year", "first_treat", "group_id", *outcomes) if c in schema]
    panel = pd.read_parquet(paths.processed_panel, columns=cols)
    contributors = cell_contributions(panel, outcomes, group="group_id" if "group_id" in schema else None)
    # every firm and enterprise-group id of the processed panel (members and non-members):
    # the report shows none of them and the release scan fails on any (pipeline.disclosure)
    unit_ids = {str(v) for c in ("firm_id", "group_id") if c in panel.columns for v in panel[c].dropna().unique()}
    truth = None
    spec = params["data"].get("truth")
    if spec:
        tpath = params.resolve(spec["path"])
        if tpath.is_file():
            truth = pd.read_csv(tpath)
    from ..provenance import collect

    deps = {name: params.resolve(s["path"]) for name, s in sorted(params["data"].items()) if s and s.get("path")}  # from_panel: no file
    deps["estimates"] = paths.estimates_dir
    gs = paths.groups_summary
    ingest_flow = read_json(paths.ingest_flow) if paths.ingest_flow.is_file() else {}
    vfm = None
    if (paths.estimates_dir / "_value_for_money.parquet").is_file():
        vfm = (pd.read_parquet(paths.estimates_dir / "_value_for_money.parquet"), read_json(paths.estimates_dir / "_value_for_money.json"))
    return ReportInputs(
        value_for_money=vfm,
        estimates=tidy,
        metas=metas,
        tables=tables,
        ingest_flow=ingest_flow,
        groups_flow=read_json(paths.groups_flow) if paths.groups_flow.is_file() else {},
        groups_summary=pd.read_csv(gs, dtype={"level": "string"}) if Path(gs).is_file() else None,
        truth=truth,
        params=params.raw,
        provenance=collect(params, deps, read=ingest_flow.get("inputs")),
        contributors=contributors,
        unit_ids=unit_ids,
        skipped=list(skipped or []),
        cluster_map=pd.read_parquet(paths.cluster_map) if paths.cluster_map.is_file() else None,
        scoreboard=pd.read_parquet(paths.scoreboard) if paths.scoreboard.is_file() else None,
    )
