"""Callaway-Sant'Anna recovers simulated truth.

Design (self-contained): N units, periods 2001-2008, cohorts 2003/2005/2007 + never
treated. A time-invariant covariate x shifts both cohort membership (selection on x) and
the outcome trend (x * gamma_t), so parallel trends hold only conditional on x:
unconditional DiD is biased, the DR/IPW/OR estimators with x are not. Treatment effects
are heterogeneous and dynamic: tau_it = (0.2 + 0.1 e + 0.15 [g = 2003]) (1 + u_i),
u_i ~ N(0, 0.5^2), e = t - g >= 0. The truth for ATT(g,t) is the mean of tau over the
cohort's units in the simulated sample; aggregated truths use the same cohort-share
weights as aggte (so the target is the sample-weighted parameter).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.did.aggte import aggte
from models.did.att_gt import att_gt

YEARS = np.arange(2001, 2009)
COHORTS = np.array([2003, 2005, 2007])


def simulate(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=n)
    # multinomial logit selection on x: never, 2003, 2005, 2007
    logits = np.column_stack([np.zeros(n), -1.2 + 0.8 * x, -1.0 + 0.5 * x, -0.8 + 0.2 * x])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    c = (p.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
    g = np.where(c == 0, 0, COHORTS[np.maximum(c - 1, 0)])
    T = YEARS.size
    alpha = rng.normal(size=n) + 0.5 * x
    lam = 0.1 * np.arange(T)
    gamma = 0.15 * np.arange(T)  # x-specific trend -> conditional parallel trends only
    u = rng.normal(0, 0.5, n)
    e = YEARS[None, :] - g[:, None]
    treated = (g[:, None] > 0) & (e >= 0)
    tau = np.where(treated, (0.2 + 0.1 * e + 0.15 * (g[:, None] == 2003)) * (1 + u[:, None]), 0.0)
    y = alpha[:, None] + lam[None, :] + x[:, None] * gamma[None, :] + tau + rng.normal(0, 0.5, (n, T))
    df = pd.DataFrame(
        {
            "id": np.repeat(np.arange(n), T),
            "year": np.tile(YEARS, n),
            "g": np.repeat(g, T),
            "x": np.repeat(x, T),
            "y": y.ravel(),
        }
    )
    truth = pd.DataFrame({"g": np.repeat(g, T), "year": np.tile(YEARS, n), "tau": tau.ravel()})
    truth = truth[truth.g > 0].groupby(["g", "year"], as_index=False)["tau"].mean()
    return df, truth


def true_aggregates(res, truth: pd.DataFrame) -> dict:
    """Truth aggregated with aggte's weights (cohort shares of the sample)."""
    tt = truth.set_index(["g", "year"])["tau"]
    att_true = np.array([tt.get((g, t), 0.0) if t >= g else 0.0 for g, t in zip(res.groups, res.times)])
    sizes = res.cohort_sizes
    pg = np.array([sizes[int(g)] for g in res.groups], float)
    post = res.groups <= res.times
    e = res.times - res.groups
    dyn = {}
    for ev in np.unique(e[post]):
        m = e == ev
        dyn[int(ev)] = float(np.sum(att_true[m] * pg[m]) / pg[m].sum())
    return {"simple": float(np.sum(att_true[post] * pg[post]) / pg[post].sum()), "dynamic": dyn}


def run(draws: int, n: int, est_method: str = "dr", covariates=("x",), control_group="nevertreated"):
    out = []
    for s in range(draws):
        df, truth = simulate(n, seed=1000 + s)
        res = att_gt(df, "y", "year", "id", "g", covariates=covariates, est_method=est_method, control_group=control_group)
        tr = true_aggregates(res, truth)
        simple = aggte(res, "simple")
        dyn = aggte(res, "dynamic")
        rec = {"simple_err": simple.overall_att - tr["simple"], "simple_se": simple.overall_se}
        for ev, v in zip(dyn.egt, dyn.att_egt):
            if ev >= 0:
                i = list(dyn.egt).index(ev)
                rec[f"e{ev}_err"] = v - tr["dynamic"][int(ev)]
                rec[f"e{ev}_se"] = dyn.se_egt[i]
        # pre-period (placebo) dynamic effects have truth 0
        for i, ev in enumerate(dyn.egt):
            if ev < 0:
                rec[f"e{ev}_err"] = dyn.att_egt[i]
                rec[f"e{ev}_se"] = dyn.se_egt[i]
        out.append(rec)
    return pd.DataFrame(out)


def _summaries(sim: pd.DataFrame):
    keys = [c[:-4] for c in sim.columns if c.endswith("_err")]
    bias = {k: sim[f"{k}_err"].mean() / sim[f"{k}_se"].mean() for k in keys}
    cover = {k: float((np.abs(sim[f"{k}_err"]) <= 1.959964 * sim[f"{k}_se"]).mean()) for k in keys}
    return bias, cover


@pytest.mark.parametrize(("est_method", "draws", "bias_bound", "cover_bound"), [("dr", 30, 0.6, 0.80), ("ipw", 15, 0.8, 0.70), ("reg", 15, 0.8, 0.70)])
def test_recovery_fast(est_method, draws, bias_bound, cover_bound):
    # The Monte Carlo sd of mean(err)/SE is 1/sqrt(draws) (0.18 for 30, 0.26 for 15 draws):
    # the bias bounds are > 3 MC sd. Coverage of a correct 95% interval falls below 0.80 in
    # 30 draws (0.70 in 15) with probability < 0.01. The slow test tightens both.
    sim = run(draws, 1500, est_method)
    bias, cover = _summaries(sim)
    assert max(abs(b) for b in bias.values()) < bias_bound, bias
    assert min(cover.values()) >= cover_bound, cover


def test_unconditional_is_biased_here():
    """The design violates unconditional parallel trends: without x the simple ATT is off
    by several SEs (so the recovery tests above can fail)."""
    sim = run(10, 1500, "dr", covariates=())
    assert sim["simple_err"].mean() / sim["simple_se"].mean() > 2.0


def test_notyettreated_recovers():
    sim = run(12, 1500, "dr", control_group="notyettreated")
    bias, _ = _summaries(sim)
    # 12 draws: MC sd of mean(err)/SE ~ 0.29; 0.9 is > 3 sd
    assert max(abs(b) for b in bias.values()) < 0.9, bias


@pytest.mark.slow
@pytest.mark.parametrize("est_method", ["dr", "ipw", "reg"])
def test_recovery_coverage_slow(est_method):
    # 400 draws: MC sd of mean(err)/SE = 0.05 and of coverage ~0.011; the bias bound 0.1 SE
    # (brief) is 2 MC sd for the simple ATT; per event time we allow 0.15 (3 sd).
    sim = run(400, 1500, est_method)
    bias, cover = _summaries(sim)
    assert abs(bias["simple"]) < 0.1, bias
    assert max(abs(b) for b in bias.values()) < 0.15, bias
    assert all(0.90 <= c <= 0.99 for c in cover.values()), cover
