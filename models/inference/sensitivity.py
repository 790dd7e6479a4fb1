"""Sensitivity of an event study to violations of parallel trends, from its stored output.

Given the dynamic (event-time) estimates of any event-study estimator and their covariance
(``tables["vcov_dynamic"]``, reference period omitted), this computes

* HonestDiD relative-magnitude robust confidence intervals (Rambachan & Roth 2023, C-LF
  test) for the average post-period effect over a grid of M̄, and the breakdown value M̄*
  (the largest M̄ at which the robust interval still excludes zero), via
  :mod:`models.inference.honest`;
* the power of the pre-test against a linear violation (Roth 2022): the slope a pre-test
  would detect with 50% and 80% probability, via :mod:`models.inference.pretrend_power`.

Pure function of the estimates: nothing is re-estimated ("estimate once, aggregate as a
function").
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .honest import breakdown_value, honest_did
from .pretrend_power import slope_for_power


def event_study_sensitivity(
    tidy: pd.DataFrame,
    vcov_dynamic: pd.DataFrame,
    *,
    mbar=(0.5, 1.0, 1.5, 2.0),
    window: tuple[int, int] = (-5, 5),
    alpha: float = 0.05,
    seed: int = 0,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Return (table of robust intervals, summary dict) for one event study.

    ``tidy`` are the estimator's tidy rows (``aggregation == "dynamic"`` used); the event
    times of ``vcov_dynamic`` fix the order. Raises ValueError when there are no pre or no
    post periods."""
    V = vcov_dynamic.copy()
    V.index = [int(i) for i in V.index]
    V.columns = [int(c) for c in V.columns]
    et = sorted(V.index)
    dyn = tidy[tidy["aggregation"] == "dynamic"].dropna(subset=["event_time"])
    est = dyn.set_index(dyn["event_time"].astype(int))["estimate"]
    # the event-time window keeps the linear programs small (their cost grows quickly with
    # the number of periods) and matches what an event-study figure shows
    et = [e for e in et if e in est.index and np.isfinite(est[e]) and window[0] <= e <= window[1]]
    pre = [e for e in et if e < 0]
    post = [e for e in et if e >= 0]
    if not pre or not post:
        raise ValueError("sensitivity needs at least one pre and one post period")
    beta = est.loc[pre + post].to_numpy(float)
    sigma = V.loc[pre + post, pre + post].to_numpy(float)
    table = honest_did(beta, sigma, len(pre), len(post), method="relative_magnitude", Mbar=list(mbar),
                       l_vec="average", alpha=alpha, seed=seed)
    table = table.assign(target="average post-period effect")
    bd = breakdown_value(beta, sigma, len(pre), len(post), method="relative_magnitude", l_vec="average",
                         alpha=alpha, seed=seed, tol=0.05)
    S_pre = sigma[: len(pre), : len(pre)]
    summary: dict[str, Any] = {
        "method": "HonestDiD relative magnitudes (C-LF), average of post periods",
        "window": list(window),
        "mbar": list(mbar),
        "breakdown_mbar": float(bd),
        "post_periods": post,
        "pre_periods": pre,
    }
    ref = max(pre) + 1 if -1 not in pre else -1
    for power in (0.5, 0.8):
        try:
            summary[f"slope_power_{int(power * 100)}"] = float(
                slope_for_power(S_pre, np.array(pre, float), target_power=power, reference_period=-1 if ref == -1 else ref, alpha=alpha, seed=seed)
            )
        except (ValueError, np.linalg.LinAlgError) as exc:  # pragma: no cover - degenerate vcov
            summary[f"slope_power_{int(power * 100)}"] = None
            summary["power_note"] = str(exc)
    return table.reset_index(drop=True), summary
