"""Aggregation of group-time ATTs (Callaway & Sant'Anna 2021, Section 3), as R did's
``aggte`` / ``compute.aggte`` (did 2.5.1), computed purely from a stored
:class:`~models.did.att_gt.AttGtResult` (no re-estimation).

With cohort shares :math:`\\hat p_g = n^{-1}\\sum_i 1\\{G_i = g\\}` (all units, including the
never treated) and the post-treatment cells :math:`\\mathcal K = \\{(g,t): g\\le t\\le g+\\bar e\\}`:

* ``simple``: :math:`\\theta = \\sum_{\\mathcal K} \\hat p_g ATT(g,t) / \\sum_{\\mathcal K}\\hat p_g`;
* ``dynamic``: :math:`\\theta(e) = \\sum_g 1\\{t-g=e\\}\\hat p_g ATT(g,g+e)/\\sum_g 1\\{t-g=e\\}\\hat p_g`
  for every event time (leads included), overall = mean of :math:`\\theta(e)` over
  :math:`e\\ge 0`; ``balance_e`` keeps cohorts observed for at least ``balance_e`` periods
  after treatment and event times in ``[balance_e - (T_max - T_min), balance_e]``;
* ``group``: :math:`\\theta(g)` = mean of the cohort's post cells, overall
  :math:`\\sum_g \\hat p_g\\theta(g)/\\sum_g\\hat p_g`;
* ``calendar``: :math:`\\theta(t)` = :math:`\\hat p_g`-weighted mean of the post cells of
  period :math:`t`, overall = mean over :math:`t`.

Influence functions: :math:`\\psi^{agg} = \\Psi w + \\psi^{w}\\,ATT_{\\mathcal K}` where the
second ("wif") term accounts for estimating the weights :math:`\\hat p_g/\\sum\\hat p_g`
(R did's ``wif``; included for simple, dynamic(e), calendar(t) and the group overall, as in
R). Standard errors as in att_gt: :math:`\\sqrt{\\sum_i\\psi_i^2}/n` (or cluster sums), or the
multiplier bootstrap; ``cband`` gives a sup-t critical value for the per-e/g/t estimates.
``max_e`` also restricts ``simple`` and ``group`` (as in R), measured in positions of the
sorted period list (identical to periods for consecutive years).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError, DesignError
from ..inference.multiplier import cluster_sums, mboot
from .att_gt import AttGtResult

_EPS10 = np.sqrt(np.finfo(float).eps) * 10


@dataclass
class AggteResult:
    type: str
    overall_att: float
    overall_se: float
    egt: np.ndarray | None  # event times / groups / periods (None for simple)
    att_egt: np.ndarray | None
    se_egt: np.ndarray | None
    crit_val_egt: float | None
    inf_func_egt: np.ndarray | None  # n x len(egt); None when att_gt holds no per-unit IFs
    inf_func_overall: np.ndarray | None
    n: int
    alp: float
    settings: dict
    # coefficients v of f = [Psi, G] v (models.did._ifbasis), (k+H) x len(egt) and (k+H,)
    coef_egt: np.ndarray | None = None
    coef_overall: np.ndarray | None = None
    basis: object = field(default=None, repr=False)

    def to_frame(self) -> pd.DataFrame:
        if self.egt is None:
            return pd.DataFrame({"egt": [], "att": [], "se": []})
        return pd.DataFrame({"egt": self.egt, "att": self.att_egt, "se": self.se_egt})

    def vcov_egt(self, cluster: np.ndarray | None = None) -> np.ndarray:
        """Covariance of the per-e/g/t estimates (Psi'Psi/n^2, or cluster sums). With the
        basis of att_gt (always set by :func:`aggte`) it uses att_gt's clustering and
        ``cluster`` is ignored; otherwise it is computed from ``inf_func_egt``."""
        if self.basis is not None and self.coef_egt is not None:
            return self.basis.quad(self.coef_egt) / self.n**2
        from ..inference.multiplier import cluster_sums

        S = cluster_sums(self.inf_func_egt, cluster)
        return S.T @ S / self.n**2


class _SE:
    """SEs of aggregated influence functions given by their coefficients V ((k+H) x m)."""

    def __init__(self, res: AttGtResult, bstrap: bool, biters: int, alp: float, seed: int):
        self.res, self.bstrap, self.biters, self.alp = res, bstrap, biters, alp
        self.basis = res.basis()
        self.rng = np.random.default_rng(seed)

    def __call__(self, V: np.ndarray, F: np.ndarray | None = None) -> np.ndarray:
        """``F``: the per-unit functions of V when already formed (dense basis)."""
        V = V if V.ndim == 2 else V[:, None]
        if F is not None and F.ndim == 1:
            F = F[:, None]
        if self.bstrap:
            F = self.basis.functions(V) if F is None else F
            se = mboot(F, cluster=self.res.cluster, biters=self.biters, alpha=self.alp, seed=self.rng)["se"]
        else:
            if F is None:
                q = self.basis.quad_diag(V)
            else:
                S = cluster_sums(F, self.res.cluster)
                q = np.einsum("ij,ij->j", S, S)
            se = np.sqrt(np.maximum(q, 0.0)) / self.res.n
            se[~np.isfinite(V).all(axis=0)] = np.nan
        se = np.where(se <= _EPS10, np.nan, se)
        return se

    def crit(self, V: np.ndarray, cband: bool, F: np.ndarray | None = None) -> float:
        z = float(stats.norm.ppf(1 - self.alp / 2))
        if not cband:
            return z
        c = mboot(self.basis.functions(V) if F is None else F, cluster=self.res.cluster, biters=self.biters, alpha=self.alp, seed=self.rng)["crit_val"]
        if not np.isfinite(c) or c < z:
            warnings.warn("simultaneous critical value unavailable or below the pointwise one; using pointwise", stacklevel=3)
            return z
        return float(c)


def _wif_times_att(keep: np.ndarray, pg_cell: np.ndarray, cell_g: np.ndarray, att: np.ndarray, unit_g: np.ndarray) -> np.ndarray:
    """``wif %*% att[keep]`` of R did without forming the n x |keep| matrix:

    wif_ik = (1{G_i=g_k} - p_k)/S - (sum_l (1{G_i=g_l} - p_l)) p_k / S^2,  S = sum_k p_k.
    """
    p = pg_cell[keep]
    a = att[keep]
    g = cell_g[keep]
    S = p.sum()
    ug, inv = np.unique(g, return_inverse=True)
    att_by_g = np.bincount(inv, weights=a, minlength=ug.size)
    cnt_by_g = np.bincount(inv, minlength=ug.size).astype(float)
    pos = np.searchsorted(ug, unit_g)
    pos_ok = (pos < ug.size) & (ug[np.minimum(pos, ug.size - 1)] == unit_g)
    A = np.where(pos_ok, att_by_g[np.minimum(pos, ug.size - 1)], 0.0)
    C = np.where(pos_ok, cnt_by_g[np.minimum(pos, ug.size - 1)], 0.0)
    centered_att = A - np.sum(a * p)
    rowsum_centered = C - S
    return centered_att / S - rowsum_centered * np.sum(p * a) / S**2


def aggte(
    result: AttGtResult,
    type: str = "group",
    min_e: float = -np.inf,
    max_e: float = np.inf,
    balance_e: int | None = None,
    na_rm: bool = False,
    bstrap: bool | None = None,
    cband: bool | None = None,
    biters: int | None = None,
    alp: float | None = None,
    seed: int | None = None,
) -> AggteResult:
    """Aggregate ATT(g,t) as R did's ``aggte``; see the module docstring.

    ``bstrap``/``cband``/``biters``/``alp``/``seed`` default to the values used in
    ``att_gt``. Clustering is inherited from ``att_gt`` (its ``clustervar``).
    """
    if type not in ("simple", "dynamic", "group", "calendar"):
        raise ConfigError(f"aggte: type={type!r}; use simple, dynamic, group or calendar")
    s = result.settings
    bstrap = s["bstrap"] if bstrap is None else bstrap
    cband = s["cband"] if cband is None else cband
    biters = s["biters"] if biters is None else biters
    alp = s["alp"] if alp is None else alp
    seed = s["seed"] if seed is None else seed
    if balance_e is not None and (int(balance_e) != balance_e or balance_e < 0):
        raise ConfigError(f"aggte: balance_e={balance_e!r}; use a non-negative integer or null")
    se_of = _SE(result, bstrap, biters, alp, seed)

    basis = se_of.basis
    k_all = result.att.size
    cohorts = np.asarray(result.cohort_labels, dtype=float)  # the H columns of G
    group = result.groups.astype(float)
    t = result.times.astype(float)
    att = result.att.copy()
    cidx = np.arange(k_all)  # positions of the kept cells among att_gt's cells
    glist = np.unique(group)
    if na_rm:
        notna = np.isfinite(att)
        if not notna.any():
            from .na_cells import all_na_problems

            raise DesignError(f"aggte: all {k_all} ATT(g,t) cells are NA, so no effect can be aggregated:",
                              problems=all_na_problems(result.na_reasons, k_all, s.get("covariates") or ()))
        group, t, att, cidx = group[notna], t[notna], att[notna], cidx[notna]
        glist = np.unique(group)
        if type == "group":
            keepg = [g for g in glist if np.isfinite(np.mean(att[(group == g) & (g <= t) & (t <= g + max_e)]))]
            sel = np.isin(group, keepg)
            group, t, att, cidx = group[sel], t[sel], att[sel], cidx[sel]
            glist = np.unique(group)
    elif np.isnan(att).any():
        raise DesignError("aggte: some ATT(g,t) are NA; set na_rm=True to drop them")

    # index space of R's compute.aggte: ranks in sorted unique(periods U groups)
    gtlist = np.unique(np.concatenate([result.tlist.astype(float), glist]))
    ti = np.searchsorted(gtlist, t) + 1.0
    gi = np.searchsorted(gtlist, group) + 1.0
    n = result.n
    size = dict(result.cohort_sizes)
    pg_g = np.array([size.get(int(g), 0) / n for g in glist])
    pg = pg_g[np.searchsorted(glist, group)]
    keepers = np.flatnonzero((gi <= ti) & (ti <= gi + max_e))

    def coef(which, w, with_wif):
        """v with f = [Psi, G] v: weights w on cells ``which`` (+ the wif term)."""
        v = np.zeros(k_all + cohorts.size)
        np.add.at(v, cidx[which], w)
        if with_wif:
            v[k_all:] += _wif_times_att(which, pg, group, att, cohorts)
        return v

    def out(theta, v, egt=None, att_egt=None, V=None, cband_=False):
        se_egt = crit = F = f = None
        if basis.dense:  # per-unit influence functions, formed once
            F = None if V is None else basis.functions(V)
            f = basis.functions(v)[:, 0]
        if V is not None:  # (this order keeps the bootstrap draws of the dense-only version)
            se_egt = se_of(V, F)
            crit = se_of.crit(V, cband_, F)
        se = float(se_of(v, f)[0]) if np.isfinite(v).all() else np.nan
        return AggteResult(
            type, theta, se, None if egt is None else egt.astype(np.int64), att_egt, se_egt, crit, F, f,
            n=n, alp=alp, coef_egt=V, coef_overall=v, basis=basis,
            settings={"type": type, "min_e": min_e, "max_e": max_e, "balance_e": balance_e, "bstrap": bstrap, "cband": cband},
        )

    if type == "simple":
        if keepers.size == 0:
            raise DesignError("aggte: no post-treatment ATT(g,t)")
        w = pg[keepers] / pg[keepers].sum()
        theta = float(np.sum(att[keepers] * w))
        return out(theta, coef(keepers, w, True))

    if type == "group":
        att_g, vs = [], []
        for g in glist:
            wg = np.flatnonzero((group == g) & (gi <= ti) & (ti <= gi + max_e))
            att_g.append(np.mean(att[wg]) if wg.size else np.nan)
            vs.append(coef(wg, pg[wg] / pg[wg].sum(), False) if wg.size else np.full(k_all + cohorts.size, np.nan))
        att_g = np.array(att_g)
        V = np.column_stack(vs)
        theta = float(np.sum(att_g * pg_g) / pg_g.sum())
        v = V @ (pg_g / pg_g.sum())
        v[k_all:] += _wif_times_att(np.arange(glist.size), pg_g, glist, att_g, cohorts)
        return out(theta, v, glist, att_g, V, cband)

    if type == "dynamic":
        e_all = t - group
        include = np.ones(group.size, dtype=bool)
        eseq = np.unique(e_all)
        if balance_e is not None:
            tmax = gtlist[int(ti.max()) - 1]
            tmin = gtlist[0]
            include = (tmax - group) >= balance_e
            eseq = np.unique(e_all[include])
            eseq = eseq[(eseq <= balance_e) & (eseq >= balance_e - tmax + tmin)]
        eseq = eseq[(eseq >= min_e) & (eseq <= max_e)]
        if eseq.size == 0:
            raise DesignError("aggte: no event times in the requested window (min_e/max_e/balance_e)")
        att_e, vs = [], []
        for e in eseq:
            we = np.flatnonzero((e_all == e) & include)
            w = pg[we] / pg[we].sum()
            att_e.append(float(np.sum(att[we] * w)))
            vs.append(coef(we, w, True))
        att_e = np.array(att_e)
        V = np.column_stack(vs)
        epos = eseq >= 0
        if not epos.any():
            theta, v = np.nan, np.full(V.shape[0], np.nan)
        else:
            theta = float(np.mean(att_e[epos]))
            v = V[:, epos] @ np.full(epos.sum(), 1.0 / epos.sum())
        return out(theta, v, eseq, att_e, V, cband)

    # calendar
    if np.isfinite(max_e) or np.isfinite(min_e) or balance_e is not None:
        warnings.warn("min_e, max_e and balance_e are ignored for type='calendar'", stacklevel=2)
    tl = np.unique(ti)
    tl = tl[tl >= gi.min()]
    tl = np.array([x for x in tl if np.any((ti == x) & (gi <= ti))])
    if tl.size == 0:
        raise DesignError("aggte: no calendar period with post-treatment ATT(g,t)")
    att_t, vs = [], []
    for x in tl:
        wt = np.flatnonzero((ti == x) & (gi <= ti))
        w = pg[wt] / pg[wt].sum()
        att_t.append(float(np.sum(att[wt] * w)))
        vs.append(coef(wt, w, True))
    att_t = np.array(att_t)
    V = np.column_stack(vs)
    theta = float(np.mean(att_t))
    v = V @ np.full(tl.size, 1.0 / tl.size)
    periods = gtlist[tl.astype(int) - 1]
    return out(theta, v, periods, att_t, V, cband)
