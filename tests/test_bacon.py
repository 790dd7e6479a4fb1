"""Goodman-Bacon decomposition: components sum to the TWFE coefficient (1e-10) on mpdta
and simulated panels, weights sum to one, 2x2 estimates equal hand-computed DiDs,
design errors."""

from __future__ import annotations

import pytest

from models.did import bacon, twfe
from models.errors import ConfigError, DesignError
from tests._did_sim import mpdta, simulate, spec


def _check_sum(r):
    comp = r.tables["bacon"]
    beta = r.tidy.iloc[0].estimate
    # exact identity (Goodman-Bacon 2021, Thm 1): 1e-10 allows rounding + pyfixest's
    # one-sweep demeaning on a balanced panel
    assert abs((comp["weight"] * comp["estimate"]).sum() - beta) < 1e-10
    assert abs(comp["weight"].sum() - 1) < 1e-12
    assert (comp["weight"] >= 0).all()
    return comp


def test_mpdta_sum_equals_twfe():
    mp = mpdta()
    r = bacon.fit(mp, spec("lemp"))
    comp = _check_sum(r)
    assert abs(r.tidy.iloc[0].estimate - twfe.fit(mp, spec("lemp")).tidy.iloc[0].estimate) < 1e-12
    assert set(comp["type"]) == {"treated_vs_never", "earlier_vs_later", "later_vs_earlier"}
    assert len(comp) == 9  # 3 cohorts x never + 3 pairs x 2 directions
    # hand-computed 2x2: cohort 2004 vs never, post = 2004-2007, pre = 2003
    m = mp.groupby(["first_treat", "year"])["lemp"].mean()
    hand = (m[2004].loc[2004:].mean() - m[2004].loc[2003]) - (m[0].loc[2004:].mean() - m[0].loc[2003])
    got = comp[(comp["type"] == "treated_vs_never") & (comp["treated"] == 2004)]["estimate"].iloc[0]
    assert abs(got - hand) < 1e-12
    # forbidden: 2007 treated vs 2004 as control, window 2004-2007, mid 2004-2006, post 2007
    hand = (m[2007].loc[2007] - m[2007].loc[2004:2006].mean()) - (m[2004].loc[2007] - m[2004].loc[2004:2006].mean())
    got = comp[(comp["type"] == "later_vs_earlier") & (comp["treated"] == 2007) & (comp["control"] == 2004)]
    assert abs(got["estimate"].iloc[0] - hand) < 1e-12


@pytest.mark.parametrize(
    "kw",
    [
        {"n_units": 400, "seed": 51},
        {"n_units": 400, "seed": 52, "never_share": 0.0, "cohorts": (2011, 2013, 2016, 2019)},
        {"n_units": 300, "seed": 53, "cohorts": (2012, 2014, 2015, 2018), "effect": "homogeneous"},
    ],
)
def test_simulated_sum_equals_twfe(kw):
    df, _ = simulate(**kw)
    cg = "notyettreated" if kw.get("never_share", 0.4) == 0 else "nevertreated"
    r = bacon.fit(df, spec("y", control_group=cg))
    _check_sum(r)
    assert abs(r.tidy.iloc[0].estimate - twfe.fit(df, spec("y", control_group=cg)).tidy.iloc[0].estimate) < 1e-12


def test_always_treated_enter_as_controls():
    df, _ = simulate(n_units=300, seed=54)
    firms = df.loc[df["first_treat"] == 2013, "firm_id"].unique()[:20]
    df.loc[df["firm_id"].isin(firms), "first_treat"] = 2008  # treated before the panel starts
    r = bacon.fit(df, spec("y"))
    comp = _check_sum(r)
    assert "treated_vs_always" in set(comp["type"])


def test_bacon_errors():
    df, _ = simulate(n_units=200, seed=55, unbalanced=0.05)
    with pytest.raises(DesignError, match="balanced panel"):
        bacon.fit(df, spec("y"))
    bal, _ = simulate(n_units=200, seed=55)
    with pytest.raises(ConfigError, match="covariates"):
        bacon.fit(bal, spec("y", covariates=["x"]))
