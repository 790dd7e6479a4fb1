"""Cohort-by-cohort cross-sections for matching/weighting on a staggered-adoption panel.

For every cohort ``g`` (firms with ``first_treat == g``):

* base year ``b = g - 1`` (the last pre-membership year); post years ``g + e`` for
  ``e = 0 .. H_g`` with ``H_g = min(horizon, last panel year - g)``; leads ``g + e`` for
  ``e = -2 .. -(1 + leads)`` (placebo changes relative to ``b``);
* treated: cohort-``g`` firms observed at ``b``;
* controls: firms observed at ``b`` that are members in none of the years compared, i.e.
  ``first_treat == 0`` (never members) and, with ``control_group = "notyettreated"``, also
  ``first_treat > g + H_g`` (join after the last post year used for this cohort, so they are
  untreated in every year they serve as controls; Cengiz et al. 2019's "clean controls");
* matching covariates are measured at ``b`` only (never after joining); a "trend" of ``x`` is
  ``x_b - x_{b - L}`` (``L = trend_lags``), a pre-treatment growth;
* ``control_pool`` narrows the controls with build_groups' base-year flags: ``eligible``
  (non-members in a sector or region that has members) or ``not_colocated`` (non-members not
  sharing a region x sector cell with a member: the spillover-free pool);
* firms lacking a base-year row, a covariate at ``b``, or a trend year are dropped from that
  cohort's cross-section, counted by reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

CONTROL_POOLS = {"all": None, "eligible": ("eligible", True), "not_colocated": ("colocated", False)}


@dataclass
class CohortFrame:
    cohort: int
    base: int
    horizon: int
    frame: pd.DataFrame           # one row per firm: id, treat, covariates at b, trends, y_<year> columns
    covariates: list[str]         # matching covariate columns in ``frame``
    exact: list[str]
    years: dict[int, int]         # event time e -> calendar year
    dropped: dict[str, int] = field(default_factory=dict)


class _Dense:
    """The panel as dense (firm x year) arrays: one scatter per column, then every cohort's
    base-year / lag / outcome-year lookups are plain array indexing (no MultiIndex reindex)."""

    def __init__(self, d: pd.DataFrame, idname: str, tname: str, gname: str, cols: list[str]):
        self.fcode, self.ids = pd.factorize(d[idname])
        yrs = d[tname].to_numpy(dtype=np.int64)
        self.y0, y1 = int(yrs.min()), int(yrs.max())
        self.ny = y1 - self.y0 + 1
        n = len(self.ids)
        yc = yrs - self.y0
        self.present = np.zeros((n, self.ny), dtype=bool)
        self.present[self.fcode, yc] = True
        if int(self.present.sum()) != len(d):
            raise ValueError(f"panel has duplicate ({idname}, {tname}) rows")
        self.g = np.zeros(n, dtype=np.int64)
        self.g[self.fcode] = d[gname].to_numpy(dtype=np.int64)
        self.cols: dict[str, tuple[np.ndarray, object]] = {}
        for c in cols:
            col = d[c]
            if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
                M = np.full((n, self.ny), np.nan)
                M[self.fcode, yc] = col.to_numpy(dtype=float, na_value=np.nan)
                self.cols[c] = (M, None)
            else:
                codes, uniq = pd.factorize(col)
                M = np.full((n, self.ny), -1, dtype=np.int64)
                M[self.fcode, yc] = codes
                self.cols[c] = (M, uniq)

    def at(self, rows: np.ndarray, year: int, c: str) -> pd.Series:
        M, uniq = self.cols[c]
        j = year - self.y0
        if uniq is None:
            if 0 <= j < self.ny:
                return pd.Series(M[rows, j])
            return pd.Series(np.full(len(rows), np.nan))
        codes = M[rows, j] if 0 <= j < self.ny else np.full(len(rows), -1)
        return pd.Series(pd.Categorical.from_codes(codes, categories=pd.Index(uniq))).astype(object).where(codes >= 0, None)

    def observed(self, rows: np.ndarray, year: int) -> np.ndarray:
        j = year - self.y0
        return self.present[rows, j] if 0 <= j < self.ny else np.zeros(len(rows), dtype=bool)


def cohort_frames(data: pd.DataFrame, *, yname: str, tname: str, idname: str, gname: str, covariates: list[str],
                  trends: list[str], trend_lags: int, exact: list[str], horizon: int, leads: int,
                  control_group: str, control_pool: str = "all") -> tuple[list[CohortFrame], dict[str, int]]:
    """Build the per-cohort cross-sections. Returns ``(frames, skipped_cohorts)`` where
    ``skipped_cohorts`` maps a cohort to why it was left out."""
    pool = CONTROL_POOLS[control_pool]
    cols = sorted(set([yname, *covariates, *trends, *exact, *([pool[0]] if pool else [])]))
    D = _Dense(data, idname, tname, gname, cols)
    first_year, last_year = D.y0, D.y0 + D.ny - 1
    cohorts = sorted(int(g) for g in np.unique(D.g) if g > 0)
    frames, skipped = [], {}
    for g in cohorts:
        b = g - 1
        H = min(int(horizon), last_year - g)
        if b - max(trend_lags if trends else 0, 0) < first_year or H < 0:
            skipped[str(g)] = "base year or trend years before the first panel year"
            continue
        ctrl = D.g == 0
        if control_group == "notyettreated":
            ctrl |= D.g > g + H
        treated = D.g == g
        rows = np.flatnonzero(ctrl | treated)
        tr = treated[rows]
        dropped = {}
        present = D.observed(rows, b)
        dropped["no_base_year_row"] = int((~present).sum())
        if pool:
            flag = D.at(rows, b, pool[0]).astype("boolean").fillna(not pool[1]).to_numpy(dtype=bool)
            out_of_pool = present & ~tr & (flag != pool[1])
            dropped[f"control_not_{control_pool}"] = int(out_of_pool.sum())
            present = present & ~out_of_pool
        frame = pd.DataFrame({idname: D.ids[rows], "treat": tr})
        ok = present.copy()
        for c in [*covariates, *exact, yname]:
            v = D.at(rows, b, c)
            ok &= v.notna().to_numpy()
            if c != yname:
                frame[c] = v.to_numpy()
        dropped["missing_covariate_or_outcome_at_base_year"] = int((present & ~ok).sum())
        tcols = []
        if trends:
            for c in trends:
                name = f"trend_{c}"
                frame[name] = D.at(rows, b, c).to_numpy(dtype=float) - D.at(rows, b - trend_lags, c).to_numpy(dtype=float)
                tcols.append(name)
            okt = frame[tcols].notna().all(axis=1).to_numpy()
            dropped["missing_pre_trend"] = int((ok & ~okt).sum())
            ok &= okt
        ev = {}
        for e in [*range(-(1 + leads), -1), *range(0, H + 1)]:
            yr = g + e
            if first_year <= yr <= last_year:
                ev[e] = yr
        ev[-1] = b
        ys = pd.DataFrame({f"y_{yr}": D.at(rows, yr, yname).to_numpy(dtype=float) for yr in sorted(set(ev.values()))})
        frame = pd.concat([frame, ys], axis=1)
        frame = frame.loc[ok].reset_index(drop=True)
        if frame["treat"].sum() == 0 or (~frame["treat"]).sum() == 0:
            skipped[str(g)] = (f"no {'treated' if frame['treat'].sum() == 0 else 'control'} firms with base-year data "
                               f"(control_group={control_group}, horizon {H})")
            continue
        frames.append(CohortFrame(g, b, H, frame, [*covariates, *tcols], list(exact), dict(sorted(ev.items())), dropped))
    return frames, skipped
