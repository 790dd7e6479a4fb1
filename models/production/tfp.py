"""Production-function estimation and firm-year log TFP.

:func:`estimate_tfp` (panel, method) -> :class:`TFPResult` with the elasticities, their
standard errors (firm-block bootstrap when ``bootstrap > 0``; analytic for ``wooldridge``
and ``ols``), and the per-firm-year log TFP

.. math::  \\widehat{\\mathrm{tfp}}_{it} = y_{it} - \\hat\\beta_l l_{it} - \\hat\\beta_k k_{it} [- \\hat\\beta_m m_{it}]

(it keeps the constant :math:`\\beta_0` and the transitory shock :math:`\\varepsilon_{it}`;
a DiD uses differences across firms and years, so the constant does not matter).

Methods: ``op`` (Olley & Pakes 1996; investment derived from capital with ``delta``),
``lp`` (Levinsohn & Petrin 2003), ``acf`` (Ackerberg, Caves & Frazer 2015), ``wooldridge``
(Wooldridge 2009) and ``ols`` (pooled OLS, biased; for comparison). Inputs are logs of real
values: ``y`` value added (default) or gross output (``output="gross_output"``), ``l``
employment, ``k`` capital, ``m`` intermediates. ``by="sector"`` estimates one production
function per sector (sectors with fewer than ``min_firms`` firms are an error, not a silent
pool).

Joint inference with a DiD: :func:`tfp_bootstrap_draws` returns B firm-block bootstrap
draws of the elasticities (seeded). A pipeline that recomputes log TFP with each draw and
re-runs the DiD on it propagates production-function estimation error into the effect's
SE; **the DiD estimators themselves do not do this** — an effect on TFP computed from
:func:`estimate_tfp`'s point estimates treats the elasticities as known, and its SE
understates the uncertainty by the production-function part. To make the joint bootstrap
valid, draw the same firms for both steps (pass the draw's firm multiset to the DiD) —
:func:`tfp_bootstrap_draws` returns the drawn firm ids for that purpose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models import linalg as _linalg
from models.errors import BadInputError, ConfigError, DesignError, first_keys

from . import acf, levinsohn_petrin, olley_pakes, wooldridge
from .common import Arrays, ols

METHODS = {
    "op": olley_pakes.fit_arrays,
    "lp": levinsohn_petrin.fit_arrays,
    "acf": acf.fit_arrays,
    "wooldridge": wooldridge.fit_arrays,
}
OUTPUTS = ("value_added", "gross_output")


@dataclass
class TFPResult:
    method: str
    output: str
    elasticities: pd.DataFrame  # one row per group (sector or "all"): beta_l, beta_k[, beta_m]
    std_errors: pd.DataFrame  # same shape; NaN where unavailable
    tfp: pd.Series  # log TFP aligned to the input panel's index (NaN for dropped rows)
    meta: dict = field(default_factory=dict)


def _ols_fit(a: Arrays, *, output: str = "value_added", **_) -> dict:
    cols = [a.l, a.k] + ([a.m] if output == "gross_output" else [])
    X = np.column_stack([np.ones_like(a.y)] + cols)
    b = ols(a.y, X)
    e = a.y - X @ b
    G = int(a.firm.max()) + 1
    s = np.column_stack([np.bincount(a.firm, weights=X[:, j] * e, minlength=G) for j in range(X.shape[1])])
    XtXi = _linalg.ols(X, a.y).xtx_inv  # (X'X)^{-1} from the QR core (models.linalg)
    V = XtXi @ (s.T @ s) @ XtXi * G / (G - 1)
    names = ["l", "k"] + (["m"] if output == "gross_output" else [])
    return {
        "beta": {n: float(b[j + 1]) for j, n in enumerate(names)},
        "se": {n: float(np.sqrt(V[j + 1, j + 1])) for j, n in enumerate(names)},
        "n_first_stage": int(a.y.size),
    }


def _fitter(method: str):
    if method == "ols":
        return _ols_fit
    if method not in METHODS:
        raise ConfigError(f"estimate_tfp: method {method!r}; allowed: {', '.join([*METHODS, 'ols'])}")
    return METHODS[method]


def prepare_arrays(
    panel: pd.DataFrame,
    *,
    y: str,
    l: str,
    k: str,
    m: str | None,
    idname: str,
    tname: str,
    delta: float,
    need_inv: bool,
) -> tuple[Arrays, np.ndarray, dict]:
    """Validate, sort, drop incomplete rows (counted) and build :class:`Arrays`.

    Returns (arrays, original index of each kept row, dropped counts)."""
    cols = [idname, tname, y, l, k] + ([m] if m else [])
    miss = [c for c in cols if c not in panel.columns]
    if miss:
        raise BadInputError(f"estimate_tfp: panel lacks column(s) {miss}; has {', '.join(map(str, panel.columns))}")
    df = pd.DataFrame({c: panel[c] for c in cols})
    df["_row"] = np.arange(len(panel))
    dropped: dict[str, int] = {}
    num = [y, l, k] + ([m] if m else [])
    vals = df[num].apply(pd.to_numeric, errors="coerce").astype("float64")
    bad = ~np.isfinite(vals.to_numpy(dtype=float, na_value=np.nan)).all(axis=1)
    if bad.any():
        dropped["missing_or_nonfinite_input"] = int(bad.sum())
    df[num] = vals
    df = df.loc[~bad]
    if df.duplicated([idname, tname]).any():
        d = df.loc[df.duplicated([idname, tname]), idname]
        raise BadInputError(f"estimate_tfp: {len(d)} duplicate firm-year row(s) (firms {first_keys(d.unique())}); one row per firm-year")
    df = df.sort_values([idname, tname], kind="mergesort")
    firm = pd.factorize(df[idname], sort=False)[0].astype(np.int64)
    t = pd.to_numeric(df[tname]).to_numpy(dtype=np.int64)
    has_prev = np.zeros(len(df), dtype=bool)
    has_prev[1:] = (firm[1:] == firm[:-1]) & (t[1:] == t[:-1] + 1)
    kk = df[k].to_numpy(float)
    inv = None
    if need_inv:
        K = np.exp(kk)
        Knext = np.full(K.shape, np.nan)
        Knext[:-1][has_prev[1:]] = K[1:][has_prev[1:]]
        I = Knext - (1.0 - delta) * K
        with np.errstate(invalid="ignore", divide="ignore"):
            inv = np.where(I > 0, np.log(np.where(I > 0, I, 1.0)), np.nan)
        dropped["op_no_positive_investment"] = int((~np.isfinite(inv)).sum())
    a = Arrays(
        y=df[y].to_numpy(float),
        l=df[l].to_numpy(float),
        k=kk,
        m=df[m].to_numpy(float) if m else None,
        firm=firm,
        has_prev=has_prev,
        inv=inv,
    )
    return a, df["_row"].to_numpy(), dropped


def _names(output: str) -> list[str]:
    return ["l", "k"] + (["m"] if output == "gross_output" else [])


def _groups(panel: pd.DataFrame, by: str | None, min_firms: int, idname: str) -> list[tuple[str, np.ndarray]]:
    if by is None:
        return [("all", np.ones(len(panel), dtype=bool))]
    if by not in panel.columns:
        raise BadInputError(f"estimate_tfp: by={by!r} is not a column of the panel")
    out = []
    small = []
    for key, idx in panel.groupby(by, sort=True, dropna=False).indices.items():
        mask = np.zeros(len(panel), dtype=bool)
        mask[idx] = True
        if panel.loc[mask, idname].nunique() < min_firms:
            small.append(str(key))
        out.append((str(key), mask))
    if small:
        raise DesignError(
            f"estimate_tfp: {len(small)} {by} group(s) have fewer than {min_firms} firms ({first_keys(small)}); "
            f"pool them into a coarser {by} or lower min_firms"
        )
    return out


def estimate_tfp(
    panel: pd.DataFrame,
    method: str = "acf",
    *,
    y: str = "log_value_added",
    l: str = "log_employment",
    k: str = "log_capital",
    m: str | None = "log_intermediates",
    idname: str = "firm_id",
    tname: str = "year",
    output: str = "value_added",
    by: str | None = None,
    degree: int = 3,
    g_degree: int = 3,
    delta: float = 0.10,
    bootstrap: int = 0,
    seed: int = 0,
    min_firms: int = 50,
) -> TFPResult:
    """Estimate the production function by ``method`` and return elasticities and log TFP.

    ``bootstrap`` > 0 draws that many firm-block bootstrap samples (numpy default_rng(seed))
    for the standard errors; otherwise SEs are analytic where available (``wooldridge``,
    ``ols``) and NaN for the two-step methods (whose analytic SEs would need the
    generated-regressor correction)."""
    if output not in OUTPUTS:
        raise ConfigError(f"estimate_tfp: output {output!r}; allowed: {', '.join(OUTPUTS)}")
    fitter = _fitter(method)
    names = _names(output)
    tfp = pd.Series(np.nan, index=panel.index, name=f"log_tfp_{method}")
    est_rows, se_rows = [], []
    meta: dict = {"method": method, "output": output, "by": by, "degree": degree, "g_degree": g_degree,
                  "delta": delta if method == "op" else None, "bootstrap": bootstrap, "seed": seed, "groups": {}}
    for key, mask in _groups(panel, by, min_firms, idname):
        sub = panel.loc[mask]
        a, rows, dropped = prepare_arrays(sub, y=y, l=l, k=k, m=m, idname=idname, tname=tname, delta=delta, need_inv=(method == "op"))
        if len(a) == 0 or not a.has_prev.any():
            raise DesignError(f"estimate_tfp: group {key!r} has no firm observed in two consecutive years")
        res = fitter(a, output=output, degree=degree, g_degree=g_degree)
        beta = res["beta"]
        se = dict(res.get("se") or {n: np.nan for n in names})
        if bootstrap:
            draws = _draws(a, fitter, output, degree, g_degree, bootstrap, np.random.default_rng([seed, len(est_rows)]))
            se = {n: float(np.nanstd(draws[:, j], ddof=1)) for j, n in enumerate(names)}
            meta["groups"].setdefault(key, {})["bootstrap_failed"] = int(np.isnan(draws[:, 0]).sum())
        pred = a.y - sum(beta[n] * getattr(a, n) for n in names)
        tfp.iloc[np.flatnonzero(mask)[rows]] = pred
        est_rows.append({"group": key, **{f"beta_{n}": beta[n] for n in names}})
        se_rows.append({"group": key, **{f"beta_{n}": se[n] for n in names}})
        info = {kk: v for kk, v in res.items() if kk not in ("beta", "se")}
        meta["groups"].setdefault(key, {}).update({"n_obs": int(len(a)), "n_firms": int(a.firm.max() + 1), "dropped": dropped, **info})
    return TFPResult(
        method=method,
        output=output,
        elasticities=pd.DataFrame(est_rows).set_index("group"),
        std_errors=pd.DataFrame(se_rows).set_index("group"),
        tfp=tfp,
        meta=meta,
    )


def _firm_blocks(a: Arrays):
    starts = np.flatnonzero(np.r_[True, a.firm[1:] != a.firm[:-1]])
    ends = np.r_[starts[1:], a.firm.size]
    return starts, ends


def _resample(a: Arrays, rng: np.random.Generator, starts, ends) -> tuple[Arrays, np.ndarray]:
    F = starts.size
    pick = rng.integers(0, F, size=F)
    lens = ends[pick] - starts[pick]
    rows = np.repeat(starts[pick], lens) + (np.arange(lens.sum()) - np.repeat(np.cumsum(lens) - lens, lens))
    b = a.take(rows)
    b.firm = np.repeat(np.arange(F), lens)  # duplicates are distinct firms in the draw
    return b, pick


def _draws(a: Arrays, fitter, output, degree, g_degree, B: int, rng: np.random.Generator, return_picks: bool = False):
    starts, ends = _firm_blocks(a)
    out = np.full((B, len(_names(output))), np.nan)
    picks = []
    for bidx in range(B):
        b, pick = _resample(a, rng, starts, ends)
        try:
            res = fitter(b, output=output, degree=degree, g_degree=g_degree)
            out[bidx] = [res["beta"][n] for n in _names(output)]
        except (np.linalg.LinAlgError, ValueError):
            pass
        picks.append(pick)
    return (out, picks) if return_picks else out


def tfp_bootstrap_draws(
    panel: pd.DataFrame,
    method: str = "acf",
    B: int = 99,
    seed: int = 0,
    **kwargs,
) -> tuple[pd.DataFrame, list[np.ndarray]]:
    """B firm-block bootstrap draws of the elasticities (one production function, no ``by``).

    Returns (draws, firms): ``draws`` has columns ``draw, beta_l, beta_k[, beta_m]`` (NaN
    where the optimiser failed in a draw); ``firms[b]`` holds the firm ids drawn (with
    multiplicity) so that a caller can re-run the DiD on the same resample with log TFP
    recomputed from draw b's elasticities — the joint bootstrap that propagates
    production-function error into the effect's SE. Nothing in models/ runs that loop."""
    output = kwargs.pop("output", "value_added")
    degree = kwargs.pop("degree", 3)
    g_degree = kwargs.pop("g_degree", 3)
    delta = kwargs.pop("delta", 0.10)
    cols = {kk: kwargs.pop(kk) for kk in ("y", "l", "k", "m", "idname", "tname") if kk in kwargs}
    if kwargs:
        raise ConfigError(f"tfp_bootstrap_draws: unknown argument(s) {sorted(kwargs)}")
    names = dict(y="log_value_added", l="log_employment", k="log_capital", m="log_intermediates", idname="firm_id", tname="year")
    names.update(cols)
    fitter = _fitter(method)
    a, rows, _ = prepare_arrays(panel, delta=delta, need_inv=(method == "op"), **names)
    ids = panel[names["idname"]].to_numpy()[rows]
    starts, _ends = _firm_blocks(a)
    draws, picks = _draws(a, fitter, output, degree, g_degree, B, np.random.default_rng(seed), return_picks=True)
    df = pd.DataFrame(draws, columns=[f"beta_{n}" for n in _names(output)])
    df.insert(0, "draw", np.arange(B))
    return df, [ids[starts[p]] for p in picks]
