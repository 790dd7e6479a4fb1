"""Credibility battery (models.credibility): placebos, randomization inference,
leave-one-cluster-out and spillover designs, on the project's generator
(pipeline.simulate.simulate_economy) turned into a processed panel by the real
build_groups stage library.

Recovery targets come from the generator's truth (truth.csv content): the members' and
the co-located firms' ATT of log labour productivity. The placebo designs have a true
effect of exactly zero by construction.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models import registry
from models.credibility import (
    battery,
    leave_one_out,
    placebo_adoption,
    placebo_outcome,
    placebo_treated_group,
    randomization,
    randomization_inference,
    spillover_designs,
)
from models.did import twfe
from models.errors import ConfigError, DesignError
from models.spec import EstimatorSpec
from pipeline.groups import build_groups
from pipeline.simulate import simulate_economy

Y = "log_labour_productivity"


def processed(**sim) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Processed panel (the ingest-derived outcome + build_groups columns) and the truth."""
    e = simulate_economy(**sim)
    f = e.firms.rename(columns={"nace2": "sector", "nuts2": "region", "employees": "employment"})
    f = f.merge(e.deflators.rename(columns={"nace2": "sector"}), on=["sector", "year"], how="left")
    # as ingest derives it: real value added per employee
    f[Y] = np.log(f["value_added"] / f["deflator"] / f["employment"])
    # R&D does not respond to membership in the generator: a placebo outcome (log of it, performers only)
    f["log_rd"] = np.log(f["rd_expenditure"].where(f["rd_expenditure"] > 0))
    cols = ["firm_id", "year", "sector", "region", "founding_year", "employment", Y, "log_rd"]
    panel = build_groups(f[cols], e.membership, None, None).panel
    return panel, e.truth


def truth_mean(truth: pd.DataFrame, group: str) -> float:
    t = truth[(truth["outcome"] == Y) & (truth["group"] == group)]
    return float(np.average(t["att"], weights=t["n_firms"]))


def spec(**kw) -> EstimatorSpec:
    return EstimatorSpec(yname=kw.pop("yname", Y), seed=kw.pop("seed", 11), **kw)


@pytest.fixture(scope="module")
def econ():
    # random selection, homogeneous effect 0.06, two cohorts, clean register: ~270 members of 1500
    return processed(n_firms=1500, seed=3, cohorts=[2013, 2016], effect="homogeneous", selection="random")


@pytest.fixture(scope="module")
def panel(econ):
    return econ[0]


# --------------------------------------------------------------------------------------
# placebos: the true effect is zero by construction
# --------------------------------------------------------------------------------------
def test_placebo_adoption_is_zero(panel):
    r = placebo_adoption(panel, spec(), shift=2)
    # zero truth, random selection: within 2 SE (a 95 % band; fails ~5 % of seeds by design)
    assert abs(r["estimate"]) < 2 * r["std_error"], r
    g, t = panel["first_treat"], panel["year"]
    assert r["dropped"]["post_membership"] == int(((g > 0) & (t >= g)).sum())
    assert r["dropped"]["after_horizon"] == int(((g == 0) & (t > g.max() - 1)).sum())
    # cohort 2013 has 2008..2012 before it: no member loses its placebo pre-period at shift 2
    assert r["n_placebo_treated"] == panel.loc[g > 0, "firm_id"].nunique()
    with pytest.raises(ConfigError):
        placebo_adoption(panel, spec(), shift=0)


def test_placebo_adoption_detects_anticipation():
    """A real effect that starts 2 years before joining (anticipation) must show up."""
    p, _ = processed(n_firms=1200, seed=5, cohorts=[2014], effect="none", selection="random")
    p = p.copy()
    lead = (p["first_treat"] > 0) & (p["year"] >= p["first_treat"] - 2) & (p["year"] < p["first_treat"])
    p.loc[lead, Y] += 0.15
    r = placebo_adoption(p, spec(), shift=2)
    assert r["estimate"] > 3 * r["std_error"], r  # 0.15 against an SE of ~0.02


