"""Stage 1 library: raw firm panel + membership register (+ deflators) -> interim panel.

``ingest(params, panel_path=None)`` reads the files named in ``params.yaml``
(``data.firms``, ``data.membership``, ``data.deflators``), maps the file's column names to
pipeline names (``columns``, ``membership_columns``), validates everything at the boundary,
deflates, derives the outcomes listed in ``ingest.derive`` (see :mod:`pipeline.outcomes`)
and returns the harmonised register, a JSON-serialisable sample-flow record and the interim
panel — or, given ``panel_path``, writes the panel there as Parquet, shard by shard (below).

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
the firm file's own columns that some stage uses (:func:`passthrough_plan`: float64 when
every cell is a number, else text), then the derived outcomes in registry order
(``export_status`` and ``patent_status`` Int64, the rest float64).

Register (``data.membership``): join/leave years or dates (:mod:`pipeline.dates`,
``date_format``, ``join_rule``), or spells built from a panel column (``from_panel``,
:func:`spells_from_panel`); refused (exit 2): ids that match the panel only ignoring case or
leading zeros, implausible years, a header-only register, a register whose ids match no
panel id; counted, never merged (:func:`register_oddities`): firms absent from the panel, in
several initiatives, with overlapping spells.

Out of core: the firm panel is never whole in memory
----------------------------------------------------
1. *Read* (pass 1). The firm file is streamed (:func:`pipeline.readers.open_table`): CSV in
   the reader's 16 MiB blocks, Parquet by record batches, keeping only the mapped columns.
   Stata ``.dta`` and Excel ``.xlsx`` files are read whole by their libraries, so they stay
   in memory (one block). The per-row checks (text in numeric columns, missing ids and years,
   non-integer years, infinite and negative values) run here, in file order, so their counts,
   examples and first keys are those of the whole file. Rows that can enter the panel (firm id
   and year present, inside ``ingest.years``) are spilled to a temporary Arrow file with their
   file position, and their firm ids counted.
2. *Shards*. The sorted distinct firm ids are cut into contiguous ranges of about
   ``SHARD_ROWS`` rows and the spilled rows split into one temporary file per range (a file of
   at most ``SHARD_ROWS`` rows is one shard: no split). Every firm lies whole in one shard, and
   the shards in order are the panel in (firm_id, year) order.
3. *Per shard* (pass 2), in firm order: duplicates, the log policy, sorting, deflation (a
   sector-year lookup) and the derived outcomes — all within a firm or a row
   (``employment_growth``'s previous year is in the same shard). Problems are collected across
   shards: counts are summed and first keys merged by file position, so every message is the
   one a whole-file read gives. While no problem is known the finished rows go straight to the
   output; a problem (here or in a later check) discards it (the stage's temporary file is
   removed: a failed ingest writes nothing).
4. ``log_tfp`` is one production function over all rows: its inputs (firm code, year and four
   float64 logs) are gathered across shards, estimated once as before, and the column is added
   in a third pass over the derived shards, kept on disk meanwhile.
5. The panel is written shard by shard into one Parquet file through
   :class:`pipeline.io.ParquetAppender` (the same bytes as writing the whole frame at once).
   Without ``panel_path`` (library use, tests) the same shard frames are concatenated.

In memory at any time: one block of the raw file, one shard (and its output rows, at most one
Parquet row group waiting), the distinct firm ids with their row counts, the problem tallies,
the registers and deflators (small, in pandas) and, with ``log_tfp``, its six input columns
for all rows (plus what the estimator itself needs). The temporary files live in a hidden
folder beside ``panel_path`` (the system temp folder without it) and are removed at the end
and on any error. Progress (one line per pass and per shard) goes to stderr.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from models.errors import BadInputError, ConfigError, first_keys

from . import costs as _costs
from . import outcomes
from .config import MEMBERSHIP_FIELDS, PANEL_FIELDS, RESERVED_COLUMNS, SAFE_NAME, Params, estimator_options, estimators_for
from .collaborations import read_collaborations
from .fingerprint import digests
from .io import ParquetAppender, frame_table
from .progress import note, step
from .readers import Block, RestartRead, clean_text, describe_issue, format_key, key_tuples, load_table, open_table, read_header, to_numeric

TEXT_FIELDS = ("firm_id", "sector", "region", "group_id")
INTEGER_FIELDS = ("year", "founding_year")
NONNEGATIVE = ("employment", "turnover", "value_added", "wage_bill", "capital", "intermediates", "exports", "patents", "rd")
SHARD_ROWS = 1_000_000  # rows of the firm panel per shard: about 0.5 GiB while one is processed, 2 GiB peak at 20M rows
N_KEYS = 5  # offending keys a problem shows
NUM = "num:"  # spill-file prefix of a pass-through column's values as numbers (not a safe name: no clash)
MEMBER = "membership:from_panel"  # spill-file column of data.membership.from_panel


@dataclass
class IngestOutput:
    panel: pd.DataFrame | None  # None when written to ``panel_path``
    membership: pd.DataFrame
    flow: dict[str, Any]
    other_programme: pd.DataFrame | None = None  # firm_id, start_year, end_year (empty without the file)
    collaborations: pd.DataFrame | None = None  # firm_a, firm_b, year, kind (empty without the file)
    costs: pd.DataFrame | None = None  # data.costs (pipeline.costs): level, key, year, amount, amount_real


def ingest(params: Params, panel_path: str | Path | None = None) -> IngestOutput:
    """Read, validate, deflate and derive; see the module docstring.

    ``panel_path``: write the interim panel there (Parquet) instead of returning it
    (``IngestOutput.panel`` is then None). After an error the file may hold part of a panel:
    pass a temporary file that the caller removes on error (``StageOutputs.stream``)."""
    cols: dict[str, str] = dict(params["columns"])
    mcols: dict[str, str] = dict(params["membership_columns"])
    ing = params["ingest"]
    derive = _check_config(cols, mcols, ing, params["data"].get("deflators") is not None)
    notes: list[str] = []
    panel_path = None if panel_path is None else Path(panel_path)
    read_digests = _input_digests(params)  # provenance: what is about to be read

    with _spill_dir(panel_path) as tmp:
        firms = _FirmFile(params, cols, ing, tmp, derive)
        cols = firms.cols  # + the pass-through columns
        defl = _Deflators(params, cols, derive, notes, firms.year_range())
        sink = _PanelSink(panel_path)
        try:
            shards = _Shards(params, cols, ing, derive, firms, defl, sink, tmp)
            shards.run()
            problems = firms.problems() + shards.problems()
            problems += defl.problems + defl.panel_problems(shards, notes)
            firm_ids = shards.firm_ids()
            membership, mem_flow = _membership(params, mcols, firm_ids, firms.label, problems, shards.member_spells)
            notes.extend(register_notes(mem_flow))
            other, other_flow = _other_programme(params, firm_ids, firms.label, problems)
            collab, collab_flow = read_collaborations(params, firm_ids, firms.label, _window(ing, sink), problems)
            costs, costs_flow = _costs.read_costs(params, firm_ids, pd.Index(membership["cluster_id"].dropna().unique()) if len(membership) else pd.Index([]),
                                                  getattr(defl, "d", None) if not defl.problems else None, problems)
            problems += _changed_while_read(read_digests, _input_digests(params))
            if problems:
                raise BadInputError(
                    f"{len(problems)} problem(s) in the input data; nothing was written. Fix them and run again:", problems=problems
                )
            derived_flow = shards.finish()
            with step("ingest: finish the panel"):
                panel = sink.close()
        finally:
            sink.abort()

    firms_flow = shards.flow()
    mem_flow["rows_kept"] = len(membership)
    for f in (firms_flow, mem_flow, defl.flow, other_flow, collab_flow):
        if f is not None:
            assert f["rows_in"] == f["rows_kept"] + sum(f["excluded"].values()), f
    flow = {
        "firms": firms_flow,
        "membership": mem_flow,
        "deflators": defl.flow,
        "other_programme": other_flow,
        "collaborations": collab_flow,
        **({"costs": costs_flow} if costs_flow is not None else {}),
        "years": list(ing["years"]) if ing["years"] else [sink.year_min, sink.year_max] if sink.rows else None,
        "columns": {p: f for p, f in cols.items() if p in PANEL_FIELDS},
        "passthrough": firms.passthrough_flow(),
        "membership_columns": mcols,
        "derived": derived_flow,
        "deflated": defl.usable,
        "log_nonpositive": ing["log_nonpositive"],
        "n_firms": sink.n_firms,
        "notes": notes,
        # code -> label of sector / region from Stata value labels or Excel label sheets (the report's tables use them)
        "labels": firms.labels(),
        "inputs": read_digests,
    }
    return IngestOutput(panel=panel, membership=membership, flow=flow, other_programme=other, collaborations=collab, costs=costs)


def _window(ing: dict[str, Any], sink: Any) -> tuple[int, int] | None:
    """The panel's years: ``ingest.years`` or the kept rows' first and last year."""
    if ing["years"]:
        return int(ing["years"][0]), int(ing["years"][1])
    return (int(sink.year_min), int(sink.year_max)) if sink.rows else None


def check_inputs(params: Params) -> dict[str, Any]:
    """What ``cluster-impact check`` adds to the params validation: the input files' headers
    against the mapping, read without their data. Raises what ingest would raise for the
    same problem (exit 5 for a column name that cannot be used, exit 2 for a mapped column
    the file lacks); returns a short summary (columns mapped, passing through, per file)."""
    from .readers import _missing_columns_error

    cols: dict[str, str] = dict(params["columns"])
    mcols: dict[str, str] = dict(params["membership_columns"])
    derive = _check_config(cols, mcols, params["ingest"], params["data"].get("deflators") is not None)
    spec = params["data"]["firms"]
    header = read_header(params.resolve(spec["path"]), spec, role="firms", label=spec["path"])
    _missing_columns_error(spec["path"], "firms", header, [f for p, f in cols.items() if p in PANEL_FIELDS])
    extra, _ = passthrough_plan(params, cols, header, derive)
    summary: dict[str, Any] = {"firms": {"path": spec["path"], "columns": len(header), "mapped": sorted(p for p in cols if p in PANEL_FIELDS),
                                         "passthrough": sorted(extra), "panel_columns": panel_columns(params, cols, extra, derive)}}
    summary["firms"]["panel_numeric"] = panel_numeric_columns(summary["firms"]["panel_columns"], extra)
    mspec = params["data"]["membership"]
    if mspec.get("from_panel"):
        if mspec["from_panel"] not in header:
            _missing_columns_error(spec["path"], "firms", header, [mspec["from_panel"]], " (data.membership.from_panel)")
        summary["membership"] = {"from_panel": mspec["from_panel"]}
    else:
        mh = read_header(params.resolve(mspec["path"]), mspec, role="membership", label=mspec["path"])
        _missing_columns_error(mspec["path"], "membership", mh, [mcols[f] for f in MEMBERSHIP_FIELDS if f in mcols])
        summary["membership"] = {"path": mspec["path"], "columns": len(mh)}
    for name in ("deflators", "other_programme", "collaborations", "costs"):
        dspec = params["data"].get(name)
        if dspec:
            read_header(params.resolve(dspec["path"]), dspec, role=name, label=dspec["path"])
            summary[name] = {"path": dspec["path"]}
    return summary


#: columns build_groups adds to the panel (besides config.RESERVED_COLUMNS' public ones)
GROUP_COLUMNS = ("cluster_strength",)
TEXT_GROUP_COLUMNS = ("cluster_id", "cluster_strength", "arm", "other_programme")


def panel_columns(params: Params, cols: dict[str, str], extra: dict[str, str], derive: list[str]) -> list[str]:
    """The processed panel's columns as predicted from params and the firm file's header: mapped
    pipeline columns, passed-through ones, derived outcomes and what build_groups adds."""
    out = {p for p in cols if p in PANEL_FIELDS} | set(extra) | set(derive)
    if "log_tfp" in (params["ingest"].get("derive") or []):
        out.add("log_tfp")
    out |= {c for c in RESERVED_COLUMNS if not c.startswith("_")} | set(GROUP_COLUMNS)
    if params["data"].get("collaborations") is not None:  # derived by build_groups (models.collaboration)
        from models.collaboration import OUTCOMES as COLLABORATION_OUTCOMES

        out |= set(COLLABORATION_OUTCOMES)
    return sorted(out)


def panel_numeric_columns(columns: list[str], extra: dict[str, str]) -> list[str]:
    """The predicted panel columns that will be numbers: all but the text pipeline columns and
    the text ones build_groups adds (a passed-through column's type is known only from its
    values: it counts as numeric here, and the estimate stage checks its real type)."""
    return sorted(c for c in columns if c not in TEXT_FIELDS and c not in TEXT_GROUP_COLUMNS or c in extra)


INPUT_ROLES = ("firms", "membership", "deflators", "other_programme", "collaborations", "costs")  # the data.* files ingest reads


def _input_digests(params: Params) -> dict[str, dict[str, str]]:
    """md5 of every raw file ingest reads (``{name: {path, md5}}``, one entry per file of a
    folder): recorded in the flow, so provenance describes the bytes that were read."""
    out: dict[str, dict[str, str]] = {}
    for name in INPUT_ROLES:
        spec = params["data"].get(name)
        if spec and spec.get("path") and not (name == "membership" and spec.get("from_panel")):
            out.update(digests(params.root, name, params.resolve(spec["path"])))
    return out


def _changed_while_read(before: dict[str, dict], after: dict[str, dict]) -> list[str]:
    changed = sorted(k for k in set(before) | set(after) if before.get(k, {}).get("md5") != after.get(k, {}).get("md5"))
    return [
        f"{(before.get(k) or after[k])['path']}: the file changed while ingest was reading it (md5 "
        f"{before.get(k, {}).get('md5')} before, {after.get(k, {}).get('md5')} after); what was read cannot be "
        "described. Fix: wait until whatever writes the file has finished, then run again"
        for k in changed
    ]


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
        if p not in PANEL_FIELDS:  # a column of the user's own (passes through, typed by its values)
            continue
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
# the firm file's own columns (pass-through)
# ------------------------------------------------------------------------------------------
def _strings(x: Any) -> Iterator[str]:
    """Every string inside a params value (lists and mappings, recursively)."""
    if isinstance(x, str):
        yield x
    elif isinstance(x, dict):
        for k, v in x.items():
            yield from _strings(k)
            yield from _strings(v)
    elif isinstance(x, (list, tuple)):
        for v in x:
            yield from _strings(v)


def passthrough_plan(params: Params, cols: dict[str, str], header: list[str], derive: list[str]) -> tuple[dict[str, str], set[str]]:
    """The firm file's columns that enter the panel besides the mapped pipeline columns:
    ``({panel name: file column}, names that must be numeric)``.

    A column passes through when (a) it is mapped under ``columns:`` to a name that is not a
    pipeline column (a rename: ``columns: {first_treat_file: "first.treat"}``), or (b) a
    stage will use it: its name (a safe identifier, not mapped, not a pipeline name) appears
    in the ``estimate`` section — outcomes, covariates, variants, ``vcov.by``, any estimator's
    options (``matching.exact``, ``heterogeneity.by``, placebo outcomes ...), the default
    options of the estimators run included — or is ``data.membership.from_panel``. Nothing
    else is read (column pruning). Outcomes and covariates must be numeric (text in them is
    exit 2, as for mapped numeric columns); the others are numbers when every cell parses as
    one, else text. A file column whose name is not a safe identifier is never used under its
    own name: rename it under ``columns:`` (a params name that is not safe is exit 5, with the
    rename suggested)."""
    est = params["estimate"]
    extra: dict[str, str] = {p: f for p, f in cols.items() if p not in PANEL_FIELDS}
    mapped_files = {f for p, f in cols.items()}
    taken = set(PANEL_FIELDS) | set(RESERVED_COLUMNS) | set(derive) | set(extra)
    used: list[str] = list(_strings(est))
    keys = dict.fromkeys(k for o in (est.get("outcomes") or []) for k in estimators_for(params, o))
    for k in keys:
        try:
            used += list(_strings(estimator_options(params, k)))
        except ConfigError:
            pass
    header_set = set(header)
    problems = []
    for name in dict.fromkeys(used):
        if name in taken or name in mapped_files or name not in header_set or not SAFE_NAME.match(name):
            continue
        extra[name] = name
    clash = sorted(n for n in extra if n in derive)
    for n in clash:
        problems.append(f"columns.{n}: ingest derives an outcome of that name (ingest.derive); map your column under "
                        f"another name (e.g. {n}_file: {extra[n]!r}) or remove {n} from ingest.derive")
    if problems:
        raise ConfigError(f"{len(problems)} problem(s) in params.yaml for the ingest stage:", problems=problems)
    numeric = set()
    for n in list(est.get("outcomes") or []) + list(est.get("covariates") or []):
        numeric.add(n)
    for v in (est.get("variants") or {}).values():
        numeric.update((v or {}).get("covariates") or [])
    order = {c: i for i, c in enumerate(header)}
    extra = dict(sorted(extra.items(), key=lambda kv: (order.get(kv[1], len(order)), kv[0])))
    return extra, {n for n in extra if n in numeric}


# ------------------------------------------------------------------------------------------
# firms, pass 1: stream the file, check every row, spill the panel's rows into shards
# ------------------------------------------------------------------------------------------
_fmt = format_key


def keys_text(frame: pd.DataFrame, mask: np.ndarray, keys: tuple[str, ...] = ("firm_id", "year"), n: int = 5) -> str:
    """'(F001, 2010), (F002, 2011) (+3 more)' for the rows where ``mask`` is true."""
    pos = np.flatnonzero(mask)
    sub = frame.iloc[pos[:n]]
    shown = ["(" + ", ".join(_fmt(v) for v in row) + ")" for row in sub[list(keys)].itertuples(index=False)]
    return first_keys(shown + [""] * (len(pos) - len(shown)), n) if len(pos) > n else ", ".join(shown)


def _count_text(count: int, shown: list[str]) -> str:
    """:func:`keys_text` from the count and the first keys already formatted."""
    return ", ".join(shown[:N_KEYS]) + (f" (+{count - N_KEYS} more)" if count > N_KEYS else "")


@dataclass
class _Tally:
    """Rows with one problem: how many, the first keys (formatted; in pass 2 with their file
    position, to merge shards in file order) and the first example values."""

    count: int = 0
    keys: list = field(default_factory=list)
    examples: list[str] = field(default_factory=list)

    def add(self, frame: pd.DataFrame, mask: np.ndarray, values: np.ndarray | None = None, pos: np.ndarray | None = None) -> None:
        k = int(mask.sum())
        if not k:
            return
        if len(self.keys) < N_KEYS:
            rows = np.flatnonzero(mask)[: N_KEYS - len(self.keys)]
            shown = key_tuples(frame.iloc[rows], ["firm_id", "year"])
            self.keys.extend(shown if pos is None else zip(pos[rows].tolist(), shown))
        if values is not None and len(self.examples) < 3:
            self.examples.extend(_fmt(x) for x in values[mask][: 3 - len(self.examples)])
        self.count += k

    def merge(self, other: "_Tally") -> None:
        self.count += other.count
        self.keys = sorted(self.keys + other.keys)[:N_KEYS]

    def text(self) -> str:
        shown = [k if isinstance(k, str) else k[1] for k in self.keys]
        return _count_text(self.count, shown)


class _FirmFile:
    """Pass 1 over the firm file (module docstring, steps 1 and 2): every row checked in file
    order, the rows that can enter the panel spilled into shards under ``tmp``."""

    def __init__(self, params: Params, cols: dict[str, str], ing: dict[str, Any], tmp: Path, derive: list[str] = ()) -> None:
        spec = params["data"]["firms"]
        path = params.resolve(spec["path"])
        header = read_header(path, spec, role="firms", label=spec["path"])
        extra, must_be_numeric = passthrough_plan(params, cols, header, list(derive))
        self.extra = extra
        cols = {**{p: f for p, f in cols.items() if p in PANEL_FIELDS}, **extra}
        self.cols, self.ing, self.tmp = cols, ing, tmp
        self.order = [p for p in PANEL_FIELDS if p in cols] + list(extra)
        # pass-through columns typed by their values (numbers if every cell is one, else text)
        self.flex = [p for p in extra if p not in must_be_numeric]
        self.numeric_fields = [p for p in self.order if p not in TEXT_FIELDS and p not in self.flex]
        self.num_opts = {k: spec.get(k) for k in ("decimal", "thousands", "na_values")}
        self.member_col = (params["data"].get("membership") or {}).get("from_panel")
        numeric = [cols[p] for p in self.numeric_fields]
        text = [f for p, f in cols.items() if p in TEXT_FIELDS]
        wanted = list(cols.values()) + ([self.member_col] if self.member_col else [])
        if self.member_col and self.member_col not in numeric:
            text.append(self.member_col)
        self.stream = open_table(
            path, spec, role="firms", columns=list(dict.fromkeys(wanted)),
            numeric=numeric, text=text, label=spec["path"],
        )
        self.label, self.format = self.stream.label, self.stream.format
        with step(f"ingest: read and check {self.label}"):
            while True:
                try:
                    self._read()
                    break
                except RestartRead:  # text in a numeric column: read again as text, recording every cell
                    continue
        note(f"ingest: {self.n_in} rows in {self.label}; {self.n_rows} rows of {len(self.firm_rows)} firms can enter the panel")
        self._split()

    # -- the pass ---------------------------------------------------------------------------
    def _read(self) -> None:
        self.n_in = 0
        self.fid_missing = 0
        self.fid_rows: list[str] = []
        self.checks: dict[tuple[str, str], _Tally] = {}
        self.issue_keys: dict[str, list[str]] = {}
        self.flex_text: set[str] = set()  # pass-through columns with a cell that is not a number
        self.flex_inf: dict[str, _Tally] = {}
        self.outside = 0
        self.year_seen: tuple[float, float] | None = None  # finite years of all rows
        self.year_kept: tuple[float, float] | None = None  # years of the spilled rows
        self.n_rows = 0
        ids: list[pa.Array] = []
        counts: list[pa.Array] = []
        n_ids = 0
        self.spill = self.tmp / "rows.arrow"
        self.spill.unlink(missing_ok=True)
        writer = None
        shown = time.perf_counter()
        try:
            for block in self.stream.blocks():
                if time.perf_counter() - shown > 10:
                    note(f"ingest: {block.offset} rows of {self.label} read")
                    shown = time.perf_counter()
                df = pd.DataFrame({p: block.frame[self.cols[p]].array for p in self.order}, copy=False)
                if self.flex or self.member_col:
                    df = self._flex(block, df)
                keep = self._check(block, df)
                self.n_in += len(df)
                part = df.loc[keep] if not keep.all() else df
                part = part.assign(_row=np.flatnonzero(keep) + block.offset)
                table = pa.Table.from_pandas(part, preserve_index=False)
                if writer is None:
                    schema = table.schema
                    writer = pa.ipc.new_file(str(self.spill), schema)
                writer.write_table(table.cast(schema))
                self.n_rows += len(part)
                if len(part):
                    vc = pc.value_counts(table.column("firm_id"))
                    ids.append(vc.field("values"))
                    counts.append(vc.field("counts"))
                    n_ids += len(vc)
                    if n_ids > 4 * SHARD_ROWS:  # a file not sorted by firm: fold the counts now and then
                        folded = _fold_counts(ids, counts)
                        ids, counts, n_ids = [folded[0]], [folded[1]], len(folded[0])
        finally:
            if writer is not None:
                writer.close()
        if ids:
            self.firm_ids_all, self.firm_rows = _fold_counts(ids, counts)
        else:
            self.firm_ids_all, self.firm_rows = pa.array([], pa.large_string()), pa.array([], pa.int64())
        for p in self.flex:  # infinite values of a pass-through column that is numeric
            if p not in self.flex_text and p in self.flex_inf:
                self.checks[(p, "inf")] = self.flex_inf[p]

    def _flex(self, block: Block, df: pd.DataFrame) -> pd.DataFrame:
        """A pass-through column typed by its values: the block's cells as text (trimmed) and
        as numbers (``NUM`` + name); whether every cell of the file is a number is decided
        when the whole file was read (one text cell: the column is text)."""
        for p in self.flex:
            raw = block.frame[self.cols[p]]
            vals, issue = to_numeric(raw, self.num_opts, self.cols[p])
            if issue is not None:
                self.flex_text.add(p)
            df[p] = clean_text(raw).array
            df[NUM + p] = vals
            if p not in self.flex_text:
                inf = np.isinf(vals)
                if inf.any():
                    self.flex_inf.setdefault(p, _Tally()).add(df, inf)
        if self.member_col:
            df[MEMBER] = clean_text(block.frame[self.member_col]).array
        return df

    def labels(self) -> dict[str, dict[str, str]]:
        if self.format not in ("dta", "xlsx"):
            return {}
        from .readers import table_labels

        want = {p: self.cols[p] for p in ("sector", "region") if p in self.cols}
        return table_labels(self.stream.path, self.stream.options, want) if want else {}

    def flex_numeric(self) -> list[str]:
        return [p for p in self.flex if p not in self.flex_text]

    def passthrough_flow(self) -> dict[str, Any]:
        """The pass-through columns for the sample flow: file column and type."""
        num = set(self.numeric_fields)
        return {p: {"column": f, "type": "number" if p in num or p in self.flex_numeric() else "text"} for p, f in self.extra.items()}

    def _check(self, block: Block, df: pd.DataFrame) -> np.ndarray:
        """The per-row checks of one block; returns the rows that can enter the panel."""
        n = len(df)
        off = block.offset
        for c, issue in self.stream.issues.items():  # the keys of the first rows with text in numeric columns
            shown = self.issue_keys.setdefault(c, [])
            if len(shown) < len(issue.rows) and c in block.bad:
                rows = [r - off for r in issue.rows[len(shown):] if off <= r < off + n]
                shown.extend(key_tuples(df.iloc[rows], ["firm_id", "year"]))
        fid_missing = df["firm_id"].isna().to_numpy()
        year = df["year"].to_numpy(dtype=np.float64)
        if fid_missing.any():
            rows = np.flatnonzero(fid_missing)
            room = N_KEYS - len(self.fid_rows)
            self.fid_rows.extend(f"{off + r + 1} ({_fmt(year[r])})" for r in rows[:max(room, 0)])
            self.fid_missing += len(rows)
        parse_bad = np.zeros(n, bool)
        if self.cols["year"] in block.bad:
            parse_bad[block.bad[self.cols["year"]]] = True
        self._tally(("year", "missing"), df, np.isnan(year) & ~parse_bad)
        for p in INTEGER_FIELDS:
            if p in df:
                v = df[p].to_numpy(dtype=np.float64)
                with np.errstate(invalid="ignore"):
                    frac = np.isfinite(v) & (np.floor(v) != v)
                self._tally((p, "fraction"), df, frac, v)
        for p in self.numeric_fields:
            v = df[p].to_numpy(dtype=np.float64)
            self._tally((p, "inf"), df, np.isinf(v))
            if p in NONNEGATIVE:
                self._tally((p, "negative"), df, v < 0, v)
        finite = np.isfinite(year)
        if finite.any():
            lo, hi = float(year[finite].min()), float(year[finite].max())
            self.year_seen = (lo, hi) if self.year_seen is None else (min(lo, self.year_seen[0]), max(hi, self.year_seen[1]))
        keep = ~fid_missing & finite
        yrs = self.ing.get("years")
        if yrs:
            outside = keep & ((year < yrs[0]) | (year > yrs[1]))
            self.outside += int(outside.sum())
            keep &= ~outside
        if keep.any():
            lo, hi = float(year[keep].min()), float(year[keep].max())
            self.year_kept = (lo, hi) if self.year_kept is None else (min(lo, self.year_kept[0]), max(hi, self.year_kept[1]))
        return keep

    def _tally(self, name: tuple[str, str], df: pd.DataFrame, mask: np.ndarray, values: np.ndarray | None = None) -> None:
        if mask.any():
            self.checks.setdefault(name, _Tally()).add(df, mask, values)

    def year_range(self) -> tuple[int, int] | None:
        """Whole years the kept panel can have (its years truncated, as the panel stores them)."""
        if self.year_kept is None:
            return None
        return int(np.int64(self.year_kept[0])), int(np.int64(self.year_kept[1]))

    # -- the shards ---------------------------------------------------------------------------
    def _split(self) -> None:
        """Cut the sorted firm ids into contiguous ranges of about SHARD_ROWS rows and split
        the spilled rows into one file per range (one range: the spill is the shard)."""
        self.shards: list[Path] = []
        if not self.spill.exists():  # no block at all (a header-only file)
            return
        n_shards = max(1, math.ceil(self.n_rows / SHARD_ROWS))
        if n_shards == 1:
            self.shards = [self.spill]
            return
        order = pc.sort_indices(self.firm_ids_all)
        ids = self.firm_ids_all.take(order)
        rows = self.firm_rows.take(order).to_numpy()
        which = (np.cumsum(rows) - rows) * n_shards // self.n_rows  # the shard of each firm, non-decreasing
        starts = np.flatnonzero(np.diff(which)) + 1
        bounds = [ids[int(i)].as_py() for i in starts]  # first firm id of shards 2, 3, ...
        paths = [self.tmp / f"shard-{k:04d}.arrow" for k in range(len(bounds) + 1)]
        with step(f"ingest: split {self.n_rows} rows into {len(paths)} shards of about {SHARD_ROWS} rows"):
            with pa.OSFile(str(self.spill), "rb") as src:
                reader = pa.ipc.open_file(src)
                writers = [pa.ipc.new_file(str(p), reader.schema) for p in paths]
                try:
                    for i in range(reader.num_record_batches):
                        batch = reader.get_batch(i)
                        for k, part in _split_batch(batch, bounds):
                            writers[k].write_batch(part)
                finally:
                    for w in writers:
                        w.close()
            self.spill.unlink()
        self.shards = paths

    # -- the messages -------------------------------------------------------------------------
    def problems(self) -> list[str]:
        """The problems found row by row, in the order (and words) of a whole-file read."""
        cols, label = self.cols, self.label
        out: list[str] = []

        def where(p: str) -> str:
            return f"{label}, column '{cols[p]}'" + (f" ({p})" if cols[p] != p else "")

        if self.n_in == 0:
            out.append(f"{label}: no data rows (only a header); nothing to analyse")
        for c, issue in self.stream.issues.items():
            out.append(describe_issue(self.stream, issue, keys=[cols["firm_id"], cols["year"]], shown=self.issue_keys.get(c, [])))
        if self.fid_missing:
            out.append(
                f"{where('firm_id')}: {self.fid_missing} row(s) without a firm id; first data rows (year): "
                + ", ".join(self.fid_rows)
                + ". Fix: fill in the firm id or delete these rows"
            )
        t = self.checks.get(("year", "missing"))
        if t:
            out.append(
                f"{where('year')}: {t.count} row(s) without a year; first keys (firm_id, year): "
                f"{t.text()}. Fix: fill in the year or delete these rows"
            )
        for p in INTEGER_FIELDS:
            t = self.checks.get((p, "fraction"))
            if t:
                out.append(
                    f"{where(p)}: {t.count} non-integer value(s) (e.g. {', '.join(t.examples)}); first keys "
                    f"(firm_id, year): {t.text()}. Fix: {p} must be a whole calendar year"
                )
        for p in self.order:
            t = self.checks.get((p, "inf"))
            if t:
                out.append(
                    f"{where(p)}: {t.count} infinite value(s); first keys (firm_id, year): {t.text()}. "
                    "Fix: replace them by the true value or leave the cell empty (missing)"
                )
            t = self.checks.get((p, "negative"))
            if t:
                out.append(
                    f"{where(p)}: {t.count} negative value(s) (e.g. {', '.join(t.examples)}), impossible for "
                    f"{p}; first keys (firm_id, year): {t.text()}. Fix: correct them or leave the cells empty (missing)"
                )
        return out


def _split_batch(batch: pa.RecordBatch, bounds: list[str]) -> Iterator[tuple[int, pa.RecordBatch]]:
    """The rows of ``batch`` for each shard ``k`` (shard k + 1 starts at firm id
    ``bounds[k]``), in file order within a shard."""
    n = batch.num_rows
    if not n:
        return
    fid = batch.column(batch.schema.get_field_index("firm_id"))
    if n == 1 or pc.all(pc.greater_equal(fid.slice(1), fid.slice(0, n - 1))).as_py():
        # sorted by firm id (the usual layout of a firm panel): cut at the bounds
        cuts = [0]
        for b in bounds:
            lo, hi = cuts[-1], n
            while lo < hi:  # the first row >= b
                mid = (lo + hi) // 2
                if fid[mid].as_py() < b:
                    lo = mid + 1
                else:
                    hi = mid
            cuts.append(lo)
        cuts.append(n)
        for k in range(len(cuts) - 1):
            if cuts[k + 1] > cuts[k]:
                yield k, batch.slice(cuts[k], cuts[k + 1] - cuts[k])
        return
    shard = np.zeros(n, np.int64)
    for b in bounds:
        shard += pc.greater_equal(fid, pa.scalar(b, fid.type)).to_numpy(zero_copy_only=False)
    order = np.argsort(shard, kind="stable")
    part = batch.take(pa.array(order))
    ends = np.cumsum(np.bincount(shard, minlength=len(bounds) + 1))
    for k in range(len(bounds) + 1):
        a = int(ends[k - 1]) if k else 0
        if ends[k] > a:
            yield k, part.slice(a, int(ends[k]) - a)


def _fold_counts(ids: list[pa.Array], counts: list[pa.Array]) -> tuple[pa.Array, pa.Array]:
    """Distinct firm ids and their rows, summed over the parts."""
    t = pa.table({"id": pa.chunked_array(ids), "n": pa.chunked_array(counts)}).group_by("id").aggregate([("n", "sum")])
    return t.column("id").combine_chunks(), t.column("n_sum").combine_chunks()


def _read_arrow(path: Path) -> pd.DataFrame:
    """A temporary Arrow file as the DataFrame that was written (dtypes restored)."""
    with pa.OSFile(str(path), "rb") as f:
        table = pa.ipc.open_file(f).read_all()
    return table.to_pandas(split_blocks=True, self_destruct=True)


@contextmanager
def _spill_dir(panel_path: Path | None) -> Iterator[Path]:
    """A temporary folder for the shards, removed at the end and on any error: hidden beside
    ``panel_path`` (the same disk as the output; a later run's commit also removes one left by
    a killed run), else in the system temp folder."""
    if panel_path is None:
        d = tempfile.mkdtemp(prefix="cluster-impact-ingest-")
    else:
        name = panel_path.name if panel_path.name.startswith(".") else "." + panel_path.name
        panel_path.parent.mkdir(parents=True, exist_ok=True)
        d = tempfile.mkdtemp(prefix=f"{name}.shards.", suffix=".tmp", dir=panel_path.parent)
    try:
        yield Path(d)
    finally:
        shutil.rmtree(d, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# firms, pass 2: per shard, in firm order
# ------------------------------------------------------------------------------------------
class _Shards:
    """Pass 2 over the shards (module docstring, steps 3-5): duplicates, log policy, sorting,
    deflation and derived outcomes per shard; the problems' tallies merged across shards."""

    def __init__(self, params: Params, cols, ing, derive: list[str], firms: _FirmFile, defl: "_Deflators", sink: "_PanelSink", tmp: Path) -> None:
        self.params, self.cols, self.ing, self.derive = params, cols, ing, derive
        self.firms, self.defl, self.sink, self.tmp = firms, defl, sink, tmp
        self.order = firms.order
        self.policy_cols = [c for c in outcomes.POLICY_COLUMNS if any(c in outcomes.REGISTRY[d].positive for d in derive)]
        self.drop_names = list(ing["derive"] or []) if ing.get("drop_missing_outcomes") else []
        self.want_tfp = "log_tfp" in (ing.get("derive") or [])
        # tallies over all shards
        self.n_kept = 0
        self.exact = 0
        self.nonpositive = {c: 0 for c in self.policy_cols}
        self.fail = {c: _Tally() for c in self.policy_cols}
        self.conflict = _Tally()
        self.conflict_rows = 0
        self.differ: set[str] = set()
        self.ids: list[pd.Index] = []
        self.sectors: dict[str, None] = {}
        self.gap_rows = 0
        self.gap_cells: list[pd.DataFrame] = []
        self.no_sector = 0
        # the output, while no problem is known
        self.info: dict[str, Any] | None = None
        self.missing_outcome = {n: 0 for n in self.drop_names}
        self.tfp_parts: list[pd.DataFrame] = []
        self.derived: list[Path] = []
        self.code_base = 0
        self.member_spells: list[pd.DataFrame] = []  # data.membership.from_panel

    def run(self) -> None:
        fr = self.firms
        if fr.year_kept is not None:
            self.ymin = fr.year_kept[0]
            self.span = int(fr.year_kept[1] - fr.year_kept[0]) + 1
        for k, path in enumerate(fr.shards):
            t0 = time.perf_counter()
            df = _read_arrow(path)
            path.unlink()
            n = len(df)
            self._shard(df, k)
            note(f"ingest: shard {k + 1}/{len(fr.shards)} ({n} rows) done in {time.perf_counter() - t0:.1f}s")

    def live(self) -> bool:
        """No problem known yet: the finished rows may go to the output."""
        return not (self.firms.checks or self.firms.fid_missing or self.firms.stream.issues or not self.firms.n_in
                    or self.defl.problems or self.conflict.count or any(t.count for t in self.fail.values()) or self.gap_rows)

    def _shard(self, df: pd.DataFrame, k: int) -> None:
        pos = df["_row"].to_numpy()
        df = df.drop(columns="_row")
        fr = self.firms
        if fr.flex:  # pass-through columns: numbers if every cell of the file was one, else text
            nums = set(fr.flex_numeric())
            for p in fr.flex:
                if p in nums:
                    df[p] = df[NUM + p]
            df = df.drop(columns=[NUM + p for p in fr.flex])
        n = len(df)
        keep = np.ones(n, bool)
        codes, uniques = pd.factorize(df["firm_id"], sort=True)
        codes = codes.astype(np.int64)
        # duplicate firm-years (the year key as a whole-file read makes it, non-integer years too)
        if n:
            year = df["year"].to_numpy(dtype=np.float64)
            key = codes * self.span + (year - self.ymin).astype(np.int64)
            dup = pd.Series(key).duplicated(keep=False).to_numpy()
            if dup.any():
                sub = df.loc[dup].assign(_key=key[dup])
                exact = sub.duplicated(keep="first").to_numpy()
                exact_pos = np.flatnonzero(dup)[exact]
                self.exact += len(exact_pos)
                keep[exact_pos] = False
                rest = sub.loc[~exact]
                conflict = rest["_key"].duplicated(keep=False).to_numpy()
                if conflict.any():
                    conf = rest.loc[conflict]
                    self.differ |= {p for p in self.order if p not in ("firm_id", "year") and conf.groupby("_key")[p].nunique(dropna=False).gt(1).any()}
                    first = conf.drop_duplicates("_key")
                    part = _Tally()
                    part.add(first.reset_index(drop=True), np.ones(len(first), bool), pos=pos[first.index.to_numpy()])
                    self.conflict.merge(part)
                    self.conflict_rows += len(conf)
        if fr.member_col:  # data.membership.from_panel: the shard's spells (all its firms are whole in it)
            self.member_spells.append(spells_from_panel(df["firm_id"].to_numpy()[keep], codes[keep],
                                                        df["year"].to_numpy(dtype=np.float64)[keep], df[MEMBER].to_numpy()[keep]))
            df = df.drop(columns=MEMBER)
        # logs / ratios of non-positive value added or employment
        for c in self.policy_cols:
            v = df[c].to_numpy(dtype=np.float64)
            nonpos = keep & (v <= 0)
            if self.ing["log_nonpositive"] == "drop":
                self.nonpositive[c] += int(nonpos.sum())
                keep &= ~nonpos
            elif nonpos.any():
                part = _Tally()
                part.add(df, nonpos, pos=pos)
                self.fail[c].merge(part)
        # sort by (firm_id, year): the shard's firm codes are sorted, the shards are in firm order
        panel = df.loc[keep] if not keep.all() else df
        fcodes = codes[keep]
        yr = panel["year"].to_numpy(dtype=np.float64).astype(np.int64)
        if len(panel):
            skey = fcodes * (int(yr.max() - yr.min()) + 1) + (yr - yr.min())
            if not (np.diff(skey) > 0).all():
                order = np.argsort(skey, kind="stable")
                panel = panel.iloc[order]
                fcodes = fcodes[order]
                yr = yr[order]
        panel = panel.reset_index(drop=True)
        panel["year"] = yr
        if "founding_year" in panel:
            fy = panel["founding_year"].to_numpy(dtype=np.float64)
            panel["founding_year"] = pd.arrays.IntegerArray(np.nan_to_num(fy).astype(np.int64), np.isnan(fy))
        self.n_kept += len(panel)
        self.ids.append(uniques.take(fcodes[np.r_[True, fcodes[1:] != fcodes[:-1]]] if len(fcodes) else fcodes))  # fcodes are sorted
        # deflators: the panel's sector-years looked up, gaps counted
        defl_row = None
        if self.defl.usable:
            for s in panel["sector"].dropna().unique():
                self.sectors.setdefault(s, None)
            defl_row, has_sec = self.defl.lookup(panel)
            gap = has_sec & np.isnan(defl_row)
            if gap.any():
                self.gap_rows += int(gap.sum())
                self.gap_cells.append(pd.DataFrame({"sector": panel["sector"].to_numpy()[gap], "year": yr[gap]}).drop_duplicates())
            self.no_sector += int((~has_sec).sum())
        if not self.live():
            self.info, self.tfp_parts, self.derived = None, [], []
            self.sink.discard()
            return
        out, info = _derive(panel, fcodes, defl_row, self.derive, self.cols)
        self._add_info(info)
        if self.want_tfp:  # log_tfp needs all rows: keep the inputs, and the shard on disk until then
            self.tfp_parts.append(_tfp_inputs(panel, defl_row, fcodes + self.code_base, (self.ing.get("tfp") or {}).get("by")))
            path = self.tmp / f"derived-{k:04d}.arrow"
            table = pa.Table.from_pandas(out, preserve_index=False)
            with pa.ipc.new_file(str(path), table.schema) as w:
                w.write_table(table)
            self.derived.append(path)
        else:
            self._emit(out)
        self.code_base += len(uniques)

    def _add_info(self, info: dict[str, Any]) -> None:
        if self.info is None:
            self.info = info
            return
        for name, entry in info.items():
            total = self.info[name]
            total["n_missing"] += entry["n_missing"]
            total["n_rows"] += entry["n_rows"]
            for cause, n in entry.get("missing_because", {}).items():
                total["missing_because"][cause] += n

    def _emit(self, panel: pd.DataFrame) -> None:
        if self.drop_names:
            panel, dropped = _drop_missing(panel, self.drop_names)
            for n, c in dropped.items():
                self.missing_outcome[n] += c
        self.sink.add(panel)

    def excluded(self) -> dict[str, int]:
        excluded: dict[str, int] = {}
        if self.ing.get("years"):
            excluded["outside_window"] = self.firms.outside
        excluded["exact_duplicate"] = self.exact
        if self.ing["log_nonpositive"] == "drop":
            for c in self.policy_cols:
                excluded[f"nonpositive_for_log:{c}"] = self.nonpositive[c]
        return excluded

    def problems(self) -> list[str]:
        """The problems found across shards (duplicates, log policy, nothing left)."""
        cols, label = self.cols, self.firms.label
        out: list[str] = []
        if self.conflict.count:
            differ = [p for p in self.order if p in self.differ]
            out.append(
                f"{label}: {self.conflict.count} firm-year(s) appear more than once with different values (conflicting duplicates, "
                f"{self.conflict_rows} rows; differing column(s): {', '.join(cols[p] for p in differ)}); first keys (firm_id, year): "
                f"{self.conflict.text()}. Fix: keep one row per firm and year (exact copies are "
                "dropped automatically)"
            )
        for c in self.policy_cols:
            t = self.fail[c]
            if t.count:
                users = [d for d in self.derive if c in outcomes.REGISTRY[d].positive]
                where = f"{label}, column '{cols[c]}'" + (f" ({c})" if cols[c] != c else "")
                out.append(
                    f"{where}: {t.count} row(s) with {c} <= 0, which {', '.join(users)} cannot use (log or per-employee "
                    f"ratio); first keys (firm_id, year): {t.text()}. Fix: set ingest.log_nonpositive: drop (the "
                    "rows are excluded and counted), correct the values, or remove those outcomes from ingest.derive"
                )
        fr = self.firms
        if fr.n_in and not self.n_kept and not out and not fr.problems():
            excluded = self.excluded()
            span = f"{int(fr.year_seen[0])}-{int(fr.year_seen[1])}" if fr.year_seen is not None else "none"
            out.append(
                f"{label}: no rows left after the exclusions ({', '.join(f'{k}: {v}' for k, v in excluded.items() if v)}); the file's "
                f"years are {span}, ingest.years is {self.ing.get('years')}. Fix: set ingest.years to the years of your panel (or null for all)"
            )
        return out

    def firm_ids(self) -> pd.Index:
        """The kept panel's firm ids, sorted (the shards are in firm order)."""
        if not self.ids:
            return pd.Index(pd.array([], dtype="str"))
        return self.ids[0].append(self.ids[1:]) if len(self.ids) > 1 else self.ids[0]

    def finish(self) -> dict[str, Any]:
        """After all checks passed: ``log_tfp`` (estimated over all rows, then added shard by
        shard); returns the derived outcomes' flow."""
        info = self.info or {}
        if self.want_tfp:
            parts = self.tfp_parts
            work = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
            self.tfp_parts = []
            with step(f"ingest: production function for log_tfp ({len(work)} rows)"):
                tfp, info["log_tfp"] = _estimate_tfp(work, self.ing.get("tfp") or {}, self.params.seed)
            del work
            start = 0
            for k, path in enumerate(self.derived):
                t0 = time.perf_counter()
                out = _read_arrow(path)
                path.unlink()
                out["log_tfp"] = tfp[start : start + len(out)]
                start += len(out)
                self._emit(out)
                note(f"ingest: log_tfp into shard {k + 1}/{len(self.derived)} ({len(out)} rows) in {time.perf_counter() - t0:.1f}s")
        return info

    def flow(self) -> dict[str, Any]:
        excluded = self.excluded()
        for n, c in self.missing_outcome.items():
            excluded[f"missing_outcome:{n}"] = c
        return {"file": self.firms.label, "format": self.firms.format, "rows_in": self.firms.n_in, "rows_kept": self.sink.rows,
                "excluded": excluded}


