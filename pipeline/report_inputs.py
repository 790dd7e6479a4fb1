"""Gather what the report stage needs from the earlier stages' outputs (I/O only)."""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from .config import Params
from .disclosure import cell_contributions
from .estimate import read_results
from .io import read_json
from .paths import Paths
from .provenance import collect
from .report.build import ReportInputs


def load_report_inputs(params: Params) -> ReportInputs:
    paths = Paths.of(params)
    estimates, metas, tables, skipped = read_results(paths.estimates_dir)
    truth = None
    truth_spec = params["data"].get("truth")
    if truth_spec:
        truth = pd.read_csv(params.resolve(truth_spec["path"]))
    outcomes = sorted(set(estimates["outcome"].dropna())) if len(estimates) else []
    schema = set(pq.read_schema(paths.processed_panel).names)
    cols = [c for c in ("firm_id", "year", "first_treat", "group_id", *outcomes) if c in schema]
    panel = pd.read_parquet(paths.processed_panel, columns=cols)
    contributors = cell_contributions(panel, outcomes, group="group_id" if "group_id" in schema else None)
    del panel
    raw_inputs = {
        name: params.resolve(spec["path"])
        for name, spec in params["data"].items()
        if spec
    }
    provenance = collect(params, {**raw_inputs, "estimates": paths.estimates_dir})
    provenance["skipped_estimations"] = skipped
    return ReportInputs(
        estimates=estimates,
        metas=metas,
        tables=tables,
        ingest_flow=read_json(paths.ingest_flow),
        groups_flow=read_json(paths.groups_flow),
        groups_summary=pd.read_csv(paths.groups_summary),
        truth=truth,
        params=params.raw,
        provenance=provenance,
        contributors=contributors,
    )
