"""``matchit()``: R MatchIt's interface (Ho, Imai, King & Stuart 2011) in snake case.

>>> m = matchit(lalonde, "treat", ["age", "educ", "race", "married", "nodegree", "re74", "re75"])
>>> att(m, lalonde["re78"])          # lm(re78 ~ treat, weights) with subclass-clustered SE

Methods: ``nearest`` (greedy nearest neighbour, models.matching.nearest), ``exact`` and ``cem``
(models.matching.cem). Distances: ``glm`` (propensity score from a logit/probit fitted by our own
IRLS, models.matching.propensity; ``link`` picks the link) or ``mahalanobis``.

Argument semantics follow MatchIt 4.5 (>= 4.5.3 for the nearest-neighbour arithmetic):

* ``m_order`` defaults to ``"largest"`` with a propensity score and ``"data"`` with Mahalanobis
  distance; with ``replace=True`` the order is irrelevant (treated units do not compete).
* ``caliper`` applies to the propensity score; ``std_caliper=True`` multiplies it by the SD of
  the score over non-discarded units (R ``sd``, n-1).
* ``discard``: ``"both"`` drops units outside the overlap of the two groups' score ranges,
  ``"control"`` controls outside the treated range, ``"treated"`` treated outside the control range.
* Weights: matched treated 1; a control gets ``sum over its treated of 1/(matches of that
  treated)``, rescaled so the matched controls' weights sum to their number (MatchIt
  ``weights.matrix``); ``exact``/``cem`` use subclass weights (models.matching.cem).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from models.errors import ConfigError, DesignError

from . import cem as _cem
from . import nearest as _nn
from .effects import Effect, weighted_att
from .propensity import propensity_score

METHODS = ("nearest", "exact", "cem")
DISTANCES = ("glm", "probit", "mahalanobis")
DISCARDS = ("none", "both", "control", "treated")


@dataclass
class MatchResult:
    """What :func:`matchit` returns (all arrays aligned with the input rows).

    ``weights`` matching weights (0 = unmatched); ``subclass`` matched-set id (-1 = none; for
    nearest with replacement every matched unit keeps -1 because sets overlap); ``distance`` the
    propensity score (None for Mahalanobis/exact/cem); ``match_matrix`` (n_treated x ratio) row
    indices of the controls matched to each treated unit (-1 = none; nearest only);
    ``discarded`` units dropped by ``discard``; ``counts`` matched/unmatched counts by reason;
    ``common_support`` the score ranges and discards."""

    method: str
    treat: np.ndarray
    weights: np.ndarray
    subclass: np.ndarray
    distance: np.ndarray | None
    match_matrix: np.ndarray | None
    discarded: np.ndarray
    counts: dict[str, int]
    common_support: dict[str, Any]
    caliper: float | None = None
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def matched(self) -> np.ndarray:
        return self.weights > 0

    def cluster(self) -> np.ndarray:
        """Cluster ids for effect SEs: the matched set without replacement, the unit with it."""
        if self.options.get("replace") and self.method == "nearest":
            return np.arange(len(self.weights))
        return self.subclass


def _weights_from_mm(mm: np.ndarray, t_units: np.ndarray, n: int) -> np.ndarray:
    w = np.zeros(n)
    nm = (mm >= 0).sum(axis=1)
    has = nm > 0
    w[t_units[has]] = 1.0
    rows, cols = np.nonzero(mm >= 0)
    np.add.at(w, mm[rows, cols], 1.0 / nm[rows])
    ctrl = np.ones(n, dtype=bool)
    ctrl[t_units] = False
    wc = w[ctrl]
    if wc.sum() > 0:
        w[ctrl] = wc * (wc > 0).sum() / wc.sum()
    return w


def _subclass_from_mm(mm: np.ndarray, t_units: np.ndarray, n: int) -> np.ndarray:
    sub = np.full(n, -1, dtype=np.int64)
    has = (mm >= 0).any(axis=1)
    ids = np.cumsum(has) - 1
    sub[t_units[has]] = ids[has]
    rows, cols = np.nonzero(mm >= 0)
    sub[mm[rows, cols]] = ids[rows]
    return sub


def _first_treated(ids, t: np.ndarray, which: np.ndarray) -> str:
    """' (first: a, b, ...)' naming the first units in ``which``, or '' without ids."""
    if ids is None or not which.any():
        return ""
    from models.errors import first_keys

    return f" (first treated units off support: {first_keys(sorted(map(str, np.asarray(ids)[which])))})"


def _discard(ps: np.ndarray, t: np.ndarray, option: str) -> np.ndarray:
    if option == "none":
        return np.zeros(len(ps), dtype=bool)
    lo0, hi0, lo1, hi1 = ps[~t].min(), ps[~t].max(), ps[t].min(), ps[t].max()
    if option == "both":
        return (ps < max(lo0, lo1)) | (ps > min(hi0, hi1))
    if option == "control":
        return ~t & ((ps < lo1) | (ps > hi1))
    if option == "treated":
        return t & ((ps < lo0) | (ps > hi0))
    raise ConfigError(f"discard must be one of {DISCARDS}, got {option!r}")


def matchit(data: pd.DataFrame, treat, covariates, method: str = "nearest", distance: str = "glm",
            link: str = "logit", ratio: int = 1, replace: bool = False, caliper: float | None = None,
            std_caliper: bool = True, exact=(), m_order: str | None = None, discard: str = "none",
            cutpoints: dict | None = None, seed: int | None = None, ids=None) -> MatchResult:
    """Match treated to control units; see the module docstring for the semantics. ``ids``
    (optional, one per row) name the first treated units in a no-common-support error."""
    problems = []
    if method not in METHODS:
        problems.append(f"method={method!r}; allowed: {', '.join(METHODS)}")
    if distance not in DISTANCES:
        problems.append(f"distance={distance!r}; allowed: {', '.join(DISTANCES)}")
    if distance == "probit":
        distance, link = "glm", "probit"
    if link not in ("logit", "probit"):
        problems.append(f"link={link!r}; allowed: logit, probit")
    if not (isinstance(ratio, (int, np.integer)) and ratio >= 1):
        problems.append(f"ratio={ratio!r}: give an integer >= 1")
    if discard not in DISCARDS:
        problems.append(f"discard={discard!r}; allowed: {', '.join(DISCARDS)}")
    if m_order is not None and m_order not in _nn.M_ORDERS:
        problems.append(f"m_order={m_order!r}; allowed: {', '.join(_nn.M_ORDERS)}")
    if caliper is not None and (distance == "mahalanobis" or method != "nearest"):
        problems.append("caliper applies to propensity-score nearest-neighbour matching only (distance='glm')")
    if caliper is not None and not (np.isfinite(caliper) and caliper > 0):
        problems.append(f"caliper={caliper!r}: give a positive number")
    exact = [exact] if isinstance(exact, str) else list(exact or [])
    covariates = list(covariates)
    missing = [c for c in [*covariates, *exact] if c not in data.columns]
    if missing:
        problems.append(f"columns not in the data: {', '.join(missing)}")
    if problems:
        raise ConfigError("matchit: bad arguments:", problems=problems)
    t = np.asarray(data[treat] if isinstance(treat, str) else treat).astype(bool)
    n = len(t)
    if t.sum() == 0 or (~t).sum() == 0:
        raise DesignError(f"matchit: need treated and control units (treated {int(t.sum())}, controls {int((~t).sum())})")
    opts = dict(method=method, distance=distance, link=link, ratio=int(ratio), replace=bool(replace), caliper=caliper,
                std_caliper=std_caliper, exact=exact, m_order=m_order, discard=discard, cutpoints=cutpoints, seed=seed)

    if method in ("exact", "cem"):
        cols = covariates + [e for e in exact if e not in covariates]
        strata = _cem.strata_codes(data, cols, cutpoints, coarsen_numeric=(method == "cem"))
        try:
            w, sub = _cem.subclass_weights(strata, t)
        except DesignError as exc:
            raise DesignError(f"{exc}{_first_treated(ids, t, t)}") from exc
        counts = _counts(t, w, np.zeros(n, dtype=bool))
        counts["treated_unmatched_no_stratum"] = int((t & (w == 0)).sum())
        return MatchResult(method, t, w, sub, None, None, np.zeros(n, dtype=bool), counts,
                           {"strata": int(sub.max()) + 1}, None, opts)

    rng = np.random.default_rng(seed) if seed is not None else None
    if distance == "glm":
        ps = propensity_score(data, t, covariates, link=link)
        disc = _discard(ps, t, discard)
        support = {
            "treated_range": [float(ps[t].min()), float(ps[t].max())],
            "control_range": [float(ps[~t].min()), float(ps[~t].max())],
            "discard": discard,
            "discarded_treated": int((disc & t).sum()),
            "discarded_control": int((disc & ~t).sum()),
        }
        if (t & ~disc).sum() == 0 or (~t & ~disc).sum() == 0:
            raise DesignError(
                f"no common support: discard={discard!r} removes every {'treated' if (t & ~disc).sum() == 0 else 'control'} "
                f"unit ({int((disc & t).sum())} of {int(t.sum())} treated and {int((disc & ~t).sum())} of {int((~t).sum())} "
                f"controls outside the overlap; treated scores {support['treated_range']}, control scores "
                f"{support['control_range']}){_first_treated(ids, t, disc & t)}. "
                "Use discard='none', other covariates, or another control pool."
            )
        cal = None
        if caliper is not None:
            cal = float(caliper) * (float(np.std(ps[~disc], ddof=1)) if std_caliper else 1.0)
        order = m_order or "largest"
    else:
        ps = None
        disc = np.zeros(n, dtype=bool)
        if discard != "none":
            raise ConfigError("matchit: discard needs a propensity score (distance='glm')")
        support = {"discard": "none", "discarded_treated": 0, "discarded_control": 0}
        cal = None
        order = m_order or "data"
        if order not in ("data", "random"):
            raise ConfigError("matchit: with distance='mahalanobis' m_order must be 'data' or 'random' (as MatchIt)")
        Xfull = _full_dummies(data, covariates)
        Y = _nn.mahalanobis_transform(Xfull, t, ~disc)

    strata = _cem.strata_codes(data, exact, coarsen_numeric=False) if exact else np.zeros(n, dtype=np.int64)
    if exact:
        common = np.intersect1d(strata[t], strata[~t])
        if len(common) == 0:
            raise DesignError(f"matchit: no exact stratum of {', '.join(exact)} holds both treated and control units")
    t_units = np.flatnonzero(t)
    mm = np.full((len(t_units), int(ratio)), -1, dtype=np.int64)
    t_pos = np.full(n, -1, dtype=np.int64)
    t_pos[t_units] = np.arange(len(t_units))
    for s in np.unique(strata[t]):
        idx = np.flatnonzero(strata == s)
        ts = t[idx]
        el = ~disc[idx]
        if distance == "glm":
            sc = ps[idx]
            ord_t = _nn.treated_order(sc[ts], order, rng)
            if replace:
                mm_s = _nn.nn_score_with_replacement(sc, ts, el, int(ratio), cal)
            else:
                mm_s = _nn.nn_score_without_replacement(sc, ts, el, int(ratio), ord_t, cal)
        else:
            ord_t = _nn.treated_order(np.zeros(int(ts.sum())), order, rng)
            mm_s = _nn.nn_mahalanobis(Y[idx], ts, el, int(ratio), bool(replace), ord_t)
        rows = t_pos[idx[ts]]
        mm[rows] = np.where(mm_s >= 0, idx[np.clip(mm_s, 0, None)], -1)
    w = _weights_from_mm(mm, t_units, n)
    sub = _subclass_from_mm(mm, t_units, n) if not replace else np.full(n, -1, dtype=np.int64)
    if replace:
        sub[w > 0] = -1
    counts = _counts(t, w, disc)
    got = (mm >= 0).sum(axis=1)
    counts["treated_unmatched_no_control_in_caliper_or_stratum"] = int(((got == 0) & ~disc[t_units]).sum())
    counts["treated_fewer_than_ratio_matches"] = int(((got > 0) & (got < ratio)).sum())
    if (w[t] > 0).sum() == 0:
        raise DesignError("matchit: no treated unit found a match (caliper too tight, or no controls in the exact strata)")
    return MatchResult("nearest", t, w, sub, ps, mm, disc, counts, support, cal, opts)


def _full_dummies(data: pd.DataFrame, covariates) -> np.ndarray:
    """One column per level of each categorical (MatchIt's distance covariates), numerics as is."""
    cols = []
    for c in covariates:
        s = data[c]
        if pd.api.types.is_numeric_dtype(s) and not pd.api.types.is_bool_dtype(s):
            cols.append(s.to_numpy(dtype=float))
        else:
            v = s.astype("string").to_numpy(dtype=object)
            for lev in sorted(pd.unique(v)):
                cols.append((v == lev).astype(float))
    return np.column_stack(cols)


def _counts(t, w, disc) -> dict[str, int]:
    return {
        "n_treated": int(t.sum()),
        "n_control": int((~t).sum()),
        "matched_treated": int((t & (w > 0)).sum()),
        "matched_control": int((~t & (w > 0)).sum()),
        "discarded_treated": int((t & disc).sum()),
        "discarded_control": int((~t & disc).sum()),
        "unmatched_treated": int((t & (w == 0)).sum()),
        "unmatched_control": int((~t & (w == 0)).sum()),
    }


def att(m: MatchResult, y, small_sample: bool = True) -> Effect:
    """ATT on the matched sample: ``lm(y ~ treat, weights)`` with the SE clustered on the
    matched set (without replacement) or the unit (with replacement; exact/cem: subclass)."""
    return weighted_att(np.asarray(y, dtype=float), m.treat, m.weights, cluster=m.cluster(), small_sample=small_sample)
