"""Read the raw input tables (CSV, Parquet, Stata .dta, Excel .xlsx) defensively.

The readers do no economics. They turn a file into a DataFrame whose columns are either
*text* (``str`` dtype, whitespace trimmed, empty -> missing; numbers stored in a binary
format become their integer spelling, so an id ``123`` read from Stata is ``"123"``),
*numeric* (``float64``; text that is not a number under the declared ``decimal``,
``thousands`` and ``na_values`` is recorded as a :class:`ParseIssue`, never silently
coerced) or, for columns in neither list, as stored (CSV: text).

Every failure of the underlying library (truncated or hostile file, wrong encoding, empty
file, ragged rows, wrong separator, a zip bomb posing as .xlsx) is turned into a
:class:`~models.errors.BadInputError` (exit 2) that names the file and says how to fix it.

Large CSV files are streamed with pyarrow's multithreaded CSV reader in blocks, reading only
the requested columns (``usecols``) as text and converting each block at once, so memory is
the final numeric columns plus one block of text. :func:`open_table` gives the same conversion
block by block (:class:`TableStream`): CSV in the reader's blocks, Parquet by record batches,
Stata and Excel as one block (their readers hold the whole file anyway); :func:`load_table`
is that stream concatenated.

CSV options (``params.yaml``, ``data.<role>``): ``sep`` (default ``,``; ``\\t`` for .tsv),
``decimal`` (default ``.``), ``thousands`` (default none; ``" "`` also removes the
no-break spaces U+00A0 and U+202F), ``encoding`` (default utf-8), ``na_values`` (added to
the default missing markers ``"" NA N/A NaN nan NULL null``). Excel: ``sheet`` (name or
0-based index; default the first sheet). Stata and Parquet need no options.
"""

from __future__ import annotations

import codecs
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from models.errors import BadInputError, ConfigError, first_keys

DEFAULT_NA = ["", "NA", "N/A", "NaN", "nan", "NULL", "null"]
# a number after thousands separators were removed and the decimal mark made '.'
NUMBER_RE = r"(?i)^[+-]?(([0-9]+(\.[0-9]*)?|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)$"
MAX_EXAMPLES = 5
BLOCK_SIZE = 1 << 24  # 16 MiB of CSV text per block

# hostile-file limits for .xlsx (a zip archive of XML parts)
XLSX_MAX_UNCOMPRESSED = 4 << 30  # 4 GiB in total
XLSX_MAX_RATIO = 200  # uncompressed / compressed of any one part

CSV_SUFFIXES = (".csv", ".txt", ".tsv", ".csv.gz", ".csv.bz2", ".csv.zst", ".tsv.gz")
FORMATS = {"csv": CSV_SUFFIXES, "parquet": (".parquet", ".pq"), "dta": (".dta",), "xlsx": (".xlsx", ".xlsm")}


@dataclass
class ParseIssue:
    """Text that is not a number in a numeric column: ``count`` cells, the first offending
    row positions (0-based, file order) and the first distinct offending strings."""

    column: str
    count: int = 0
    rows: list[int] = field(default_factory=list)
    examples: list[str] = field(default_factory=list)
    _parts: list[np.ndarray] = field(default_factory=list, repr=False)

    @property
    def positions(self) -> np.ndarray:
        """All offending row positions (0-based)."""
        return np.concatenate(self._parts) if self._parts else np.empty(0, np.int64)

    def add(self, positions: np.ndarray, raw: Iterable[Any]) -> None:
        positions = np.asarray(positions, dtype=np.int64)
        self._parts.append(positions)
        self.count += int(len(positions))
        room = MAX_EXAMPLES - len(self.rows)
        if room > 0:
            self.rows.extend(int(p) for p in positions[:room])
        for r in raw:
            if len(self.examples) >= MAX_EXAMPLES:
                break
            r = str(r)
            if r not in self.examples:
                self.examples.append(r)


@dataclass
class Table:
    """A file read by :func:`load_table`. ``label`` is how messages name the file."""

    frame: pd.DataFrame
    label: str
    role: str
    format: str
    issues: dict[str, ParseIssue]


def file_format(path: Path) -> str:
    name = path.name.lower()
    for fmt, suffixes in FORMATS.items():
        if name.endswith(suffixes):
            return fmt
    return ""


def read_table(
    path: str | Path,
    options: dict[str, Any] | None,
    *,
    role: str,
    columns: list[str] | None = None,
    numeric: Iterable[str] = (),
    text: Iterable[str] = (),
    label: str | None = None,
) -> pd.DataFrame:
    """Read ``path`` (format from its suffix) and return a DataFrame.

    ``columns``: the file columns to read (``None``: all); a missing one is a BadInputError
    listing the file's columns. ``numeric``: columns converted to float64; text that is not a
    number raises BadInputError (use :func:`load_table` to collect these problems instead).
    ``text``: columns returned as trimmed strings (ids, codes). Without ``numeric``/``text``
    a CSV is returned as text throughout.
    """
    table = load_table(path, options, role=role, columns=columns, numeric=numeric, text=text, label=label)
    if table.issues:
        raise BadInputError(
            f"{table.label}: non-numeric text in numeric column(s); nothing was written:",
            problems=[describe_issue(table, issue) for issue in table.issues.values()],
        )
    return table.frame


