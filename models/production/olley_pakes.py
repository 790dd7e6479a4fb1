"""Olley & Pakes (1996, Econometrica 64(6)) with an investment proxy.

Investment is derived from the capital series by the perpetual-inventory identity
:math:`K_{i,t+1} = (1-\\delta)K_{it} + I_{it}`, i.e. :math:`I_{it} = K_{i,t+1} - (1-\\delta)K_{it}`
(real capital in levels, ``delta`` an option, default 0.10), so it is missing in a firm's
last observed year and in years before a gap; OP's invertibility needs :math:`I > 0`, so
rows with :math:`I \\le 0` or missing are excluded from the first stage (counted).

First stage: :math:`y = \\beta_l l [+ \\beta_m m] + \\phi(k, i) + \\varepsilon` with
:math:`\\phi` a full polynomial of degree ``degree``; :math:`\\hat\\beta_l` is read off and
:math:`\\hat\\phi = \\hat y - \\hat\\beta_l l`. Second stage: GMM/NLLS for :math:`\\beta_k` with
:math:`\\omega = \\hat\\phi - \\beta_k k`, :math:`\\omega_t = g(\\omega_{t-1}) + \\xi_t`, ``g`` a
polynomial, moment :math:`E[\\xi_{it} k_{it}] = 0`.

Not implemented: OP's selection (exit) correction with a survival probability; on panels
with endogenous exit this omits OP's third stage (state it when reporting).
"""

from __future__ import annotations

import numpy as np

from .common import Arrays, SecondStage, default_starts, gmm_second_stage, lagged, ols, poly, standardise


def fit_arrays(a: Arrays, *, output: str = "value_added", degree: int = 3, g_degree: int = 3) -> dict:
    if a.inv is None:
        raise ValueError("olley_pakes: investment proxy missing")
    ok = np.isfinite(a.inv)
    free = [a.l] + ([a.m] if output == "gross_output" else [])
    P = poly(standardise([a.k[ok], a.inv[ok]]), degree)
    X1 = np.column_stack([np.ones(ok.sum())] + [f[ok] for f in free] + [P])
    b1 = ols(a.y[ok], X1)
    bfree = b1[1 : 1 + len(free)]
    phi = np.full(a.y.shape, np.nan)
    phi[ok] = X1 @ b1 - np.column_stack([f[ok] for f in free]) @ bfree
    phi_lag = lagged(phi, a.has_prev)
    k_lag = lagged(a.k, a.has_prev)
    use = np.isfinite(phi) & np.isfinite(phi_lag)
    ss = SecondStage(phi=phi[use], phi_lag=phi_lag[use], X=a.k[use, None], X_lag=k_lag[use, None], Z=a.k[use, None], g_degree=g_degree)
    b_ols = ols(a.y, np.column_stack([np.ones_like(a.y), a.l, a.k] + ([a.m] if output == "gross_output" else [])))
    bk, obj = gmm_second_stage(ss, default_starts(b_ols[2:3]))
    beta = {"l": float(bfree[0]), "k": float(bk[0])}
    if output == "gross_output":
        beta["m"] = float(bfree[1])
    return {"beta": beta, "n_first_stage": int(ok.sum()), "n_second_stage": int(use.sum()), "objective": obj}
