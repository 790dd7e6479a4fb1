"""Unconditional Callaway & Sant'Anna (2021) ATT(g,t) from per-cohort sufficient statistics.

On a balanced panel without covariates each cell :math:`j = (g,t)` with base period
:math:`b` is :math:`ATT_j = d_j'\\bar Y_g - \\sum_{h\\in C_j} n_h d_j'\\bar Y_h / n_{C_j}` with
:math:`d_j = e_t - e_b` (a T-vector) and comparison cohorts :math:`C_j` (R did's rules, as in
:mod:`models.did.att_gt`). The influence function of unit :math:`i` of cohort :math:`h` is
affine in its outcome vector :math:`Y_i`:

.. math::  \\psi_{ij} = \\alpha_{hj}\\,(d_j'Y_i - \\mu_{hj}),\\qquad
           \\alpha_{hj} = n/n_g,\\ \\mu_{hj}=d_j'\\bar Y_g \\text{ if } h=g;\\quad
           \\alpha_{hj} = -n/n_{C_j},\\ \\mu_{hj}=\\bar\\mu_{0j} \\text{ if } h\\in C_j;\\quad 0 \\text{ else},

i.e. :math:`\\psi_i = A_h (Y_i-\\bar Y_h) + m_h` with :math:`A_h = \\mathrm{diag}(\\alpha_h) D`
(rows :math:`d_j'`) and :math:`m_h = \\alpha_h\\circ(D\\bar Y_h - \\mu_h)` the cohort mean of
:math:`\\psi`. Hence the meat :math:`M = \\Phi'\\Phi`, :math:`\\Phi = [\\Psi, G]`, that every
analytic SE of att_gt and aggte needs (:mod:`models.did._ifbasis`) is

.. math::  \\Psi'\\Psi = \\sum_h A_h W_h A_h' + n_h m_h m_h', \\quad \\Psi'G_h = n_h m_h,
           \\quad G'G = \\mathrm{diag}(n_h),

with :math:`W_h = \\sum_{i\\in h}(Y_i-\\bar Y_h)(Y_i-\\bar Y_h)'` the within-cohort scatter. With a
cluster variable, the cluster sums of :math:`\\Phi` need, per (cluster c, cohort h), the count
:math:`n_{ch}` and the sum :math:`S_{ch}=\\sum Y_i`: :math:`\\sum_{i\\in c,h}\\psi_i =
A_h(S_{ch}-n_{ch}\\bar Y_h) + n_{ch} m_h`. All of these are one group-by pass over the panel
(:mod:`pipeline.engine` computes them in DuckDB or pandas; :meth:`Moments.from_arrays` from an
in-memory units x periods matrix).

Numbers equal the dense path of :func:`models.did.att_gt.att_gt` up to rounding (tests:
``tests/test_engine.py``, 1e-10). Means and within-cohort scatters, not raw
:math:`\\sum Y` and :math:`\\sum YY'`, are stored: raw second moments lose digits when the
level of :math:`Y` is large relative to its spread (:attr:`Moments.S`/:attr:`Moments.Q` give
the raw ones). What moments cannot give: the multiplier bootstrap / uniform bands (they draw
per-unit multipliers) -- :func:`att_gt_from_moments` raises ConfigError for them -- and
covariates (the 2x2 regressions need unit-level data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError, DesignError
from ._ifbasis import GramBasis
from .att_gt import AttGtResult, cell_inference, gt_cells, notyet_threshold


@dataclass
class Moments:
    """Per-cohort sufficient statistics of a balanced panel (cohort 0 = never treated, after
    R did's recodings; always-treated and unbalanced units already removed)."""

    periods: np.ndarray  # (T,) sorted
    cohorts: np.ndarray  # (H,) sorted, 0 = never treated
    n: np.ndarray  # (H,) units per cohort
    mean: np.ndarray  # (H, T) cohort means of Y_t
    scatter: np.ndarray  # (H, T, T) within-cohort sum of (Y - mean)(Y - mean)'
    exclude_g: float | None = None  # cohort used only as a comparison (no never-treated, notyettreated)
    # per (cluster, cohort) rows, optional
    cluster_code: np.ndarray | None = None  # (m,) 0..C-1
    cluster_cohort: np.ndarray | None = None  # (m,) position in ``cohorts``
    cluster_n: np.ndarray | None = None  # (m,)
    cluster_sum: np.ndarray | None = None  # (m, T) sum of Y
    n_obs: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def S(self) -> np.ndarray:
        """Raw sums :math:`S_h = \\sum_{i\\in h} Y_i` (H x T)."""
        return self.n[:, None] * self.mean

    @property
    def Q(self) -> np.ndarray:
        """Raw cross-products :math:`Q_h = \\sum_{i\\in h} Y_iY_i'` (H x T x T)."""
        return self.scatter + self.n[:, None, None] * np.einsum("ht,hs->hts", self.mean, self.mean)

    @property
    def n_units(self) -> int:
        return int(self.n.sum())

    @property
    def n_clusters(self) -> int | None:
        return None if self.cluster_code is None else int(np.unique(self.cluster_code).size)

    @classmethod
    def from_arrays(cls, Y: np.ndarray, cohort: np.ndarray, periods: np.ndarray, cluster: np.ndarray | None = None, **kw) -> Moments:
        """Moments of a units x periods matrix ``Y`` with per-unit ``cohort`` (0 = never)
        and optional per-unit integer ``cluster`` codes (numpy; the in-memory engine)."""
        cohorts, pos = np.unique(cohort, return_inverse=True)
        H, T = cohorts.size, Y.shape[1]
        n = np.bincount(pos, minlength=H)
        mean = np.zeros((H, T))
        scatter = np.zeros((H, T, T))
        for h in range(H):
            Yh = Y[pos == h]
            mean[h] = Yh.mean(axis=0)
            Z = Yh - mean[h]
            scatter[h] = Z.T @ Z
        cl = {}
        if cluster is not None:
            key = pd.DataFrame({"c": cluster, "h": pos})
            grp = key.groupby(["c", "h"], sort=True)
            sums = pd.DataFrame(Y).groupby([key["c"], key["h"]], sort=True).sum()
            idx = sums.index.to_frame(index=False)
            cl = dict(
                cluster_code=pd.factorize(idx["c"])[0].astype(np.int64),
                cluster_cohort=idx["h"].to_numpy(np.int64),
                cluster_n=grp.size().to_numpy(np.int64),
                cluster_sum=sums.to_numpy(float),
            )
        return cls(np.asarray(periods), cohorts.astype(np.int64), n, mean, scatter, **cl, **kw)


def _cluster_meat(m: Moments, alpha: np.ndarray, D: np.ndarray, mh: np.ndarray, block_bytes: int = 200 * 2**20) -> np.ndarray:
    """:math:`S'S` with S the cluster sums of :math:`[\\Psi, G]`, accumulated over blocks of
    clusters (memory O(block x (k+H)), never O(clusters x cells))."""
    k, H = D.shape[0], m.cohorts.size
    order = np.argsort(m.cluster_code, kind="stable")
    code = m.cluster_code[order]
    h = m.cluster_cohort[order]
    nr = m.cluster_n[order].astype(float)
    Z = m.cluster_sum[order] - nr[:, None] * m.mean[h]
    starts = np.flatnonzero(np.r_[True, code[1:] != code[:-1]])
    M = np.zeros((k + H, k + H))
    per_block = max(1, block_bytes // (8 * (k + H) * 2))
    for b0 in range(0, starts.size, per_block):
        s0 = starts[b0]
        s1 = starts[b0 + per_block] if b0 + per_block < starts.size else code.size
        rows = slice(s0, s1)
        vals = np.zeros((s1 - s0, k + H))
        vals[:, :k] = alpha[h[rows]] * (Z[rows] @ D.T) + nr[rows, None] * mh[h[rows]]
        vals[np.arange(s1 - s0), k + h[rows]] = nr[rows]
        S = np.add.reduceat(vals, starts[b0 : b0 + per_block] - s0, axis=0)
        M += S.T @ S
    return M


def att_gt_from_moments(
    m: Moments,
    control_group: str = "nevertreated",
    base_period: str = "varying",
    anticipation: int = 0,
    alp: float = 0.05,
    bstrap: bool = False,
    cband: bool = False,
    settings: dict | None = None,
) -> AttGtResult:
    """Unconditional ATT(g,t) with analytic SEs from :class:`Moments`; returns an
    :class:`~models.did.att_gt.AttGtResult` without per-unit data (``inf_func`` None, the
    Gram matrix in ``meat``) that :func:`models.did.aggte.aggte` aggregates exactly as the
    dense result. ``bstrap``/``cband`` raise ConfigError (they need per-unit influence
    functions: use the in-memory path)."""
    problems = []
    if control_group not in ("nevertreated", "notyettreated"):
        problems.append(f"control_group={control_group!r}; use 'nevertreated' or 'notyettreated'")
    if base_period not in ("varying", "universal"):
        problems.append(f"base_period={base_period!r}; use 'varying' or 'universal'")
    if bstrap or cband:
        problems.append(
            "bstrap/cband need per-unit influence functions (multiplier bootstrap); the sufficient-statistics "
            "path has none: set engine: pandas, or bstrap: false and cband: false"
        )
    if problems:
        raise ConfigError("att_gt_from_moments: bad options:", problems=problems)
    tlist = np.asarray(m.periods, dtype=float)
    cohorts = np.asarray(m.cohorts, dtype=float)
    H, T = cohorts.size, tlist.size
    n_h = np.asarray(m.n, dtype=float)
    n = int(n_h.sum())
    if n == 0:
        raise DesignError("att_gt: no units left after dropping always-treated and unbalanced units")
    ug = np.where(cohorts == 0, np.inf, cohorts)
    never = np.isinf(ug)
    glist = ug[np.isfinite(ug) & (ug > tlist[0] + anticipation)]
    if m.exclude_g is not None and control_group != "nevertreated":
        glist = glist[glist < m.exclude_g]
    if glist.size == 0:
        raise DesignError("att_gt: no treated cohort with a pre-treatment period in the data")
    cells = gt_cells(tlist, glist, base_period, anticipation)
    k = len(cells)
    D = np.zeros((k, T))
    alpha = np.zeros((H, k))
    mu = np.zeros((H, k))
    att = np.full(k, np.nan)
    n_cell = np.zeros(k, dtype=np.int64)
    n_tr = np.zeros(k, dtype=np.int64)
    notes = list(m.notes)
    na_reasons: dict = {}
    for j, (g, tt, post_idx, pret) in enumerate(cells):
        if base_period == "universal" and pret == post_idx:
            att[j] = 0.0  # normalised reference period; zero influence function
            continue
        Gm = ug == g
        if control_group == "nevertreated":
            Cm = never
        else:
            Cm = never | ((ug > notyet_threshold(tlist, post_idx, pret, base_period, anticipation)) & ~Gm)
        ng, nc = n_h[Gm].sum(), n_h[Cm].sum()
        n_cell[j], n_tr[j] = int(ng + nc), int(ng)
        if ng == 0 or nc == 0:
            notes.append(f"no {'treated' if ng == 0 else 'comparison'} units for (g,t)=({g:g},{tt:g}); ATT set to NA")
            na_reasons[(g, tt)] = f"no {'treated' if ng == 0 else 'comparison'} units"
            continue
        D[j, post_idx], D[j, pret] = 1.0, -1.0
        md = m.mean[:, post_idx] - m.mean[:, pret]  # cohort means of dY
        mu1 = md[Gm].sum()
        mu0 = (n_h[Cm] * md[Cm]).sum() / nc
        att[j] = mu1 - mu0
        alpha[Gm, j], mu[Gm, j] = n / ng, mu1
        alpha[Cm, j], mu[Cm, j] = -n / nc, mu0
    # per-cohort mean of psi and the meat
    mh = alpha * (m.mean @ D.T - mu)  # (H, k)
    if m.cluster_code is None:
        M = np.zeros((k + H, k + H))
        for h in range(H):
            A = alpha[h][:, None] * D
            M[:k, :k] += A @ m.scatter[h] @ A.T + n_h[h] * np.outer(mh[h], mh[h])
        M[:k, k:] = (n_h[:, None] * mh).T
        M[k:, :k] = M[:k, k:].T
        M[k:, k:] = np.diag(n_h)
        n_clusters = n
    else:
        M = _cluster_meat(m, alpha, D, mh)
        n_clusters = m.n_clusters
    basis = GramBasis(M, k)
    groups = np.array([c[0] for c in cells])
    times = np.array([c[1] for c in cells])
    se, wald = cell_inference(att, basis, n, groups=groups, times=times)
    method_settings = {
        "covariates": [],
        "control_group": control_group,
        "est_method": "unconditional",
        "base_period": base_period,
        "anticipation": int(anticipation),
        "alp": alp,
        "bstrap": False,
        "biters": 0,
        "cband": False,
        "seed": 0,
        "covariates_time_varying": False,
        "engine": "moments",
    }
    return AttGtResult(
        groups=groups.astype(np.int64),
        times=times.astype(np.int64),
        att=att,
        se=se,
        inf_func=None,
        base_periods=np.array([tlist[c[3]] for c in cells]).astype(np.int64),
        n_cell=n_cell,
        n_treated_cell=n_tr,
        unit_ids=None,
        unit_cohort=None,
        cluster=None,
        n=n,
        tlist=tlist.astype(np.int64),
        glist=glist.astype(np.int64),
        crit_val=float(stats.norm.ppf(1 - alp / 2)),
        wald_pretest=wald,
        n_obs=int(m.n_obs or n * T),
        dropped=dict(m.dropped),
        settings={**method_settings, **(settings or {})},
        notes=notes,
        na_reasons=na_reasons,
        cohort_labels=np.asarray(m.cohorts, dtype=np.int64),
        cohort_n=np.asarray(m.n, dtype=np.int64),
        meat=M,
        n_clusters_=n_clusters,
        _basis=basis,
    )


def moments_from_frame(
    data: pd.DataFrame,
    yname: str,
    tname: str,
    idname: str,
    gname: str,
    clustervar: str | None = None,
    anticipation: int = 0,
    control_group: str = "nevertreated",
) -> Moments:
    """:class:`Moments` of an in-memory long panel, with exactly att_gt's validation,
    recodings and drops (it runs att_gt's own preparation, then one numpy pass)."""
    from .att_gt import _prepare

    if clustervar == idname:
        clustervar = None
    P = _prepare(data, yname, tname, idname, gname, (), clustervar, anticipation, control_group)
    cohort = np.where(np.isinf(P.unit_g), 0, P.unit_g).astype(np.int64)
    return Moments.from_arrays(
        P.Y, cohort, P.tlist.astype(np.int64), cluster=P.cluster, exclude_g=P.exclude_g, n_obs=P.n_obs, dropped=dict(P.dropped), notes=list(P.notes)
    )
