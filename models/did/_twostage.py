"""Shared engine of the imputation (Borusyak, Jaravel & Spiess 2024) and two-stage
(Gardner 2021) DiD estimators.

Stage 1 fits :math:`y_{it} = \\alpha_i + \\lambda_t + x_{it}'\\gamma + \\varepsilon_{it}`
on the untreated observations :math:`\\Omega_0` (never members, and members' periods
with :math:`t - g_i < -\\text{anticipation}`) by exact least squares
(:class:`._fe.TwoWayFE`), and sets :math:`u^{(1)}_{it} = y_{it} - \\hat y_{it}(0)` for all
observations: on treated ones this is the imputed effect :math:`\\hat\\tau_{it}`.

Stage 2 regresses :math:`u^{(1)}` on the second-stage design :math:`X_2` (treatment
indicators, zero on :math:`\\Omega_0`). With indicator designs this is exactly the BJS
imputation estimator :math:`\\hat\\tau_w = \\sum_{it \\in \\Omega_1} w_{it} \\hat\\tau_{it}`.

Variance: Gardner's (2021) GMM sandwich as in R ``did2s`` (Butts & Gardner 2022) and
pyfixest ``did2s``, clustered at :math:`c`:

.. math::  \\hat V = (X_2'X_2)^{-1} \\Big[\\sum_c W_c W_c'\\Big] (X_2'X_2)^{-1}, \\quad
           W_c = X_{2c}'u^{(2)}_c - \\underbrace{X_2'X_1 (X_{10}'X_{10})^{-1}}_{\\Gamma} X_{10c}'u^{(1)}_c

where :math:`X_1` is the first-stage design (unit and period dummies and covariates) and
:math:`X_{10}` that design with treated rows zeroed. :math:`\\Gamma X_{10c}'u^{(1)}_c` is
computed without forming dummies: :math:`\\Gamma' = (X_{10}'X_{10})^{-1}X_1'X_2` is a
first-stage "regression" solved exactly by the same Schur-complement solver, giving
per-observation weights :math:`v_{it} = x_{10,it}'\\Gamma'`. No small-sample factor (as
did2s). This is not BJS's conservative variance (their Theorem 3 uses cohort-by-horizon
averages of :math:`\\hat\\tau` for the treated residuals and a leave-out correction); on
homogeneous-effect designs the two coincide asymptotically, under heterogeneity BJS's is
(weakly) more conservative.
"""

from __future__ import annotations

import numpy as np

from models import linalg as _linalg
from models.errors import DesignError

from . import _panel
from ._fe import TwoWayFE

SUPPORTED_VCOV = ("cluster", "hetero")


def stage_one(panel: _panel.Panel, anticipation: int, estimator: str) -> tuple[TwoWayFE, np.ndarray, np.ndarray]:
    """Fit the untreated-outcome model; drop (and count) treated observations that
    cannot be imputed (their unit or period has no untreated observation). Returns the
    fitted FE structure, u1 = y - yhat(0) for all rows, and the untreated mask."""
    a = int(anticipation)
    if a < 0:
        from models.errors import ConfigError

        raise ConfigError(f"estimate.{estimator}.anticipation must be >= 0, got {a}")
    df = panel.df
    rel = df["_rel"].to_numpy()
    untreated = ~(np.isfinite(rel) & (rel >= -a))
    if not untreated.any():
        raise DesignError(f"{estimator}: no untreated observations to fit the untreated-outcome model")
    ok = untreated.copy()
    seen = np.ones(len(df), dtype=bool)
    for c in panel.fe:  # unit, period and every extra effect must have an untreated observation
        lev_ok = np.zeros(df[c].max() + 1, dtype=bool)
        lev_ok[df.loc[untreated, c].to_numpy()] = True
        seen &= lev_ok[df[c].to_numpy()]
    ok |= seen
    if not ok.all():
        # only treated rows are dropped, so the untreated set (and its units/periods) is unchanged
        panel.drop(ok, "not_imputable")
        panel.recode()
        rel = panel.df["_rel"].to_numpy()
        untreated = ~(np.isfinite(rel) & (rel >= -a))
    df = panel.df
    if not (~untreated).any():
        raise DesignError(f"{estimator}: no treated observations left to impute")
    fe = _first_stage(panel, untreated)
    if panel.fe_cols:
        # with extra effects, levels seen among untreated rows are necessary but not sufficient:
        # drop (and count) treated rows whose counterfactual is not an estimable function
        est = np.ones(len(panel.df), dtype=bool)
        est[~untreated] = fe.estimable(~untreated)
        if not est.all():
            panel.drop(est, "not_imputable")
            panel.recode()
            rel = panel.df["_rel"].to_numpy()
            untreated = ~(np.isfinite(rel) & (rel >= -a))
            if not (~untreated).any():
                raise DesignError(f"{estimator}: no treated observations left to impute")
            fe = _first_stage(panel, untreated)
    df = panel.df
    y = df["_y"].to_numpy(dtype=float)
    a_hat, z_hat = fe.fit(y)
    u1 = y - fe.predict(a_hat, z_hat)[:, 0]
    return fe, u1, untreated


