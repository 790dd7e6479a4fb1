"""Ackerberg, Caves & Frazer (2015, Econometrica 83(6)), value-added (default) or gross
output, intermediate-input proxy.

First stage: :math:`y = \\phi(l, k, m) + \\varepsilon`, a full polynomial of degree
``degree`` (no elasticity is identified here). Second stage GMM with
:math:`\\omega_{it}(\\beta) = \\hat\\phi_{it} - \\beta_l l_{it} - \\beta_k k_{it} [- \\beta_m m_{it}]`,
:math:`\\omega_{it} = g(\\omega_{i,t-1}) + \\xi_{it}` (``g_degree`` 1 = AR(1)), and moments

.. math::  E[\\xi_{it} \\cdot (k_{it},\\; l_{i,t-1} [,\\; m_{i,t-1}])] = 0.

Multiple roots: the just-identified moment system can have a second exact root (e.g. at
beta_l ~ 0.87, beta_k ~ 0.12 on the test DGP with more persistent wages, rho_w = 0.5),
as is known for ACF. The solver starts from OLS and deterministic perturbations and keeps
the smallest objective, which cannot tell two exact roots apart; check the estimate
against OLS (beta_l should be below OLS's when labour responds to productivity) and, on
real data, against ``wooldridge``/``lp``.

Gross output with a flexible ``m`` is not identified without further restrictions
(Gandhi, Navarro & Rivers 2020); the option is provided as in prodest/acfest but should be
read with that caveat.
"""

from __future__ import annotations

import numpy as np

from .common import Arrays, SecondStage, default_starts, gmm_second_stage, lagged, ols, poly, standardise


def fit_arrays(a: Arrays, *, output: str = "value_added", degree: int = 3, g_degree: int = 3) -> dict:
    if a.m is None:
        raise ValueError("acf: intermediates (proxy) missing")
    P = poly(standardise([a.l, a.k, a.m]), degree)
    X1 = np.column_stack([np.ones_like(a.y), P])
    phi = X1 @ ols(a.y, X1)
    phi_lag = lagged(phi, a.has_prev)
    use = np.isfinite(phi_lag)
    cols = [a.l, a.k] + ([a.m] if output == "gross_output" else [])
    X = np.column_stack(cols)
    X_lag = np.column_stack([lagged(c, a.has_prev) for c in cols])
    Z = np.column_stack([a.k, lagged(a.l, a.has_prev)] + ([lagged(a.m, a.has_prev)] if output == "gross_output" else []))
    b_ols = ols(a.y, np.column_stack([np.ones_like(a.y)] + cols))[1:]
    ss = SecondStage(phi=phi[use], phi_lag=phi_lag[use], X=X[use], X_lag=X_lag[use], Z=Z[use], g_degree=g_degree)
    b2, obj = gmm_second_stage(ss, default_starts(b_ols))
    beta = {"l": float(b2[0]), "k": float(b2[1])}
    if output == "gross_output":
        beta["m"] = float(b2[2])
    return {"beta": beta, "n_first_stage": int(a.y.size), "n_second_stage": int(use.sum()), "objective": obj}
