"""Subgroup effects and the equality test (models/heterogeneity/subgroups.py) on simulated
panels with known subgroup effects."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.heterogeneity import subgroups
from models.spec import EstimatorSpec


def _panel(n=3000, T=10, tau=(0.10, 0.10), seed=0):
    """Staggered adoption, two sectors with true effects tau[0], tau[1]; parallel trends hold."""
    rng = np.random.default_rng(seed)
    ids = np.arange(n)
    sector = np.where(rng.random(n) < 0.5, "A", "B")
    g = np.where(rng.random(n) < 0.4, rng.choice([2004, 2006, 2008], n), 0)
    years = np.arange(2000, 2000 + T)
    df = pd.DataFrame({"firm_id": np.repeat(ids, T), "year": np.tile(years, n)})
    df["first_treat"] = np.repeat(g, T)
    df["sector"] = np.repeat(sector, T)
    df["employment"] = np.repeat(np.where(rng.random(n) < 0.8, 20.0, 400.0), T)
    effect = np.where(df["sector"] == "A", tau[0], tau[1])
    post = (df["first_treat"] > 0) & (df["year"] >= df["first_treat"])
    df["y"] = np.repeat(rng.normal(0, 1, n), T) + 0.02 * (df["year"] - 2000) + rng.normal(0, 0.2, len(df)) + effect * post
    df["post"] = post
    return df


def _fit(df, by=("sector",)):
    spec = EstimatorSpec(yname="y", options={"by": list(by), "min_treated": 10})
    return subgroups.fit(df, spec)


def test_recovers_subgroup_effects_and_detects_difference():
    r = _fit(_panel(tau=(0.05, 0.25)))
    t = r.tidy.set_index("term")
    # truth within 3 SE for each subgroup (one draw; a 3-SE band fails ~0.3% of the time)
    assert abs(t.loc["sector:A", "estimate"] - 0.05) < 3 * t.loc["sector:A", "std_error"]
    assert abs(t.loc["sector:B", "estimate"] - 0.25) < 3 * t.loc["sector:B", "std_error"]
    assert t.loc["sector:equality", "p_value"] < 1e-6


def test_equality_test_size_under_homogeneous_effects():
    """Under equal effects the Wald p-value is ~uniform: over 30 seeds the rejection rate at
    5% stays below 20% (binomial: P(>= 6 of 30 | 0.05) < 1%)."""
    rejections = sum(_fit(_panel(n=800, tau=(0.1, 0.1), seed=s)).meta["equality_tests"]["sector"]["p_value"] < 0.05 for s in range(30))
    assert rejections <= 5


def test_shared_controls_are_correlated_and_disjoint_groups_are_not():
    df = _panel(n=600)
    a = df[df["sector"] == "A"]
    b = df[df["sector"] == "B"]
    fa = subgroups._fit_group(a, EstimatorSpec(yname="y"), "dr")
    fb = subgroups._fit_group(b, EstimatorSpec(yname="y"), "dr")
    V = subgroups._joint_vcov([(fa[2], fa[3]), (fb[2], fb[3])])
    assert V[0, 1] == 0.0  # disjoint samples: independent
    np.testing.assert_allclose(np.sqrt(np.diag(V)), [fa[1], fb[1]], rtol=1e-10)  # diagonal = the SEs
    # two subgroups sharing the same controls have positive covariance
    ctrl = df[df["first_treat"] == 0]
    tr = df[df["first_treat"] > 0]
    half = tr["firm_id"] % 2 == 0
    f1 = subgroups._fit_group(pd.concat([tr[half], ctrl]), EstimatorSpec(yname="y"), "dr")
    f2 = subgroups._fit_group(pd.concat([tr[~half], ctrl]), EstimatorSpec(yname="y"), "dr")
    V2 = subgroups._joint_vcov([(f1[2], f1[3]), (f2[2], f2[3])])
    assert V2[0, 1] > 0


def test_small_subgroups_are_skipped_and_counted():
    df = _panel(n=1000)
    r = _fit(df, by=("size_class",))
    assert set(r.tidy["term"]) >= {"size_class:SME", "size_class:large"}
    large_members = df.loc[(df["employment"] > 250) & (df["first_treat"] > 0), "firm_id"].unique()
    df2 = df[~df["firm_id"].isin(large_members[3:])]  # keep 3 large member firms
    r2 = _fit(df2, by=("size_class",))
    assert "size_class:large" in r2.meta["skipped_subgroups"]


def test_unknown_dimension_is_a_config_error():
    from models.errors import ConfigError

    with pytest.raises(ConfigError, match="unknown dimension"):
        _fit(_panel(n=200), by=("colour",))
