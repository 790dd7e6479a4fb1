"""HonestDiD sensitivity analysis (Rambachan & Roth 2023, "A More Credible Approach to
Parallel Trends", Review of Economic Studies 90(5)).

Input: an event-study vector ``betahat = (beta_pre, beta_post)`` (reference period
omitted, pre periods first, in event-time order) with covariance ``sigma``; target
``theta = l_vec' tau_post``. Under a violation ``delta`` of parallel trends,
``beta = (0, tau_post) + delta``; the restriction ``delta in Delta`` gives a robust
confidence set for ``theta``.

Two restrictions, as in R HonestDiD 0.2.8:

* **Relative magnitudes** ``Delta^RM(Mbar)``: every post-period first difference of
  ``delta`` is at most ``Mbar`` times the largest pre-period first difference. Inference is
  the ARP moment-inequality test with nuisance parameters (Andrews, Roth & Pakes 2023),
  hybridised with a least-favourable first stage (``method="C-LF"``, the R default;
  ``kappa = alpha/10``, 1000 simulated draws) or the pure conditional test
  (``method="Conditional"``), inverted over R's theta grid ([-20, 20] x sd(theta), 1000
  points); the union over the location ``s`` and sign of the largest pre-period difference
  is taken, as ``createSensitivityResults_relativeMagnitudes`` does.
  Implementation note: the LP ``eta = min_d max_i (y_i - X_i d)/sd_i`` and its dual vertex
  are obtained by enumerating the vertices of the dual polytope
  ``{lambda >= 0, sd'lambda = 1, X'lambda = 0}`` once per (s, sign); the LP value for any
  y is then ``max_v v'y``. This is exact (LP duality) and makes the grid and the
  least-favourable simulation matrix products. The dual-approach truncation points
  (R's bisection in ``.vlo_vup_dual_fn``) are computed in closed form from the same
  vertices. The least-favourable draws come from ``numpy.random.default_rng(seed)``
  (``rng="numpy"``) or from a re-implementation of R's ``set.seed(seed); rnorm()``
  (Mersenne-Twister + inversion, ``rng="R"``) feeding ``mvtnorm::rmvnorm``'s symmetric
  square root, which reproduces R HonestDiD's draws bit-for-bit.
* **Smoothness** ``Delta^SD(M)``: the second differences of ``delta`` are bounded by
  ``M``. Inference is the optimal fixed-length confidence interval (FLCI; Armstrong &
  Kolesar 2018, 2020), R's default for ``Delta^SD``: over affine estimators
  ``l_pre'beta_pre + l_vec'beta_post`` minimise ``h * cv_alpha(M * bias / h)`` where
  ``cv_alpha(b)`` is the ``1-alpha`` quantile of ``|N(b, 1)|``. The worst-case bias for
  a given standard deviation ``h`` is the second-order cone program of R's
  ``.findWorstCaseBiasGivenH`` (solved here with SLSQP on the same variables), and ``h``
  is chosen by bounded scalar minimisation on ``[h_min, h_0]`` (R: derivative
  bisection). The folded-normal quantile is computed exactly by default (R simulates it
  with 10^6 draws: Monte-Carlo error of order 2e-5 in the Medicaid bounds);
  ``folded_normal="R"`` uses R's draws and reproduces the README's FLCI table to 1.4e-8
  for M > 0 (at M = 0 the centre differs by 1e-5: R's conic solver vs our closed-form
  minimum-variance weights).

Not implemented (partial): the sign/monotonicity variants (Delta^SDB, SDM, RMB, RMM,
SDRM) and the FLCI hybrid "C-F"; the ARP conditional test for Delta^SD.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, special, stats

from models.errors import BadInputError

__all__ = [
    "honest_did",
    "breakdown_value",
    "original_cs",
    "relative_magnitude_ci",
    "smoothness_flci",
    "r_rnorm",
]


# --------------------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------------------
def _check_inputs(betahat, sigma, num_pre, num_post, l_vec):
    b = np.asarray(betahat, dtype=float).ravel()
    s = np.asarray(sigma, dtype=float)
    problems = []
    if num_pre < 1 or num_post < 1:
        problems.append(f"num_pre={num_pre}, num_post={num_post}: need at least one of each")
    if b.size != num_pre + num_post:
        problems.append(f"betahat has {b.size} elements, num_pre + num_post = {num_pre + num_post}")
    if s.shape != (b.size, b.size):
        problems.append(f"sigma has shape {s.shape}, expected ({b.size}, {b.size})")
    if not np.all(np.isfinite(b)) or not np.all(np.isfinite(s)):
        problems.append("betahat/sigma contain non-finite values")
    if l_vec is None:
        lv = np.zeros(num_post)
        lv[0] = 1.0
    else:
        lv = np.asarray(l_vec, dtype=float).ravel()
        if lv.size != num_post:
            problems.append(f"l_vec has {lv.size} elements, num_post = {num_post}")
    if s.shape == (b.size, b.size) and not np.allclose(s, s.T, atol=1e-12 * max(1.0, np.abs(s).max())):
        problems.append("sigma is not symmetric")
    if problems:
        raise BadInputError(
            "honest_did: the event-study inputs are inconsistent; pass the dynamic coefficients "
            "(reference period omitted, pre periods first) and their covariance",
            problems=problems,
        )
    return b, (s + s.T) / 2.0, lv


def _split_event_study(betahat, sigma, num_pre, num_post):
    """Accept a pandas Series/DataFrame indexed by event time (tables['vcov_dynamic'])."""
    if isinstance(sigma, pd.DataFrame):
        et = np.asarray(sigma.index, dtype=float)
        order = np.argsort(et)
        sig = sigma.to_numpy(dtype=float)[np.ix_(order, order)]
        et = et[order]
        if isinstance(betahat, pd.Series):
            b = betahat.reindex(sigma.index[order]).to_numpy(dtype=float)
        else:
            b = np.asarray(betahat, dtype=float)[order]
        if num_pre is None:
            num_pre = int(np.sum(et < 0))
        if num_post is None:
            num_post = int(np.sum(et >= 0))
        return b, sig, num_pre, num_post
    return betahat, sigma, num_pre, num_post


# --------------------------------------------------------------------------------------
# R's random normal stream (for exact replication of R HonestDiD's least-favourable draws)
# --------------------------------------------------------------------------------------
def r_rnorm(n: int, seed: int = 0) -> np.ndarray:
    """``set.seed(seed); rnorm(n)`` of R (Mersenne-Twister, Inversion; R >= 3.6 defaults).

    R seeds the generator with 50 rounds of the LCG ``seed = 69069 * seed + 1`` and then
    fills the 624 MT words with further rounds; ``norm_rand`` by inversion uses two
    uniforms: ``u = (floor(2^27 u1) + u2) / 2^27`` and returns ``qnorm(u)``.
    """
    s = np.uint32(seed & 0xFFFFFFFF)
    with np.errstate(over="ignore"):
        for _ in range(50):
            s = np.uint32(np.uint64(69069) * np.uint64(s) + np.uint64(1) & np.uint64(0xFFFFFFFF))
        key = np.empty(625, dtype=np.uint32)
        for j in range(625):
            s = np.uint32(np.uint64(69069) * np.uint64(s) + np.uint64(1) & np.uint64(0xFFFFFFFF))
            key[j] = s
    bg = np.random.MT19937(0)
    bg.state = {"bit_generator": "MT19937", "state": {"key": key[1:], "pos": 624}}
    raw = bg.random_raw(2 * n).astype(np.float64) * 2.3283064365386963e-10
    raw = np.clip(raw, 0.5 * 2.328306437080797e-10, 1.0 - 0.5 * 2.328306437080797e-10)
    u1, u2 = raw[0::2], raw[1::2]
    big = 134217728.0
    u = (np.floor(big * u1) + u2) / big
    return stats.norm.ppf(u)


def _std_normal_draws(sims: int, dim: int, seed: int, rng: str) -> np.ndarray:
    if rng == "R":
        # mvtnorm::rmvnorm: matrix(rnorm(n * d), nrow = n, byrow = TRUE)
        return r_rnorm(sims * dim, seed).reshape(sims, dim)
    if rng == "numpy":
        return np.random.default_rng(seed).standard_normal((sims, dim))
    raise ValueError(f"rng must be 'numpy' or 'R', got {rng!r}")


def _sym_sqrt(sigma: np.ndarray) -> np.ndarray:
    """mvtnorm's 'eigen' factor: V diag(sqrt(max(lambda, 0))) V' (symmetric square root)."""
    w, v = np.linalg.eigh(sigma)
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.T


# --------------------------------------------------------------------------------------
# original CI
# --------------------------------------------------------------------------------------
def original_cs(betahat, sigma, num_pre, num_post, l_vec=None, alpha=0.05) -> dict:
    """Conventional CI for ``l_vec' beta_post`` under exact parallel trends."""
    b, s, lv = _check_inputs(betahat, sigma, num_pre, num_post, l_vec)
    post = slice(num_pre, num_pre + num_post)
    est = float(lv @ b[post])
    se = float(np.sqrt(lv @ s[post, post] @ lv))
    z = stats.norm.ppf(1 - alpha / 2)
    return {"lb": est - z * se, "ub": est + z * se, "estimate": est, "std_error": se}


