"""Callaway & Sant'Anna (2021) group-time average treatment effects, ATT(g,t).

For cohort :math:`g` (units first treated in period :math:`g`) and period :math:`t`,

.. math::  ATT(g,t) = E[Y_t - Y_{b} \\mid G=g] - E[Y_t - Y_{b} \\mid C]

(unconditional; with covariates the 2x2 comparison is the outcome-regression, IPW or
doubly-robust estimator of :mod:`models.did.drdid`), where the base period :math:`b` and
the comparison group :math:`C` follow R did 2.5.1 (``att_gt``, ``compute.att_gt2``):

* base period: post-treatment cells (:math:`g \\le t`) use :math:`b = g-1-\\delta`
  (:math:`\\delta` = ``anticipation``, the last period with :math:`b+\\delta<g`);
  pre-treatment cells use :math:`b = t-1` (``base_period="varying"``) or the same
  :math:`g-1-\\delta` (``"universal"``, where the cell :math:`t=b` is reported as 0 with a
  zero influence function);
* comparison group: never-treated units (``"nevertreated"``) or, for ``"notyettreated"``,
  never-treated units plus units with :math:`G > \\max(t, b) + \\delta` other than cohort
  :math:`g`;
* covariates: the values in the earlier of the two periods of the cell,
  :math:`\\min(b, t)` (R did uses the earlier period's row of each unit in the 2x2;
  for time-invariant covariates this is immaterial);
* sample: cohort 0 = never treated; cohorts later than the last period + :math:`\\delta` are
  recoded as never treated; units treated in or before the first period + :math:`\\delta`
  are dropped (always treated); units not observed in every period are dropped (balanced
  panel) unless ``allow_unbalanced_panel=True``, which keeps them and estimates every cell
  from the rows of its two periods as repeated cross sections (R did's rule; see
  :func:`_att_gt_rc` for what that assumes); rows with missing outcome,
  covariate or cluster are dropped first. Every drop is counted in ``dropped``. If there is
  no never-treated unit, periods :math:`\\ge g_{max}-\\delta` are dropped and the last
  cohort serves as comparison (R did's rule).

Influence functions. Cell :math:`j` gives :math:`\\psi_{ij} = (n/n_j)\\,\\psi^{2x2}_{ij}` for the
:math:`n_j` units of its 2x2 sample (0 elsewhere), so that
:math:`\\widehat{ATT}_j - ATT_j = n^{-1}\\sum_{i=1}^n\\psi_{ij}`. Analytic variance, as R did:
:math:`\\hat V = \\Psi'\\Psi/n`, :math:`se_j = \\sqrt{\\hat V_{jj}/n} = \\sqrt{\\sum_i\\psi_{ij}^2}/n`
(divisor :math:`n`, no centering; R did, DRDID and moderndid all use this, so no
:math:`n/(n-1)` adjustment is needed). With ``clustervar``, :math:`\\hat V = \\sum_c S_c S_c'/n`
with :math:`S_c=\\sum_{i\\in c}\\psi_i` (no :math:`G/(G-1)` factor, as R did).

Speed. The panel is pivoted once to a units x periods outcome matrix. Without covariates
every cell is the closed form of :func:`~models.did.drdid.unconditional_did_panel`
computed with array operations on that matrix (no model fits). With covariates the
propensity score and the control-group design are fitted once per distinct (2x2 sample,
covariate period) and reused by all cells sharing them -- with never-treated controls and
time-invariant covariates that is once per cohort.

Memory. The influence-function matrix is stored dense, float64, n_units x n_cells:
8 * n * k bytes (1M units x 100 cells = 800 MB). Analytic inference in aggte needs only
linear combinations of it and the cohort indicators (:mod:`models.did._ifbasis`); the
unconditional estimator can therefore also run from per-cohort moments without any
per-unit data (:mod:`models.did.cs_moments`); the multiplier bootstrap needs the dense matrix.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import BadInputError, ConfigError, DesignError, first_keys
from ..inference.multiplier import mboot
from ._ifbasis import DenseBasis, GramBasis
from .drdid import ControlOLS, PScoreFit, drdid_imp_panel, drdid_panel, reg_did_panel, std_ipw_did_panel

_EPS10 = np.sqrt(np.finfo(float).eps) * 10


@dataclass
class AttGtResult:
    """Everything :func:`models.did.aggte.aggte` needs (no re-estimation)."""

    groups: np.ndarray  # cohort of each cell
    times: np.ndarray  # period of each cell
    att: np.ndarray
    se: np.ndarray
    inf_func: np.ndarray | None  # n_units x n_cells, float64 (None: from moments)
    base_periods: np.ndarray
    n_cell: np.ndarray  # units in each 2x2 sample
    n_treated_cell: np.ndarray
    unit_ids: np.ndarray
    unit_cohort: np.ndarray  # per unit; 0 = never treated (after recoding)
    cluster: np.ndarray | None  # per unit integer cluster codes (None = unit level)
    n: int
    tlist: np.ndarray
    glist: np.ndarray
    crit_val: float
    wald_pretest: dict | None
    n_obs: int
    dropped: dict[str, int]
    settings: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    # why each NA cell is NA: (g, t) -> reason (models.did.na_cells turns them into the message)
    na_reasons: dict = field(default_factory=dict)
    # set by the sufficient-statistics path (models.did.cs_moments), which has no per-unit
    # data: inf_func, unit_ids, unit_cohort and cluster are None there
    cohort_labels: np.ndarray | None = None  # H cohorts (0 = never), sorted
    cohort_n: np.ndarray | None = None  # units per cohort
    meat: np.ndarray | None = None  # (k+H) x (k+H), see models.did._ifbasis
    n_clusters_: int | None = None
    dropped_units: dict = field(default_factory=dict)  # _Panel.dropped_units (None of it from moments)
    obs_cell: np.ndarray | None = None  # rows of each 2x2 sample (unbalanced panel; balanced: 2 x n_cell)
    _basis: Any = field(default=None, repr=False)

    @property
    def event_times(self) -> np.ndarray:
        return self.times - self.groups

    @property
    def cohort_sizes(self) -> dict[int, int]:
        if self.cohort_labels is not None:
            return {int(a): int(b) for a, b in zip(self.cohort_labels, self.cohort_n)}
        g, c = np.unique(self.unit_cohort, return_counts=True)
        return {int(a): int(b) for a, b in zip(g, c)}

    def basis(self):
        """The influence-function basis of :mod:`models.did._ifbasis` (cached): dense when
        the per-unit influence functions are held, else the Gram matrix ``meat``."""
        if self._basis is None:
            if self.inf_func is None:
                self._basis = GramBasis(self.meat, self.att.size)
            else:
                psi0 = np.where(np.isfinite(self.inf_func), self.inf_func, 0.0) if not np.isfinite(self.att).all() else self.inf_func
                labels, pos = np.unique(self.unit_cohort, return_inverse=True)
                self.cohort_labels, self.cohort_n = labels, np.bincount(pos, minlength=labels.size)
                self._basis = DenseBasis(psi0, pos, labels.size, self.cluster)
        return self._basis

    def vcov(self) -> np.ndarray:
        """Analytic covariance of the ATT(g,t) estimates, Psi'Psi/n^2 (or cluster sums);
        computed on demand (O(n k^2)). R did's ``V_analytical`` is n times this."""
        V = self.basis().cells_quad(np.arange(self.att.size)) / self.n**2
        bad = ~np.isfinite(self.att)
        V[bad, :] = np.nan
        V[:, bad] = np.nan
        return V

    @property
    def n_clusters(self) -> int:
        if self.n_clusters_ is not None:
            return self.n_clusters_
        return self.n if self.cluster is None else int(self.cluster.max()) + 1

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(
            {
                "group": self.groups,
                "time": self.times,
                "event_time": self.event_times,
                "base_period": self.base_periods,
                "att": self.att,
                "se": self.se,
                "n_cell": self.n_cell,
                "n_treated": self.n_treated_cell,
            }
        )


