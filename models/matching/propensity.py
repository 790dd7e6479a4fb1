"""Propensity scores by iteratively reweighted least squares (logit or probit).

We fit the binary GLM ourselves (Fisher scoring / IRLS, McCullagh & Nelder 1989 §4.4) rather
than through statsmodels: one fit at 1M firms is a handful of ``X'WX`` products, and we need the
separation checks below before the fit anyway. On MatchIt's lalonde the fitted scores equal R
``glm(..., family = binomial(link))`` to ~1e-12 (tests/test_matching_lalonde.py).

Model: ``P(D=1|X) = F(X'b)`` with ``F`` the logistic or standard normal cdf. IRLS step:
``b <- (X'WX)^{-1} X'W z`` with working response ``z = eta + (d - p)/F'(eta)`` and weights
``W = F'(eta)^2 / (p(1-p))`` (logit: ``W = p(1-p)``).

Separation (Albert & Anderson 1984): if a covariate, or one level of a categorical covariate,
predicts treatment perfectly on its own, the maximum-likelihood estimate does not exist and the
scores are 0/1. We detect, before fitting,

* a dummy column (0/1 indicator or a level of a categorical) whose units at one value are all
  treated or all controls (quasi-complete separation by that level), and
* a continuous column whose treated and control ranges do not overlap (``max`` of one group
  ``<=`` ``min`` of the other);

and, after fitting, fitted scores within 1e-10 of 0 or 1 for a positive share of the sample
(multivariate separation), naming the covariates with diverging coefficients. All raise
:class:`~models.errors.DesignError` (exit 4).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import special, stats

from models.errors import DesignError, first_keys


def design_matrix(data: pd.DataFrame, covariates: list[str] | tuple[str, ...]) -> tuple[np.ndarray, list[str], dict[str, str]]:
    """Model matrix with intercept; strings/categoricals/booleans-as-levels get treatment
    coding with the first sorted level as reference (R's ``model.matrix`` default).

    Returns ``(X, column_names, source)`` where ``source`` maps a column name to the covariate
    it came from (for error messages)."""
    cols = [np.ones(len(data))]
    names = ["(Intercept)"]
    source = {"(Intercept)": "(Intercept)"}
    for c in covariates:
        s = data[c]
        if _is_categorical(s):
            levels = sorted(pd.unique(s.astype("string").dropna()))
            vals = s.astype("string").to_numpy(dtype=object)
            for lev in levels[1:]:
                nm = f"{c}{lev}"
                cols.append((vals == lev).astype(float))
                names.append(nm)
                source[nm] = f"{c}={lev}"
        else:
            cols.append(pd.to_numeric(s).to_numpy(dtype=float))
            names.append(c)
            source[c] = c
    return np.column_stack(cols), names, source


def _is_categorical(s: pd.Series) -> bool:
    return isinstance(s.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(s) or s.dtype == object


def check_separation(data: pd.DataFrame, treat: np.ndarray, covariates) -> None:
    """Raise DesignError naming every covariate (or level) that predicts treatment perfectly."""
    t = np.asarray(treat, dtype=bool)
    problems = []
    for c in covariates:
        s = data[c]
        if _is_categorical(s) or (pd.api.types.is_numeric_dtype(s) and set(pd.unique(s.dropna())) <= {0, 1}) or s.dtype == bool:
            vals = s.astype("string").to_numpy(dtype=object)
            for lev in sorted(pd.unique(vals)):
                at = vals == lev
                n_t, n_c = int((at & t).sum()), int((at & ~t).sum())
                if n_c == 0 or n_t == 0:
                    who = "treated" if n_c == 0 else "control"
                    problems.append(
                        f"{c}={lev}: all {n_t + n_c} units at this level are {who} units (quasi-complete separation)"
                    )
        else:
            x = pd.to_numeric(s).to_numpy(dtype=float)
            if t.any() and (~t).any():
                lo1, hi1, lo0, hi0 = x[t].min(), x[t].max(), x[~t].min(), x[~t].max()
                if hi0 <= lo1 or hi1 <= lo0:
                    problems.append(
                        f"{c}: treated range [{lo1:g}, {hi1:g}] and control range [{lo0:g}, {hi0:g}] do not overlap "
                        "(complete separation)"
                    )
    if problems:
        raise DesignError(
            f"the propensity model cannot be estimated: {len(problems)} covariate(s) predict treatment perfectly. "
            "Drop or coarsen them, match exactly on them (exact=[...]), or restrict the sample to where both groups occur:",
            problems=problems,
        )


def fit_binary_glm(X: np.ndarray, d: np.ndarray, link: str = "logit", tol: float = 1e-12, max_iter: int = 100,
                   names: list[str] | None = None, source: dict[str, str] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """IRLS for a logit/probit GLM. Returns ``(coef, fitted_probabilities)``."""
    if link not in ("logit", "probit"):
        raise ValueError(f"link must be 'logit' or 'probit', got {link!r}")
    d = np.asarray(d, dtype=float)
    n, k = X.shape
    # start as R's glm: mustart = (y + 0.5)/2
    mu = (d + 0.5) / 2.0
    eta = special.logit(mu) if link == "logit" else stats.norm.ppf(mu)
    beta = np.zeros(k)
    dev_old = np.inf
    for _ in range(max_iter):
        if link == "logit":
            mu = special.expit(eta)
            dmu = mu * (1 - mu)
        else:
            mu = special.ndtr(eta)
            dmu = stats.norm.pdf(eta)
        mu = np.clip(mu, 1e-300, 1 - 1e-16)
        var = mu * (1 - mu)
        w = dmu**2 / np.maximum(var, 1e-300)
        z = eta + (d - mu) / np.maximum(dmu, 1e-300)
        Xw = X * w[:, None]
        try:
            beta_new = np.linalg.solve(X.T @ Xw, Xw.T @ z)
        except np.linalg.LinAlgError:  # collinear columns: minimum-norm solution, fitted scores unique
            beta_new = np.linalg.pinv(X.T @ Xw) @ (Xw.T @ z)
        eta = X @ beta_new
        mu_new = special.expit(eta) if link == "logit" else special.ndtr(eta)
        with np.errstate(divide="ignore", invalid="ignore"):
            dev = -2 * np.sum(special.xlogy(d, mu_new) + special.xlogy(1 - d, 1 - mu_new))
        conv = np.max(np.abs(beta_new - beta)) <= tol * (1 + np.max(np.abs(beta_new)))
        beta = beta_new
        if conv or abs(dev - dev_old) <= 1e-15 * (abs(dev) + 0.1):
            break
        dev_old = dev
    p = special.expit(eta) if link == "logit" else special.ndtr(eta)
    extreme = (p < 1e-10) | (p > 1 - 1e-10)
    if extreme.mean() > 0.0 and extreme.sum() >= max(1, 0.01 * n) or not np.all(np.isfinite(beta)):
        nm = names or [f"x{j}" for j in range(k)]
        order = np.argsort(-np.abs(beta[1:]))[:3] + 1
        who = [(source or {}).get(nm[j], nm[j]) for j in order]
        raise DesignError(
            f"the propensity model separates the groups: {int(extreme.sum())} unit(s) get scores within 1e-10 of 0 or 1 "
            f"(largest coefficients: {first_keys(who)}). Drop or coarsen those covariates, or match exactly on them."
        )
    return beta, p


def propensity_score(data: pd.DataFrame, treat: np.ndarray, covariates, link: str = "logit",
                     return_model: bool = False):
    """Separation checks, then the logit/probit score ``P(D=1|X)``; with ``return_model`` also
    ``(X, beta)`` (design matrix with intercept, coefficients)."""
    check_separation(data, treat, covariates)
    X, names, source = design_matrix(data, covariates)
    beta, p = fit_binary_glm(X, np.asarray(treat, dtype=float), link=link, names=names, source=source)
    return (p, (X, beta)) if return_model else p