# --------------------------------------------------------------------------------------
# ARP conditional / hybrid test with nuisance parameters, via dual vertices
# --------------------------------------------------------------------------------------
def _dual_vertices(sd: np.ndarray, X: np.ndarray, tol: float = 1e-10) -> np.ndarray:
    """Vertices of {lambda >= 0, W'lambda = e1}, W = [sd, X] (m x (k+1)).

    A vertex has at most k+1 non-zeros; enumerate supports of size k+1 (and smaller,
    for rank-deficient W) and keep the non-negative basic solutions.
    """
    m = sd.size
    W = np.column_stack([sd, X]) if X.size else sd[:, None]
    k1 = W.shape[1]
    e1 = np.zeros(k1)
    e1[0] = 1.0
    out = []
    for size in range(1, k1 + 1):
        combos = np.array(list(itertools.combinations(range(m), size)), dtype=int)
        if combos.size == 0:
            continue
        Ws = W[combos]  # (n, size, k1): rows of W on the support
        # solve Ws' lam = e1 in least squares; keep exact solutions
        for idx in range(0, len(combos), 20000):
            Wc = Ws[idx : idx + 20000]
            Wt = np.transpose(Wc, (0, 2, 1))  # (n, k1, size)
            lam = np.einsum("nsk,k->ns", np.linalg.pinv(Wt), e1)  # min-norm solution
            resid = np.einsum("nks,ns->nk", Wt, lam) - e1
            ok = (np.abs(resid).max(axis=1) < 1e-9) & (lam.min(axis=1) > -tol)
            # a basic solution (vertex) needs linearly independent support rows
            ok &= np.linalg.matrix_rank(Wc) == size
            for c, lmb in zip(combos[idx : idx + 20000][ok], lam[ok]):
                v = np.zeros(m)
                v[c] = np.maximum(lmb, 0.0)
                out.append(v)
    if not out:
        return np.zeros((0, m))
    V = np.unique(np.round(np.array(out), 13), axis=0)
    return V