def format_key(v: Any) -> str:
    """A key value for messages: '<missing>', 2010 (not 2010.0), or the text."""
    if v is None or v is pd.NA or (isinstance(v, (float, np.floating)) and np.isnan(v)):
        return "<missing>"
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return str(int(v))
    return str(v)


def describe_issue(table: "Table | TableStream", issue: ParseIssue, keys: list[str] | None = None, shown: list[str] | None = None) -> str:
    """One problem line for a ParseIssue, naming the first keys (``keys`` columns of the
    offending rows, else file row numbers). ``shown``: those keys already formatted, for a
    streamed file that has no frame to look them up in (:func:`key_tuples` of its blocks)."""
    if keys:
        if shown is None:
            shown = key_tuples(table.frame.iloc[issue.rows], keys)
        where = f"first keys ({', '.join(keys)}): " + ", ".join(shown)
    else:
        where = "first data rows: " + ", ".join(str(r + 1) for r in issue.rows)
    return (
        f"{table.label}, column '{issue.column}': {issue.count} value(s) are not numbers "
        f"(e.g. {', '.join(repr(e) for e in issue.examples)}); {where}. Fix: declare how numbers are "
        f"written under data.{table.role} in params.yaml (decimal: ',' / thousands: ' ' / "
        f"na_values: [...] for missing-value markers such as 'n.a.'), or clean the column"
    )


def key_tuples(frame: pd.DataFrame, keys: list[str]) -> list[str]:
    """'(F001, 2010)' for each row of ``frame`` (its ``keys`` columns, :func:`format_key`)."""
    return ["(" + ", ".join(format_key(v) for v in row) + ")" for row in frame[list(keys)].itertuples(index=False)]


def load_table(
    path: str | Path,
    options: dict[str, Any] | None,
    *,
    role: str,
    columns: list[str] | None = None,
    numeric: Iterable[str] = (),
    text: Iterable[str] = (),
    label: str | None = None,
) -> Table:
    """Like :func:`read_table` but returns a :class:`Table` whose ``issues`` hold the
    non-numeric text found in ``numeric`` columns (those cells are NaN in the frame)."""
    return open_table(path, options, role=role, columns=columns, numeric=numeric, text=text, label=label).load()


@dataclass
class Block:
    """One block of a :class:`TableStream`: rows ``offset .. offset + len(frame) - 1`` of the
    file (0-based), converted as :func:`load_table` converts; ``bad`` maps a numeric column
    to the block positions of its cells that are not numbers (NaN in the frame)."""

    offset: int
    frame: pd.DataFrame
    bad: dict[str, np.ndarray]


class RestartRead(Exception):
    """A CSV read on the fast path (Arrow parses the numbers) met text in a numeric column:
    the blocks read so far are void; call :meth:`TableStream.blocks` again (it now reads
    every column as text and records each offending cell, as :func:`load_table` does)."""


class TableStream:
    """A file opened by :func:`open_table`, read block by block with :meth:`blocks`.

    Opening checks the file (exists, supported type, not empty, the requested columns
    present) and raises BadInputError at once; Stata and Excel files are read whole here.
    ``issues`` collects the ParseIssues of the blocks read so far (all of them once
    :meth:`blocks` is exhausted), in the order :func:`load_table` reports them."""

    def __init__(self, path: Path, options: dict[str, Any], *, role: str, columns, numeric, text, label: str) -> None:
        self.path, self.options, self.role, self.label = path, options, role, label
        self.numeric, self.text = list(numeric), list(text)
        self.issues: dict[str, ParseIssue] = {}
        self.format = file_format(path)
        self._whole: tuple[pd.DataFrame, dict[str, ParseIssue], dict[str, np.ndarray]] | None = None
        if self.format == "csv":
            self._csv = _CsvSource(path, label, role, options, columns)
            self.columns = self._csv.wanted
        elif self.format == "parquet":
            self.columns = _parquet_columns(path, label, role, columns)
        else:
            raw = _read_dta(path, label, role, columns) if self.format == "dta" else _read_xlsx(path, label, role, options, columns)
            self.columns = list(raw.columns)
            issues: dict[str, ParseIssue] = {}
            frame, bad = _convert_block(raw, options, self.numeric, self.text, 0, issues)
            self._whole = (frame, issues, bad)

    def blocks(self) -> Iterator[Block]:
        """The file's rows in file order, one :class:`Block` at a time (restarting
        ``issues``). Raises BadInputError for a file that breaks mid-way and
        :class:`RestartRead` (CSV only, at most once) when the fast path must be redone."""
        self.issues = {}
        if self._whole is not None:
            frame, issues, bad = self._whole
            self.issues = dict(issues)
            yield Block(0, frame, bad)
        elif self.format == "csv":
            yield from self._csv.blocks(set(self.numeric), set(self.text), self.issues)
        else:
            yield from _parquet_blocks(self, self.issues)

    def load(self) -> Table:
        """The whole file as one :class:`Table` (the blocks concatenated)."""
        while True:
            try:
                frames = [b.frame for b in self.blocks()]
                break
            except RestartRead:
                continue
        if not frames:
            frame = _empty_frame(self.columns, set(self.numeric), set(self.text))
        elif len(frames) == 1:
            frame = frames[0]
        else:
            frame = pd.concat(frames, ignore_index=True)
        return Table(frame=frame, label=self.label, role=self.role, format=self.format, issues=self.issues)


