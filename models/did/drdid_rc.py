"""Two-period difference-in-differences estimators for repeated cross sections (rows, not
units), with influence functions: the building blocks of Callaway & Sant'Anna (2021)
group-time ATTs on an *unbalanced* panel (``allow_unbalanced_panel=True``; R did then
treats the rows of the two periods of each 2x2 cell as repeated cross sections and adds
the rows' influence functions up per unit, see :func:`models.did.att_gt.att_gt`).

Data of one 2x2 cell: rows :math:`i=1..N` with outcome :math:`Y_i`, post-period indicator
:math:`T_i` (1 = the cell's period t, 0 = its base period), group indicator :math:`D_i`
(1 = the treated cohort) and covariates :math:`X_i` (with an intercept; each row's own
values). All estimators return the point estimate and the influence function
:math:`\\psi_i` of each row, scaled so that :math:`\\hat\\theta-\\theta=N^{-1}\\sum_i\\psi_i`
(R DRDID's convention). Unit sampling weights are not supported (all ``i.weights = 1``).

* :func:`reg_did_rc` -- outcome regression (Heckman, Ichimura & Todd 1997; DRDID
  ``reg_did_rc``): OLS of :math:`Y` on :math:`X` among controls in each period,
  :math:`\\hat\\mu_{0,t}(x)`, and

  .. math:: \\widehat{ATT} = \\bar Y_{D=1,T=1} - \\bar Y_{D=1,T=0}
            - \\overline{\\big(\\hat\\mu_{0,1}(X)-\\hat\\mu_{0,0}(X)\\big)}_{D=1}.

* :func:`std_ipw_did_rc` -- normalised (Hajek) IPW (Abadie 2005; DRDID
  ``std_ipw_did_rc``) with a logit propensity score fitted on the pooled rows:
  :math:`\\widehat{ATT} = \\sum_{j\\in\\{1,0\\}} (-1)^{1-j}\\big[\\bar Y^{w}_{D=1,T=j}
  - \\bar Y^{w}_{D=0,T=j}\\big]`, control rows weighted by :math:`\\hat p/(1-\\hat p)`.
* :func:`drdid_rc` -- the locally efficient doubly-robust estimator of Sant'Anna & Zhao
  (2020, eq. 3.4), "traditional" variant (logit score, OLS outcome regressions for
  controls and treated in both periods; DRDID ``drdid_rc``; what R did's
  ``est_method = "dr"`` calls for repeated cross sections):

  .. math:: \\tau^{dr,lc} = \\tau^{dr,rc}_1 + \\Big(\\mathbb E_n\\Big[\\tfrac{D}{\\bar D}
            (\\hat\\mu_{1,1}-\\hat\\mu_{0,1})\\Big] - \\mathbb E_n\\Big[\\tfrac{DT}{\\overline{DT}}
            (\\hat\\mu_{1,1}-\\hat\\mu_{0,1})\\Big]\\Big) - \\Big(\\text{same for } T=0\\Big).

The influence functions include the estimation effects of the logit (its asymptotic
linear representation :math:`\\text{score}_i'(X'WX/N)^{-1}`) and of each OLS fit
(:math:`e_iX_i'(X'X/N)^{-1}` on its subsample), as in DRDID. As in DRDID, fitted scores
are capped at :math:`1-10^{-6}` and control rows with :math:`\\hat p\\ge 0.995` get zero
weight (``trim.level``). With an intercept-only :math:`X` all three estimators equal the
four-means difference :math:`(\\bar Y_{11}-\\bar Y_{10})-(\\bar Y_{01}-\\bar Y_{00})` (tested).

References (tests/test_att_gt_unbalanced.py). The influence functions are checked against
the truth they approximate: the exact empirical influence function is the derivative of the
estimate with respect to the observation weights, :math:`\\psi_i = N\\,\\partial\\hat\\theta(w)/\\partial w_i`,
and the tests compare :math:`N^{-1}\\sum_i v_i\\psi_i` with a central finite difference of the
weighted estimator in random directions :math:`v` (to 1e-7). ``reg_did_rc`` and
``std_ipw_did_rc`` equal R DRDID 1.2 (through its Python port moderndid 0.2.0) to 1e-10.
``drdid_rc`` equals csdid 0.4.3 (whose port fixes the sign, and matches the finite
difference) and differs from R DRDID / moderndid in the estimation effect of the two
base-period outcome regressions: DRDID's ``drdid_rc.R`` adds ``inf.treat.or.pre`` and
``inf.cont.or.pre`` where the derivative of the subtracted base-period terms requires a
minus. Point estimates are identical; the SEs differ in finite samples (on mpdta with 10 %
of the rows removed by up to 2e-4 in an ATT(g,t) SE, 7e-5 in the simple aggregation), and
only ours and csdid's match the finite-difference derivative. The difference vanishes
asymptotically when the propensity score is correctly specified (the two terms then
cancel), which is why it went unnoticed; we follow the derivative.
"""