class _PanelSink:
    """Where the finished shards go: appended to the Parquet file ``path`` (by a writer thread,
    so that compressing one shard overlaps computing the next; one shard waits at most) or,
    without a path, collected and concatenated. ``discard`` drops the frames collected so far
    (a problem was found; a file is removed by the caller)."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.frames: list[pd.DataFrame] = []
        self.writer: ParquetAppender | None = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ingest-writer") if path is not None else None
        self._pending: Future | None = None
        self.rows = self.n_firms = 0
        self.year_min = self.year_max = None

    def add(self, panel: pd.DataFrame) -> None:
        self.rows += len(panel)
        if len(panel):
            self.n_firms += int(panel["firm_id"].nunique())
            lo, hi = int(panel["year"].min()), int(panel["year"].max())
            self.year_min = lo if self.year_min is None else min(lo, self.year_min)
            self.year_max = hi if self.year_max is None else max(hi, self.year_max)
        if self.path is None:
            self.frames.append(panel)
            return
        table = frame_table(panel)
        if self.writer is None:
            self.writer = ParquetAppender(self.path, table.schema)
        self._wait()
        self._pending = self._pool.submit(self.writer.append, table)

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()  # re-raises the writer's error

    def discard(self) -> None:
        self.frames = []

    def close(self) -> pd.DataFrame | None:
        if self.path is not None:
            self._wait()
            if self.writer is not None:
                self.writer.close()
            return None
        if len(self.frames) == 1:
            return self.frames[0]
        return pd.concat(self.frames, ignore_index=True)

    def abort(self) -> None:
        """Stop the writer thread and close the file (after close(): nothing left to do)."""
        if self._pool is None:
            return
        try:
            self._wait()
        except Exception:
            pass
        finally:
            self._pool.shutdown(wait=True)
            if self.writer is not None:
                self.writer.abort()


# ------------------------------------------------------------------------------------------
# deflators
# ------------------------------------------------------------------------------------------
class _Deflators:
    """The deflators file, read and checked on its own; ``lookup`` gives each panel row its
    sector-year deflator (shard by shard) and ``panel_problems`` the checks that need the
    whole panel (sector codes that match only without leading zeros, missing sector-years).

    ``usable``: the panel is deflated (a deflated outcome is requested and the file is fine)."""

    def __init__(self, params: Params, cols, derive: list[str], notes: list[str], years: tuple[int, int] | None) -> None:
        deflated = [d for d in derive if outcomes.REGISTRY[d].deflated]
        self.problems: list[str] = []
        self.flow: dict[str, Any] | None = None
        self.usable = False
        self.firms_label = params["data"]["firms"]["path"]
        spec = params["data"].get("deflators")
        if spec is None:
            if deflated:
                notes.append(
                    f"no deflator file (data.deflators: null): {', '.join(deflated)} use NOMINAL value added; give sector "
                    "price indices to make them real"
                )
            return
        label = self.label = spec["path"]
        problems = self.problems
        table = load_table(params.resolve(spec["path"]), spec, role="deflators", label=label)
        raw = table.frame
        sec_col = next((c for c in (cols.get("sector"), "sector") if c and c in raw.columns), None)
        yr_col = next((c for c in (cols["year"], "year") if c in raw.columns), None)
        missing = [n for n, c in (("sector", sec_col), ("year", yr_col), ("deflator", "deflator" if "deflator" in raw.columns else None)) if c is None]
        flow = self.flow = {"file": label, "format": table.format, "rows_in": len(raw), "rows_kept": len(raw), "excluded": {"exact_duplicate": 0}}
        if missing:
            problems.append(
                f"{label}: column(s) {', '.join(missing)} not found (the file has: {', '.join(map(str, raw.columns))}); the "
                f"deflators file needs {cols.get('sector', 'sector')!r} (or 'sector'), {cols['year']!r} (or 'year') and 'deflator'"
            )
            return
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
        self.d = d
        self.usable = bool(deflated) and not problems and years is not None
        if not self.usable:
            return
        # a (sector x year) grid over the years the panel can have: row i of the file sets
        # cell (sector, int(year)) in file order, as a grid over the panel's years would
        dsec, sectors = pd.factorize(d["sector"])
        self.sector_set = pa.array(sectors, type=pa.large_string(), from_pandas=True)
        self.y0 = years[0]
        span = years[1] - years[0] + 1
        dyr = d["year"].to_numpy().astype(np.int64) - self.y0
        ok = (dyr >= 0) & (dyr < span)
        self.grid = np.full((len(sectors), span), np.nan)
        self.grid[dsec[ok], dyr[ok]] = d["deflator"].to_numpy()[ok]

    def lookup(self, panel: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Each row's deflator (NaN where the file lacks its sector-year) and whether it has a sector."""
        has_sec = panel["sector"].notna().to_numpy()
        sector = pa.array(panel["sector"], type=pa.large_string(), from_pandas=True)
        sec = pc.fill_null(pc.index_in(sector, value_set=self.sector_set), -1).to_numpy(zero_copy_only=False)
        row = np.full(len(panel), np.nan)
        hit = sec >= 0
        row[hit] = self.grid[sec[hit], panel["year"].to_numpy()[hit] - self.y0]
        return row, has_sec

    def panel_problems(self, shards: "_Shards", notes: list[str]) -> list[str]:
        if not self.usable or not shards.n_kept:
            return []
        clash = id_format_clash(pd.Index(list(shards.sectors)), pd.Index(self.d["sector"].unique()))
        if clash:
            n, ex = clash
            return [
                f"{self.label} vs {self.firms_label}: {n} sector code(s) match only after removing leading zeros "
                f"(e.g. {ex}); one file stored the codes as numbers. Fix: write sector codes as text with the same padding in both files"
            ]
        out = []
        if shards.gap_rows:
            cells = pd.concat(shards.gap_cells, ignore_index=True).drop_duplicates().sort_values(["sector", "year"])
            out.append(
                f"{self.label}: {len(cells)} sector-year(s) of the firm panel have no deflator ({shards.gap_rows} firm-years); first "
                f"(sector, year): {keys_text(cells, np.ones(len(cells), bool), ('sector', 'year'))}. Fix: add these rows to the "
                "deflators file (or set data.deflators: null for nominal values)"
            )
        if shards.no_sector:
            notes.append(f"{shards.no_sector} firm-year(s) without a sector: their real value-added outcomes are missing")
        return out


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