def open_table(
    path: str | Path,
    options: dict[str, Any] | None,
    *,
    role: str,
    columns: list[str] | None = None,
    numeric: Iterable[str] = (),
    text: Iterable[str] = (),
    label: str | None = None,
) -> TableStream:
    """Open ``path`` for reading block by block (arguments as :func:`read_table`)."""
    path = Path(path)
    options = dict(options or {})
    label = label or str(options.get("path") or path.name)
    _check_file(path, label, role)
    return TableStream(path, options, role=role, columns=columns, numeric=numeric, text=text, label=label)


def read_header(path: str | Path, options: dict[str, Any] | None, *, role: str, label: str | None = None) -> list[str]:
    """The column names of a table file, without reading its data (the file is checked as
    :func:`open_table` checks it)."""
    path = Path(path)
    options = dict(options or {})
    label = label or str(options.get("path") or path.name)
    fmt = _check_file(path, label, role)
    if fmt == "csv":
        return list(_CsvSource(path, label, role, options, []).header)
    if fmt == "parquet":
        try:
            return list(pq.read_schema(path).names)
        except Exception as exc:
            raise _parquet_error(label, exc) from exc
    if fmt == "dta":
        try:
            with pd.io.stata.StataReader(path, convert_categoricals=False) as rdr:
                return list(rdr.variable_labels())
        except Exception as exc:
            raise BadInputError(
                f"{label}: not a readable Stata .dta file ({type(exc).__name__}: {str(exc)[:200]}); "
                "the file is truncated, corrupt or not a .dta file: re-save it in Stata (save, replace) or export CSV"
            ) from exc
    _check_xlsx_archive(path, label)
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            header = next(_xlsx_sheet(wb, options, label, role).iter_rows(values_only=True, max_row=1), None) or ()
        finally:
            wb.close()
    except BadInputError:
        raise
    except Exception as exc:
        raise BadInputError(
            f"{label}: not a readable .xlsx workbook ({type(exc).__name__}: {str(exc)[:200]}); re-save it in Excel or export CSV"
        ) from exc
    return [str(h).strip() for h in header if h is not None and str(h).strip()]


def _check_file(path: Path, label: str, role: str) -> str:
    """The file exists, has a supported type and is not empty: its format."""
    if not path.is_file():
        raise BadInputError(f"{label}: file not found (resolved to {path}); check data.{role}.path in params.yaml")
    fmt = file_format(path)
    if not fmt:
        raise BadInputError(
            f"{label}: unsupported file type; give data.{role} as .csv/.tsv/.txt (optionally .gz), .parquet, "
            ".dta (Stata) or .xlsx (Excel)"
        )
    if path.stat().st_size == 0:
        raise BadInputError(f"{label}: the file is empty (0 bytes); re-export it")
    return fmt


def _empty_frame(columns: list[str], num_set: set[str], text_set: set[str]) -> pd.DataFrame:
    cols: dict[str, Any] = {}
    for c in columns:
        if c in num_set:
            cols[c] = np.empty(0)
        elif c in text_set:
            cols[c] = clean_text(pa.array([], type=pa.string())).array
        else:
            cols[c] = pd.array([], dtype="str")
    return pd.DataFrame(cols, copy=False)


# ------------------------------------------------------------------------------------------
# shared conversions
# ------------------------------------------------------------------------------------------
def _missing_columns_error(label: str, role: str, present: list[str], wanted: list[str], extra: str = "") -> None:
    missing = [c for c in wanted if c not in present]
    if missing:
        shown = ", ".join(repr(c) for c in present[:40]) + (" ..." if len(present) > 40 else "")
        what = "membership_columns" if role == "membership" else "columns"
        raise BadInputError(
            f"{label}: {len(missing)} mapped column(s) not found: {', '.join(repr(c) for c in missing)}. "
            f"The file has {len(present)} column(s): {shown}. Fix: map the pipeline names to the file's "
            f"column names in params.yaml ({what}:){extra}"
        )


def _thousands_variants(thousands: str | None) -> list[str]:
    if not thousands:
        return []
    if thousands == " ":
        return [" ", "\u00a0", "\u202f"]
    return [thousands]


