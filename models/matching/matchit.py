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
from . import ties as _ties
from .effects import Effect, weighted_att
from .propensity import propensity_score

METHODS = ("nearest", "exact", "cem")
DISTANCES = ("glm", "probit", "mahalanobis")
DISCARDS = ("none", "both", "control", "treated")
TIES = ("all", "first")


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
    ties: dict[str, Any] = field(default_factory=dict)
    sets: tuple[np.ndarray, np.ndarray] | None = None   # CSR (ptr over treated, control rows)
    coords: np.ndarray | None = None                     # matching coordinates (score or Mahalanobis)
    ps_model: tuple | None = None                        # (X with intercept, coefficients) of the score

    @property
    def matched(self) -> np.ndarray:
        return self.weights > 0

    def cluster(self) -> np.ndarray:
        """Cluster ids for effect SEs: the matched set without replacement, the unit with it."""
        if self.options.get("replace") and self.method == "nearest":
            return np.arange(len(self.weights))
        return self.subclass


def _weights_from_sets(ptr: np.ndarray, cidx: np.ndarray, t_units: np.ndarray, n: int) -> np.ndarray:
    """MatchIt weights from matched sets: treated 1 if matched; control ``sum 1/|S(i)|`` over the
    treated whose set holds it, rescaled so that matched controls' weights sum to their number."""
    w = np.zeros(n)
    sizes = np.diff(ptr)
    has = sizes > 0
    w[t_units[has]] = 1.0
    owner = np.repeat(np.arange(len(sizes)), sizes)
    np.add.at(w, cidx, 1.0 / sizes[owner])
    ctrl = np.ones(n, dtype=bool)
    ctrl[t_units] = False
    wc = w[ctrl]
    if wc.sum() > 0:
        w[ctrl] = wc * (wc > 0).sum() / wc.sum()
    return w


