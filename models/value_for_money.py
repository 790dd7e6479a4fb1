"""Value for money: what a programme's estimated effects imply for the spending behind it.

Every number of the value-for-money table is computed here from (a) the programme's costs
(known amounts, deflated like the panel) and (b) Callaway & Sant'Anna group-time effects
ATT(g,t) kept with their influence functions (:class:`models.did.att_gt.AttGtResult`). No
effect is re-estimated and no interval is a plug-in: every benefit is a *linear combination*
of the ATT(g,t) cells, so its standard error is the quadratic form of the stored
influence-function basis (Callaway & Sant'Anna 2021, J. Econometrics 225(2), Section 4.1;
:mod:`models.did._ifbasis`).

* **Total effect on the treated** (:func:`total_effect`):
  :math:`\\Delta Y = \\sum_{g,\\,t\\ge g} ATT(g,t)\\,N_{g,t}`, with :math:`N_{g,t}` the treated
  firms of cohort g observed in year t (treated firm-years). The counts are taken as fixed
  (the estimand is conditional on the treated sample), so
  :math:`\\mathrm{Var}(\\Delta Y) = w' \\mathrm{Var}(ATT) w`, :math:`w_{g,t} = N_{g,t}`.
  In levels, the total effect on employment is the additional job-years; on value added, the
  additional gross value added.
* **Discounting** (:func:`discount_factors`): HM Treasury (2022) *The Green Book*, Annex A6,
  Table 8: the social time preference rate is 3.5 % for years 0-30, 3.0 % for 31-75,
  2.5 % for 76-125 (and 2.0 % for 126-200, 1.5 % for 201-300, 1.0 % after); the discount
  factor of year t is :math:`D_t = \\prod_{s=1}^{t} (1+r_s)^{-1}` (each year discounted at the
  rate of its own band). Years before the base year are compounded at the first band's rate.
* **Additionality** (:func:`additionality_factor`): English Partnerships / Homes and
  Communities Agency (2014) *Additionality Guide*, 4th ed., Section 2:
  net = gross x (1 - leakage)(1 - displacement)(1 - substitution) x multiplier, minus the
  reference case (deadweight). The difference-in-differences counterfactual *is* the
  reference case, so only the other factors are parameters (default: none, i.e. factor 1).
* **Cost per additional job** (:func:`cost_per_unit`): a ratio C / Delta J with a known
  numerator C (the costs) and an estimated denominator. Its confidence set is the Fieller
  (1954, JRSS B 16(2)) set, which for a known numerator is exactly
  :math:`\\{C/x : x \\in CI(\\Delta J)\\}` (von Luxburg & Franz 2009, Statistics and
  Computing 19(1), Section 2): bounded when the interval excludes zero, a single ray when it
  ends at zero, two rays when it contains zero -- never the symmetric delta-method interval,
  which is wrong near a zero effect.
* **Benefit-cost ratio** (:func:`benefit_cost_ratio`): PV(net benefits) / PV(costs)
  (Green Book, Section 5 "BCR"); the costs are known, so its interval is the benefit's
  interval divided by PV(costs).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

#: HM Treasury Green Book (2022), Annex A6, Table 8: (first year, last year, rate)
GREEN_BOOK = ((0, 30, 0.035), (31, 75, 0.030), (76, 125, 0.025), (126, 200, 0.020), (201, 300, 0.015), (301, None, 0.010))


def schedule(rates) -> tuple[tuple[int, int | None, float], ...]:
    """``rates``: ``"green_book"`` (:data:`GREEN_BOOK`), one number (a constant rate) or a list of
    ``[first_year, rate]`` pairs (bands starting at first_year, the first at 0)."""
    if rates == "green_book" or rates is None:
        return GREEN_BOOK
    if isinstance(rates, (int, float)) and not isinstance(rates, bool):
        return ((0, None, float(rates)),)
    bands = sorted((int(a), float(r)) for a, r in rates)
    return tuple((a, (bands[i + 1][0] - 1 if i + 1 < len(bands) else None), r) for i, (a, r) in enumerate(bands))


def rate_of_year(s: int, sched) -> float:
    for lo, hi, r in sched:
        if s >= lo and (hi is None or s <= hi):
            return r
    return sched[-1][2]


def discount_factors(years, base_year: int, rates="green_book") -> np.ndarray:
    """:math:`D_t = \\prod_{s=1}^{t-base} (1+r_s)^{-1}`; before the base year
    :math:`(1+r_0)^{base-t}` (compounded at the first band's rate)."""
    sched = schedule(rates)
    out = []
    for y in np.asarray(years, dtype=int):
        t = int(y) - int(base_year)
        if t >= 0:
            d = 1.0
            for s in range(1, t + 1):
                d /= 1.0 + rate_of_year(s, sched)
        else:
            d = (1.0 + sched[0][2]) ** (-t)
        out.append(d)
    return np.array(out, dtype=float)


def present_value(amounts, years, base_year: int, rates="green_book") -> float:
    return float(np.dot(np.asarray(amounts, dtype=float), discount_factors(years, base_year, rates)))


def additionality_factor(leakage: float = 0.0, displacement: float = 0.0, substitution: float = 0.0,
                         multiplier: float = 1.0) -> float:
    """(1 - leakage)(1 - displacement)(1 - substitution) x multiplier (Additionality Guide 2014);
    the deadweight (reference case) is the DiD counterfactual, already netted out."""
    return (1.0 - leakage) * (1.0 - displacement) * (1.0 - substitution) * multiplier


@dataclass(frozen=True)
class Total:
    """A linear combination of ATT(g,t) cells: estimate, standard error, interval, and the
    treated firm-years and distinct treated firms behind it."""

    estimate: float
    std_error: float
    conf_low: float
    conf_high: float
    firm_years: int
    n_treated: int


def interval(estimate: float, se: float, alpha: float) -> tuple[float, float]:
    z = stats.norm.ppf(1 - alpha / 2)
    return estimate - z * se, estimate + z * se


def cell_weights(res, base_year: int | None = None, rates="green_book", factor: float = 1.0) -> np.ndarray:
    """Weights :math:`w_{g,t} = N_{g,t}\\,D_t\\,A` of the post-treatment cells (t >= g), 0 for
    the others and for NA cells. ``base_year`` None: no discounting."""
    post = (res.times >= res.groups) & np.isfinite(res.att)
    w = np.where(post, res.n_treated_cell.astype(float), 0.0)
    if base_year is not None:
        w = w * discount_factors(res.times, base_year, rates)
    return w * factor


def linear_total(res, w: np.ndarray, alpha: float = 0.05) -> Total:
    """:math:`\\sum w_{g,t} ATT(g,t)` with SE :math:`\\sqrt{v'Mv}/n`, v = [w; 0] on att_gt's
    influence-function basis (the cell counts and discount factors are fixed)."""
    att = np.where(w != 0, res.att, 0.0)
    est = float(np.dot(w, att))
    basis = res.basis()
    v = np.concatenate([w, np.zeros(basis.H)])
    se = float(math.sqrt(max(float(basis.quad(v)[0, 0]), 0.0)) / res.n)
    lo, hi = interval(est, se, alpha)
    post = w != 0
    fy = int(res.n_treated_cell[post].sum())
    cohorts = set(res.groups[post].tolist())
    n_tr = int(sum(c for g, c in res.cohort_sizes.items() if g in cohorts))
    return Total(est, se, lo, hi, fy, n_tr)


def total_effect(res, alpha: float = 0.05) -> Total:
    """:math:`\\Delta Y = \\sum_{g,t\\ge g} ATT(g,t)\\,N_{g,t}` (undiscounted, gross)."""
    return linear_total(res, cell_weights(res), alpha)


@dataclass(frozen=True)
class RatioSet:
    """The Fieller set of C / x for x in [lo, hi]: ``kind`` bounded | ray | two_rays | point |
    undefined; ``low``/``high`` the bounded interval or the ray ends (``-inf``/``inf`` open
    ends); for two_rays the set is (-inf, low] U [high, inf)."""

    estimate: float
    kind: str
    low: float
    high: float


def cost_per_unit(cost: float, estimate: float, lo: float, hi: float) -> RatioSet:
    """Cost per additional unit (job-year) C / Delta and its exact set {C/x : x in [lo, hi]}
    (Fieller 1954 with a known numerator; von Luxburg & Franz 2009)."""
    est = cost / estimate if estimate != 0 else math.nan
    if cost == 0:
        return RatioSet(0.0, "point", 0.0, 0.0)
    if lo > 0 or hi < 0:  # the interval excludes zero: bounded (C/x is monotone on it)
        a, b = sorted((cost / lo, cost / hi))
        return RatioSet(est, "bounded", a, b)
    if lo == 0 and hi == 0:
        return RatioSet(est, "undefined", -math.inf, math.inf)
    if lo == 0:  # (0, hi]: C/hi to +-inf on C's side
        return RatioSet(est, "ray", cost / hi, math.inf) if cost > 0 else RatioSet(est, "ray", -math.inf, cost / hi)
    if hi == 0:  # [lo, 0)
        return RatioSet(est, "ray", -math.inf, cost / lo) if cost > 0 else RatioSet(est, "ray", cost / lo, math.inf)
    # lo < 0 < hi: everything but the gap between C/lo and C/hi
    a, b = sorted((cost / lo, cost / hi))
    return RatioSet(est, "two_rays", a, b)


def benefit_cost_ratio(pv_benefit: Total, pv_cost: float) -> tuple[float, float, float]:
    """BCR = PV(benefits) / PV(costs) with the benefit's interval over the (known) costs."""
    return pv_benefit.estimate / pv_cost, pv_benefit.conf_low / pv_cost, pv_benefit.conf_high / pv_cost


def describe_set(r: RatioSet, fmt=lambda x: f"{x:,.0f}") -> str:
    """The set in words: '[a, b]', 'at least a', 'at most b', 'at most a or at least b'."""
    if r.kind == "bounded":
        return f"[{fmt(r.low)}, {fmt(r.high)}]"
    if r.kind == "ray":
        return f"at least {fmt(r.low)}" if math.isinf(r.high) else f"at most {fmt(r.high)}"
    if r.kind == "two_rays":
        return f"at most {fmt(r.low)} or at least {fmt(r.high)} (unbounded: the job effect's interval contains zero)"
    if r.kind == "point":
        return fmt(r.low)
    return "undefined (the job effect's interval is zero)"


#: the columns of the value-for-money table (reports/tables/value_for_money.csv)
TABLE_COLUMNS = ["quantity", "outcome", "estimate", "std_error", "conf_low", "conf_high", "interval", "firm_years",
                 "n_treated", "note"]


def value_for_money(att_gts: dict, costs, opts: dict, alpha: float = 0.05):
    """The value-for-money rows from the CS results ``att_gts`` (outcome -> AttGtResult) and the
    costs table (``year``, ``amount`` nominal, ``amount_real``), options as ``value_for_money``
    in params (discount, base_year, leakage, displacement, substitution, multiplier, benefit,
    jobs, totals). Returns (DataFrame of :data:`TABLE_COLUMNS`, meta dict)."""
    import pandas as pd

    years = np.asarray(costs["year"], dtype=int)
    base = int(opts.get("base_year") or years.min())
    rates = opts.get("discount", "green_book")
    a = additionality_factor(opts.get("leakage", 0.0), opts.get("displacement", 0.0), opts.get("substitution", 0.0),
                             opts.get("multiplier", 1.0))
    real = np.asarray(costs["amount_real"], dtype=float)
    cost_total = float(real.sum())
    pv_cost = present_value(real, years, base, rates)
    rows = [
        {"quantity": "costs", "estimate": float(np.asarray(costs["amount"], dtype=float).sum()), "note": "nominal, undiscounted"},
        {"quantity": "costs_real", "estimate": cost_total, "note": "in prices of the base year of data.deflators, undiscounted"},
        {"quantity": "pv_costs", "estimate": pv_cost, "note": f"present value in {base}"},
    ]
    if rates in ("green_book", None):
        words = "the Green Book discount rates (3.5 % years 0-30, 3.0 % 31-75, 2.5 % 76-125)"
    elif isinstance(rates, (int, float)):
        words = f"a discount rate of {100 * rates:g} %"
    else:
        words = "discount rates " + ", ".join(f"{100 * r:g} % from year {y}" for y, r in rates)
    meta = {"base_year": base, "discount": words,
            "additionality_factor": a, "alpha": alpha, "missing": []}
    totals = {}
    for o in dict.fromkeys([*(opts.get("totals") or []), opts.get("benefit"), opts.get("jobs")]):
        res = att_gts.get(o)
        if res is None:
            meta["missing"].append(o)
            continue
        gross = total_effect(res, alpha)
        net = linear_total(res, cell_weights(res, factor=a), alpha)
        totals[o] = net
        for q, t, note in (("total_effect", gross, "gross: sum over treated firm-years of ATT(g,t), undiscounted"),
                           ("net_additional", net, "x (1-leakage)(1-displacement)(1-substitution) x multiplier")):
            rows.append({"quantity": q, "outcome": o, "estimate": t.estimate, "std_error": t.std_error, "conf_low": t.conf_low,
                         "conf_high": t.conf_high, "interval": "influence function", "firm_years": t.firm_years,
                         "n_treated": t.n_treated, "note": note})
    jobs = totals.get(opts.get("jobs"))
    if jobs is not None:
        r = cost_per_unit(cost_total, jobs.estimate, jobs.conf_low, jobs.conf_high)
        rows.append({"quantity": "cost_per_job", "outcome": opts.get("jobs"), "estimate": r.estimate, "conf_low": r.low,
                     "conf_high": r.high, "interval": f"Fieller ({r.kind})", "firm_years": jobs.firm_years, "n_treated": jobs.n_treated,
                     "note": "real costs per net additional job-year" + ("; the set is (-inf, low] U [high, inf)" if r.kind == "two_rays" else "")})
    res = att_gts.get(opts.get("benefit"))
    if res is not None:
        pvb = linear_total(res, cell_weights(res, base_year=base, rates=rates, factor=a), alpha)
        rows.append({"quantity": "pv_benefits", "outcome": opts.get("benefit"), "estimate": pvb.estimate, "std_error": pvb.std_error,
                     "conf_low": pvb.conf_low, "conf_high": pvb.conf_high, "interval": "influence function",
                     "firm_years": pvb.firm_years, "n_treated": pvb.n_treated, "note": f"net, present value in {base}"})
        b, lo, hi = benefit_cost_ratio(pvb, pv_cost)
        rows.append({"quantity": "benefit_cost_ratio", "outcome": opts.get("benefit"), "estimate": b, "conf_low": lo, "conf_high": hi,
                     "interval": "benefit's interval / PV(costs)", "firm_years": pvb.firm_years, "n_treated": pvb.n_treated,
                     "note": "PV(net benefits) / PV(costs)"})
    df = pd.DataFrame(rows).reindex(columns=TABLE_COLUMNS)
    for c in ("firm_years", "n_treated"):
        df[c] = df[c].astype("Int64")
    return df, meta
