"""Stage 1 library: raw firm panel + membership register (+ deflators) -> interim panel.

``ingest(params)`` reads the files named in ``params.yaml`` (``data.firms``,
``data.membership``, ``data.deflators``), maps the file's column names to pipeline names
(``columns``, ``membership_columns``), validates everything at the boundary, deflates,
derives the outcomes listed in ``ingest.derive`` (see :mod:`pipeline.outcomes`) and returns
the interim panel, the harmonised register and a JSON-serialisable sample-flow record.

Validation collects *all* problems of all files and raises one
:class:`~models.errors.BadInputError` (exit 2); each problem names the file, the column,
the count, the first five offending keys ``(firm_id, year)`` and the fix:

- mapped columns missing from the file; non-numeric text in numeric columns (see
  :mod:`pipeline.readers` for ``decimal``/``thousands``/``na_values``);
- missing firm id or year, non-integer years (also ``founding_year``);
- infinite values; negative values in employment, turnover, value_added, wage_bill,
  capital, intermediates, exports, patents, rd;
- conflicting duplicates (same firm-year, different values). Exact duplicates (identical
  rows) are dropped and counted as ``exact_duplicate``;
- value added or employment <= 0 where a requested outcome needs them positive (logs,
  per-employee ratios) when ``ingest.log_nonpositive: fail``; under ``drop`` those rows are
  excluded and counted as ``nonpositive_for_log:<col>``;
- register: missing firm id / cluster id / join year, non-integer join or leave years,
  leave_year < join_year, conflicting duplicate spells; firm ids that match the panel only
  after removing leading zeros (one file stored ids as numbers);
- deflators: missing or non-positive values, conflicting duplicates, sector-years of the
  panel that the file lacks.

The value checks (text in numeric columns, missing keys, non-integer years, infinite and
negative values) run on all rows of the file; rows outside ``ingest.years`` are then
excluded (``outside_window``); duplicates and the log policy apply to the remaining rows;
register spells of firms absent from the kept panel are excluded (``not_in_panel``). A file
that cannot be read at all (missing mapped columns, broken file) stops at once. For every file the flow records ``rows_in == rows_kept +
sum(excluded.values())`` (asserted).

The deflators file has the columns ``<columns.sector> | sector``, ``<columns.year> | year``
and ``deflator`` (e.g. ``nace2, year, deflator``), one row per sector-year, 2015 = 1.0.
Without it the value-added outcomes are nominal, which the flow notes say.

Output: rows sorted by (firm_id, year); ``firm_id`` text, ``year`` int64,
``founding_year`` Int64, sector/region/group_id text, every other mapped column float64, then
the derived outcomes in registry order (``export_status`` and ``patent_status`` Int64, the rest float64).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.errors import BadInputError, ConfigError, first_keys

from . import outcomes
from .config import MEMBERSHIP_FIELDS, PANEL_FIELDS, Params
from .readers import Table, clean_text, describe_issue, format_key, load_table, to_numeric

TEXT_FIELDS = ("firm_id", "sector", "region", "group_id")
INTEGER_FIELDS = ("year", "founding_year")
NONNEGATIVE = ("employment", "turnover", "value_added", "wage_bill", "capital", "intermediates", "exports", "patents", "rd")


@dataclass
class IngestOutput:
    panel: pd.DataFrame
    membership: pd.DataFrame
    flow: dict[str, Any]
    other_programme: pd.DataFrame | None = None  # firm_id, start_year, end_year (empty without the file)


def ingest(params: Params) -> IngestOutput:
    """Read, validate, deflate and derive; see the module docstring."""
    cols: dict[str, str] = dict(params["columns"])
    mcols: dict[str, str] = dict(params["membership_columns"])
    ing = params["ingest"]
    derive = _check_config(cols, mcols, ing, params["data"].get("deflators") is not None)
    problems: list[str] = []
    notes: list[str] = []

    firms = _read_firms(params, cols, problems)
    panel, firms_flow, codes, firm_ids = _validate_firms(firms, cols, ing, derive, problems)
    defl, defl_flow = _deflators(params, cols, panel, derive, problems, notes)
    membership, mem_flow = _membership(params, mcols, firm_ids, firms.label, problems)
    other, other_flow = _other_programme(params, firm_ids, firms.label, problems)

    if problems:
        raise BadInputError(
            f"{len(problems)} problem(s) in the input data; nothing was written. Fix them and run again:", problems=problems
        )

    panel, derived_flow = _derive(panel, codes, defl, derive, cols, notes)
    if "log_tfp" in (ing.get("derive") or []):
        panel, derived_flow["log_tfp"] = _derive_tfp(panel, defl, ing.get("tfp") or {}, params.seed)
    if ing.get("drop_missing_outcomes"):
        panel = _drop_missing(panel, [d for d in ing["derive"] or []], firms_flow)
    firms_flow["rows_kept"] = len(panel)
    mem_flow["rows_kept"] = len(membership)
    for f in (firms_flow, mem_flow, defl_flow, other_flow):
        if f is not None:
            assert f["rows_in"] == f["rows_kept"] + sum(f["excluded"].values()), f
    flow = {
        "firms": firms_flow,
        "membership": mem_flow,
        "deflators": defl_flow,
        "other_programme": other_flow,
        "years": list(ing["years"]) if ing["years"] else [int(panel["year"].min()), int(panel["year"].max())] if len(panel) else None,
        "columns": cols,
        "membership_columns": mcols,
        "derived": derived_flow,
        "deflated": defl is not None,
        "log_nonpositive": ing["log_nonpositive"],
        "n_firms": int(panel["firm_id"].nunique()),
        "notes": notes,
    }
    return IngestOutput(panel=panel, membership=membership, flow=flow, other_programme=other)


# ------------------------------------------------------------------------------------------
# configuration
# ------------------------------------------------------------------------------------------
def _check_config(cols: dict[str, str], mcols: dict[str, str], ing: dict[str, Any], have_deflators: bool) -> list[str]:
    problems = []
    for req in ("firm_id", "year"):
        if req not in cols:
            problems.append(f"columns.{req}: required")
    for req in MEMBERSHIP_FIELDS:
        if req not in mcols:
            problems.append(f"membership_columns.{req}: required")
    by_file: dict[str, list[str]] = {}
    for p, f in cols.items():
        by_file.setdefault(f, []).append(p)
    for f, ps in by_file.items():
        kinds = {"text" if p in TEXT_FIELDS else "number" for p in ps}
        if len(kinds) > 1:
            problems.append(f"columns: file column {f!r} is mapped to {', '.join(ps)}, which need text and numbers")
    names = [n for n in (ing.get("derive") or []) if n != "log_tfp"]
    if len(names) < len(ing.get("derive") or []):  # log_tfp: a production function, estimated after the others
        missing = [c for c in ("value_added", "employment", "capital", "intermediates") if c not in cols]
        if missing:
            problems.append(f"ingest.derive: log_tfp needs the column(s) {', '.join(missing)}, which are not mapped under columns:")
    try:
        todo = outcomes.resolve(names)
    except KeyError as exc:
        problems.append(
            f"ingest.derive: unknown derived outcome(s) {', '.join(map(repr, exc.args[0]))}; known: {', '.join(outcomes.REGISTRY)}"
        )
        todo = []
    for name in todo:
        fn = outcomes.REGISTRY[name]
        missing = [c for c in fn.needs if c not in cols]
        if missing:
            problems.append(
                f"ingest.derive: {name} needs the column(s) {', '.join(missing)}, which are not mapped; map them under "
                f"columns: in params.yaml (e.g. {missing[0]}: <column in your file>) or remove {name} from ingest.derive"
            )
        if fn.deflated and have_deflators and "sector" not in cols:
            problems.append(f"ingest.derive: {name} is deflated by sector, but columns.sector is not mapped")
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in params.yaml for the ingest stage:", problems=problems)
    return todo


# ------------------------------------------------------------------------------------------
# firms
# ------------------------------------------------------------------------------------------
_fmt = format_key


def keys_text(frame: pd.DataFrame, mask: np.ndarray, keys: tuple[str, ...] = ("firm_id", "year"), n: int = 5) -> str:
    """'(F001, 2010), (F002, 2011) (+3 more)' for the rows where ``mask`` is true."""
    pos = np.flatnonzero(mask)
    sub = frame.iloc[pos[:n]]
    shown = ["(" + ", ".join(_fmt(v) for v in row) + ")" for row in sub[list(keys)].itertuples(index=False)]
    return first_keys(shown + [""] * (len(pos) - len(shown)), n) if len(pos) > n else ", ".join(shown)


def _read_firms(params: Params, cols: dict[str, str], problems: list[str]) -> Table:
    spec = params["data"]["firms"]
    file_cols = list(dict.fromkeys(cols.values()))
    numeric = [f for p, f in cols.items() if p not in TEXT_FIELDS]
    text = [f for p, f in cols.items() if p in TEXT_FIELDS]
    return load_table(params.resolve(spec["path"]), spec, role="firms", columns=file_cols, numeric=numeric, text=text, label=spec["path"])


def _validate_firms(table: Table, cols: dict[str, str], ing: dict[str, Any], derive: list[str], problems: list[str]):
    label = table.label
    raw = table.frame
    order = [p for p in PANEL_FIELDS if p in cols]
    df = pd.DataFrame({p: raw[cols[p]].array for p in order}, copy=False)
    n_in = len(df)
    flow: dict[str, Any] = {"file": label, "format": table.format, "rows_in": n_in, "rows_kept": 0, "excluded": {}}
    if n_in == 0:
        problems.append(f"{label}: no data rows (only a header); nothing to analyse")

    def where(p: str) -> str:
        return f"{label}, column '{cols[p]}'" + (f" ({p})" if cols[p] != p else "")

    # non-numeric text (all rows)
    for issue in table.issues.values():
        problems.append(describe_issue(table, issue, keys=[cols["firm_id"], cols["year"]]))
    parse_bad = {c: np.zeros(n_in, bool) for c in table.issues}
    for c, issue in table.issues.items():
        parse_bad[c][issue.positions] = True

    fid_missing = df["firm_id"].isna().to_numpy()
    if fid_missing.any():
        rows = np.flatnonzero(fid_missing)
        problems.append(
            f"{where('firm_id')}: {fid_missing.sum()} row(s) without a firm id; first data rows (year): "
            + ", ".join(f"{r + 1} ({_fmt(df['year'].iat[r])})" for r in rows[:5])
            + ". Fix: fill in the firm id or delete these rows"
        )
    year = df["year"].to_numpy(dtype=np.float64)
    year_missing = np.isnan(year) & ~parse_bad.get(cols["year"], np.zeros(n_in, bool))
    if year_missing.any():
        problems.append(
            f"{where('year')}: {year_missing.sum()} row(s) without a year; first keys (firm_id, year): "
            f"{keys_text(df, year_missing)}. Fix: fill in the year or delete these rows"
        )
    for p in INTEGER_FIELDS:
        if p not in df:
            continue
        v = df[p].to_numpy(dtype=np.float64)
        with np.errstate(invalid="ignore"):
            frac = np.isfinite(v) & (np.floor(v) != v)
        if frac.any():
            problems.append(
                f"{where(p)}: {frac.sum()} non-integer value(s) (e.g. {', '.join(_fmt(x) for x in v[frac][:3])}); first keys "
                f"(firm_id, year): {keys_text(df, frac)}. Fix: {p} must be a whole calendar year"
            )
    floats = [p for p in order if p not in TEXT_FIELDS]
    for p in floats:
        v = df[p].to_numpy(dtype=np.float64)
        inf = np.isinf(v)
        if inf.any():
            problems.append(
                f"{where(p)}: {inf.sum()} infinite value(s); first keys (firm_id, year): {keys_text(df, inf)}. "
                "Fix: replace them by the true value or leave the cell empty (missing)"
            )
        if p in NONNEGATIVE:
            neg = v < 0
            if neg.any():
                problems.append(
                    f"{where(p)}: {neg.sum()} negative value(s) (e.g. {', '.join(_fmt(x) for x in v[neg][:3])}), impossible for "
                    f"{p}; first keys (firm_id, year): {keys_text(df, neg)}. Fix: correct them or leave the cells empty (missing)"
                )

    valid = ~fid_missing & np.isfinite(year)
    excluded: dict[str, int] = {}
    keep = np.ones(n_in, bool)
    # rows outside the study window
    yrs = ing.get("years")
    if yrs:
        outside = valid & ((year < yrs[0]) | (year > yrs[1]))
        excluded["outside_window"] = int(outside.sum())
        keep &= ~outside

    # duplicate firm-years among the kept rows
    excluded["exact_duplicate"] = 0
    cand = keep & valid
    if cand.any():
        ymin = np.nanmin(year[cand])
        codes = pd.factorize(df["firm_id"])[0].astype(np.int64)
        span = int(np.nanmax(year[cand]) - ymin) + 1
        key = np.where(cand, codes * span + np.where(cand, year - ymin, 0).astype(np.int64), -1 - np.arange(n_in))
        dup = pd.Series(key).duplicated(keep=False).to_numpy() & cand
        if dup.any():
            sub = df.loc[dup].assign(_key=key[dup])
            exact = sub.duplicated(keep="first").to_numpy()
            exact_pos = np.flatnonzero(dup)[exact]
            excluded["exact_duplicate"] = int(len(exact_pos))
            keep[exact_pos] = False
            rest = sub.loc[~exact]
            conflict = rest["_key"].duplicated(keep=False).to_numpy()
            if conflict.any():
                conf = rest.loc[conflict]
                differ = [p for p in order if p not in ("firm_id", "year") and conf.groupby("_key")[p].nunique(dropna=False).gt(1).any()]
                first = conf.drop_duplicates("_key")
                n_keys = len(first)
                problems.append(
                    f"{label}: {n_keys} firm-year(s) appear more than once with different values (conflicting duplicates, "
                    f"{len(conf)} rows; differing column(s): {', '.join(cols[p] for p in differ)}); first keys (firm_id, year): "
                    f"{keys_text(first, np.ones(n_keys, bool))}. Fix: keep one row per firm and year (exact copies are "
                    "dropped automatically)"
                )

    # logs / ratios of non-positive value added or employment
    policy_cols = [c for c in outcomes.POLICY_COLUMNS if any(c in outcomes.REGISTRY[d].positive for d in derive)]
    for c in policy_cols:
        v = df[c].to_numpy(dtype=np.float64)
        users = [d for d in derive if c in outcomes.REGISTRY[d].positive]
        nonpos = keep & valid & (v <= 0)
        if ing["log_nonpositive"] == "drop":
            excluded[f"nonpositive_for_log:{c}"] = int(nonpos.sum())
            keep &= ~nonpos
        elif nonpos.any():
            problems.append(
                f"{where(c)}: {nonpos.sum()} row(s) with {c} <= 0, which {', '.join(users)} cannot use (log or per-employee "
                f"ratio); first keys (firm_id, year): {keys_text(df, nonpos)}. Fix: set ingest.log_nonpositive: drop (the "
                "rows are excluded and counted), correct the values, or remove those outcomes from ingest.derive"
            )

    flow["excluded"] = excluded
    if n_in and not (keep & valid).any() and not problems:
        span = f"{int(np.nanmin(year))}-{int(np.nanmax(year))}" if np.isfinite(year).any() else "none"
        problems.append(
            f"{label}: no rows left after the exclusions ({', '.join(f'{k}: {v}' for k, v in excluded.items() if v)}); the file's "
            f"years are {span}, ingest.years is {yrs}. Fix: set ingest.years to the years of your panel (or null for all)"
        )
    # with problems the panel (valid rows only) still serves the register and deflator checks
    panel = df.loc[keep & valid] if not (keep & valid).all() else df
    # sort by (firm_id, year); firm codes sorted lexicographically
    fcodes, firm_ids = pd.factorize(panel["firm_id"], sort=True)
    yr = panel["year"].to_numpy(dtype=np.float64).astype(np.int64)
    if len(panel):
        key = fcodes.astype(np.int64) * (int(yr.max() - yr.min()) + 1) + (yr - yr.min())
        if not (np.diff(key) > 0).all():
            order = np.argsort(key, kind="stable")
            panel = panel.iloc[order]
            fcodes = fcodes[order]
            yr = yr[order]
    panel = panel.reset_index(drop=True)
    panel["year"] = yr
    if "founding_year" in panel:
        fy = panel["founding_year"].to_numpy(dtype=np.float64)
        panel["founding_year"] = pd.arrays.IntegerArray(np.nan_to_num(fy).astype(np.int64), np.isnan(fy))
    flow["rows_kept"] = len(panel)
    return panel, flow, fcodes, pd.Index(firm_ids)


# ------------------------------------------------------------------------------------------
# deflators
# ------------------------------------------------------------------------------------------
def _deflators(params: Params, cols, panel: pd.DataFrame, derive: list[str], problems: list[str], notes: list[str]):
    deflated = [d for d in derive if outcomes.REGISTRY[d].deflated]
    n_problems = len(problems)
    spec = params["data"].get("deflators")
    if spec is None:
        if deflated:
            notes.append(
                f"no deflator file (data.deflators: null): {', '.join(deflated)} use NOMINAL value added; give sector "
                "price indices to make them real"
            )
        return None, None
    label = spec["path"]
    table = load_table(params.resolve(spec["path"]), spec, role="deflators", label=label)
    raw = table.frame
    sec_col = next((c for c in (cols.get("sector"), "sector") if c and c in raw.columns), None)
    yr_col = next((c for c in (cols["year"], "year") if c in raw.columns), None)
    missing = [n for n, c in (("sector", sec_col), ("year", yr_col), ("deflator", "deflator" if "deflator" in raw.columns else None)) if c is None]
    flow = {"file": label, "format": table.format, "rows_in": len(raw), "rows_kept": len(raw), "excluded": {"exact_duplicate": 0}}
    if missing:
        problems.append(
            f"{label}: column(s) {', '.join(missing)} not found (the file has: {', '.join(map(str, raw.columns))}); the "
            f"deflators file needs {cols.get('sector', 'sector')!r} (or 'sector'), {cols['year']!r} (or 'year') and 'deflator'"
        )
        return None, flow
    d = pd.DataFrame({"sector": clean_text(raw[sec_col]).array})
    opts = {k: spec.get(k) for k in ("decimal", "thousands", "na_values")}
    for name, c in (("year", yr_col), ("deflator", "deflator")):
        vals, issue = to_numeric(raw[c], opts, c)
        d[name] = vals
        if issue is not None:
            problems.append(
                f"{label}, column '{c}': {issue.count} value(s) are not numbers (e.g. {', '.join(map(repr, issue.examples))}); "
                f"first data rows: {', '.join(str(r + 1) for r in issue.rows)}. Fix: declare decimal/thousands/na_values "
                "under data.deflators or clean the column"
            )
    bad = d["sector"].isna().to_numpy() | ~np.isfinite(d["year"].to_numpy()) | ~(d["deflator"].to_numpy() > 0) | ~np.isfinite(d["deflator"].to_numpy())
    if bad.any():
        problems.append(
            f"{label}: {bad.sum()} row(s) with a missing sector or year or a missing, non-positive or infinite deflator; first "
            f"keys (sector, year): {keys_text(d, bad, ('sector', 'year'))}. Fix: a price index is a positive number (2015 = 1.0)"
        )
    d = d.loc[~bad]
    exact = d.duplicated().to_numpy()
    flow["excluded"]["exact_duplicate"] = int(exact.sum())
    d = d.loc[~exact]
    conf = d.duplicated(["sector", "year"], keep=False).to_numpy()
    if conf.any():
        cells = d.loc[conf].drop_duplicates(["sector", "year"])
        problems.append(
            f"{label}: {len(cells)} sector-year(s) with different deflators; first keys (sector, year): "
            f"{keys_text(cells, np.ones(len(cells), bool), ('sector', 'year'))}. Fix: one deflator per sector and year"
        )
    flow["rows_kept"] = len(raw) - flow["excluded"]["exact_duplicate"]
    flow["rows_kept"] -= int(bad.sum())
    flow["excluded"]["invalid"] = int(bad.sum())
    if not deflated or not len(panel) or len(problems) > n_problems:
        return None, flow
    # the panel's sector-years must all be in the file
    sec_codes, sectors = pd.factorize(panel["sector"])
    clash = id_format_clash(pd.Index(sectors), pd.Index(d["sector"].unique()))
    if clash:
        n, ex = clash
        problems.append(
            f"{label} vs {params['data']['firms']['path']}: {n} sector code(s) match only after removing leading zeros "
            f"(e.g. {ex}); one file stored the codes as numbers. Fix: write sector codes as text with the same padding in both files"
        )
        return None, flow
    yr = panel["year"].to_numpy()
    y0, span = int(yr.min()), int(yr.max() - yr.min()) + 1
    grid = np.full((len(sectors), span), np.nan)
    dsec = pd.Index(sectors).get_indexer(d["sector"])
    dyr = d["year"].to_numpy().astype(np.int64) - y0
    ok = (dsec >= 0) & (dyr >= 0) & (dyr < span)
    grid[dsec[ok], dyr[ok]] = d["deflator"].to_numpy()[ok]
    has_sec = sec_codes >= 0
    row = np.full(len(panel), np.nan)
    row[has_sec] = grid[sec_codes[has_sec], yr[has_sec] - y0]
    gap = has_sec & np.isnan(row)
    if gap.any():
        cells = pd.DataFrame({"sector": panel["sector"].to_numpy()[gap], "year": yr[gap]}).drop_duplicates().sort_values(["sector", "year"])
        problems.append(
            f"{label}: {len(cells)} sector-year(s) of the firm panel have no deflator ({gap.sum()} firm-years); first "
            f"(sector, year): {keys_text(cells, np.ones(len(cells), bool), ('sector', 'year'))}. Fix: add these rows to the "
            "deflators file (or set data.deflators: null for nominal values)"
        )
    if (~has_sec).any():
        notes.append(f"{(~has_sec).sum()} firm-year(s) without a sector: their real value-added outcomes are missing")
    return row, flow


# ------------------------------------------------------------------------------------------
# membership register
# ------------------------------------------------------------------------------------------
def isin_text(values, universe) -> np.ndarray:
    """Vectorised membership test for text (pandas' Arrow-string ``isin`` loops in Python)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    v = pa.array(pd.Series(values, dtype="str"), type=pa.string(), from_pandas=True)
    u = pa.array(pd.Series(universe, dtype="str").dropna(), type=pa.string(), from_pandas=True)
    return pc.fill_null(pc.is_in(v, value_set=u), False).to_numpy(zero_copy_only=False)


def id_format_clash(a: pd.Index, b: pd.Index) -> tuple[int, str] | None:
    """Ids of ``b`` absent from ``a`` that match an id of ``a`` once leading zeros are removed
    from both ('123' vs '00123'): ``(count, 'b-id vs a-id, ...')`` or None."""
    a = pd.Index(a.dropna().astype("str")).unique()
    b = pd.Index(b.dropna().astype("str")).unique()
    only_b = b[~isin_text(b, a)]
    if not len(only_b):
        return None
    a_digits = a[a.str.fullmatch(r"\d+")]
    b_digits = only_b[only_b.str.fullmatch(r"\d+")]
    if not len(a_digits) or not len(b_digits):
        return None
    a_norm = pd.Series(a_digits, index=a_digits.str.lstrip("0").str.pad(1, fillchar="0"))
    a_norm = a_norm[~a_norm.index.duplicated()]
    b_norm = b_digits.str.lstrip("0").str.pad(1, fillchar="0")
    hit = isin_text(b_norm, a_norm.index)
    if not hit.any():
        return None
    pairs = [f"'{bi}' vs '{a_norm[bn]}'" for bi, bn in zip(b_digits[hit][:3], b_norm[hit][:3])]
    return int(hit.sum()), ", ".join(pairs)


def _membership(params: Params, mcols: dict[str, str], firm_ids: pd.Index, firms_label: str, problems: list[str]):
    spec = params["data"]["membership"]
    label = spec["path"]
    fcols = [mcols[f] for f in MEMBERSHIP_FIELDS]
    table = load_table(
        params.resolve(spec["path"]),
        spec,
        role="membership",
        columns=list(dict.fromkeys(fcols)),
        numeric=[mcols["join_year"], mcols["leave_year"]],
        text=[mcols["firm_id"], mcols["cluster_id"]],
        label=label,
    )
    m = pd.DataFrame({f: table.frame[mcols[f]] for f in MEMBERSHIP_FIELDS})
    n_in = len(m)
    flow: dict[str, Any] = {"file": label, "format": table.format, "rows_in": n_in, "rows_kept": 0, "excluded": {}}
    keys = ("firm_id", "cluster_id", "join_year")
    kt = "first keys (firm_id, cluster_id, join_year)"

    def where(f: str) -> str:
        return f"{label}, column '{mcols[f]}'"

    for issue in table.issues.values():
        problems.append(describe_issue(table, issue, keys=[mcols[k] for k in keys]))
    for f in ("firm_id", "cluster_id"):
        miss = m[f].isna().to_numpy()
        if miss.any():
            problems.append(f"{where(f)}: {miss.sum()} spell(s) without {f}; {kt}: {keys_text(m, miss, keys)}. Fix: fill it in or delete the rows")
    j = m["join_year"].to_numpy(dtype=np.float64)
    lv = m["leave_year"].to_numpy(dtype=np.float64)
    jbad = np.isnan(j)
    issue = table.issues.get(mcols["join_year"])
    if issue is not None:
        jbad[issue.positions] = False  # already reported as text
    if jbad.any():
        problems.append(f"{where('join_year')}: {jbad.sum()} spell(s) without a join year; {kt}: {keys_text(m, jbad, keys)}. Fix: fill in the year the firm joined")
    for f, v in (("join_year", j), ("leave_year", lv)):
        with np.errstate(invalid="ignore"):
            frac = np.isfinite(v) & (np.floor(v) != v) | np.isinf(v)
        if frac.any():
            problems.append(f"{where(f)}: {frac.sum()} non-integer year(s); {kt}: {keys_text(m, frac, keys)}. Fix: give whole calendar years")
    with np.errstate(invalid="ignore"):
        order_bad = lv < j
    if order_bad.any():
        problems.append(
            f"{where('leave_year')}: {order_bad.sum()} spell(s) with leave_year < join_year; {kt}: {keys_text(m, order_bad, keys)}. "
            "Fix: correct the years (leave_year is the last year of membership; blank = still a member)"
        )
    excluded = {"exact_duplicate": 0, "not_in_panel": 0}
    exact = m.duplicated().to_numpy()
    excluded["exact_duplicate"] = int(exact.sum())
    m = m.loc[~exact]
    clash = id_format_clash(firm_ids, pd.Index(m["firm_id"]))
    if clash:
        n, ex = clash
        problems.append(
            f"{label}, column '{mcols['firm_id']}' vs {firms_label}: {n} firm id(s) match a firm of the panel only after removing "
            f"leading zeros (e.g. {ex}: register vs panel); one of the files stored ids as numbers. Fix: store firm ids as text "
            "with the same zero-padding in both files (in Excel: format the column as Text; in Stata: tostring with format)"
        )
    absent = ~isin_text(m["firm_id"], firm_ids) & m["firm_id"].notna().to_numpy()
    excluded["not_in_panel"] = int(absent.sum())
    m = m.loc[~absent].reset_index(drop=True)
    if problems:
        flow["excluded"] = excluded
        flow["rows_kept"] = len(m)
        return m, flow
    m = m.sort_values(["firm_id", "join_year", "cluster_id"], kind="stable").reset_index(drop=True)
    jy = m["join_year"].to_numpy(dtype=np.float64)
    ly = m["leave_year"].to_numpy(dtype=np.float64)
    out = pd.DataFrame(
        {
            "firm_id": m["firm_id"].astype("str").array,
            "cluster_id": m["cluster_id"].astype("str").array,
            "join_year": jy.astype(np.int64),
            "leave_year": pd.arrays.IntegerArray(np.nan_to_num(ly).astype(np.int64), np.isnan(ly)),
        }
    )
    flow["excluded"] = excluded
    flow["rows_kept"] = len(out)
    return out, flow


OTHER_FIELDS = ("firm_id", "start_year", "end_year")


def _other_programme(params: Params, firm_ids: pd.Index, firms_label: str, problems: list[str]):
    """The optional register of a second programme (``data.other_programme``: columns
    firm_id, start_year and optionally end_year, blank = still in it), validated like the
    membership register: ids as text (never merged across zero-padding), whole years,
    end >= start; exact duplicates and firms not in the panel excluded and counted. Without
    the file: an empty table and no flow."""
    empty = pd.DataFrame({"firm_id": pd.array([], dtype="str"), "start_year": np.array([], np.int64),
                          "end_year": pd.array([], dtype="Int64")})
    spec = params["data"].get("other_programme")
    if spec is None:
        return empty, None
    label = spec["path"]
    path = params.resolve(spec["path"])
    try:
        table = load_table(path, spec, role="other_programme", columns=list(OTHER_FIELDS), numeric=["start_year", "end_year"], text=["firm_id"], label=label)
        has_end = True
    except BadInputError as exc:  # end_year is optional; any other problem is raised as it is
        if "end_year" not in str(exc):
            raise
        table = load_table(path, spec, role="other_programme", columns=["firm_id", "start_year"], numeric=["start_year"], text=["firm_id"], label=label)
        has_end = False
    m = pd.DataFrame({"firm_id": table.frame["firm_id"], "start_year": table.frame["start_year"],
                      "end_year": table.frame["end_year"] if has_end else np.nan})
    flow: dict[str, Any] = {"file": label, "format": table.format, "rows_in": len(m), "rows_kept": 0, "excluded": {}}
    keys = ("firm_id", "start_year")
    for issue in table.issues.values():
        problems.append(describe_issue(table, issue, keys=list(keys)))
    miss = m["firm_id"].isna().to_numpy()
    if miss.any():
        problems.append(f"{label}, column 'firm_id': {miss.sum()} row(s) without a firm id; first keys: {keys_text(m, miss, keys)}. Fix: fill it in or delete the rows")
    s = pd.to_numeric(m["start_year"]).to_numpy(dtype=np.float64, na_value=np.nan)
    e = pd.to_numeric(m["end_year"]).to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(s)
    if "start_year" in table.issues:
        bad[table.issues["start_year"].positions] = False
    if bad.any():
        problems.append(f"{label}, column 'start_year': {bad.sum()} row(s) without a start year; first keys: {keys_text(m, bad, keys)}. Fix: fill in the first year in the programme")
    with np.errstate(invalid="ignore"):
        frac = (np.isfinite(s) & (np.floor(s) != s)) | (np.isfinite(e) & (np.floor(e) != e))
        order = e < s
    if frac.any():
        problems.append(f"{label}: {frac.sum()} non-integer year(s); first keys: {keys_text(m, frac, keys)}. Fix: give whole calendar years")
    if order.any():
        problems.append(f"{label}, column 'end_year': {order.sum()} row(s) with end_year < start_year; first keys: {keys_text(m, order, keys)}. Fix: correct the years")
    exact = m.duplicated().to_numpy()
    m = m.loc[~exact]
    clash = id_format_clash(firm_ids, pd.Index(m["firm_id"]))
    if clash:
        problems.append(f"{label}, column 'firm_id' vs {firms_label}: {clash[0]} firm id(s) match a firm of the panel only after removing "
                        f"leading zeros (e.g. {clash[1]}); store firm ids as text with the same zero-padding in both files")
    absent = ~isin_text(m["firm_id"], firm_ids) & m["firm_id"].notna().to_numpy()
    flow["excluded"] = {"exact_duplicate": int(exact.sum()), "not_in_panel": int(absent.sum())}
    m = m.loc[~absent].reset_index(drop=True)
    flow["rows_kept"] = len(m)
    if problems:
        return empty, flow
    m = m.sort_values(["firm_id", "start_year"], kind="stable").reset_index(drop=True)
    ey = pd.to_numeric(m["end_year"]).to_numpy(dtype=np.float64, na_value=np.nan)
    out = pd.DataFrame({
        "firm_id": m["firm_id"].astype("str").array,
        "start_year": pd.to_numeric(m["start_year"]).to_numpy(dtype=np.float64).astype(np.int64),
        "end_year": pd.arrays.IntegerArray(np.nan_to_num(ey).astype(np.int64), np.isnan(ey)),
    })
    return out, flow


# ------------------------------------------------------------------------------------------
# derived outcomes
# ------------------------------------------------------------------------------------------
def _derive(panel: pd.DataFrame, codes, defl, derive: list[str], cols, notes: list[str]):
    data: dict[str, Any] = {p: panel[p].to_numpy(dtype=np.float64) for p in cols if p not in TEXT_FIELDS and p in panel}
    data["firm_code"] = codes
    data["year"] = panel["year"].to_numpy()
    data["deflator"] = defl if defl is not None else np.ones(len(panel))
    new = {}
    info: dict[str, Any] = {}
    for name in derive:
        fn = outcomes.REGISTRY[name]
        vals = fn(data)
        data[name] = np.asarray(vals, dtype=np.float64) if not isinstance(vals, np.ndarray) else vals
        new[name] = vals
        n_missing = int(pd.isna(pd.Series(vals)).sum()) if not isinstance(vals, np.ndarray) else int(np.isnan(vals).sum())
        entry = {"formula": fn.formula, "n_missing": n_missing, "n_rows": len(panel)}
        if fn.deflated:
            entry["real"] = defl is not None
        causes = {}
        for c in fn.positive:
            if c in outcomes.POLICY_COLUMNS:
                continue
            with np.errstate(invalid="ignore"):
                causes[f"{c}<=0"] = int((data[c] <= 0).sum())
        if name == "log_exports":
            causes = {"exports==0 (intensive margin)": int((data["exports"] == 0).sum())}
        if causes:
            entry["missing_because"] = causes
        info[name] = entry
    panel = panel.copy(deep=False)
    for name, vals in new.items():  # column by column: no copy of the existing columns
        panel[name] = vals
    return panel, info


def _derive_tfp(panel: pd.DataFrame, defl, options: dict[str, Any], seed: int):
    """``log_tfp``: log total factor productivity from a production-function estimator
    (models.production.estimate_tfp; ``ingest.tfp`` chooses method, output and grouping).

    Inputs are real: value added, capital and intermediates are divided by the sector-year
    deflator (the one price index given; state a better one if you have it), employment is
    headcount. TFP estimation error is NOT propagated to the effect's standard error: the
    DiD treats log_tfp as data (the report says so)."""
    from models.production import estimate_tfp

    d = np.ones(len(panel)) if defl is None else np.asarray(defl, dtype=float)
    work = pd.DataFrame({
        "firm_id": panel["firm_id"].to_numpy(),
        "year": panel["year"].to_numpy(),
        "y": outcomes._log(panel["value_added"].to_numpy(float) / d),
        "l": outcomes._log(panel["employment"].to_numpy(float)),
        "k": outcomes._log(panel["capital"].to_numpy(float) / d),
        "m": outcomes._log(panel["intermediates"].to_numpy(float) / d),
    })
    if "sector" in panel:
        work["sector"] = panel["sector"].to_numpy()
    res = estimate_tfp(
        work, options.get("method", "acf"), y="y", l="l", k="k", m="m", idname="firm_id", tname="year",
        output=options.get("output", "value_added"), by=options.get("by"), seed=seed,
        bootstrap=int(options.get("bootstrap", 0)),
    )
    panel = panel.copy(deep=False)
    panel["log_tfp"] = res.tfp.to_numpy(dtype=float)
    info = {
        "formula": "log_tfp = ln(real value added) - b_l ln(employment) - b_k ln(real capital), "
                   f"elasticities by {res.method} ({res.output})",
        "method": res.method,
        "output": res.output,
        "elasticities": res.elasticities.to_dict(orient="records"),
        "std_errors": res.std_errors.to_dict(orient="records"),
        "n_missing": int(np.isnan(panel["log_tfp"].to_numpy(float)).sum()),
        "n_rows": len(panel),
        "propagated_to_effect_se": False,
    }
    return panel, info


def _drop_missing(panel: pd.DataFrame, names: list[str], flow: dict[str, Any]) -> pd.DataFrame:
    """``ingest.drop_missing_outcomes: true``: drop rows where a listed derived outcome is
    missing, counted as ``missing_outcome:<first missing name>``."""
    keep = np.ones(len(panel), bool)
    for n in names:
        miss = panel[n].isna().to_numpy() & keep
        flow["excluded"][f"missing_outcome:{n}"] = int(miss.sum())
        keep &= ~miss
    return panel.loc[keep].reset_index(drop=True)
