"""pipeline.report.inference_checks: the inference / few-clusters verdicts shown in the report."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest

from pipeline.report.inference_checks import WITHHELD, inference_rows, inference_summary, verdict

sys.path.insert(0, str(Path(__file__).parent / "reference" / "scripts"))


def _meta(vcov, G=None, G1=None, warnings=None):
    m = {"vcov": vcov, "n_clusters": G}
    if G1 is not None:
        m["n_treated_clusters"] = G1
    if warnings is not None:
        m["warnings"] = warnings
    return m


@pytest.mark.parametrize(
    "meta, expect, words",
    [
        (_meta("cluster(firm_id)", 3000, 800), "pass", ["3,000 clusters"]),
        (_meta("cluster(cluster_id)", 12, 7), "concern", ["Only 12 clusters by cluster id", "CRV1", "Only 7 treated clusters"]),
        (_meta("cluster(region)", 20, 15), "concern", ["Only 20 clusters", "'wild'"]),
        (_meta("wild(region; webb, B=9999)", 20, 15), "pass", ["wild cluster restricted bootstrap is used"]),
        (_meta("crv3(region)", 20, 15), "pass", ["CRV3 jackknife is used"]),
        (_meta("wild(cluster_id; webb, B=9999)", 8, 2), "concern", ["Only 2 treated clusters", "randomization inference"]),
        (_meta("twoway(firm_id+year)", 15), "concern", ["Only 15 clusters"]),
        (_meta("hetero", None), "note", ["not clustered"]),
        (_meta("cluster(firm_id)", 5000, None), "pass", ["5,000 clusters"]),
        (_meta("wild(region; webb, B=999)", 8, 8), "pass", ["Only 8 clusters"]),  # all clusters treated
    ],
)
def test_verdict(meta, expect, words):
    v = verdict(meta)
    assert v["verdict"] == expect
    for w in words:
        assert w in v["sentence"], (w, v["sentence"])
    if meta.get("n_clusters"):
        assert f"clusters = {meta['n_clusters']:,}" in v["numbers"]


def _rel(rows):
    return pd.DataFrame(rows, columns=["outcome", "estimator", "term", "suppressed"])


def test_rows_withheld_skipped_and_notes():
    metas = {
        "y-twfe": _meta("cluster(cluster_id)", 8, 5, warnings=["few clusters: only 8 clusters ...", "singletons dropped: 3"]),
        "y-cs": _meta("cluster(firm_id)", 900, 300),
        "y-sunab": _meta("cluster(cluster_id)", 8, 5),
        "y-checks": _meta("cluster(cluster_id)", 8, 5),
        "z-twfe": _meta("cluster(cluster_id)", 8, 5),  # no released rows: no verdict
    }
    rel = _rel([("y", "twfe", "post", False), ("y", "cs", "simple", False), ("y", "sunab", "simple", True),
                ("y", "checks", "ri_pvalue", False)])
    rows = inference_rows(rel, metas, {"y": "Output"})
    by = {r["key"]: r for r in rows}
    assert set(by) == {"y-twfe", "y-cs", "y-sunab"}
    assert by["y-twfe"]["verdict"] == "concern" and by["y-twfe"]["css"] == "warn" and by["y-twfe"]["outcome"] == "Output"
    assert by["y-twfe"]["notes"] == ["singletons dropped: 3"]  # few-clusters warnings are in the sentence already
    assert by["y-cs"]["verdict"] == "pass" and by["y-cs"]["css"] == "good"
    assert by["y-sunab"]["sentence"] == WITHHELD and by["y-sunab"]["numbers"] == ""
    s = inference_summary(rows)
    assert s.startswith("Inference: 2 of 3 results rest on few clusters")
    assert inference_summary([by["y-cs"]]).startswith("Inference: all 1 results")
    assert inference_summary([]) == ""


def test_on_a_real_estimator_meta():
    from models import registry
    from models.spec import EstimatorSpec
    from models.vcov import VcovSpec
    from vcov_wild_peer import design

    df = design()
    res = registry.get("twfe").fit(df, EstimatorSpec(yname="y", vcov=VcovSpec.from_params({"kind": "cluster", "by": ["cluster"]})))
    rel = res.tidy.assign(suppressed=False)
    (row,) = inference_rows(rel, {"y-twfe": res.meta}, {})
    assert row["verdict"] == "concern"
    assert "Only 8 clusters by cluster" in row["sentence"] and "Only 5 treated clusters" in row["sentence"]