def parse_numbers(arr: pa.Array | pa.ChunkedArray, decimal: str = ".", thousands: str | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Text -> float64 under the declared number format.

    Returns ``(values, bad)``: ``values`` has NaN for missing and for bad cells; ``bad`` is a
    boolean mask of cells holding text that is not a number (``None`` when there are none).
    Leading/trailing whitespace is allowed; ``inf`` is parsed (and rejected later, by the
    caller, with its own message). With ``decimal=','`` a '.' is not accepted unless it is the
    declared thousands separator, so "1.234,5" without ``thousands: '.'`` is an error.
    """
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    if not pa.types.is_string(arr.type) and not pa.types.is_large_string(arr.type):
        arr = arr.cast(pa.string())
    s = arr
    for t in _thousands_variants(thousands):
        s = pc.replace_substring(s, t, "")
    dot_bad = None
    if decimal and decimal != ".":
        if thousands != ".":
            dot_bad = pc.fill_null(pc.match_substring(s, "."), False)
            if not pc.any(dot_bad).as_py():
                dot_bad = None
        s = pc.replace_substring(s, decimal, ".")
    bad = None
    try:
        values = pc.cast(s, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        t = pc.utf8_trim_whitespace(s)
        empty = pc.fill_null(pc.equal(t, ""), False)
        ok = pc.fill_null(pc.match_substring_regex(t, NUMBER_RE), True)
        ok = pc.or_(ok, empty)
        bad_arr = pc.invert(ok)
        keep = pc.and_(ok, pc.invert(empty))
        values = pc.cast(pc.if_else(keep, t, pa.scalar(None, pa.string())), pa.float64())
        bad = bad_arr.to_numpy(zero_copy_only=False)
    out = values.to_numpy(zero_copy_only=False).astype(np.float64, copy=True)
    if dot_bad is not None:
        db = dot_bad.to_numpy(zero_copy_only=False)
        bad = db if bad is None else (bad | db)
    if bad is not None:
        out[bad] = np.nan
        if not bad.any():
            bad = None
    # "nan" text is a missing value, not a number
    return out, bad


def clean_text(values: pd.Series | pa.Array | pa.ChunkedArray) -> pd.Series:
    """Ids and codes as trimmed text; empty -> missing; integral numbers -> '123' (not '123.0')."""
    if isinstance(values, (pa.Array, pa.ChunkedArray)):
        arr = values
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            return clean_text(arr.to_pandas())
    else:
        s = values
        if pd.api.types.is_bool_dtype(s.dtype):
            s = s.astype("str")
        elif pd.api.types.is_integer_dtype(s.dtype):
            s = s.astype("Int64").astype("str")
        elif pd.api.types.is_float_dtype(s.dtype):
            f = s.to_numpy(dtype=np.float64, na_value=np.nan)
            integral = np.isfinite(f) & (np.floor(f) == f)
            txt = np.where(integral, np.where(integral, f, 0).astype(np.int64).astype(str), f.astype(str))
            s = pd.Series(pd.array(txt, dtype="str"), index=values.index).where(~np.isnan(f))
        elif s.dtype == object:
            s = pd.Series([_cell_text(v) for v in s.to_numpy()], index=s.index, dtype="str")
        arr = pa.array(s.astype("str"), type=pa.string(), from_pandas=True)
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    t = pc.utf8_trim_whitespace(arr)
    t = pc.if_else(pc.equal(t, ""), pa.scalar(None, pa.string()), t)
    return pd.Series(t.to_pandas(), dtype="str")


def _cell_text(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (bool, np.bool_)):
        return str(v)
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() else repr(float(v))
    return str(v)


def to_numeric(s: pd.Series, options: dict[str, Any], column: str, max_raw: int = MAX_EXAMPLES * 20) -> tuple[np.ndarray, ParseIssue | None]:
    """A column of any dtype -> float64 + a ParseIssue for the cells that are not numbers
    (text under the declared decimal/thousands/na_values, dates, booleans). The examples are
    the first distinct ones among the first ``max_raw`` offending cells."""
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("float64").to_numpy(), None
    if pd.api.types.is_numeric_dtype(s.dtype):
        return s.to_numpy(dtype=np.float64, na_value=np.nan), None
    if isinstance(s.dtype, pd.StringDtype):  # text column: vectorised parse
        arr = pa.array(s, type=pa.string(), from_pandas=True)
        na = DEFAULT_NA + [str(x) for x in (options.get("na_values") or [])]
        if na:
            arr = pc.if_else(pc.is_in(arr, value_set=pa.array(na, pa.string())), pa.scalar(None, pa.string()), arr)
        vals, bad = parse_numbers(arr, options.get("decimal") or ".", options.get("thousands"))
        if bad is None:
            return vals, None
        pos = np.flatnonzero(bad)
        issue = ParseIssue(column)
        issue.add(pos, s.iloc[pos[:max_raw]].tolist())
        return vals, issue
    obj = s.to_numpy(dtype=object)
    n = len(obj)
    out = np.full(n, np.nan)
    is_num = np.fromiter(
        (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in obj), bool, n
    )
    if is_num.any():
        out[is_num] = obj[is_num].astype(np.float64)
    is_str = np.fromiter((isinstance(v, str) for v in obj), bool, n)
    bad = np.zeros(n, bool)
    if is_str.any():
        vals, b = parse_numbers(pa.array(obj[is_str].tolist(), type=pa.string()), options.get("decimal") or ".", options.get("thousands"))
        if True:
            na = np.isin(obj[is_str].astype(str), DEFAULT_NA + [str(x) for x in (options.get("na_values") or [])])
            vals[na] = np.nan
            if b is not None:
                b = b & ~na
        out[is_str] = vals
        if b is not None:
            bad[np.flatnonzero(is_str)[b]] = True
    missing = pd.isna(s).to_numpy()
    other = ~(is_num | is_str | missing)  # dates, booleans, ... in a numeric column
    bad |= other
    if not bad.any():
        return out, None
    out[bad] = np.nan
    pos = np.flatnonzero(bad)
    issue = ParseIssue(column)
    issue.add(pos, obj[pos[:max_raw]])
    return out, issue


def _convert_block(raw: pd.DataFrame, options, numeric, text, offset: int, issues: dict[str, ParseIssue]) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Convert one block (rows ``offset ..`` of the file) and merge its ParseIssues into
    ``issues``: as if the whole file were converted at once (the examples come from the
    file's first offending cells). Returns the frame and the block's bad positions."""
    bad: dict[str, np.ndarray] = {}
    cols = {}
    for c in raw.columns:
        if c in numeric:
            seen = issues[c].count if c in issues else 0
            vals, issue = to_numeric(raw[c], options, c, max_raw=max(0, MAX_EXAMPLES * 20 - seen))
            cols[c] = vals
            if issue is not None:
                issues.setdefault(c, ParseIssue(c)).add(issue.positions + offset, issue.examples)
                bad[c] = issue.positions
        elif c in text:
            cols[c] = clean_text(raw[c]).array
        else:
            cols[c] = raw[c].array
    return pd.DataFrame(cols, copy=False), bad


# ------------------------------------------------------------------------------------------
# CSV
# ------------------------------------------------------------------------------------------
def _csv_options(path: Path, role: str, options: dict[str, Any]) -> tuple[str, str, str, str | None, list[str]]:
    sep = options.get("sep") or ("\t" if ".tsv" in path.name.lower() else ",")
    if sep in ("\\t", "tab"):
        sep = "\t"
    enc = options.get("encoding") or "utf-8"
    decimal = options.get("decimal") or "."
    thousands = options.get("thousands") or None
    problems = []
    for key, val in (("sep", sep), ("decimal", decimal)):
        if not isinstance(val, str) or len(val) != 1:
            problems.append(f"data.{role}.{key}: give one character, got {val!r}")
    if thousands is not None and (not isinstance(thousands, str) or len(thousands) != 1):
        problems.append(f"data.{role}.thousands: give one character, got {thousands!r}")
    if decimal == thousands:
        problems.append(f"data.{role}: decimal and thousands are both {decimal!r}")
    if decimal == sep:
        problems.append(f"data.{role}: decimal and sep are both {decimal!r}")
    try:
        codecs.lookup(enc)
    except (LookupError, TypeError):
        problems.append(f"data.{role}.encoding: unknown encoding {enc!r} (e.g. utf-8, latin-1, cp1252)")
    na = options.get("na_values") or []
    if isinstance(na, str):
        na = [na]
    if not isinstance(na, list) or not all(isinstance(x, (str, int, float)) for x in na):
        problems.append(f"data.{role}.na_values: give a list of strings, got {na!r}")
        na = []
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) with the options of data.{role}:", problems=problems)
    return sep, enc, decimal, thousands, DEFAULT_NA + [str(x) for x in na]


