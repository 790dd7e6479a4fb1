"""Wild cluster bootstrap (WCR/WCU) and the CRV3 jackknife variance.

* Wild cluster restricted bootstrap, WCR11 in the terminology of MacKinnon, Nielsen &
  Webb (2023, "Cluster-robust inference: a guide to empirical practice", J. Econometrics),
  Cameron, Gelbach & Miller (2008, REStat). For the null ``beta_j = r``:

      beta_tilde = restricted OLS,  u_tilde = y - X beta_tilde,  s_g = X_g' u_tilde_g
      y*_b = X beta_tilde + v_{g,b} u_tilde_g        (v: Rademacher / Webb weights)
      beta*_b - beta_tilde = (X'X)^-1 S v_b,           S = [s_1 ... s_G]  (k x G)

  The bootstrap CRV1 t-statistic uses the "fast and wild" algebra of Roodman, MacKinnon,
  Nielsen & Webb (2019, Stata Journal): with ``c_g = e_j'(X'X)^-1 s_g`` and
  ``H_gh = e_j'(X'X)^-1 X_g'X_g (X'X)^-1 s_h`` the cluster-g score of draw b is
  ``c_g v_gb - sum_h H_gh v_hb``, so

      t*_b = (c'v_b) / sqrt( ssc * sum_g (c_g v_gb - (H v_b)_g)^2 )

  which is O(G^2) per draw after an O(N k^2) precomputation (per-cluster X_g'X_g and
  X_g'u_g blocks): no refits. ``ssc = G/(G-1) * (N-1)/(N-k)`` (CRV1, as wildboottest /
  fwildclusterboot). p-value: share of draws with ``|t*_b| > |t|`` (symmetric, two-sided;
  exact ties, e.g. v = +-1 under WCR, are not counted, as in wildboottest).
  With Rademacher weights and ``2^G <= B`` all ``2^G`` sign vectors are enumerated (the
  bootstrap distribution is then exact, not simulated), as wildboottest does.
  Draws come in fixed blocks of 4096 replicates, each from its own child of
  ``numpy.random.SeedSequence(seed)``, so results do not depend on how blocks are
  scheduled (threads/processes).

* CRV3 (MacKinnon, Nielsen & Webb 2023, "Fast and reliable jackknife and bootstrap methods
  for cluster-robust inference", J. Applied Econometrics): leave-one-cluster-out estimates
  ``beta_(g) = (X'X - X_g'X_g)^-1 (X'y - X_g'y_g)`` and
  ``V3 = (G-1)/G * sum_g (beta_(g) - beta_hat)(beta_(g) - beta_hat)'`` (centred at the
  full-sample estimate, as pyfixest's ``vcov={"CRV3": ...}``).

Fixed effects: pass ``fe`` (one array or a list of arrays); y and X are within-transformed
(alternating projections) before the bootstrap, which leaves the OLS slope, residuals and
cluster scores unchanged (Frisch-Waugh-Lovell). The FE degrees of freedom enter the
``(N-1)/(N-k)`` factor unless the FE is nested in the cluster (fixest's convention); the
bootstrap p-value does not depend on this factor.

Linear algebra (issue 9, the NIST-checked core :mod:`models.linalg`): the full-sample fit
and (X'X)^-1 come from :func:`models.linalg.ols` (pivoted Householder QR, never the normal
equations; rank and condition checked); the CRV3 leave-one-cluster-out systems
(X'X - X_g'X_g) b = X'y - X_g'y_g are solved by :func:`models.linalg.solve_spd` (Cholesky
after symmetry/definiteness/condition checks: a per-cluster QR would need refits); the
bootstrap draws need no solves (matrix products on the precomputed blocks).

Estimator use: vcov kinds ``wild``/``crv3`` of :mod:`models.vcov` for ``twfe`` and
``event_study`` (:mod:`models.did._cluster_inference`); few-clusters thresholds and
warnings in :mod:`models.inference.few_clusters`.
"""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd

