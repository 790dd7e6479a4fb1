"""A small staggered-adoption panel simulator with known truth for the DiD tests.

y_it = a_i + b_t + tau(g_i, t - g_i) * D_it + x_it * 0.5 + e_it, parallel trends hold by
construction (unit levels may depend on the cohort: selection on levels). Every draw
comes from ``numpy.random.default_rng(seed)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def simulate(
    n_units: int = 600,
    years=range(2010, 2020),
    cohorts=(2013, 2015, 2017),
    never_share: float = 0.4,
    effect="dynamic",
    sigma: float = 0.5,
    seed: int = 1,
    unbalanced: float = 0.0,
    pretrend: float = 0.0,
) -> tuple[pd.DataFrame, callable]:
    """Return (panel, tau) where tau(g, e) is the true effect function.

    effect: "homogeneous" (tau = 1), "dynamic" (cohort- and time-varying:
    tau = (1 + 0.3 * rank(g)) * (1 + 0.25 e) for e >= 0), or a callable tau(g, e).
    unbalanced: share of firm-years removed at random. pretrend: slope of a violation of
    parallel trends for members before treatment (pretrend * (t - g) for t < g).
    """
    rng = np.random.default_rng(seed)
    years = np.asarray(list(years))
    cohorts = np.asarray(list(cohorts))
    if callable(effect):
        tau = effect
    elif effect == "homogeneous":
        def tau(g, e):
            return np.where(np.asarray(e) >= 0, 1.0, 0.0)
    elif effect == "dynamic":
        rank = {int(c): i for i, c in enumerate(sorted(cohorts))}

        def tau(g, e):
            g = np.asarray(g)
            e = np.asarray(e, dtype=float)
            r = np.vectorize(lambda x: rank.get(int(x), 0))(g) if g.size else g
            return np.where(e >= 0, (1 + 0.3 * r) * (1 + 0.25 * e), 0.0)
    else:
        raise ValueError(effect)
    is_never = rng.random(n_units) < never_share
    g_unit = np.where(is_never, 0, rng.choice(cohorts, size=n_units))
    a = rng.normal(0, 1, n_units) + 0.5 * (g_unit > 0)  # selection on levels
    b = np.cumsum(rng.normal(0.1, 0.2, years.size))
    uu, tt = np.meshgrid(np.arange(n_units), np.arange(years.size), indexing="ij")
    uu, tt = uu.ravel(), tt.ravel()
    g = g_unit[uu]
    yr = years[tt]
    e = np.where(g > 0, yr - g, -999)
    D = (g > 0) & (yr >= g)
    x = rng.normal(0, 1, uu.size) + 0.2 * a[uu]
    te = np.where(D, tau(g, e), 0.0)
    pre = np.where((g > 0) & (yr < g), pretrend * (yr - g), 0.0)
    y = a[uu] + b[tt] + te + pre + 0.5 * x + rng.normal(0, sigma, uu.size)
    df = pd.DataFrame(
        {
            "firm_id": pd.Series([f"F{i:05d}" for i in uu], dtype="string"),
            "year": yr.astype(np.int64),
            "first_treat": g.astype(np.int64),
            "y": y,
            "x": x,
            "region": pd.Series([f"R{i % 7}" for i in uu], dtype="string"),
            "true_effect": te,
        }
    )
    if unbalanced > 0:
        keep = rng.random(len(df)) >= unbalanced
        df = df.loc[keep].reset_index(drop=True)
    df["rel_time"] = pd.array(np.where(df["first_treat"] > 0, df["year"] - df["first_treat"], pd.NA), dtype="Int64")
    df["post"] = (df["first_treat"] > 0) & (df["year"] >= df["first_treat"])
    return df, tau


def truth(df: pd.DataFrame) -> dict:
    """True ATTs of the realised sample: simple (mean over post obs) and by event time."""
    post = df["post"].to_numpy()
    out = {"simple": float(df.loc[post, "true_effect"].mean())}
    dyn = df.loc[post].groupby(df.loc[post, "rel_time"].astype(int))["true_effect"].mean()
    out["dynamic"] = {int(k): float(v) for k, v in dyn.items()}
    return out


def mpdta() -> pd.DataFrame:
    """mpdta (Callaway & Sant'Anna 2021) from moderndid, pipeline column names:
    firm_id (countyreal), year, first_treat, lemp, lpop."""
    from pathlib import Path

    csv = Path(__file__).parent / "data" / "mpdta.csv"  # written by another helper from moderndid
    if csv.is_file():
        d = pd.read_csv(csv)
    else:
        from moderndid import load_mpdta

        d = load_mpdta().to_pandas()
    d = d.rename(columns={"first.treat": "first_treat", "countyreal": "firm_id"})
    d["firm_id"] = d["firm_id"].astype(np.int64)
    return d[["firm_id", "year", "first_treat", "lemp", "lpop"]]


def spec(yname="y", *, kind="cluster", by=("firm_id",), covariates=(), control_group="nevertreated", **options):
    from models.spec import EstimatorSpec
    from models.vcov import VcovSpec

    return EstimatorSpec(
        yname=yname,
        covariates=tuple(covariates),
        control_group=control_group,
        vcov=VcovSpec(kind=kind, by=tuple(by) if kind in ("cluster", "twoway") else ()),
        options=options,
    )


def stored(name: str) -> dict:
    """A stored reference file under tests/reference/."""
    import json
    from pathlib import Path

    return json.loads((Path(__file__).parent / "reference" / f"{name}.json").read_text())
