"""The synthetic economy's collaboration process (``cluster-impact simulate --collab-rate``).

Two edge processes over the firm-years of the panel, from their own random stream
``default_rng([seed, 6161])`` (so every other generated file is byte-identical with or
without collaborations):

* background (``Y(0)``): in each year ``Poisson(collab_base * n_t / 2)`` edges between two
  distinct firms alive that year, drawn uniformly (so a firm has about ``collab_base``
  partners a year, whatever its membership);
* membership-induced: in each year and initiative, ``Poisson(collab_rate * m_ct / 2)`` edges
  between two distinct firms that are members of that initiative in that year (a spell covers
  ``join_year <= t <= leave_year``) and alive: a member has about ``collab_rate`` more
  partners a year, all inside its initiative, once it has joined (the first effect of a
  cluster, Porter 1998; Giuliani & Bell 2005).

Kinds are drawn co-patent / joint project / supplier / other with probabilities
0.2 / 0.4 / 0.3 / 0.1 (they do not change the outcomes).

The truth is exact for the data written: the outcomes of :mod:`models.collaboration` are
derived from all edges (``Y(1)``) and from the background edges alone (``Y(0)``), with
``partners_same_initiative`` of ``Y(0)`` = 0 (without membership a firm is in no initiative),
on the exposed member firm-years of ``economy.potential``, and aggregated to truth.csv rows
(outcome ``n_partners`` and ``partners_same_initiative``) as the other outcomes are. Those
rows are appended after the existing ones, which stay byte-identical.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

KIND_P = {"co-patent": 0.2, "joint project": 0.4, "supplier": 0.3, "other": 0.1}
TRUTH = ("n_partners", "partners_same_initiative")


def _pairs(rng: np.random.Generator, pool: np.ndarray, m: int) -> tuple[np.ndarray, np.ndarray]:
    """``m`` uniform pairs of distinct elements of ``pool`` (len >= 2)."""
    i = rng.integers(0, pool.size, m)
    j = (i + rng.integers(1, pool.size, m)) % pool.size  # != i
    return pool[i], pool[j]


def collaboration_edges(firms: pd.DataFrame, membership: pd.DataFrame, seed: int, base: float, rate: float) -> pd.DataFrame:
    """Edges (firm_a, firm_b, year, kind, induced) of both processes; loops over years and
    initiatives only."""
    rng = np.random.default_rng([int(seed), 6161])
    codes, ids = pd.factorize(firms["firm_id"].astype(str))
    year = firms["year"].to_numpy(np.int64)
    mc = ids.get_indexer(membership["firm_id"].astype(str))
    cl_codes, _ = pd.factorize(membership["cluster_id"].astype(str))
    join = membership["join_year"].to_numpy(np.int64)
    leave = pd.to_numeric(membership["leave_year"]).to_numpy(np.float64, na_value=np.inf)
    out = []
    for t in np.unique(year):
        alive = np.unique(codes[year == t])
        if alive.size >= 2:
            a, b = _pairs(rng, alive, int(rng.poisson(base * alive.size / 2)))
            out.append((a, b, t, False))
        act = (mc >= 0) & (join <= t) & (t <= leave)
        act &= np.isin(mc, alive)
        for c in np.unique(cl_codes[act]):
            pool = np.unique(mc[act & (cl_codes == c)])
            if pool.size >= 2:
                a, b = _pairs(rng, pool, int(rng.poisson(rate * pool.size / 2)))
                out.append((a, b, t, True))
    a = np.concatenate([o[0] for o in out]) if out else np.array([], np.int64)
    b = np.concatenate([o[1] for o in out]) if out else np.array([], np.int64)
    t = np.concatenate([np.full(o[0].size, o[2]) for o in out]) if out else np.array([], np.int64)
    induced = np.concatenate([np.full(o[0].size, o[3]) for o in out]) if out else np.array([], bool)
    kind = rng.choice(np.array(list(KIND_P)), size=a.size, p=list(KIND_P.values()))
    lo, hi = np.minimum(a, b), np.maximum(a, b)  # ids are F + zero-padded numbers: code order = id order
    e = pd.DataFrame({"firm_a": ids[lo].astype(str), "firm_b": ids[hi].astype(str), "year": t.astype(np.int64),
                      "kind": kind.astype(str), "induced": induced})
    e = e.drop_duplicates(["firm_a", "firm_b", "year", "kind"]).sort_values(["year", "firm_a", "firm_b", "kind"], kind="stable")
    return e.reset_index(drop=True)


def collaboration_truth(firms: pd.DataFrame, membership: pd.DataFrame, potential: pd.DataFrame, edges: pd.DataFrame) -> pd.DataFrame:
    """truth.csv rows for :data:`TRUTH` over the exposed member firm-years (see the module docstring)."""
    from models.collaboration import collaboration_outcomes

    from .simulate import _truth_table

    rows = potential.loc[potential["group"] == "member", ["firm_id", "year", "cohort"]].reset_index(drop=True)
    panel = firms[["firm_id", "year", "nuts2"]].rename(columns={"nuts2": "region"})
    m = panel.reset_index(drop=True).reset_index().merge(rows, on=["firm_id", "year"])  # panel order
    keys = m["index"].to_numpy()
    y1 = collaboration_outcomes(panel, edges, membership).iloc[keys]
    y0 = collaboration_outcomes(panel, edges.loc[~edges["induced"]], membership).iloc[keys]
    pot = {"n_partners_1": y1["n_partners"].to_numpy(), "n_partners_0": y0["n_partners"].to_numpy(),
           "partners_same_initiative_1": y1["partners_same_initiative"].to_numpy(),
           "partners_same_initiative_0": np.zeros(len(keys))}
    return _truth_table(np.ones(len(m), np.int64), m["cohort"].to_numpy(), m["year"].to_numpy(), pot, outcomes=TRUTH)