from models import linalg as _linalg
from models.inference import few_clusters as _fc
from models.errors import BadInputError, DesignError

__all__ = ["wild_cluster_bootstrap", "wild_cluster_bootstrap_many", "crv3_vcov", "crv1_vcov", "few_clusters_warning", "FEW_CLUSTERS"]

#: Threshold for the few-clusters warning (50; justified in :mod:`models.inference.few_clusters`).
FEW_CLUSTERS = _fc.FEW_CLUSTERS

_BLOCK = 4096


def few_clusters_warning(n_clusters: int, threshold: int = FEW_CLUSTERS) -> str | None:
    """A warning naming the number of clusters when it is below ``threshold``, else None
    (the cluster-count sentence of :func:`models.inference.few_clusters.few_clusters_warnings`)."""
    w = _fc.few_clusters_warnings(n_clusters, threshold=threshold)
    return w[0] if w else None


def _as_2d(X):
    X = np.asarray(X, dtype=float)
    return X[:, None] if X.ndim == 1 else X


def _demean(A: np.ndarray, fes: list[np.ndarray], tol: float = 1e-12, maxiter: int = 10_000) -> np.ndarray:
    """Within transformation by one or more fixed effects (alternating projections)."""
    A = A.copy()
    codes = [pd.factorize(np.asarray(f))[0] for f in fes]
    counts = [np.bincount(c) for c in codes]
    for _ in range(maxiter):
        prev = A.copy()
        for c, n in zip(codes, counts):
            means = np.stack([np.bincount(c, weights=A[:, j], minlength=n.size) for j in range(A.shape[1])], axis=1)
            A -= means[c] / n[c, None]
        if len(codes) == 1 or np.max(np.abs(A - prev)) < tol * (1 + np.max(np.abs(A))):
            break
    return A


def _prepare(X, y, cluster, fe):
    X = _as_2d(X)
    y = np.asarray(y, dtype=float).ravel()
    cl = np.asarray(cluster)
    problems = []
    if X.shape[0] != y.size or cl.size != y.size:
        problems.append(f"X has {X.shape[0]} rows, y {y.size}, cluster {cl.size}: must be equal")
    if not (np.all(np.isfinite(X)) and np.all(np.isfinite(y))):
        problems.append("X or y contains missing/non-finite values: drop or impute them first")
    if pd.isna(pd.Series(cl)).any():
        problems.append("cluster contains missing values")
    if problems:
        raise BadInputError("wild_cluster_bootstrap: bad inputs", problems=problems)
    k_fe = 0
    if fe is not None:
        fes = fe if isinstance(fe, (list, tuple)) else [fe]
        fes = [np.asarray(f) for f in fes]
        Z = _demean(np.column_stack([y, X]), fes)
        y, X = Z[:, 0], Z[:, 1:]
        codes_cl = pd.factorize(cl)[0]
        for f in fes:
            fc = pd.factorize(f)[0]
            nested = pd.Series(codes_cl).groupby(fc).nunique().max() == 1
            if not nested:
                k_fe += np.unique(fc).size - 1
    codes, uniq = pd.factorize(cl)
    return X, y, codes, len(uniq), k_fe


def _cluster_blocks(X, y, codes, G):
    k = X.shape[1]
    XtX_g = np.zeros((G, k, k))
    np.add.at(XtX_g, codes, X[:, :, None] * X[:, None, :])
    Xty_g = np.zeros((G, k))
    np.add.at(Xty_g, codes, X * y[:, None])
    return XtX_g, Xty_g