def _arrow_csv_error(label: str, role: str, enc: str, exc: Exception) -> BadInputError:
    msg = str(exc)
    if "UTF8" in msg or "UTF-8" in msg or isinstance(exc, UnicodeDecodeError):
        fix = (
            f"the file is not valid {enc} text. Declare its encoding as data.{role}.encoding in params.yaml "
            "(e.g. latin-1 or cp1252 for files saved by Excel on Windows), or re-save it as UTF-8"
        )
    elif "Empty CSV" in msg:
        fix = "the file is empty; re-export it with a header row"
    elif "Expected" in msg and "columns" in msg:
        fix = (
            f"rows have a different number of fields than the header. Check data.{role}.sep (the delimiter) "
            "and quoting of fields that contain the delimiter"
        )
    else:
        fix = "the file could not be parsed as CSV with the declared options; check it and data." + role
    return BadInputError(f"{label}: {fix}. (reader said: {msg.splitlines()[0][:300]})")


def _sniff_text(path: Path, label: str, role: str, enc: str) -> None:
    """UTF-16/32 text or binary data declared as an 8-bit encoding."""
    if path.name.lower().endswith((".gz", ".bz2", ".zst")):
        return
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if "16" in enc or "32" in enc:
        return
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or b"\x00" in head:
        kind = "UTF-16 text (it starts with a UTF-16 byte-order mark)" if head[:2] in (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE) else "binary data (NUL bytes)"
        raise BadInputError(
            f"{label}: the file looks like {kind}, not {enc} text. Declare data.{role}.encoding (e.g. utf-16) in "
            "params.yaml or re-save the file as UTF-8 CSV"
        )