def test_placebo_treated_group_is_zero_and_seeded(panel):
    r = placebo_treated_group(panel, spec(), seed=1)
    # zero truth, 95 % band: fails for ~5 % of draws by design (seed 4 gives t = -2.19 on this panel;
    # the slow test below checks the calibration over 40 draws)
    assert abs(r["estimate"]) < 2 * r["std_error"], r
    n_members = panel.loc[panel["first_treat"] > 0, "firm_id"].nunique()
    assert r["n_placebo_treated"] == min(n_members, r["n_candidates"] // 2)
    assert r["n_treated"] == r["n_placebo_treated"]
    assert r["dropped"]["members"] == int((panel["first_treat"] > 0).sum())
    again = placebo_treated_group(panel, spec(), seed=1)
    other = placebo_treated_group(panel, spec(), seed=2)
    assert again["estimate"] == r["estimate"]  # same seed, same draw
    assert other["estimate"] != r["estimate"]


@pytest.mark.slow
def test_placebo_treated_group_calibrated(panel):
    """Over 40 seeded fake groups the t statistics look standard normal (measured: mean
    -0.21, SD 0.99, 5 % beyond 2). Draws share the panel, so the bands are loose."""
    t = np.array([(r := placebo_treated_group(panel, spec(), seed=s))["estimate"] / r["std_error"] for s in range(40)])
    assert abs(t.mean()) < 0.5
    assert 0.7 < t.std() < 1.3
    assert np.mean(np.abs(t) > 2) <= 0.15


def test_placebo_outcome(panel):
    r = placebo_outcome(panel, spec(), "log_rd")
    assert abs(r["estimate"]) < 2 * r["std_error"], r  # R&D does not respond to membership
    with pytest.raises(DesignError, match="constant within every firm"):
        placebo_outcome(panel, spec(), "founding_year")


# --------------------------------------------------------------------------------------
# randomization inference
# --------------------------------------------------------------------------------------
def test_fwl_shortcut_equals_twfe_fit(panel):
    fwl = randomization.TwfeFWL(panel, spec())
    full = twfe.fit(panel, spec()).tidy.iloc[0]["estimate"]
    # balanced panel: pyfixest's demeaning converges in one sweep, exact FWL is exact
    assert abs(fwl.beta(fwl.g_firm)[0] - full) < 1e-10


def test_fwl_shortcut_equals_twfe_fit_unbalanced_with_covariate(panel):
    rng = np.random.default_rng(0)
    p = panel.loc[rng.random(len(panel)) > 0.15].reset_index(drop=True)
    s = spec(covariates=("log_rd",))  # missing for non-performers: rows dropped the same way
    fwl = randomization.TwfeFWL(p, s)
    full = twfe.fit(p, s).tidy.iloc[0]["estimate"]
    # unbalanced: pyfixest iterates the demeaning to 1e-10 (models/did/_pyfixest.py), so
    # agreement to ~1e-9; 1e-8 leaves room without hiding a real difference (~1e-3)
    assert abs(fwl.beta(fwl.g_firm)[0] - full) < 1e-8


def test_ri_shortcut_equals_refit_draw_by_draw(panel):
    fast = randomization_inference(panel, spec(), draws=3, seed=7)
    slow = randomization_inference(panel, spec(), draws=3, seed=7, fast=False)
    assert fast["method"] == "fwl" and slow["method"] == "refit"
    # same permutations (SeedSequence children), same estimator: equal up to pyfixest tolerance
    np.testing.assert_allclose(fast["placebo"], slow["placebo"], atol=1e-10, rtol=0)
    assert abs(fast["estimate"] - slow["estimate"]) < 1e-10


def test_ri_small_under_real_effect_and_batch_independent(panel, monkeypatch):
    r = randomization_inference(panel, spec(), draws=99, seed=1)
    # true effect 0.06 at t ~ 5: no permutation reaches it, p = 1/(99+1)
    assert r["p_value"] == pytest.approx(1 / 100)
    assert r["n_extreme"] == 0 and r["draws"] == 99
    # draws depend on (seed, draw index) only, not on how they are batched
    monkeypatch.setattr(randomization, "_BATCH_ELEMENTS", 3 * len(panel))
    r2 = randomization_inference(panel, spec(), draws=99, seed=1)
    # (identical permutations; the estimates differ only in BLAS rounding of differently
    # shaped products, ~1e-16)
    np.testing.assert_allclose(r["placebo"], r2["placebo"], atol=1e-14, rtol=0)
    # the permutation distribution is centred on zero with a spread close to the SE
    se = twfe.fit(panel, spec()).tidy.iloc[0]["std_error"]
    assert abs(np.mean(r["placebo"])) < 3 * se / np.sqrt(99)
    assert 0.6 < np.std(r["placebo"]) / se < 1.6  # cluster SE vs permutation SD: same order


@pytest.mark.slow
def test_ri_pvalue_uniform_under_null():
    """Under no effect and random assignment, P(p_RI <= a) ~ a (a = 0.1, 0.25, 0.5)."""
    ps = []
    for s in range(60):
        p, _ = processed(n_firms=300, seed=100 + s, cohorts=[2013, 2016], effect="none", selection="random")
        ps.append(randomization_inference(p, spec(), draws=99, seed=s)["p_value"])
    ps = np.asarray(ps)
    for a in (0.1, 0.25, 0.5):
        # binomial(60, a): 3 SD band
        assert abs(np.mean(ps <= a) - a) < 3 * np.sqrt(a * (1 - a) / 60), (a, np.mean(ps <= a))


# --------------------------------------------------------------------------------------
# leave one cluster out
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def checks(panel):
    """The whole battery on the panel without spillover-free controls (so the spillover
    check cannot run); its leave-one-out table is the output of leave_one_out()."""
    opts = {**battery.OPTIONS, "ri_draws": 39, "placebo_outcome": "log_rd"}
    return battery.fit(no_free_controls(panel), spec(options=opts))


def test_leave_one_out(panel, checks):
    p = no_free_controls(panel)
    members = p.loc[p["first_treat"] > 0]
    clusters = sorted(members["cluster_id"].unique())
    tab = checks.tables["leave_one_out"]
    assert list(tab["left_out"]) == clusters  # one row per cluster initiative
    assert tab["dropped_firms"].sum() == members["firm_id"].nunique()
    assert (tab["n_treated"] + tab["dropped_firms"] == members["firm_id"].nunique()).all()
    # never members always stay
    assert (tab["n_obs"] + tab["dropped_rows"] == len(p)).all()
    assert np.isfinite(tab["estimate"]).all()
    v = checks.meta["verdicts"]["leave_one_out"]
    # effect is homogeneous (0.06) and clusters are random: leaving one out moves it little
    full = twfe.fit(p, spec()).tidy.iloc[0]
    assert v["full_estimate"] == pytest.approx(full["estimate"], abs=1e-12)
    assert v["max_abs_change"] < 2 * full["std_error"] and v["influential"] == []
    assert v["min"] <= v["full_estimate"] <= v["max"]
    assert v["range"] == pytest.approx(tab["estimate"].max() - tab["estimate"].min())
    one = p.loc[(p["first_treat"] == 0) | (p["cluster_id"] == clusters[0])]
    with pytest.raises(DesignError, match="need at least 2"):
        leave_one_out(one, spec())


# --------------------------------------------------------------------------------------
# spillovers
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def spill():
    # 6000 firms, 2 % members: ~120 members leave about 900 non-members in region x sector
    # cells without any member (spillover-free controls); with the default 18 % every cell
    # has a member and no spillover-free control exists (see the last test).
    return processed(
        n_firms=6000, seed=1, cohorts=[2013, 2016], effect="homogeneous", selection="random", spillover=0.5, member_share=0.02
    )


def test_spillover_designs_recover_truth(spill):
    p, truth = spill
    r = spillover_designs(p, spec())
    tm, tc = truth_mean(truth, "member"), truth_mean(truth, "colocated")
    c = r["counts"]
    assert c["spillover_free"] > 500 and c["colocated"] > 1000 and c["colocated_no_exposure_year"] == 0
    # spillover-free controls: members' truth (0.06) within 2 SE
    assert abs(r["free"]["estimate"] - tm) < 2 * r["free"]["std_error"], (r["free"], tm)
    # co-located non-members vs spillover-free ones: their truth (0.03) within 2 SE
    e = r["effect"]
    assert abs(e["estimate"] - tc) < 2 * e["std_error"], (e, tc)
    assert e["n_treated"] == c["colocated"]
    # naive design: the contaminated controls (share w co-located, each gaining tc) pull it
    # down by about w * tc. A single naive estimate's bias (~0.025) is about one member SE
    # (~0.02), so the contamination is tested on naive - free, whose noise is that of the
    # co-located-vs-free contrast scaled by w (the members are shared): SE ~ w * SE(effect).
    w = c["colocated"] / (c["colocated"] + c["spillover_free"])
    se_c = w * e["std_error"]
    assert r["contamination"] < -2 * se_c  # significantly biased toward zero
    assert abs(r["contamination"] + w * tc) < 3 * se_c, (r["contamination"], -w * tc)


def no_free_controls(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel without its spillover-free non-members (as when every region x sector
    cell holds a member, e.g. the generator's default 18 % members on 3000 firms)."""
    free = ~panel["colocated"] & (panel["first_treat"] == 0)
    assert free.any()
    return panel.loc[~free].reset_index(drop=True)


def test_spillover_without_free_controls_is_design_error(panel):
    with pytest.raises(DesignError, match="spillover-free"):
        spillover_designs(no_free_controls(panel), spec())


# --------------------------------------------------------------------------------------
# the battery (registry-style module)
# --------------------------------------------------------------------------------------
def test_battery_rows_and_verdicts(panel, checks):
    res = checks
    assert res.estimator == "checks" and res.outcome == Y
    t = res.tidy
    assert (t["aggregation"] == "static").all()
    clusters = sorted(panel.loc[panel["first_treat"] > 0, "cluster_id"].unique())
    # spillover: no spillover-free control left, so no row and a "not run" verdict
    assert list(t["term"]) == ["placebo_adoption", "placebo_group", "placebo_outcome", "ri_pvalue"] + [
        f"loo:{c}" for c in clusters
    ]
    v = res.meta["verdicts"]
    assert set(v) == {"placebo_adoption", "placebo_group", "placebo_outcome", "ri_pvalue", "leave_one_out", "spillover"}
    for k in ("placebo_adoption", "placebo_group", "placebo_outcome", "ri_pvalue", "leave_one_out"):
        assert v[k]["verdict"] == "pass", v[k]
    assert v["spillover"]["verdict"] == "not run" and "spillover-free" in v["spillover"]["sentence"]
    ri = t.set_index("term").loc["ri_pvalue"]
    assert ri["p_value"] == pytest.approx(1 / 40)
    assert ri["estimate"] == pytest.approx(twfe.fit(no_free_controls(panel), spec()).tidy.iloc[0]["estimate"], abs=1e-10)
    assert (t["n_treated"] > 0).all()
    for key in ("n_obs", "n_units", "n_treated_units", "n_clusters", "vcov", "control_group", "dropped"):
        assert key in res.meta
    assert set(res.tables["leave_one_out"]["left_out"]) == set(clusters)


def test_battery_ri_with_too_few_draws_is_not_run(panel):
    res = battery.run_checks(panel, spec(), {"checks": ["ri"], "ri_draws": 19})
    v = res.meta["verdicts"]["ri_pvalue"]
    assert v["verdict"] == "not run" and "ri_draws >= 20" in v["sentence"]
    assert res.tidy["p_value"].iloc[0] == pytest.approx(1 / 20)  # the row is still reported


def test_battery_concern_and_not_run(spill):
    p, _ = spill
    res = battery.run_checks(p, spec(), {"checks": ["spillover", "placebo_outcome"]})
    v = res.meta["verdicts"]
    # spillover 0.5 x 0.06 on ~5000 co-located firms: detected (t ~ 7)
    assert v["spillover"]["verdict"] == "concern"
    assert v["placebo_outcome"]["verdict"] == "not run"
    assert list(res.tidy["term"]) == ["spillover_naive", "spillover_free", "spillover_effect"]


def test_battery_options_are_validated(panel):
    assert set(battery.OPTIONS) == {
        "checks", "estimator", "estimator_options", "ri_draws", "placebo_shift", "placebo_outcome", "loo_by",
    }  # fmt: skip
    with pytest.raises(ConfigError):
        battery.run_checks(panel, spec(), {"ri_draw": 10})
    with pytest.raises(ConfigError):
        battery.run_checks(panel, spec(), {"checks": ["placebo"]})
    with pytest.raises(ConfigError):
        battery.run_checks(panel, spec(), {"ri_draws": 0})
    with pytest.raises(ConfigError):  # unknown estimator: the registry's message
        battery.run_checks(panel, spec(), {"estimator": "nope", "checks": ["placebo_group"]})


def test_other_estimator_runs_through_registry(panel):
    """The checks re-run any registry estimator; here the imputation estimator (BJS 2024)."""
    if "imputation" not in registry.available():
        pytest.skip("imputation estimator not built")
    r = placebo_treated_group(panel, spec(), estimator="imputation", seed=1)
    assert abs(r["estimate"]) < 2 * r["std_error"], r  # zero truth, 95 % band


# --------------------------------------------------------------------------------------
# spillovers by distance ring (build_groups.spillover: {by: ring, radius})
# --------------------------------------------------------------------------------------
RADIUS = 4.0  # km; firms scatter with sd 12 km around region centres 100 km apart


def processed_ring(by: str, **sim):
    e = simulate_economy(**sim)
    f = e.firms.rename(columns={"nace2": "sector", "nuts2": "region", "employees": "employment"})
    f = f.merge(e.deflators.rename(columns={"nace2": "sector"}), on=["sector", "year"], how="left")
    f[Y] = np.log(f["value_added"] / f["deflator"] / f["employment"])
    cols = ["firm_id", "year", "sector", "region", "x_coord", "y_coord", "employment", Y]
    opts = {"spillover": {"by": "ring", "radius": RADIUS}} if by == "ring" else None
    out = build_groups(f[cols], e.membership, opts, None)
    return out.panel, e.truth, out.flow


@pytest.fixture(scope="module")
def ring():
    sim = dict(n_firms=6000, seed=3, cohorts=[2013, 2016], effect="homogeneous", selection="random",
               spillover=0.5, member_share=0.02, spillover_radius=RADIUS)
    return processed_ring("ring", **sim), processed_ring("cell", **sim)


def test_ring_spillovers_naive_biased_ring_design_recovers_truth(ring):
    (p, truth, flow), (p_cell, _, _) = ring
    assert flow["colocation"] == {"by": "ring", "radius": RADIUS, "firms_without_coordinates": 0}
    r = spillover_designs(p, spec())
    tm, tc = truth_mean(truth, "member"), truth_mean(truth, "colocated")
    c = r["counts"]
    assert c["colocated"] > 300 and c["spillover_free"] > 1000 and c["colocated_no_exposure_year"] == 0
    # the ring design finds exactly the generator's exposed firms and their exposure years
    expo = truth[(truth["group"] == "colocated") & (truth["outcome"] == Y)]
    assert c["colocated"] == int(expo.groupby("cohort")["n_firms"].max().sum())
    assert abs(r["free"]["estimate"] - tm) < 2 * r["free"]["std_error"], (r["free"], tm)
    e = r["effect"]
    assert abs(e["estimate"] - tc) < 2 * e["std_error"], (e, tc)
    w = c["colocated"] / (c["colocated"] + c["spillover_free"])
    se_c = w * e["std_error"]
    assert r["contamination"] < -2 * se_c  # the naive design is biased toward zero
    # the cell-based co-location misses the ring's exposed firms in other cells: its
    # "spillover-free" pool is contaminated, so its spillover effect estimate is diluted
    rc = spillover_designs(p_cell, spec())
    assert rc["effect"]["estimate"] < e["estimate"] - 2 * e["std_error"]


def test_ring_needs_coordinates_and_a_radius():
    from pipeline.groups import build_groups as bg

    panel = pd.DataFrame({"firm_id": ["A", "A", "B", "B"], "year": [2010, 2011, 2010, 2011]})
    mem = pd.DataFrame({"firm_id": ["A"], "cluster_id": ["C1"], "join_year": [2011], "leave_year": [pd.NA]})
    with pytest.raises(ConfigError, match="x_coord and y_coord"):
        bg(panel, mem, {"spillover": {"by": "ring", "radius": 5}}, None)
    with pytest.raises(ConfigError, match="radius"):
        bg(panel, mem, {"spillover": {"by": "ring"}}, None)
    with pytest.raises(ConfigError, match="spillover.by"):
        bg(panel, mem, {"spillover": {"by": "planet"}}, None)
