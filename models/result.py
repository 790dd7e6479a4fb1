"""One result type for every estimator.

An :class:`EstimationResult` is a tidy table of rows (one per reported parameter) plus a
metadata dict; it never holds a backend object (pyfixest, statsmodels, linearmodels stay
inside ``models/``). The pipeline persists ``tidy`` as Parquet and ``meta`` as JSON.

Tidy columns (DESIGN.md §3.3): ``outcome, estimator, aggregation, term, event_time,
cohort, time, estimate, std_error, statistic, p_value, conf_low, conf_high`` plus
``n_obs`` (observations behind the row) and ``n_treated`` (distinct treated firms behind
the row, used by disclosure control). Absent fields are null.

``aggregation`` is one of :data:`AGGREGATIONS`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

TIDY_COLUMNS: list[str] = [
    "outcome",
    "estimator",
    "aggregation",
    "term",
    "event_time",
    "cohort",
    "time",
    "estimate",
    "std_error",
    "statistic",
    "p_value",
    "conf_low",
    "conf_high",
    "n_obs",
    "n_treated",
]

AGGREGATIONS = ("static", "simple", "dynamic", "group", "calendar", "gt", "matched")

_DTYPES = {
    "outcome": "string",
    "estimator": "string",
    "aggregation": "string",
    "term": "string",
    "event_time": "Int64",
    "cohort": "Int64",
    "time": "Int64",
    "estimate": "float64",
    "std_error": "float64",
    "statistic": "float64",
    "p_value": "float64",
    "conf_low": "float64",
    "conf_high": "float64",
    "n_obs": "Int64",
    "n_treated": "Int64",
}


def normal_inference(estimate, std_error, alpha: float = 0.05, crit: float | None = None):
    """z statistic, two-sided normal p-value and confidence bounds.

    ``crit`` overrides the normal critical value (e.g. a sup-t critical value for
    uniform bands, or a t quantile)."""
    est = np.asarray(estimate, dtype=float)
    se = np.asarray(std_error, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        stat = np.where(se > 0, est / se, np.nan)
    p = 2.0 * stats.norm.sf(np.abs(stat))
    c = stats.norm.ppf(1 - alpha / 2) if crit is None else crit
    return stat, p, est - c * se, est + c * se


def tidy_frame(rows: list[dict[str, Any]] | pd.DataFrame) -> pd.DataFrame:
    """Build a tidy frame with exactly :data:`TIDY_COLUMNS` in order and stable dtypes."""
    df = pd.DataFrame(rows) if not isinstance(rows, pd.DataFrame) else rows.copy()
    extra = [c for c in df.columns if c not in TIDY_COLUMNS]
    if extra:
        raise ValueError(f"tidy rows carry unknown columns {extra}; allowed: {TIDY_COLUMNS}")
    for col in TIDY_COLUMNS:
        if col not in df.columns:
            df[col] = pd.NA
    df = df[TIDY_COLUMNS]
    out = {}
    for col, dt in _DTYPES.items():
        s = df[col]
        if dt == "float64":
            out[col] = pd.to_numeric(s, errors="raise").astype("float64")
        elif dt == "Int64":
            out[col] = pd.to_numeric(s, errors="raise").round().astype("Int64")
        else:
            out[col] = s.astype("string")
    bad = set(out["aggregation"].dropna().unique()) - set(AGGREGATIONS)
    if bad:
        raise ValueError(f"unknown aggregation values {sorted(bad)}; allowed: {AGGREGATIONS}")
    return pd.DataFrame(out).reset_index(drop=True)


@dataclass
class EstimationResult:
    """What every estimator returns.

    Attributes
    ----------
    estimator, outcome:
        Registry key and outcome column name.
    tidy:
        Tidy rows, see module docstring.
    meta:
        JSON-serialisable metadata: ``n_obs, n_units, n_treated_units, n_clusters, vcov,
        control_group, dropped`` (rows dropped by reason), ``spec`` and estimator-specific
        diagnostics (e.g. ``pretrend`` = joint Wald test of the leads).
    tables:
        Named auxiliary tidy tables (balance tables, Bacon components, ...), each a
        DataFrame of aggregate (never unit-level) rows.
    influence:
        Optional, in memory only (never persisted, never released): the per-unit influence
        function of the headline estimate, ``{"ids": unit ids, "psi": values, "n": n}`` with
        ``estimate - truth ~ sum(psi) / n``, for joint inference across results (the
        Romano–Wolf adjustment across outcomes, models.inference.multiple_testing).
    """

    estimator: str
    outcome: str
    tidy: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    influence: dict[str, Any] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        tidy = self.tidy.copy()
        if "outcome" not in tidy or tidy["outcome"].isna().all():
            tidy["outcome"] = self.outcome
        if "estimator" not in tidy or tidy["estimator"].isna().all():
            tidy["estimator"] = self.estimator
        self.tidy = tidy_frame(tidy)

    def headline(self) -> pd.Series | None:
        """The row a summary reports: the first ``static``/``simple``/``matched`` row."""
        for agg in ("simple", "static", "matched"):
            rows = self.tidy[self.tidy["aggregation"] == agg]
            if len(rows):
                return rows.iloc[0]
        return None