def case_clash(a: pd.Index, b: pd.Index) -> tuple[int, str] | None:
    """Ids of ``b`` absent from ``a`` that match an id of ``a`` when case is ignored ('f001' vs
    'F001'): ``(count, "'b-id' vs 'a-id', ...")`` or None."""
    a = pd.Index(a.dropna().astype("str")).unique()
    b = pd.Index(b.dropna().astype("str")).unique()
    only_b = b[~isin_text(b, a)]
    if not len(only_b):
        return None
    a_low = pd.Series(a, index=a.str.casefold())
    a_low = a_low[~a_low.index.duplicated()]
    b_low = only_b.str.casefold()
    hit = isin_text(b_low, a_low.index)
    if not hit.any():
        return None
    pairs = [f"'{bi}' vs '{a_low[bl]}'" for bi, bl in zip(only_b[hit][:5], b_low[hit][:5])]
    return int(hit.sum()), ", ".join(pairs)


def _first_ids(ids, n: int = N_KEYS) -> str:
    """'A, B, C (+7 more)' for a sequence of ids."""
    shown = [str(i) for i in ids[:n]]
    return ", ".join(shown) + (f" (+{len(ids) - n} more)" if len(ids) > n else "")


def register_oddities(m: pd.DataFrame) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Counts (and first firm ids) of what a register holds that build_groups resolves by
    rule, none of it merged: firms in several initiatives (build_groups takes the cluster of
    the first spell), firms with overlapping spells (two spells of one firm covering a common
    year, same or different initiative; the first join counts) and firms with several spells.
    ``m``: firm_id, cluster_id, join_year, leave_year (float, NaN = open)."""
    if not len(m):
        return {"firms": 0, "firms_in_several_initiatives": 0, "firms_with_overlapping_spells": 0,
                "overlapping_spell_pairs": 0, "firms_with_several_spells": 0}, {}
    d = m.sort_values(["firm_id", "join_year", "cluster_id"], kind="stable")
    fid = d["firm_id"].astype("str").to_numpy()
    n_clusters = d.groupby("firm_id", sort=True)["cluster_id"].nunique()
    several = n_clusters.index[n_clusters > 1]
    n_spells = d.groupby("firm_id", sort=True).size()
    # overlap: a spell starts while an earlier spell of the firm is still running
    join = d["join_year"].to_numpy(dtype=np.float64)
    leave = d["leave_year"].to_numpy(dtype=np.float64, na_value=np.nan)
    end = np.where(np.isnan(leave), np.inf, leave)
    same = np.r_[False, fid[1:] == fid[:-1]]
    run_end = pd.Series(end).groupby(fid).cummax().to_numpy()  # latest end of the spells so far
    prev_end = np.r_[-np.inf, run_end[:-1]]
    overlap = same & (join <= prev_end)
    ov_firms = pd.unique(fid[overlap])
    counts = {"firms": int(len(n_spells)), "firms_in_several_initiatives": int(len(several)),
              "firms_with_overlapping_spells": int(len(ov_firms)), "overlapping_spell_pairs": int(overlap.sum()),
              "firms_with_several_spells": int((n_spells > 1).sum())}
    first = {"firms_in_several_initiatives": [str(x) for x in several[:N_KEYS]],
             "firms_with_overlapping_spells": [str(x) for x in ov_firms[:N_KEYS]]}
    return counts, first


def _membership(params: Params, mcols: dict[str, str], firm_ids: pd.Index, firms_label: str, problems: list[str],
                panel_spells: list[pd.DataFrame] | None = None):
    spec = params["data"]["membership"]
    if spec.get("from_panel") is not None:
        return _membership_from_panel(spec, panel_spells or [], firm_ids, firms_label, problems)
    label = spec["path"]
    fcols = [mcols[f] for f in MEMBERSHIP_FIELDS]
    path = params.resolve(spec["path"])
    table = load_table(
        path,
        spec,
        role="membership",
        columns=list(dict.fromkeys(fcols)),
        text=[mcols["firm_id"], mcols["cluster_id"]],
        label=label,
    )
    raw = pd.DataFrame({f: table.frame[mcols[f]] for f in MEMBERSHIP_FIELDS})
    n_in = len(raw)
    flow: dict[str, Any] = {"file": label, "format": table.format, "rows_in": n_in, "rows_kept": 0, "excluded": {}}
    keys = ("firm_id", "cluster_id", "join_year")
    kt = "first keys (firm_id, cluster_id, join_year)"

    def where(f: str) -> str:
        return f"{label}, column '{mcols[f]}'" + (f" ({f})" if mcols[f] != f else "")

    for issue in table.issues.values():
        problems.append(describe_issue(table, issue, keys=[mcols[k] for k in keys]))
    if n_in == 0:
        problems.append(
            f"{label}: the register has no data rows (only a header), so no firm is a member and there is nothing to "
            f"evaluate. Fix: export the register with its spells (one row per firm x cluster spell: "
            f"{', '.join(mcols[f] for f in MEMBERSHIP_FIELDS)}), or point data.membership.path at the right file"
        )
    # join / leave: years or dates (pipeline.dates), then checked as years
    from .dates import join_shift, years_from_cells

    stata_td = _stata_td_columns(path) if table.format == "dta" else set()
    opts = {k: spec.get(k) for k in ("decimal", "thousands", "na_values")}

    def number(txt: pd.Series):
        vals, issue = to_numeric(txt, opts, "")
        bad = np.zeros(len(txt), bool)
        if issue is not None:
            bad[issue.positions] = True
        return vals, bad

    fmt = spec.get("date_format")
    cells = {
        f: years_from_cells(raw[f], date_format=fmt, after_month=join_shift(spec.get("join_rule")) if f == "join_year" else None,
                            stata_td=mcols[f] in stata_td, number=number)
        for f in ("join_year", "leave_year")
    }
    disp = pd.DataFrame({"firm_id": raw["firm_id"], "cluster_id": raw["cluster_id"],
                         "join_year": pd.Series([_cell(v) for v in raw["join_year"].to_numpy(dtype=object)], dtype=object)})
    m = pd.DataFrame({"firm_id": raw["firm_id"], "cluster_id": raw["cluster_id"],
                      "join_year": cells["join_year"].years, "leave_year": cells["leave_year"].years})
    for f in ("firm_id", "cluster_id"):
        miss = m[f].isna().to_numpy()
        if miss.any():
            problems.append(f"{where(f)}: {miss.sum()} spell(s) without {f}; {kt}: {keys_text(disp, miss, keys)}. Fix: fill it in or delete the rows")
    for f, c in cells.items():
        if c.bad.any():
            ex = ", ".join(repr(_cell(v)) for v in pd.unique(raw[f].to_numpy(dtype=object)[c.bad])[:3])
            problems.append(
                f"{where(f)}: {c.bad.sum()} value(s) are neither years nor dates (e.g. {ex}); {kt}: {keys_text(disp, c.bad, keys)}. "
                "Fix: give whole calendar years, ISO dates (2015-03-01) or dd.mm.yyyy dates, or declare how the dates are "
                "written as data.membership.date_format (a strftime pattern such as '%d/%m/%Y'; excel or stata for serial day "
                "numbers)"
            )
        if c.implausible.any():
            vals = raw[f].to_numpy(dtype=object)[c.implausible]
            ex = ", ".join(repr(_cell(v)) for v in pd.unique(vals)[:3])
            nums = pd.to_numeric(pd.Series(vals, dtype=object).astype("str"), errors="coerce")
            hint = ""
            if fmt is None and ((nums > 9999) & (nums < 2958466)).any():
                hint = (" Numbers such as these look like Excel serial dates (days since 1899-12-30): set "
                        "data.membership.date_format: excel (or stata for Stata %td days since 1960-01-01).")
            problems.append(
                f"{where(f)}: {c.implausible.sum()} value(s) are not plausible calendar years (outside 1000..9999: e.g. {ex}); "
                f"{kt}: {keys_text(disp, c.implausible, keys)}. Fix: correct them (a year such as 2015, or a date).{hint}"
            )
    j = np.where(cells["join_year"].implausible, np.nan, m["join_year"].to_numpy(dtype=np.float64))
    lv = np.where(cells["leave_year"].implausible, np.nan, m["leave_year"].to_numpy(dtype=np.float64))
    m["join_year"], m["leave_year"] = j, lv
    jbad = np.isnan(j) & ~cells["join_year"].bad & ~cells["join_year"].implausible
    if jbad.any():
        problems.append(f"{where('join_year')}: {jbad.sum()} spell(s) without a join year; {kt}: {keys_text(disp, jbad, keys)}. Fix: fill in the year the firm joined")
    for f, v in (("join_year", j), ("leave_year", lv)):
        with np.errstate(invalid="ignore"):
            frac = np.isfinite(v) & (np.floor(v) != v)
        if frac.any():
            problems.append(f"{where(f)}: {frac.sum()} non-integer year(s); {kt}: {keys_text(disp, frac, keys)}. Fix: give whole calendar years")
    with np.errstate(invalid="ignore"):
        order_bad = lv < j
    if order_bad.any():
        problems.append(
            f"{where('leave_year')}: {order_bad.sum()} spell(s) with leave_year < join_year; {kt}: {keys_text(disp, order_bad, keys)}. "
            "Fix: correct the years (leave_year is the last year of membership; blank = still a member)"
        )
    dates = {f: c.n_dates for f, c in cells.items()}
    if any(dates.values()):
        flow["dates"] = {"join_dates": dates["join_year"], "leave_dates": dates["leave_year"],
                         "join_rule": str(spec.get("join_rule") or "year_of_date"), "date_format": fmt}
    return _register_finish(m, flow, firm_ids, label, mcols["firm_id"], firms_label, problems)


def _cell(v: Any) -> str:
    """A register cell for messages (its text, '<missing>' when empty)."""
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT:
        return "<missing>"
    if isinstance(v, (float, np.floating)) and float(v).is_integer() and abs(v) < 1e15:
        return str(int(v))
    return str(v)


def _stata_td_columns(path: Path) -> set[str]:
    """Variables of a .dta file with a Stata daily-date display format (%td, %d)."""
    try:
        with pd.io.stata.StataReader(path, convert_categoricals=False) as rdr:
            rdr._ensure_open() if hasattr(rdr, "_ensure_open") else None
            names = list(rdr.variable_labels())
            fmts = list(getattr(rdr, "_fmtlist", []) or [])
    except Exception:
        return set()
    return {n for n, f in zip(names, fmts) if isinstance(f, str) and (f.startswith("%td") or f.startswith("%d"))}


def _register_finish(m: pd.DataFrame, flow: dict[str, Any], firm_ids: pd.Index, label: str, id_col: str, firms_label: str,
                     problems: list[str]):
    """The register's checks against the panel, its oddities, the harmonised table.
    ``m``: firm_id, cluster_id (text), join_year, leave_year (float years)."""
    excluded = {"exact_duplicate": 0, "not_in_panel": 0}
    exact = m.duplicated().to_numpy()
    excluded["exact_duplicate"] = int(exact.sum())
    m = m.loc[~exact]
    clash = id_format_clash(firm_ids, pd.Index(m["firm_id"]))
    if clash:
        n, ex = clash
        problems.append(
            f"{label}, column '{id_col}' vs {firms_label}: {n} firm id(s) match a firm of the panel only after removing "
            f"leading zeros (e.g. {ex}: register vs panel); one of the files stored ids as numbers. Fix: store firm ids as text "
            "with the same zero-padding in both files (in Excel: format the column as Text; in Stata: tostring with format)"
        )
    case = case_clash(firm_ids, pd.Index(m["firm_id"]))
    if case:  # they would silently become never-members (controls): refused, like zero-padding
        n, ex = case
        problems.append(
            f"{label}, column '{id_col}' vs {firms_label}: {n} firm id(s) of the register match a firm of the panel only when "
            f"upper and lower case are ignored (e.g. {ex}: register vs panel); they would be coded as never-members. "
            "Fix: write the ids with the same case in both files (ids are compared exactly)"
        )
    present = m["firm_id"].notna().to_numpy()
    absent = ~isin_text(m["firm_id"], firm_ids) & present
    excluded["not_in_panel"] = int(absent.sum())
    if present.any() and absent[present].all() and len(firm_ids) and not clash and not case:
        reg_ids = pd.unique(m["firm_id"].dropna().astype("str"))
        problems.append(
            f"{label}, column '{id_col}' vs {firms_label}: none of the register's {len(reg_ids)} firm id(s) is a firm id of the "
            f"panel (first register ids: {_first_ids(reg_ids)}; first panel ids: {_first_ids(firm_ids)}), "
            "so no firm would be a member. Fix: map membership_columns.firm_id (and columns.firm_id) to the columns that hold "
            "the same firm identifier, written the same way in both files"
        )
    odd_absent = pd.unique(m.loc[absent, "firm_id"].astype("str"))
    m = m.loc[~absent].reset_index(drop=True)
    counts, first = register_oddities(m)
    counts["firms_not_in_panel"] = int(len(odd_absent))
    first["firms_not_in_panel"] = [str(x) for x in odd_absent[:N_KEYS]]
    flow["register_checks"] = counts
    flow["register_check_first_ids"] = first
    flow["excluded"] = excluded
    if problems:
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
    flow["rows_kept"] = len(out)
    return out, flow


def register_notes(flow: dict[str, Any]) -> list[str]:
    """The register oddities as sentences for the sample-flow notes (and the report)."""
    c = (flow or {}).get("register_checks") or {}
    first = (flow or {}).get("register_check_first_ids") or {}
    out = []
    if c.get("firms_not_in_panel"):
        out.append(f"membership register: {c['firms_not_in_panel']} firm(s) are not in the panel (first: "
                   f"{_first_ids(first.get('firms_not_in_panel', []))}); their spells are excluded (not_in_panel)")
    if c.get("firms_in_several_initiatives"):
        out.append(f"membership register: {c['firms_in_several_initiatives']} firm(s) are in several cluster initiatives (first: "
                   f"{_first_ids(first.get('firms_in_several_initiatives', []))}); every spell is kept, a firm is treated from its "
                   "first join and attributed to the cluster of its first spell")
    if c.get("firms_with_overlapping_spells"):
        out.append(f"membership register: {c['firms_with_overlapping_spells']} firm(s) have overlapping spells "
                   f"({c['overlapping_spell_pairs']} spell(s) start while an earlier one runs; first: "
                   f"{_first_ids(first.get('firms_with_overlapping_spells', []))}); none is merged, the first join counts")
    return out


def spells_from_panel(fid: np.ndarray, codes: np.ndarray, year: np.ndarray, value: np.ndarray) -> pd.DataFrame:
    """``data.membership.from_panel``: one spell per contiguous run of membership of a firm
    in one cluster. ``value`` per firm-year: a cluster id, or 1 for a 0/1 indicator (the
    cluster id is then '1'); missing or 0 = not a member. A run is a sequence of the firm's
    consecutive *observed* years with the same value (a year the firm is absent from the
    panel does not break it); join_year = its first year, leave_year = its last year, blank
    when the run lasts to the firm's last observed year (still a member)."""
    empty = pd.DataFrame({"firm_id": pd.array([], dtype="str"), "cluster_id": pd.array([], dtype="str"),
                          "join_year": np.array([], float), "leave_year": np.array([], float), "left_censored": np.array([], bool)})
    if not len(fid):
        return empty
    order = np.lexsort((year, codes))
    c, y, f = codes[order], year[order], fid[order]
    v = pd.Series(value[order], dtype="str")
    member = (v.notna() & (v != "0")).to_numpy()
    vv = v.fillna("").to_numpy(dtype=object)
    new_firm = np.r_[True, c[1:] != c[:-1]]
    last_row = np.r_[c[1:] != c[:-1], True]
    same_prev = ~new_firm & np.r_[False, member[:-1]] & np.r_[False, vv[1:] == vv[:-1]]
    same_next = ~last_row & np.r_[member[1:], False] & np.r_[vv[1:] == vv[:-1], False]
    start = member & ~same_prev
    end = member & ~same_next
    if not start.any():
        return empty
    leave = np.where(last_row[end], np.nan, y[end])
    return pd.DataFrame({"firm_id": pd.array(f[start], dtype="str"), "cluster_id": pd.array(vv[start].astype(str), dtype="str"),
                         "join_year": y[start], "leave_year": leave, "left_censored": new_firm[start]})


