"""Join and leave years of a membership register given as years or as dates.

Registers arrive with whole years (``2015``), ISO dates (``2015-03-01``), German-style dates
(``01.03.2015``), Excel date cells or serial day numbers (``42064``), Stata ``%td`` dates
(days since 1 January 1960) or other spellings. :func:`years_from_cells` turns one column
into calendar years:

* a whole number between 1000 and 9999 is a year, as it is (the rule below does not apply:
  a year carries no month);
* a date gives its year, shifted by ``join_rule``: ``year_of_date`` (default) keeps the
  calendar year; ``{next_year_if_after_month: N}`` counts a date after month N from the next
  year (N = 6: a firm joining in July 2015 is first treated in 2016; N = 0: every join counts
  from the year after). Leave dates always give their calendar year (the last year with
  membership);
* ``date_format`` (``data.membership.date_format``): null = years, ISO ``yyyy-mm-dd`` (a time
  part after it is ignored), ``dd.mm.yyyy`` and the file's own date cells (Excel dates,
  Parquet dates/timestamps, Stata variables with a ``%td`` display format); ``iso`` or
  ``dmy`` accept only that spelling; ``excel`` reads numbers as Excel serial days (1900 date
  system, day 1 = 1900-01-01, Lotus leap-year bug included: origin 1899-12-30); ``stata``
  reads numbers as Stata ``%td`` days (under both, a whole number 1000..9999 is still a year:
  as a serial day it would be a date in 1902-1927 or 1962-1987); any other string is a ``strftime`` pattern
  (``%d/%m/%Y``, ``%m/%d/%Y`` …: slash dates are ambiguous, so they need one).

Nothing is guessed silently: a cell that is neither a number nor a date under these rules is
returned as bad (the caller reports it, exit 2), and so is a number that is not a plausible
calendar year (outside 1000..9999, e.g. ``-5`` or ``99999999999999999999999``), with a hint
when it looks like an Excel serial day.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

YEAR_MIN, YEAR_MAX = 1000, 9999
EXCEL_ORIGIN = np.datetime64("1899-12-30")
STATA_ORIGIN = np.datetime64("1960-01-01")
ISO_RE = r"^\d{4}-\d{1,2}-\d{1,2}([T ].*)?$"
DMY_RE = r"^\d{1,2}\.\d{1,2}\.\d{4}$"


@dataclass
class YearCells:
    """One column as years: ``years`` (NaN: missing or bad), ``bad`` (not a number or date),
    ``implausible`` (a number outside 1000..9999), ``n_dates`` cells read as dates."""

    years: np.ndarray
    bad: np.ndarray
    implausible: np.ndarray
    n_dates: int = 0
    kinds: dict[str, int] = field(default_factory=dict)


def join_shift(rule: Any) -> int | None:
    """``join_rule`` -> the month after which a join counts from the next year (None: never)."""
    if isinstance(rule, dict):
        return int(rule["next_year_if_after_month"])
    return None


def _from_dates(dt: pd.Series, after_month: int | None) -> np.ndarray:
    y = dt.dt.year.to_numpy(dtype=np.float64, na_value=np.nan)
    if after_month is not None:
        m = dt.dt.month.to_numpy(dtype=np.float64, na_value=np.nan)
        y = y + (m > after_month)
    return y


def years_from_cells(s: pd.Series, *, date_format: str | None = None, after_month: int | None = None,
                     stata_td: bool = False, number: Any = None) -> YearCells:
    """``s`` (any dtype: text, numbers, datetimes, Excel cells) -> :class:`YearCells`.

    ``after_month``: :func:`join_shift` of the join rule (None for leave dates);
    ``stata_td``: the column has a Stata ``%td`` display format (numbers are days);
    ``number``: ``f(text Series) -> (float64 values, bad mask or None)`` parsing numbers in
    text under the file's decimal/thousands/na options (default: plain numbers)."""
    n = len(s)
    years = np.full(n, np.nan)
    bad = np.zeros(n, bool)
    kinds: dict[str, int] = {}
    fmt = date_format
    num_as = "excel" if fmt == "excel" else "stata" if (fmt == "stata" or stata_td) else "year"

    def numbers(vals: np.ndarray, where: np.ndarray) -> None:
        if num_as == "year":
            years[where] = vals
            kinds["year"] = kinds.get("year", 0) + int(np.isfinite(vals).sum())
            return
        ok = np.isfinite(vals) & (np.abs(vals) < 1e7)
        if not stata_td:  # date_format excel/stata: a whole number 1000..9999 is still a year
            yr = np.isfinite(vals) & (vals >= YEAR_MIN) & (vals <= YEAR_MAX) & (np.floor(vals) == vals)
            if yr.any():
                idx = np.flatnonzero(where)
                years[idx[yr]] = vals[yr]
                kinds["year"] = kinds.get("year", 0) + int(yr.sum())
                w2 = np.zeros_like(where)
                w2[idx[~yr]] = True
                vals, where = vals[~yr], w2
                ok = ok[~yr]
        days = np.where(ok, np.floor(np.where(ok, vals, 0)), 0).astype("int64").astype("timedelta64[D]")
        origin = EXCEL_ORIGIN if num_as == "excel" else STATA_ORIGIN
        dt = pd.Series(np.where(ok, origin + days, np.datetime64("NaT")).astype("datetime64[ns]"))
        y = _from_dates(dt, after_month)
        y[~ok] = np.nan
        years[where] = y
        b = np.isfinite(vals) & ~ok
        bad[np.flatnonzero(where)[b]] = True
        kinds[num_as] = kinds.get(num_as, 0) + int(ok.sum())

    if pd.api.types.is_datetime64_any_dtype(s.dtype):
        years[:] = _from_dates(pd.Series(s.to_numpy()), after_month)
        kinds["date"] = int(np.isfinite(years).sum())
        return _finish(years, bad, kinds, num_as)
    if pd.api.types.is_bool_dtype(s.dtype):
        bad[:] = s.notna().to_numpy()
        return _finish(years, bad, kinds, num_as)
    if pd.api.types.is_numeric_dtype(s.dtype):
        numbers(s.to_numpy(dtype=np.float64, na_value=np.nan), np.ones(n, bool))
        return _finish(years, bad, kinds, num_as)
    obj = s.to_numpy(dtype=object)
    missing = pd.isna(s).to_numpy()
    is_dt = np.fromiter((hasattr(v, "year") and hasattr(v, "month") and not isinstance(v, str) for v in obj), bool, n)
    if is_dt.any():
        dt = pd.to_datetime(pd.Series(obj[is_dt]), errors="coerce")
        years[is_dt] = _from_dates(dt, after_month)
        kinds["date"] = int(is_dt.sum())
    is_num = np.fromiter((isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in obj), bool, n)
    is_num &= ~missing
    if is_num.any():
        numbers(obj[is_num].astype(np.float64), is_num)
    is_str = np.fromiter((isinstance(v, str) for v in obj), bool, n) & ~missing
    other = ~(is_dt | is_num | is_str | missing)
    bad |= other
    if is_str.any():
        txt = pd.Series(obj[is_str], dtype="str").str.strip()
        idx = np.flatnonzero(is_str)
        if fmt is not None and fmt not in ("iso", "dmy", "excel", "stata"):  # a strftime pattern: dates first
            dt = pd.to_datetime(txt, format=fmt, errors="coerce")
            y = _from_dates(dt, after_month)
            hit = np.isfinite(y)
            years[idx[hit]] = y[hit]
            kinds["date"] = int(hit.sum())
            txt, idx = txt[~hit], idx[~hit]
        vals, nbad = number(txt) if number is not None else _plain_numbers(txt)
        nbad = np.zeros(len(txt), bool) if nbad is None else nbad
        as_num = ~nbad & ~np.isnan(vals)
        if as_num.any():
            where = np.zeros(n, bool)
            where[idx[as_num]] = True
            numbers(vals[as_num], where)
        rest = nbad  # text that is not a number: a date?
        if rest.any():
            t = txt[rest]
            if fmt in (None, "iso", "dmy", "excel", "stata"):
                dt = pd.Series(pd.NaT, index=t.index, dtype="datetime64[ns]")
                if fmt in (None, "iso", "excel", "stata"):
                    iso = t.str.match(ISO_RE).fillna(False).to_numpy(bool)
                    if iso.any():
                        dt[iso] = pd.to_datetime(t[iso].str.slice(0, 10).str.replace(r"[T ].*$", "", regex=True),
                                                 format="%Y-%m-%d", errors="coerce")
                if fmt in (None, "dmy"):
                    dmy = t.str.match(DMY_RE).fillna(False).to_numpy(bool)
                    if dmy.any():
                        dt[dmy] = pd.to_datetime(t[dmy], format="%d.%m.%Y", errors="coerce")
            else:  # not a date under the pattern, not a number
                dt = pd.Series(pd.NaT, index=t.index, dtype="datetime64[ns]")
            y = _from_dates(dt, after_month)
            ok = np.isfinite(y)
            years[idx[rest][ok]] = y[ok]
            bad[idx[rest][~ok]] = True
            kinds["date"] = kinds.get("date", 0) + int(ok.sum())
    return _finish(years, bad, kinds, num_as)


def _plain_numbers(txt: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    vals = pd.to_numeric(txt, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    return vals, np.isnan(vals) & txt.notna().to_numpy()


def _finish(years: np.ndarray, bad: np.ndarray, kinds: dict[str, int], num_as: str) -> YearCells:
    with np.errstate(invalid="ignore"):
        implausible = np.isfinite(years) & ((years < YEAR_MIN) | (years > YEAR_MAX)) | np.isinf(years)
    years = years.copy()
    n_dates = sum(v for k, v in kinds.items() if k != "year")
    return YearCells(years=years, bad=bad, implausible=implausible, n_dates=n_dates, kinds=kinds)