class _CsvSource:
    """A CSV file's options and header, checked when opened; :meth:`blocks` streams it.

    Without ``thousands`` the first read is the fast path: Arrow parses the numeric columns
    itself. Text that is not a number makes it fail; the stream then raises
    :class:`RestartRead` and the next :meth:`blocks` reads every column as text, numbers
    parsed here with every offending cell recorded."""

    def __init__(self, path: Path, label: str, role: str, options: dict[str, Any], columns) -> None:
        self.path, self.label, self.role = path, label, role
        sep, enc, decimal, thousands, na = _csv_options(path, role, options)
        self.enc, self.decimal, self.thousands, self.na = enc, decimal, thousands, na
        _sniff_text(path, label, role, enc)
        self.read_opts = pacsv.ReadOptions(encoding=enc, block_size=BLOCK_SIZE, use_threads=True)
        self.parse_opts = pacsv.ParseOptions(delimiter=sep)
        try:
            probe = pacsv.open_csv(
                path,
                read_options=pacsv.ReadOptions(encoding=enc, block_size=1 << 16),
                parse_options=self.parse_opts,
                convert_options=pacsv.ConvertOptions(column_types={}, null_values=na, strings_can_be_null=True),
            )
            header = probe.schema.names
        except (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError, OSError) as exc:
            raise _arrow_csv_error(label, role, enc, exc) from exc
        finally:
            try:
                probe.close()  # type: ignore[possibly-undefined]
            except Exception:
                pass
        wanted = list(columns) if columns is not None else list(header)
        hint = ""
        if len(header) == 1 and sep != ";" and ";" in header[0]:
            hint = "; the header is one field containing ';': is the separator ';'? (data." + role + ".sep)"
        elif len(header) == 1 and sep != "\t" and "\t" in header[0]:
            hint = "; the header is one field containing tabs: is the separator a tab? (data." + role + ".sep: '\\t')"
        _missing_columns_error(label, role, header, wanted, hint)
        dups = sorted({c for c in wanted if header.count(c) > 1})
        if dups:
            raise BadInputError(f"{label}: column name(s) {', '.join(map(repr, dups))} appear more than once in the header; rename them")
        self.wanted = wanted
        self.header = list(header)
        self.typed = not thousands

    def _error(self, exc: Exception, typed: bool) -> Exception:
        """The exception to raise for a reader failure: RestartRead on the fast path's
        conversion error (text in a numeric column), else a BadInputError."""
        if typed and isinstance(exc, (pa.ArrowInvalid, pa.ArrowTypeError)) and "conversion error" in str(exc) and "UTF8" not in str(exc):
            self.typed = False
            return RestartRead(str(exc))
        return _arrow_csv_error(self.label, self.role, self.enc, exc)

    def blocks(self, num_set: set[str], text_set: set[str], issues: dict[str, ParseIssue]) -> Iterator[Block]:
        typed = self.typed
        wanted = self.wanted
        conv = pacsv.ConvertOptions(
            include_columns=wanted,
            column_types={c: (pa.float64() if typed and c in num_set else pa.string()) for c in wanted},
            null_values=self.na,
            strings_can_be_null=True,
            decimal_point=self.decimal,
        )
        errors = (pa.ArrowInvalid, pa.ArrowTypeError, UnicodeDecodeError, ValueError)
        try:
            reader = pacsv.open_csv(self.path, read_options=self.read_opts, parse_options=self.parse_opts, convert_options=conv)
        except errors as exc:
            raise self._error(exc, typed) from exc
        offset = 0
        header_rows: list[np.ndarray] = []  # data rows that repeat the header line
        batches = _readahead(reader.read_next_batch)
        while True:
            try:
                batch = next(batches)
            except StopIteration:
                break
            except errors as exc:
                raise self._error(exc, typed) from exc
            cols: dict[str, Any] = {}
            bad: dict[str, np.ndarray] = {}
            repeated = None if typed else _header_rows(batch, wanted)
            if repeated is not None:
                header_rows.append(np.flatnonzero(repeated) + offset)
            try:
                for c in wanted:
                    arr = batch.column(c)
                    if c in num_set:
                        if typed:
                            cols[c] = arr.to_numpy(zero_copy_only=False)
                            continue
                        vals, mask = parse_numbers(arr, self.decimal, self.thousands)
                        cols[c] = vals
                        if mask is not None and repeated is not None:
                            mask = mask & ~repeated  # reported once, as a repeated header
                            if not mask.any():
                                mask = None
                        if mask is not None:
                            pos = np.flatnonzero(mask)
                            raw = arr.take(pa.array(pos[: MAX_EXAMPLES * 20])).to_pylist()
                            issues.setdefault(c, ParseIssue(c)).add(pos + offset, raw)
                            bad[c] = pos
                    elif c in text_set:
                        cols[c] = clean_text(arr).array
                    else:
                        cols[c] = pd.Series(arr.to_pandas(), dtype="str").array
            except errors as exc:
                raise self._error(exc, typed) from exc
            yield Block(offset, pd.DataFrame(cols, copy=False), bad)
            offset += batch.num_rows
        if header_rows:
            rows = np.concatenate(header_rows)
            lines = [int(r) + 2 for r in rows]  # line 1 is the header
            raise BadInputError(
                f"{self.label}: the header line is repeated at line {lines[0]}"
                + (f" and {len(lines) - 1} more line(s) (lines {first_keys(lines, MAX_EXAMPLES)})" if len(lines) > 1 else "")
                + f": {len(lines)} row(s) repeat the column names ({', '.join(wanted[:4])}{', ...' if len(wanted) > 4 else ''}), "
                "as when files are concatenated with their headers (not values that fail to parse as numbers). Fix: delete the "
                "repeated header line(s) from the file (keep only the first line as the header) and run again"
            )


