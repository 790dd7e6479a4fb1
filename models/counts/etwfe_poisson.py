"""Wooldridge's extended two-way fixed effects with an exponential mean (registry key
``etwfe_poisson``).

Wooldridge, J. M. (2023), "Simple approaches to nonlinear difference-in-differences with
panel data", *The Econometrics Journal* 26(3), C31–C66, §3–4: pooled Poisson QMLE of

.. math::

    E[y_{it} \\mid g_i, t] = \\exp\\Big(\\alpha + \\sum_{g} \\delta_g 1\\{g_i = g\\}
        + \\sum_{s} \\lambda_s 1\\{t = s\\}
        + \\sum_{(g,s) \\in \\mathcal{C}} \\tau_{gs} 1\\{g_i = g, t = s\\}\\Big)

with cohort dummies (never members, ``g = 0``, the base), year dummies (first year the
base) and one dummy per cohort-year cell in :math:`\\mathcal{C}`:

* ``control_group: notyettreated`` (etwfe's ``cgroup = "notyet"``): treated cells
  :math:`g > 0, s \\ge g`; never and not-yet-treated cells identify the counterfactual;
* ``control_group: nevertreated`` (``cgroup = "never"``): every cell of every treated
  cohort except its reference year :math:`s = g - 1`; pre-treatment cells are placebo
  (lead) effects and only never members identify the counterfactual. ``pretrend`` is the
  joint Wald test that the lead :math:`\\tau_{gs}` are zero.

Without covariates every regressor is constant within a cohort-year cell, so the QMLE is
computed exactly on the cell totals (:math:`\\sum_c x_c(S_c - n_c e^{x_c b}) = 0`, Newton
steps on the cell level): linear in the number of firm-years, independent of it after one
aggregation pass. Wooldridge (2023, §4.2) shows that with the Poisson QMLE the
cohort-dummy estimates of :math:`\\tau_{gs}` coincide with those from unit fixed effects on a
balanced panel.

Covariates (``estimate.covariates``; time-constant ones, as in R etwfe): the design adds
cohort- and year-specific intercepts *and slopes* on each covariate ``x`` and the
interaction of every treated-cell dummy with ``x_dm`` (``x`` demeaned by cohort and year),
i.e. R etwfe's ``y ~ x | gvar[x] + tvar[x]`` with ``.Dtreat:i(gvar, i.tvar) / x_dm``
(Wooldridge 2023, §6); estimated on the observation level (dense design, so intended for
a handful of covariates). ATTs are then averages over the treated firm-years of the cell
of :math:`\\exp(x_{it}b) - \\exp(x_{it}b - \\tau_{gt} - x^{dm}_{it}\\gamma_{gt})`. On mpdta
(``emp ~ lpop``, not-yet-treated controls, clustered by county) this reproduces R etwfe's
published ``emfx(type = "event")`` Poisson values (tests/reference).

ATT(g,t) on the level scale is the average partial effect over the treated units of cell
:math:`(g,t)`: :math:`\\mathrm{ATT}_{gt} = \\frac{1}{n_{gt}}\\sum_{i \\in (g,t)}
[\\exp(x_{it} b) - \\exp(x_{it} b - \\tau_{gt})] = e^{\\eta_{gt}}(1 - e^{-\\tau_{gt}})`.
Aggregations weight cells by their number of firm-years :math:`n_{gt}` (as etwfe's
``emfx``, which averages over treated observations):

* ``simple``: :math:`\\sum n_{gt}\\mathrm{ATT}_{gt} / \\sum n_{gt}` over post cells
  (:math:`t \\ge g`), term ``att``; and term ``pct`` = simple ATT divided by the mean
  counterfactual :math:`\\sum n_{gt} e^{\\eta_{gt}-\\tau_{gt}} / \\sum n_{gt}` (a proportion);
* ``dynamic``: the same per event time :math:`e = t - g` (leads included under
  ``nevertreated``; the reference :math:`e=-1` omitted), terms ``att`` and ``pct``;
* ``group`` (per cohort, post cells) and ``calendar`` (per year, post cells), term ``att``;
* ``gt``: per cell, terms ``att`` (level) and ``tau`` (log-scale coefficient).

Standard errors: delta method with the QMLE sandwich :math:`A^{-1} B A^{-1}`,
:math:`A = \\sum_c n_c e^{x_c b} x_c x_c'`. ``cluster``: :math:`B = \\sum_G s_G s_G'` with
score sums per cluster, scaled by fixest's CRV1 factor :math:`\\frac{G}{G-1}\\frac{n-1}{n-K}`
where K omits the intercept and cohort dummies when cohorts are nested in the clusters
(fixest's ``fixef.K = "nested"``); with covariates K counts every parameter (fixest does
not treat fixed effects with varying slopes as nested; this reproduces R etwfe's SEs on
mpdta to 3e-6); ``hetero``:
:math:`B = \\sum_{it} e_{it}^2 x x'` times :math:`n/(n-K)`; ``iid``: :math:`A^{-1}`
(Poisson variance assumption). ``twoway`` is not supported.

Separation: cohorts or years with no positive outcome, and cells whose dummy is separated
(a treated cell with all-zero outcomes), are found by the CGZ iterative rectifier on the
cell-level design (all rows of a cell share its regressors, so separation is a property of
cells) and dropped; counts in ``meta["dropped"]`` (rows) and ``meta["separation"]``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import sparse

from models import options as _opt
from models.errors import ConfigError, DesignError
from models.result import EstimationResult, normal_inference, tidy_frame
from models.spec import EstimatorSpec

from ._panel import prepare
from .separation import relu_separated

OPTIONS: dict = {
    "maxiter": 100,  # Newton iterations of the cell-level Poisson QMLE
    "tol": 1e-12,  # convergence: max |step| in the coefficients
}
RULES: dict = {
    "maxiter": _opt.integer(1, 100_000),
    "tol": _opt.number(0, 1e-2, lo_open=True),
}
validate_options = _opt.validator(OPTIONS, RULES, name="etwfe_poisson")
SUPPORTED_VCOV = ("iid", "hetero", "cluster")


# ----------------------------------------------------------------------------- design
def cell_design(cells: pd.DataFrame, control_group: str):
    """Design matrix over cohort-year cells.

    ``cells`` has columns ``g``, ``t``. Returns (X (n_cells, k), names, tau_index) where
    ``tau_index`` maps each cell with its own dummy to its column (or -1)."""
    gs = np.sort(cells["g"].unique())
    ts = np.sort(cells["t"].unique())
    g = cells["g"].to_numpy()
    t = cells["t"].to_numpy()
    cols, names = [np.ones(len(cells))], ["(Intercept)"]
    for gg in gs:
        if gg != 0:
            cols.append((g == gg).astype(float))
            names.append(f"cohort::{gg}")
    for tt in ts[1:]:
        cols.append((t == tt).astype(float))
        names.append(f"year::{tt}")
    if control_group == "notyettreated":
        has_tau = (g > 0) & (t >= g)
    elif control_group == "nevertreated":
        has_tau = (g > 0) & (t != g - 1)
    else:
        raise ConfigError(f"etwfe_poisson: control_group {control_group!r}; allowed: nevertreated, notyettreated")
    tau_index = np.full(len(cells), -1)
    for j in np.flatnonzero(has_tau):
        tau_index[j] = len(cols)
        e = np.zeros(len(cells))
        e[j] = 1.0
        cols.append(e)
        names.append(f"tau::{g[j]}::{t[j]}")
    return np.column_stack(cols), names, tau_index


def poisson_cells(X: np.ndarray, n: np.ndarray, S: np.ndarray, maxiter: int = 100, tol: float = 1e-12):
    """Poisson QMLE on grouped data: solve sum_c x_c (S_c - n_c exp(x_c b)) = 0 by Newton
    with step halving on the log-likelihood. Returns (b, A) with A the Hessian."""
    ybar = S / n
    # start: OLS of log(mean + small) — any start works, Newton is globally convergent here
    b, *_ = np.linalg.lstsq(X * np.sqrt(n)[:, None], np.log(ybar + 0.1 * ybar.mean() + 1e-12) * np.sqrt(n), rcond=None)

    def ll(bb):
        eta = X @ bb
        return float(np.sum(S * eta - n * np.exp(eta)))

    cur = ll(b)
    for _ in range(maxiter):
        mu = n * np.exp(X @ b)
        grad = X.T @ (S - mu)
        A = (X * mu[:, None]).T @ X
        step = np.linalg.solve(A, grad)
        lam = 1.0
        while True:
            nb = b + lam * step
            new = ll(nb)
            if new >= cur - 1e-12 * abs(cur) or lam < 1e-8:
                break
            lam /= 2
        b, cur = nb, new
        if np.max(np.abs(lam * step)) < tol:
            break
    else:
        raise DesignError(f"etwfe_poisson: Poisson QMLE did not converge in {maxiter} Newton steps")
    mu = n * np.exp(X @ b)
    A = (X * mu[:, None]).T @ X
    return b, A


# ----------------------------------------------------------------------------- covariates
def _demean_twoway(x: np.ndarray, a: np.ndarray, b: np.ndarray, tol: float = 1e-13, maxiter: int = 10_000) -> np.ndarray:
    """x minus its projection on cohort and year dummies (as fixest::demean(x ~ g + t))."""
    from .separation import _demean

    return _demean(x[:, None], np.ones(x.size), [a, b], tol, maxiter)[:, 0]


def _fit_covariates(df, cells, Xcell, names, tau_index, cell_code, xcols, xnames, spec, cluster_cols, opts):
    """Observation-level Poisson QMLE with covariates, as R etwfe's
    ``y ~ x | gvar[x] + tvar[x]`` with ``.Dtreat:i(gvar, i.tvar) / x_dm`` (Wooldridge 2023 §6):
    cohort and year intercepts and slopes on x, treated-cell dummies and their interactions
    with ``x_dm`` (x demeaned by cohort and year). Returns the coefficient vector, its vcov
    and the per-cell means of the level-scale potential outcomes and their gradients."""
    n = len(df)
    g_code = pd.factorize(df["_g"], sort=True)[0]
    t_code = pd.factorize(df["_t"], sort=True)[0]
    Xb = Xcell[cell_code]
    cols, nm = [Xb], list(names)
    xs = [df[c].to_numpy(dtype=float) for c in xcols]
    gs = np.sort(cells["g"].unique())
    ts = np.sort(cells["t"].unique())
    gv, tv = df["_g"].to_numpy(), df["_t"].to_numpy()
    for x, xn in zip(xs, xnames):
        cols.append(x[:, None]); nm.append(f"x::{xn}")
        for gg in gs[gs != 0]:
            cols.append((x * (gv == gg))[:, None]); nm.append(f"cohortx::{gg}::{xn}")
        for tt in ts[1:]:
            cols.append((x * (tv == tt))[:, None]); nm.append(f"yearx::{tt}::{xn}")
    cell_rows = tau_index[cell_code]  # column of the row's cell dummy or -1
    treated = cell_rows >= 0
    gamma_cols = {}
    for x, xn in zip(xs, xnames):
        xdm = _demean_twoway(x, g_code, t_code)
        for j in np.flatnonzero(tau_index >= 0):
            gamma_cols.setdefault(j, []).append(len(nm))
            cols.append((xdm * (cell_code == j))[:, None]); nm.append(f"taux::{cells['g'].iat[j]}::{cells['t'].iat[j]}::{xn}")
    X = np.hstack(cols)
    y = df["_y"].to_numpy()
    k = X.shape[1]
    if np.linalg.matrix_rank(X) < k:
        raise DesignError("etwfe_poisson: the design with covariates is rank deficient (a covariate constant within a cohort-year cell?)")
    # Newton with step halving on the observation-level Poisson log-likelihood
    b = np.zeros(k)
    b[0] = np.log(max(y.mean(), 1e-12))

    def ll(bb):
        eta = X @ bb
        return float(np.sum(y * eta - np.exp(eta)))

    cur = ll(b)
    for _ in range(int(opts["maxiter"])):
        mu = np.exp(X @ b)
        A = (X * mu[:, None]).T @ X
        step = np.linalg.solve(A, X.T @ (y - mu))
        lam = 1.0
        while True:
            nb = b + lam * step
            new = ll(nb)
            if new >= cur - 1e-12 * abs(cur) or lam < 1e-8:
                break
            lam /= 2
        b, cur = nb, new
        if np.max(np.abs(lam * step)) < float(opts["tol"]):
            break
    else:
        raise DesignError("etwfe_poisson: Poisson QMLE with covariates did not converge")
    mu = np.exp(X @ b)
    A = (X * mu[:, None]).T @ X
    Ainv = np.linalg.inv(A)
    e = y - mu
    if spec.vcov.kind == "iid":
        V = Ainv
    elif spec.vcov.kind == "hetero":
        V = Ainv @ ((X * (e * e)[:, None]).T @ X) @ Ainv * (n / (n - k))
    else:
        cl = pd.factorize(df[cluster_cols[0]], sort=True)[0]
        G = int(cl.max()) + 1
        Sc = np.column_stack([np.bincount(cl, weights=X[:, j] * e, minlength=G) for j in range(k)])
        # fixest counts every parameter when the cohort FE carry varying slopes (gvar[x]):
        # no nested-FE exclusion here (matches R etwfe's clustered SEs on mpdta)
        V = Ainv @ (Sc.T @ Sc) @ Ainv * (G / (G - 1) * (n - 1) / (n - k))
    V = 0.5 * (V + V.T)
    # per-observation potential outcomes for treated rows: switch off the row's cell columns
    X0 = X.copy()
    rows_t = np.flatnonzero(treated)
    X0[rows_t, cell_rows[rows_t]] = 0.0
    for j, gc in gamma_cols.items():
        r = rows_t[cell_code[rows_t] == j]
        X0[np.ix_(r, gc)] = 0.0
    y1 = np.exp(X @ b)
    y0 = np.exp(X0 @ b)
    idx = np.flatnonzero(tau_index >= 0)
    out_y1, out_y0, Ja, Jc = [], [], [], []
    for j in idx:
        r = rows_t[cell_code[rows_t] == j]
        out_y1.append(y1[r].mean())
        out_y0.append(y0[r].mean())
        Ja.append((y1[r][:, None] * X[r] - y0[r][:, None] * X0[r]).mean(axis=0))
        Jc.append((y0[r][:, None] * X0[r]).mean(axis=0))
    tau_cols = tau_index[idx]
    return b, V, nm, k, tau_cols, np.array(out_y1), np.array(out_y0), np.array(Ja), np.array(Jc)


# ----------------------------------------------------------------------------- fit
def fit(data: pd.DataFrame, spec: EstimatorSpec) -> EstimationResult:
    """Wooldridge (2023) ETWFE Poisson; see the module docstring."""
    spec.vcov.require("etwfe_poisson", SUPPORTED_VCOV)
    _opt.require(validate_options(spec.options), "estimate.etwfe_poisson")
    opts = {**OPTIONS, **(spec.options or {})}
    p = prepare(data, spec, "etwfe_poisson", allow_covariates=True)
    df = p.df
    if not (df["_g"] > 0).any():
        raise DesignError("etwfe_poisson: no treated firms (first_treat > 0) in the sample.")
    if spec.control_group == "nevertreated" and not (df["_g"] == 0).any():
        raise DesignError(
            "etwfe_poisson: control_group 'nevertreated' but the sample has no never members; "
            "use control_group: notyettreated."
        )
    if spec.control_group == "notyettreated" and not (df["_g"] == 0).any():
        # the last cohort's post years would have no comparison: drop them (counted)
        glast = int(df["_g"].max())
        p.drop(df["_t"].to_numpy() < glast, "no_comparison_after_last_cohort")
        df = p.df

    sep_info = {"separated_cells": [], "separated_rows": 0}
    while True:
        cells = df.groupby(["_g", "_t"], sort=True).agg(n=("_y", "size"), S=("_y", "sum")).reset_index()
        cells = cells.rename(columns={"_g": "g", "_t": "t"})
        X, names, tau_index = cell_design(cells, spec.control_group)
        # A cohort whose untreated reference cells were all removed as separated has no
        # untreated cell left to identify its intercept: its cells are not identified. Drop
        # the cohort (counted) rather than fail on a rank-deficient design.
        has_ref = pd.Series(tau_index < 0).groupby(cells["g"].to_numpy()).any()
        orphan = [int(gg) for gg, ok in has_ref.items() if gg > 0 and not ok]
        if orphan:
            hit = df["_g"].isin(orphan).to_numpy()
            sep_info.setdefault("cohorts_without_reference", []).extend(orphan)
            p.drop(~hit, "cohort_without_untreated_reference")
            df = p.df
            if not (df["_g"] > 0).any():
                raise DesignError("etwfe_poisson: no cohort keeps an untreated reference cell after separation.")
            continue
        rank = np.linalg.matrix_rank(X)
        if rank < X.shape[1]:
            raise DesignError(
                f"etwfe_poisson: the cohort/year/cell design is rank deficient ({rank} < {X.shape[1]}); "
                "a cohort may be observed in too few years or every firm is treated in some year."
            )
        sep = relu_separated(cells["S"].to_numpy(), X, [np.zeros(len(cells), dtype=np.int64)])
        if not sep.any():
            break
        bad = cells.loc[sep, ["g", "t"]]
        sep_info["separated_cells"] += [[int(a), int(b)] for a, b in bad.itertuples(index=False)]
        key = set(map(tuple, bad.to_numpy().tolist()))
        hit = np.array([(a, b) in key for a, b in zip(df["_g"].to_numpy(), df["_t"].to_numpy())])
        sep_info["separated_rows"] += int(hit.sum())
        p.drop(~hit, "separated")
        df = p.df
        if not (df["_g"] > 0).any():
            raise DesignError("etwfe_poisson: all treated cells are separated (outcome always zero for members).")
    p.recode()
    df = p.df
    n_c = cells["n"].to_numpy(dtype=float)
    S_c = cells["S"].to_numpy(dtype=float)
    cell_code = pd.MultiIndex.from_frame(df[["_g", "_t"]]).map(
        pd.Series(np.arange(len(cells)), index=pd.MultiIndex.from_frame(cells[["g", "t"]].rename(columns={"g": "_g", "t": "_t"})))
    ).to_numpy(dtype=np.int64)
    g = cells["g"].to_numpy()
    t = cells["t"].to_numpy()
    idx = np.flatnonzero(tau_index >= 0)
    n_obs = len(df)
    xcols = [c for c in df.columns if c.startswith("_x")]
    if xcols:
        b, V, names, k, tau_cols, y1, y0, J_att, J_cf = _fit_covariates(df, cells, X, names, tau_index, cell_code, xcols, list(spec.covariates), spec, p.cluster_cols, opts)
    else:
        b, A = poisson_cells(X, n_c, S_c, int(opts["maxiter"]), float(opts["tol"]))
        k = X.shape[1]
        Ainv = np.linalg.inv(A)
        mu_c = np.exp(X @ b)
        e = df["_y"].to_numpy() - mu_c[cell_code]
        if spec.vcov.kind == "iid":
            V = Ainv
        elif spec.vcov.kind == "hetero":
            Mc = np.bincount(cell_code, weights=e * e, minlength=len(cells))
            B = (X * Mc[:, None]).T @ X
            V = Ainv @ B @ Ainv * (n_obs / (n_obs - k))
        else:
            cl = pd.factorize(df[p.cluster_cols[0]], sort=True)[0]
            G = int(cl.max()) + 1
            E = sparse.csr_matrix((e, (cl, cell_code)), shape=(G, len(cells)))
            M = (E.T @ E).toarray()
            B = X.T @ M @ X
            nested = bool((df.groupby(p.cluster_cols[0])["_g"].nunique() <= 1).all())
            k_eff = k - (1 + (cells["g"].nunique() - 1)) if nested else k
            V = Ainv @ B @ Ainv * (G / (G - 1) * (n_obs - 1) / (n_obs - k_eff))
        V = 0.5 * (V + V.T)
        # ATT(g,t) on the level scale at the cell's regressors (no covariates: one value per cell)
        eta = X @ b
        tau_cols = tau_index[idx]
        Xc = X[idx]
        X0 = Xc.copy()
        X0[np.arange(len(idx)), tau_cols] = 0.0  # the cell's own dummy switched off
        y1 = np.exp(eta[idx])
        y0 = np.exp(X0 @ b)
        J_att = y1[:, None] * Xc - y0[:, None] * X0
        J_cf = y0[:, None] * X0
    tau = b[tau_cols]
    att = y1 - y0
    ncell = n_c[idx]
    ev = (t[idx] - g[idx]).astype(int)
    # distinct treated firms per cell (disclosure)
    firms_cell = df.loc[df["_g"] > 0].groupby(["_g", "_t"])["_id"].nunique()
    nfirm = np.array([int(firms_cell.get((gg, tt), 0)) for gg, tt in zip(g[idx], t[idx])])

    rows = []
    se_att = np.sqrt(np.einsum("ij,jk,ik->i", J_att, V, J_att))
    se_tau = np.sqrt(np.diag(V)[tau_cols])
    for lab, est, se in (("att", att, se_att), ("tau", tau, se_tau)):
        st, pv, lo, hi = normal_inference(est, se, spec.alpha)
        for j in range(len(idx)):
            rows.append(
                dict(aggregation="gt", term=lab, cohort=g[idx][j], time=t[idx][j], event_time=ev[j], estimate=est[j],
                     std_error=se[j], statistic=st[j], p_value=pv[j], conf_low=lo[j], conf_high=hi[j],
                     n_obs=ncell[j], n_treated=nfirm[j])
            )

    row_unit = df["_unit"].to_numpy()

    def n_firms(mask) -> int:
        rows_in = np.isin(cell_code, idx[mask])
        return int(np.unique(row_unit[rows_in]).size)

    def agg(mask, with_pct: bool):
        w = ncell[mask] / ncell[mask].sum()
        a = float(w @ att[mask])
        Ja = w @ J_att[mask]
        out = [("att", a, float(np.sqrt(Ja @ V @ Ja)))]
        if with_pct:
            cf = float(w @ y0[mask])
            Jc = w @ J_cf[mask]
            r = a / cf
            Jr = Ja / cf - a / cf**2 * Jc
            out.append(("pct", r, float(np.sqrt(Jr @ V @ Jr))))
        return out

    def add(aggregation, mask, with_pct, **keys):
        for term, est, se in agg(mask, with_pct):
            st, pv, lo, hi = normal_inference([est], [se], spec.alpha)
            rows.append(dict(aggregation=aggregation, term=term, estimate=est, std_error=se, statistic=st[0], p_value=pv[0],
                             conf_low=lo[0], conf_high=hi[0], n_obs=int(ncell[mask].sum()), n_treated=n_firms(mask), **keys))

    post = ev >= 0
    add("simple", post, True)
    for e_ in sorted(set(ev.tolist())):
        add("dynamic", ev == e_, True, event_time=e_)
    for gg in sorted(set(g[idx][post].tolist())):
        add("group", post & (g[idx] == gg), False, cohort=gg)
    for tt in sorted(set(t[idx][post].tolist())):
        add("calendar", post & (t[idx] == tt), False, time=tt)

    meta = {
        **p.counts(),
        "vcov": spec.vcov.label(),
        "control_group": spec.control_group,
        "dropped": dict(p.dropped),
        "separation": sep_info,
        "spec": spec.to_dict(),
        "n_cells": int(len(cells)),
        "n_params": int(k),
        "coef": dict(zip(names, map(float, b))),
        "scale": {"att": "level (outcome units)", "tau": "log (coefficient)", "pct": "ATT / mean counterfactual, proportion"},
        "weights": "cells weighted by firm-years n_gt, i.e. every treated firm-year weighs the same (as etwfe::emfx)",
        "covariates": list(spec.covariates),
    }
    leads = np.flatnonzero(ev < -1)
    if len(leads):
        from models.inference.wald import wald_test

        cols = tau_cols[leads]
        R = np.zeros((len(cols), k))
        R[np.arange(len(cols)), cols] = 1.0
        meta["pretrend"] = wald_test(b, V, R)
    else:
        meta["pretrend"] = None
    return EstimationResult(estimator="etwfe_poisson", outcome=spec.yname, tidy=tidy_frame(rows), meta=meta)
