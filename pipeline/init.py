"""``cluster-impact init``: propose a commented params.yaml from a firm panel and a register.

Steps (each choice is written into the file as a comment saying why):

1. **Read a sample.** CSV: the encoding (UTF-8, else cp1252, else latin-1; a UTF-16 byte
   order mark is honoured), the separator (``, ; tab |``: the one that splits the first lines
   into the same number of fields, more than one) and the decimal mark (``,`` when numbers
   such as ``12,5`` outnumber ``12.5``; thousands ``.`` when ``1.234,5`` occurs) are
   sniffed from the first 64 KiB; then the file is opened with :mod:`pipeline.readers` like
   the ingest stage does and the first :data:`SAMPLE_ROWS` rows are kept. Parquet, Stata
   and Excel need no options (Excel: the first sheet).
2. **Profile each column** on the sample: numeric under the sniffed number format (the
   readers' own conversion), integral, range, distinct values, dates (ISO, ``dd.mm.yyyy``,
   Excel cells holding dates).
3. **Map names.** Each pipeline name of :data:`pipeline.config.PANEL_FIELDS` and
   :data:`pipeline.config.MEMBERSHIP_FIELDS` is scored against each file column by the
   synonym table of :mod:`pipeline.synonyms` (case- and accent-insensitive); pairs are
   taken best score first, a column at most once, and only when the sampled values pass the
   field's type check (:func:`type_problem`: a year holds integers in 1900..2100, a firm id is
   unique per year, counts are non-negative integers, amounts non-negative numbers ...).
4. **Propose the design**: the year window is the year column's range over the whole file;
   ``ingest.derive`` every derived outcome of :mod:`pipeline.outcomes` whose inputs are
   mapped (``log_tfp``: value added, employment, capital and intermediates); outcomes and
   the estimators they allow (Poisson estimators only for non-negative outcomes: counts such
   as patents and zero-heavy magnitudes such as exports; matching and weighting only with
   ``log_employment`` for their default covariate).
5. **Write** the file, never over an existing one (exit 5), after checking that it loads
   with :func:`pipeline.config.load_params`.

This module reads files and returns text; the CLI prints and writes.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import datetime as dt
import gzip
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from models.errors import BadInputError, ConfigError

from . import outcomes as derived_outcomes
from . import readers
from .config import DEFAULTS, MEMBERSHIP_FIELDS, PANEL_FIELDS, SAFE_NAME, load_params, resolve_path
from .synonyms import LANGUAGES, MEMBERSHIP, PANEL, best_match

SAMPLE_ROWS = 2000
SNIFF_BYTES = 1 << 16
SEPARATORS = (",", ";", "\t", "|")
NONNEGATIVE = ("employment", "turnover", "value_added", "wage_bill", "capital", "intermediates", "exports", "patents", "rd")
TEXT_FIELDS = ("firm_id", "sector", "region", "group_id", "cluster_id")
TFP_NEEDS = ("value_added", "employment", "capital", "intermediates")
# headline outcomes in the order the shipped params.yaml lists them, then fallbacks
HEADLINE = ("log_labour_productivity", "log_tfp", "export_status", "exports", "patents", "patent_status")
FALLBACK = ("log_value_added", "log_employment", "employment_growth", "employment", "turnover")
BASE_ESTIMATORS = ["cs", "sunab", "imputation", "event_study", "twfe"]
DATE_RES = (
    ("ISO dates (yyyy-mm-dd)", re.compile(r"^\d{4}-\d{1,2}-\d{1,2}([ T].*)?$")),
    ("dates dd.mm.yyyy", re.compile(r"^\d{1,2}\.\d{1,2}\.\d{4}$")),
    ("dates dd/mm/yyyy", re.compile(r"^\d{1,2}/\d{1,2}/\d{4}$")),
)
# Excel serial day numbers of 1950-01-01 and 2100-12-31
EXCEL_SERIAL = (18264, 73415)


# ------------------------------------------------------------------------------------------
# reading a sample
# ------------------------------------------------------------------------------------------
@dataclass
class Profile:
    """What the sampled values of one column look like."""

    name: str
    n: int
    n_missing: int
    numeric: bool = False
    integer: bool = False
    vmin: float | None = None
    vmax: float | None = None
    n_negative: int = 0
    n_distinct: int = 0
    date: str = ""  # "" or how dates are written
    na_markers: list[str] = field(default_factory=list)  # non-numbers in an otherwise numeric column
    values: np.ndarray | None = field(default=None, repr=False)  # numeric values (NaN = missing)

    @property
    def kind(self) -> str:
        if self.n == self.n_missing:
            return "empty"
        if self.date:
            return self.date
        if self.numeric:
            rng = f"{_num(self.vmin)}..{_num(self.vmax)}"
            return f"{'integer' if self.integer else 'numeric'} {rng}"
        return "text"


@dataclass
class Sample:
    role: str
    path: Path
    rel: str  # path relative to the params file's folder, as written in params.yaml
    format: str
    options: dict[str, Any]
    frame: pd.DataFrame
    profiles: dict[str, Profile]
    notes: list[str]  # why the reading options are what they are


def _num(x: float | None) -> str:
    if x is None or not np.isfinite(x):
        return "?"
    return str(int(x)) if float(x).is_integer() else f"{x:.4g}"


def _head_bytes(path: Path) -> bytes:
    name = path.name.lower()
    opener = gzip.open if name.endswith(".gz") else bz2.open if name.endswith(".bz2") else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(SNIFF_BYTES)
    except OSError as exc:
        raise BadInputError(f"{path.name}: cannot read the file ({exc}); check that it is a complete CSV file") from exc


def sniff_csv(path: Path) -> tuple[dict[str, Any], list[str]]:
    """CSV reading options (``sep``, ``decimal``, ``thousands``, ``encoding``) from the
    first 64 KiB, with one note per option saying what was seen."""
    raw = _head_bytes(path)
    notes = []
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        enc = "utf-16"
    else:
        enc = ""
        for cand in ("utf-8", "cp1252"):
            try:
                codecs.getincrementaldecoder(cand)().decode(raw, final=False)
                enc = cand
                break
            except UnicodeDecodeError:
                continue
        enc = enc or "latin-1"
    try:
        text = codecs.getincrementaldecoder(enc)(errors="replace").decode(raw, final=False)
    except Exception:  # a BOM-less UTF-16 file and the like: leave it to the reader's message
        text = raw.decode("latin-1")
    text = text.lstrip("\ufeff")
    notes.append({"utf-8": "encoding utf-8 (the first 64 KiB decode as UTF-8)",
                  "utf-16": "encoding utf-16 (byte-order mark)",
                  "cp1252": "encoding cp1252 (not valid UTF-8; Windows/Excel Western European text)",
                  "latin-1": "encoding latin-1 (neither UTF-8 nor cp1252)"}[enc])
    lines = [ln for ln in text.splitlines()[:-1] or text.splitlines()][:50]
    lines = [ln for ln in lines if ln.strip()]
    best = None
    for sep in SEPARATORS:
        counts = [len(r) for r in csv.reader(lines, delimiter=sep)]
        if counts and counts[0] > 1 and all(c == counts[0] for c in counts):
            if best is None or counts[0] > best[1]:
                best = (sep, counts[0])
    if best is None:
        sep = "\t" if ".tsv" in path.name.lower() else ","
        notes.append(f"separator {sep!r}: no candidate splits the first lines evenly; check data.firms.sep")
    else:
        sep = best[0]
        notes.append(f"separator {_sep_name(sep)} ({best[1]} fields in each of the first {len(lines)} lines)")
    rows = list(csv.reader(lines[1:], delimiter=sep))
    cells = [c.strip() for r in rows for c in r]
    comma = [c for c in cells if re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})*,\d+|[+-]?\d+,\d+", c)]
    dot = [c for c in cells if re.fullmatch(r"[+-]?\d+\.\d+", c) and not re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+", c)]
    options: dict[str, Any] = {"sep": sep}
    decimal, thousands = ".", None
    if sep != "," and comma and len(comma) >= len(dot):
        decimal = ","
        notes.append(f"decimal mark ',' ({len(comma)} sampled cells like {comma[0]!r}, {len(dot)} like '12.5')")
        grouped = [c for c in cells if re.fullmatch(r"[+-]?\d{1,3}(\.\d{3})+(,\d*)?", c)]
        if grouped:
            thousands = "."
            notes.append(f"thousands separator '.' (e.g. {grouped[0]!r})")
    else:
        notes.append("decimal mark '.'" + (f" (e.g. {dot[0]!r})" if dot else ""))
        grouped = [c for c in cells if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(\.\d+)?", c)]
        if grouped and sep != ",":
            thousands = ","
            notes.append(f"thousands separator ',' (e.g. {grouped[0]!r})")
    options["decimal"] = decimal
    if thousands:
        options["thousands"] = thousands
    options["encoding"] = enc
    return options, notes


def _sep_name(sep: str) -> str:
    return {"\t": "tab", ",": "','", ";": "';'", "|": "'|'"}[sep]


def read_sample(path: Path, rel: str, role: str, rows: int = SAMPLE_ROWS) -> Sample:
    """The first ``rows`` rows of ``path`` read as the ingest stage would, and their profiles."""
    fmt = readers.file_format(path)
    notes: list[str] = []
    options: dict[str, Any] = {}
    if fmt == "csv":
        options, notes = sniff_csv(path)
    stream = readers.open_table(path, options, role=role, label=rel)
    if fmt == "xlsx":
        sheets = _sheet_names(path)
        options["sheet"] = sheets[0] if sheets else 0
        notes.append(f"sheet {sheets[0]!r}" + (f" (the first of {len(sheets)}: {', '.join(map(repr, sheets))})" if len(sheets) > 1 else " (the only sheet)"))
    frame = None
    for _ in range(2):
        try:
            for block in stream.blocks():
                frame = block.frame.head(rows).reset_index(drop=True)
                break
            break
        except readers.RestartRead:
            continue
    if frame is None or not len(frame):
        raise BadInputError(f"{rel}: no data rows below the header; cluster-impact init needs a sample of the data")
    profiles = {str(c): profile(frame[c], str(c), options) for c in frame.columns}
    return Sample(role, path, rel, fmt, options, frame, profiles, notes)


def _sheet_names(path: Path) -> list[str]:
    import openpyxl

    wb = openpyxl.load_workbook(path, read_only=True)
    try:
        return list(wb.sheetnames)
    finally:
        wb.close()


def _missing(s: pd.Series) -> np.ndarray:
    miss = np.array(pd.isna(s), dtype=bool)
    if s.dtype == object or isinstance(s.dtype, pd.StringDtype):
        txt = s.astype("str")
        miss |= txt.str.strip().isin(readers.DEFAULT_NA).to_numpy() & ~pd.isna(s).to_numpy()
    return miss


def profile(s: pd.Series, name: str, options: dict[str, Any]) -> Profile:
    miss = _missing(s)
    p = Profile(name=name, n=len(s), n_missing=int(miss.sum()))
    present = s[~miss]
    if not len(present):
        return p
    p.n_distinct = int(present.astype("str").nunique())
    vals, issue = readers.to_numeric(s, options, name)
    bad = 0 if issue is None else issue.count
    if bad == 0 or (bad <= 0.2 * len(present) and 0 < len(set(issue.examples)) <= 3 and all(_is_marker(e) for e in issue.examples)):
        finite = vals[np.isfinite(vals)]
        if len(finite):
            p.numeric = True
            p.values = vals
            p.integer = bool(np.all(np.floor(finite) == finite))
            p.vmin, p.vmax = float(finite.min()), float(finite.max())
            p.n_negative = int((finite < 0).sum())
            if bad:
                p.na_markers = sorted(set(issue.examples))
    if not p.numeric:
        p.date = _date_kind(present)
    return p


def _is_marker(x: str) -> bool:
    """Missing-value markers registers use: 'n.a.', 'k.A.', '-', '.', 'x', '(D)' ..."""
    x = str(x).strip()
    return bool(x) and not re.search(r"\d", x) and len(x) <= 8


def _date_kind(present: pd.Series) -> str:
    vals = present.tolist()
    if all(isinstance(v, (dt.date, dt.datetime, pd.Timestamp)) for v in vals):
        return "dates (date cells)"
    txt = [str(v).strip() for v in vals]
    for label, rx in DATE_RES:
        if sum(bool(rx.match(t)) for t in txt) >= 0.9 * len(txt):
            return label
    return ""


# ------------------------------------------------------------------------------------------
# mapping names
# ------------------------------------------------------------------------------------------
@dataclass
class Choice:
    field: str
    column: str
    why: str


def type_problem(fld: str, p: Profile, sample: Sample, chosen: dict[str, Choice]) -> str:
    """Why the sampled values of ``p`` cannot be pipeline column ``fld`` ('' = they can)."""
    present = p.n - p.n_missing
    if present == 0:
        return "" if fld == "leave_year" else "the column is empty in the sample"
    if fld in ("year", "founding_year", "join_year", "leave_year"):
        lo = 1900 if fld != "founding_year" else 1700
        if fld in ("join_year", "leave_year") and p.date:
            return ""
        if fld in ("join_year", "leave_year") and p.numeric and p.integer and p.vmin >= EXCEL_SERIAL[0] and p.vmax <= EXCEL_SERIAL[1]:
            return ""  # Excel serial dates
        if not (p.numeric and p.integer):
            return f"it holds {p.kind}, not integer years"
        if p.vmin < lo or p.vmax > 2100:
            return f"its values {_num(p.vmin)}..{_num(p.vmax)} are not years in {lo}..2100"
        if fld == "year" and p.n_distinct < 2:
            return "it holds a single year: a panel needs several"
        return ""
    if fld == "firm_id":
        if present < 0.99 * p.n:
            return f"{p.n_missing} of {p.n} sampled values are missing"
        if p.numeric and not p.integer:
            return "it holds non-integer numbers"
        if sample.role == "firms" and "year" in chosen:
            keys = sample.frame[[p.name, chosen["year"].column]].astype("str")
            dup = int(keys.duplicated().sum())
            if dup:
                return f"it is not unique per year ({dup} duplicated id-year pairs in the sample)"
        return ""
    if fld in TEXT_FIELDS:
        if p.numeric and not p.integer:
            return "it holds non-integer numbers, not codes"
        return ""
    if not p.numeric:
        return f"it holds {p.kind}, not numbers"
    if fld == "patents" and not p.integer:
        return "it holds non-integer numbers, not counts"
    if fld in NONNEGATIVE and p.n_negative:
        return f"{p.n_negative} sampled value(s) are negative (min {_num(p.vmin)}); the pipeline's {fld} must be >= 0"
    return ""


def propose_mapping(sample: Sample, table: dict[str, dict[str, list[str]]], forced: dict[str, str]) -> tuple[dict[str, Choice], list[str]]:
    """Pipeline name -> file column (best synonym score first, one column per name), and
    the notes on names that matched but whose values failed the type check."""
    cols = list(sample.profiles)
    for f, c in forced.items():
        if f not in table:
            raise ConfigError(f"--{'membership-' if sample.role == 'membership' else ''}column {f}={c}: unknown pipeline name {f!r} (known: {', '.join(table)})")
        if c not in cols:
            raise ConfigError(f"--{'membership-' if sample.role == 'membership' else ''}column {f}={c}: {sample.rel} has no column {c!r} (it has: {', '.join(cols)})")
    chosen: dict[str, Choice] = {f: Choice(f, c, "named on the command line") for f, c in forced.items()}
    order = list(table)
    cands = []
    for f in order:
        for j, c in enumerate(cols):
            score, syn, lang = best_match(c, table[f])
            if score:
                # years first: a firm id's check (unique per year) needs the year column
                cands.append((-score, 0 if f == "year" else 1, order.index(f), j, f, c, syn, lang, score))
    cands.sort()
    rejected = []
    for *_, f, c, syn, lang, score in cands:
        if f in chosen or any(ch.column == c for ch in chosen.values()):
            continue
        p = sample.profiles[c]
        why_not = type_problem(f, p, sample, chosen)
        if why_not:
            rejected.append(f"{c!r} looks like {f} by name ({LANGUAGES[lang]} {syn!r}) but {why_not}; not mapped")
            continue
        how = "is" if score == 100 else "contains" if score > 30 else "starts with"
        chosen[f] = Choice(f, c, f"name {how} {LANGUAGES[lang]} {syn!r}; {p.kind}" + _extra(f, p, sample, chosen))
    if ("x_coord" in chosen) != ("y_coord" in chosen):  # coordinates come in pairs
        lone = chosen.pop("x_coord", None) or chosen.pop("y_coord")
        rejected.append(f"{lone.column!r} looks like {lone.field} but the other coordinate is missing; not mapped")
    return {f: chosen[f] for f in order if f in chosen}, rejected


def _extra(f: str, p: Profile, sample: Sample, chosen: dict[str, Choice]) -> str:
    if f == "firm_id" and sample.role == "firms" and "year" in chosen:
        return ", unique per year in the sample"
    if f == "leave_year" and p.n_missing:
        return f", blank in {p.n_missing} of {p.n} rows (still members)"
    if p.na_markers:
        return f"; {', '.join(map(repr, p.na_markers))} read as missing"
    return ""


# ------------------------------------------------------------------------------------------
# the proposal
# ------------------------------------------------------------------------------------------
@dataclass
class Proposal:
    firms: Sample
    membership: Sample
    columns: dict[str, Choice]
    mcolumns: dict[str, Choice]
    rejected: list[str]
    years: tuple[int, int]
    year_note: str
    derive: list[tuple[str, str]]  # (name, why)
    not_derivable: list[tuple[str, str]]
    outcomes: list[str]
    outcome_estimators: dict[str, list[str]]
    allowed_notes: list[str]
    register_notes: list[str]
    deflators: Sample | None = None


def propose(firms: Path, membership: Path, out: Path, *, forced: dict[str, str] | None = None,
            mforced: dict[str, str] | None = None, rows: int = SAMPLE_ROWS, deflators: Path | None = None) -> Proposal:
    root = out.resolve().parent
    ds = read_sample(deflators, _relative(deflators, root, "deflators"), "deflators", rows) if deflators else None
    fs = read_sample(firms, _relative(firms, root, "firms"), "firms", rows)
    ms = read_sample(membership, _relative(membership, root, "membership"), "membership", rows)
    columns, rej = propose_mapping(fs, PANEL, forced or {})
    mcolumns, mrej = propose_mapping(ms, MEMBERSHIP, mforced or {})
    _require(fs, columns, ("firm_id", "year"), "--column")
    _require(ms, mcolumns, MEMBERSHIP_FIELDS, "--membership-column")
    for s in (fs, ms):
        markers = sorted({m for c in (columns if s is fs else mcolumns).values() for m in s.profiles[c.column].na_markers})
        if markers:
            s.options["na_values"] = markers
            s.notes.append(f"na_values {markers}: missing-value markers in mapped numeric columns")
    years, ynote = _year_range(fs, columns["year"].column)
    reg = _register_notes(fs, ms, columns, mcolumns, years)
    derive, nod = _derivable(columns)
    outs = [o for o in HEADLINE if o in {d for d, _ in derive} | set(columns)]
    if not outs:
        outs = [o for o in FALLBACK if o in {d for d, _ in derive} | set(columns)][:2]
    oe, allowed = _estimators(outs, columns, fs, {d for d, _ in derive})
    return Proposal(fs, ms, columns, mcolumns, rej + [f"register: {r}" for r in mrej], years, ynote, derive, nod, outs, oe, allowed, reg, ds)


def _relative(path: Path, root: Path, role: str) -> str:
    rel = os.path.relpath(path.resolve(), root)
    try:
        resolve_path(root, rel)
    except ConfigError as exc:
        raise ConfigError(
            f"--{role} {path}: the file is outside {root}, the folder the params file is written to; paths in params.yaml "
            "may not leave it. Move or copy the file under that folder (e.g. data/raw/) and run init again"
        ) from exc
    return Path(rel).as_posix()


def _require(sample: Sample, chosen: dict[str, Choice], fields, flag: str) -> None:
    missing = [f for f in fields if f not in chosen]
    if not missing:
        return
    cols = "; ".join(f"{c!r}: {p.kind}" for c, p in sample.profiles.items())
    hint = " (a register without leave dates needs an empty column for them: add a column leave_year, blank = still a member)" if "leave_year" in missing else ""
    raise BadInputError(
        f"{sample.rel}: no column recognised as {', '.join(missing)}{hint}. Its columns (in the first {len(sample.frame)} rows): {cols}. "
        f"Fix: name them on the command line, e.g. {flag} {missing[0]}=<column>",
    )


def _year_range(fs: Sample, ycol: str) -> tuple[tuple[int, int], str]:
    """The year column's range over the whole file (one column read)."""
    t = readers.load_table(fs.path, fs.options, role="firms", columns=[ycol], numeric=[ycol], label=fs.rel)
    y = t.frame[ycol].to_numpy(dtype=np.float64)
    y = y[np.isfinite(y)]
    if not len(y):
        p = fs.profiles[ycol]
        return (int(p.vmin), int(p.vmax)), f"the range of {ycol!r} in the sample"
    return (int(y.min()), int(y.max())), f"the range of {ycol!r} over all {len(t.frame):,} rows"