def _header_rows(batch: pa.RecordBatch, columns: list[str]) -> np.ndarray | None:
    """Rows of ``batch`` (read as text) whose every cell is its own column's name: a repeated
    header line. None when there is none."""
    if not columns:
        return None
    hit = None
    for c in columns:
        eq = pc.fill_null(pc.equal(pc.utf8_trim_whitespace(batch.column(c)), pa.scalar(c.strip(), pa.string())), False)
        hit = eq if hit is None else pc.and_(hit, eq)
        if not pc.any(hit).as_py():
            return None
    return hit.to_numpy(zero_copy_only=False)


# ------------------------------------------------------------------------------------------
# Parquet, Stata, Excel
# ------------------------------------------------------------------------------------------
def _readahead(fetch, depth: int = 2) -> Iterator[Any]:
    """``fetch()``'s results until it raises StopIteration, produced by a background thread up
    to ``depth`` ahead (Arrow parses the next block while the caller converts this one); an
    exception of ``fetch`` is raised here, in order."""
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        while not stop.is_set():
            try:
                item = (True, fetch())
            except StopIteration:
                item = (False, None)
            except BaseException as exc:  # handed to the reading thread
                item = (False, exc)
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if not item[0]:
                return

    worker = threading.Thread(target=work, name="readahead", daemon=True)
    worker.start()
    try:
        while True:
            ok, value = q.get()
            if not ok:
                if value is None:
                    return
                raise value
            yield value
    finally:
        stop.set()
        worker.join()


PARQUET_BATCH_ROWS = 1 << 17  # rows per block of a streamed Parquet file


def _parquet_error(label: str, exc: Exception) -> BadInputError:
    return BadInputError(
        f"{label}: not a readable Parquet file ({type(exc).__name__}: {str(exc)[:200]}); "
        "the file is truncated or not Parquet: re-export it"
    )


def _parquet_columns(path: Path, label: str, role: str, columns) -> list[str]:
    try:
        present = list(pq.read_schema(path).names)
    except Exception as exc:  # hostile/truncated file: any library failure is bad input
        raise _parquet_error(label, exc) from exc
    wanted = list(columns) if columns is not None else present
    _missing_columns_error(label, role, present, wanted)
    return wanted


def _parquet_blocks(stream: "TableStream", issues: dict[str, ParseIssue]) -> Iterator[Block]:
    """A Parquet file by record batches, converted as if read whole (same issues, same order)."""
    try:
        batches = pq.ParquetFile(stream.path).iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=stream.columns)
    except Exception as exc:
        raise _parquet_error(stream.label, exc) from exc
    offset = 0
    while True:
        try:
            batch = next(batches, None)
            if batch is None:
                break
            raw = batch.to_pandas()
        except Exception as exc:
            raise _parquet_error(stream.label, exc) from exc
        frame, bad = _convert_block(raw, stream.options, stream.numeric, stream.text, offset, issues)
        yield Block(offset, frame, bad)
        offset += len(frame)
    # a whole-file read reports the columns in file order
    ordered = {c: issues[c] for c in stream.columns if c in issues}
    issues.clear()
    issues.update(ordered)


def _read_dta(path: Path, label: str, role: str, columns) -> pd.DataFrame:
    try:
        with pd.io.stata.StataReader(path, convert_categoricals=False) as rdr:
            present = list(rdr.variable_labels())
        _missing_columns_error(label, role, present, list(columns) if columns is not None else present)
        return pd.read_stata(path, columns=list(columns) if columns is not None else None, convert_categoricals=False, convert_dates=False)
    except BadInputError:
        raise
    except Exception as exc:  # hostile/truncated file (struct/Value/Unicode/Memory errors ...)
        raise BadInputError(
            f"{label}: not a readable Stata .dta file ({type(exc).__name__}: {str(exc)[:200]}); "
            "the file is truncated, corrupt or not a .dta file: re-save it in Stata (save, replace) or export CSV"
        ) from exc