# ---------------------------------------------------------------------------------------
# data preparation
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CohortRules:
    """R did's sample rules as thresholds (shared with the SQL engine, pipeline.engine).

    With cohorts coded ``inf`` (or 0 in the data) for never treated: a finite cohort
    ``> late_after`` is never treated; if then no never-treated unit remains, periods
    ``>= period_cutoff`` are dropped, cohort ``latest`` becomes never treated when
    ``latest_as_never`` (control_group nevertreated) and is otherwise kept only as a
    comparison (``exclude_g``, not estimated); units of a finite cohort ``<= always_upto``
    (treated in or before the first period + anticipation) are dropped.
    """

    late_after: float
    latest: float | None
    period_cutoff: float | None
    latest_as_never: bool
    exclude_g: float | None
    always_upto: float


def cohort_rules(periods, cohorts, anticipation: int, control_group: str) -> CohortRules:
    """:class:`CohortRules` from the distinct periods and distinct cohorts (0 or inf =
    never treated) of the rows that survive the missing-value filter."""
    periods = np.sort(np.asarray(periods, dtype=float))
    cohorts = np.asarray(cohorts, dtype=float)
    if periods.size == 0:
        raise DesignError("att_gt: no rows left after dropping missing values")
    late_after = float(periods.max() + anticipation)
    fin = np.isfinite(cohorts) & (cohorts != 0) & (cohorts <= late_after)
    latest = cutoff = exclude = None
    if fin.all():  # no never-treated unit
        latest = float(cohorts.max())
        cutoff = latest - anticipation
        exclude = latest
        periods = periods[periods < cutoff]
        if periods.size == 0:
            raise DesignError(f"att_gt: no never-treated units and no period before {cutoff:g}; nothing to estimate")
    return CohortRules(late_after, latest, cutoff, latest is not None and control_group == "nevertreated", exclude, float(periods[0] + anticipation))


