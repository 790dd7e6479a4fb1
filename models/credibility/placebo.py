"""Placebo designs: the estimator re-run where the true effect is zero by construction.

* :func:`placebo_adoption` — *in-time placebo* (fake adoption dates; e.g. Abadie,
  Diamond & Hainmueller 2015 "in-time placebos"; Roth, Sant'Anna, Bilinski & Poe 2023,
  J. Econometrics 235(2), §5 on pre-trend checks): keep only the members' pre-membership
  years (and the never members' years up to the same horizon), pretend the members joined
  ``shift`` years earlier, re-estimate. Any "effect" is a pre-trend or anticipation.
* :func:`placebo_treated_group` — *in-space placebo*: drop the members, give non-members
  of the members' sectors the members' cohort distribution (seeded draw) and re-estimate.
  Any "effect" is a difference in trends between those firms and the rest.
* :func:`placebo_outcome` — an outcome that membership cannot move (a pre-determined or
  unrelated variable named by the user); Imbens & Rubin (2015, ch. 21) / Athey & Imbens
  (2017) "pseudo-outcomes".

Each returns a dict: the headline row of the estimator on the placebo design
(``estimate, std_error, p_value, conf_low, conf_high, n_obs, n_treated``), the design's
counts and ``dropped`` = {reason: rows}. Under a credible design the estimate is within
sampling error of zero.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.errors import ConfigError, DesignError
from models.spec import EstimatorSpec

from ._common import firm_first, recode_treatment, require_columns, run


def placebo_adoption(
    data: pd.DataFrame, spec: EstimatorSpec, estimator: str = "twfe", shift: int = 2, estimator_options: dict | None = None
) -> dict:
    """Fake adoption ``shift`` years before the real one, on pre-membership data only.

    Sample: members' rows with ``year < first_treat`` (their untreated years) and never
    members' rows with ``year <= H`` where ``H = max(first_treat) - 1`` is the last year
    any member is still untreated. Placebo cohort ``g' = first_treat - shift``. Members
    with no placebo-untreated year left (``g'`` <= their first kept year) would be
    always-treated in the placebo sample and are dropped (counted,
    ``no_placebo_pre_period``); the post-membership rows are counted as
    ``post_membership``, never members' rows after ``H`` as ``after_horizon``.
    """
    if not isinstance(shift, (int, np.integer)) or isinstance(shift, bool) or shift < 1:
        raise ConfigError(f"placebo_adoption: shift must be a whole number >= 1, got {shift!r}")
    g, t, i = spec.gname, spec.tname, spec.idname
    require_columns(data, [g, t, i, spec.yname], "placebo_adoption")
    gv = data[g].to_numpy(dtype=np.int64)
    tv = data[t].to_numpy(dtype=np.int64)
    if not (gv > 0).any():
        raise DesignError("placebo_adoption: no members (every first_treat is 0)")
    horizon = int(gv[gv > 0].max()) - 1
    member = gv > 0
    dropped = {}
    keep_m = member & (tv < gv)
    keep_n = ~member & (tv <= horizon)
    dropped["post_membership"] = int((member & ~keep_m).sum())
    dropped["after_horizon"] = int((~member & ~keep_n).sum())
    df = data.loc[keep_m | keep_n]
    g_fake = np.where(df[g].to_numpy(dtype=np.int64) > 0, df[g].to_numpy(dtype=np.int64) - shift, 0)
    first_year = df.groupby(i, sort=False)[t].transform("min").to_numpy(dtype=np.int64)
    no_pre = (g_fake > 0) & (g_fake <= first_year)
    dropped["no_placebo_pre_period"] = int(no_pre.sum())
    df = recode_treatment(df.loc[~no_pre], spec, g_fake[~no_pre])
    if not (df[g] > 0).any():
        raise DesignError(
            f"placebo_adoption: no member has a pre-membership year before its placebo adoption "
            f"(shift = {shift}); use a smaller placebo_shift"
        )
    out = run(df, spec, estimator, estimator_options)
    out.update(
        check="placebo_adoption",
        shift=int(shift),
        horizon=horizon,
        n_placebo_treated=int(df.loc[df[g] > 0, i].nunique()),
        dropped={k: v for k, v in dropped.items() if v},
    )
    return out


def placebo_treated_group(
    data: pd.DataFrame,
    spec: EstimatorSpec,
    estimator: str = "twfe",
    seed: int | None = None,
    sector: str = "sector",
    estimator_options: dict | None = None,
) -> dict:
    """Fake treated group drawn from non-members of the members' sectors.

    Members are dropped (rows counted as ``members``). Candidates are the never members
    whose ``sector`` (first row) holds at least one member. ``k = min(#members,
    floor(#candidates / 2))`` candidates are drawn without replacement and given cohorts
    drawn without replacement from the members' ``first_treat`` values (one per member
    firm: the cohort distribution), both with ``numpy.random.default_rng(seed)``
    (``spec.seed`` when ``seed`` is None). All other non-members are the controls. At most
    half the candidates are used so that the members' sectors keep controls too.

    Under spillovers the co-located non-members are exposed, so this placebo picks up the
    spillover; read it next to :func:`models.credibility.spillover.spillover_designs`.
    """
    g, i = spec.gname, spec.idname
    require_columns(data, [g, i, sector, spec.yname], "placebo_treated_group")
    firms = firm_first(data, i, [g, sector])
    fg = firms[g].to_numpy(dtype=np.int64)
    if not (fg > 0).any():
        raise DesignError("placebo_treated_group: no members (every first_treat is 0)")
    member_sectors = pd.unique(firms.loc[fg > 0, sector])
    cand = np.flatnonzero((fg == 0) & firms[sector].isin(member_sectors).to_numpy())
    n_mem = int((fg > 0).sum())
    k = min(n_mem, cand.size // 2)
    if k < 1:
        raise DesignError(
            f"placebo_treated_group: {cand.size} non-members in the members' sectors; need at least 2 "
            "(one fake treated, one control)"
        )
    rng = np.random.default_rng(spec.seed if seed is None else seed)
    pick = rng.choice(cand, size=k, replace=False)
    cohorts = rng.choice(fg[fg > 0], size=k, replace=False)
    g_new = np.zeros(len(firms), dtype=np.int64)
    g_new[pick] = cohorts
    is_member_row = data[g].to_numpy(dtype=np.int64) > 0
    df = data.loc[~is_member_row]
    code = firms.index.get_indexer(df[i])
    df = recode_treatment(df, spec, g_new[code])
    out = run(df, spec, estimator, estimator_options)
    out.update(
        check="placebo_group",
        n_candidates=int(cand.size),
        n_placebo_treated=int(k),
        seed=int(spec.seed if seed is None else seed),
        dropped={"members": int(is_member_row.sum())} if is_member_row.any() else {},
    )
    return out


def placebo_outcome(
    data: pd.DataFrame, spec: EstimatorSpec, outcome: str, estimator: str = "twfe", estimator_options: dict | None = None
) -> dict:
    """Re-estimate with ``outcome`` (a variable membership cannot move) as ``yname``.

    The outcome must vary within firms: a firm-constant variable (founding year, a
    pre-period level) is absorbed by the firm fixed effects and raises DesignError with
    that reason (use a time-varying pre-determined series instead, e.g. a lagged or
    base-year-interacted one, or a series the programme cannot affect)."""
    if not outcome or not isinstance(outcome, str):
        raise ConfigError("placebo_outcome: name the placebo outcome (estimate.checks.placebo_outcome)")
    require_columns(data, [outcome, spec.idname], "placebo_outcome")
    y = pd.to_numeric(data[outcome], errors="coerce")
    within = y.groupby(data[spec.idname].to_numpy()).nunique(dropna=True)
    if not (within > 1).any():
        raise DesignError(
            f"placebo_outcome: {outcome!r} is constant within every firm, so the firm fixed effects absorb it "
            "and no effect can be estimated; name a time-varying outcome membership cannot affect"
        )
    out = run(data, spec, estimator, estimator_options, yname=outcome)
    out.update(check="placebo_outcome", outcome=outcome, dropped={})
    return out
