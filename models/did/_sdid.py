"""Synthetic difference-in-differences on one block (matrix level): the weights, the estimate
and its placebo / jackknife / bootstrap variance, for one or several adoption cohorts.

Arkhangelsky, Athey, Hirshberg, Imbens & Wager (2021, AER 111(12), "Synthetic Difference-in-
Differences"), Algorithm 1 (estimate) and Algorithms 2-4 (bootstrap, jackknife, placebo
variance). Conventions follow R ``synthdid`` 0.0.9 (synth-inference/synthdid), whose defaults
are documented in ``synthdid_estimate``; implemented here from the paper and that
documentation:

* ``Y`` is ``N x T`` with the ``N0`` control rows first and the ``T0`` pre-periods first.
* noise level :math:`\\hat\\sigma` = sample SD of the first differences of the control
  outcomes over the pre-periods; :math:`\\zeta_\\omega = (N_{tr}T_{post})^{1/4}\\hat\\sigma`
  (paper eq. 2.3), :math:`\\zeta_\\lambda = 10^{-6}\\hat\\sigma`.
* Both weight problems are solved on the *collapsed form* (treated rows and post columns
  averaged) with intercepts (the columns demeaned), by Frank-Wolfe with exact line search on
  the simplex; objective :math:`\\zeta^2\\|x\\|^2 + \\|Ax-b\\|^2/n` (n = rows of A). Stop when an
  iteration decreases the objective by less than ``min_decrease**2`` (``min_decrease =
  1e-5 sigma``) or after ``max_iter = 10000`` iterations; first 100 iterations from uniform
  weights, then ``sparsify`` (weights <= max/4 set to 0, renormalised) and a second run from
  there (synthdid's ``sparsify_function``).
* estimate :math:`\\hat\\tau = (-\\omega, 1/N_1)' Y (-\\lambda, 1/T_1)`.
* placebo SE (Algorithm 4): permute the controls, the last N1 become placebo treated, re-fit
  (weights re-solved, started at the renormalised fitted weights, zetas and stopping rule of
  the fit), SE = :math:`\\sqrt{(R-1)/R}` x SD of the R placebo estimates. Jackknife (Algorithm
  3): leave one unit out with the weights fixed (renormalised), :math:`\\sqrt{(n-1)^2/n\\,
  \\mathrm{var}(u)}`; undefined with one treated unit or one control of non-zero weight.
  Bootstrap (Algorithm 2): resample units, draws with no control or no treated unit redrawn.

Several cohorts (staggered adoption, Arkhangelsky et al. 2021 section 8 / Clarke, Pailañir,
Athey & Imbens 2023, "On synthetic difference-in-differences and related estimation methods
in Stata", section 3): one SDID per cohort on the shared never-treated controls with that
cohort's own pre/post split, averaged with weights :math:`N_g T_{post,g} / \\sum_h N_h
T_{post,h}` (the cohort's treated unit-periods). Variance draws act on the whole design: a
placebo draw permutes the controls and hands consecutive blocks of the permuted order (from
the end) to the cohorts as placebo treated; a bootstrap draw drops cohorts that get no
treated unit; the jackknife leaves out every unit once. With one cohort each reduces exactly
to synthdid's algorithm (tested against R with R's own permutations).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

MAX_ITER = 10_000
MAX_ITER_PRE_SPARSIFY = 100
ETA_LAMBDA = 1e-6
MIN_DECREASE_FACTOR = 1e-5


def sparsify(v: np.ndarray) -> np.ndarray:
    """synthdid's ``sparsify_function``: weights at or below max/4 set to zero, renormalised."""
    v = np.where(v <= v.max() / 4, 0.0, v)
    return v / v.sum()


def sum_normalize(x: np.ndarray) -> np.ndarray:
    """``x / sum(x)``, or uniform weights when ``x`` sums to zero (synthdid's convention)."""
    s = x.sum()
    return x / s if s != 0 else np.full(x.size, 1.0 / x.size)