def _check_xlsx_archive(path: Path, label: str) -> None:
    """Refuse zip bombs and XML with DTDs (entity expansion) before openpyxl parses anything."""
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            total = sum(i.file_size for i in infos)
            if total > XLSX_MAX_UNCOMPRESSED:
                raise BadInputError(f"{label}: the workbook unpacks to {total} bytes (> {XLSX_MAX_UNCOMPRESSED}); refusing it. Export the sheet as CSV")
            for i in infos:
                if i.file_size > 1 << 20 and i.file_size > XLSX_MAX_RATIO * max(i.compress_size, 1):
                    raise BadInputError(
                        f"{label}: part {i.filename!r} is compressed {i.file_size // max(i.compress_size, 1)}:1 "
                        "(a zip bomb?); refusing it. Export the sheet as CSV"
                    )
                if i.filename.endswith((".xml", ".rels")):
                    with zf.open(i) as fh:
                        head = fh.read(4096)
                    if b"<!DOCTYPE" in head or b"<!ENTITY" in head:
                        raise BadInputError(f"{label}: part {i.filename!r} declares a DTD/entities; refusing it (not produced by Excel)")
    except BadInputError:
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError, NotImplementedError) as exc:
        raise BadInputError(
            f"{label}: not a readable .xlsx workbook ({type(exc).__name__}: {str(exc)[:200]}); the file is truncated "
            "or not an Excel 2007+ workbook (.xls is not supported: save as .xlsx or CSV)"
        ) from exc


def _read_xlsx(path: Path, label: str, role: str, options: dict[str, Any], columns) -> pd.DataFrame:
    _check_xlsx_archive(path, label)
    try:
        import openpyxl

        wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
        try:
            ws = _xlsx_sheet(wb, options, label, role)
            rows = ws.iter_rows(values_only=True)
            header = next(rows, None)
            if header is None:
                raise BadInputError(f"{label}: sheet {ws.title!r} is empty; put a header row in the first row")
            header = ["" if h is None else str(h).strip() for h in header]
            # trailing empty header cells are formatting, not columns
            while header and header[-1] == "":
                header.pop()
            wanted = list(columns) if columns is not None else [h for h in header if h]
            _missing_columns_error(label, role, [h for h in header if h], wanted)
            idx = [header.index(c) for c in wanted]
            data: dict[str, list] = {c: [] for c in wanted}
            for row in rows:
                if row is None or all(v is None for v in row):
                    continue
                for c, j in zip(wanted, idx):
                    data[c].append(row[j] if j < len(row) else None)
        finally:
            wb.close()
        return pd.DataFrame({c: pd.Series(v, dtype=object) for c, v in data.items()})
    except BadInputError:
        raise
    except Exception as exc:  # hostile/corrupt workbook: any library failure is bad input
        raise BadInputError(
            f"{label}: not a readable .xlsx workbook ({type(exc).__name__}: {str(exc)[:200]}); re-save it in Excel or export CSV"
        ) from exc


def _xlsx_sheet(wb, options: dict[str, Any], label: str, role: str):
    """The worksheet ``data.<role>.sheet`` names (0-based index or name; default the first)."""
    sheet = options.get("sheet", 0)
    if sheet is None:
        sheet = 0
    names = wb.sheetnames
    if isinstance(sheet, int):
        if not 0 <= sheet < len(names):
            raise BadInputError(f"{label}: sheet index {sheet} out of range; the workbook has sheets {names} (data.{role}.sheet)")
        return wb[names[sheet]]
    if sheet not in names:
        raise BadInputError(f"{label}: no sheet {sheet!r}; the workbook has sheets {names} (data.{role}.sheet)")
    return wb[sheet]


def table_labels(path: str | Path, options: dict[str, Any] | None, columns: dict[str, str]) -> dict[str, dict[str, str]]:
    """Code -> label tables a file carries for the pipeline columns ``columns`` ({pipeline
    name: file column}, e.g. sector and region): Stata value labels of those variables, or
    in an .xlsx workbook a sheet named after the pipeline name or the file column (``sector``,
    ``nace2``) whose first two columns are code and label (header row first). Codes are
    written as the panel stores them (:func:`clean_text`). Other formats: none."""
    path = Path(path)
    fmt = file_format(path)
    out: dict[str, dict[str, str]] = {}
    try:
        if fmt == "dta":
            with pd.io.stata.StataReader(path, convert_categoricals=False) as rdr:
                names = list(rdr.variable_labels())
                tables = rdr.value_labels()
                lbl = list(getattr(rdr, "_lbllist", []) or [])
            for p, col in columns.items():
                if col in names and names.index(col) < len(lbl) and lbl[names.index(col)] in tables:
                    t = tables[lbl[names.index(col)]]
                    out[p] = {_cell_text(k): str(v) for k, v in sorted(t.items())}
        elif fmt == "xlsx":
            import openpyxl

            wb = openpyxl.load_workbook(path, read_only=True, data_only=True)
            try:
                for p, col in columns.items():
                    sheet = next((s for s in wb.sheetnames if s.strip().lower() in (p.lower(), str(col).lower())), None)
                    if sheet is None:
                        continue
                    rows = wb[sheet].iter_rows(values_only=True)
                    next(rows, None)  # header
                    t = {}
                    for r in rows:
                        if r and len(r) >= 2 and r[0] is not None and r[1] is not None:
                            t[_cell_text(r[0]).strip()] = str(r[1]).strip()
                    if t:
                        out[p] = dict(sorted(t.items()))
            finally:
                wb.close()
    except Exception:  # labels are a courtesy: a file the readers accept but whose labels cannot be read has none
        return {}
    return out