def _truncnorm_rejects(x: float, lo: float, hi: float, size: float) -> bool:
    """``x > max(0, q_{1-size})`` with q the quantile of N(0,1) truncated to [lo, hi].

    R computes the quantile (TruncatedNormal::norminvp) and compares; the equivalent test
    ``x > 0 and P(Z > x | lo <= Z <= hi) < size`` is evaluated in log space
    (log_ndtr), accurate far in the tails and ~100x faster than a quantile inversion."""
    if not x > 0:
        return False
    if lo >= hi:
        return x > lo
    a = special.log_ndtr(-x)  # log P(Z > x)
    c = special.log_ndtr(-lo)  # log P(Z > lo)
    if np.isfinite(hi):
        bz = special.log_ndtr(-hi)
        num = a + np.log1p(-np.exp(min(bz - a, 0.0))) if a > bz else -np.inf
        den = c + np.log1p(-np.exp(min(bz - c, 0.0))) if c > bz else -np.inf
    else:
        num, den = a, c
    if not np.isfinite(den):
        return x > lo
    return bool(num - den < np.log(size))


@dataclass
class _ARPProblem:
    y0: np.ndarray  # Y = A betahat - d (ARP rows)
    a1: np.ndarray  # column multiplying theta (ARP rows)
    X: np.ndarray  # nuisance design (ARP rows)
    sigma: np.ndarray  # covariance of Y (ARP rows)
    V: np.ndarray  # dual vertices
    lf_cv: float | None


