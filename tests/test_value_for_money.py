"""models.value_for_money: exact hand computations (discounting, additionality, Fieller sets,
BCR) and recovery of a simulated programme's total effect with its influence-function SE."""

from __future__ import annotations

import math

import numpy as np
import pytest

from models import value_for_money as vfm
from models.did.att_gt import att_gt
from tests._did_sim import simulate


def test_green_book_discount_factors_by_hand():
    # HM Treasury Green Book Annex A6: 3.5 % a year for years 1..30, then 3.0 %: D_30 = 1.035^-30,
    # D_31 = 1.035^-30 / 1.03, D_76 = 1.035^-30 1.03^-45 / 1.025
    d = vfm.discount_factors([2020, 2021, 2050, 2051, 2095, 2096, 2019], base_year=2020)
    hand = [1.0, 1 / 1.035, 1.035**-30, 1.035**-30 / 1.03, 1.035**-30 * 1.03**-45, 1.035**-30 * 1.03**-45 / 1.025, 1.035]
    assert d == pytest.approx(hand, rel=1e-14)  # rounding of ~100 products only
    assert vfm.discount_factors([2022], 2020, rates=0.05)[0] == pytest.approx(1 / 1.05**2, rel=1e-15)
    assert vfm.discount_factors([2023], 2020, rates=[[0, 0.1], [2, 0.0]])[0] == pytest.approx(1 / 1.1, rel=1e-15)
    # 100 in 2020 + 103.5 in 2021: PV = 100 + 100 = 200
    assert vfm.present_value([100, 103.5], [2020, 2021], 2020) == pytest.approx(200.0, rel=1e-15)


def test_additionality_factor_by_hand():
    assert vfm.additionality_factor() == 1.0
    # net = gross (1 - 0.1)(1 - 0.25)(1 - 0.2) x 1.5 = 0.81 gross
    assert vfm.additionality_factor(0.1, 0.25, 0.2, 1.5) == pytest.approx(0.81, rel=1e-15)


@pytest.mark.parametrize("cost,est,lo,hi,kind,low,high", [
    (1000.0, 50.0, 20.0, 80.0, "bounded", 12.5, 50.0),           # CI excludes 0: [C/hi, C/lo]
    (1000.0, -50.0, -80.0, -20.0, "bounded", -50.0, -12.5),      # a negative effect: still bounded
    (1000.0, 10.0, -10.0, 30.0, "two_rays", -100.0, 1000 / 30),  # CI contains 0: (-inf, C/lo] U [C/hi, inf)
    (1000.0, 10.0, 0.0, 20.0, "ray", 50.0, math.inf),            # CI ends at 0: [C/hi, inf)
    (1000.0, -10.0, -20.0, 0.0, "ray", -math.inf, -50.0),        # (-inf, C/lo]
    (0.0, 10.0, 5.0, 15.0, "point", 0.0, 0.0),
])
def test_fieller_set_for_a_known_numerator(cost, est, lo, hi, kind, low, high):
    r = vfm.cost_per_unit(cost, est, lo, hi)
    assert (r.kind, r.low, r.high) == (kind, pytest.approx(low, rel=1e-15), pytest.approx(high, rel=1e-15))
    if cost:
        assert r.estimate == pytest.approx(cost / est, rel=1e-15)
    # the set is {C/x : x in [lo, hi]}: check by brute force on a grid of x
    xs = np.linspace(lo, hi, 2001)
    xs = xs[xs != 0]
    vals = cost / xs
    if kind == "bounded":
        assert vals.min() == pytest.approx(low) and vals.max() == pytest.approx(high)
    if kind == "two_rays":
        assert not ((vals > low) & (vals < high)).any() and vals.min() < low and vals.max() > high


def test_two_rays_described_as_unbounded():
    r = vfm.cost_per_unit(1000.0, 10.0, -10.0, 30.0)
    assert "at most -100 or at least 33" in vfm.describe_set(r)


def test_benefit_cost_ratio_by_hand():
    b = vfm.Total(300.0, 50.0, 202.0, 398.0, 10, 3)
    assert vfm.benefit_cost_ratio(b, 200.0) == pytest.approx((1.5, 1.01, 1.99), rel=1e-15)


@pytest.fixture(scope="module")
def fit():
    df, _ = simulate(n_units=500, seed=11, effect="dynamic", sigma=0.5)
    res = att_gt(df, "y", "year", "firm_id", "first_treat", control_group="nevertreated")
    return df, res


