"""Two-period (2x2) panel difference-in-differences estimators with influence functions.

These are the building blocks of Callaway & Sant'Anna (2021) group-time ATTs: each
:math:`ATT(g,t)` is a 2x2 DiD of the change :math:`\\Delta Y = Y_{post} - Y_{base}` between a
treated cohort (:math:`D=1`) and a comparison group (:math:`D=0`). All estimators return the
point estimate and the influence function :math:`\\psi_i` scaled so that
:math:`\\hat\\theta - \\theta = n^{-1}\\sum_i \\psi_i + o_p(n^{-1/2})` (the convention of R's
DRDID package, Sant'Anna & Zhao 2020), evaluated on the ``n`` units of the 2x2 sample.

Estimators (names as in R DRDID; unit sampling weights are not supported, i.e. all
``i.weights = 1``):

* :func:`unconditional_did_panel` -- no covariates:
  :math:`\\widehat{ATT} = \\overline{\\Delta Y}_{D=1} - \\overline{\\Delta Y}_{D=0}`,
  :math:`\\psi_i = n\\,[D_i(\\Delta Y_i-\\bar\\mu_1)/n_1 - (1-D_i)(\\Delta Y_i-\\bar\\mu_0)/n_0]`.
  With an intercept-only design every estimator below reduces to this one (R did's
  ``xformla = ~1``), which the tests verify.
* :func:`reg_did_panel` -- outcome regression (Heckman, Ichimura & Todd 1997; DRDID
  ``reg_did_panel``): :math:`\\widehat{ATT} = \\bar{\\Delta Y}_{D=1} - \\overline{X'\\hat\\beta_0}_{D=1}`
  with :math:`\\hat\\beta_0` the OLS of :math:`\\Delta Y` on :math:`X` among controls.
* :func:`std_ipw_did_panel` -- normalised (Hajek) inverse probability weighting
  (Abadie 2005; DRDID ``std_ipw_did_panel``) with a logit propensity score.
* :func:`drdid_panel` -- the locally efficient doubly-robust estimator of Sant'Anna & Zhao
  (2020, eq. 3.1) with logit propensity score and OLS outcome regression (DRDID
  ``drdid_panel``; this is what R did's ``est_method = "dr"`` uses).
* :func:`drdid_imp_panel` -- the *improved* doubly-robust estimator of Sant'Anna & Zhao
  (2020, Section 3.1): propensity score by inverse probability tilting (Graham, Pinto &
  Egel 2012) and outcome regression by weighted least squares with weights
  :math:`p(X)/(1-p(X))`; its influence function is the simple form (the estimation
  effects of both nuisance fits vanish, Sant'Anna & Zhao 2020, Theorem 3.2).

As in DRDID, fitted propensity scores are capped at :math:`1-10^{-6}` and control units
with :math:`\\hat p(X) \\ge 0.995` get zero weight (``trim.level``).

Shared nuisance fits: the propensity score depends only on ``(D, X)`` and the outcome
regression's design only on ``(D, X)``; :class:`PScoreFit` and :class:`ControlOLS` hold what
can be reused across 2x2 cells that share the same sample and covariates (e.g. all
periods of one cohort against the never-treated), so a caller fits them once.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .. import linalg as _linalg
from ..errors import DesignError

TRIM_LEVEL = 0.995
PS_CAP = 1.0 - 1e-6


@dataclass
class DiD2x2:
    """Point estimate and influence function (length = units in the 2x2 sample)."""

    att: float
    inf_func: np.ndarray


# ---------------------------------------------------------------------------------------
# nuisance fits
# ---------------------------------------------------------------------------------------


def logit_irls(D: np.ndarray, X: np.ndarray, *, tol: float = 1e-12, max_iter: int = 100) -> np.ndarray:
    r"""Logit MLE by Newton-Raphson / IRLS (no intercept added: ``X`` carries it).

    Converges when the deviance change of the last Newton step, the Newton decrement
    :math:`g'H^{-1}g` (Boyd & Vandenberghe 2004, §9.5.1; the deviance is :math:`-2\ell`, so
    a step lowers it by the decrement up to third-order terms), is below ``tol`` relative
    to the starting deviance (tighter than R's glm default 1e-8 so that the fitted scores
    agree with any converged implementation to ~1e-10; no deviance pass per iteration).
    Raises :class:`DesignError` on (quasi-)separation or a singular Hessian.
    """
    n, k = X.shape
    beta = np.zeros(k)
    # start from beta = 0 (all scores 1/2), or, when the first column is the intercept, from
    # the intercept-only MLE logit(mean D) (one Newton step fewer; same optimum)
    mD = float(D.mean())
    if 0.0 < mD < 1.0 and np.all(X[:, 0] == 1.0):
        beta[0] = np.log(mD / (1.0 - mD))
    eta = X @ beta
    dev0 = 2.0 * float(np.sum(np.logaddexp(0.0, eta) - D * eta))  # binomial deviance, computed stably
    for it in range(max_iter):
        # eta = X beta of the current iterate (computed at the end of the previous step)
        with np.errstate(over="ignore"):  # exp(-eta) = inf under separation: p = 0, as it should
            p = 1.0 / (1.0 + np.exp(-eta))
        w = p * (1.0 - p)
        grad = X.T @ (D - p)
        H = X.T @ (X * w[:, None])
        try:
            step = np.linalg.solve(H, grad)
        except np.linalg.LinAlgError as exc:
            raise DesignError("propensity-score logit: singular Hessian (collinear covariates or no variation)") from exc
        beta = beta + step
        eta = X @ beta
        if not np.isfinite(beta).all():
            raise DesignError("propensity-score logit diverged (separation?)")
        # at least two steps, as before: the first from the start values is never the last
        if it >= 1 and float(grad @ step) <= tol * (abs(dev0) + 0.1):
            break
    else:
        raise DesignError("propensity-score logit did not converge in 100 Newton steps (separation?)")
    return beta


@dataclass
class PScoreFit:
    """Logit propensity score of ``D`` on ``X`` and its asymptotic linear representation.

    ``ps``: fitted scores capped at 1-1e-6; ``trim``: DRDID trimming indicator (controls with
    ps >= 0.995 dropped); ``alr``: n x k matrix ``score_i' (X'WX/n)^{-1}`` (DRDID
    ``asy.lin.rep.ps``), which does not depend on the outcome.
    """

    ps: np.ndarray
    trim: np.ndarray
    alr: np.ndarray
    max_raw: float = 0.0  # largest uncapped fitted score (R did's overlap guard: >= 0.999 fails)

    @classmethod
    def fit(cls, D: np.ndarray, X: np.ndarray) -> "PScoreFit":
        n = D.shape[0]
        beta = logit_irls(D, X)
        ps = 1.0 / (1.0 + np.exp(-(X @ beta)))
        max_raw = float(ps.max())
        ps = np.minimum(ps, PS_CAP)
        trim = np.where(D == 1, ps < 1.01, ps < TRIM_LEVEL)
        W = ps * (1.0 - ps)
        H = X.T @ (X * W[:, None])
        # (X'WX/n)^{-1} by the Cholesky of the Jacobi-scaled Hessian in models.linalg
        # (symmetry, definiteness and conditioning checked), not a general-purpose inverse
        try:
            hess_inv = _linalg.solve_spd(H, np.eye(H.shape[0])) * n
        except DesignError as exc:
            raise DesignError(f"propensity-score logit: Hessian not invertible ({exc})") from None
        score = (D - ps)[:, None] * X
        return cls(ps=ps, trim=trim, alr=score @ hess_inv, max_raw=max_raw)


@dataclass
class ControlOLS:
    """OLS of the outcome change on ``X`` among controls (D = 0), factorised once.

    ``XpX_inv`` is :math:`(n^{-1}\\sum_i (1-D_i) X_i X_i')^{-1}` (DRDID's ``XpX.inv``).
    :meth:`coef` solves for any outcome change, so all periods sharing one design reuse
    the factorisation (one solve with many right-hand sides).
    """

    D: np.ndarray
    X: np.ndarray
    XpX_inv: np.ndarray

    @classmethod
    def fit(cls, D: np.ndarray, X: np.ndarray) -> "ControlOLS":
        n = D.shape[0]
        c = D == 0
        Xc = X[c]
        if Xc.size == 0:
            raise DesignError("outcome regression: the control units' covariate matrix is singular")
        # (Xc'Xc)^{-1} from the pivoted QR of Xc (models.linalg, NIST-checked), never by
        # inverting the cross-product; the singularity threshold stays kappa(X'X) <= 1/eps
        try:
            fit = _linalg.ols(Xc, np.zeros(Xc.shape[0]), max_cond=1.0 / np.sqrt(np.finfo(float).eps))
        except DesignError as exc:
            raise DesignError(f"outcome regression: the control units' covariate matrix is singular ({exc})") from None
        return cls(D=D, X=X, XpX_inv=fit.xtx_inv * n)

    def coef(self, dY: np.ndarray) -> np.ndarray:
        """Coefficients for an outcome change ``dY`` (n,) or several at once (n, J): one
        product with the control-masked design (no copy of the controls' rows of dY)."""
        n = self.D.shape[0]
        Xc = self.__dict__.get("_Xc")
        if Xc is None:
            Xc = self.__dict__["_Xc"] = self.X * (self.D == 0)[:, None]
        return self.XpX_inv @ (Xc.T @ dY / n)


def _prepare(y1, y0, D, X):
    D = np.asarray(D, dtype=float)
    dY = np.asarray(y1, dtype=float) - np.asarray(y0, dtype=float)
    X = np.ones((D.shape[0], 1)) if X is None else np.asarray(X, dtype=float)
    if X.ndim == 1:
        X = X[:, None]
    return dY, D, X


# ---------------------------------------------------------------------------------------
# estimators
# ---------------------------------------------------------------------------------------


def unconditional_did_panel(y1, y0, D) -> DiD2x2:
    """Difference in mean outcome changes, with its exact influence function."""
    dY, D, _ = _prepare(y1, y0, D, None)
    n = D.shape[0]
    t = D == 1
    n1 = int(t.sum())
    n0 = n - n1
    if n1 == 0 or n0 == 0:
        raise DesignError("2x2 DiD needs both treated and comparison units")
    mu1 = dY[t].mean()
    mu0 = dY[~t].mean()
    inf = np.where(t, n * (dY - mu1) / n1, -n * (dY - mu0) / n0)
    return DiD2x2(att=float(mu1 - mu0), inf_func=inf)


def _batch(y1, y0, D, X):
    """dY as an (n, J) matrix: the 2x2 estimators below take J outcome changes that share one
    sample, design and nuisance fits (all periods of a cohort against the same controls) and
    return J estimates and an (n, J) influence-function matrix; one cell is J = 1."""
    dY, D, X = _prepare(y1, y0, D, X)
    return (dY[:, None] if dY.ndim == 1 else dY), D, X


def _out(att: np.ndarray, inf: np.ndarray, single: bool):
    if single:
        return DiD2x2(att=float(att[0]), inf_func=inf[:, 0])
    return att, inf


def reg_did_panel(y1, y0, D, X, *, ols: ControlOLS | None = None):
    """Outcome-regression DiD (DRDID ``reg_did_panel``). With (n, J) outcomes, returns
    ``(att (J,), inf (n, J))`` (see :func:`_batch`); with vectors, a :class:`DiD2x2`."""
    single = np.ndim(y1) == 1
    dY, D, X = _batch(y1, y0, D, X)
    ols = ols or ControlOLS.fit(D, X)
    n = D.shape[0]
    out_delta = X @ ols.coef(dY)  # (n, J)
    w_treat = D
    mean_wt = w_treat.mean()
    eta_treat = (w_treat @ dY) / n / mean_wt
    eta_cont = (w_treat @ out_delta) / n / mean_wt
    att = eta_treat - eta_cont
    M1 = (w_treat[:, None] * X).mean(axis=0)
    # asy.lin.rep.ols %*% M1 = (1-D)(dY - X b) * (X XpX_inv M1)
    lin_ols = ((1.0 - D) * (X @ (ols.XpX_inv @ M1)))[:, None] * (dY - out_delta)
    inf_treat = w_treat[:, None] * (dY - eta_treat) / mean_wt
    inf_cont = (w_treat[:, None] * (out_delta - eta_cont) + lin_ols) / mean_wt
    return _out(att, inf_treat - inf_cont, single)


def std_ipw_did_panel(y1, y0, D, X, *, ps: PScoreFit | None = None):
    """Normalised IPW DiD (Abadie 2005; DRDID ``std_ipw_did_panel``); batched as
    :func:`reg_did_panel`."""
    single = np.ndim(y1) == 1
    dY, D, X = _batch(y1, y0, D, X)
    ps = ps or PScoreFit.fit(D, X)
    n = D.shape[0]
    p = ps.ps
    w_treat = ps.trim * D
    w_cont = ps.trim * p * (1.0 - D) / (1.0 - p)
    mt, mc = w_treat.mean(), w_cont.mean()
    eta_treat = (w_treat @ dY) / n / mt
    eta_cont = (w_cont @ dY) / n / mc
    att = eta_treat - eta_cont
    inf_treat = w_treat[:, None] * (dY - eta_treat) / mt
    M2 = X.T @ (w_cont[:, None] * (dY - eta_cont)) / n  # (k, J)
    inf_cont = (w_cont[:, None] * (dY - eta_cont) + ps.alr @ M2) / mc
    return _out(att, inf_treat - inf_cont, single)


def drdid_panel(y1, y0, D, X, *, ps: PScoreFit | None = None, ols: ControlOLS | None = None, scale: float = 1.0):
    """Locally efficient doubly-robust DiD (Sant'Anna & Zhao 2020; DRDID ``drdid_panel``);
    batched as :func:`reg_did_panel`. ``scale`` multiplies the returned influence function
    (att_gt's :math:`n/n_j`; folded into the assembly so no extra (n, J) pass is needed)."""
    single = np.ndim(y1) == 1
    dY, D, X = _batch(y1, y0, D, X)
    ps = ps or PScoreFit.fit(D, X)
    ols = ols or ControlOLS.fit(D, X)
    n = D.shape[0]
    p = ps.ps
    resid = X @ ols.coef(dY)  # (n, J)
    np.subtract(dY, resid, out=resid)
    w_treat = ps.trim * D
    w_cont = ps.trim * p * (1.0 - D) / (1.0 - p)
    mt, mc = w_treat.mean(), w_cont.mean()
    eta_treat = (w_treat @ resid) / n / mt
    eta_cont = (w_cont @ resid) / n / mc
    att = eta_treat - eta_cont
    # asy.lin.rep.wols = (1-D) resid X XpX_inv; its products with M1 and M3 do not depend on
    # the outcome, so they are vectors shared by all J columns
    XA = X @ ols.XpX_inv
    M1 = (w_treat[:, None] * X).mean(axis=0)
    M3 = (w_cont[:, None] * X).mean(axis=0)
    lin1 = (1.0 - D) * (XA @ M1)
    lin3 = (1.0 - D) * (XA @ M3)
    # M2 = X'(w_c (resid - eta_c))/n, expanded so that no (n, J) temporary is formed
    M2 = ((X * w_cont[:, None]).T @ resid - np.outer(X.T @ w_cont, eta_cont)) / n  # (k, J)
    # inf_treat - inf_cont, with
    #   inf_treat = [w_t (resid - eta_t) - lin1 resid] / mt
    #   inf_cont  = [w_c (resid - eta_c) + alr M2 - lin3 resid] / mc
    # = resid * a - [w_t/mt, -w_c/mc, alr] @ [eta_t; eta_c; M2/mc]: one elementwise pass and
    # one (n, k+2) x (k+2, J) product
    a = scale * ((w_treat - lin1) / mt - (w_cont - lin3) / mc)
    L = np.column_stack([w_treat / mt, -w_cont / mc, ps.alr])
    R = np.vstack([eta_treat[None, :], eta_cont[None, :], M2 / mc]) * (-scale)
    # column-major: the caller (att_gt) copies each column into its influence-function matrix
    inf = np.asfortranarray(L @ R)
    inf += resid * a[:, None]
    return _out(att, inf, single)


def pscore_ipt(D: np.ndarray, X: np.ndarray, *, tol: float = 1e-12, max_iter: int = 200) -> np.ndarray:
    """Inverse-probability-tilting propensity score (Graham, Pinto & Egel 2012), as used
    by Sant'Anna & Zhao's improved DR estimator: minimise the convex loss
    :math:`n^{-1}\\sum_i [D_i X_i'\\gamma - (1-D_i)\\exp(X_i'\\gamma)]` with sign flipped,
    i.e. solve the calibration equations
    :math:`\\sum_i [D_i - (1-D_i)\\exp(X_i'\\gamma)] X_i = 0` (controls reweighted by the
    odds reproduce the treated covariate totals), by damped Newton steps.
    Returns fitted :math:`p = \\operatorname{expit}(X'\\gamma)`.
    """
    n, k = X.shape
    # start from the logit fit (as DRDID does)
    gamma = logit_irls(D, X)
    c = D == 0

    def loss(g):
        e = X @ g
        return -np.mean(np.where(c, -np.exp(e), e))

    f = loss(gamma)
    for _ in range(max_iter):
        e = X @ gamma
        ex = np.where(c, np.exp(e), 0.0)
        grad = -(X.T @ (D - ex)) / n
        H = (X.T @ (X * ex[:, None])) / n
        step = np.linalg.solve(H, grad)
        lam = 1.0
        while True:
            g_new = gamma - lam * step
            f_new = loss(g_new)
            if f_new <= f + 1e-14 * abs(f) or lam < 1e-8:
                break
            lam /= 2
        gamma = g_new
        if abs(f - f_new) <= tol * (abs(f) + 1e-10) and np.max(np.abs(grad)) < 1e-10:
            f = f_new
            break
        f = f_new
    return 1.0 / (1.0 + np.exp(-(X @ gamma)))


def drdid_imp_panel(y1, y0, D, X) -> DiD2x2:
    """Improved (locally efficient, doubly robust) DiD of Sant'Anna & Zhao (2020), DRDID
    ``drdid_imp_panel``: IPT propensity score, WLS outcome regression among controls with
    weights :math:`p/(1-p)`, and

    .. math:: \\widehat{ATT} = \\frac{\\sum_i (D_i - (1-D_i)\\hat p_i/(1-\\hat p_i))(\\Delta Y_i - X_i'\\hat\\beta)}{\\sum_i D_i},
       \\qquad \\psi_i = \\frac{(D_i - (1-D_i)\\hat p_i/(1-\\hat p_i))(\\Delta Y_i - X_i'\\hat\\beta) - D_i\\widehat{ATT}}{\\bar D}.
    """
    dY, D, X = _prepare(y1, y0, D, X)
    p = np.minimum(pscore_ipt(D, X), PS_CAP)
    trim = np.where(D == 1, p < 1.01, p < TRIM_LEVEL)
    c = (D == 0) & trim
    w = p[c] / (1.0 - p[c])
    Xc = X[c]
    beta = _linalg.ols(Xc, dY[c], w).beta  # weighted LS by QR (models.linalg)
    resid = dY - X @ beta
    summand = trim * (D - (1.0 - D) * p / (1.0 - p)) * resid
    mD = D.mean()
    att = summand.mean() / mD
    inf = trim * (summand - D * att) / mD
    return DiD2x2(att=float(att), inf_func=inf)


ESTIMATORS = {
    "reg": reg_did_panel,
    "ipw": std_ipw_did_panel,
    "dr": drdid_panel,
}
