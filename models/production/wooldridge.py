"""Wooldridge (2009, Economics Letters 104(3), "On estimating firm-level production
functions using proxy variables to control for unobservables"): the LP/ACF two steps as one
system GMM.

Two equations with shared :math:`(\\beta_l, \\beta_k)` and the proxy ``m``:

.. math::

    y_{it} &= \\alpha_1 + \\beta_l l_{it} + \\beta_k k_{it} + c_1(k_{it}, m_{it}) + e_{it},
        \\quad Z_1 = (1, l_{it}, c(k_{it}, m_{it}))\\\\
    y_{it} &= \\alpha_2 + \\beta_l l_{it} + \\beta_k k_{it} + c_2(k_{i,t-1}, m_{i,t-1}) + u_{it},
        \\quad Z_2 = (1, k_{it}, l_{i,t-1}, c(k_{i,t-1}, m_{i,t-1}))

with :math:`c_1, c_2` full polynomials of degree ``degree``. The second equation is the
law of motion :math:`\\omega_{it} = \\rho\\,\\omega_{i,t-1} + \\xi_{it}` (AR(1) / linear
:math:`g`) substituted in, with the polynomial coefficients left free (the linear-in-
parameters version; Wooldridge 2009 §3), so the estimator is linear GMM: first step
system 2SLS, second step efficient weight :math:`\\hat S^{-1}`,
:math:`\\hat S = \\sum_i s_i s_i'` with :math:`s_i` the firm's stacked instrument-residual
sums (firm-clustered). Analytic standard errors :math:`(Q'\\hat S^{-1}Q)^{-1}`,
:math:`Q = Z'X`, are returned (valid because the one-step system has no generated
regressor). Value added only; like LP it assumes ``m`` does not depend on ``l`` given
:math:`(\\omega, k)`.
"""

from __future__ import annotations

import numpy as np

from .common import Arrays, lagged, poly, standardise


def _cluster_sums(codes: np.ndarray, M: np.ndarray, G: int) -> np.ndarray:
    return np.column_stack([np.bincount(codes, weights=M[:, j], minlength=G) for j in range(M.shape[1])])


def fit_arrays(a: Arrays, *, output: str = "value_added", degree: int = 3, g_degree: int = 1) -> dict:
    if output != "value_added":
        raise ValueError("wooldridge: gross output is not implemented (value added only)")
    if a.m is None:
        raise ValueError("wooldridge: intermediates (proxy) missing")
    n = a.y.size
    k_lag = lagged(a.k, a.has_prev)
    m_lag = lagged(a.m, a.has_prev)
    l_lag = lagged(a.l, a.has_prev)
    r2 = np.isfinite(k_lag) & np.isfinite(m_lag)
    n2 = int(r2.sum())
    kz, mz = standardise([a.k, a.m])
    P1 = poly([kz, mz], degree)
    # lagged polynomial with the same centring/scaling as the current one
    kl = (k_lag[r2] - a.k.mean()) / (a.k.std() or 1.0)
    ml = (m_lag[r2] - a.m.mean()) / (a.m.std() or 1.0)
    P2 = poly([kl, ml], degree)
    p1, p2 = P1.shape[1], P2.shape[1]
    # regressors: [l, k | 1, P1 | 1, P2]
    X = np.zeros((n + n2, 2 + 1 + p1 + 1 + p2))
    X[:n, 0], X[:n, 1], X[:n, 2], X[:n, 3 : 3 + p1] = a.l, a.k, 1.0, P1
    X[n:, 0], X[n:, 1], X[n:, 3 + p1], X[n:, 4 + p1 :] = a.l[r2], a.k[r2], 1.0, P2
    Z1 = np.column_stack([np.ones(n), a.l, P1])
    Z2 = np.column_stack([np.ones(n2), a.k[r2], l_lag[r2], P2])
    q1, q2 = Z1.shape[1], Z2.shape[1]
    Z = np.zeros((n + n2, q1 + q2))
    Z[:n, :q1] = Z1
    Z[n:, q1:] = Z2
    Y = np.concatenate([a.y, a.y[r2]])
    firm = np.concatenate([a.firm, a.firm[r2]])

    Q = Z.T @ X
    Zy = Z.T @ Y

    def gmm(W):
        A = Q.T @ W @ Q
        return np.linalg.solve(A, Q.T @ W @ Zy)

    W1 = np.linalg.pinv(Z.T @ Z)
    b1 = gmm(W1)
    u = Y - X @ b1
    G = int(firm.max()) + 1
    s = _cluster_sums(firm, Z * u[:, None], G)
    S = s.T @ s
    W2 = np.linalg.pinv(S)
    b2 = gmm(W2)
    u2 = Y - X @ b2
    s2 = _cluster_sums(firm, Z * u2[:, None], G)
    S2 = s2.T @ s2
    V = np.linalg.pinv(Q.T @ np.linalg.pinv(S2) @ Q)
    g = Z.T @ u2
    J = float(g @ np.linalg.pinv(S2) @ g)
    return {
        "beta": {"l": float(b2[0]), "k": float(b2[1])},
        "se": {"l": float(np.sqrt(V[0, 0])), "k": float(np.sqrt(V[1, 1]))},
        "n_first_stage": int(n),
        "n_second_stage": n2,
        "hansen_j": J,
        "hansen_j_df": int(Z.shape[1] - X.shape[1]),
    }