def crv1_vcov(X, y, cluster, fe=None) -> np.ndarray:
    """CRV1 cluster-robust vcov with ssc G/(G-1) (N-1)/(N-k)."""
    X, y, codes, G, k_fe = _prepare(X, y, cluster, fe)
    N, k = X.shape
    fit = _linalg.ols(X, y)  # pivoted QR (models.linalg), never the normal equations
    XtX_inv, beta = fit.xtx_inv, fit.beta
    u = y - X @ beta
    S = np.zeros((G, k))
    np.add.at(S, codes, X * u[:, None])
    ssc = G / (G - 1) * (N - 1) / (N - k - k_fe)
    return ssc * XtX_inv @ (S.T @ S) @ XtX_inv


def crv3_vcov(X, y, cluster, fe=None, names=None) -> np.ndarray:
    """CRV3 jackknife vcov (G-1)/G sum_g (beta_(g) - beta)(beta_(g) - beta)'.

    Leave-one-cluster-out estimates from the per-cluster blocks (no refits); a cluster
    whose removal makes X'X singular raises DesignError."""
    X, y, codes, G, _ = _prepare(X, y, cluster, fe)
    if G < 2:
        raise DesignError("crv3_vcov: need at least 2 clusters")
    XtX_g, Xty_g = _cluster_blocks(X, y, codes, G)
    XtX = XtX_g.sum(0)
    Xty = Xty_g.sum(0)
    beta = _linalg.ols(X, y, names=names).beta  # pivoted QR on the full design
    # leave-one-cluster-out normal equations: Cholesky with symmetry/definiteness and
    # condition checks (models.linalg.solve_spd); a QR per cluster would need refits
    beta_g = np.empty((G, X.shape[1]))
    labels = pd.factorize(np.asarray(cluster))[1]
    cols = list(names) if names is not None else [f"x{j}" for j in range(X.shape[1])]
    for g in range(G):
        A = XtX - XtX_g[g]
        try:
            beta_g[g] = _linalg.solve_spd(A, Xty - Xty_g[g])
        except DesignError as exc:
            dead = [cols[j] for j in np.flatnonzero(np.diag(A) <= 1e-12 * np.diag(XtX))]
            what = (f"regressor(s) {dead} are non-zero only in that cluster" if dead
                    else f"the remaining design is singular or ill-conditioned ({exc})")
            raise DesignError(
                f"crv3_vcov: leaving out cluster {labels[g]} ({g + 1} of {G}): {what}; the "
                "leave-one-cluster-out estimate, hence CRV3, is not defined for this design "
                "(use the wild cluster bootstrap, or a coarser event window)"
            ) from None
    D = beta_g - beta
    return (G - 1) / G * D.T @ D


def _weights_block(kind: str, G: int, n: int, rng: np.random.Generator) -> np.ndarray:
    # drawn replicate by replicate (rows), so a block's first n draws do not depend on its size
    if kind == "rademacher":
        return rng.choice(np.array([-1.0, 1.0]), size=(n, G)).T
    if kind == "webb":
        pts = np.array([-np.sqrt(1.5), -1.0, -np.sqrt(0.5), np.sqrt(0.5), 1.0, np.sqrt(1.5)])
        return rng.choice(pts, size=(n, G)).T
    if kind == "mammen":
        s5 = np.sqrt(5.0)
        vals = np.array([-(s5 - 1) / 2, (s5 + 1) / 2])
        p = (s5 + 1) / (2 * s5)
        return np.where(rng.random((n, G)) < p, vals[0], vals[1]).T
    if kind == "normal":
        return rng.standard_normal((n, G)).T
    raise ValueError("weights must be 'rademacher', 'webb', 'mammen' or 'normal'")


