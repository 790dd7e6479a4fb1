"""The all-NA message of aggte: every reason a cell can be NA is named with its count, its
first cells and its fix (models.did.na_cells). The separation case runs through the real CLI
in tests/test_hostile_cli.py; here the overlap guard (a preliminary score >= 0.999, R did's
rule) is produced by att_gt itself on a small simulated panel."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.did.aggte import aggte
from models.did.att_gt import att_gt
from models.did.na_cells import FIX, all_na_problems, kind
from models.errors import DesignError


def _panel(seed=0, n=400, T=6):
    rng = np.random.default_rng(seed)
    g = rng.choice([0, 4, 5], size=n, p=[0.5, 0.25, 0.25])
    ids = np.repeat(np.arange(n), T)
    t = np.tile(np.arange(1, T + 1), n)
    gg = np.repeat(g, T)
    y = rng.normal(size=n * T) + (gg > 0) * (t >= gg) * 1.0
    return pd.DataFrame({"id": ids, "t": t, "g": gg, "y": y})


def test_overlap_guard_cells_are_named_with_the_fix():
    d = _panel()
    # a covariate that nearly determines treatment: treated firms sit 4 SD to the right of the
    # never-treated, with some overlap, so the logit converges (no separation) but the largest
    # preliminary scores exceed 0.999 and the overlap guard sets every cell to NA
    rng = np.random.default_rng(1)
    first = d.groupby("id")["g"].first()
    x = 4.0 * (first > 0) + rng.normal(size=len(first))
    d["x"] = d["id"].map(x)
    res = att_gt(d, "y", "t", "id", "g", covariates=["x"], est_method="dr", bstrap=False)
    assert np.isnan(res.att).all()
    with pytest.raises(DesignError) as exc:
        aggte(res, "simple", na_rm=True)
    msg = str(exc.value)
    assert f"all {res.att.size} ATT(g,t) cells are NA" in msg
    assert "propensity score >= 0.999" in msg and "first: (g,t)=(4,2), (g,t)=(4,3)" in msg
    assert "the covariates (x) nearly determine membership" in msg
    assert set(res.na_reasons) == {(float(g), float(t)) for g, t in zip(res.groups, res.times)}


def test_every_reason_att_gt_records_has_its_own_fix():
    """The reasons as models.did.att_gt / cs_moments / drdid write them map to their fix."""
    assert kind("overlap condition violated (max propensity score >= 0.999)") == "overlap"
    assert kind("propensity-score logit: singular Hessian (collinear covariates or no variation)") == "separation"
    assert kind("propensity-score logit diverged (separation?)") == "separation"
    assert kind("no comparison units") == "no comparison" and kind("no treated units") == "no treated"
    assert kind("outcome regression: singular design") == "other"


def test_grouping_counts_and_lists_first_cells():
    reasons = {(2012.0, t): "overlap condition violated (max propensity score >= 0.999)" for t in range(2005, 2013)}
    reasons[(2014.0, 2013.0)] = "no comparison units"
    lines = all_na_problems(reasons, 10, ["sector"])
    assert lines[0].startswith("8 cell(s): overlap condition violated") and "and 3 more" in lines[0]
    assert FIX["overlap"].format(names=" (sector)") in lines[0]
    assert lines[1].startswith("1 cell(s): no comparison units; first: (g,t)=(2014,2013)")
    assert lines[2].startswith("1 cell(s) with no recorded reason")
