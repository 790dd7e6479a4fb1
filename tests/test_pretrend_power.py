"""Pre-trend power (Roth 2022) vs the R pretrends README (He & Wang 2017 example) and
Monte-Carlo checks. Reference: tests/reference/pretrends_he_wang.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from models.inference.pretrend_power import (
    pretest_power,
    pretrends,
    slope_for_power,
    truncated_mean_rectangle,
)

REF = json.loads((Path(__file__).parent / "reference" / "pretrends_he_wang.json").read_text())
B = np.array(REF["inputs"]["beta"])
S = np.array(REF["inputs"]["sigma"])
T = np.array(REF["inputs"]["tVec"])
PUB = REF["published"]
PRE = T < -1

# Tolerances: R evaluates the rectangle probabilities with mvtnorm::pmvnorm's default
# GenzBretz(abseps = 1e-3) (randomised), so its printed power carries ~1e-4..1e-3 error
# (the README's "0.4999776" at the slope built for exactly 0.5 shows it); truncated means
# come from tmvtnorm. We integrate to 1e-7.
TOL_P = 1e-3


def test_slope_for_power_50():
    s50 = slope_for_power(S[np.ix_(PRE, PRE)], T[PRE], 0.5, reference_period=-1)
    # R's uniroot default tol ~ 1.2e-4 x scale; printed 0.05205871
    assert abs(s50 - PUB["slope_for_power_50"]) < 2e-4


def test_pretrends_linear_matches_readme():
    ref = PUB["linear_slope50"]
    r = pretrends(B, S, T, np.array(ref["deltatrue"]), reference_period=-1)
    assert abs(r["power"] - ref["power"]) < TOL_P
    assert abs(r["bayes_factor"] - ref["bayes_factor"]) < TOL_P
    assert abs(r["likelihood_ratio"] - ref["likelihood_ratio"]) < 1e-6  # closed form; input rounded to 8 digits
    ep = r["event_plot"].set_index("t")
    assert np.max(np.abs(ep.loc[ref["t"], "mean_after_pretesting"].to_numpy() - ref["meanAfterPretesting"])) < TOL_P


def test_pretrends_quadratic_matches_readme():
    ref = PUB["quadratic"]
    r = pretrends(B, S, T, 0.024 * (T + 1) ** 2, reference_period=-1)
    assert abs(r["power"] - ref["power"]) < TOL_P
    assert abs(r["bayes_factor"] - ref["bayes_factor"]) < TOL_P
    assert abs(r["likelihood_ratio"] - ref["likelihood_ratio"]) < 1e-6


@pytest.mark.parametrize("test", ["individual", "joint"])
def test_power_and_conditional_mean_monte_carlo(test):
    rng = np.random.default_rng(7)
    Sp = S[np.ix_(PRE, PRE)]
    delta = 0.04 * (T + 1)
    draws = rng.multivariate_normal(delta, S, size=400_000)
    pre = draws[:, PRE]
    c = stats.norm.ppf(0.975) * np.sqrt(np.diag(Sp))
    if test == "individual":
        passed = np.all(np.abs(pre) <= c, axis=1)
    else:
        w = np.einsum("ni,ij,nj->n", pre, np.linalg.inv(Sp), pre)
        passed = w <= stats.chi2.ppf(0.95, PRE.sum())
    p = pretest_power(Sp, delta[PRE], test=test)
    # MC sd of a proportion with n = 4e5 is <= 8e-4; 4 sd
    assert abs(p - (1 - passed.mean())) < 3.2e-3
    if test == "individual":
        r = pretrends(B, S, T, delta)
        ep = r["event_plot"].set_index("t").loc[T]
        mc = draws[passed].mean(axis=0)
        se_mc = draws[passed].std(axis=0) / np.sqrt(passed.sum())
        assert np.all(np.abs(ep["mean_after_pretesting"].to_numpy() - mc) < 4 * se_mc)
        assert r["power_joint"] == pytest.approx(pretest_power(Sp, delta[PRE], test="joint"))


def test_truncated_mean_univariate_closed_form():
    m = truncated_mean_rectangle([0.3], [[2.0]], [-1.0], [0.5])
    sd = np.sqrt(2.0)
    tn = stats.truncnorm((-1 - 0.3) / sd, (0.5 - 0.3) / sd, loc=0.3, scale=sd).mean()
    assert abs(m[0] - tn) < 1e-12


def test_power_at_zero_is_size():
    Sp = S[np.ix_(PRE, PRE)]
    assert pretest_power(Sp, np.zeros(PRE.sum()), test="joint") == pytest.approx(0.05)
    # individual: 1 - P(all insignificant) is >= 5% (multiple leads), <= 3 x 5%
    p = pretest_power(Sp, np.zeros(PRE.sum()))
    assert 0.05 < p < 0.15