def wild_cluster_bootstrap(
    X,
    y,
    cluster,
    param_index: int,
    B: int = 9999,
    weights: str = "rademacher",
    impose_null: bool = True,
    r: float = 0.0,
    seed: int = 0,
    fe=None,
    enumerate_all: bool | None = None,
    ci_level: float | None = None,
    return_draws: bool = False,
) -> dict:
    """Wild cluster bootstrap test of ``beta[param_index] = r`` (WCR11 by default).

    Parameters
    ----------
    X, y, cluster:
        Regressors (include the intercept column yourself unless ``fe`` absorbs it),
        outcome, cluster labels.
    param_index:
        Column of X tested.
    B, weights, seed:
        Replications, weight distribution (``rademacher``, ``webb``, ``mammen``, ``normal``),
        seed of ``numpy.random.SeedSequence``.
    impose_null:
        True = WCR (restricted residuals, recommended), False = WCU.
    enumerate_all:
        Rademacher full enumeration of the 2^G sign vectors; default: when ``2^G <= B``.
    ci_level:
        If given (e.g. 0.95), the confidence set by test inversion: the values r0 whose
        bootstrap p-value exceeds ``1 - ci_level``, every r0 tested with the same weights
        (WCR: the restricted model is re-solved for each r0, as in boottest).

    Returns
    -------
    dict with ``p_value, t_stat, estimate, std_error`` (CRV1), ``n_clusters, B`` (number
    of draws actually used), ``weights``, ``enumerated``, ``warning`` (few clusters),
    ``ci`` (if ``ci_level``).
    """
    return wild_cluster_bootstrap_many(
        X, y, cluster, [param_index], B=B, weights=weights, impose_null=impose_null, r=r, seed=seed, fe=fe,
        enumerate_all=enumerate_all, ci_level=ci_level, return_draws=return_draws,
    )[0]


def wild_cluster_bootstrap_many(
    X,
    y,
    cluster,
    param_indices,
    B: int = 9999,
    weights: str = "rademacher",
    impose_null: bool = True,
    r: float = 0.0,
    seed: int = 0,
    fe=None,
    enumerate_all: bool | None = None,
    ci_level: float | None = None,
    return_draws: bool = False,
    k_fe: int | None = None,
) -> list[dict]:
    """:func:`wild_cluster_bootstrap` for several coefficients of one regression: the
    per-cluster blocks, the fit and the weight draws are computed once and shared (every
    coefficient is tested with the same weights, as boottest does with one seed), one
    dict per entry of ``param_indices``. ``k_fe`` overrides the count of absorbed
    fixed-effect parameters in the CRV1 factor (N-1)/(N-k) (it changes t and the
    ``std_error``, not the p-value). Runs with single-threaded BLAS
    (:func:`models.linalg.single_thread_blas`): the bootstrap products must not change in
    the last bits with the caller's thread count."""
    with _linalg.single_thread_blas():
        return _wild_many(X, y, cluster, param_indices, B, weights, impose_null, r, seed, fe, enumerate_all, ci_level, return_draws, k_fe)


