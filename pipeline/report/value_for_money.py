"""The value-for-money section and its released table ``tables/value_for_money.csv``.

Renders only: every number comes from :func:`models.value_for_money.value_for_money` (the
estimate stage's ``data/estimates/_value_for_money.parquet``). Disclosure control before
anything is shown: :func:`pipeline.disclosure.check_table` with the distinct treated firms
(``n_treated``) as the row count, so a total built from fewer firms than the threshold is
blanked like any other cell (the costs rows are the programme's own spending, not firm data).
"""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from .. import disclosure as sdc
from .tables import fmt_fixed, isnum, to_csv_bytes

FILE = "tables/value_for_money.csv"


def _money(x: Any, unit: str) -> str:
    return f"{fmt_fixed(x, 0)} {unit}".strip() if isnum(x) else "withheld"


def _ival(lo: Any, hi: Any, digits: int = 0) -> str:
    if not (isnum(lo) and isnum(hi)):
        return ""
    return f"[{fmt_fixed(lo, digits)}, {fmt_fixed(hi, digits)}]"


def _row(t: pd.DataFrame, q: str, o: str | None = None) -> pd.Series | None:
    m = t["quantity"] == q
    if o is not None:
        m &= t["outcome"] == o
    return t.loc[m].iloc[0] if m.any() else None


def build(vfm: tuple[pd.DataFrame, dict] | None, params: dict, profile: sdc.Profile, money_unit: str) -> dict[str, Any]:
    """``{"content": {"vfm": ...}, "files": {...}, "findings": [...]}`` (content None without data.costs)."""
    if vfm is None:
        absent = ("Not computed: give the programme's costs as data.costs (README: Value for money)."
                  if not (params.get("data") or {}).get("costs") else "Not computed: the estimate stage wrote no value-for-money table.")
        return {"content": {"vfm": None, "vfm_absent": absent}, "files": {}, "findings": []}
    table, meta = vfm
    safe, findings = sdc.check_table("value_for_money", table.reset_index(drop=True), profile, row_counts=("n_treated",))
    files = {FILE: to_csv_bytes(safe)}
    o = params.get("value_for_money") or {}
    alpha = float(meta.get("alpha", 0.05))
    lvl = f"{100 * (1 - alpha):.0f} %"
    sent: list[str] = []
    cost = _row(safe, "costs_real")
    pvc = _row(safe, "pv_costs")
    if cost is not None:
        sent.append(f"The programme cost {_money(cost['estimate'], money_unit)}, "
                    f"{_money(pvc['estimate'], money_unit)} in present value in {meta['base_year']}.")
    ben = _row(safe, "net_additional", o.get("benefit"))
    if ben is not None:
        if isnum(ben["estimate"]):
            sent.append(f"It raised members' {str(o.get('benefit', '')).replace('_', ' ')} by {_money(ben['estimate'], money_unit)} "
                        f"({lvl} interval {_ival(ben['conf_low'], ben['conf_high'])}) over {int(ben['firm_years']):,} treated firm-years.")
        else:
            sent.append(f"The effect on {o.get('benefit')} is withheld (fewer treated firms than the disclosure threshold).")
    jobs = _row(safe, "net_additional", o.get("jobs"))
    cpj = _row(safe, "cost_per_job", o.get("jobs"))
    if jobs is not None and isnum(jobs["estimate"]):
        s = f"Additional job-years: {fmt_fixed(jobs['estimate'], 0)} ({lvl} interval {_ival(jobs['conf_low'], jobs['conf_high'])})"
        if cpj is not None and not pd.isna(cpj["interval"]) and not (pd.isna(cpj["conf_low"]) and pd.isna(cpj["conf_high"])):
            kind = str(cpj["interval"])
            lo, hi = cpj["conf_low"], cpj["conf_high"]
            if "bounded" in kind:
                fs = f"[{fmt_fixed(lo, 0)}, {fmt_fixed(hi, 0)}]"
            elif "two_rays" in kind:
                fs = f"at most {fmt_fixed(lo, 0)} or at least {fmt_fixed(hi, 0)}: unbounded, the job effect's interval contains zero"
            elif "ray" in kind:
                fs = f"at least {fmt_fixed(lo, 0)}" if math.isinf(float(hi)) else f"at most {fmt_fixed(hi, 0)}"
            else:
                fs = "undefined"
            s += f"; cost per additional job-year {_money(cpj['estimate'], money_unit)} (Fieller {lvl} set {fs})"
        sent.append(s + ".")
    bcr = _row(safe, "benefit_cost_ratio")
    if bcr is not None and isnum(bcr["estimate"]):
        sent.append(f"Benefit-cost ratio {fmt_fixed(bcr['estimate'], 2)} ({lvl} interval {_ival(bcr['conf_low'], bcr['conf_high'], 2)}) "
                    f"at {meta['discount']}, present values in {meta['base_year']}.")
    a = float(meta.get("additionality_factor", 1.0))
    notes = [
        "Totals are sums over treated firm-years of the Callaway-Sant'Anna ATT(g,t) (levels), with intervals from their "
        "influence functions; the difference-in-differences counterfactual is the reference case (deadweight).",
        f"Additionality factor (1 - leakage)(1 - displacement)(1 - substitution) x multiplier = {a:g} "
        "(English Partnerships / HCA Additionality Guide 2014)." + (" No adjustment (the defaults)." if a == 1.0 else ""),
        "Cost per job: a ratio with a known numerator; its set is {C/x : x in the job effect's interval} (Fieller 1954), "
        "which is unbounded when that interval contains zero.",
    ]
    if meta.get("missing"):
        notes.append(f"Not computed (no Callaway-Sant'Anna estimate in levels; not in the panel?): {', '.join(map(str, meta['missing']))}.")
    if meta.get("fitted_for_value_for_money"):
        notes.append(f"Fitted with cs for this section only (levels): {', '.join(meta['fitted_for_value_for_money'])}.")
    def _set(r) -> str:  # the Fieller set of cost per job as the table shows it
        kind, lo, hi = str(r["interval"]), r["conf_low"], r["conf_high"]
        if not (isnum(lo) or isnum(hi)):
            return ""
        if "two_rays" in kind:
            return f"≤ {fmt_fixed(lo, 0)} or ≥ {fmt_fixed(hi, 0)}"
        if "ray" in kind:
            return f"≥ {fmt_fixed(lo, 0)}" if math.isinf(float(hi)) else f"≤ {fmt_fixed(hi, 0)}"
        return _ival(lo, hi)

    rows = []
    for _, r in safe.iterrows():
        rows.append({"quantity": {"costs": "costs (nominal)", "costs_real": "costs (real)"}.get(r["quantity"], str(r["quantity"]).replace("_", " ")), "outcome": "" if pd.isna(r["outcome"]) else str(r["outcome"]),
                     "estimate": fmt_fixed(r["estimate"], 2 if r["quantity"] == "benefit_cost_ratio" else 0) or "withheld",
                     "interval": _set(r) if r["quantity"] == "cost_per_job" else _ival(r["conf_low"], r["conf_high"], 2 if r["quantity"] == "benefit_cost_ratio" else 0),
                     "method": "" if pd.isna(r["interval"]) else str(r["interval"]),
                     "firm_years": "" if pd.isna(r["firm_years"]) else f"{int(r['firm_years']):,}"})
    return {"content": {"vfm": {"sentences": sent, "rows": rows, "notes": notes, "file": FILE, "unit": money_unit}, "vfm_absent": ""},
            "files": files, "findings": findings}