def fw_weights(Y: np.ndarray, zeta: float, x0: np.ndarray | None, min_decrease: float, max_iter: int) -> np.ndarray:
    """Simplex weights x minimising ``zeta^2 |x|^2 + |A x - b|^2 / n`` with A = Y[:, :-1],
    b = Y[:, -1] after demeaning every column (the intercept), by Frank-Wolfe with exact line
    search (Jaggi 2013); stops when one step lowers the objective by < ``min_decrease^2``."""
    n, k1 = Y.shape
    k = k1 - 1
    Yc = Y - Y.mean(axis=0)
    A = np.ascontiguousarray(Yc[:, :k])
    b = np.ascontiguousarray(Yc[:, k])
    x = np.full(k, 1.0 / k) if x0 is None else np.array(x0, dtype=float)
    z2 = float(zeta) ** 2
    return _fw_loop(A, b, x, n * z2, z2, float(min_decrease) ** 2, int(max_iter))


@njit(cache=False)
def _fw_loop(A, b, x, eta, z2, tol, max_iter):  # pragma: no cover - compiled
    """The Frank-Wolfe iterations of :func:`fw_weights` (explicit loops: a fixed summation
    order, so the result does not depend on a BLAS kernel)."""
    n, k = A.shape
    Ax = np.empty(n)
    g = np.empty(k)
    prev = np.inf
    cur = np.inf
    t = 0
    while t < max_iter and (t < 2 or prev - cur > tol):
        t += 1
        for r in range(n):
            s = 0.0
            for j in range(k):
                s += A[r, j] * x[j]
            Ax[r] = s - b[r]  # residual A x - b
        i = 0
        for j in range(k):
            s = 0.0
            for r in range(n):
                s += Ax[r] * A[r, j]
            g[j] = s + eta * x[j]
            if g[j] < g[i]:
                i = j
        # direction d = e_i - x; grad . d and |d|^2
        gd = g[i]
        dd = 0.0
        nonzero = False
        for j in range(k):
            dj = (1.0 if j == i else 0.0) - x[j]
            if dj != 0.0:
                nonzero = True
            gd -= g[j] * x[j]
            dd += dj * dj
        if nonzero:
            de = 0.0
            for r in range(n):
                e = A[r, i] - (Ax[r] + b[r])
                de += e * e
            step = -gd / (de + eta * dd)
            step = min(1.0, max(0.0, step))
            for j in range(k):
                x[j] += step * ((1.0 if j == i else 0.0) - x[j])
        xx = 0.0
        for j in range(k):
            xx += x[j] * x[j]
        ee = 0.0
        for r in range(n):
            s = 0.0
            for j in range(k):
                s += A[r, j] * x[j]
            s -= b[r]
            ee += s * s
        prev = cur
        cur = z2 * xx + ee / n
    return x


def collapsed(Y: np.ndarray, N0: int, T0: int) -> np.ndarray:
    """``(N0+1) x (T0+1)``: controls' pre-periods, their post mean; the treated mean row."""
    top = np.column_stack([Y[:N0, :T0], Y[:N0, T0:].mean(axis=1)])
    bottom = np.append(Y[N0:, :T0].mean(axis=0), Y[N0:, T0:].mean())
    return np.vstack([top, bottom])


@dataclass
class Opts:
    """Tuning of a fit (kept for its placebo/bootstrap re-fits, as synthdid's ``opts``)."""

    zeta_omega: float
    zeta_lambda: float
    min_decrease: float
    noise_level: float


def default_opts(Y: np.ndarray, N0: int, T0: int) -> Opts:
    """synthdid's defaults: sigma = SD of first differences of control pre-period outcomes."""
    sigma = float(np.std(np.diff(Y[:N0, :T0], axis=1), ddof=1))
    N1, T1 = Y.shape[0] - N0, Y.shape[1] - T0
    return Opts(((N1 * T1) ** 0.25) * sigma, ETA_LAMBDA * sigma, MIN_DECREASE_FACTOR * sigma, sigma)


