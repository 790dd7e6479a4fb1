"""Per-cell contributor summaries: what disclosure control needs to check a released
aggregate without keeping one row per contributor.

For a table whose cells are sums over firms, :func:`top_contributions` returns per cell the
number of distinct contributors, the total of their absolute values and the ``k`` largest
contributor sums (``top1 >= top2 >= ...``, 0 where there are fewer contributors). The
(n, k) dominance share of the ``n`` largest (n <= k) and the p % ratio (total − x1 − x2) / x1
follow exactly (:func:`pipeline.disclosure.summary_reasons`). A contributor is an enterprise
group when the firm has one, else the firm, as in :func:`pipeline.disclosure.cell_contributions`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

TOP_K = 3


def top_contributions(df: pd.DataFrame, keys: list[str], value: str, contributor: str = "contributor", k: int = TOP_K, prefix: str = "") -> pd.DataFrame:
    """One row per cell (``keys``): ``{prefix}n_contributors``, ``{prefix}total``,
    ``{prefix}top1..top{k}``. Rows with a missing ``value`` are ignored."""
    d = df[keys + [contributor, value]].copy()
    d = d[d[value].notna()]
    d["_v"] = np.abs(d[value].astype(float))
    by = d.groupby(keys + [contributor], sort=True, observed=True, dropna=False)["_v"].sum().reset_index()
    by = by.sort_values(keys + ["_v"], ascending=[True] * len(keys) + [False], kind="mergesort")
    by["_rank"] = by.groupby(keys, sort=False, observed=True, dropna=False).cumcount()
    g = by.groupby(keys, sort=True, observed=True, dropna=False)
    out = pd.DataFrame({f"{prefix}n_contributors": g[contributor].nunique(), f"{prefix}total": g["_v"].sum()})
    for j in range(k):
        top = by[by["_rank"] == j].set_index(keys)["_v"]
        out[f"{prefix}top{j + 1}"] = top.reindex(out.index).fillna(0.0).to_numpy()
    return out.reset_index()
