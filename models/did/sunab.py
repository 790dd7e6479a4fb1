"""Sun & Abraham (2021, J. Econometrics, "Estimating dynamic treatment effects in event
studies with heterogeneous treatment effects") interaction-weighted (IW) event study.

1. Saturated regression (their eq. 24): for treated cohorts :math:`g` outside the control
   cohort and event times :math:`l \\ne -1`,

   .. math:: y_{it} = \\alpha_i + \\lambda_t + \\sum_g \\sum_{l \\ne -1}
             \\delta_{g,l}\\, 1\\{g_i = g\\}\\, 1\\{t - g_i = l\\} + x_{it}'\\gamma + \\varepsilon_{it}

   giving cohort-specific effects :math:`\\delta_{g,l}` = CATT(g, l) (reported as
   ``aggregation="gt"`` rows: ``cohort=g``, ``event_time=l``, ``time=g+l``). Control
   cohort (option ``control_cohort``): ``"never"`` (never members, their dummies are
   zero; needs never members) or ``"last"`` (the last-treated cohort joins the never
   members as controls and all periods from its treatment year on are dropped, counted
   as ``after_last_cohort_treated``; SA section 4.1).
2. IW estimate at event time :math:`l`: :math:`\\hat\\nu_l = \\sum_g \\hat w_{g,l}
   \\hat\\delta_{g,l}` with :math:`\\hat w_{g,l}` the share of cohort :math:`g` among the
   estimation-sample observations at event time :math:`l` (fixest ``sunab``/``aggregate``
   and pyfixest ``SaturatedEventStudy.aggregate`` convention: observation counts; equal
   to SA's cohort shares in a balanced panel).
3. ``simple`` ATT = :math:`\\sum_{g,l\\ge0} n_{g,l}\\hat\\delta_{g,l} / \\sum_{g,l\\ge0}
   n_{g,l}`, as fixest's ``aggregate(x, c("ATT" = "^[^-]"))`` / ``summary(., agg = "ATT")``.

Standard errors: delta method, :math:`\\mathrm{Var}(\\hat\\nu) = R\\hat VR'` from the
saturated regression's vcov, weights treated as fixed (fixest's convention; SA's
``eventstudyinteract`` adds a term for the estimated shares). Solver (option ``solver``):
``"exact"`` (default) fits the saturated model without dummy matrices (see
:func:`_fit_cells_exact`; memory O(N + cells^2), so 1M firms x 20 years is feasible) when
``vcov`` is ``cluster`` with firms nested in the clusters, and otherwise falls back to
``"pyfixest"`` ``feols`` with explicit cell dummies (all vcov kinds; dense N x cells).
Both agree to 1e-10 (tested). Singletons removed and counted. Option ``event_window``: null (default,
fully saturated, as fixest) or [lo, hi] to trim treated observations outside the window
(counted as ``outside_event_window``). ``meta["pretrend"]``: joint Wald test that the IW
leads (:math:`l < -1`) are zero; ``tables["vcov_dynamic"]``: covariance of the IW event-time
estimates.

Fixed effects beyond firm and year (``estimate.fixed_effects``, e.g. ``sector^year``) are
absorbed next to the cell dummies; the exact solver's reparametrisation covers unit and period
effects only, so it declines (``meta["solver_note"]``) and pyfixest fits.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models import options as _opt
from models.errors import DesignError
from models.result import EstimationResult

from . import _panel
from ._pyfixest import feols_fe

OPTIONS: dict = {"control_cohort": "never", "event_window": None, "solver": "exact"}
RULES: dict = {
    "control_cohort": _opt.choice("never", "last"),
    "event_window": _opt.nullable(_opt.EVENT_WINDOW),
    "solver": _opt.choice("exact", "pyfixest"),
}
NAME = "sunab"
REF = -1
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)


_rows = _panel.tidy_rows


def _fit_cells_exact(df, cell_idx, cells, panel, spec):
    """Saturated regression without dummy matrices (used for ``vcov: cluster`` with
    units nested in the clusters, the default ``firm_id`` clustering).

    Reparametrisation: period dummies plus cohort x event-time dummies span the same
    space as one categorical "level" = (cohort, year) for treated cells and = year for
    everything else (never/control units and the reference period -1). The model is then
    unit FE + one low-dimensional FE (T + cells levels) + covariates, solved exactly by
    :class:`._fe.TwoWayFE`, and delta_{g,l} = c_{(g, g+l)} - c_{g+l}. Cluster-robust
    vcov of the levels: S^+ (sum_c w_c w_c') S^+ with w_c = sum_{it in c} z~_it u_it;
    with units nested in clusters the unit-demeaning term vanishes (residuals sum to
    zero within each unit), so w_c aggregates the sparse level indicators times u.
    Small-sample factor as pyfixest's CRV1: G/(G-1) (N-1)/(N-K), K = number of levels +
    covariates (unit FE nested in the cluster not counted). Returns None (caller falls back to pyfixest) for other vcov kinds,
    non-nested clusters or unidentified cells."""
    from scipy import sparse

    from ._fe import TwoWayFE

    if spec.vcov.kind != "cluster":
        return None
    cl = df[panel.cluster_cols[0]].to_numpy()
    unit = df["_unit"].to_numpy()
    if pd.Series(cl).groupby(unit).nunique().max() > 1:
        return None
    T = int(df["_time"].max()) + 1
    k = len(cells)
    level = np.where(cell_idx >= 0, T + cell_idx, df["_time"].to_numpy())
    X = df[panel.covariates].to_numpy(float) if panel.covariates else None
    fe = TwoWayFE(unit, level, unit.max() + 1, T + k, X=X)
    p = T + k + fe.K
    if fe.rank_S != p - 1:  # one normalisation (unit vs level) only; else not identified
        return None
    y = df["_y"].to_numpy(float)
    a, z = fe.fit(y)
    u = y - fe.predict(a, z)[:, 0]
    # delta = L z with L picking cell level minus its calendar-year level
    years = np.sort(df["_t"].unique())
    ycode = np.searchsorted(years, (cells["g"] + cells["l"]).to_numpy())
    L = np.zeros((k, p))
    L[np.arange(k), T + np.arange(k)] = 1.0
    L[np.arange(k), ycode] = -1.0
    delta = L @ z[:, 0]
    codes = np.unique(cl, return_inverse=True)[1]
    G = int(codes.max()) + 1
    W = sparse.csr_matrix((u, (codes, level)), shape=(G, p))
    if fe.K:
        rr = np.repeat(codes, fe.K)
        cc = np.tile(np.arange(T + k, p), len(u))
        W = W + sparse.csr_matrix(((X * u[:, None]).ravel(), (rr, cc)), shape=(G, p))
    meat = (W.T @ W).toarray()
    n = len(y)
    K = fe.rank_S + 1  # = levels + covariates; pyfixest's count (checked to 1e-10 in the tests)
    adj = G / (G - 1) * (n - 1) / (n - K)
    Vz = adj * fe.S_pinv @ meat @ fe.S_pinv
    return delta, L @ Vz @ L.T


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    _opt.require(validate_options(spec.options), f"estimate.{NAME}")
    opts = {**OPTIONS, **(spec.options or {})}
    control = opts["control_cohort"]
    panel = _panel.prepare(data, spec, NAME)
    df = panel.df
    if control == "never":
        if not (df["_g"] == 0).any():
            raise DesignError(
                f"{NAME}: control_cohort 'never' but the sample has no never members; set "
                f"estimate.{NAME}.control_cohort: last to use the last-treated cohort as control"
            )
        control_g: list[int] = []
    else:
        g_last = int(df["_g"].max())
        if g_last == 0:
            raise DesignError(f"{NAME}: no treated units")
        panel.drop((df["_t"] < g_last).to_numpy(), "after_last_cohort_treated")
        panel.recode()
        df = panel.df
        control_g = [g_last]
        if not (df["_g"] > 0).any() or df.loc[df["_g"] > 0, "_g"].nunique() < 2:
            raise DesignError(f"{NAME}: control_cohort 'last' needs at least two treated cohorts")
    if opts["event_window"] is not None:
        lo, hi = int(opts["event_window"][0]), int(opts["event_window"][1])
        rel = panel.df["_rel"].to_numpy()
        outside = np.isfinite(rel) & ((rel < lo) | (rel > hi)) & ~np.isin(panel.df["_g"], control_g)
        panel.drop(~outside, "outside_event_window")
        panel.recode()
    _panel.drop_singletons(panel)
    if spec.control_group == "nevertreated" and control == "never":
        _panel.require_controls(panel, spec, NAME)
    df = panel.df
    g = df["_g"].to_numpy()
    rel = df["_rel"].to_numpy()
    is_cell = (g > 0) & ~np.isin(g, control_g) & (rel != REF)
    cells = (
        pd.DataFrame({"g": g[is_cell], "l": rel[is_cell].astype(int), "id": df["_id"].to_numpy()[is_cell]})
        .groupby(["g", "l"])
        .agg(n=("id", "size"), n_units=("id", "nunique"))
        .reset_index()
    )
    if not (cells["l"] >= 0).any():
        raise DesignError(f"{NAME}: no post-treatment cohort x event-time cells")
    # cell index per row, then dummies
    key = pd.MultiIndex.from_arrays([g, np.where(np.isfinite(rel), rel, -10**9).astype(int)])
    cell_idx = pd.MultiIndex.from_frame(cells[["g", "l"]]).get_indexer(key)
    cell_idx[~is_cell] = -1
    k = len(cells)
    # the exact solver reparametrises period + cell dummies as one level; extra fixed effects
    # (sector x year, ...) are not part of that reparametrisation: it declines, pyfixest fits
    fast = _fit_cells_exact(df, cell_idx, cells, panel, spec) if opts["solver"] == "exact" and not panel.fe_cols else None
    solver_note = None
    if opts["solver"] == "exact" and panel.fe_cols:
        solver_note = (f"exact cell solver declined: fixed effects beyond firm and year ({', '.join(panel.fe_terms)}) "
                       "are outside its reparametrisation; fitted by pyfixest with explicit cell dummies")
    if fast is not None:
        delta, V = fast
    else:  # pyfixest with explicit cell dummies (dense n x cells)
        cols = [f"_c{j}" for j in range(k)]
        M = np.zeros((len(df), k))
        rows_ = np.where(cell_idx >= 0)[0]
        M[rows_, cell_idx[rows_]] = 1.0
        df = pd.concat([df, pd.DataFrame(M, columns=cols, index=df.index)], axis=1)
        why = "Some cohort x event-time cells are not identified (too few periods or no control units)."
        res = feols_fe(df, "_y", cols + panel.covariates, panel.vcov_spec(spec.vcov), NAME, fe=panel.fe, why_collinear=why)
        delta, V = res.beta[:k], res.vcov[:k, :k]

    # IW aggregation by event time
    ls = sorted(cells["l"].unique())
    R = np.zeros((len(ls), k))
    for i, l in enumerate(ls):
        sel = (cells["l"] == l).to_numpy()
        R[i, sel] = cells["n"].to_numpy()[sel] / cells["n"].to_numpy()[sel].sum()
    nu, Vnu = R @ delta, R @ V @ R.T
    post = (cells["l"] >= 0).to_numpy()
    r_att = np.where(post, cells["n"].to_numpy(), 0.0)
    r_att = r_att / r_att.sum()
    att, Vatt = np.array([r_att @ delta]), np.array([[r_att @ V @ r_att]])

    ntr = _panel.n_treated_by(df.loc[is_cell], "_rel")
    rows = []
    rows += _rows(
        "simple",
        ["ATT"],
        att,
        Vatt,
        spec.alpha,
        [{"n_obs": int(cells.loc[post, "n"].sum()), "n_treated": int(df.loc[is_cell & (rel >= 0), "_id"].nunique())}],
    )
    rows += _rows(
        "dynamic",
        [f"rel_time::{l}" for l in ls],
        nu,
        Vnu,
        spec.alpha,
        [
            {"event_time": int(l), "n_obs": int(cells.loc[cells["l"] == l, "n"].sum()), "n_treated": int(ntr.get(float(l), 0))}
            for l in ls
        ],
    )
    rows += _rows(
        "gt",
        [f"rel_time::{l}:cohort::{gg}" for gg, l in zip(cells["g"], cells["l"])],
        delta,
        V,
        spec.alpha,
        [
            {"cohort": int(gg), "event_time": int(l), "time": int(gg + l), "n_obs": int(n), "n_treated": int(nu_)}
            for gg, l, n, nu_ in zip(cells["g"], cells["l"], cells["n"], cells["n_units"])
        ],
    )
    vc = pd.DataFrame(Vnu, index=pd.Index(ls, name="event_time"), columns=pd.Index(ls, name="event_time"))
    weights = cells.assign(weight=(R.sum(axis=0))).rename(columns={"g": "cohort", "l": "event_time"})
    weights = weights[["cohort", "event_time", "n", "weight"]]
    meta = _panel.base_meta(
        panel,
        spec,
        control_cohort=control,
        control_cohorts=[0, *control_g],
        reference_period=REF,
        event_window=opts["event_window"],
        pretrend=_panel.pretrend_test(nu, Vnu, ls, ref=REF),
        weights="observation shares of cohorts at each event time (fixest convention), treated as fixed",
        inference="normal",
    )
    if solver_note:
        meta["solver_note"] = solver_note
    return EstimationResult(
        estimator=NAME,
        outcome=spec.yname,
        tidy=pd.DataFrame(rows),
        meta=meta,
        tables={"vcov_dynamic": vc, "iw_weights": weights},
    )
