"""Shared plumbing of the credibility checks: run a registry estimator on a modified panel,
read its headline row, recode the treatment columns after changing ``first_treat``."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd

from models import registry
from models.errors import BadInputError, DesignError
from models.spec import EstimatorSpec

# the headline aggregation each estimator family reports (EstimationResult.headline order)
HEADLINE_AGGREGATIONS = ("simple", "static", "matched")


def estimator_spec(spec: EstimatorSpec, estimator: str, estimator_options: dict | None = None, **changes) -> EstimatorSpec:
    """``spec`` with the options of ``estimator`` (its OPTIONS merged with
    ``estimator_options``) instead of the battery's own options."""
    mod = registry.get(estimator)
    opts = {**getattr(mod, "OPTIONS", {}), **(estimator_options or {})}
    return dataclasses.replace(spec, options=opts, **changes)


def run(data: pd.DataFrame, spec: EstimatorSpec, estimator: str, estimator_options: dict | None = None, **changes) -> dict[str, Any]:
    """Fit ``estimator`` on ``data``; return its headline row as a dict
    (estimate, std_error, p_value, conf_low, conf_high, n_obs, n_treated, term, aggregation)."""
    mod = registry.get(estimator)
    res = mod.fit(data, estimator_spec(spec, estimator, estimator_options, **changes))
    row = res.headline()
    if row is None:
        raise DesignError(f"{estimator}: no headline (simple/static/matched) row to compare")
    out = {
        k: (None if pd.isna(row[k]) else (int(row[k]) if k in ("n_obs", "n_treated") else float(row[k])))
        for k in ("estimate", "std_error", "p_value", "conf_low", "conf_high", "n_obs", "n_treated")
    }
    out["term"] = str(row["term"])
    out["aggregation"] = str(row["aggregation"])
    out["n_treated_units"] = res.meta.get("n_treated_units")
    return out


def require_columns(data: pd.DataFrame, cols, check: str) -> None:
    missing = [c for c in dict.fromkeys(cols) if c not in data.columns]
    if missing:
        raise BadInputError(
            f"{check}: the processed panel lacks column(s) {missing}; run build_groups (it adds first_treat, "
            "cluster_id, colocated, eligible) and map sector/region in params.yaml columns:"
        )


def firm_first(data: pd.DataFrame, idname: str, cols) -> pd.DataFrame:
    """One row per firm: the values of ``cols`` in the firm's first row (sorted by id)."""
    return data.groupby(idname, sort=True)[list(cols)].first()


def recode_treatment(df: pd.DataFrame, spec: EstimatorSpec, g: np.ndarray) -> pd.DataFrame:
    """Return ``df`` with ``gname`` set to ``g`` (one value per row) and the derived
    treatment columns (``ever_member``, ``post``, ``rel_time``) made consistent with it,
    where present."""
    out = df.copy()
    g = np.asarray(g, dtype=np.int64)
    t = out[spec.tname].to_numpy(dtype=np.int64)
    out[spec.gname] = g
    if "ever_member" in out:
        out["ever_member"] = g > 0
    if "post" in out:
        out["post"] = (g > 0) & (t >= g)
    if "rel_time" in out:
        out["rel_time"] = pd.array(np.where(g > 0, t - g, 0), dtype="Int64")
        out.loc[g == 0, "rel_time"] = pd.NA
    return out


def z_crit(alpha: float) -> float:
    from scipy import stats

    return float(stats.norm.ppf(1 - alpha / 2))