def _arp_accept_grid(prob: _ARPProblem, grid: np.ndarray, alpha: float, hybrid: str, kappa: float) -> np.ndarray:
    """Accept (1) / reject (0) of the ARP (hybrid) test at every theta in ``grid``.

    Follows R HonestDiD's ``.lp_conditional_test_fn`` (arp-nuisance.R) step by step.
    """
    y_all = prob.y0[None, :] - grid[:, None] * prob.a1[None, :]  # (G, m)
    S = prob.sigma
    sd = np.sqrt(np.diag(S))
    X = prob.X
    k = X.shape[1]
    m = sd.size
    if prob.V.shape[0] == 0:  # LP unbounded/infeasible: R does not reject
        return np.ones(grid.size)
    vals = y_all @ prob.V.T  # (G, nV)
    best = np.argmax(vals, axis=1)
    eta = vals[np.arange(grid.size), best]
    mod_size = alpha if hybrid == "ARP" else (alpha - kappa) / (1 - kappa)
    accept = np.ones(grid.size)
    cache: dict[int, tuple] = {}
    for g in range(grid.size):
        y = y_all[g]
        e = eta[g]
        if hybrid == "LF" and e > prob.lf_cv:
            accept[g] = 0.0
            continue
        vi = int(best[g])
        lam = prob.V[vi]
        B = lam > 1e-6
        degenerate = int(B.sum()) != k + 1
        XB = X[B]
        full_rank = XB.size > 0 and min(XB.shape) > 0 and np.linalg.matrix_rank(XB) == min(XB.shape)
        if k == 0:
            full_rank = True  # no nuisance: the binding moment alone
        if (not full_rank) or degenerate:
            # dual approach (closed form of R's bisection)
            gam = lam
            s2 = float(gam @ S @ gam)
            if abs(s2) < np.finfo(float).eps:
                accept[g] = 0.0 if e > 0 else 1.0
                continue
            sB = np.sqrt(s2)
            bvec = S @ gam / s2
            sT = y - bvec * float(gam @ y)
            vs = prob.V @ sT
            vb = prob.V @ bvec
            den = 1.0 - vb
            tol = 1e-9
            if np.any((np.abs(den) <= tol) & (vs > 1e-6)):
                vlo, vup = e, np.inf  # eta not a solution: R does not reject automatically
            else:
                lo_m = den > tol
                up_m = den < -tol
                vlo = np.max(vs[lo_m] / den[lo_m]) if lo_m.any() else -np.inf
                vup = np.min(vs[up_m] / den[up_m]) if up_m.any() else np.inf
                low_init = min(-100.0, e - 20 * sB)
                high_init = max(100.0, e + 20 * sB)
                if vup >= high_init:
                    vup = np.inf
                if vlo <= low_init:
                    vlo = -np.inf
            maxstat = e / sB
            zlo = vlo / sB
            zup = (min(vup, prob.lf_cv) if hybrid == "LF" else vup) / sB
        else:
            # primal approach
            key = vi
            if key not in cache:
                Bc = ~B
                WB = np.column_stack([sd[B], XB]) if k else sd[B][:, None]
                WBc = np.column_stack([sd[Bc], X[Bc]]) if k else sd[Bc][:, None]
                WB_inv = np.linalg.inv(WB)
                SB = np.eye(m)[B]
                SBc = np.eye(m)[Bc]
                Gamma_B = WBc @ WB_inv @ SB - SBc
                vB = (WB_inv[0] @ SB)
                s2B = float(vB @ S @ vB)
                rho = Gamma_B @ S @ vB / s2B
                cache[key] = (Gamma_B, vB, np.sqrt(s2B), rho)
            Gamma_B, vB, sB, rho = cache[key]
            with np.errstate(divide="ignore", invalid="ignore"):
                maxim = (-Gamma_B @ y) / rho + float(vB @ y) if rho.size else np.array([])
            vlo = np.max(maxim[rho > 0]) if np.any(rho > 0) else -np.inf
            vup = np.min(maxim[rho < 0]) if np.any(rho < 0) else np.inf
            maxstat = e / sB
            zlo = vlo / sB
            zup = (min(vup, prob.lf_cv) if hybrid == "LF" else vup) / sB
        if not (zlo <= maxstat <= zup):
            accept[g] = 1.0
            continue
        accept[g] = 0.0 if _truncnorm_rejects(maxstat, zlo, zup, mod_size) else 1.0
    return accept


def _construct_gamma(l_vec: np.ndarray) -> np.ndarray:
    """Invertible matrix with l' as first row (pivot columns of rref([l, I]))."""
    T = l_vec.size
    B = np.column_stack([l_vec, np.eye(T)])
    cols = []
    for j in range(B.shape[1]):
        cand = cols + [j]
        if np.linalg.matrix_rank(B[:, cand]) == len(cand):
            cols = cand
        if len(cols) == T:
            break
    return B[:, cols].T


def _create_A_RM(num_pre: int, num_post: int, Mbar: float, s: int, max_positive: bool) -> np.ndarray:
    """R's .create_A_RM (dropZero = TRUE): |first diff_t| <= (1 or Mbar) * (first diff at s)."""
    n = num_pre + num_post
    At = np.zeros((n, n + 1))
    for r in range(n):
        At[r, r], At[r, r + 1] = -1.0, 1.0
    v = np.zeros(n + 1)
    v[num_pre + s - 1], v[num_pre + s] = -1.0, 1.0
    if not max_positive:
        v = -v
    A_UB = np.vstack([np.tile(v, (num_pre, 1)), np.tile(Mbar * v, (num_post, 1))])
    A = np.vstack([At - A_UB, -At - A_UB])
    A = A[np.sum(A * A, axis=1) > 1e-10]
    return np.delete(A, num_pre, axis=1)