@dataclass
class _Panel:
    Y: np.ndarray  # n x T
    X: np.ndarray | None  # n x k (time-invariant) or T x n x k, with intercept
    x_time_varying: bool
    unit_g: np.ndarray  # float, inf = never
    ids: np.ndarray
    tlist: np.ndarray
    glist: np.ndarray
    cluster: np.ndarray | None
    n_obs: int
    dropped: dict[str, int]
    notes: list[str]
    exclude_g: float | None = None
    rows: "_Rows | None" = None  # unbalanced panel kept (allow_unbalanced_panel): long format
    # units (not rows) dropped, by reason: {"unbalanced_panel": {"units": n, "treated_units": k}}
    dropped_units: dict = field(default_factory=dict)


@dataclass
class _Rows:
    """The rows of an unbalanced panel, sorted by period (then unit): the unit (position in
    ``ids``) and period (position in ``tlist``) of each row, its outcome and covariates (with
    intercept; None without covariates), and where each period's rows start."""

    unit: np.ndarray
    period: np.ndarray
    y: np.ndarray
    X: np.ndarray | None
    start: np.ndarray  # T + 1 offsets


def _prepare(data, yname, tname, idname, gname, covariates, clustervar, anticipation, control_group,
             allow_unbalanced_panel: bool = False) -> _Panel:
    cols = [idname, tname, yname, gname, *covariates] + ([clustervar] if clustervar else [])
    problems = []
    missing_cols = [c for c in dict.fromkeys(cols) if c not in data.columns]
    if missing_cols:
        raise BadInputError(
            f"att_gt: data lacks column(s) {missing_cols} (available: {', '.join(map(str, data.columns))}).",
        )
    df = data[list(dict.fromkeys(cols))].copy()
    for c in [tname, yname, gname, *covariates]:
        if not (pd.api.types.is_numeric_dtype(df[c]) or pd.api.types.is_bool_dtype(df[c])):
            problems.append(f"column {c!r} must be numeric (dtype {df[c].dtype}); convert it before estimation")
    if problems:
        raise BadInputError("att_gt: bad input columns:", problems=problems)
    dropped: dict[str, int] = {}
    notes: list[str] = []
    num = df[[tname, yname, gname, *covariates]].astype("float64")
    bad = num.isna().any(axis=1) | ~np.isfinite(num.to_numpy()).all(axis=1) | df[idname].isna()
    if clustervar:
        bad |= df[clustervar].isna()
    if bad.any():
        dropped["missing_values"] = int(bad.sum())
        df = df.loc[~bad]
    if df.empty:
        raise DesignError("att_gt: no rows left after dropping missing values")
    # one factorisation of units and periods serves the duplicate and constancy checks
    ucode0, uid0 = pd.factorize(df[idname], sort=False)
    t0 = df[tname].to_numpy(dtype=float)
    tval0 = np.sort(pd.unique(t0))  # few distinct periods: hash + binary search, not a sort of all rows
    tcode0 = np.searchsorted(tval0, t0)
    pair = ucode0.astype(np.int64) * tval0.size + tcode0
    mult = np.bincount(pair, minlength=uid0.size * tval0.size)[pair] > 1
    if mult.any():
        keys = [f"({a}, {b:g})" for a, b in df.loc[mult, [idname, tname]].drop_duplicates().itertuples(index=False)]
        raise BadInputError(
            f"att_gt: {int(mult.sum())} rows share a ({idname}, {tname}) pair; the panel needs one row per unit and period. "
            f"First: {first_keys(keys)}. Deduplicate the panel.",
        )

    def varies(values: np.ndarray) -> np.ndarray:
        """Units (positions in uid0) whose ``values`` are not constant over their rows."""
        per_unit = np.empty(uid0.size, dtype=values.dtype)
        per_unit[ucode0] = values
        return np.unique(ucode0[values != per_unit[ucode0]])

    gv = varies(df[gname].to_numpy(dtype=float))
    if gv.size:
        raise BadInputError(
            f"att_gt: column {gname!r} varies within {gv.size} unit(s) ({first_keys(np.asarray(uid0)[gv])}); "
            "the first treatment period must be constant per unit.",
        )
    if clustervar:
        cv = varies(pd.factorize(df[clustervar])[0])
        if cv.size:
            raise BadInputError(
                f"att_gt: cluster column {clustervar!r} varies over time within {cv.size} unit(s) "
                f"({first_keys(np.asarray(uid0)[cv])}); use a time-invariant cluster variable.",
            )
    g = df[gname].to_numpy(dtype=float).copy()
    g[g == 0] = np.inf
    t = df[tname].to_numpy(dtype=float)
    tlist = np.sort(pd.unique(t))
    rules = cohort_rules(tlist, np.unique(g), anticipation, control_group)
    late = np.isfinite(g) & (g > rules.late_after)
    if late.any():
        notes.append(f"{int(late.sum())} rows with {gname} after the last period (+anticipation) treated as never treated")
        g[late] = np.inf
    if rules.latest is not None:
        latest, cutoff = rules.latest, rules.period_cutoff
        keep = t < cutoff
        dropped["periods_without_comparison_group"] = int((~keep).sum())
        notes.append(
            f"no never-treated units: periods >= {cutoff:g} dropped; cohort {latest:g} "
            + ("serves as never treated" if control_group == "nevertreated" else "kept only as not-yet-treated comparison")
        )
        if rules.latest_as_never:
            g[g == latest] = np.inf
        df, g, t = df.loc[keep], g[keep], t[keep]
        tlist = np.sort(pd.unique(t))
    exclude_g = rules.exclude_g
    always = np.isfinite(g) & (g <= rules.always_upto)
    if always.any():
        dropped["treated_in_first_period"] = int(always.sum())
        df, g, t = df.loc[~always], g[~always], t[~always]
    # balanced panel
    ucode, uid = pd.factorize(df[idname], sort=True)
    uid = np.asarray(uid)
    tlist = np.sort(pd.unique(t))
    T = tlist.size
    counts = np.bincount(ucode, minlength=uid.size)
    full = counts[ucode] == T
    if not full.all() and allow_unbalanced_panel:
        return _long_panel(df, g, t, ucode, uid, tlist, yname, covariates, clustervar, anticipation, control_group,
                           exclude_g, dropped, notes, n_unbalanced=int(np.count_nonzero(counts != T)))
    dropped_units: dict = {}
    if not full.all():
        dropped["unbalanced_panel"] = int((~full).sum())
        gap = counts != T  # per unit: not observed in every period
        unit_treated = np.zeros(uid.size, bool)
        unit_treated[ucode] = np.isfinite(g) & (g > 0)
        dropped_units["unbalanced_panel"] = {"units": int(gap.sum()), "treated_units": int((gap & unit_treated).sum())}
        df, g, t = df.loc[full], g[full], t[full]
        ucode, uid = pd.factorize(df[idname], sort=True)
        uid = np.asarray(uid)
        tlist = np.sort(pd.unique(t))
        T = tlist.size
    if uid.size == 0:
        raise DesignError("att_gt: no units left after dropping always-treated and unbalanced units")
    tcode = np.searchsorted(tlist, t)
    n = uid.size
    Y = np.empty((n, T))
    Y[ucode, tcode] = df[yname].to_numpy(dtype=float)
    unit_g = np.empty(n)
    unit_g[ucode] = g
    X = None
    tv = False
    if covariates:
        k = len(covariates) + 1
        Xl = df[list(covariates)].to_numpy(dtype=float)
        Xw = np.ones((T, n, k))
        Xw[tcode, ucode, 1:] = Xl
        tv = bool(np.any(Xw != Xw[:1]))
        X = Xw if tv else Xw[0]
    cluster, glist = _cluster_and_cohorts(df, clustervar, ucode, n, unit_g, tlist, anticipation, exclude_g, control_group)
    return _Panel(Y, X, tv, unit_g, uid, tlist, glist, cluster, int(n * T), dropped, notes, exclude_g=exclude_g,
                  dropped_units=dropped_units)