def _membership_from_panel(spec: dict[str, Any], spells: list[pd.DataFrame], firm_ids: pd.Index, firms_label: str, problems: list[str]):
    """The register built from the firm panel's membership column (:func:`spells_from_panel`)."""
    col = spec["from_panel"]
    label = f"{firms_label}, column '{col}' (data.membership.from_panel)"
    m = pd.concat(spells, ignore_index=True) if spells else spells_from_panel(np.array([]), np.array([]), np.array([]), np.array([]))
    censored = int(m["left_censored"].sum())
    m = m.drop(columns="left_censored")
    flow: dict[str, Any] = {"file": label, "format": "from_panel", "rows_in": len(m), "rows_kept": 0, "excluded": {},
                            "from_panel": {"column": col, "spells": len(m), "spells_from_first_observed_year": censored}}
    if not len(m) and len(firm_ids):
        problems.append(f"{label}: no firm-year is marked as a member (every value is 0 or missing), so there is nothing to "
                        "evaluate. Fix: point data.membership.from_panel at the 0/1 or cluster-id column")
    return _register_finish(m, flow, firm_ids, label, col, firms_label, problems)


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
def _derive(panel: pd.DataFrame, codes, defl, derive: list[str], cols):
    data: dict[str, Any] = {p: panel[p].to_numpy(dtype=np.float64) for p in cols if p in PANEL_FIELDS and p not in TEXT_FIELDS and p in panel}
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