def rm_identified_set(betahat, num_pre: int, num_post: int, Mbar: float, l_vec) -> tuple[float, float]:
    """Identified set of ``l_vec' tau_post`` under Delta^RM(Mbar) at ``beta = betahat``
    (R ``.compute_IDset_DeltaRM``): union over (s, sign) of the LP bounds, with
    ``delta_pre = beta_pre`` and ``A_RM delta <= 0``."""
    from scipy.optimize import linprog

    b = np.asarray(betahat, dtype=float)
    lv = np.asarray(l_vec, dtype=float)
    f = np.r_[np.zeros(num_pre), lv]
    A_eq = np.c_[np.eye(num_pre), np.zeros((num_pre, num_post))]
    bounds = [(None, None)] * (num_pre + num_post)
    theta = float(lv @ b[num_pre:])
    lo, hi = np.inf, -np.inf
    for max_positive in (True, False):
        for sidx in range(-(num_pre - 1), 1):
            A = _create_A_RM(num_pre, num_post, Mbar, sidx, max_positive)
            kw = dict(A_ub=A, b_ub=np.zeros(A.shape[0]), A_eq=A_eq, b_eq=b[:num_pre], bounds=bounds, method="highs")
            rmax = linprog(-f, **kw)
            rmin = linprog(f, **kw)
            if rmax.status == 0 and rmin.status == 0:
                lo = min(lo, theta + rmax.fun)
                hi = max(hi, theta - rmin.fun)
    if not np.isfinite(lo):
        lo = hi = theta
    return float(lo), float(hi)


def _lf_cv(X, sigma, kappa, sims, seed, rng, V) -> float:
    Z = _std_normal_draws(sims, sigma.shape[0], seed, rng)
    xi = Z @ _sym_sqrt(sigma)
    eta = (xi @ V.T).max(axis=1) if V.shape[0] else np.full(sims, np.nan)
    return float(np.nanquantile(eta, 1 - kappa))  # R quantile type 7 == numpy 'linear'


def relative_magnitude_ci(
    betahat,
    sigma,
    num_pre: int,
    num_post: int,
    Mbar: float,
    l_vec=None,
    alpha: float = 0.05,
    method: str = "C-LF",
    grid_points: int = 1000,
    grid_lb: float | None = None,
    grid_ub: float | None = None,
    seed: int = 0,
    rng: str = "numpy",
    lf_sims: int = 1000,
    grid: str = "idset",
    return_grid: bool = False,
):
    """Robust CI under Delta^RM(Mbar): R's ``computeConditionalCS_DeltaRM`` with
    ``postPeriodMomentsOnly = TRUE``, ``hybrid_kappa = alpha/10``.

    ``grid="zero"``: theta grid ``[-20, 20] x sd(theta)`` (HonestDiD 0.2.8 code);
    ``grid="idset"``: ``[id_lb - 20 sd, id_ub + 20 sd]`` around the Delta^RM(Mbar)
    identified set at ``betahat``, the grid of the build that produced the published README
    tables (verified: every published endpoint lies on it to 1e-12 grid steps).
    The grid only limits the resolution of the reported endpoints (one step = 40 sd / 999)."""
    b, s, lv = _check_inputs(betahat, sigma, num_pre, num_post, l_vec)
    hybrid = {"C-LF": "LF", "Conditional": "ARP"}.get(method)
    if hybrid is None:
        raise ValueError("method must be 'C-LF' or 'Conditional'")
    kappa = alpha / 10
    post = slice(num_pre, num_pre + num_post)
    sd_theta = float(np.sqrt(lv @ s[post, post] @ lv))
    if grid == "zero":
        lo, hi = -20 * sd_theta, 20 * sd_theta
    elif grid == "idset":
        id_lo, id_hi = rm_identified_set(b, num_pre, num_post, Mbar, lv)
        lo, hi = id_lo - 20 * sd_theta, id_hi + 20 * sd_theta
    else:
        raise ValueError("grid must be 'zero' or 'idset'")
    lo = lo if grid_lb is None else grid_lb
    hi = hi if grid_ub is None else grid_ub
    grid = np.linspace(lo, hi, grid_points)
    Gamma = _construct_gamma(lv)
    Ginv = np.linalg.inv(Gamma)
    accept = np.zeros(grid_points)
    for max_positive in (True, False):
        for sidx in range(-(num_pre - 1), 1):
            A = _create_A_RM(num_pre, num_post, Mbar, sidx, max_positive)
            d = np.zeros(A.shape[0])
            if num_post > 1:
                rows = np.flatnonzero(np.any(A[:, num_pre:] != 0, axis=1))
            else:
                keep = A[:, -1] != 0
                A, d = A[keep], d[keep]
                rows = np.arange(A.shape[0])
            AGi = A[:, num_pre:] @ Ginv
            a1 = AGi[:, 0]
            X = AGi[:, 1:]
            Y = A @ b - d
            SY = A @ s @ A.T
            Xr, Sr = X[rows], SY[np.ix_(rows, rows)]
            V = _dual_vertices(np.sqrt(np.diag(Sr)), Xr)
            cv = _lf_cv(Xr, Sr, kappa, lf_sims, seed, rng, V) if hybrid == "LF" else None
            prob = _ARPProblem(y0=Y[rows], a1=a1[rows], X=Xr, sigma=Sr, V=V, lf_cv=cv)
            accept = np.maximum(accept, _arp_accept_grid(prob, grid, alpha, hybrid, kappa))
    acc = grid[accept == 1]
    res = {
        "lb": float(acc.min()) if acc.size else np.nan,
        "ub": float(acc.max()) if acc.size else np.nan,
        "open_at_grid_end": bool(accept[0] == 1 or accept[-1] == 1),
    }
    if return_grid:
        res["grid"] = grid
        res["accept"] = accept
    return res