def _wild_many(X, y, cluster, param_indices, B, weights, impose_null, r, seed, fe, enumerate_all, ci_level, return_draws, k_fe) -> list[dict]:
    X, y, codes, G, k_fe0 = _prepare(X, y, cluster, fe)
    k_fe = k_fe0 if k_fe is None else int(k_fe)
    N, k = X.shape
    idx = [int(j) for j in param_indices]
    bad = [j for j in idx if not 0 <= j < k]
    if bad:
        raise BadInputError(f"wild_cluster_bootstrap: param_index {bad} outside 0..{k - 1}")
    if G < 2:
        raise DesignError("wild_cluster_bootstrap: need at least 2 clusters")
    XtX_g, Xty_g = _cluster_blocks(X, y, codes, G)
    fit = _linalg.ols(X, y)  # pivoted QR (models.linalg); the per-cluster blocks feed the bootstrap
    XtX_inv, beta = fit.xtx_inv, fit.beta
    ssc = G / (G - 1) * (N - 1) / (N - k - k_fe)
    u_hat = y - X @ beta
    S_hat = np.zeros((G, k))
    np.add.at(S_hat, codes, X * u_hat[:, None])

    if enumerate_all is None:
        enumerate_all = weights == "rademacher" and 2**G <= B
    if enumerate_all:
        if weights != "rademacher":
            raise ValueError("full enumeration is only defined for Rademacher weights")
        if G > 24:
            raise ValueError(f"full enumeration of 2^{G} sign vectors is too large")
        blocks = [np.array(list(itertools.product([-1.0, 1.0], repeat=G))).T]
    else:
        # per-block seeding: replicate i's weights depend only on (seed, i), never on how
        # blocks are scheduled or on the thread count
        n_blocks = -(-B // _BLOCK)
        children = np.random.SeedSequence(seed).spawn(n_blocks)
        blocks = []
        for i, ch in enumerate(children):
            n = min(_BLOCK, B - i * _BLOCK)
            blocks.append(_weights_block(weights, G, n, np.random.default_rng(ch)))

    def pval(t0, tb):
        # draws that tie with |t| up to rounding (v = +-1 under WCR reproduces the sample)
        # are not counted as more extreme, as in wildboottest
        return float(np.mean(np.abs(tb) > abs(t0) * (1 + 1e-10) + 1e-14))

    results = []
    for j in idx:
        a = XtX_inv[j]  # e_j'(X'X)^-1
        se = float(np.sqrt(ssc * np.sum((S_hat @ a) ** 2)))
        A = np.einsum("k,gkl,lm->gm", a, XtX_g, XtX_inv)  # rows a' X_g'X_g (X'X)^-1

        def boot(r0: float, j=j, a=a, se=se, A=A):
            """t statistic and bootstrap t's for the null beta_j = r0 (same weights for every r0)."""
            if impose_null:  # restricted OLS under beta_j = r0
                beta_d = beta - XtX_inv[:, j] * (beta[j] - r0) / XtX_inv[j, j]
            else:
                beta_d = beta
            S = Xty_g - XtX_g @ beta_d  # (G, k): s_g = X_g'(y_g - X_g beta_d)
            c = S @ a  # (G,)
            H = A @ S.T  # H_gh = a' X_g'X_g (X'X)^-1 s_h
            tb = []
            for V in blocks:
                num = c @ V  # WCR: beta*_j - r0; WCU: beta*_j - beta_j (centred at the estimate)
                Z = c[:, None] * V - H @ V
                den = np.sqrt(ssc * np.sum(Z * Z, axis=0))
                with np.errstate(divide="ignore", invalid="ignore"):
                    tb.append(num / den)
            return (beta[j] - r0) / se, np.concatenate(tb)

        t_stat, t_boot = boot(r)
        out = {
            "p_value": pval(t_stat, t_boot),
            "t_stat": float(t_stat),
            "estimate": float(beta[j]),
            "std_error": se,
            "n_clusters": int(G),
            "B": int(t_boot.size),
            "weights": weights,
            "impose_null": bool(impose_null),
            "enumerated": bool(enumerate_all),
            "warning": few_clusters_warning(G),
        }
        if ci_level is not None:
            out["ci"] = _invert(lambda r0, boot=boot: pval(*boot(r0)), float(beta[j]), se, 1 - ci_level)
        if return_draws:
            out["t_boot"] = t_boot
        results.append(out)
    return results


def _invert(p_of_r, est: float, se: float, alpha: float, rel_tol: float = 1e-6) -> tuple[float, float]:
    """Bounds of {r : p(r) > alpha} by bracketing and bisection on each side of ``est``
    (the p-value is 1 at r = est and falls as |r - est| grows)."""
    bounds = []
    for sign in (-1.0, 1.0):
        inside, step = est, 2.0 * se
        outside = est + sign * step
        while p_of_r(outside) > alpha:
            inside, step = outside, step * 2
            outside = est + sign * step
            if step > 1e6 * se:
                return (-np.inf, np.inf)
        while abs(outside - inside) > rel_tol * se:
            mid = 0.5 * (inside + outside)
            if p_of_r(mid) > alpha:
                inside = mid
            else:
                outside = mid
        bounds.append(0.5 * (inside + outside))
    return (bounds[0], bounds[1])
