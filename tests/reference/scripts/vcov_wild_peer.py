"""Build tests/reference/vcov_wild.json: peer inference for the ``twfe`` and ``event_study``
estimators under the few-clusters vcov kinds, on a seeded 8-cluster panel (design()).

* wildboottest 0.3.2 ``WildboottestCL`` (WCR11) on the dummy-expanded TWFE design
  [regressors, all unit dummies, year dummies 2..T] (wildboottest has no fixed-effects
  argument; dummies give the same OLS slope and cluster scores): Rademacher with full
  enumeration (2^8 = 256 < B) -> deterministic bootstrap distribution; Webb with B = 9999.
* pyfixest 0.60 ``feols(..., vcov={"CRV3": "cluster"}, ssc=pf.ssc(k_adj=False, G_adj=False))``
  with ``| firm_id + year`` fixed effects: pyfixest refits the model without each cluster
  (``_vcov_crv3_slow``) and returns sum_g (b_(g) - b)(b_(g) - b)' (no factor).

Run: uv run python tests/reference/scripts/vcov_wild_peer.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "vcov_wild.json"
WINDOW = (-3, 3)  # event_study event_window, binned endpoints
TERMS = (-2, 0, 2)  # event-study coefficients checked against wildboottest


def design(seed: int = 11, G: int = 8, per: int = 5, T: int = 8) -> pd.DataFrame:
    """G cluster initiatives of ``per`` firms each, T years from 2010; clusters 0-2 join in
    2013, 3-4 in 2015, 5-7 never (5 treated clusters of 8); firm, year, cluster and
    cluster-year shocks plus an effect of 0.3 from joining."""
    rng = np.random.default_rng(seed)
    n = G * per
    cl = np.repeat(np.arange(G), per)
    cohort = np.array([2013, 2013, 2013, 2015, 2015, 0, 0, 0])[:G]
    years = np.arange(2010, 2010 + T)
    u, t = np.meshgrid(np.arange(n), np.arange(T), indexing="ij")
    u, t = u.ravel(), t.ravel()
    c = cl[u]
    g = cohort[c]
    yr = years[t]
    D = (g > 0) & (yr >= g)
    y = (rng.normal(size=n)[u] + 0.1 * t + rng.normal(size=G)[c] + 0.7 * rng.normal(size=(G, T))[c, t]
         + 0.3 * D + rng.normal(size=u.size))
    return pd.DataFrame({
        "firm_id": pd.array([f"F{i:03d}" for i in u], dtype="string"),
        "year": yr.astype(np.int64),
        "first_treat": g.astype(np.int64),
        "y": y,
        "cluster": pd.array([f"CL{k:02d}" for k in c], dtype="string"),
    })


def event_columns(df: pd.DataFrame) -> tuple[list[int], np.ndarray]:
    """Binned event-time dummies of the window (reference -1 omitted), as event_study builds them."""
    e = np.where(df["first_treat"] > 0, df["year"] - df["first_treat"], np.nan)
    e = np.clip(e, *WINDOW)
    times = [k for k in range(WINDOW[0], WINDOW[1] + 1) if k != -1]
    return times, (e[:, None] == np.array(times, float)[None, :]).astype(float)


def dummies(df: pd.DataFrame) -> np.ndarray:
    unit = pd.factorize(df["firm_id"], sort=True)[0]
    time = pd.factorize(df["year"], sort=True)[0]
    U = (unit[:, None] == np.arange(unit.max() + 1)).astype(float)
    Tm = (time[:, None] == np.arange(1, time.max() + 1)).astype(float)
    return np.column_stack([U, Tm])


def _wb(X, y, cl, j, weights, B, seed):
    from wildboottest.wildboottest import WildboottestCL

    R = np.zeros(X.shape[1])
    R[j] = 1.0
    wb = WildboottestCL(X=X, Y=y, cluster=cl, R=R, B=B, seed=seed, parallel=False)
    wb.get_scores(bootstrap_type="11", impose_null=True)
    wb.get_weights(weights)
    wb.get_numer()
    wb.get_denom()
    wb.get_tboot()
    wb.get_vcov()
    wb.get_tstat()
    wb.get_pvalue()
    return {"p_value": float(wb.pvalue), "t_stat": float(np.ravel(wb.t_stat)[0]), "B": int(np.ravel(wb.t_boot).size),
            "t_boot_sorted": np.sort(np.ravel(wb.t_boot)).tolist() if weights == "rademacher" else None}


def main():
    import pyfixest as pf

    df = design()
    y = df["y"].to_numpy()
    cl = pd.factorize(df["cluster"])[0]
    D = ((df["first_treat"] > 0) & (df["year"] >= df["first_treat"])).to_numpy(float)
    F = dummies(df)
    out = {"design": "tests/reference/scripts/vcov_wild_peer.py::design() (8 clusters x 5 firms x 8 years)",
           "window": list(WINDOW)}
    X = np.column_stack([D, F])
    out["twfe"] = {
        "call": "wildboottest 0.3.2 WildboottestCL(X=[post, unit dummies, year dummies], B=9999, seed=1), "
        "get_scores('11', impose_null=True), weights 'rademacher' (full enumeration, 2^8 < B)",
        "rademacher": _wb(X, y, cl, 0, "rademacher", 9999, 1),
        "webb": {**_wb(X, y, cl, 0, "webb", 9999, 7), "call": "same with weights 'webb', B=9999, seed=7"},
    }
    times, E = event_columns(df)
    XE = np.column_stack([E, F])
    out["event_study"] = {
        "call": "wildboottest 0.3.2 WildboottestCL(X=[binned event dummies (ref -1), unit dummies, year dummies], "
        "B=9999, seed=1), WCR11, weights 'rademacher' (full enumeration)",
        "rademacher": {str(k): _wb(XE, y, cl, times.index(k), "rademacher", 9999, 1) for k in TERMS},
    }
    d = df.assign(post=D)
    for k, col in zip(times, E.T):
        d[f"ev_{'m' if k < 0 else ''}{abs(k)}"] = col
    ssc = pf.ssc(k_adj=False, G_adj=False)
    f = pf.feols("y ~ post | firm_id + year", data=d, vcov={"CRV3": "cluster"}, ssc=ssc)
    out["crv3_twfe"] = {"call": "pf.feols('y ~ post | firm_id + year', vcov={'CRV3': 'cluster'}, ssc=pf.ssc(k_adj=False, G_adj=False))",
                        "estimate": float(f._beta_hat[0]), "vcov_raw": float(np.asarray(f._vcov)[0, 0])}
    evs = [c for c in d.columns if c.startswith("ev_")]
    f = pf.feols(f"y ~ {' + '.join(evs)} | firm_id + year", data=d, vcov={"CRV3": "cluster"}, ssc=ssc)
    out["crv3_event_study"] = {"call": f"pf.feols('y ~ {' + '.join(evs)} | firm_id + year', vcov={{'CRV3': 'cluster'}}, ssc=pf.ssc(k_adj=False, G_adj=False))",
                               "event_times": times, "estimate": np.asarray(f._beta_hat).tolist(), "vcov_raw": np.asarray(f._vcov).tolist()}
    f = pf.feols("y ~ post | firm_id + year", data=d, vcov={"CRV1": "cluster"})
    out["crv1_twfe"] = {"call": "pf.feols('y ~ post | firm_id + year', vcov={'CRV1': 'cluster'})", "std_error": float(f._se[0])}
    OUT.write_text(json.dumps(out, indent=1))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