def solve(Y: np.ndarray, N0: int, T0: int, opts: Opts, omega0=None, lambda0=None) -> tuple[np.ndarray, np.ndarray]:
    """(omega, lambda) of Algorithm 1 with synthdid's two-round sparsified Frank-Wolfe."""
    Yc = collapsed(Y, N0, T0)

    def two_rounds(M, zeta, x0):
        x = fw_weights(M, zeta, x0, opts.min_decrease, MAX_ITER_PRE_SPARSIFY)
        return fw_weights(M, zeta, sparsify(x), opts.min_decrease, MAX_ITER)

    lam = two_rounds(Yc[:N0, :], opts.zeta_lambda, lambda0)
    omega = two_rounds(Yc[:, :T0].T, opts.zeta_omega, omega0)
    return omega, lam


def tau(Y: np.ndarray, N0: int, T0: int, omega: np.ndarray, lam: np.ndarray) -> float:
    """:math:`(-\\omega, 1/N_1)' Y (-\\lambda, 1/T_1)`."""
    N1, T1 = Y.shape[0] - N0, Y.shape[1] - T0
    a = np.concatenate([-omega, np.full(N1, 1.0 / N1)])
    c = np.concatenate([-lam, np.full(T1, 1.0 / T1)])
    return float(a @ Y @ c)


@dataclass
class Cohort:
    """One adoption cohort: its treated rows ``Y1`` (``N1 x T``), its ``T0`` pre-periods and
    the fitted weights on the shared controls ``Y0`` (``N0 x T``)."""

    Y1: np.ndarray
    T0: int
    opts: Opts | None = None
    omega: np.ndarray | None = None
    lam: np.ndarray | None = None
    estimate: float = np.nan

    @property
    def N1(self) -> int:
        return self.Y1.shape[0]

    @property
    def T1(self) -> int:
        return self.Y1.shape[1] - self.T0


def cohort_weights(n1: np.ndarray, t1: np.ndarray) -> np.ndarray:
    """Aggregation weights of the cohorts: treated unit-periods N_g T_post,g, normalised."""
    w = np.asarray(n1, float) * np.asarray(t1, float)
    return w / w.sum()


def fit(Y0: np.ndarray, cohorts: list[Cohort]) -> float:
    """Fit every cohort on the controls ``Y0`` (in place); returns the aggregated estimate."""
    N0 = Y0.shape[0]
    for c in cohorts:
        Y = np.vstack([Y0, c.Y1])
        c.opts = default_opts(Y, N0, c.T0)
        c.omega, c.lam = solve(Y, N0, c.T0, c.opts)
        c.estimate = tau(Y, N0, c.T0, c.omega, c.lam)
    return aggregate([c.estimate for c in cohorts], [c.N1 for c in cohorts], [c.T1 for c in cohorts])


def aggregate(est, n1, t1) -> float:
    est = np.asarray(est, float)
    ok = np.isfinite(est) & (np.asarray(n1) > 0)
    if not ok.any():
        return np.nan
    return float(cohort_weights(np.asarray(n1)[ok], np.asarray(t1)[ok]) @ est[ok])


def _refit(Y0: np.ndarray, c: Cohort, rows0: np.ndarray, Y1: np.ndarray) -> float:
    """Re-fit cohort ``c`` on controls ``Y0[rows0]`` and treated ``Y1``, weights re-solved
    from the fit's (renormalised) weights with the fit's zetas and stopping rule."""
    Y = np.vstack([Y0[rows0], Y1])
    omega, lam = solve(Y, rows0.size, c.T0, c.opts, sum_normalize(c.omega[rows0]), c.lam)
    return tau(Y, rows0.size, c.T0, omega, lam)


def _se(draws: np.ndarray) -> np.ndarray:
    """sqrt((R-1)/R) x SD over the draws (per column; NaN draws skipped), synthdid's scaling."""
    out = []
    for col in np.atleast_2d(draws.T):
        col = col[np.isfinite(col)]
        r = col.size
        out.append(np.sqrt((r - 1) / r) * np.std(col, ddof=1) if r > 1 else np.nan)
    return np.array(out)


