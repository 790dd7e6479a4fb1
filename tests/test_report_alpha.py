"""The report follows ``estimate.alpha`` (issue 14, item 6): labels, stars, verdicts and the
intervals themselves, through the real CLI on a small generated sample."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import yaml
from scipy import stats

from pipeline.report.significance import Significance, report_alpha
from tests._project import cli, project_params

# estimators whose intervals are normal-based: conf = estimate -/+ z_{1-alpha/2} * se
# (CS without cband: pointwise normal intervals; TWFE/event study CRV1 with the normal
# critical value; PPML coefficient and delta-method percentage rows)
NORMAL = ("twfe", "event_study", "cs", "ppml")


@pytest.fixture(scope="module")
def run_alpha10(tmp_path_factory):
    root = tmp_path_factory.mktemp("alpha10")
    res = cli("simulate", "--firms", "500", "--seed", "5", "--out", "data/raw", cwd=root)
    assert res.returncode == 0, res.stderr
    params = project_params(
        alpha=0.10,
        outcomes=["log_labour_productivity", "patents"],
        estimators=["twfe", "event_study", "cs"],
        outcome_estimators={"patents": ["twfe", "ppml"]},
        sensitivity={"estimators": ["event_study"], "outcomes": ["log_labour_productivity"], "mbar": [1.0], "window": [-3, 3]},
    )
    params["report"]["formats"] = ["html"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    return root


def test_html_says_90_and_never_95(run_alpha10):
    html = (run_alpha10 / "reports/report.html").read_text(encoding="utf-8")
    text = re.sub(r"<[^>]+>", " ", html)
    assert "90% interval" in text
    assert "95%" not in text and "95 %" not in text
    # stars and the executive summary are judged at 0.10
    assert "* p&lt;0.1, ** p&lt;0.05, *** p&lt;0.01" in html or "* p<0.1, ** p<0.05, *** p<0.01" in text
    assert "5% level" not in text
    assert "robust 90% intervals" in text


def test_intervals_are_the_90_percent_ones(run_alpha10):
    est = pd.read_csv(run_alpha10 / "reports/estimates.csv")
    z = stats.norm.ppf(0.95)  # 1.6449
    rows = est[est["estimator"].isin(NORMAL) & est["std_error"].notna() & est["conf_low"].notna()]
    assert set(rows["estimator"]) == set(NORMAL)
    assert len(rows) > 20
    # tolerance: estimates.csv rounds to 10 significant digits, so differences of rounded
    # numbers agree to ~1e-9 relative; 1e-6 is far inside the 19% gap between z_0.95 and z_0.975
    np.testing.assert_allclose(rows["conf_high"] - rows["estimate"], z * rows["std_error"], rtol=1e-6, atol=1e-10)
    np.testing.assert_allclose(rows["estimate"] - rows["conf_low"], z * rows["std_error"], rtol=1e-6, atol=1e-10)
    metas = {p.stem: json.loads(p.read_text()) for p in (run_alpha10 / "data/estimates").glob("*-*.json")}
    assert {m["spec"]["alpha"] for m in metas.values() if "spec" in m} == {0.1}


@pytest.mark.parametrize(
    "alpha, ci, level, stars_at",
    [
        (0.05, "95%", "5%", {0.04: "*", 0.009: "**", 0.0009: "***", 0.06: ""}),
        (0.10, "90%", "10%", {0.09: "*", 0.04: "**", 0.009: "***", 0.11: ""}),
        (0.01, "99%", "1%", {0.009: "*", 0.0009: "**", 0.02: ""}),
        (0.025, "97.5%", "2.5%", {0.02: "*", 0.009: "**", 0.0009: "***"}),
    ],
)
def test_significance_labels_and_stars(alpha, ci, level, stars_at):
    s = Significance(alpha)
    assert (s.ci, s.level) == (ci, level)
    for p, st in stars_at.items():
        assert s.stars(p) == st, (alpha, p)
    assert s.stars(float("nan")) == "" and not s.significant(None)


def test_report_alpha_prefers_the_estimates_level():
    metas = {"y-twfe": {"spec": {"alpha": 0.1}}, "y-cs": {"spec": {"alpha": 0.1}}}
    assert report_alpha(metas, {"estimate": {"alpha": 0.05}}) == 0.1
    assert report_alpha({}, {"estimate": {"alpha": 0.2}}) == 0.2
    assert report_alpha({}, {}) == 0.05
