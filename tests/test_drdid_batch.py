"""The batched 2x2 estimators (J outcome changes sharing one sample and nuisance fits, as
att_gt calls them) equal J single-cell calls, and ``scale`` only rescales the influence
function. The single-cell estimators themselves are checked against R DRDID / moderndid in
tests/test_cs_mpdta.py; this file pins the batching and the fused assembly of
``drdid_panel``."""

from __future__ import annotations

import numpy as np
import pytest

from models.did import drdid


def _data(n=400, J=5, seed=7):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 2))
    X = np.column_stack([np.ones(n), x])
    D = (rng.random(n) < 1 / (1 + np.exp(-(0.3 * x[:, 0] - 0.5)))).astype(float)
    y0 = rng.normal(size=(n, J)) + x[:, :1]
    y1 = y0 + 0.5 * D[:, None] + x[:, 1:2] + rng.normal(size=(n, J))
    return y1, y0, D, X


@pytest.mark.parametrize("name", ["drdid_panel", "reg_did_panel", "std_ipw_did_panel"])
def test_batch_equals_single_cells(name):
    y1, y0, D, X = _data()
    fn = getattr(drdid, name)
    att, inf = fn(y1, y0, D, X)
    for j in range(y1.shape[1]):
        r = fn(y1[:, j], y0[:, j], D, X)
        # same arithmetic up to the order of floating-point sums: 1e-12 relative
        assert att[j] == pytest.approx(r.att, rel=1e-12, abs=1e-14)
        np.testing.assert_allclose(inf[:, j], r.inf_func, rtol=1e-10, atol=1e-12)


def test_drdid_scale_rescales_influence_function_only():
    y1, y0, D, X = _data()
    ps, ols = drdid.PScoreFit.fit(D, X), drdid.ControlOLS.fit(D, X)
    a1, i1 = drdid.drdid_panel(y1, y0, D, X, ps=ps, ols=ols)
    a2, i2 = drdid.drdid_panel(y1, y0, D, X, ps=ps, ols=ols, scale=3.5)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(i2, 3.5 * i1, rtol=1e-12, atol=1e-13)  # rounding of the product only
    # the influence function has mean zero (it is centred by construction)
    np.testing.assert_allclose(i1.mean(axis=0), 0.0, atol=1e-10)


def test_pscore_hessian_inverse_matches_plain_inverse():
    """PScoreFit's (X'WX/n)^{-1} now comes from models.linalg.solve_spd (Cholesky); it must
    equal the plain inverse to rounding (the alr enters every IPW/DR influence function)."""
    _, _, D, X = _data()
    f = drdid.PScoreFit.fit(D, X)
    p = f.ps
    H = X.T @ (X * (p * (1 - p))[:, None])
    alr = ((D - p)[:, None] * X) @ (np.linalg.inv(H) * D.size)
    np.testing.assert_allclose(f.alr, alr, rtol=1e-10, atol=1e-12)