def placebo_draws(Y0: np.ndarray, cohorts: list[Cohort], perms) -> np.ndarray:
    """``R x (G+1)`` placebo estimates (per cohort, then aggregated), one row per permutation
    of the control rows (0-based)."""
    N0 = Y0.shape[0]
    n1 = np.array([c.N1 for c in cohorts])
    n0p = N0 - n1.sum()
    out = np.empty((len(perms), len(cohorts) + 1))
    for r, ind in enumerate(perms):
        ind = np.asarray(ind)
        rows0 = ind[:n0p]
        start = n0p
        for k, c in enumerate(cohorts):
            tr = ind[start:start + c.N1]
            start += c.N1
            out[r, k] = _refit(Y0, c, rows0, Y0[tr])
        out[r, -1] = aggregate(out[r, :-1], n1, [c.T1 for c in cohorts])
    return out


def placebo_se(Y0: np.ndarray, cohorts: list[Cohort], replications: int, rng: np.random.Generator,
               perms=None) -> tuple[np.ndarray, int]:
    """Placebo SEs (per cohort, then aggregated) and the number of draws. ``perms`` (R x N0
    permutations) replaces the draws from ``rng`` (to replay another program's draws)."""
    if perms is None:
        perms = [rng.permutation(Y0.shape[0]) for _ in range(replications)]
    d = placebo_draws(Y0, cohorts, perms)
    return _se(d), d.shape[0]


def jackknife_se(Y0: np.ndarray, cohorts: list[Cohort]) -> tuple[np.ndarray, int]:
    """Fixed-weights jackknife SEs (Algorithm 3): per cohort over its controls and treated
    (synthdid's jackknife of that block), aggregated over every unit. Weights renormalised."""
    N0 = Y0.shape[0]
    per = []
    allc = np.arange(N0)
    t1 = [c.T1 for c in cohorts]

    def est_without(c: Cohort, drop_control: int | None, drop_treated: int | None) -> float:
        rows0 = allc if drop_control is None else np.delete(allc, drop_control)
        Y1 = c.Y1 if drop_treated is None else np.delete(c.Y1, drop_treated, axis=0)
        if Y1.shape[0] == 0:
            return np.nan
        Y = np.vstack([Y0[rows0], Y1])
        return tau(Y, rows0.size, c.T0, sum_normalize(c.omega[rows0]), c.lam)

    def jk(u: np.ndarray) -> float:
        n = u.size
        return float(np.sqrt((n - 1) / n * (n - 1) * np.var(u, ddof=1)))

    for c in cohorts:
        u = [est_without(c, j, None) for j in range(N0)] + [est_without(c, None, i) for i in range(c.N1)]
        per.append(jk(np.array(u)))
    u_all = []
    for j in range(N0):
        u_all.append(aggregate([est_without(c, j, None) for c in cohorts], [c.N1 for c in cohorts], t1))
    for k, ck in enumerate(cohorts):
        for i in range(ck.N1):
            e = [est_without(c, None, i) if c is ck else c.estimate for c in cohorts]
            n1 = [c.N1 - (c is ck) for c in cohorts]
            u_all.append(aggregate(e, n1, t1))
    return np.array(per + [jk(np.array(u_all))]), N0 + sum(c.N1 for c in cohorts)


def bootstrap_se(Y0: np.ndarray, cohorts: list[Cohort], replications: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Unit bootstrap SEs (Algorithm 2): resample controls and treated units together with
    replacement (a draw with no control or no treated unit is redrawn); cohorts without a
    treated unit in a draw drop out of that draw's average."""
    N0 = Y0.shape[0]
    owner = np.concatenate([np.full(N0, -1)] + [np.full(c.N1, k) for k, c in enumerate(cohorts)])
    local = np.concatenate([np.arange(N0)] + [np.arange(c.N1) for c in cohorts])
    n = owner.size
    t1 = [c.T1 for c in cohorts]
    out = np.empty((replications, len(cohorts) + 1))
    r = 0
    while r < replications:
        ind = np.sort(rng.integers(0, n, n))
        if np.all(owner[ind] == -1) or np.all(owner[ind] >= 0):
            continue
        rows0 = local[ind[owner[ind] == -1]]
        n1 = []
        for k, c in enumerate(cohorts):
            tr = local[ind[owner[ind] == k]]
            n1.append(tr.size)
            out[r, k] = _refit(Y0, c, rows0, c.Y1[tr]) if tr.size else np.nan
        out[r, -1] = aggregate(out[r, :-1], n1, t1)
        r += 1
    return _se(out), replications
