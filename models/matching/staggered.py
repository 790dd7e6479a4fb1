"""Shared engine of the pipeline's ``matching`` and ``weighting`` estimators: weight each
cohort's cross-section (models.matching.stacking), then estimate per event time and stack.

Per cohort ``g`` and event time ``e`` the weighted difference in means (MatchIt's ATT) of

* ``term = "level"``: ``Y_{g+e}`` (post years ``e >= 0``), and
* ``term = "did"``: ``Y_{g+e} - Y_{g-1}`` (post years, and leads ``e <= -2`` as placebos),

over units observed in year ``g+e`` (a matched unit missing that year drops out of that cell;
counted as ``attrition`` in meta). Cohorts are stacked with weights ``n1_{g,e} / sum_g n1_{g,e}``
(treated firms behind each cell), ``ATT_e = sum_g n1_{g,e}/N1_e ATT_{g,e}``; the overall row
(``event_time`` null) is the simple mean of ``ATT_e`` over the post event times (R did's
dynamic "overall"). Influence functions are stacked with the same weights (the weights treated
as fixed) and summed within clusters: ``V = G/(G-1) sum_c (sum_{i in c} psi_i)^2``.

The joint Wald test of the lead placebos (``meta.pretrend``) uses the same clustered covariance.
When the outcome's own pre-trend is a matching covariate, the leads are balanced partly by
construction and the test has little power; the meta says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from models.errors import DesignError
from models.result import EstimationResult, normal_inference, tidy_frame
from models.spec import EstimatorSpec

from .balance import balance_table, overlap_table
from .effects import weighted_att
from .stacking import CONTROL_POOLS, CohortFrame, cohort_frames


@dataclass
class CohortWeights:
    weights: np.ndarray
    cluster: np.ndarray              # cluster labels: firm ids (scope "firm") or cohort-local ids (scope "cohort")
    scope: str = "firm"              # "firm": one cluster per firm across cohorts; "cohort": labels local to the cohort
    support: dict = field(default_factory=dict)
    counts: dict = field(default_factory=dict)
    effect: Callable | None = None   # cell effect (y -> Effect with psi over used units); None = weighted_att
    ties: dict = field(default_factory=dict)
    score: np.ndarray | None = None  # propensity score (overlap figure)
    discarded: np.ndarray | None = None


def resolve_covariates(data: pd.DataFrame, spec: EstimatorSpec, opts: dict) -> tuple[list[str], list[str], list[str]]:
    """Matching covariates and trend variables from the options (see the estimators' docs).
    Returns ``(covariates, trends, notes)``."""
    notes = []
    cov = opts.get("covariates")
    if cov is None:
        cov = list(spec.covariates)
        if not cov:
            cov = [c for c in (opts.get("default_covariates") or []) if c in data.columns]
            notes.append(f"covariates: estimate.covariates empty, used default_covariates present in the data: {cov}")
    trends = []
    for c in opts.get("trends") or []:
        c = spec.yname if c == "outcome" else c
        if c in data.columns:
            trends.append(c)
        else:
            notes.append(f"trends: {c!r} not in the panel, skipped")
    return list(dict.fromkeys(cov)), list(dict.fromkeys(trends)), notes


def run(data: pd.DataFrame, spec: EstimatorSpec, *, estimator: str, weigh: Callable[[CohortFrame], CohortWeights],
        covariates: list[str], trends: list[str], exact: list[str], vcov_label: str, notes: list[str],
        extra_meta: dict | None = None) -> EstimationResult:
    opts = spec.options
    pool = CONTROL_POOLS.get(opts.get("control_pool", "all"))
    for c in [*covariates, *trends, *exact, spec.yname, spec.gname, spec.tname, spec.idname, *([pool[0]] if pool else [])]:
        if c not in data.columns:
            raise DesignError(f"{estimator}: column {c!r} is not in the panel (covariates/trends/exact/control_pool options)")
    # one canonical row order (unit, period): greedy matching in "data" order and tie-breaking
    # by position then depend on the unit ids, never on how the file happened to be sorted
    data = data.sort_values([spec.idname, spec.tname], kind="stable").reset_index(drop=True)
    frames, skipped = cohort_frames(
        data, yname=spec.yname, tname=spec.tname, idname=spec.idname, gname=spec.gname, covariates=covariates,
        trends=trends, trend_lags=int(opts.get("trend_lags", 2)), exact=exact, horizon=int(opts.get("horizon", 5)),
        leads=int(opts.get("leads", 2)), control_group=spec.control_group,
        control_pool=opts.get("control_pool", "all"),
    )
    firm_index = pd.Index(pd.unique(data[spec.idname]))
    n_firms = len(firm_index)
    acc: dict = {}       # (term, e) -> running sums over cohorts
    space: dict = {}     # cluster space key -> its size (one "firm" space, or one per cohort)
    support, dropped, counts = {}, {}, {}
    balance_parts = []
    overlap_parts = []
    tie_sum: dict = {}
    matched = np.zeros(n_firms, dtype=bool)
    for cf in frames:
        try:
            cw = weigh(cf)
        except DesignError as exc:
            skipped[str(cf.cohort)] = " ".join(line.strip() for line in str(exc).splitlines())
            continue
        support[str(cf.cohort)] = cw.support
        for k, v in cf.dropped.items():
            dropped[k] = dropped.get(k, 0) + int(v)
        for k, v in cw.counts.items():
            counts[k] = counts.get(k, 0) + int(v)
        fr, w, t = cf.frame, cw.weights, cf.frame["treat"].to_numpy(dtype=bool)
        fcode = firm_index.get_indexer(fr[spec.idname])
        matched[fcode[w > 0]] = True
        if cw.scope == "firm":
            key, codes = "firm", firm_index.get_indexer(cw.cluster)
            space[key] = n_firms
        else:
            key, codes = cf.cohort, pd.factorize(cw.cluster)[0]
            space[key] = int(codes.max()) + 1 if len(codes) else 0
        # cohort-normalised weights for pooled balance: controls sum to the matched treated count
        wn = w.copy()
        wc = wn[~t].sum()
        if wc > 0:
            wn[~t] *= wn[t].sum() / wc
        balance_parts.append((fr[cf.covariates], t, wn))
        if cw.score is not None:
            disc = cw.discarded if cw.discarded is not None else np.zeros(len(t), dtype=bool)
            overlap_parts.append((cw.score, t, wn, disc))
        for k, v in cw.ties.items():
            if isinstance(v, bool):
                tie_sum[k] = tie_sum.get(k, False) or v
            elif isinstance(v, (int, np.integer)):
                tie_sum[k] = tie_sum.get(k, 0) + int(v)
            elif k in ("ties",):
                tie_sum[k] = v
        yb = fr[f"y_{cf.base}"].to_numpy(dtype=float)
        for e, yr in cf.years.items():
            if e == -1:
                continue
            y = fr[f"y_{yr}"].to_numpy(dtype=float)
            terms = (("level", y), ("did", y - yb)) if e >= 0 else (("did", y - yb),)
            for term, yy in terms:
                if cw.effect is not None:
                    eff = cw.effect(yy)
                else:
                    eff = weighted_att(yy, t, w, cluster=np.arange(len(t)), small_sample=False)
                if not np.isfinite(eff.estimate):
                    continue
                used = (w > 0) & np.isfinite(yy)
                a = acc.setdefault((term, e), {"num": 0.0, "n1": 0, "n_obs": 0, "attrition": 0, "sums": {}, "present": {},
                                               "treated": np.zeros(n_firms, dtype=bool)})
                n1 = eff.n_treated
                a["num"] += n1 * eff.estimate
                a["n1"] += n1
                a["n_obs"] += eff.n_obs
                a["attrition"] += int(((w > 0) & ~np.isfinite(yy)).sum())
                contrib = np.bincount(codes[used], weights=n1 * eff.psi, minlength=space[key])
                pres = np.bincount(codes[used], minlength=space[key]) > 0
                if key in a["sums"]:
                    a["sums"][key] += contrib
                    a["present"][key] |= pres
                else:
                    a["sums"][key], a["present"][key] = contrib, pres
                a["treated"][fcode[used & t]] = True
    if not acc:
        raise DesignError(
            f"{estimator}: no cohort could be estimated ({len(skipped)} skipped):",
            problems=[f"cohort {g}: {r}" for g, r in list(skipped.items())[:5]],
        )
    keys = list(space)

    def stack(a, field, dtype):
        return np.concatenate([a[field].get(k, np.zeros(space[k], dtype=dtype)) for k in keys])

    psi_by, present_by, rows, attrition = {}, {}, [], {}
    for (term, e), a in sorted(acc.items(), key=lambda kv: (kv[0][0] != "level", kv[0][1])):
        s_ = stack(a, "sums", float) / a["n1"]
        pres = stack(a, "present", bool)
        G = int(pres.sum())
        se = float(np.sqrt(G / (G - 1) * np.sum(s_**2))) if G > 1 else np.nan
        psi_by[(term, e)], present_by[(term, e)] = s_, pres
        attrition[f"{term}:{e}"] = a["attrition"]
        rows.append(dict(term=term, event_time=e, estimate=a["num"] / a["n1"], std_error=se, n_obs=a["n_obs"],
                         n_treated=int(a["treated"].sum())))
    # overall: mean over post event times
    for term in ("level", "did"):
        post = sorted(e for (tm, e) in psi_by if tm == term and e >= 0)
        if not post:
            continue
        est = float(np.mean([r["estimate"] for r in rows if r["term"] == term and r["event_time"] in post]))
        s_ = np.mean([psi_by[(term, e)] for e in post], axis=0)
        G = int(np.logical_or.reduce([present_by[(term, e)] for e in post]).sum())
        se = float(np.sqrt(G / (G - 1) * np.sum(s_**2))) if G > 1 else np.nan
        treated = np.logical_or.reduce([acc[(term, e)]["treated"] for e in post])
        n_obs = max(r["n_obs"] for r in rows if r["term"] == term and r["event_time"] in post)
        rows.append(dict(term=term, event_time=None, estimate=est, std_error=se, n_obs=int(n_obs),
                         n_treated=int(treated.sum())))
    # order: overall level, overall did, then event rows
    rows.sort(key=lambda r: (r["event_time"] is not None, r["term"] != "level", r["event_time"] if r["event_time"] is not None else 0))
    est = np.array([r["estimate"] for r in rows])
    se = np.array([r["std_error"] for r in rows])
    stat, p, lo, hi = normal_inference(est, se, alpha=spec.alpha)
    tidy_rows = []
    for r, st, pv, l, h in zip(rows, stat, p, lo, hi):
        tidy_rows.append(dict(aggregation="matched", term=r["term"], event_time=r["event_time"], cohort=None, time=None,
                              estimate=r["estimate"], std_error=r["std_error"], statistic=st, p_value=pv,
                              conf_low=l, conf_high=h, n_obs=r["n_obs"], n_treated=r["n_treated"]))
    # pre-trend Wald test on the lead placebos
    leads = sorted(e for (tm, e) in psi_by if tm == "did" and e < 0)
    pretrend = None
    if leads:
        theta = np.array([next(r["estimate"] for r in rows if r["term"] == "did" and r["event_time"] == e) for e in leads])
        S = np.column_stack([psi_by[("did", e)] for e in leads])
        G = int(np.logical_or.reduce([present_by[("did", e)] for e in leads]).sum())
        V = G / max(G - 1, 1) * S.T @ S
        try:
            W = float(theta @ np.linalg.solve(V, theta))
            pretrend = {"statistic": W, "df": len(leads), "p_value": float(stats.chi2.sf(W, len(leads))),
                        "leads": leads,
                        "note": "placebo changes Y_{g+e} - Y_{g-1} for e <= -2; weak when the outcome's own pre-trend is matched on"}
        except np.linalg.LinAlgError:
            pretrend = {"statistic": None, "df": len(leads), "p_value": None, "leads": leads, "note": "singular covariance"}
    all_present = np.logical_or.reduce(list(present_by.values()))
    all_treated = np.logical_or.reduce([a["treated"] for a in acc.values()])
    tables = {}
    if balance_parts:
        X = pd.concat([b[0] for b in balance_parts], ignore_index=True)
        t = np.concatenate([b[1] for b in balance_parts])
        w = np.concatenate([b[2] for b in balance_parts])
        tables["balance"] = balance_table(X, t, w)
    if overlap_parts:
        tables["overlap"] = overlap_table(*(np.concatenate([p[i] for p in overlap_parts]) for i in range(4)))
    meta = {
        "n_obs": int(sum(r["n_obs"] for r in rows if r["event_time"] == 0 and r["term"] == "level")) if any(
            r["event_time"] == 0 for r in rows) else int(rows[0]["n_obs"]),
        "n_units": int(matched.sum()),
        "n_treated_units": int(all_treated.sum()),
        "n_clusters": int(all_present.sum()),
        "vcov": vcov_label,
        "control_group": spec.control_group,
        "dropped": {f"cohort_rows_{k}": v for k, v in dropped.items()},
        "cohorts": [cf.cohort for cf in frames if str(cf.cohort) in support],
        "cohorts_skipped": skipped,
        "common_support": support,
        "counts": counts,
        "ties": tie_sum or None,
        "attrition": attrition,
        "covariates": covariates,
        "trends": [f"trend_{c}" for c in trends],
        "exact": exact,
        "pretrend": pretrend,
        "notes": notes,
    }
    if extra_meta:
        meta.update(extra_meta)
    return EstimationResult(estimator=estimator, outcome=spec.yname, tidy=tidy_frame(tidy_rows), meta=meta, tables=tables)
