"""Power of pre-trend tests and the distortion from pre-testing (Roth 2022, "Pretest with
Caution: Event-Study Estimates after Testing for Parallel Trends", AER: Insights 4(3)).

Setting: event-study coefficients ``beta_hat ~ N(tau + delta, Sigma)`` with ``tau = 0`` in
the pre periods. A hypothesised violation ``delta`` (e.g. linear,
``delta_t = slope * (t - reference_period)``) is detected by the pre-test with

* ``test="individual"`` (Roth's default, "any pre-period coefficient significant"): reject
  unless ``|beta_j| <= z_{1-alpha/2} * se_j`` for all pre periods j. Power
  ``1 - P(beta_pre in rectangle)``, a multivariate normal rectangle probability (Genz's
  algorithm, scipy, to 1e-7; R pretrends uses mvtnorm::pmvnorm, same algorithm, to 1e-3).
* ``test="joint"``: Wald test ``beta_pre' Sigma_pre^-1 beta_pre > chi2_{k, 1-alpha}``;
  power is the non-central chi-square tail with non-centrality ``delta' Sigma^-1 delta``.

Conditional on passing the individual pre-test, ``E[beta_pre | pass]`` is the mean of a
truncated normal, computed with Tallis' (1961) gradient identity
``E[X | X in R] = mu + Sigma grad_mu log P(X in R)``, whose partial derivatives are
boundary integrals (normal densities at the faces times (k-1)-dimensional conditional
rectangle probabilities). The post-period mean follows from joint normality:
``E[beta_post | pass] = delta_post + Sigma_post,pre Sigma_pre^-1 (E[beta_pre | pass] - delta_pre)``
(Roth 2022, eq. 3; R pretrends ``meanBetaPost_NIS``); with ``tau = 0`` this is the bias of
the post-period estimates among samples that pass the pre-test.

Partial: the conditional bias is computed for the individual-significance pre-test only
(as in Roth's package); for the joint Wald pre-test only power is computed.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats

from models.errors import BadInputError

__all__ = ["pretest_power", "slope_for_power", "truncated_mean_rectangle", "pretrends"]

_CDF_KW = {"abseps": 1e-7, "releps": 1e-7}


def _rect_prob(mean, cov, lower, upper, seed=0) -> float:
    mean = np.atleast_1d(np.asarray(mean, dtype=float))
    cov = np.atleast_2d(np.asarray(cov, dtype=float))
    if mean.size == 0:
        return 1.0
    if mean.size == 1:
        sd = np.sqrt(cov[0, 0])
        return float(stats.norm.cdf((upper[0] - mean[0]) / sd) - stats.norm.cdf((lower[0] - mean[0]) / sd))
    return float(
        stats.multivariate_normal.cdf(
            upper, mean=mean, cov=cov, lower_limit=lower, maxpts=200_000 * mean.size, rng=seed, **_CDF_KW
        )
    )


def _check(sigma_pre, delta_pre):
    S = np.atleast_2d(np.asarray(sigma_pre, dtype=float))
    d = np.atleast_1d(np.asarray(delta_pre, dtype=float))
    problems = []
    if S.shape != (d.size, d.size):
        problems.append(f"sigma_pre has shape {S.shape}, delta_pre has {d.size} elements")
    elif not np.allclose(S, S.T):
        problems.append("sigma_pre is not symmetric")
    elif np.any(np.linalg.eigvalsh(S) <= 0):
        problems.append("sigma_pre is not positive definite")
    if problems:
        raise BadInputError("pretrend power: bad inputs", problems=problems)
    return S, d


def pretest_power(sigma_pre, delta_pre, alpha: float = 0.05, test: str = "individual", seed: int = 0) -> float:
    """Probability that the pre-test rejects when the pre-period means are ``delta_pre``."""
    S, d = _check(sigma_pre, delta_pre)
    if test == "individual":
        c = stats.norm.ppf(1 - alpha / 2) * np.sqrt(np.diag(S))
        return 1.0 - _rect_prob(d, S, -c, c, seed)
    if test == "joint":
        k = d.size
        lam = float(d @ np.linalg.solve(S, d))
        return float(stats.ncx2.sf(stats.chi2.ppf(1 - alpha, k), k, lam)) if lam > 0 else alpha
    raise ValueError("test must be 'individual' or 'joint'")


def slope_for_power(
    sigma_pre,
    t_pre,
    target_power: float = 0.5,
    reference_period: float = -1,
    alpha: float = 0.05,
    test: str = "individual",
    seed: int = 0,
) -> float:
    """Slope of a linear violation ``delta_t = slope * (t - reference_period)`` the pre-test
    detects with probability ``target_power`` (R pretrends ``slope_for_power``: root on
    ``[0, 8 * max se]``)."""
    S = np.atleast_2d(np.asarray(sigma_pre, dtype=float))
    rel = np.asarray(t_pre, dtype=float) - reference_period
    if not alpha < target_power < 1:
        raise ValueError("target_power must lie in (alpha, 1)")

    def f(slope):
        return pretest_power(S, slope * rel, alpha, test, seed) - target_power

    hi = 8 * np.sqrt(np.diag(S)).max()
    while f(hi) < 0:
        hi *= 2
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-12))


def truncated_mean_rectangle(mean, cov, lower, upper, seed: int = 0) -> np.ndarray:
    """E[X | lower <= X <= upper] for X ~ N(mean, cov) (Tallis 1961 gradient identity)."""
    mu = np.atleast_1d(np.asarray(mean, dtype=float))
    S = np.atleast_2d(np.asarray(cov, dtype=float))
    a = np.asarray(lower, dtype=float)
    b = np.asarray(upper, dtype=float)
    k = mu.size
    P = _rect_prob(mu, S, a, b, seed)
    grad = np.zeros(k)
    for i in range(k):
        sd_i = np.sqrt(S[i, i])
        others = [j for j in range(k) if j != i]
        for bound, sign in ((a[i], 1.0), (b[i], -1.0)):
            if not np.isfinite(bound):
                continue
            dens = stats.norm.pdf(bound, mu[i], sd_i)
            if others:
                s_oi = S[others, i]
                m_c = mu[others] + s_oi / S[i, i] * (bound - mu[i])
                S_c = S[np.ix_(others, others)] - np.outer(s_oi, s_oi) / S[i, i]
                pc = _rect_prob(m_c, S_c, a[others], b[others], seed)
            else:
                pc = 1.0
            grad[i] += sign * dens * pc
    return mu + S @ grad / P


def pretrends(
    betahat,
    sigma,
    t_vec,
    deltatrue,
    reference_period: float = -1,
    alpha: float = 0.05,
    seed: int = 0,
) -> dict:
    """Roth's ``pretrends()``: power of the pre-test against ``deltatrue``, Bayes factor,
    likelihood ratio, and the expected event-study after passing the pre-test.

    Returns a dict with ``power`` (individual test), ``power_joint`` (Wald test),
    ``bayes_factor`` = P(pass | deltatrue) / P(pass | parallel trends),
    ``likelihood_ratio`` = N(beta_pre; deltatrue_pre) / N(beta_pre; 0), and
    ``event_plot``: a DataFrame ``t, betahat, deltatrue, se, mean_after_pretesting,
    bias_after_pretesting`` (post periods only; the reference period added with zeros).
    """
    b = np.asarray(betahat, dtype=float)
    S = np.asarray(sigma, dtype=float)
    t = np.asarray(t_vec, dtype=float)
    d = np.asarray(deltatrue, dtype=float)
    problems = []
    if not (b.size == t.size == d.size == S.shape[0] == S.shape[1]):
        problems.append(f"betahat {b.size}, t_vec {t.size}, deltatrue {d.size}, sigma {S.shape}: must conform")
    if problems:
        raise BadInputError("pretrends: bad inputs", problems=problems)
    pre = np.flatnonzero(t < reference_period)
    post = np.flatnonzero(t > reference_period)
    if pre.size == 0:
        raise BadInputError("pretrends: no pre-periods (t < reference_period)")
    Sp = S[np.ix_(pre, pre)]
    power = pretest_power(Sp, d[pre], alpha, "individual", seed)
    power0 = pretest_power(Sp, np.zeros(pre.size), alpha, "individual", seed)
    power_joint = pretest_power(Sp, d[pre], alpha, "joint")
    lik = stats.multivariate_normal.pdf(b[pre], mean=d[pre], cov=Sp)
    lik0 = stats.multivariate_normal.pdf(b[pre], mean=np.zeros(pre.size), cov=Sp)
    c = stats.norm.ppf(1 - alpha / 2) * np.sqrt(np.diag(Sp))
    m_pre = truncated_mean_rectangle(d[pre], Sp, -c, c, seed)
    m_post = d[post] + S[np.ix_(post, pre)] @ np.linalg.solve(Sp, m_pre - d[pre])
    rows = pd.DataFrame(
        {
            "t": np.r_[t, reference_period],
            "betahat": np.r_[b, 0.0],
            "deltatrue": np.r_[d, 0.0],
            "se": np.r_[np.sqrt(np.diag(S)), 0.0],
        }
    )
    mean_after = np.full(t.size + 1, np.nan)
    mean_after[pre] = m_pre
    mean_after[post] = m_post
    mean_after[-1] = 0.0
    rows["mean_after_pretesting"] = mean_after
    # post periods: with tau = 0 the conditional mean is the bias of beta_hat_post given a
    # passed pre-test (unconditionally the bias is deltatrue_post)
    bias = np.full(t.size + 1, np.nan)
    bias[post] = m_post
    rows["bias_after_pretesting"] = bias
    rows = rows.sort_values("t").reset_index(drop=True)
    return {
        "power": power,
        "power_joint": power_joint,
        "bayes_factor": (1 - power) / (1 - power0),
        "likelihood_ratio": float(lik / lik0),
        "event_plot": rows,
    }