def _cluster_and_cohorts(df, clustervar, ucode, n, unit_g, tlist, anticipation, exclude_g, control_group):
    """Per-unit integer cluster codes (None without ``clustervar``) and the estimable cohorts."""
    cluster = None
    if clustervar:
        cl = np.empty(n, dtype=object)
        cl[ucode] = df[clustervar].to_numpy()
        cluster = pd.factorize(pd.Series(cl))[0].astype(np.int64)
    glist = np.unique(unit_g[np.isfinite(unit_g)])
    glist = glist[glist > tlist[0] + anticipation]
    if exclude_g is not None and control_group != "nevertreated":
        glist = glist[glist < exclude_g]
    if glist.size == 0:
        raise DesignError("att_gt: no treated cohort with a pre-treatment period in the data")
    return cluster, glist


def _long_panel(df, g, t, ucode, uid, tlist, yname, covariates, clustervar, anticipation, control_group, exclude_g,
                dropped, notes, *, n_unbalanced: int) -> _Panel:
    """The unbalanced panel kept as rows (``allow_unbalanced_panel=True``), as R did: every
    unit stays with the periods it is observed in; see :func:`_att_gt_rc`."""
    n = uid.size
    tcode = np.searchsorted(tlist, t)
    order = np.lexsort((ucode, tcode))
    unit, period = ucode[order].astype(np.int64), tcode[order].astype(np.int64)
    y = df[yname].to_numpy(dtype=float)[order]
    X = None
    if covariates:
        X = np.ones((y.size, len(covariates) + 1))
        X[:, 1:] = df[list(covariates)].to_numpy(dtype=float)[order]
    start = np.searchsorted(period, np.arange(tlist.size + 1))
    unit_g = np.empty(n)
    unit_g[ucode] = g
    cluster, glist = _cluster_and_cohorts(df, clustervar, ucode, n, unit_g, tlist, anticipation, exclude_g, control_group)
    notes = [*notes, f"unbalanced panel kept (allow_unbalanced_panel): {n_unbalanced} of {n} units are not observed in all "
             f"{tlist.size} periods; each (g,t) cell uses the rows of its two periods as repeated cross sections"]
    return _Panel(None, None, False, unit_g, uid, tlist, glist, cluster, int(y.size), dropped, notes,
                  exclude_g=exclude_g, rows=_Rows(unit, period, y, X, start))


