"""The programme's costs (``data.costs``), read and validated by ingest for value_for_money.

Columns: ``initiative`` (a cluster_id of the membership register) or ``firm_id`` (a firm of
the panel) -- one of the two --, ``year``, ``amount`` and ``currency``. Amounts are in the
money unit of ``units`` (same currency and scale as the panel's money columns); the currency
column must say ``units.currency``. Amounts are deflated like the panel: with
``data.deflators`` each year's amount is divided by that year's mean sector price index
(a programme-level index: costs carry no sector; the README says so), so real costs are
in ``units.price_base_year`` prices. Every problem names file, column, count, first keys and
the fix; nothing is written on a problem (ingest raises them together).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .config import Params
from .readers import clean_text, describe_issue, load_table, read_header

REQUIRED = ("year", "amount", "currency")
LEVELS = ("initiative", "firm_id")


def empty() -> pd.DataFrame:
    return pd.DataFrame({"level": pd.array([], dtype="str"), "key": pd.array([], dtype="str"), "year": np.array([], np.int64),
                         "amount": np.array([], np.float64), "amount_real": np.array([], np.float64)})


def read_costs(params: Params, firm_ids: pd.Index, cluster_ids: pd.Index, deflators: pd.DataFrame | None,
               problems: list[str]) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """The costs table (level, key, year, amount nominal, amount_real) and its flow; problems appended."""
    from .ingest import isin_text, keys_text

    spec = params["data"].get("costs")
    if spec is None:
        return empty(), None
    label = spec["path"]
    path = params.resolve(label)
    header = read_header(path, spec, role="costs", label=label)
    levels = [c for c in LEVELS if c in header]
    missing = [c for c in REQUIRED if c not in header]
    if len(levels) != 1 or missing:
        what = (["initiative or firm_id (one of the two)"] if len(levels) != 1 else []) + missing
        problems.append(f"{label}: column(s) {', '.join(what)} {'not found' if len(levels) < 2 else 'both given'} (the file has: "
                        f"{', '.join(header)}); the costs file needs initiative (a cluster_id of the register) or firm_id, "
                        "year, amount, currency. Fix: rename the columns")
        return empty(), None
    lev = levels[0]
    table = load_table(path, spec, role="costs", columns=[lev, *REQUIRED], numeric=["year", "amount"], text=[lev, "currency"], label=label)
    f = table.frame
    d = pd.DataFrame({"key": clean_text(f[lev]).array, "year": f["year"], "amount": f["amount"],
                      "currency": clean_text(f["currency"]).array})
    keys = ("key", "year")
    shown = d.rename(columns={"key": lev})
    kt = (lev, "year")
    flow: dict[str, Any] = {"file": label, "format": table.format, "level": lev, "rows_in": len(d), "rows_kept": len(d),
                            "excluded": {}}
    for issue in table.issues.values():
        problems.append(describe_issue(table, issue, keys=[lev, "year"]))
    n0 = len(problems)
    yr = pd.to_numeric(d["year"]).to_numpy(dtype=np.float64, na_value=np.nan)
    amt = pd.to_numeric(d["amount"]).to_numpy(dtype=np.float64, na_value=np.nan)
    bad_year = np.isnan(yr)
    if "year" in table.issues:
        bad_year[table.issues["year"].positions] = False
    if bad_year.any():
        problems.append(f"{label}, column 'year': {bad_year.sum()} row(s) without a year; first keys ({lev}, year): "
                        f"{keys_text(shown, bad_year, kt)}. Fix: give the calendar year of each amount")
    with np.errstate(invalid="ignore"):
        frac = np.isfinite(yr) & (np.floor(yr) != yr)
        neg = amt < 0
    if frac.any():
        problems.append(f"{label}, column 'year': {frac.sum()} non-integer year(s); first keys ({lev}, year): "
                        f"{keys_text(shown, frac, kt)}. Fix: give whole calendar years")
    bad_amt = np.isnan(amt)
    if "amount" in table.issues:
        bad_amt[table.issues["amount"].positions] = False
    if bad_amt.any():
        problems.append(f"{label}, column 'amount': {bad_amt.sum()} row(s) without an amount; first keys ({lev}, year): "
                        f"{keys_text(shown, bad_amt, kt)}. Fix: fill in the amount spent (0 for a year without spending)")
    if neg.any():
        problems.append(f"{label}, column 'amount': {neg.sum()} negative amount(s); first keys ({lev}, year): "
                        f"{keys_text(shown, neg, kt)}. Fix: give spending as a positive amount (net out repayments by hand)")
    no_key = d["key"].isna().to_numpy()
    if no_key.any():
        problems.append(f"{label}, column '{lev}': {no_key.sum()} row(s) without an {lev}; first keys ({lev}, year): "
                        f"{keys_text(shown, no_key, kt)}. Fix: fill it in or delete the rows")
    universe, what = (cluster_ids, "cluster_id of the membership register") if lev == "initiative" else (firm_ids, "firm of the panel")
    unknown = ~isin_text(d["key"], universe) & ~no_key
    if unknown.any():
        problems.append(f"{label}, column '{lev}': {unknown.sum()} row(s) whose {lev} is no {what}; first keys ({lev}, year): "
                        f"{keys_text(shown, unknown, kt)}. Fix: use the register's ids exactly (text, same zero-padding) or delete the rows")
    cur = params["units"].get("currency")
    wrong = d["currency"].isna().to_numpy() | (d["currency"].astype("str").to_numpy() != str(cur))
    if wrong.any():
        problems.append(f"{label}, column 'currency': {wrong.sum()} row(s) not in the panel's currency {cur!r} (units.currency); "
                        f"first keys ({lev}, year): {keys_text(shown, wrong, kt)}. Fix: convert the amounts to {cur} in the "
                        "scale of units.scale and write that currency" + (" (set units.currency first)" if cur is None else ""))
    if len(problems) > n0 or table.issues:
        return empty(), flow
    year = yr.astype(np.int64)
    real = amt.copy()
    flow["deflated"] = deflators is not None and len(deflators) > 0
    if flow["deflated"]:
        idx = deflators.groupby("year")["deflator"].mean()
        di = idx.reindex(year).to_numpy(dtype=np.float64)
        gap = np.isnan(di)
        if gap.any():
            problems.append(f"{label}, column 'year': {gap.sum()} row(s) in a year data.deflators does not cover; first keys "
                            f"({lev}, year): {keys_text(shown, gap, kt)}. Fix: extend the deflators file to those years")
            return empty(), flow
        real = amt / di
    out = pd.DataFrame({"level": pd.array(["initiative" if lev == "initiative" else "firm"] * len(d), dtype="str"),
                        "key": d["key"].astype("str").array, "year": year, "amount": amt, "amount_real": real})
    out = out.sort_values(["key", "year"], kind="stable").reset_index(drop=True)
    flow["total_nominal"] = float(amt.sum())
    flow["total_real"] = float(real.sum())
    return out, flow