from __future__ import annotations

import numpy as np

from .. import linalg as _linalg
from ..errors import DesignError
from .drdid import DiD2x2, PScoreFit

__all__ = ["reg_did_rc", "std_ipw_did_rc", "drdid_rc"]


def _ols_alr(y: np.ndarray, X: np.ndarray, rows: np.ndarray, N: int, what: str) -> tuple[np.ndarray, np.ndarray]:
    """OLS of ``y`` on ``X`` over the rows where ``rows`` is true: fitted values on *all*
    rows and the asymptotic linear representation (N x k, zero off the subsample),
    :math:`1\\{rows\\}e_iX_i'(X_s'X_s/N)^{-1}`."""
    Xs = X[rows]
    if Xs.shape[0] < X.shape[1]:
        raise DesignError(f"{what}: {Xs.shape[0]} rows for {X.shape[1]} regression coefficients")
    G = Xs.T @ Xs
    try:
        beta = _linalg.solve_spd(G, Xs.T @ y[rows])
        Ginv = _linalg.solve_spd(G / N, np.eye(G.shape[0]))
    except DesignError as exc:
        raise DesignError(f"{what}: singular design ({exc})") from None
    fitted = X @ beta
    alr = np.zeros_like(X)
    alr[rows] = ((y[rows] - fitted[rows])[:, None] * Xs) @ Ginv
    return fitted, alr


def _check(post: np.ndarray, D: np.ndarray) -> None:
    cells = {"treated, post period": (D == 1) & (post == 1), "treated, base period": (D == 1) & (post == 0),
             "comparison, post period": (D == 0) & (post == 1), "comparison, base period": (D == 0) & (post == 0)}
    empty = [k for k, m in cells.items() if not m.any()]
    if empty:
        raise DesignError(f"no rows for: {', '.join(empty)}")


def _hajek(w: np.ndarray, v: np.ndarray) -> tuple[float, np.ndarray, float]:
    """Weighted mean of ``v`` with weights ``w`` (mean over all N rows in the denominator,
    as DRDID), its influence function and the mean weight."""
    mw = w.mean()
    eta = w * v / mw
    att = eta.mean()
    return float(att), eta - w * att / mw, float(mw)


def reg_did_rc(y: np.ndarray, post: np.ndarray, D: np.ndarray, X: np.ndarray) -> DiD2x2:
    """Outcome-regression DiD for repeated cross sections (DRDID ``reg_did_rc``)."""
    _check(post, D)
    N = y.size
    c0, c1 = (D == 0) & (post == 0), (D == 0) & (post == 1)
    mu0, alr0 = _ols_alr(y, X, c0, N, "outcome regression (comparison, base period)")
    mu1, alr1 = _ols_alr(y, X, c1, N, "outcome regression (comparison, post period)")
    w_pre, w_post, w_d = D * (1 - post), D * post, D.astype(float)
    a_post, if_post, _ = _hajek(w_post, y)
    a_pre, if_pre, _ = _hajek(w_pre, y)
    a_c, if_c, m_d = _hajek(w_d, mu1 - mu0)
    dmom = (w_d[:, None] * X).mean(axis=0)
    if_c = if_c + (alr1 - alr0) @ dmom / m_d
    return DiD2x2(att=a_post - a_pre - a_c, inf_func=(if_post - if_pre) - if_c)


def std_ipw_did_rc(y: np.ndarray, post: np.ndarray, D: np.ndarray, X: np.ndarray, ps: PScoreFit | None = None) -> DiD2x2:
    """Normalised IPW DiD for repeated cross sections (DRDID ``std_ipw_did_rc``)."""
    _check(post, D)
    ps = PScoreFit.fit(D.astype(float), X) if ps is None else ps
    p, keep = ps.ps, ps.trim.astype(float)
    odds = p / (1.0 - p)
    w_tpre, w_tpost = keep * D * (1 - post), keep * D * post
    w_cpre, w_cpost = keep * odds * (1 - D) * (1 - post), keep * odds * (1 - D) * post
    a_tpost, if_tpost, _ = _hajek(w_tpost, y)
    a_tpre, if_tpre, _ = _hajek(w_tpre, y)
    a_cpost, if_cpost, m_cpost = _hajek(w_cpost, y)
    a_cpre, if_cpre, m_cpre = _hajek(w_cpre, y)
    m_post = ((w_cpost * (y - a_cpost))[:, None] * X).mean(axis=0) / m_cpost
    m_pre = ((w_cpre * (y - a_cpre))[:, None] * X).mean(axis=0) / m_cpre
    inf_c = (if_cpost - if_cpre) + ps.alr @ (m_post - m_pre)
    return DiD2x2(att=(a_tpost - a_tpre) - (a_cpost - a_cpre), inf_func=(if_tpost - if_tpre) - inf_c)