# --------------------------------------------------------------------------------------
# Delta^SD: optimal FLCI
# --------------------------------------------------------------------------------------
def _folded_normal_quantile(p: float, mu: float) -> float:
    """``1-alpha`` quantile of |N(mu, 1)|: solve Phi(c - mu) - Phi(-c - mu) = p."""
    mu = abs(float(mu))
    f = lambda c: stats.norm.cdf(c - mu) - stats.norm.cdf(-c - mu) - p  # noqa: E731
    hi = mu + stats.norm.ppf(p) + 10.0
    return float(optimize.brentq(f, 0.0, hi, xtol=1e-14, rtol=1e-14))


class _FLCIProblem:
    """R's FLCI programme in the variables (U, w), w the cumulated pre-period weights."""

    def __init__(self, sigma, num_pre, num_post, l_vec):
        K = num_pre
        self.K = K
        pre = slice(0, K)
        post = slice(K, K + num_post)
        t = np.arange(1, num_post + 1)
        self.sum_w = float(t @ l_vec)
        self.constant = float(
            sum(abs(np.arange(1, s_ + 1) @ l_vec[num_post - s_ :]) for s_ in range(1, num_post + 1)) - t @ l_vec
        )
        D = np.eye(K)  # l_pre = D w (first differences of w)
        for c in range(K - 1):
            D[c + 1, c] = -1.0
        self.D = D
        self.Q = D.T @ sigma[pre, pre] @ D
        self.q = 2.0 * D.T @ sigma[pre, post] @ l_vec
        self.c0 = float(l_vec @ sigma[post, post] @ l_vec)
        self.L = np.tril(np.ones((K, K)))

    def var(self, w):
        return float(w @ self.Q @ w + self.q @ w + self.c0)

    def bias(self, w):
        return self.constant + float(np.abs(self.L @ w).sum())

    def w_min_bias(self):
        w = np.zeros(self.K)
        w[-1] = self.sum_w
        return w

    def w_min_var(self):
        # min w'Qw + q'w s.t. 1'w = sum_w  (KKT linear system)
        K = self.K
        KKT = np.block([[2 * self.Q, np.ones((K, 1))], [np.ones((1, K)), np.zeros((1, 1))]])
        rhs = np.concatenate([-self.q, [self.sum_w]])
        sol = np.linalg.lstsq(KKT, rhs, rcond=None)[0]
        return sol[:K]

    def min_bias_given_h(self, h, w0):
        """min bias(w) s.t. var(w) <= h^2, sum(w) = sum_w (SOCP of .findWorstCaseBiasGivenH)."""
        K = self.K
        scale = self.var(w0) if self.var(w0) > 0 else 1.0
        L = self.L

        def obj(x):
            return x[:K].sum()

        def jac(x):
            return np.concatenate([np.ones(K), np.zeros(K)])

        cons = [
            {"type": "ineq", "fun": lambda x: x[:K] - L @ x[K:], "jac": lambda x: np.hstack([np.eye(K), -L])},
            {"type": "ineq", "fun": lambda x: x[:K] + L @ x[K:], "jac": lambda x: np.hstack([np.eye(K), L])},
            {
                "type": "ineq",
                "fun": lambda x: np.array([(h * h - self.var(x[K:])) / scale]),
                "jac": lambda x: np.concatenate([np.zeros(K), -(2 * self.Q @ x[K:] + self.q) / scale])[None, :],
            },
            {
                "type": "eq",
                "fun": lambda x: np.array([x[K:].sum() - self.sum_w]),
                "jac": lambda x: np.concatenate([np.zeros(K), np.ones(K)])[None, :],
            },
        ]
        x0 = np.concatenate([np.abs(L @ w0) + 1e-12, w0])
        res = optimize.minimize(
            obj, x0, jac=jac, constraints=cons, method="SLSQP", options={"ftol": 1e-14, "maxiter": 500}
        )
        w = res.x[K:]
        if self.var(w) > h * h * (1 + 1e-6) or abs(w.sum() - self.sum_w) > 1e-8:
            w = w0
        return self.bias(w), w


