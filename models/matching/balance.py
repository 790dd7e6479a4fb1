"""Covariate balance before and after matching/weighting (Stuart 2010, Stat. Sci. 25(1);
the statistics of R cobalt's ``bal.tab`` for the ATT).

* ``smd``: ``(mean_t - mean_c) / sd_t``, the standardised mean difference with the treated
  group's unweighted SD of the full sample as denominator (cobalt's default for the ATT), so the
  before and after rows share one denominator;
* ``var_ratio``: weighted variance of the treated over that of the controls;
* ``ks``: weighted Kolmogorov-Smirnov distance between the two empirical cdfs;
* ``diff``: cobalt ``bal.tab``'s default "Diff" for the ATT — the raw difference in (weighted)
  means for a binary covariate (0/1 values, or a level of a categorical), the SMD above for a
  continuous one;
* ``ecdf_mean``: mean of ``|F1 - F0|`` over the covariate's distinct values (MatchIt
  ``summary``'s "eCDF Mean"; ``ks`` is its "eCDF Max"); for a binary covariate both are
  ``|mean_t - mean_c|``.

``var_ratio`` is reported for continuous covariates only (NaN for binary ones, as cobalt).
The definitions equal cobalt's on lalonde (tests/test_matching_ties.py against
tests/reference/matching_ties_ai.json, computed in base R by tests/reference/scripts/matching_ties_ai.R).
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def _wmean(x, w):
    return float(np.sum(w * x) / np.sum(w))


def _wvar(x, w):
    # unbiased-style weighted variance (cobalt: sum w (x - m)^2 / (sum w - sum w^2 / sum w))
    W = np.sum(w)
    m = np.sum(w * x) / W
    den = W - np.sum(w**2) / W
    return float(np.sum(w * (x - m) ** 2) / den) if den > 0 else np.nan


def _wks(x1, w1, x0, w0):
    grid = np.unique(np.concatenate([x1, x0]))
    o1, o0 = np.argsort(x1), np.argsort(x0)
    c1 = np.concatenate([[0], np.cumsum(w1[o1])]) / w1.sum()
    c0 = np.concatenate([[0], np.cumsum(w0[o0])]) / w0.sum()
    F1 = c1[np.searchsorted(x1[o1], grid, side="right")]
    F0 = c0[np.searchsorted(x0[o0], grid, side="right")]
    return float(np.max(np.abs(F1 - F0)))


def _wecdf_mean(x1, w1, x0, w0):
    grid = np.unique(np.concatenate([x1, x0]))
    o1, o0 = np.argsort(x1), np.argsort(x0)
    c1 = np.concatenate([[0], np.cumsum(w1[o1])]) / w1.sum()
    c0 = np.concatenate([[0], np.cumsum(w0[o0])]) / w0.sum()
    F1 = c1[np.searchsorted(x1[o1], grid, side="right")]
    F0 = c0[np.searchsorted(x0[o0], grid, side="right")]
    return float(np.mean(np.abs(F1 - F0)))


COLUMNS = ["covariate", "sample", "smd", "var_ratio", "ks", "mean_treated", "mean_control", "diff", "ecdf_mean"]


def balance_table(X: pd.DataFrame, treat, weights) -> pd.DataFrame:
    """Rows ``covariate, sample (before|after), smd, var_ratio, ks, mean_treated, mean_control,
    diff, ecdf_mean``."""
    t = np.asarray(treat, dtype=bool)
    w = np.asarray(weights, dtype=float)
    rows = []
    cols = {}
    for c in X.columns:
        s = X[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            cols[c] = s.to_numpy(dtype=float)
        else:  # a categorical covariate: one row per level (share of units at that level)
            v = s.astype("string").to_numpy(dtype=object)
            for lev in sorted(pd.unique(v), key=str):
                cols[f"{c}={lev}"] = (v == lev).astype(float)
    for c, x in cols.items():
        sd_t = np.std(x[t], ddof=1) if t.sum() > 1 else np.nan
        for sample, ww in (("before", np.ones(len(x))), ("after", w)):
            k1, k0 = t & (ww > 0), ~t & (ww > 0)
            if not k1.any() or not k0.any():
                continue
            m1, m0 = _wmean(x[k1], ww[k1]), _wmean(x[k0], ww[k0])
            v1, v0 = _wvar(x[k1], ww[k1]), _wvar(x[k0], ww[k0])
            binary = bool(np.isin(x, (0.0, 1.0)).all())
            smd = (m1 - m0) / sd_t if sd_t and sd_t > 0 else np.nan
            rows.append({
                "covariate": c,
                "sample": sample,
                "smd": smd,
                "var_ratio": np.nan if binary else (v1 / v0 if v0 and v0 > 0 else np.nan),
                "ks": abs(m1 - m0) if binary else _wks(x[k1], ww[k1], x[k0], ww[k0]),
                "mean_treated": m1,
                "mean_control": m0,
                "diff": (m1 - m0) if binary else smd,
                "ecdf_mean": abs(m1 - m0) if binary else _wecdf_mean(x[k1], ww[k1], x[k0], ww[k0]),
            })
    return pd.DataFrame(rows, columns=COLUMNS)


OVERLAP_BINS = 20


def overlap_table(score, treat, weights, discarded, bins: int = OVERLAP_BINS) -> pd.DataFrame:
    """Propensity-score distributions of members (treated) and controls before and after
    matching, on ``bins`` equal-width bins of [0, 1]: rows ``group (member|control), sample
    (before|after|discarded), bin_low, bin_high, n_units, share``. ``before`` counts every unit
    (unweighted), ``after`` the matched units with their matching weights (``share`` sums to 1
    within group and sample), ``discarded`` the units the common-support rule removed."""
    s = np.clip(np.asarray(score, dtype=float), 0, 1)
    t = np.asarray(treat, dtype=bool)
    w = np.asarray(weights, dtype=float)
    disc = np.asarray(discarded, dtype=bool)
    edges = np.linspace(0, 1, bins + 1)
    b = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, bins - 1)
    rows = []
    for g, gm in (("member", t), ("control", ~t)):
        for sample, sel, ww in (("before", gm, np.ones(len(s))), ("after", gm & (w > 0), w), ("discarded", gm & disc, np.ones(len(s)))):
            n_b = np.bincount(b[sel], minlength=bins)
            m_b = np.bincount(b[sel], weights=ww[sel], minlength=bins)
            tot = m_b.sum()
            for k in range(bins):
                rows.append({"group": g, "sample": sample, "bin_low": edges[k], "bin_high": edges[k + 1],
                             "n_units": int(n_b[k]), "share": float(m_b[k] / tot) if tot > 0 else 0.0})
    return pd.DataFrame(rows, columns=["group", "sample", "bin_low", "bin_high", "n_units", "share"])
