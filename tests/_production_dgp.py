"""Simulated firm panels for production-function recovery tests.

Follows the design of Ackerberg, Caves & Frazer (2015, Econometrica 83(6), §4 "DGP1") as
reproduced by prodest's ``panelSim()`` (Rovigatti & Mollisi 2018): Cobb-Douglas value added
with beta_l = 0.6, beta_k = 0.4, AR(1) productivity with rho = 0.7, labour chosen at t - b
(b = 0.5) given omega_{t-b} and a serially correlated firm wage, capital accumulated as
K_{t+1} = (1 - delta) K_t + I_t with investment chosen at t.

Differences from ACF, stated: investment is a closed-form rule increasing in omega_t (not
the solution of a dynamic programme): log I_t = log(delta) + k_t + gamma * omega_t
- kappa * k_t (mean reversion keeps k stationary); initial capital is dispersed across
firms. The intermediate input has two variants:

* ``materials="proxy"`` (default): m_t = m0 + omega_t + 0.5 k_t + measurement noise 0 — a
  monotone proxy of (omega_t, k_t) not depending on l, so the LP and Wooldridge first-stage
  assumptions hold as well as OP's and ACF's;
* ``materials="leontief"``: ACF's Leontief materials m_t = beta0 + beta_l l + beta_k k + omega
  (m depends on l), under which LP's and Wooldridge's labour coefficient is not identified
  (the ACF critique) while OP and ACF remain consistent.

``sigma_capital`` > 0 multiplies next year's capital by exp(nu), nu ~ N(0, sigma_capital^2)
iid, drawn after the investment decision (installation/valuation shocks). Without it,
k_t is an exact function of (k_{t-1}, omega_{t-1}) = of (k_{t-1}, m_{t-1}), so Wooldridge's
second equation (a free polynomial in the lagged proxy and capital) cannot separate beta_k;
with it, OP's investment derived from capital is contaminated by nu (OP's scalar-
unobservable assumption fails), so OP is tested with sigma_capital = 0.

Output y = beta0 + beta_l l + beta_k k + omega + eps, eps ~ N(0, 0.1^2) iid.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate_production(
    n_firms: int = 1000,
    n_years: int = 10,
    seed: int = 0,
    beta_l: float = 0.6,
    beta_k: float = 0.4,
    rho: float = 0.7,
    sigma_omega: float = 0.3,
    rho_wage: float = 0.3,
    sigma_wage: float = 0.3,
    sigma_eps: float = 0.1,
    delta: float = 0.1,
    gamma: float = 1.0,
    kappa: float = 0.1,
    materials: str = "proxy",
    sigma_capital: float = 0.0,
) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    N, T = n_firms, n_years
    beta0 = 1.0
    s_half = sigma_omega * np.sqrt(1 - rho)  # innovation sd for each half period
    rh = np.sqrt(rho)
    omega = rng.normal(0, sigma_omega, N)  # stationary start
    wage = rng.normal(0, sigma_wage, N)
    k = rng.normal(1.0, 1.0, N)
    rows = []
    for t in range(T):
        # half period: labour decided at t - b with omega_{t-b}
        omega_half = rh * omega + rng.normal(0, s_half, N)
        wage = rho_wage * wage + rng.normal(0, sigma_wage * np.sqrt(1 - rho_wage**2), N)
        e_omega = rh * omega_half + 0.5 * s_half**2
        l = (np.log(beta_l) + beta0 + beta_k * k + e_omega - wage) / (1 - beta_l)
        omega = rh * omega_half + rng.normal(0, s_half, N)
        y = beta0 + beta_l * l + beta_k * k + omega + rng.normal(0, sigma_eps, N)
        if materials == "proxy":
            m = 0.5 + omega + 0.5 * k
        elif materials == "leontief":
            m = beta0 + beta_l * l + beta_k * k + omega
        else:
            raise ValueError(materials)
        rows.append(pd.DataFrame({"firm_id": np.arange(N), "year": 2000 + t, "log_value_added": y,
                                  "log_employment": l, "log_capital": k, "log_intermediates": m,
                                  "omega": omega}))
        # investment at t, capital for t+1
        I = np.exp(np.log(delta) + k + gamma * omega - kappa * (k - 1.0))
        k = np.log((1 - delta) * np.exp(k) + I) + rng.normal(0, sigma_capital, N) if sigma_capital else np.log((1 - delta) * np.exp(k) + I)
    df = pd.concat(rows, ignore_index=True)
    df["firm_id"] = df["firm_id"].map(lambda i: f"F{i:05d}")
    return df.sort_values(["firm_id", "year"]).reset_index(drop=True)