_R_FOLDED_DRAWS: dict[int, np.ndarray] = {}


def _folded_normal_quantile_r(p: float, mu: float, seed: int = 0) -> float:
    """R HonestDiD's ``.qfoldednormal``: quantile (type 7) of |z + mu| over
    ``set.seed(seed); z = rnorm(1e6)``."""
    if seed not in _R_FOLDED_DRAWS:
        _R_FOLDED_DRAWS[seed] = r_rnorm(10**6, seed)
    return float(np.quantile(np.abs(_R_FOLDED_DRAWS[seed] + mu), p))


def smoothness_flci(
    betahat, sigma, num_pre, num_post, M, l_vec=None, alpha=0.05, folded_normal: str = "exact", seed: int = 0
) -> dict:
    """Optimal FLCI for ``l_vec' tau_post`` under Delta^SD(M) (R ``findOptimalFLCI``).

    ``folded_normal="exact"``: the quantile of |N(b, 1)| by root finding (default);
    ``"R"``: R's simulated quantile (10^6 draws of R's ``rnorm`` after ``set.seed(seed)``)."""
    b, s, lv = _check_inputs(betahat, sigma, num_pre, num_post, l_vec)
    if folded_normal == "exact":
        qfn = _folded_normal_quantile
    elif folded_normal == "R":
        def qfn(p, mu):
            return _folded_normal_quantile_r(p, mu, seed)
    else:
        raise ValueError("folded_normal must be 'exact' or 'R'")
    P = _FLCIProblem(s, num_pre, num_post, lv)
    w_var = P.w_min_var()
    w_bias = P.w_min_bias()
    h_min = np.sqrt(P.var(w_var))
    h0 = np.sqrt(P.var(w_bias))
    memo: dict[float, tuple] = {}

    def bias_at(h):
        if h not in memo:
            if h <= h_min * (1 + 1e-12):
                memo[h] = (P.bias(w_var), w_var)
            elif h >= h0:
                memo[h] = (P.bias(w_bias), w_bias)
            else:
                # start from the convex combination that meets var = h^2 roughly
                t = (h - h_min) / (h0 - h_min)
                w0 = (1 - t) * w_var + t * w_bias
                if P.var(w0) > h * h:
                    w0 = w_var
                memo[h] = P.min_bias_given_h(h, w0)
        return memo[h]

    def halflength(h):
        bias, _ = bias_at(h)
        return qfn(1 - alpha, M * bias / h) * h

    if M == 0 or h0 - h_min <= 1e-12 * h0:
        h_star = h_min
    else:
        r = optimize.minimize_scalar(halflength, bounds=(h_min, h0), method="bounded", options={"xatol": 1e-10 * h0})
        cands = [h_min, h0, float(r.x)]
        h_star = min(cands, key=halflength)
    _, w = bias_at(h_star)
    l_pre = P.D @ w
    opt_vec = np.concatenate([l_pre, lv])
    half = halflength(h_star)
    center = float(opt_vec @ b)
    return {"lb": center - half, "ub": center + half, "halflength": half, "optimal_vec": opt_vec, "h": h_star}


