"""Derived outcomes computed at ingest (``params.yaml``: ``ingest.derive``).

``REGISTRY`` maps an outcome name to a function ``f(data) -> array``. ``data`` maps pipeline
column names to equal-length NumPy arrays and always holds ``deflator`` (the sector-year
value-added price index, 2015 = 1; all ones when no deflator file is given: the nominal
fallback, flagged in the ingest flow) plus ``firm_code`` (integer firm codes) and ``year``,
with rows sorted by firm and year. Each function's docstring gives its formula; its
attributes say what it needs:

- ``needs``: mapped pipeline columns it reads (an unmapped one is a ConfigError);
- ``after``: derived outcomes it is computed from (derived first, kept in the panel);
- ``positive``: columns that must be > 0 for the outcome to exist. For ``value_added`` and
  ``employment`` the ``ingest.log_nonpositive`` policy applies (drop the row, counted as
  ``nonpositive_for_log:<col>``, or fail); other columns give a missing value, counted in
  the flow notes;
- ``deflated``: uses the deflator (real value added).

Logs are natural logs. Nothing here warns on zeros: undefined values are missing (NaN).
Monetary inputs are in thousands of euro as in the raw files, so labour productivity is
thousand euro (of 2015) per employee.
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np
import pandas as pd

Data = Mapping[str, np.ndarray]
REGISTRY: dict[str, Callable[[Data], np.ndarray]] = {}
# columns covered by ingest.log_nonpositive (drop | fail); others give a missing value
POLICY_COLUMNS = ("value_added", "employment")


def derived(name: str, *, needs: tuple[str, ...] = (), after: tuple[str, ...] = (), positive: tuple[str, ...] = (), deflated: bool = False):
    def wrap(fn):
        fn.outcome = name
        fn.needs = needs
        fn.after = after
        fn.positive = positive
        fn.deflated = deflated
        fn.formula = (fn.__doc__ or "").strip().splitlines()[0]
        REGISTRY[name] = fn
        return fn

    return wrap


def _log(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.shape, np.nan)
    np.log(x, out=out, where=x > 0)
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    num = np.asarray(num, dtype=np.float64)
    den = np.asarray(den, dtype=np.float64)
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den > 0)
    return out


def real_value_added(data: Data) -> np.ndarray:
    """value_added / deflator[sector, year] (deflator = 1 when no deflator file: nominal)."""
    return _ratio(data["value_added"], data["deflator"])


@derived("labour_productivity", needs=("value_added", "employment"), positive=("employment",), deflated=True)
def labour_productivity(data: Data) -> np.ndarray:
    """labour_productivity = (value_added / deflator[sector, year]) / employment  (real value added per employee)."""
    return _ratio(real_value_added(data), data["employment"])


@derived(
    "log_labour_productivity",
    needs=("value_added", "employment"),
    after=("labour_productivity",),
    positive=("value_added", "employment"),
    deflated=True,
)
def log_labour_productivity(data: Data) -> np.ndarray:
    """log_labour_productivity = ln(labour_productivity); missing where value added <= 0."""
    return _log(data["labour_productivity"])


@derived("export_status", needs=("exports",))
def export_status(data: Data) -> pd.arrays.IntegerArray:
    """export_status = 1[exports > 0] (0/1, nullable Int64; missing where exports is missing)."""
    x = np.asarray(data["exports"], dtype=np.float64)
    return pd.arrays.IntegerArray((x > 0).astype(np.int64), np.isnan(x))


@derived("export_intensity", needs=("exports", "turnover"), positive=("turnover",))
def export_intensity(data: Data) -> np.ndarray:
    """export_intensity = exports / turnover; missing where turnover <= 0."""
    return _ratio(data["exports"], data["turnover"])


@derived("log_exports", needs=("exports",))
def log_exports(data: Data) -> np.ndarray:
    """log_exports = ln(exports), missing where exports == 0 (the intensive margin: exporters only)."""
    return _log(data["exports"])


@derived("employment_growth", needs=("employment",), positive=("employment",))
def employment_growth(data: Data) -> np.ndarray:
    """employment_growth[i,t] = ln(employment[i,t]) - ln(employment[i,t-1]); missing at a firm's first year or after a gap.

    Rows must be sorted by (firm, year); the previous row counts only if it is the same firm
    and exactly the previous calendar year.
    """
    le = _log(data["employment"])
    firm = np.asarray(data["firm_code"])
    year = np.asarray(data["year"], dtype=np.int64)
    out = np.full(le.shape, np.nan)
    if le.size > 1:
        ok = (firm[1:] == firm[:-1]) & (year[1:] == year[:-1] + 1)
        out[1:] = np.where(ok, le[1:] - le[:-1], np.nan)
    return out


@derived("rd_intensity", needs=("rd", "turnover"), positive=("turnover",))
def rd_intensity(data: Data) -> np.ndarray:
    """rd_intensity = rd / turnover; missing where turnover <= 0."""
    return _ratio(data["rd"], data["turnover"])


@derived("wage_per_employee", needs=("wage_bill", "employment"), positive=("employment",))
def wage_per_employee(data: Data) -> np.ndarray:
    """wage_per_employee = wage_bill / employment (nominal, thousand euro per employee)."""
    return _ratio(data["wage_bill"], data["employment"])


@derived("log_employment", needs=("employment",), positive=("employment",))
def log_employment(data: Data) -> np.ndarray:
    """log_employment = ln(employment)."""
    return _log(data["employment"])


@derived("log_capital", needs=("capital",), positive=("capital",))
def log_capital(data: Data) -> np.ndarray:
    """log_capital = ln(capital) (nominal); missing where capital <= 0."""
    return _log(data["capital"])


@derived("log_intermediates", needs=("intermediates",), positive=("intermediates",))
def log_intermediates(data: Data) -> np.ndarray:
    """log_intermediates = ln(intermediates) (nominal); missing where intermediates <= 0."""
    return _log(data["intermediates"])


@derived("log_value_added", needs=("value_added",), positive=("value_added",), deflated=True)
def log_value_added(data: Data) -> np.ndarray:
    """log_value_added = ln(value_added / deflator[sector, year]) (real value added)."""
    return _log(real_value_added(data))


@derived("real_value_added", needs=("value_added",), deflated=True)
def real_value_added_outcome(data: Data) -> np.ndarray:
    """real_value_added = value_added / deflator[sector, year] (in levels: value_for_money's benefit)."""
    return real_value_added(data)


@derived("real_exports", needs=("exports",), deflated=True)
def real_exports(data: Data) -> np.ndarray:
    """real_exports = exports / deflator[sector, year] (the sector's value-added price index; in levels)."""
    return _ratio(data["exports"], data["deflator"])


@derived("patent_status", needs=("patents",))
def patent_status(data: Data) -> pd.arrays.IntegerArray:
    """patent_status = 1[patents > 0]: the extensive margin of patenting (0/1, nullable Int64;
    missing where patents is missing)."""
    x = np.asarray(data["patents"], dtype=np.float64)
    return pd.arrays.IntegerArray((x > 0).astype(np.int64), np.isnan(x))


def resolve(names: list[str]) -> list[str]:
    """``names`` plus their prerequisites, in registry order; unknown names raise KeyError
    listing them (the caller turns it into a ConfigError)."""
    unknown = [n for n in names if n not in REGISTRY]
    if unknown:
        raise KeyError(unknown)
    todo: set[str] = set()
    stack = list(names)
    while stack:
        n = stack.pop()
        if n not in todo:
            todo.add(n)
            stack.extend(REGISTRY[n].after)
    return [n for n in REGISTRY if n in todo]