def _first_stage(panel: _panel.Panel, untreated: np.ndarray) -> TwoWayFE:
    df = panel.df
    X = df[panel.covariates].to_numpy(dtype=float) if panel.covariates else None
    return TwoWayFE(df["_unit"], df["_time"], df["_unit"].max() + 1, df["_time"].max() + 1, X=X, mask=untreated,
                    extra=panel.fe_codes())


def cluster_codes(panel: _panel.Panel, vcov, estimator: str) -> np.ndarray:
    vcov.require(estimator, SUPPORTED_VCOV)
    if vcov.kind == "hetero":
        return np.arange(len(panel.df))
    return panel.df[panel.cluster_cols[0]].to_numpy()


def gmm_vcov(fe: TwoWayFE, X2: np.ndarray, u1: np.ndarray, u2: np.ndarray, untreated: np.ndarray, clusters) -> np.ndarray:
    """Gardner (2021) GMM vcov of the second-stage coefficients (see module docstring)."""
    X2 = np.asarray(X2, dtype=float).reshape(len(u1), -1)
    k = X2.shape[1]
    # Gamma' = (X10'X10)^{-1} X1'X2 : first-stage solve with rhs built over all rows
    cD, cZ = fe.crossprod(X2, rows=np.ones(len(u1), dtype=bool))
    a, z = fe.solve(cD, cZ)
    v = np.zeros((len(u1), k))
    v[untreated] = fe.predict(a, z, rows=untreated)  # x10_it' Gamma'
    contrib = X2 * u2[:, None] - v * np.where(untreated, u1, 0.0)[:, None]
    codes = np.unique(np.asarray(clusters), return_inverse=True)[1]
    G = codes.max() + 1
    W = np.empty((G, k))
    for j in range(k):
        W[:, j] = np.bincount(codes, weights=contrib[:, j], minlength=G)
    XtX_inv = _linalg.ols(X2, np.zeros(X2.shape[0])).xtx_inv  # from the QR core (models.linalg)
    meat = W.T @ W
    return XtX_inv @ meat @ XtX_inv


def horizon_design(rel: np.ndarray, horizons: list[int]) -> np.ndarray:
    """Second-stage indicators 1{rel == h} (zero for never members)."""
    return _panel.event_dummies(rel, horizons)


def select_horizons(rel: np.ndarray, untreated: np.ndarray, option) -> list[int]:
    """Event times with treated observations, limited to ``option`` = [lo, hi] if given."""
    obs = np.unique(rel[~untreated & np.isfinite(rel)]).astype(int)
    if option is not None:
        lo, hi = int(option[0]), int(option[1])
        obs = obs[(obs >= lo) & (obs <= hi)]
    return [int(h) for h in obs]