def _contention(coords, t, eligible, strata, t_units, set_of, ratio, cal, tol) -> int:
    """Treated units (without replacement) whose matched set is farther than their unconstrained
    ``ratio`` nearest eligible controls in their stratum: an earlier unit took a control they
    would have used, so the visiting order mattered. One k-d tree query per stratum."""
    from scipy.spatial import cKDTree

    out = 0
    cal = np.inf if cal is None else cal
    pos = np.full(len(t), -1, dtype=np.int64)
    pos[t_units] = np.arange(len(t_units))
    for s in np.unique(strata[t_units]):
        c = np.flatnonzero(~t & eligible & (strata == s))
        tu = t_units[(strata[t_units] == s) & eligible[t_units]]
        if len(c) == 0 or len(tu) == 0:
            continue
        k = min(ratio, len(c))
        dist, _ = cKDTree(coords[c]).query(coords[tu], k=k)
        dk = np.asarray(dist).reshape(len(tu), k)[:, -1]
        for u, d_k in zip(tu.tolist(), dk.tolist()):
            if d_k > cal:
                continue
            got = set_of[pos[u]]
            if len(got) < k:
                out += 1
                continue
            dg = np.sqrt(((coords[got] - coords[u]) ** 2).sum(axis=1)).max()
            out += int(dg > d_k + tol)
    return out


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
            cutpoints: dict | None = None, seed: int | None = None, ids=None, ties: str = "first") -> MatchResult:
    """Match treated to control units; see the module docstring for the semantics. ``ids``
    (optional, one per row) name the first treated units in a no-common-support error.
    ``ties``: ``"first"`` (MatchIt's rule, the default of this MatchIt-compatible function) or
    ``"all"`` (every tied control used, weights split; models.matching.ties)."""
    problems = []
    if ties not in TIES:
        problems.append(f"ties={ties!r}; allowed: {', '.join(TIES)}")
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
                std_caliper=std_caliper, exact=exact, m_order=m_order, discard=discard, cutpoints=cutpoints, seed=seed,
                ties=ties)

    if method in ("exact", "cem"):
        cols = covariates + [e for e in exact if e not in covariates]
        strata = _cem.strata_codes(data, cols, cutpoints, coarsen_numeric=(method == "cem"))
        try:
            w, sub = _cem.subclass_weights(strata, t)
        except DesignError as exc:
            raise DesignError(f"{exc}{_first_treated(ids, t, t)}") from exc
        counts = _counts(t, w, np.zeros(n, dtype=bool))
        counts["treated_unmatched_no_stratum"] = int((t & (w == 0)).sum())
        tie_report = {"ties": ties, "treated_with_tied_controls": 0, "treated_tied_in_order": 0,
                      "relabel_can_change": False, "note": f"{method}: subclass weights, no nearest-neighbour choice"}
        return MatchResult(method, t, w, sub, None, None, np.zeros(n, dtype=bool), counts,
                           {"strata": int(sub.max()) + 1}, None, opts, tie_report)

    rng = np.random.default_rng(seed) if seed is not None else None
    if distance == "glm":
        ps, ps_model = propensity_score(data, t, covariates, link=link, return_model=True)
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
        ps, ps_model = None, None
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
        visit = _nn.mahalanobis_visit_key(Xfull, t, ~disc)

    strata = _cem.strata_codes(data, exact, coarsen_numeric=False) if exact else np.zeros(n, dtype=np.int64)
    if exact:
        common = np.intersect1d(strata[t], strata[~t])
        if len(common) == 0:
            raise DesignError(f"matchit: no exact stratum of {', '.join(exact)} holds both treated and control units")
    if ties == "all" and not replace and order in ("data", "random"):
        if m_order is not None:
            raise ConfigError(f"matchit: ties='all' without replacement needs an order that does not depend on row labels; "
                              f"m_order={m_order!r} does (use m_order largest/smallest, replace=True, or ties='first')")
        order = "covariates"
    coords = ps[:, None] if distance == "glm" else Y
    tol = _ties.tie_tolerance(coords[~disc])
    # blocks of treated units with one visiting key (identical score, or identical covariates)
    keys = ps[:, None] if distance == "glm" else visit
    key_tol = _ties.tie_tolerance(keys[~disc])
    t_units = np.flatnonzero(t)
    n1 = len(t_units)
    mm = np.full((n1, int(ratio)), -1, dtype=np.int64)
    t_pos = np.full(n, -1, dtype=np.int64)
    t_pos[t_units] = np.arange(n1)
    tied_ctrl = np.zeros(n1, dtype=bool)
    tied_order = np.zeros(n1, dtype=bool)
    set_of = [np.zeros(0, dtype=np.int64)] * n1
    block_of = np.full(n1, -1, dtype=np.int64)
    nblocks = 0
    for s in np.unique(strata[t]):
        idx = np.flatnonzero(strata == s)
        ts = t[idx]
        el = ~disc[idx]
        rows = t_pos[idx[ts]]
        key_t = keys[idx][ts]
        blocks = [b for b in _ties.blocks_by_key(key_t, key_tol)]
        for b in blocks:
            if len(b) > 1:
                tied_order[rows[b]] = True
        if ties == "first":
            tied_s = np.zeros(int(ts.sum()), dtype=bool)
            if distance == "glm":
                sc = ps[idx]
                ord_t = _nn.treated_order(sc[ts], order, rng)
                if replace:
                    mm_s = _nn.nn_score_with_replacement(sc, ts, el, int(ratio), cal)
                    tied_s = _ties.score_with_replacement_all(sc, ts, el, int(ratio), cal, tol)[2]
                else:
                    mm_s = _nn.nn_score_without_replacement(sc, ts, el, int(ratio), ord_t, cal, tol, tied_s)
            else:
                ord_t = _nn.treated_order(np.zeros(int(ts.sum())), order, rng)
                mm_s = _nn.nn_mahalanobis(Y[idx], ts, el, int(ratio), bool(replace), ord_t, tol, tied_s)
            mm[rows] = np.where(mm_s >= 0, idx[np.clip(mm_s, 0, None)], -1)
            tied_ctrl[rows] = tied_s
            for r_, row in zip(rows, mm[rows]):
                set_of[r_] = np.sort(row[row >= 0])
            continue
        # ties == "all"
        if replace:
            if distance == "glm":
                ptr, cidx, tied_s = _ties.score_with_replacement_all(ps[idx], ts, el, int(ratio), cal, tol)
            else:
                ptr, cidx, tied_s = _ties.mahalanobis_with_replacement_all(Y[idx], ts, el, int(ratio), tol)
            for i, r_ in enumerate(rows):
                set_of[r_] = idx[cidx[ptr[i]:ptr[i + 1]]]
            tied_ctrl[rows] = tied_s
        else:
            if distance == "glm":
                if order == "largest":
                    blocks = blocks[::-1]
                sets_b, tied_b = _ties.score_without_replacement_all(ps[idx], ts, el, int(ratio), blocks, cal, tol)
            else:
                sets_b, tied_b = _ties.mahalanobis_without_replacement_all(Y[idx], ts, el, int(ratio), blocks, tol)
            for b, sb, tb in zip(blocks, sets_b, tied_b):
                for r_ in rows[b]:
                    set_of[r_] = idx[sb]
                    tied_ctrl[r_] = tb
                if len(sb):
                    block_of[rows[b]] = nblocks
                    nblocks += 1
        for r_ in rows:
            k_ = min(int(ratio), len(set_of[r_]))
            mm[r_, :k_] = set_of[r_][:k_]
    ptr = np.zeros(n1 + 1, dtype=np.int64)
    ptr[1:] = np.cumsum([len(x) for x in set_of])
    cidx = np.concatenate(set_of) if n1 else np.zeros(0, dtype=np.int64)
    w = _weights_from_sets(ptr, cidx, t_units, n)
    if replace:
        sub = np.full(n, -1, dtype=np.int64)
    elif ties == "first":
        sub = _subclass_from_mm(mm, t_units, n)
    else:
        sub = np.full(n, -1, dtype=np.int64)
        has = block_of >= 0
        sub[t_units[has]] = block_of[has]
        for r_ in np.flatnonzero(has):
            sub[set_of[r_]] = block_of[r_]
    counts = _counts(t, w, disc)
    got = np.diff(ptr)
    counts["treated_unmatched_no_control_in_caliper_or_stratum"] = int(((got == 0) & ~disc[t_units]).sum())
    counts["treated_fewer_than_ratio_matches"] = int(((got > 0) & (got < ratio)).sum())
    if (w[t] > 0).sum() == 0:
        raise DesignError("matchit: no treated unit found a match (caliper too tight, or no controls in the exact strata)")
    label_order = order in ("data", "random")
    contention = None
    if not replace and ties == "first" and label_order:
        contention = _contention(coords, t, ~disc, strata, t_units, set_of, int(ratio), cal, tol)
    if ties == "first":
        can = bool(tied_ctrl.any() or (not replace and tied_order[got > 0].any())
                   or (not replace and label_order and contention > 0))
    else:
        can = False
    tie_report = {
        "ties": ties,
        "tolerance": tol,
        "treated_with_tied_controls": int(tied_ctrl.sum()),
        "treated_tied_in_order": int(tied_order.sum()) if not replace else 0,
        "treated_order_contention": contention,
        "order": order if not replace else "irrelevant (with replacement)",
        "relabel_can_change": can,
    }
    res = MatchResult("nearest", t, w, sub, ps, mm, disc, counts, support, cal, opts, tie_report, (ptr, cidx), coords,
                      ps_model if link == "logit" else None)
    return res



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


