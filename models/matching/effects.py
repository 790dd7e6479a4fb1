"""Effects on matched or weighted data.

The ATT on a matched/weighted sample is the weighted difference in means,
``tau = sum_{D=1} w y / sum_{D=1} w - sum_{D=0} w y / sum_{D=0} w``, i.e. the coefficient on
treatment in ``lm(y ~ treat, weights = w)`` as in MatchIt's "Estimating effects" vignette.

Standard errors: the weighted regression's sandwich written through the influence function
``psi_i = w_i D_i (y_i - m1)/W1 - w_i (1 - D_i)(y_i - m0)/W0`` (W1, W0 the weight sums), summed
within clusters: ``V = c * sum_g (sum_{i in g} psi_i)^2``. With ``small_sample=True`` we apply
``sandwich::vcovCL``'s default HC1 factor ``c = G/(G-1) * (n-1)/(n-k)`` (k = 2 coefficients,
n = units with positive weight); with every unit its own cluster that is HC1. MatchIt recommends
clustering on the matched set (``subclass``) after matching without replacement; we do that.
After matching with replacement we cluster by unit (a reused control is one cluster), which
treats the weights as fixed (it ignores the matching step; Abadie-Imbens 2006 SEs, which do
not, are in models.matching.abadie_imbens). Weighting estimators use the same robust (unit-clustered) sandwich, again
conditional on the estimated weights (conservative for IPW with an estimated score, Hirano et
al. 2003; not an M-estimation correction).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd


@dataclass
class Effect:
    estimate: float
    std_error: float
    n_obs: int
    n_treated: int
    n_clusters: int
    clusters: np.ndarray   # cluster codes of the used units
    psi: np.ndarray        # influence function of the used units (sum-to-zero within groups)


def weighted_att(y, treat, weights, cluster=None, small_sample: bool = True) -> Effect:
    y = np.asarray(y, dtype=float)
    d = np.asarray(treat, dtype=bool)
    w = np.asarray(weights, dtype=float)
    use = (w > 0) & np.isfinite(y)
    y, d, w = y[use], d[use], w[use]
    if cluster is None:
        cl = np.arange(len(y))
    else:
        cl = pd.factorize(np.asarray(cluster)[use])[0]
    W1, W0 = w[d].sum(), w[~d].sum()
    if W1 <= 0 or W0 <= 0:
        return Effect(np.nan, np.nan, int(len(y)), int(d.sum()), 0, cl, np.zeros(len(y)))
    m1 = (w[d] * y[d]).sum() / W1
    m0 = (w[~d] * y[~d]).sum() / W0
    psi = np.where(d, w * (y - m1) / W1, -w * (y - m0) / W0)
    G = int(cl.max()) + 1 if len(cl) else 0
    s = np.bincount(cl, weights=psi, minlength=G)
    n = len(y)
    c = (G / (G - 1)) * ((n - 1) / (n - 2)) if (small_sample and G > 1 and n > 2) else 1.0
    se = float(np.sqrt(c * np.sum(s**2)))
    return Effect(float(m1 - m0), se, n, int(d.sum()), G, cl, psi)