def _tfp_inputs(panel: pd.DataFrame, defl, codes: np.ndarray, by: str | None) -> pd.DataFrame:
    """One shard's rows of the production function's inputs: real logs of value added,
    capital and intermediates (divided by the sector-year deflator), log employment; the firm
    as an integer code in firm-id order (the estimator only sorts and groups by it)."""
    d = np.ones(len(panel)) if defl is None else np.asarray(defl, dtype=float)
    work = pd.DataFrame({
        "firm_id": codes,
        "year": panel["year"].to_numpy(),
        "y": outcomes._log(panel["value_added"].to_numpy(float) / d),
        "l": outcomes._log(panel["employment"].to_numpy(float)),
        "k": outcomes._log(panel["capital"].to_numpy(float) / d),
        "m": outcomes._log(panel["intermediates"].to_numpy(float) / d),
    })
    if by is not None and "sector" in panel:  # the grouping column, when there is one
        work["sector"] = panel["sector"].to_numpy()
    return work


def _estimate_tfp(work: pd.DataFrame, options: dict[str, Any], seed: int) -> tuple[np.ndarray, dict[str, Any]]:
    """``log_tfp``: log total factor productivity from a production-function estimator
    (models.production.estimate_tfp; ``ingest.tfp`` chooses method, output and grouping) on
    all rows of the panel (``work``: :func:`_tfp_inputs` of every shard, in panel order).

    Inputs are real: value added, capital and intermediates are divided by the sector-year
    deflator (the one price index given; state a better one if you have it), employment is
    headcount. TFP estimation error is NOT propagated to the effect's standard error: the
    DiD treats log_tfp as data (the report says so)."""
    from models.production import estimate_tfp

    res = estimate_tfp(
        work, options.get("method", "acf"), y="y", l="l", k="k", m="m", idname="firm_id", tname="year",
        output=options.get("output", "value_added"), by=options.get("by"), seed=seed,
        bootstrap=int(options.get("bootstrap", 0)),
    )
    tfp = res.tfp.to_numpy(dtype=float)
    info = {
        "formula": "log_tfp = ln(real value added) - b_l ln(employment) - b_k ln(real capital), "
                   f"elasticities by {res.method} ({res.output})",
        "method": res.method,
        "output": res.output,
        "elasticities": res.elasticities.to_dict(orient="records"),
        "std_errors": res.std_errors.to_dict(orient="records"),
        "n_missing": int(np.isnan(tfp).sum()),
        "n_rows": len(work),
        "propagated_to_effect_se": False,
    }
    return tfp, info


def _drop_missing(panel: pd.DataFrame, names: list[str]) -> tuple[pd.DataFrame, dict[str, int]]:
    """``ingest.drop_missing_outcomes: true``: drop rows where a listed derived outcome is
    missing, counted as ``missing_outcome:<first missing name>``."""
    keep = np.ones(len(panel), bool)
    counts = {}
    for n in names:
        miss = panel[n].isna().to_numpy() & keep
        counts[n] = int(miss.sum())
        keep &= ~miss
    return panel.loc[keep].reset_index(drop=True), counts
