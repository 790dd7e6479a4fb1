"""The simulated truth aggregated over the estimand's own population.

``truth.csv`` (:mod:`pipeline.simulate`) holds, per outcome, exposure group, cohort ``g`` and
year ``t``, the true ``ATT(g, t)`` = mean of ``Y(1) - Y(0)`` over the exposed firms observed in
``t``, and their count ``n_firms``. An event-study coefficient at event time ``e`` of a
heterogeneity-robust estimator is a weighted average of the ``ATT(g, g + e)`` over the cohorts
it *estimates*, so the true value to draw next to it is the same average of the true cells:

* only members (``group == "member"``): co-located non-members' rows are spillovers, not the
  members' ATT;
* only the cohorts the estimator keeps: members who joined before the first panel year or in
  it (always-members; ``build_groups.always_treated: drop``) have truth rows for late event
  times but no estimate; when the estimator reports its cohort sizes they define the set;
* weights: the estimator's cohort sizes. Callaway & Sant'Anna (2021, J. Econometrics 225(2),
  eq. 3.6, dynamic aggregation ``theta_es(e) = sum_g 1{g + e <= T} P(G = g | G + e <= T)
  ATT(g, g + e)``) weight by cohort size among the cohorts observed at ``e``; Sun & Abraham
  (2021) weight by the cohort shares ``Pr(G = g | e)`` and Borusyak, Jaravel & Spiess (2024)
  average the treated observations at ``e`` - the same weights in a balanced panel.

The overall truth (:func:`true_simple_att`) is Callaway & Sant'Anna's ``simple`` aggregation
of the true cells: every post cell ``(g, t)``, ``t >= g``, weighted by its cohort's size.

With these weights a heterogeneity-robust estimate differs from the truth by exactly its
parallel-trends error: on the embedded sample ``estimate(effect) - estimate(no effect, same
seed)`` equals :func:`true_event_time_att` to rounding (tests/test_truth.py).

Partial: ``truth.csv`` is per cohort x year, not per firm, so when the estimator drops some
firms of a cohort (an unbalanced panel balanced by CS, rows dropped at ingest) the true cell
is still the mean over all of that cohort's observed firms.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

TRUTH_COLUMNS = ("outcome", "group", "cohort", "year", "event_time", "att", "n_firms")


def estimable_cells(truth: pd.DataFrame, cohort_sizes: Mapping[int, float] | None = None) -> pd.DataFrame:
    """Members' true cells of the cohorts an estimator estimates, with the weight ``w`` of each.

    ``cohort_sizes``: ``{cohort: number of firms}`` as the estimator used them (CS meta
    ``cohort_sizes``; key 0 = never treated is ignored). Without it: cohorts after the first
    year in ``truth`` (the first panel year: the truth has rows from it on), weighted by
    ``n_firms`` of the cell."""
    t = truth.copy()
    if "year" not in t.columns:
        t["year"] = pd.to_numeric(t["cohort"], errors="coerce") + pd.to_numeric(t["event_time"], errors="coerce")
    if "group" in t.columns:
        t = t[t["group"].astype(str) == "member"]
    for c in ("cohort", "year", "event_time"):
        t[c] = pd.to_numeric(t[c], errors="coerce")
    t["att"] = pd.to_numeric(t["att"], errors="coerce")
    t["n_firms"] = pd.to_numeric(t["n_firms"], errors="coerce").fillna(0)
    t = t.dropna(subset=["cohort", "year", "event_time", "att"])
    if t.empty:
        return t.assign(w=pd.Series(dtype=float))
    sizes = {int(k): float(v) for k, v in (cohort_sizes or {}).items() if int(k) != 0 and float(v) > 0}
    if sizes:
        t = t[t["cohort"].astype(int).isin(sizes)]
        t = t.assign(w=t["cohort"].astype(int).map(sizes).astype(float))
    else:
        first = int(t["year"].min())
        t = t[t["cohort"] > first]
        t = t.assign(w=t["n_firms"].astype(float))
    for c in ("cohort", "year", "event_time"):
        t[c] = t[c].astype(int)
    return t.reset_index(drop=True)


def true_event_time_att(truth: pd.DataFrame, cohort_sizes: Mapping[int, float] | None = None) -> dict[str, pd.DataFrame]:
    """Per outcome: ``event_time, att, n_firms, n_cohorts`` - the true ATT(e) over the estimable
    cohorts observed at ``e``, weighted as :func:`estimable_cells` says; ``n_firms`` is the
    number of member firms behind it (for disclosure control)."""
    cells = estimable_cells(truth, cohort_sizes)
    out: dict[str, pd.DataFrame] = {}
    for o, part in cells.groupby("outcome", sort=True):
        g = part.groupby("event_time", sort=True)
        w = g["w"].sum()
        att = (part["att"] * part["w"]).groupby(part["event_time"]).sum() / w.replace(0, np.nan)
        d = pd.DataFrame({"event_time": att.index.astype(int), "att": att.to_numpy(float),
                          "n_firms": g["n_firms"].sum().to_numpy(float), "n_cohorts": g["cohort"].nunique().to_numpy(int)})
        out[str(o)] = d.dropna(subset=["att"]).reset_index(drop=True)
    return out


def true_simple_att(truth: pd.DataFrame, cohort_sizes: Mapping[int, float] | None = None, outcome: str | None = None) -> float | None:
    """The true overall ATT as Callaway & Sant'Anna's ``simple`` aggregation: post cells
    ``(g, t)`` (``t >= g``) of the estimable cohorts, each weighted by its cohort's size."""
    cells = estimable_cells(truth, cohort_sizes)
    if outcome is not None:
        cells = cells[cells["outcome"].astype(str) == outcome]
    cells = cells[cells["event_time"] >= 0]
    if cells.empty or cells["w"].sum() <= 0:
        return None
    return float((cells["att"] * cells["w"]).sum() / cells["w"].sum())