def _att_gt_rc(P: _Panel, cells, method: str, control_group: str, base_period: str, anticipation: int):
    """ATT(g,t) and unit-level influence functions on an unbalanced panel (R did's
    ``allow_unbalanced_panel = TRUE``, ``compute.att_gt`` with ``panel = FALSE``).

    Cell (g,t) with base period b takes the rows observed in t or b of the units of cohort g
    and of the comparison group, and runs the repeated-cross-section estimator of
    :mod:`models.did.drdid_rc` on them (``dr`` -> ``drdid_rc``, ``ipw`` -> ``std_ipw_did_rc``,
    ``reg`` -> ``reg_did_rc``; without covariates ``drdid_rc`` with an intercept only, which
    is the four-means difference, as R did). Each row's influence function is scaled by
    :math:`n/N_{gt}` (n = units, :math:`N_{gt}` = rows of the cell) and summed within units,
    so a unit seen in both periods enters once with both of its rows: the analytic variance
    :math:`\\sum_i\\psi_i^2/n^2` is then clustered at the unit, as R did and moderndid.
    Covariates are each row's own values (time-varying covariates allowed). R did's
    overlap guard applies (a fitted score >= 0.999 sets the cell to NA).

    What is assumed: the rows observed in the two periods of a cell are, within cohort and
    comparison group, representative of the cohort and the comparison group (entry and exit
    unrelated to the outcome path given the covariates: "missing at random" panel attrition).
    With attrition related to outcomes the cells compare different firms before and after,
    and the estimates are biased; a balanced panel (the default) avoids that assumption at
    the price of dropping the firms that enter or exit.
    """
    from .drdid_rc import drdid_rc, reg_did_rc, std_ipw_did_rc

    R = P.rows
    unit_g = P.unit_g
    n, k = unit_g.size, len(cells)
    att = np.full(k, np.nan)
    psi = np.zeros((n, k), order="F")
    n_cell = np.zeros(k, dtype=np.int64)
    n_tr = np.zeros(k, dtype=np.int64)
    obs = np.zeros(k, dtype=np.int64)
    notes: list[str] = []
    na_reasons: dict = {}
    tlist = P.tlist
    for j, (g, tt, post_idx, pret) in enumerate(cells):
        if base_period == "universal" and pret == post_idx:
            att[j] = 0.0
            continue
        rows = np.r_[R.start[post_idx]:R.start[post_idx + 1], R.start[pret]:R.start[pret + 1]]
        ug = unit_g[R.unit[rows]]
        Gr = ug == g
        if control_group == "nevertreated":
            Cr = np.isinf(ug)
        else:
            thr = notyet_threshold(tlist, post_idx, pret, base_period, anticipation)
            Cr = np.isinf(ug) | ((ug > thr) & ~Gr)
        rows = rows[Gr | Cr]
        D = Gr[Gr | Cr].astype(float)
        post = (R.period[rows] == post_idx).astype(float)
        units = R.unit[rows]
        n_tr[j] = np.unique(units[D == 1]).size
        n_cell[j] = np.unique(units).size
        obs[j] = rows.size
        try:
            if not (D == 1).any() or not (D == 0).any():
                raise DesignError("no treated" if not (D == 1).any() else "no comparison")
            X = R.X[rows] if R.X is not None else np.ones((rows.size, 1))
            y = R.y[rows]
            if method == "reg":
                r = reg_did_rc(y, post, D, X)
            else:
                ps = PScoreFit.fit(D, X)
                if ps.max_raw >= 0.999:
                    raise DesignError("overlap condition violated (max propensity score >= 0.999)")
                r = (std_ipw_did_rc if method == "ipw" else drdid_rc)(y, post, D, X, ps=ps)
        except DesignError as exc:
            notes.append(f"(g,t)=({g:g},{tt:g}): {exc}; ATT set to NA")
            na_reasons[(g, tt)] = str(exc)
            psi[:, j] = np.nan
            continue
        att[j] = r.att
        psi[:, j] = np.bincount(units, weights=(n / rows.size) * r.inf_func, minlength=n)
    return att, psi, n_cell, n_tr, obs, notes, na_reasons