def _register_notes(fs: Sample, ms: Sample, columns: dict[str, Choice], mcolumns: dict[str, Choice], years: tuple[int, int]) -> list[str]:
    notes = []
    reg = readers.load_table(ms.path, ms.options, role="membership", columns=[mcolumns["firm_id"].column, mcolumns["cluster_id"].column],
                             text=[mcolumns["firm_id"].column, mcolumns["cluster_id"].column], label=ms.rel).frame
    fid, cid = reg.iloc[:, 0], reg.iloc[:, 1]
    notes.append(f"{len(reg):,} spells of {fid.nunique():,} firms in {cid.nunique():,} initiatives")
    multi = reg.groupby(fid.to_numpy())[cid.name].nunique()
    if (multi > 1).any():
        notes.append(f"{int((multi > 1).sum())} firm(s) in more than one initiative (each spell is kept; a firm is treated from its first join)")
    panel_ids = readers.load_table(fs.path, fs.options, role="firms", columns=[columns["firm_id"].column], text=[columns["firm_id"].column], label=fs.rel).frame.iloc[:, 0]
    absent = sorted(set(fid.dropna()) - set(panel_ids.dropna()))
    if absent:
        notes.append(f"{len(absent)} register firm(s) not in the firm panel (e.g. {', '.join(absent[:3])}): counted and excluded at ingest")
    jp = ms.profiles[mcolumns["join_year"].column]
    if jp.date:
        notes.append(f"REVIEW: {mcolumns['join_year'].column!r} holds {jp.date}: the join year is derived from them (README: registers with dates)")
    elif jp.numeric and jp.vmin is not None and jp.vmin < years[0]:
        notes.append(f"joins from {_num(jp.vmin)}, before the first panel year {years[0]}: such firms are always-members (build_groups.always_treated)")
    return notes