def att_ai(m: MatchResult, y, var_matches: int = 2, bias_adjust: bool = False, ps_adjust: bool = True, Z=None,
           sets=None, observed=None):
    """ATT with Abadie–Imbens standard errors (models.matching.abadie_imbens) for
    nearest-neighbour matching with replacement. ``bias_adjust``: AI (2011) regression
    correction on the matching covariates (or ``Z``); ``ps_adjust``: AI (2016) correction for
    the estimated logit score (propensity-score matching only)."""
    from .abadie_imbens import ai_att

    if m.method != "nearest" or not m.options.get("replace"):
        raise ConfigError("Abadie-Imbens standard errors need nearest-neighbour matching with replacement (replace=True)")
    y = np.asarray(y, dtype=float)
    ptr, cidx = m.sets if sets is None else sets
    if Z is None and bias_adjust:
        Z = m.ps_model[0][:, 1:] if m.ps_model is not None else m.coords
    psl = m.ps_model if (ps_adjust and m.ps_model is not None) else None
    return ai_att(y, m.treat, ptr, cidx, m.coords, var_matches=var_matches, Z=Z if bias_adjust else None,
                  tol=m.ties.get("tolerance", 0.0), ps_logit=psl, observed=observed)


def att(m: MatchResult, y, small_sample: bool = True) -> Effect:
    """ATT on the matched sample: ``lm(y ~ treat, weights)`` with the SE clustered on the
    matched set (without replacement) or the unit (with replacement; exact/cem: subclass)."""
    return weighted_att(np.asarray(y, dtype=float), m.treat, m.weights, cluster=m.cluster(), small_sample=small_sample)