# ---------------------------------------------------------------------------------------
# estimation
# ---------------------------------------------------------------------------------------


def gt_cells(tlist: np.ndarray, glist: np.ndarray, base_period: str, anticipation: int) -> list[tuple[float, float, int, int]]:
    """The (g, t, post index, base index) cells of R did's att_gt, in its order."""
    tfac = 1 if base_period == "varying" else 0
    cells = []
    for g in glist:
        idx = np.flatnonzero(tlist + anticipation < g)
        pret_g = int(idx[-1])
        for t in range(tlist.size - tfac):
            post_idx = t + tfac
            pret = t if base_period == "varying" else pret_g
            if g <= tlist[post_idx]:
                pret = pret_g
            cells.append((g, tlist[post_idx], post_idx, pret))
    return cells


def notyet_threshold(tlist: np.ndarray, post_idx: int, pret: int, base_period: str, anticipation: int) -> float:
    """Not-yet-treated comparison units of a cell: cohorts > this (R did's rule)."""
    tfac = 1 if base_period == "varying" else 0
    return tlist[max(post_idx - tfac, pret) + tfac] + anticipation


def att_gt(
    data: pd.DataFrame,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    covariates: tuple[str, ...] | list[str] = (),
    control_group: str = "nevertreated",
    est_method: str = "dr",
    base_period: str = "varying",
    anticipation: int = 0,
    clustervar: str | None = None,
    allow_unbalanced_panel: bool = False,
    alp: float = 0.05,
    bstrap: bool = False,
    biters: int = 999,
    cband: bool = False,
    seed: int = 0,
) -> AttGtResult:
    """Group-time ATTs (Callaway & Sant'Anna 2021), arguments as R did's ``att_gt``.

    ``covariates`` plays the role of ``xformla`` (an intercept is added). ``est_method``:
    ``"dr"`` (:func:`~models.did.drdid.drdid_panel`), ``"ipw"``, ``"reg"``; with no
    covariates all three equal the unconditional estimator, which is used directly.
    ``clustervar``: a column to cluster the influence function on (None or the unit id =
    unit level). ``bstrap``: replace analytic SEs by multiplier-bootstrap SEs;
    ``cband``: sup-t uniform critical value (needs the bootstrap; drawn with ``seed``).
    """
    problems = []
    if control_group not in ("nevertreated", "notyettreated"):
        problems.append(f"control_group={control_group!r}; use 'nevertreated' or 'notyettreated'")
    if est_method not in ("dr", "dr_imp", "ipw", "reg", "unconditional"):
        problems.append(f"est_method={est_method!r}; use 'dr', 'dr_imp', 'ipw', 'reg' or 'unconditional'")
    if base_period not in ("varying", "universal"):
        problems.append(f"base_period={base_period!r}; use 'varying' or 'universal'")
    if not (isinstance(anticipation, (int, np.integer)) and anticipation >= 0):
        problems.append(f"anticipation={anticipation!r}; use a non-negative integer")
    if not (0 < alp < 1):
        problems.append(f"alp={alp!r}; must be in (0, 1)")
    if allow_unbalanced_panel and est_method == "dr_imp":
        problems.append("est_method='dr_imp' with allow_unbalanced_panel=True is not implemented (the improved DR estimator "
                        "for repeated cross sections); use 'dr', 'ipw' or 'reg', or a balanced panel")
    if (bstrap or cband) and (not isinstance(biters, (int, np.integer)) or biters < 1):
        problems.append(f"biters={biters!r}; use a positive integer")
    if est_method == "unconditional" and covariates:
        problems.append("est_method='unconditional' takes no covariates")
    if problems:
        raise ConfigError("att_gt: bad options:", problems=problems)
    covariates = tuple(covariates)
    if clustervar == idname:
        clustervar = None
    P = _prepare(data, yname, tname, idname, gname, covariates, clustervar, anticipation, control_group,
                 allow_unbalanced_panel=allow_unbalanced_panel)
    Y, tlist, glist, unit_g = P.Y, P.tlist, P.glist, P.unit_g
    n, T = unit_g.size, tlist.size
    never = np.isinf(unit_g)
    nevertreated = control_group == "nevertreated"

    cells = gt_cells(tlist, glist, base_period, anticipation)
    k = len(cells)
    att = np.full(k, np.nan)
    psi = np.zeros((n, k), order="F")
    n_cell = np.zeros(k, dtype=np.int64)
    n_tr = np.zeros(k, dtype=np.int64)
    base_periods = np.array([tlist[c[3]] for c in cells])
    notes = list(P.notes)
    na_reasons: dict = {}
    cache: dict[tuple, Any] = {}
    if P.X is not None and est_method == "unconditional":
        raise ConfigError("est_method='unconditional' takes no covariates")
    method = est_method if P.X is not None else "unconditional"

    if P.rows is not None:
        rc_method = est_method if covariates else "dr"  # R did: drdid_rc with an intercept (= four means)
        att, psi, n_cell, n_tr, obs_cell, rc_notes, na_reasons = _att_gt_rc(P, cells, rc_method, control_group, base_period, anticipation)
        notes += rc_notes
        cells_todo = []
    else:
        cells_todo = list(enumerate(cells))
        obs_cell = None
    cohort_mask = {g: unit_g == g for g in glist}
    batches: dict[tuple, list[tuple[int, int, int]]] = {}  # nuisance-fit key -> [(cell, post, pre)]
    for j, (g, tt, post_idx, pret) in cells_todo:
        if base_period == "universal" and pret == post_idx:
            att[j] = 0.0  # normalised reference period; zero influence function
            continue
        Gm = cohort_mask[g]
        if nevertreated:
            Cm = never
            thr = None
        else:
            thr = notyet_threshold(tlist, post_idx, pret, base_period, anticipation)
            Cm = never | ((unit_g > thr) & ~Gm)
        ng, nc = int(Gm.sum()), int(Cm.sum())
        n_cell[j], n_tr[j] = ng + nc, ng
        if ng == 0 or nc == 0:
            notes.append(f"no {'treated' if ng == 0 else 'comparison'} units for (g,t)=({g:g},{tt:g}); ATT set to NA")
            na_reasons[(g, tt)] = f"no {'treated' if ng == 0 else 'comparison'} units"
            psi[:, j] = np.nan
            continue
        if method == "unconditional":
            dY = Y[:, post_idx] - Y[:, pret]
            mu1 = dY[Gm].mean()
            mu0 = dY[Cm].mean()
            att[j] = mu1 - mu0
            col = psi[:, j]
            col[Gm] = n * (dY[Gm] - mu1) / ng
            col[Cm] = -n * (dY[Cm] - mu0) / nc
            continue
        cov_idx = min(pret, post_idx)
        key = (g, thr, cov_idx if P.x_time_varying else None)
        if key not in cache:
            sample = np.flatnonzero(Gm | Cm)
            D = Gm[sample].astype(float)
            Xs = (P.X[cov_idx] if P.x_time_varying else P.X)[sample]
            entry: dict[str, Any] = {"sample": sample, "D": D, "X": Xs}
            try:
                if method in ("dr", "ipw"):
                    ps = PScoreFit.fit(D, Xs)
                    entry["ps"] = ps
                    if ps.max_raw >= 0.999:
                        entry["error"] = "overlap condition violated (max propensity score >= 0.999)"
                if method in ("dr", "reg") and "error" not in entry:
                    entry["ols"] = ControlOLS.fit(D, Xs)
            except DesignError as exc:
                entry["error"] = str(exc)
            cache[key] = entry
        if "error" in cache[key]:
            notes.append(f"(g,t)=({g:g},{tt:g}): {cache[key]['error']}; ATT set to NA")
            na_reasons[(g, tt)] = cache[key]["error"]
            psi[:, j] = np.nan
            continue
        batches.setdefault(key, []).append((j, post_idx, pret))
    # all cells that share a sample and its nuisance fits (a cohort's periods against the same
    # controls) in one batched call: matrix products instead of one pass per cell
    for key, items in batches.items():
        entry = cache[key]
        s = entry["sample"]
        js = [j for j, _, _ in items]
        Ys = Y[s]
        y1 = Ys[:, [post for _, post, _ in items]]
        y0 = Ys[:, [pre for _, _, pre in items]]
        if method == "dr_imp":
            # Sant'Anna & Zhao (2020) improved DR: inverse-probability-tilting score and
            # weighted outcome regression, fitted inside drdid_imp_panel for each cell
            for c, j in enumerate(js):
                r = drdid_imp_panel(y1[:, c], y0[:, c], entry["D"], entry["X"])
                att[j] = r.att
                psi[s, j] = (n / s.size) * r.inf_func
            continue
        if method == "dr":
            a, inf = drdid_panel(y1, y0, entry["D"], entry["X"], ps=entry["ps"], ols=entry["ols"], scale=n / s.size)
        else:
            if method == "ipw":
                a, inf = std_ipw_did_panel(y1, y0, entry["D"], entry["X"], ps=entry["ps"])
            else:
                a, inf = reg_did_panel(y1, y0, entry["D"], entry["X"], ols=entry["ols"])
            inf *= n / s.size
        att[js] = a
        # column by column: a 1-D scatter into a contiguous column of the Fortran-ordered psi
        # is much cheaper than a 2-D np.ix_ scatter
        for c, j in enumerate(js):
            psi[s, j] = inf[:, c]

    groups = np.array([c[0] for c in cells])
    times = np.array([c[1] for c in cells])
    ok = np.isfinite(att)
    psi0 = np.where(np.isfinite(psi), psi, 0.0) if not ok.all() else psi
    cohort_labels, cohort_pos = np.unique(np.where(np.isinf(unit_g), 0, unit_g), return_inverse=True)
    basis = DenseBasis(psi0, cohort_pos, cohort_labels.size, P.cluster)
    se, wald = cell_inference(att, basis, n, groups=np.array([c[0] for c in cells]), times=np.array([c[1] for c in cells]))
    zero_na = ~np.isfinite(se)
    crit = float(stats.norm.ppf(1 - alp / 2))
    if bstrap or cband:
        bout = mboot(psi0[:, ok], cluster=P.cluster, biters=biters, alpha=alp, seed=seed)
        if bstrap:
            se_b = np.full(k, np.nan)
            se_b[ok] = bout["se"]
            se = np.where(zero_na, se, se_b)
            se[se <= _EPS10] = np.nan
        if cband and T > 2:
            crit = bout["crit_val"]
            if crit >= 7:
                warnings.warn("simultaneous critical value >= 7: arguably too large to be reliable", stacklevel=2)
    unit_cohort = np.where(np.isinf(unit_g), 0, unit_g)
    return AttGtResult(
        groups=groups.astype(np.int64),
        times=times.astype(np.int64),
        att=att,
        se=se,
        inf_func=psi,
        base_periods=base_periods.astype(np.int64),
        n_cell=n_cell,
        n_treated_cell=n_tr,
        unit_ids=P.ids,
        unit_cohort=unit_cohort.astype(np.int64),
        cluster=P.cluster,
        n=n,
        tlist=tlist.astype(np.int64),
        glist=glist.astype(np.int64),
        crit_val=crit,
        wald_pretest=wald,
        n_obs=P.n_obs,
        dropped=P.dropped,
        dropped_units=dict(P.dropped_units),
        settings={
            "yname": yname,
            "tname": tname,
            "idname": idname,
            "gname": gname,
            "covariates": list(covariates),
            "control_group": control_group,
            "est_method": method if method == "unconditional" else est_method,
            "base_period": base_period,
            "anticipation": int(anticipation),
            "clustervar": clustervar,
            "alp": alp,
            "bstrap": bool(bstrap),
            "biters": int(biters),
            "cband": bool(cband),
            "seed": seed,
            "covariates_time_varying": P.x_time_varying,
            "unbalanced_panel": P.rows is not None,
        },
        notes=notes,
        na_reasons=na_reasons,
        cohort_labels=cohort_labels.astype(np.int64),
        cohort_n=np.bincount(cohort_pos, minlength=cohort_labels.size),
        obs_cell=obs_cell,
        _basis=basis,
    )


def cell_inference(att: np.ndarray, basis, n: int, *, groups: np.ndarray, times: np.ndarray) -> tuple[np.ndarray, dict | None]:
    """Analytic SEs of the cells, :math:`\\sqrt{\\sum_c S_{cj}^2}/n`, and R did's Wald
    pre-test of all pre-treatment ATT(g,t) = 0, :math:`W = n\\,\\hat a'(S'S/n)^{-1}\\hat a`,
    from an influence-function basis (dense or Gram; :mod:`models.did._ifbasis`)."""
    ok = np.isfinite(att)
    se = np.sqrt(np.maximum(basis.cells_quad_diag(), 0.0)) / n
    se[~ok] = np.nan
    se[se <= _EPS10] = np.nan
    pre = np.flatnonzero((groups > times) & np.isfinite(se))
    wald = None
    if pre.size:
        preV = basis.cells_quad(pre) / n
        if np.linalg.cond(preV) < 1 / np.finfo(float).eps:
            W = float(n * att[pre] @ np.linalg.solve(preV, att[pre]))
            wald = {"statistic": W, "df": int(pre.size), "p_value": float(stats.chi2.sf(W, pre.size))}
    return se, wald