def _derivable(columns: dict[str, Choice]) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    ok, no = [], []
    for name, fn in derived_outcomes.REGISTRY.items():
        missing = [c for c in fn.needs if c not in columns]
        (no if missing else ok).append((name, f"needs {', '.join(missing)}" if missing else f"from {', '.join(fn.needs)}"))
    missing = [c for c in TFP_NEEDS if c not in columns]
    (no if missing else ok).append(("log_tfp", f"needs {', '.join(missing)}" if missing else
                                    "production function (ACF) of value added on employment and capital, intermediates as the proxy"))
    return ok, no


def _estimators(outs: list[str], columns: dict[str, Choice], fs: Sample, derived: set[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Per outcome the estimators its values allow, and notes on the other registry keys."""
    oe: dict[str, list[str]] = {}
    notes = []
    for o in outs:
        if o in ("export_status", "patent_status", "log_tfp"):
            oe[o] = ["twfe", "event_study", "cs"]
        elif o == "patents":
            p = fs.profiles[columns["patents"].column]
            oe[o] = ["twfe", "event_study", "cs", "ppml", "etwfe_poisson"] if p.integer and not p.n_negative else ["twfe", "event_study", "cs"]
        elif o == "exports":
            oe[o] = ["twfe", "event_study", "cs", "ppml"]
    counts = [o for o in outs if o in ("patents", "exports")]
    notes.append("ppml / etwfe_poisson: only for non-negative outcomes with zeros (" + (", ".join(counts) if counts else "none mapped") +
                 "); a log or ratio outcome is not a count")
    if "log_employment" in derived:
        notes.append("matching, weighting: allowed (their default covariate log_employment is derived)")
    else:
        notes.append("matching, weighting: need a covariate; map employment (log_employment) or set estimate.covariates")
    dims = [d for d in ("employment", "sector", "region") if d in columns]
    notes.append("heterogeneity: allowed by " + ", ".join(["cluster_id", *dims]) + (" (set estimate.heterogeneity.by to these)" if len(dims) < 3 else ""))
    notes.append("checks (placebos, randomization inference, leave one cluster out), bacon, did2s: allowed")
    return oe, notes


# ------------------------------------------------------------------------------------------
# writing
# ------------------------------------------------------------------------------------------
def _y(v: Any) -> str:
    """``v`` as inline YAML; strings bare only when they read back as themselves and hold
    nothing but letters, digits and ``_ . / -`` (so ';', '.' or 'année' are quoted)."""
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_y(x)}" for k, x in v.items()) + "}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_y(x) for x in v) + "]"
    if isinstance(v, str):
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_./-]*", v) and yaml.safe_load(v) == v:
            return v
        return json.dumps(v, ensure_ascii=False)
    return yaml.safe_dump(v, default_flow_style=True).strip().removesuffix("...").strip()


def _line(text: str, comment: str = "", width: int = 44) -> str:
    comment = " ".join(str(comment).split())
    return f"{text:<{width}} # {comment}" if comment else text


def _file_spec(s: Sample) -> dict[str, Any]:
    return {"path": s.rel, **s.options}


def render(p: Proposal) -> str:
    fs, ms = p.firms, p.membership
    mapped = {c.column for c in p.columns.values()}
    est_default = DEFAULTS["estimate"]
    L = [
        f"# params.yaml proposed by `cluster-impact init` from {fs.rel} and {ms.rel}.",
        "# Every choice carries a comment saying why; review the lines marked REVIEW. Reference: README.md,",
        "# section \"params.yaml reference\" (unknown keys are errors). Next: cluster-impact run --params <this file>",
        "# (or dvc repro when this file is the project's params.yaml).",
        _line(f"seed: {DEFAULTS['seed']}", "the one seed every random draw derives from (the project default)", 44),
        _line("engine: pandas", "in memory; duckdb for panels larger than memory (README: Scale)"),
        "",
        "data:                                        # paths relative to this file's folder",
        f"  # firms ({fs.format}" + ("): " + "; ".join(fs.notes) if fs.notes else ")"),
        f"  firms: {_y(_file_spec(fs))}",
        f"  # membership ({ms.format}" + ("): " + "; ".join(ms.notes) if ms.notes else ")"),
        f"  membership: {_y(_file_spec(ms))}",
        *([f"  # deflators ({p.deflators.format}): sector-year value-added price indices; {_deflator_note(p)}", f"  deflators: {_y(_file_spec(p.deflators))}"] if p.deflators else
          ["  # deflators: not given, so productivity is nominal and the report says so; add deflators: {path: ...} with sector, year, deflator"]),
        "  # truth, other_programme, collaborations, costs: not set (an unset input is left out, not null: DVC makes one input@<name> stage per entry)",
        "",
        "columns:                                     # pipeline name: column name in your file",
    ]
    for f, ch in p.columns.items():
        L.append(_line(f"  {f}: {_y(ch.column)}", f"{PANEL_FIELDS[f].split(' (')[0]}: {ch.why}"))
    unmapped = [c for c in fs.profiles if c not in mapped]
    if unmapped:
        L.append("# not mapped: these pass through under their own (safe-identifier) names and can be outcomes, covariates,")
        L.append("# heterogeneity dimensions or strata as they are:")
        for c in unmapped:
            pr = fs.profiles[c]
            own = "" if SAFE_NAME.match(c) else " (renamed to a safe identifier at ingest)"
            L.append(f"#   {c}: {pr.kind}{own}")
    missing = [f for f in PANEL_FIELDS if f not in p.columns]
    if missing:
        L.append(f"# pipeline columns not found in {fs.rel}: {', '.join(missing)}")
    for r in p.rejected:
        L.append(f"# REVIEW: {r}")
    L += ["", "membership_columns:"]
    for f, ch in p.mcolumns.items():
        L.append(_line(f"  {f}: {_y(ch.column)}", ch.why))
    munmapped = [c for c in ms.profiles if c not in {c.column for c in p.mcolumns.values()}]
    if munmapped:
        L.append(f"# register columns not used: {', '.join(munmapped)}")
    for r in p.register_notes:
        L.append(f"# register: {r}")
    L += [
        "",
        "units:                                  # REVIEW: what the money columns are in (README: Units and scales)",
        "  currency: null                        # e.g. EUR; null: the report says 'units of the data', it never guesses a currency",
        "  scale: 1                              # 1000 if the file is in thousands, 1000000 in millions",
        *(["  price_base_year: null                # the year in which the deflators equal 1 (real values then read '<year> prices')"] if p.deflators else []),
        "",
        "ingest:",
        _line(f"  years: {_y(list(p.years))}", p.year_note),
        _line(f"  derive: {_y([d for d, _ in p.derive])}", "every derived outcome the mapped columns allow (README: Outcomes)", 0),
    ]
    for name, why in p.derive:
        L.append(f"  #   {name}: {why}")
    if p.not_derivable:
        L.append("  # not derivable: " + "; ".join(f"{n} ({w})" for n, w in p.not_derivable))
    L += [
        _line("  log_nonpositive: drop", "rows whose logged input is <= 0 are dropped and counted (fail: stop instead)"),
        "",
        "build_groups:",
        _line("  leavers: absorbing", "a firm that leaves stays treated from its first join (drop | error)"),
        _line("  always_treated: drop", f"members who joined in or before {p.years[0]} are dropped and counted"),
        _line("  after_window: never", f"joins after {p.years[1]} count as never-members, counted"),
        "",
        "estimate:",
        _line(f"  outcomes: {_y(p.outcomes)}", "the headline outcomes the mapped columns allow; add any numeric column (also unmapped ones)"),
        _line(f"  estimators: {_y(BASE_ESTIMATORS)}", "heterogeneity-robust DiD first (Callaway-Sant'Anna, Sun-Abraham, imputation), then event study and TWFE"),
    ]
    if p.outcome_estimators:
        L.append("  outcome_estimators:                        # per outcome, replacing `estimators`")
        for o, keys in p.outcome_estimators.items():
            why = {"export_status": "0/1 outcome: linear DiD", "patent_status": "0/1 outcome: linear DiD",
                   "log_tfp": "TFP is itself estimated: few estimators", "exports": "non-negative with zeros: PPML for the proportional effect",
                   "patents": "a count: Poisson estimators (PPML, ETWFE Poisson)" if "ppml" in keys else "not integer counts: no Poisson"}[o]
            L.append(_line(f"    {o}: {_y(keys)}", why))
    for n in p.allowed_notes:
        L.append(f"  # also: {n}")
    sens_out = p.outcomes[:1]
    L += [
        _line(f"  sensitivity: {_y({'estimators': ['event_study'], 'outcomes': sens_out, 'mbar': est_default['sensitivity']['mbar'], 'window': est_default['sensitivity']['window']})}",
              "HonestDiD robust intervals and pre-test power for the first outcome's event study", 0),
        _line("  covariates: []", "pre-treatment covariates; e.g. an unmapped numeric column listed above"),
        _line("  control_group: nevertreated", "firms that never joined (notyettreated: also later members)"),
        _line("  vcov: {kind: cluster, by: [firm_id]}", "clustered by firm: errors of one firm are correlated over time"),
        _line(f"  alpha: {est_default['alpha']}", "intervals are 1 - alpha; the report labels and judges at this level"),
        _line("  on_error: fail", "a design that cannot be estimated stops the run (skip: list it and go on)"),
        "",
        "value_for_money:                        # used only with data.costs (README: Value for money); DVC needs the section",
        "  discount: green_book                  # HM Treasury: 3.5 % years 0-30, 3.0 % 31-75, 2.5 % 76-125",
        "  base_year: null                       # null = the first year of data.costs",
        "  leakage: 0.0                          # Additionality Guide factors (deadweight = the DiD counterfactual)",
        "  displacement: 0.0",
        "  substitution: 0.0",
        "  multiplier: 1.0",
        "",
        "report:",
        _line("  formats: [html, pdf]", "the HTML and the PDF report"),
        _line("  disclosure: strict", "REVIEW: the disclosure-control profile of your secure environment (README)"),
        _line(f"  title: {_y('Cluster programme impact evaluation')}", "shown on the report"),
        "",
    ]
    return "\n".join(L)


def _deflator_note(p: Proposal) -> str:
    """Whether the deflator file has the columns ingest looks for (the panel's sector and
    year names, or 'sector' / 'year', and 'deflator')."""
    have = set(p.deflators.profiles)
    sec = (p.columns.get("sector").column if "sector" in p.columns else None)
    need = {"sector": [c for c in (sec, "sector") if c], "year": [p.columns["year"].column, "year"], "deflator": ["deflator"]}
    missing = [n for n, names in need.items() if not have & set(names)]
    if missing:
        return (f"REVIEW: no column for {', '.join(missing)}; ingest needs " +
                ", ".join(" or ".join(map(repr, dict.fromkeys(names))) for names in need.values()))
    return "columns " + ", ".join(next(c for c in names if c in have) for names in need.values()) + " found"


def write_params(text: str, out: Path) -> None:
    """Write ``text`` to ``out`` only if it loads with load_params and ``out`` does not
    exist (checked again at the rename, so a file created meanwhile is not replaced)."""
    if out.exists():
        raise ConfigError(f"{out} exists; cluster-impact init never overwrites a file. Remove it or pass --out <new file>")
    tmp = out.with_name(f".{out.name}.init-tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        load_params(tmp)
        os.link(tmp, out)  # fails if out appeared meanwhile
    except FileExistsError as exc:
        raise ConfigError(f"{out} exists; cluster-impact init never overwrites a file. Remove it or pass --out <new file>") from exc
    finally:
        tmp.unlink(missing_ok=True)


def summary(p: Proposal, out: Path) -> str:
    lines = [f"cluster-impact init: wrote {out}"]
    lines.append("  columns: " + ", ".join(f"{f} <- {c.column}" for f, c in p.columns.items()))
    lines.append("  register: " + ", ".join(f"{f} <- {c.column}" for f, c in p.mcolumns.items()))
    lines.append(f"  years {p.years[0]}-{p.years[1]}; outcomes: {', '.join(p.outcomes)}")
    n_review = sum("REVIEW:" in ln for ln in render(p).splitlines())
    if n_review:
        lines.append(f"  {n_review} line(s) marked REVIEW in {out.name}")
    lines.append(f"next: cluster-impact run --params {out}   (or: dvc repro, with {out.name} as the project's params.yaml)")
    return "\n".join(lines)


def main(args) -> int:
    out = Path(args.out)
    if out.exists():
        raise ConfigError(f"{out} exists; cluster-impact init never overwrites a file. Remove it or pass --out <new file>")
    forced = _pairs(args.column or [], "--column")
    mforced = _pairs(args.membership_column or [], "--membership-column")
    p = propose(Path(args.firms), Path(args.membership), out, forced=forced, mforced=mforced, rows=args.sample_rows,
                deflators=Path(args.deflators) if args.deflators else None)
    write_params(render(p), out)
    print(summary(p, out))
    return 0


def _pairs(items: list[str], flag: str) -> dict[str, str]:
    out = {}
    for it in items:
        k, sep, v = it.partition("=")
        if not sep or not k or not v:
            raise ConfigError(f"{flag} {it!r}: give PIPELINE_NAME=COLUMN, e.g. {flag} year=jahr")
        out[k.strip()] = v.strip()
    return out

