"""Test-local generator: region-by-year shocks correlated with treatment.

Firms sit in regions; the share of treated firms differs by region (0.15 .. 0.85) and so does
a region-specific trend (larger where more firms are treated), so treated firms' outcomes
rise with their regions' shocks: firm + year fixed effects attribute part of that trend to
the treatment (biased), region^year effects absorb it (the truth is recovered). Effects are
homogeneous and constant (``tau``), so every estimator here targets the same number.
Staggered cohorts with never-treated firms in every region.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def region_shock_panel(n_firms: int = 1200, n_regions: int = 6, years=(2010, 2019), tau: float = 0.3,
                       trend: float = 0.15, sigma: float = 0.2, seed: int = 0, poisson: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t0, t1 = years
    yrs = np.arange(t0, t1 + 1)
    region = rng.integers(0, n_regions, n_firms)
    share = np.linspace(0.15, 0.85, n_regions)[region]
    treated = rng.random(n_firms) < share
    cohort = np.where(treated, rng.choice([2013, 2015, 2017], n_firms), 0)
    alpha = rng.normal(0, 0.5, n_firms)
    slope = trend * np.linspace(0, 1, n_regions)  # region-specific trend, steeper where more are treated
    shock = rng.normal(0, 0.1, (n_regions, yrs.size)) + slope[:, None] * (yrs - t0)[None, :]
    f = np.repeat(np.arange(n_firms), yrs.size)
    t = np.tile(yrs, n_firms)
    g = cohort[f]
    D = ((g > 0) & (t >= g)).astype(float)
    mu = 1.0 + alpha[f] + shock[region[f], t - t0] + 0.02 * (t - t0) + tau * D
    if poisson:  # multiplicative lognormal noise with mean 1: E[y | .] = exp(mu)
        y = np.exp(mu) * np.exp(rng.normal(-sigma**2 / 2, sigma, f.size))
    else:
        y = mu + rng.normal(0, sigma, f.size)
    return pd.DataFrame({"firm_id": f, "year": t, "first_treat": g, "region": region[f], "y": y})