# --------------------------------------------------------------------------------------
# public API
# --------------------------------------------------------------------------------------
def honest_did(
    betahat,
    sigma,
    num_pre: int | None = None,
    num_post: int | None = None,
    method: str = "relative_magnitude",
    Mbar=None,
    M=None,
    l_vec=None,
    alpha: float = 0.05,
    inference: str | None = None,
    grid_points: int = 1000,
    seed: int = 0,
    rng: str = "numpy",
    grid: str = "idset",
) -> pd.DataFrame:
    """Sensitivity table ``(M, lb, ub, method, inference, Delta)`` for a grid of M / Mbar.

    ``betahat``/``sigma`` may be arrays (pre periods first, reference omitted) or a Series
    and the ``tables["vcov_dynamic"]`` DataFrame indexed by event time (then ``num_pre`` =
    number of negative event times, ``num_post`` = the others). ``l_vec=None`` targets the
    first post period; ``l_vec="average"`` the average of the post periods (aggregated
    ATT over the event window).

    * ``method="relative_magnitude"``: grid ``Mbar`` (default 0, 0.5, ..., 2), inference
      ``"C-LF"`` (default, as R) or ``"Conditional"``; ``rng="R"`` reproduces R's
      least-favourable draws (``seed`` = R's ``set.seed``), ``grid`` see
      :func:`relative_magnitude_ci`.
    * ``method="smoothness"``: grid ``M`` (default: 10 points on [0, sd(beta_pre_1)]),
      inference ``"FLCI"``.
    """
    betahat, sigma, num_pre, num_post = _split_event_study(betahat, sigma, num_pre, num_post)
    if isinstance(l_vec, str):
        if l_vec != "average":
            raise ValueError("l_vec must be None, 'average' or a vector")
        l_vec = np.full(num_post, 1.0 / num_post)
    b, s, lv = _check_inputs(betahat, sigma, num_pre, num_post, l_vec)
    rows = []
    if method == "relative_magnitude":
        inference = inference or "C-LF"
        mgrid = [0.0, 0.5, 1.0, 1.5, 2.0] if Mbar is None else list(np.atleast_1d(Mbar))
        for mb in mgrid:
            r = relative_magnitude_ci(
                b, s, num_pre, num_post, float(mb), lv, alpha, inference, grid_points, seed=seed, rng=rng, grid=grid
            )
            rows.append({"M": float(mb), "lb": r["lb"], "ub": r["ub"], "method": method,
                         "inference": inference, "Delta": "DeltaRM"})
    elif method == "smoothness":
        inference = inference or "FLCI"
        if inference != "FLCI":
            raise ValueError("smoothness: only inference='FLCI' is implemented")
        mgrid = list(np.linspace(0, np.sqrt(s[0, 0]), 10)) if M is None else list(np.atleast_1d(M))
        for m_ in mgrid:
            r = smoothness_flci(b, s, num_pre, num_post, float(m_), lv, alpha)
            rows.append({"M": float(m_), "lb": r["lb"], "ub": r["ub"], "method": method,
                         "inference": inference, "Delta": "DeltaSD"})
    else:
        raise ValueError("method must be 'relative_magnitude' or 'smoothness'")
    return pd.DataFrame(rows)


def breakdown_value(
    betahat,
    sigma,
    num_pre: int | None = None,
    num_post: int | None = None,
    method: str = "relative_magnitude",
    l_vec=None,
    alpha: float = 0.05,
    null: float = 0.0,
    upper: float | None = None,
    tol: float | None = None,
    **kwargs,
) -> float:
    """Largest M (Mbar) for which the robust CI still excludes ``null``.

    Bisection on ``[0, upper]`` (default upper = 10 for RM, 10 x sd(theta) for SD) to
    ``tol`` (default 0.01 for RM, 1e-3 x sd(theta) for SD); robust CIs widen with M so the
    exclusion region is an interval ``[0, breakdown)``. Returns 0.0 if the CI at M = 0
    already covers ``null``, ``inf`` if it excludes it at ``upper``. (R HonestDiD reports
    the breakdown informally from the M grid; this is the same quantity on a fine scale.)
    """
    betahat, sigma, num_pre, num_post = _split_event_study(betahat, sigma, num_pre, num_post)
    if isinstance(l_vec, str):
        l_vec = np.full(num_post, 1.0 / num_post)
    b, s, lv = _check_inputs(betahat, sigma, num_pre, num_post, l_vec)
    post = slice(num_pre, num_pre + num_post)
    sd_theta = float(np.sqrt(lv @ s[post, post] @ lv))

    def excludes(m):
        if method == "relative_magnitude":
            r = relative_magnitude_ci(b, s, num_pre, num_post, m, lv, alpha, **kwargs)
        else:
            r = smoothness_flci(b, s, num_pre, num_post, m, lv, alpha)
        return not (r["lb"] <= null <= r["ub"])

    hi = upper if upper is not None else (10.0 if method == "relative_magnitude" else 10 * sd_theta)
    tol = tol if tol is not None else (0.01 if method == "relative_magnitude" else 1e-3 * sd_theta)
    if not excludes(0.0):
        return 0.0
    if excludes(hi):
        return float("inf")
    lo = 0.0
    while hi - lo > tol:
        mid = (lo + hi) / 2
        if excludes(mid):
            lo = mid
        else:
            hi = mid
    return lo
