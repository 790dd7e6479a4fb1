"""Inverse-probability weights for the ATT (Hirano, Imbens & Ridder 2003; the "odds" weights of
R WeightIt ``estimand = "ATT"``): treated ``1``, controls ``e(X)/(1 - e(X))`` with ``e`` the
logit/probit propensity score (models.matching.propensity). Optional trimming drops units with
``e`` outside ``[lo, hi]`` (counted by the caller)."""

from __future__ import annotations

import numpy as np


def att_odds_weights(ps: np.ndarray, treat: np.ndarray) -> np.ndarray:
    ps = np.asarray(ps, dtype=float)
    t = np.asarray(treat, dtype=bool)
    return np.where(t, 1.0, ps / (1.0 - ps))


def trim_mask(ps: np.ndarray, trim) -> np.ndarray:
    """True for units kept by propensity trimming ``trim = [lo, hi]`` (None keeps all)."""
    ps = np.asarray(ps, dtype=float)
    if trim is None:
        return np.ones(len(ps), dtype=bool)
    lo, hi = float(trim[0]), float(trim[1])
    return (ps >= lo) & (ps <= hi)