def drdid_rc(y: np.ndarray, post: np.ndarray, D: np.ndarray, X: np.ndarray, ps: PScoreFit | None = None) -> DiD2x2:
    """Locally efficient doubly-robust DiD for repeated cross sections (DRDID ``drdid_rc``)."""
    _check(post, D)
    N = y.size
    ps = PScoreFit.fit(D.astype(float), X) if ps is None else ps
    p, keep = ps.ps, ps.trim.astype(float)
    odds = p / (1.0 - p)
    mu_c0, alr_c0 = _ols_alr(y, X, (D == 0) & (post == 0), N, "outcome regression (comparison, base period)")
    mu_c1, alr_c1 = _ols_alr(y, X, (D == 0) & (post == 1), N, "outcome regression (comparison, post period)")
    mu_t0, alr_t0 = _ols_alr(y, X, (D == 1) & (post == 0), N, "outcome regression (treated, base period)")
    mu_t1, alr_t1 = _ols_alr(y, X, (D == 1) & (post == 1), N, "outcome regression (treated, post period)")
    mu_c = np.where(post == 1, mu_c1, mu_c0)
    r = y - mu_c
    w_tpre, w_tpost = keep * D * (1 - post), keep * D * post
    w_cpre, w_cpost = keep * odds * (1 - D) * (1 - post), keep * odds * (1 - D) * post
    w_d, w_dt1, w_dt0 = keep * D, keep * D * post, keep * D * (1 - post)

    a_tpre, if_tpre, m_tpre = _hajek(w_tpre, r)
    a_tpost, if_tpost, m_tpost = _hajek(w_tpost, r)
    a_cpre, if_cpre, m_cpre = _hajek(w_cpre, r)
    a_cpost, if_cpost, m_cpost = _hajek(w_cpost, r)
    a_dpost, if_dpost, m_d = _hajek(w_d, mu_t1 - mu_c1)
    a_dt1, if_dt1, m_dt1 = _hajek(w_dt1, mu_t1 - mu_c1)
    a_dpre, if_dpre, _ = _hajek(w_d, mu_t0 - mu_c0)
    a_dt0, if_dt0, m_dt0 = _hajek(w_dt0, mu_t0 - mu_c0)
    att = (a_tpost - a_tpre) - (a_cpost - a_cpre) + (a_dpost - a_dt1) - (a_dpre - a_dt0)

    def xmean(w):
        return (w[:, None] * X).mean(axis=0)

    # treated part: leading terms + estimation effect of the comparison regressions. The
    # base-period term enters with a minus (it belongs to att_treat_pre, which is
    # subtracted); R DRDID's drdid_rc adds it (``inf.treat.or.post + inf.treat.or.pre``,
    # likewise for the comparison part), a sign slip that vanishes asymptotically when the
    # score is correct but not in finite samples -- see the module docstring
    inf_treat = (if_tpost - if_tpre) + alr_c1 @ (-xmean(w_tpost * post) / m_tpost) - alr_c0 @ (-xmean(w_tpre * (1 - post)) / m_tpre)
    # comparison part: leading terms + propensity score + comparison regressions
    m_ps = xmean(w_cpost * (r - a_cpost)) / m_cpost - xmean(w_cpre * (r - a_cpre)) / m_cpre
    inf_cont = ((if_cpost - if_cpre) + ps.alr @ m_ps
                + alr_c1 @ (-xmean(w_cpost * post) / m_cpost) - alr_c0 @ (-xmean(w_cpre * (1 - post)) / m_cpre))
    # local-efficiency adjustment and the estimation effect of all four regressions in it
    inf_eff = (if_dpost - if_dt1) - (if_dpre - if_dt0)
    mom_post = xmean(w_d / m_d - w_dt1 / m_dt1)
    mom_pre = xmean(w_d / m_d - w_dt0 / m_dt0)
    inf_or = (alr_t1 - alr_c1) @ mom_post - (alr_t0 - alr_c0) @ mom_pre
    return DiD2x2(att=float(att), inf_func=inf_treat - inf_cont + inf_eff + inf_or)
