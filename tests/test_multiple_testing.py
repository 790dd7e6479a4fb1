"""Holm vs statsmodels; Romano-Wolf vs a hand-computed example and its FWER."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.multitest import multipletests

from models.errors import BadInputError
from models.inference.multiple_testing import holm, romano_wolf


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_holm_equals_statsmodels(seed):
    rng = np.random.default_rng(seed)
    p = np.r_[rng.uniform(size=12) ** 3, [0.01, 0.01, 1.0]]  # ties and a 1
    adj, rej = holm(p, alpha=0.05)
    rej_sm, adj_sm, _, _ = multipletests(p, alpha=0.05, method="holm")
    assert np.max(np.abs(adj - adj_sm)) < 1e-15  # same arithmetic
    assert np.array_equal(rej, rej_sm)


# Hand computation (B = 5, m = 3): order by |t|: #2 (3.6), #0 (2.5), #1 (1.0)
#   step 1, max over all draws   = [2.0, 3.0, 1.5, 3.5, 0.9] >= 3.6 : 0 of 5
#   step 2, max over {#0, #1}    = [1.0, 3.0, 1.5, 2.6, 0.9] >= 2.5 : 2 of 5
#   step 3, max over {#1}        = [0.5, 0.2, 1.5, 0.3, 0.9] >= 1.0 : 1 of 5
#   p_init = (0, .4, .2) -> running max (0, .4, .4)
#   plus_one: (1/6, 3/6, 2/6) -> (1/6, 1/2, 1/2)
T = np.array([2.5, -1.0, 3.6])
TB = np.array(
    [
        [1.0, 0.5, 2.0],
        [3.0, -0.2, 0.1],
        [-0.5, 1.5, 0.4],
        [2.6, 0.3, -3.5],
        [0.1, 0.9, 0.2],
    ]
)


def test_romano_wolf_hand_example():
    assert np.allclose(romano_wolf(T, TB), [0.4, 0.4, 0.0], atol=0, rtol=0)
    assert np.allclose(romano_wolf(T, TB, plus_one=True), [0.5, 0.5, 1 / 6], rtol=1e-15)


def test_romano_wolf_single_hypothesis_is_bootstrap_p():
    rng = np.random.default_rng(3)
    tb = rng.standard_normal((999, 1))
    assert romano_wolf([1.7], tb)[0] == np.mean(np.abs(tb[:, 0]) >= 1.7)


def test_romano_wolf_controls_fwer_and_beats_holm_under_dependence():
    # global null, 6 strongly correlated tests: FWER of RW ~ 5%, Holm conservative
    rng = np.random.default_rng(4)
    m, rho, B, reps = 6, 0.8, 499, 600
    C = rho + (1 - rho) * np.eye(m)
    L = np.linalg.cholesky(C)
    rej_rw = rej_holm = 0
    from scipy import stats

    for _ in range(reps):
        t = L @ rng.standard_normal(m)
        tb = rng.standard_normal((B, m)) @ L.T
        rej_rw += np.any(romano_wolf(t, tb) <= 0.05)
        rej_holm += np.any(holm(2 * stats.norm.sf(np.abs(t))) <= 0.05)
    # 600 reps: sd of a 5% rate = 0.009; band ~ +-3 sd
    assert 0.02 <= rej_rw / reps <= 0.08
    assert rej_holm <= rej_rw


def test_bad_inputs():
    with pytest.raises(BadInputError):
        holm([0.1, np.nan])
    with pytest.raises(BadInputError):
        romano_wolf(T, TB[:, :2])
