"""Local-projections DiD (registry key ``lpdid``; Dube, Girardi, Jordà & Taylor 2023).

* = pyfixest 0.60 ``lpdid`` on mpdta, every horizon's coefficient, CRV1 standard error
  (firm-clustered, pyfixest's default vcov) and sample size, and the pooled ATT
  (tests/reference/pyfixest_mpdta_fe.json, script tests/reference/scripts/pyfixest_mpdta_fe.py);
* recovers a known dynamic effect on simulated staggered data (tests/_did_sim.simulate);
* never-only clean controls, calendar (not row) leads with gaps, option validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.did import lpdid
from tests._did_sim import mpdta, spec, stored

# 1e-10: both sides are one pyfixest feols per horizon with year effects only (balanced
# mpdta: one demeaning sweep is exact); observed 0.0. Any difference in the clean-control
# sample or the CRV1 factor moves the numbers by > 1e-4.
TOL = 1e-10


def test_equals_pyfixest_lpdid_on_mpdta():
    ref = stored("pyfixest_mpdta_fe")
    r = lpdid.fit(mpdta(), spec("lemp", control_group="notyettreated"))
    t = r.tidy.set_index("term")
    assert sorted(int(k) for k in ref["lpdid_dynamic"]) == r.meta["horizons"] == [-4, -3, -2, 0, 1, 2, 3]
    for k, v in ref["lpdid_dynamic"].items():
        row = t.loc[f"rel_time::{k}"]
        assert abs(row.estimate - v["estimate"]) < TOL and abs(row.std_error - v["std_error"]) < TOL, (k, row, v)
        assert row.n_obs == v["n_obs"]
    row, v = t.loc["ATT"], ref["lpdid_pooled"]
    assert row.aggregation == "simple" and row.n_obs == v["n_obs"]
    assert abs(row.estimate - v["estimate"]) < TOL and abs(row.std_error - v["std_error"]) < TOL
    assert r.meta["vcov"] == "cluster(firm_id)" and r.meta["formula"] == "y[t+h] - y[t-1] ~ dD | year"


def test_covariate_equals_pyfixest_xfml():
    """estimate.covariates enter each horizon at their period-t value, as pyfixest's xfml."""
    ref = stored("pyfixest_mpdta_fe")["lpdid_dynamic_lpop"]
    t = lpdid.fit(mpdta(), spec("lemp", covariates=["lpop"], control_group="notyettreated")).tidy.set_index("term")
    for k, v in ref.items():
        row = t.loc[f"rel_time::{k}"]
        assert abs(row.estimate - v["estimate"]) < TOL and abs(row.std_error - v["std_error"]) < TOL, (k, row, v)


def test_recovers_a_known_dynamic_effect():
    """Staggered adoption, effects growing with event time, tau_h = 0.5 + 0.25 h, the same in
    every cohort (LP-DiD's beta_h weights cohorts by variance, so with cohort-varying effects
    it targets a differently weighted average than the sample ATT): each horizon's true
    effect within 3 SE, placebos flat."""
    from tests._did_sim import simulate, truth

    def tau(g, e):
        e = np.asarray(e, dtype=float)
        return np.where(e >= 0, 0.5 + 0.25 * e, 0.0)

    df, _ = simulate(n_units=1500, seed=31, sigma=0.3, effect=tau)
    tr = truth(df)
    r = lpdid.fit(df, spec("y", control_group="notyettreated", post_window=4))
    t = r.tidy[r.tidy["aggregation"] == "dynamic"].set_index("event_time")
    dyn = tr["dynamic"]
    for h in range(0, 5):
        assert abs(t.loc[h, "estimate"] - dyn[h]) < 3 * t.loc[h, "std_error"], (h, t.loc[h].to_dict(), dyn[h])
    assert dyn[4] - dyn[0] > 10 * t.loc[4, "std_error"]  # the effect is dynamic, not a constant
    for h in t.index[t.index < -1]:
        assert abs(t.loc[h, "estimate"]) < 3 * t.loc[h, "std_error"], (h, t.loc[h].to_dict())
    assert r.meta["pretrend"]["p_value"] > 0.01


def test_never_only_controls_and_calendar_leads():
    """control_group nevertreated: not-yet-treated firms never enter a horizon's sample; and a
    firm with a missing year gets a missing difference (leads by calendar year, not row)."""
    d = mpdta()
    a = lpdid.fit(d, spec("lemp", control_group="nevertreated")).tidy.set_index("term")
    b = lpdid.fit(d, spec("lemp", control_group="notyettreated")).tidy.set_index("term")
    never_rows = int((d["first_treat"] == 0).sum() / 5)  # never counties
    # horizon 0: newly treated (t = g, g in 2004/2006/2007) + never members observed at t-1 and t
    n_new = int(((d["year"] == d["first_treat"]) & (d["first_treat"] > 2003)).sum())
    assert a.loc["rel_time::0", "n_obs"] == n_new + never_rows * 4
    assert b.loc["rel_time::0", "n_obs"] > a.loc["rel_time::0", "n_obs"]
    gap = d[~((d["firm_id"] == d["firm_id"].iloc[0]) & (d["year"] == 2005))]
    c = lpdid.fit(gap, spec("lemp", control_group="notyettreated")).tidy.set_index("term")
    # the county is a 2007 cohort: its 2006 row loses y[t-1]; its 2004 row loses y[t+1]
    assert c.loc["rel_time::0", "n_obs"] == b.loc["rel_time::0", "n_obs"] - 2


def test_options_are_validated():
    from models.errors import ConfigError

    assert lpdid.validate_options({"pre_window": 1}) and lpdid.validate_options({"pooled": "yes"})
    with pytest.raises(ConfigError, match="estimate.lpdid.post_window"):
        lpdid.fit(mpdta(), spec("lemp", post_window=-1))
    r = lpdid.fit(mpdta(), spec("lemp", control_group="notyettreated", pre_window=2, post_window=1, pooled=False))
    assert r.meta["horizons"] == [-2, 0, 1] and "simple" not in set(r.tidy["aggregation"])