def test_total_effect_se_is_the_influence_function_quadratic_form(fit):
    df, res = fit
    tot = vfm.total_effect(res)
    w = vfm.cell_weights(res)
    # by hand from the per-unit influence functions: sqrt(sum_i (psi_i' w)^2) / n
    psi = np.nan_to_num(res.inf_func) @ w
    assert tot.std_error == pytest.approx(math.sqrt(np.sum(psi**2)) / res.n, rel=1e-10)
    # N_{g,t}: treated firm-years of the balanced simulated panel
    assert tot.firm_years == int(df["post"].sum())
    assert tot.estimate == pytest.approx(float(np.nansum(res.att * w)), rel=1e-14)


def test_total_effect_recovers_the_simulated_truth(fit):
    df, res = fit
    tot = vfm.total_effect(res)
    truth = float(df.loc[df["post"], "true_effect"].sum())  # sum over treated firm-years of the true effect
    assert abs(tot.estimate - truth) < 2 * tot.std_error
    # with a known cost the BCR interval is the benefit's over PV(costs), and covers the true BCR
    cost = 0.5 * truth
    bcr, lo, hi = vfm.benefit_cost_ratio(tot, cost)
    assert lo < truth / cost < hi


def test_discounted_additional_total_is_the_weighted_combination(fit):
    _, res = fit
    a = vfm.additionality_factor(0.1, 0.2, 0.0, 1.2)
    w = vfm.cell_weights(res, base_year=2012, factor=a)
    tot = vfm.linear_total(res, w)
    hand = sum(res.n_treated_cell[k] * res.att[k] * vfm.discount_factors([res.times[k]], 2012)[0] * a
               for k in range(res.att.size) if res.times[k] >= res.groups[k])
    assert tot.estimate == pytest.approx(hand, rel=1e-12)
    assert tot.std_error == pytest.approx(a * vfm.linear_total(res, vfm.cell_weights(res, base_year=2012)).std_error, rel=1e-12)


def test_every_value_for_money_option_is_checked_at_load():
    from models import options as opt
    from pipeline.config import validate

    assert set(opt.VFM_RULES) == set(opt.VFM_DEFAULTS)
    for key, rule in opt.VFM_RULES.items():
        problems: list[str] = []
        validate({"value_for_money": {key: rule.bad}}, problems)
        assert any(p.startswith(f"value_for_money.{key}:") for p in problems), (key, problems)
    problems = []
    validate({"value_for_money": {"leak": 0.1}}, problems)
    assert any("value_for_money.leak: unknown key" in p for p in problems)
    problems = []
    validate({"value_for_money": {"discount": [[0, 0.035], [31, 0.03]]}}, problems)
    assert not [p for p in problems if "value_for_money" in p]


def test_totals_from_few_treated_firms_are_withheld(fit):
    """Disclosure: a total built from fewer treated firms than the threshold is blanked like any
    other cell (pipeline.disclosure.check_table on n_treated); the costs rows stay."""
    import pandas as pd

    from pipeline import disclosure as sdc
    from pipeline.report import value_for_money as sec

    _, res = fit
    costs = pd.DataFrame({"year": [2012, 2013], "amount": [100.0, 100.0], "amount_real": [100.0, 100.0]})
    opts = {"benefit": "y", "jobs": "y", "totals": ["y"]}
    table, meta = vfm.value_for_money({"y": res}, costs, opts)
    profile = sdc.resolve_profile("strict")
    few = table.assign(n_treated=table["n_treated"].where(table["n_treated"].isna(), 2))
    out = sec.build((few, meta), {"value_for_money": opts}, profile, "EUR")
    rel = pd.read_csv(__import__("io").BytesIO(out["files"][sec.FILE]))
    effect = rel["quantity"].isin(["total_effect", "net_additional", "pv_benefits", "benefit_cost_ratio", "cost_per_job"])
    assert rel.loc[effect, ["estimate", "conf_low", "conf_high"]].isna().all().all()
    assert rel.loc[~effect, "estimate"].notna().all() and out["findings"]
    assert any("withheld" in s for s in out["content"]["vfm"]["sentences"])
    ok = sec.build((table, meta), {"value_for_money": opts}, profile, "EUR")
    assert not ok["findings"] and "Benefit-cost ratio" in " ".join(ok["content"]["vfm"]["sentences"])
