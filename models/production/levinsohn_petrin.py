"""Levinsohn & Petrin (2003, Review of Economic Studies 70(2)) with the intermediate-input
proxy.

First stage: :math:`y = \\beta_l l + \\phi(k, m) + \\varepsilon` (full polynomial of degree
``degree``), :math:`\\hat\\phi = \\hat y - \\hat\\beta_l l`. Second stage GMM with
:math:`\\omega = \\hat\\phi - \\beta_k k [- \\beta_m m]`, polynomial law of motion ``g`` and moments
:math:`E[\\xi_{it} k_{it}] = 0` (value added) plus :math:`E[\\xi_{it} m_{i,t-1}] = 0` for gross
output (LP's gross-output case, just-identified here).

Identification caveat (Ackerberg, Caves & Frazer 2015): if labour is chosen with the same
information as ``m`` (or ``m`` depends on ``l``, e.g. Leontief materials), :math:`\\beta_l` is not
identified in the first stage; use ``acf`` then.
"""

from __future__ import annotations

import numpy as np

from .common import Arrays, SecondStage, default_starts, gmm_second_stage, lagged, ols, poly, standardise


def fit_arrays(a: Arrays, *, output: str = "value_added", degree: int = 3, g_degree: int = 3) -> dict:
    if a.m is None:
        raise ValueError("levinsohn_petrin: intermediates (proxy) missing")
    P = poly(standardise([a.k, a.m]), degree)
    X1 = np.column_stack([np.ones_like(a.y), a.l, P])
    b1 = ols(a.y, X1)
    bl = b1[1]
    phi = X1 @ b1 - bl * a.l
    phi_lag = lagged(phi, a.has_prev)
    use = np.isfinite(phi_lag)
    if output == "gross_output":
        m_lag = lagged(a.m, a.has_prev)
        X = np.column_stack([a.k, a.m])
        X_lag = np.column_stack([lagged(a.k, a.has_prev), m_lag])
        Z = np.column_stack([a.k, m_lag])
        b_ols = ols(a.y, np.column_stack([np.ones_like(a.y), a.l, a.k, a.m]))[2:4]
    else:
        X = a.k[:, None]
        X_lag = lagged(a.k, a.has_prev)[:, None]
        Z = X
        b_ols = ols(a.y, np.column_stack([np.ones_like(a.y), a.l, a.k]))[2:3]
    ss = SecondStage(phi=phi[use], phi_lag=phi_lag[use], X=X[use], X_lag=X_lag[use], Z=Z[use], g_degree=g_degree)
    b2, obj = gmm_second_stage(ss, default_starts(b_ols))
    beta = {"l": float(bl), "k": float(b2[0])}
    if output == "gross_output":
        beta["m"] = float(b2[1])
    return {"beta": beta, "n_first_stage": int(a.y.size), "n_second_stage": int(use.sum()), "objective": obj}
