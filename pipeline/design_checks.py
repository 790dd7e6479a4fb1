"""Checks of the design before any estimator runs, so that a design that cannot be estimated
is refused with what is really wrong, not with whatever symptom the first estimator meets.

Without them, an outcome that is blank everywhere reached Callaway-Sant'Anna as "no
never-member firms" (every never-member row had been dropped for the missing outcome), a
one-year panel or a single cohort without never-members as "no treated cohort with a
pre-treatment period", and a constant outcome returned estimates of 0 with standard errors
of 1e-25 (rounding noise) and no word.

* :func:`panel_problem` — the panel as a whole: fewer than two years; no never-member firm
  and a single cohort (after its join year no firm is untreated: no comparison exists under
  either control group).
* :func:`outcome_problem` — one outcome: no non-missing value at all (naming the mapped
  input columns that are blank everywhere); no variation within any firm over time.

Choice for a constant outcome: refuse (exit 4, or listed under ``on_error: skip``), not warn.
The difference-in-differences and fixed-effects estimators compare changes within firms;
with no within-firm variation each returns exactly 0 and a standard error that is pure
floating-point noise, whose t-statistic and p-value mean nothing. A refusal naming the
outcome is the only answer that cannot be misread. An outcome that is constant within firms
but differs between them still has a meaningful level comparison, so the level-comparing
estimators (:data:`LEVEL_ESTIMATORS`) are refused only for an outcome that is one constant.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from models.errors import first_keys

# relative size of the within-firm range below which an outcome counts as constant: values
# that differ only by rounding of the same computation (1e-12 of their magnitude) are equal
CONSTANT_RTOL = 1e-12
# estimators that also compare levels between members and matched/weighted non-members
LEVEL_ESTIMATORS = frozenset({"matching", "weighting"})


def panel_problem(panel: pd.DataFrame, where: str) -> str | None:
    """What makes the whole design inestimable (``panel``: ``firm_id, year, first_treat``), or None."""
    years = sorted(pd.unique(panel["year"].dropna()).tolist())
    if len(years) < 2:
        shown = f"a single year ({int(years[0])})" if years else "no year at all"
        return (
            f"{where} has {shown}: difference-in-differences compares members' change over time with "
            "non-members' change, which needs at least two years (one before and one after joining). Fix: give "
            "data.firms a panel of several years per firm, and check ingest.years (rows outside it are excluded; "
            "see data/interim/ingest_flow.json)"
        )
    firms = panel.drop_duplicates("firm_id")
    first = firms["first_treat"].fillna(0)
    cohorts = sorted(pd.unique(first[first > 0]).tolist())
    n_never = int((first == 0).sum())
    if n_never == 0 and len(cohorts) == 1:
        g = int(cohorts[0])
        return (
            f"{where}: every one of the {len(firms)} firms is a member and all join in {g}, and there is no never-member "
            f"firm: from {g} on no firm is untreated, so no estimator has a comparison group for any year after "
            "joining (neither control_group nevertreated nor notyettreated can supply one). Fix: include the "
            "non-member firms of the population in data.firms (they are the controls), or members that join in "
            "other years"
        )
    return None


def outcome_problem(data: pd.DataFrame, outcome: str, where: str, blank_inputs: list[str] | None = None) -> tuple[str, bool] | None:
    """What makes ``outcome`` inestimable (``data``: ``firm_id`` and the outcome), or None:
    ``(message, levels_ok)``, ``levels_ok`` True when only the within-firm variation is zero
    (the :data:`LEVEL_ESTIMATORS` can still run). ``blank_inputs``: mapped input columns that
    are missing in every row (named in the message)."""
    y = pd.to_numeric(data[outcome], errors="coerce")
    ok = y.notna() & np.isfinite(y.astype("float64"))
    n = len(y)
    if not ok.any():
        because = ""
        if blank_inputs:
            because = f" (mapped input column(s) with no value in any row: {', '.join(blank_inputs)})"
        return (
            f"outcome {outcome!r} has no value in any of the {n} rows of {where}{because}. Fix: fill the column(s) "
            f"in data.firms (check the mapping under columns: in params.yaml), or remove {outcome!r} from "
            "estimate.outcomes"
        ), False
    d = pd.DataFrame({"firm_id": data["firm_id"].to_numpy(), "y": y.to_numpy(dtype="float64")})[ok.to_numpy()]
    g = d.groupby("firm_id", sort=False)["y"]
    size = g.size()
    multi = size.index[size >= 2]
    if not len(multi):
        return None  # no firm observed twice: the estimators say so themselves
    rng = (g.max() - g.min()).reindex(multi)
    scale = float(np.nanmax(np.abs(d["y"].to_numpy()))) or 1.0
    if bool((rng <= CONSTANT_RTOL * scale).all()):
        values = pd.unique(d["y"])
        what = (
            f"is the constant {values[0]:g} in all {len(d)} rows with a value"
            if len(values) == 1
            else f"does not change over time within any of the {len(multi)} firms observed in two or more years "
            f"(first firms: {first_keys(sorted(map(str, multi)))})"
        )
        return (
            f"outcome {outcome!r} {what} in {where}: difference-in-differences compares changes within firms, so "
            "every estimate would be exactly 0 with a standard error that is rounding noise (about 1e-25), and its "
            "t-statistic and p-value would mean nothing. Fix: check the column mapping under columns: and the input "
            f"file (is it the right column?), or remove {outcome!r} from estimate.outcomes"
        ), len(values) > 1
    return None


def blank_columns(panel_path: Path, candidates: list[str]) -> list[str]:
    """The ``candidates`` columns of the Parquet file that are missing in every row."""
    import pyarrow.parquet as pq

    pf = pq.ParquetFile(panel_path)
    names = set(pf.schema_arrow.names)
    cols = [c for c in candidates if c in names]
    if not cols:
        return []
    t = pq.read_table(panel_path, columns=cols)
    return [c for c in cols if t.column(c).null_count == t.num_rows or _all_nan(t.column(c))]


def _all_nan(col) -> bool:
    try:
        a = col.to_numpy()
    except Exception:
        return False
    return a.dtype.kind == "f" and bool(np.isnan(a).all())
