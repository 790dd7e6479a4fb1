"""Exact and coarsened exact matching (Iacus, King & Porro 2012, Political Analysis 20(1)),
as R MatchIt's ``method = "exact"`` / ``method = "cem"`` (MatchIt's in-house ``cem_matchit``).

Coarsening of a numeric covariate (MatchIt's rules):

* default ``"sturges"``: ``b = ceil(log2(n) + 1)`` equal-width bins over ``[min, max]`` of the
  whole sample, i.e. breaks ``seq(min, max, length = b + 1)`` with the outer two replaced by
  ``-Inf``/``Inf``; also ``"fd"``/``"scott"`` are not implemented (ConfigError upstream);
* an integer: that many equal-width bins; a list of numbers: the cut points
  (breaks ``-Inf, sorted(unique(cuts)), Inf``);
* a unit falls in bin ``findInterval(x, breaks)`` (intervals closed on the left).

Strings/categoricals (and anything listed with cut ``0``) are matched exactly. Strata are the
distinct combinations; strata without both treated and controls are dropped (counted).

ATT weights (MatchIt ``weights.subclass``): treated 1; a control in stratum s gets
``n1_s / n0_s``, rescaled so the matched controls' weights sum to their number.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from models.errors import ConfigError, DesignError


def coarsen(x: np.ndarray, cut) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if cut is None or (isinstance(cut, str) and cut == "sturges"):
        bins = math.ceil(math.log2(len(x)) + 1)
        cut = bins
    if isinstance(cut, str):
        raise ConfigError(f"cutpoints: {cut!r} is not supported; give 'sturges', a number of bins or a list of cut points")
    if np.ndim(cut) == 0:
        bins = int(cut)
        if bins == 0:
            return x
        breaks = np.linspace(x.min(), x.max(), bins + 1)
        breaks[0], breaks[-1] = -np.inf, np.inf
    else:
        breaks = np.concatenate([[-np.inf], np.unique(np.asarray(cut, dtype=float)), [np.inf]])
    return np.searchsorted(breaks, x, side="right").astype(float)


def strata_codes(data: pd.DataFrame, covariates, cutpoints: dict | None = None, coarsen_numeric: bool = True) -> np.ndarray:
    """Integer stratum code per row from the (coarsened) covariates."""
    cutpoints = dict(cutpoints or {})
    keys = []
    for c in covariates:
        s = data[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s) and coarsen_numeric:
            keys.append(coarsen(s.to_numpy(dtype=float), cutpoints.get(c, "sturges")))
        else:
            keys.append(pd.factorize(s.astype("string"), use_na_sentinel=False)[0].astype(float))
    if not keys:
        return np.zeros(len(data), dtype=np.int64)
    K = np.column_stack(keys)
    _, codes = np.unique(K, axis=0, return_inverse=True)
    return codes.ravel().astype(np.int64)


def subclass_weights(strata: np.ndarray, treat: np.ndarray, eligible: np.ndarray | None = None):
    """MatchIt ATT subclass weights. Returns ``(weights, subclass)`` with subclass -1 for
    units in strata lacking one of the groups (or not eligible)."""
    t = np.asarray(treat, dtype=bool)
    ok = np.ones(len(t), dtype=bool) if eligible is None else np.asarray(eligible, dtype=bool)
    k = int(strata.max()) + 1 if len(strata) else 0
    n1 = np.bincount(strata[ok & t], minlength=k)
    n0 = np.bincount(strata[ok & ~t], minlength=k)
    both = (n1 > 0) & (n0 > 0)
    keep = ok & both[strata]
    w = np.zeros(len(t))
    w[keep & t] = 1.0
    ic = keep & ~t
    if ic.any():
        w[ic] = n1[strata[ic]] / n0[strata[ic]]
        w[ic] *= ic.sum() / w[ic].sum()
    if not keep.any():
        raise DesignError(f"no common support: none of the {int(t.sum())} treated units shares a stratum with a control "
                          f"({int(np.unique(strata[t]).size)} strata hold treated units, none of them a control), so no unit "
                          "was matched. Coarsen the covariates further (fewer cutpoints), match on fewer variables, or use "
                          "another control pool")
    # renumber the kept strata 0..S-1 in order of first appearance
    sub = np.full(len(t), -1, dtype=np.int64)
    codes, first = np.unique(strata[keep], return_index=True)
    rank = np.empty(len(codes), dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(len(codes))
    sub[keep] = rank[np.searchsorted(codes, strata[keep])]
    return w, sub
