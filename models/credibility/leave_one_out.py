"""Leave one cluster initiative out (jackknife-style influence check).

For each value ``c`` of ``by`` (default ``cluster_id``, the cluster of a member's first
spell) the members with ``by == c`` are dropped (never members, whose ``by`` is null,
always stay) and the estimator is re-run. A headline that moves outside its own
confidence interval, or changes sign, when one initiative is left out rests on that
initiative (cf. the influence diagnostics of Young 2019, QJE 134(2), and the
leave-one-cluster-out checks common in the place-based-policy literature).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import DesignError
from models.spec import EstimatorSpec

from ._common import require_columns, run


def leave_one_out(
    data: pd.DataFrame,
    spec: EstimatorSpec,
    estimator: str = "twfe",
    by: str = "cluster_id",
    estimator_options: dict | None = None,
) -> dict:
    """Returns ``{"full": headline dict, "table": DataFrame, "spread": dict}``.

    ``table`` has one row per left-out value: ``left_out, estimate, std_error, p_value,
    conf_low, conf_high, n_obs, n_treated, dropped_rows, dropped_firms`` (a value whose
    removal leaves a non-estimable design gets NaN and its reason in ``note``).
    ``spread``: ``min, max, range, sd`` of the left-out estimates and ``max_abs_change``
    against the full-sample estimate, ``n_left_out`` and ``n_failed``.
    """
    require_columns(data, [by, spec.gname, spec.idname], "leave_one_out")
    member = data[spec.gname].to_numpy(dtype=np.int64) > 0
    keys = data[by]
    values = sorted(pd.unique(keys[member & keys.notna().to_numpy()].astype(str)))
    if len(values) < 2:
        raise DesignError(f"leave_one_out: members span {len(values)} value(s) of {by!r}; need at least 2")
    full = run(data, spec, estimator, estimator_options)
    key_s = keys.astype("string").to_numpy(dtype=object, na_value=None)
    rows = []
    for v in values:
        drop = member & (key_s == v)
        df = data.loc[~drop]
        row = {"left_out": v, "dropped_rows": int(drop.sum()), "dropped_firms": int(data.loc[drop, spec.idname].nunique())}
        try:
            r = run(df, spec, estimator, estimator_options)
            row.update({k: r[k] for k in ("estimate", "std_error", "p_value", "conf_low", "conf_high", "n_obs", "n_treated")})
            row["note"] = ""
        except DesignError as exc:
            row.update(estimate=np.nan, std_error=np.nan, p_value=np.nan, conf_low=np.nan, conf_high=np.nan, n_obs=None, n_treated=None)
            row["note"] = str(exc).splitlines()[0]
        rows.append(row)
    table = pd.DataFrame(rows)
    est = table["estimate"].to_numpy(dtype=float)
    ok = np.isfinite(est)
    spread = {
        "n_left_out": len(values),
        "n_failed": int((~ok).sum()),
        "min": float(np.min(est[ok])) if ok.any() else None,
        "max": float(np.max(est[ok])) if ok.any() else None,
        "range": float(np.ptp(est[ok])) if ok.any() else None,
        "sd": float(np.std(est[ok], ddof=1)) if ok.sum() > 1 else None,
        "max_abs_change": float(np.max(np.abs(est[ok] - full["estimate"]))) if ok.any() else None,
    }
    return {"check": "leave_one_out", "by": by, "full": full, "table": table, "spread": spread}
