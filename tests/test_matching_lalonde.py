"""models.matching against R MatchIt on MatchIt's lalonde data (185 NSW treated, 429 PSID controls).

References: tests/reference/matchit_lalonde.json, made by tests/reference/scripts/matchit_lalonde.R
with MatchIt 4.5.1 + the two upstream nearest-neighbour fixes of 4.5.3 (build script and reasons in
tests/reference/scripts/build_matchit_451_fixed.sh: the Debian 4.5.1 build compares propensity
scores with integer ``abs`` and so ignores calipers and always takes the left neighbour).
Data: tests/data/lalonde.csv, exported by the same script.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models.errors import ConfigError, DesignError
from models.matching.ebal import constraint_matrix, entropy_balance
from models.matching.effects import weighted_att
from models.matching.ipw import att_odds_weights
from models.matching.matchit import att, matchit
from models.matching.propensity import design_matrix, propensity_score

HERE = Path(__file__).parent
REF = json.loads((HERE / "reference" / "matchit_lalonde.json").read_text())
COV = ["age", "educ", "race", "married", "nodegree", "re74", "re75"]


@pytest.fixture(scope="module")
def lalonde():
    d = pd.read_csv(HERE / "data" / "lalonde.csv")
    assert list(d["unit"]) == REF["units"]
    return d


CUTS = {"age": [25, 35], "educ": [9, 12], "re74": [1, 5000], "re75": [1, 5000]}
# case name in the reference -> our matchit() arguments (the R call is stored in each case's "call")
CASES = {
    "nearest_logit_largest": {},
    "nearest_logit_smallest": {"m_order": "smallest"},
    "nearest_logit_data": {"m_order": "data"},
    "nearest_probit": {"link": "probit"},
    "nearest_ratio2": {"ratio": 2},
    "nearest_replace": {"replace": True},
    "nearest_replace_ratio2": {"replace": True, "ratio": 2},
    "nearest_caliper_std": {"caliper": 0.1},
    "nearest_caliper_raw": {"caliper": 0.01, "std_caliper": False},
    "nearest_caliper_std_tight": {"caliper": 0.02},
    "nearest_caliper_raw_tight": {"caliper": 0.001, "std_caliper": False},
    "nearest_caliper_smallest_ratio2": {"caliper": 0.05, "m_order": "smallest", "ratio": 2},
    "nearest_caliper_replace_ratio2": {"caliper": 0.02, "replace": True, "ratio": 2},
    "nearest_exact_married": {"exact": ["married"]},
    "nearest_discard_both": {"discard": "both"},
    "nearest_mahalanobis": {"distance": "mahalanobis"},
    "nearest_mahalanobis_replace_ratio2": {"distance": "mahalanobis", "replace": True, "ratio": 2},
    "cem_default": {"method": "cem"},
    "cem_cutpoints": {"method": "cem", "cutpoints": CUTS},
}


def _rows(ref_mm, units):
    pos = {u: i for i, u in enumerate(units)}
    out = []
    for row in ref_mm:
        row = [row] if isinstance(row, str) or row is None else row
        out.append(sorted(pos[u] for u in row if u is not None))
    return out


@pytest.mark.parametrize("case", list(CASES))
def test_matchit_matches_r(lalonde, case):
    ref = REF["cases"][case]
    m = matchit(lalonde, "treat", COV, **CASES[case])
    w_ref = np.array(ref["weights"])
    # the matched set: which units are matched, exactly
    assert np.array_equal(m.weights > 0, w_ref > 0), case
    # weights are ratios of small integers; 1e-12 covers rounding in the rescaling
    np.testing.assert_allclose(m.weights, w_ref, rtol=0, atol=1e-12)
    if "match_matrix" in ref and m.match_matrix is not None:
        mine = [sorted(int(j) for j in row if j >= 0) for row in m.match_matrix]
        assert mine == _rows(ref["match_matrix"], REF["units"]), case
    if "subclass" in ref and not CASES[case].get("replace"):
        # same partition into matched sets (ids may be numbered differently)
        sub_ref = np.array([-1 if s is None else s for s in ref["subclass"]])
        pairs = pd.crosstab(m.subclass[m.weights > 0], sub_ref[w_ref > 0])
        assert ((pairs > 0).sum(axis=1) == 1).all() and ((pairs > 0).sum(axis=0) == 1).all()
    e = att(m, lalonde["re78"])
    # ATT (dollars, ~1e3): identical matched sets and weights leave only float summation error
    assert abs(e.estimate - ref["effect"]["att"]) < 1e-8
    se_ref = ref["effect"]["se_hc1"] if CASES[case].get("replace") else ref["effect"].get(
        "se_cluster_subclass", ref["effect"]["se_hc1"])
    # SE: sandwich::vcovCL(type HC1) on subclass (without replacement) or HC1 (with): same formula
    assert abs(e.std_error - se_ref) < 1e-8
    if ref.get("distance") is not None and m.distance is not None:
        # R glm stops at |dev - dev_old|/(|dev| + 0.1) < 1e-8; our IRLS runs to ~1e-15, so R's
        # fitted scores carry its own convergence error: ~3e-9 (logit), ~1e-6 (probit)
        tol = 1e-5 if CASES[case].get("link") == "probit" else 1e-7
        np.testing.assert_allclose(m.distance, ref["distance"], rtol=0, atol=tol)


def test_exact_method(lalonde):
    ref = REF["cases"]["exact_married_nodegree"]
    m = matchit(lalonde, "treat", ["married", "nodegree", "race"], method="exact")
    np.testing.assert_allclose(m.weights, ref["weights"], rtol=0, atol=1e-12)
    e = att(m, lalonde["re78"])
    assert abs(e.estimate - ref["effect"]["att"]) < 1e-8
    assert abs(e.std_error - ref["effect"]["se_cluster_subclass"]) < 1e-8


def test_counts_are_complete(lalonde):
    m = matchit(lalonde, "treat", COV, caliper=0.02)
    c = m.counts
    assert c["matched_treated"] + c["unmatched_treated"] == c["n_treated"] == 185
    assert c["matched_control"] + c["unmatched_control"] == c["n_control"] == 429
    assert c["treated_unmatched_no_control_in_caliper_or_stratum"] == c["unmatched_treated"] == 85
    m = matchit(lalonde, "treat", COV, discard="both")
    assert m.counts["discarded_treated"] + m.counts["discarded_control"] > 0
    assert m.common_support["discarded_treated"] == m.counts["discarded_treated"] == 8


def test_ipw_matches_glm_weights(lalonde):
    ref = REF["cases"]["ipw_att"]
    t = lalonde["treat"].to_numpy().astype(bool)
    ps = propensity_score(lalonde, t, COV)
    w = att_odds_weights(ps, t)
    # R glm's convergence error in the scores (~3e-9) is amplified by p/(1-p) near 1
    np.testing.assert_allclose(w, ref["weights"], rtol=1e-6, atol=1e-7)
    e = weighted_att(lalonde["re78"], t, w)
    assert abs(e.estimate - ref["effect"]["att"]) < 1e-4    # dollars, from the weights' 1e-8 error
    assert abs(e.std_error - ref["effect"]["se_hc1"]) < 1e-4


@pytest.mark.parametrize("moments", [1, 2])
def test_entropy_balancing(lalonde, moments):
    ref = REF["cases"][f"ebal_moments{moments}"]
    t = lalonde["treat"].to_numpy().astype(bool)
    X, _, _ = design_matrix(lalonde, COV)
    X = X[:, 1:]
    w, info = entropy_balance(X, t, moments=moments)
    Z = constraint_matrix(X, moments)
    wc = w[~t] / w[~t].sum()
    gap = np.abs(wc @ Z[~t] - Z[t].mean(axis=0))
    # constraints hold to 1e-8 in SD units of each constraint (re74^2 is ~1e8 dollars^2, so SD units)
    assert np.all(gap / Z[~t].std(axis=0, ddof=1) < 1e-8)
    assert w[~t].sum() == pytest.approx(t.sum())
    # vs the independent R dual solver (optim BFGS + Newton); both converged to ~1e-13 in SD units
    np.testing.assert_allclose(w, ref["weights"], rtol=1e-8, atol=1e-10)
    e = weighted_att(lalonde["re78"], t, w)
    assert abs(e.estimate - ref["effect"]["att"]) < 1e-6


def test_separation_names_the_covariate(lalonde):
    d = lalonde.copy()
    d["nsw_site"] = np.where(d["treat"] == 1, "nsw", d["race"])  # a level held only by treated units
    with pytest.raises(DesignError) as ei:
        matchit(d, "treat", ["age", "nsw_site"])
    assert "nsw_site=nsw" in str(ei.value) and ei.value.exit_code == 4
    d["earn_hi"] = d["re78"] + 1e6 * d["treat"]                 # complete separation on a number
    with pytest.raises(DesignError) as ei:
        matchit(d, "treat", ["age", "earn_hi"])
    assert "earn_hi" in str(ei.value)


def test_no_common_support(lalonde):
    d = lalonde.copy()
    t = d["treat"].to_numpy().astype(bool)
    # exact strata that never hold both groups: nothing can be matched
    with pytest.raises(DesignError) as ei:
        matchit(d.assign(strat=np.where(t, "a", "b")), "treat", COV, exact=["strat"])
    assert ei.value.exit_code == 4 and "strat" in str(ei.value)
    # CEM with cut points that put every treated unit in a stratum without controls
    with pytest.raises(DesignError) as ei:
        matchit(d.assign(site=np.where(t, 1.0, 0.0)), "treat", ["age", "site"], method="cem", cutpoints={"site": [0.5]})
    assert ei.value.exit_code == 4


def test_bad_arguments_collected(lalonde):
    with pytest.raises(ConfigError) as ei:
        matchit(lalonde, "treat", COV + ["nope"], method="optimal", ratio=0, m_order="closest")
    msg = str(ei.value)
    for word in ("optimal", "ratio", "closest", "nope"):
        assert word in msg


def test_random_order_is_seeded(lalonde):
    a = matchit(lalonde, "treat", COV, m_order="random", seed=3)
    b = matchit(lalonde, "treat", COV, m_order="random", seed=3)
    assert np.array_equal(a.weights, b.weights)
    assert a.counts["matched_treated"] == 185
