"""Wild cluster bootstrap and CRV3 vs wildboottest / pyfixest, plus a size simulation.

Stored peer output: tests/reference/wild_bootstrap.json (script:
tests/reference/scripts/wild_bootstrap_peer.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from models.errors import BadInputError
from models.inference.wild_bootstrap import (
    crv1_vcov,
    crv3_vcov,
    few_clusters_warning,
    wild_cluster_bootstrap,
)

HERE = Path(__file__).parent
REF = json.loads((HERE / "reference" / "wild_bootstrap.json").read_text())
sys.path.insert(0, str(HERE / "reference" / "scripts"))
from wild_bootstrap_peer import design  # noqa: E402

X, Y, CL = design()


@pytest.mark.parametrize("j", [1, 2])
def test_enumerated_wcr_equals_wildboottest(j):
    ref = REF["wildboottest"][str(j)]
    r = wild_cluster_bootstrap(X, Y, CL, j, B=9999, return_draws=True)
    assert r["enumerated"] and r["B"] == ref["B"] == 256
    # full enumeration: the bootstrap distribution is deterministic -> exact agreement
    tb_ref = np.array(ref["t_boot_sorted"])
    assert abs(r["t_stat"] - ref["t_stat"]) < 1e-10  # floating point only
    assert np.max(np.abs(np.sort(r["t_boot"]) - tb_ref)) < 1e-10
    # p-values: identical except for draws tying with |t| (v = +-1 reproduces the sample
    # under WCR), which wildboottest classifies by rounding noise and we never count
    ties = np.abs(np.abs(tb_ref) - abs(ref["t_stat"])) < 1e-10 * abs(ref["t_stat"])
    assert ties.sum() == 2
    assert r["p_value"] == np.mean((np.abs(tb_ref) > abs(ref["t_stat"])) & ~ties)
    assert abs(r["p_value"] - ref["p_value"]) <= ties.sum() / ref["B"]


def test_webb_weights_agree_with_wildboottest_to_mc_error():
    ref = REF["wildboottest_webb"]
    r = wild_cluster_bootstrap(X, Y, CL, 1, B=9999, weights="webb", seed=5)
    # independent draws: sd of the difference of two p-values = sqrt(2 p (1-p) / B); 4 sd
    sd = np.sqrt(2 * r["p_value"] * (1 - r["p_value"]) / 9999)
    assert abs(r["p_value"] - ref["p_value"]) < 4 * sd + 1e-4


def test_crv3_equals_pyfixest():
    G = len(np.unique(CL))
    raw = np.array(REF["pyfixest_crv3"]["vcov_raw"])
    V3 = crv3_vcov(X, Y, CL)
    assert np.max(np.abs(V3 - (G - 1) / G * raw)) < 1e-8 * np.max(np.abs(raw))  # the 1e-8 bar


def test_crv1_equals_pyfixest():
    V = np.array(REF["pyfixest_crv1"]["vcov"])
    assert np.max(np.abs(crv1_vcov(X, Y, CL) - V)) < 1e-12 * np.max(np.abs(V)) * 1e3  # rounding only


def test_fe_argument_matches_dummies():
    rng = np.random.default_rng(0)
    G, T = 10, 12
    unit = np.repeat(np.arange(G * 3), T)
    cl = unit // 3
    x = rng.normal(size=unit.size)
    y = 0.2 * x + rng.normal(size=G * 3)[unit] + rng.normal(size=unit.size)
    D = (unit[:, None] == np.arange(G * 3)).astype(float)
    a = wild_cluster_bootstrap(x, y, cl, 0, B=999, weights="webb", seed=2, fe=unit, return_draws=True)
    b = wild_cluster_bootstrap(np.column_stack([x, D]), y, cl, 0, B=999, weights="webb", seed=2, return_draws=True)
    assert abs(a["estimate"] - b["estimate"]) < 1e-10
    # FE nested in the cluster are not counted in (N-1)/(N-k) (fixest convention), the
    # dummies are: t statistics differ by that factor only; p-values are identical
    assert a["p_value"] == b["p_value"]
    assert np.allclose(a["t_boot"] / b["t_boot"], a["t_stat"] / b["t_stat"])


def test_seeding_is_blockwise_reproducible():
    a = wild_cluster_bootstrap(X, Y, CL, 1, B=5000, weights="webb", seed=9, return_draws=True)
    b = wild_cluster_bootstrap(X, Y, CL, 1, B=9999, weights="webb", seed=9, return_draws=True)
    # replicate i uses the same weights whatever B is (per-block SeedSequence children)
    # (up to BLAS rounding: blocks of different shape go through different kernels)
    assert np.allclose(a["t_boot"], b["t_boot"][:5000], rtol=1e-12, atol=1e-12)
    c = wild_cluster_bootstrap(X, Y, CL, 1, B=5000, weights="webb", seed=10, return_draws=True)
    assert not np.array_equal(a["t_boot"], c["t_boot"])


def test_few_clusters_warning():
    assert "8 clusters" in few_clusters_warning(8)
    assert few_clusters_warning(50) is None
    assert wild_cluster_bootstrap(X, Y, CL, 1, B=99, weights="webb")["warning"] is not None


def test_bad_input():
    with pytest.raises(BadInputError):
        wild_cluster_bootstrap(X[:-1], Y, CL, 1)
    with pytest.raises(BadInputError):
        wild_cluster_bootstrap(X, Y, CL, 5)


def _size_sim(n_rep, B, seed, G=8):
    """H0 true (beta_x = 0); 8 clusters of unequal size, regressor and error both with a
    cluster component: the textbook case where CRV1 + normal critical values over-reject."""
    rng = np.random.default_rng(seed)
    sizes = np.array([10, 15, 20, 30, 40, 60, 80, 120])[:G]
    cl = np.repeat(np.arange(G), sizes)
    rej_boot = rej_crv1 = 0
    for rep in range(n_rep):
        x = rng.normal(size=G)[cl] + 0.5 * rng.normal(size=cl.size)
        y = rng.normal(size=G)[cl] + rng.normal(size=cl.size)
        Xs = np.column_stack([np.ones(cl.size), x])
        r = wild_cluster_bootstrap(Xs, y, cl, 1, B=B, weights="webb", seed=rep)
        rej_boot += r["p_value"] < 0.05
        rej_crv1 += abs(r["t_stat"]) > stats.norm.ppf(0.975)
    return rej_boot / n_rep, rej_crv1 / n_rep


def test_size_fast():
    boot, crv1 = _size_sim(n_rep=300, B=199, seed=1)
    # 300 reps: sd of a 5% rejection rate = 0.0126; bounds ~ +-3.5 sd around 5%
    assert 0.01 <= boot <= 0.095
    assert crv1 > boot


@pytest.mark.slow
def test_size_slow():
    boot, crv1 = _size_sim(n_rep=2000, B=399, seed=2)
    # 2000 reps: sd 0.0049; the band 3-7% is ~ +-4 sd
    assert 0.03 <= boot <= 0.07
    assert crv1 > 0.08


def test_ci_by_test_inversion():
    r = wild_cluster_bootstrap(X, Y, CL, 1, B=1999, weights="webb", seed=3, ci_level=0.95)
    lo, hi = r["ci"]
    assert lo < r["estimate"] < hi
    # the bounds are where the bootstrap p-value crosses 5%, with the same weights
    inside = wild_cluster_bootstrap(X, Y, CL, 1, B=1999, weights="webb", seed=3, r=lo + 1e-3 * r["std_error"])
    outside = wild_cluster_bootstrap(X, Y, CL, 1, B=1999, weights="webb", seed=3, r=lo - 1e-3 * r["std_error"])
    assert inside["p_value"] > 0.05 >= outside["p_value"]
    # WCU: symmetric percentile-t interval est +- q se, q = 95% quantile of |t*|
    u = wild_cluster_bootstrap(X, Y, CL, 1, B=1999, weights="webb", seed=3, impose_null=False,
                               ci_level=0.95, return_draws=True)
    q = np.sort(np.abs(u["t_boot"]))
    half = (u["ci"][1] - u["ci"][0]) / 2 / u["std_error"]
    assert np.searchsorted(q, half) in (int(0.95 * 1999) - 1, int(0.95 * 1999), int(0.95 * 1999) + 1)
