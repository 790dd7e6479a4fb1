"""Stage 2 library: members vs non-members, cohorts, event time, control-pool flags.

``build_groups(panel, membership, options, years)`` turns the interim panel and the
harmonised register (one row per firm x cluster spell) into the processed panel used by
every estimator, with the names of the staggered-DiD literature (Callaway & Sant'Anna 2021,
R ``did``: ``gname`` = ``first_treat``):

- ``first_treat`` (int64): the firm's first join year over all its spells, 0 = never member;
- ``ever_member`` (bool): ``first_treat > 0``;
- ``post`` (bool): ``first_treat > 0 and year >= first_treat``. Treatment is absorbing
  (staggered adoption): a firm stays treated after it leaves;
- ``rel_time`` (Int64): ``year - first_treat``, missing for never members;
- ``cluster_id`` (text): the cluster of the first spell (ties in the first join year: the
  smallest cluster id), missing for never members;
- ``leave_year`` (Int64): the last year of membership over all spells, missing while still
  a member (any open spell) and for never members;
- ``colocated`` (bool): a non-member whose (region, sector) cell, taken at its first panel
  year, also holds a firm treated in the window (register members with first join <= the last
  panel year, including members dropped below: they are still there to spill over);
- ``eligible`` (bool): a non-member whose sector or region (first panel year) has such a
  member;
- ``exposure_year`` (Int64): for co-located firms, the first join year of a member they are
  co-located with (the exposure mapping of the spillover designs), missing otherwise.

Co-location (``build_groups.spillover``): ``by: cell`` (default) is the (region, sector)
cell above; ``by: ring, radius: d`` makes a non-member co-located when a member lies within
distance ``d`` of its coordinates (``x_coord``, ``y_coord`` at its first panel year,
Euclidean, in the coordinates' units), exposed from the first join within the ring
(:func:`pipeline.geo.ring_exposure`); firms without coordinates are never co-located
(counted in the flow).

Firm status (mutually exclusive, in this order; counted in the flow):
``after_window`` (first join after the last panel year), ``always_member`` (first join <=
the first panel year: never observed untreated), ``leaver`` (every spell closed and the last
leave year < the last panel year), ``member`` (the other members), ``never``;
``multi_spell`` (more than one spell) is counted on top.

Policies (``params.yaml``: ``build_groups``):

- ``after_window: never`` codes those firms as never members (counted); ``error`` stops;
- ``always_treated: drop`` drops the firms (all their rows, counted), as R ``did`` does
  with units treated in the first period; ``error`` stops;
- ``leavers: absorbing`` keeps them, treated from the first join on; ``drop`` drops the
  firms (counted); ``error`` stops;
- ``min_pre_periods: k`` drops members observed in fewer than ``k`` panel years before
  ``first_treat`` (counted; 0 = off).

An ``error`` policy raises one BadInputError listing every offending firm group.
Everything is vectorised on integer firm codes (no per-firm Python loops).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.errors import BadInputError, ConfigError, first_keys

DEFAULTS = {"leavers": "absorbing", "always_treated": "drop", "after_window": "never", "min_pre_periods": 0,
            "spillover": {"by": "cell", "radius": None}, "overlap": "exclude"}
ALLOWED = {"leavers": ("absorbing", "drop", "error"), "always_treated": ("drop", "error"), "after_window": ("never", "error"),
           "overlap": ("exclude", "control", "arm")}
# created only with a second programme's register (build_groups.overlap: control / arm)
OVERLAP_COLUMNS = ("other_programme", "arm")
NEW_COLUMNS = ("first_treat", "ever_member", "post", "rel_time", "cluster_id", "leave_year", "colocated", "eligible", "exposure_year")


@dataclass
class GroupsOutput:
    panel: pd.DataFrame  # the input's kept rows with NEW_COLUMNS appended
    summary: pd.DataFrame
    flow: dict[str, Any]
    keep: np.ndarray | None = None  # input rows kept (input order)
    new: pd.DataFrame | None = None  # NEW_COLUMNS for the kept rows (same order)


# the interim columns build_groups reads; the stage streams the others through (a register
# of a million firms x 20 years is never held whole in memory)
INPUT_COLUMNS = ("firm_id", "year", "sector", "region", "x_coord", "y_coord")


def option_problems(options: dict[str, Any] | None) -> tuple[dict[str, Any], list[str]]:
    """The build_groups options merged with their defaults, and every problem with them (one
    message per key: what is wrong and what is allowed). Used by the params loader, so a bad
    value is exit 5 before ingest runs, and by the stage itself."""
    opts = {**DEFAULTS, **(options or {})}
    problems = [f"build_groups.{k}: unknown option (allowed: {', '.join(DEFAULTS)})" for k in sorted(set(opts) - set(DEFAULTS))]
    for k, allowed in ALLOWED.items():
        if opts[k] not in allowed:
            problems.append(f"build_groups.{k}: {opts[k]!r}; allowed: {', '.join(allowed)}")
    k = opts["min_pre_periods"]
    if not isinstance(k, int) or isinstance(k, bool) or k < 0:
        problems.append(f"build_groups.min_pre_periods: a whole number >= 0, got {k!r}")
    sp = opts["spillover"]
    if not isinstance(sp, dict) or set(sp) - {"by", "radius"}:
        problems.append(f"build_groups.spillover: give {{by: cell | ring, radius: <distance>}}, got {sp!r}")
    else:
        sp = {"by": "cell", "radius": None, **sp}
        opts["spillover"] = sp
        if sp["by"] not in ("cell", "ring"):
            problems.append(f"build_groups.spillover.by: {sp['by']!r}; allowed: cell (same region x sector), ring (within radius)")
        r = sp["radius"]
        if sp["by"] == "ring" and (isinstance(r, bool) or not isinstance(r, (int, float)) or not np.isfinite(r) or r <= 0):
            problems.append(f"build_groups.spillover.radius: a positive distance in the coordinates' units (km), got {r!r}")
    return opts, problems


def _options(options: dict[str, Any] | None) -> dict[str, Any]:
    opts, problems = option_problems(options)
    if problems:
        raise ConfigError("bad build_groups options:", problems=problems)
    return opts


def build_groups(
    panel: pd.DataFrame,
    membership: pd.DataFrame,
    options: dict[str, Any] | None,
    years: tuple[int, int] | None = None,
    other_programme: pd.DataFrame | None = None,
) -> GroupsOutput:
    """Add treatment timing and control-pool flags; apply the policies; count everything.

    ``years``: the panel window ``(first, last)``; ``None`` = the panel's own first and last year.
    """
    opts = _options(options)
    for c in ("firm_id", "year"):
        if c not in panel:
            raise BadInputError(f"interim panel: column {c!r} missing (columns: {', '.join(panel.columns)}); re-run ingest")
    missing = [c for c in ("firm_id", "cluster_id", "join_year", "leave_year") if c not in membership]
    if missing:
        raise BadInputError(f"membership register: column(s) {', '.join(missing)} missing; re-run ingest")
    clash = [c for c in NEW_COLUMNS + OVERLAP_COLUMNS if c in panel.columns]
    if clash:
        raise BadInputError(
            f"interim panel: already has column(s) {', '.join(clash)}, which build_groups creates; rename them in the "
            "raw file's mapping (params.yaml columns:)"
        )

    n_rows = len(panel)
    codes, firm_ids = pd.factorize(panel["firm_id"], sort=True)
    n_f = len(firm_ids)
    year = panel["year"].to_numpy(dtype=np.int64)
    if years is None:
        first, last = (int(year.min()), int(year.max())) if n_rows else (0, 0)
    else:
        first, last = int(years[0]), int(years[1])

    # ---- spells -> firm level -------------------------------------------------------------
    mcode = pd.Index(firm_ids).get_indexer(membership["firm_id"].astype("str")) if n_f else np.full(len(membership), -1)
    in_panel = mcode >= 0
    spells_in = len(membership)
    m = membership.loc[in_panel]
    mcode = mcode[in_panel]
    join = m["join_year"].to_numpy(dtype=np.int64)
    leave_raw = m["leave_year"]
    leave_open = leave_raw.isna().to_numpy()
    leave = leave_raw.to_numpy(dtype=np.float64, na_value=np.nan)
    ccode, clusters = pd.factorize(m["cluster_id"].astype("str"), sort=True)
    order = np.lexsort((ccode, join, mcode))
    mcode_s = mcode[order]
    first_row = np.ones(len(order), bool)
    first_row[1:] = mcode_s[1:] != mcode_s[:-1]
    firsts = order[first_row]

    n_spells = np.bincount(mcode, minlength=n_f)
    is_member = n_spells > 0
    first_join = np.zeros(n_f, np.int64)
    first_join[mcode[firsts]] = join[firsts]
    firm_cluster = np.full(n_f, -1, np.int64)
    firm_cluster[mcode[firsts]] = ccode[firsts]
    any_open = np.bincount(mcode, weights=leave_open.astype(float), minlength=n_f) > 0
    max_leave = np.full(n_f, -np.inf)
    if len(mcode):
        np.maximum.at(max_leave, mcode, np.where(leave_open, -np.inf, leave))
    has_leave = is_member & ~any_open
    firm_leave = np.where(has_leave, max_leave, np.nan)

    after_window = is_member & (first_join > last)
    always = is_member & ~after_window & (first_join <= first)
    leaver = is_member & ~after_window & ~always & has_leave & (firm_leave < last)
    stayer = is_member & ~after_window & ~always & ~leaver
    status = {
        "never": int((~is_member).sum()),
        "member": int(stayer.sum()),
        "leaver": int(leaver.sum()),
        "always_member": int(always.sum()),
        "after_window": int(after_window.sum()),
        "multi_spell": int((n_spells > 1).sum()),
    }
    # treated within the window (spillover sources), before any drop
    source = is_member & ~after_window

    # ---- policies ------------------------------------------------------------------------
    problems: list[str] = []
    notes: list[str] = []

    def listing(mask: np.ndarray, what: str) -> str:
        idx = np.flatnonzero(mask)
        shown = [
            f"({firm_ids[i]}, {clusters[firm_cluster[i]] if firm_cluster[i] >= 0 else '-'}, {first_join[i]}, "
            f"{'-' if np.isnan(firm_leave[i]) else int(firm_leave[i])})"
            for i in idx[:5]
        ]
        return f"{len(idx)} firm(s) {what}; first (firm_id, cluster_id, first join_year, leave_year): " + first_keys(shown + [""] * (len(idx) - len(shown)))

    if after_window.any():
        if opts["after_window"] == "error":
            problems.append(
                "membership register: "
                + listing(after_window, f"joined only after the last panel year {last}")
                + ". Fix: set build_groups.after_window: never (coded as never members within the window) or extend the panel"
            )
        else:
            notes.append(f"{status['after_window']} firm(s) joined after {last}: coded as never members (after_window: never)")
    if always.any() and opts["always_treated"] == "error":
        problems.append(
            "membership register: "
            + listing(always, f"joined in or before the first panel year {first} (never observed untreated)")
            + ". Fix: set build_groups.always_treated: drop (as R did does), or extend the panel backwards"
        )
    if leaver.any() and opts["leavers"] == "error":
        problems.append(
            "membership register: "
            + listing(leaver, f"left their cluster before {last}")
            + ". Fix: set build_groups.leavers: absorbing (treated from the first join on) or drop"
        )
    if problems:
        raise BadInputError(f"{len(problems)} problem(s) with the membership register under the build_groups policies:", problems=problems)

    treated = is_member & ~after_window
    first_treat_f = np.where(treated, first_join, 0)
    drop_reason = np.zeros(n_f, np.int8)  # 0 keep, 1 always_treated, 2 leaver, 3 min_pre_periods
    drop_reason[always] = 1
    if opts["leavers"] == "drop":
        drop_reason[leaver & (drop_reason == 0)] = 2
    if opts["min_pre_periods"] > 0:
        pre = np.bincount(codes, weights=(year < first_treat_f[codes]).astype(float), minlength=n_f)
        few = treated & (pre < opts["min_pre_periods"]) & (drop_reason == 0)
        drop_reason[few] = 3
    # ---- a second programme (data.other_programme), handled as build_groups.overlap says ----
    other = other_programme if other_programme is not None and len(other_programme) else None
    in_other = np.zeros(n_f, bool)
    if other is not None:
        ocode = pd.Index(firm_ids).get_indexer(other["firm_id"].astype("str"))
        o_start = other["start_year"].to_numpy(dtype=np.int64)
        o_end = other["end_year"].to_numpy(dtype=np.float64, na_value=np.inf)
        inwin = (ocode >= 0) & (o_start <= last) & (o_end >= first)
        in_other[ocode[inwin]] = True
        if opts["overlap"] == "exclude":
            drop_reason[in_other & (drop_reason == 0)] = 4
    firm_drop = drop_reason > 0
    row_reason = drop_reason[codes]
    reasons = {1: "always_treated", 2: "leaver", 3: "min_pre_periods", **({4: "other_programme"} if other is not None else {})}
    excluded = {name: int((row_reason == k).sum()) for k, name in reasons.items()}
    firms_excluded = {name: int((drop_reason == k).sum()) for k, name in reasons.items()}
    keep = row_reason == 0

    # ---- firm cells (at the first panel year) for the spillover flags -----------------------
    rows_first = _first_rows(codes, year, n_f)
    cell_cols = [c for c in ("sector", "region") if c in panel]
    fcode, row_codes = {}, {}
    for c in cell_cols:
        cc, labels = pd.factorize(panel[c], sort=True)
        row_codes[c] = (cc, [str(x) for x in labels])
        fcode[c] = cc[rows_first] if n_f else np.empty(0, np.int64)
    nonmember = ~treated
    exposure_f = np.zeros(n_f, np.int64)  # first join year of a member the firm is exposed to
    sp = opts["spillover"]
    no_coords = 0
    if sp["by"] == "ring":
        from .geo import ring_exposure

        if not {"x_coord", "y_coord"} <= set(panel.columns):
            raise ConfigError("build_groups.spillover.by: ring needs coordinates: map x_coord and y_coord in params columns "
                              "(or use by: cell)")
        xy = np.column_stack([pd.to_numeric(panel[c]).to_numpy(dtype=float, na_value=np.nan)[rows_first] for c in ("x_coord", "y_coord")])
        no_coords = int((~np.isfinite(xy).all(axis=1)).sum())
        if no_coords:
            notes.append(f"{no_coords} firms without coordinates are never counted as co-located (ring spillovers)")
        exposure_f = ring_exposure(xy, source, np.where(source, first_join, 0), float(sp["radius"]))
        colocated_f = nonmember & (exposure_f > 0)
    elif len(cell_cols) == 2:
        s, r = fcode["sector"], fcode["region"]
        ok = (s >= 0) & (r >= 0)
        cell = np.where(ok, s.astype(np.int64) * (r.max(initial=0) + 1) + r, -1)
        member_cells = np.unique(cell[source & ok])
        colocated_f = nonmember & ok & np.isin(cell, member_cells)
        big = np.iinfo(np.int64).max
        cell_first = np.full(int(cell.max(initial=-1)) + 1, big)
        np.minimum.at(cell_first, cell[source & ok], first_join[source & ok])
        exposure_f[colocated_f] = cell_first[cell[colocated_f]]
    else:
        colocated_f = np.zeros(n_f, bool)
        notes.append("colocated is False throughout: it needs both sector and region mapped in params columns")
    exposure_f[~colocated_f] = 0
    elig = np.zeros(n_f, bool)
    for c in cell_cols:
        v = fcode[c]
        src = np.unique(v[source & (v >= 0)])
        elig |= (v >= 0) & np.isin(v, src)
    eligible_f = nonmember & elig
    if not cell_cols:
        notes.append("eligible is False throughout: it needs sector or region mapped in params columns")

    # ---- the processed panel -------------------------------------------------------------
    out = panel.loc[keep] if not keep.all() else panel
    out = out.reset_index(drop=True)
    kc = codes[keep]
    ky = year[keep]
    ft = first_treat_f[kc]
    treated_row = ft > 0
    fc = np.where(treated_row, firm_cluster[kc], -1)
    cluster_row = _take_text([str(c) for c in clusters], fc)
    lv = firm_leave[kc]
    lv_mask = np.isnan(lv) | ~treated_row
    new = pd.DataFrame(
        {
            "first_treat": ft.astype(np.int64),
            "ever_member": treated_row,
            "post": treated_row & (ky >= ft),
            "rel_time": pd.arrays.IntegerArray(np.where(treated_row, ky - ft, 0).astype(np.int64), ~treated_row),
            "cluster_id": cluster_row,
            "leave_year": pd.arrays.IntegerArray(np.where(lv_mask, 0, np.nan_to_num(lv)).astype(np.int64), lv_mask),
            "colocated": colocated_f[kc],
            "eligible": eligible_f[kc],
            "exposure_year": pd.arrays.IntegerArray(exposure_f[kc], exposure_f[kc] == 0),
        }
    )
    if other is not None and opts["overlap"] == "control":
        # time-varying indicator: in the other programme this year (a control in estimate.covariates)
        new["other_programme"] = _active(kc, ky, ocode[inwin], o_start[inwin], o_end[inwin])
    if other is not None and opts["overlap"] == "arm":
        arm = np.where(treated_row, np.where(in_other[kc], "cluster+other", "cluster only"),
                       np.where(in_other[kc], "other only", "neither"))
        new["arm"] = pd.array(arm, dtype="str")
    out = pd.concat([out, new], axis=1)

    dims = {"cluster": (fc, [str(c) for c in clusters])}
    for c in cell_cols:
        cc, labels = row_codes[c]
        dims[c] = (cc[keep], labels)
    summary = _summary(kc, ft, n_f, dims)
    kept_firms = ~firm_drop
    flow = {
        "rows_in": n_rows,
        "rows_kept": int(keep.sum()),
        "excluded": excluded,
        "firms_in": n_f,
        "firms_kept": int(kept_firms.sum()),
        "firms_excluded": firms_excluded,
        "firms_by_status": status,
        "treated_firms_kept": int((treated & kept_firms).sum()),
        "never_member_firms_kept": int((~treated & kept_firms).sum()),
        "colocated_firms": int((colocated_f & kept_firms).sum()),
        "colocation": {"by": sp["by"], "radius": sp["radius"], "firms_without_coordinates": no_coords},
        "other_programme": None if other is None else {
            "policy": opts["overlap"], "firms": int(in_other.sum()), "members_in_it": int((in_other & treated).sum()),
            "non_members_in_it": int((in_other & ~treated).sum()), "firms_excluded": int((drop_reason == 4).sum()),
        },
        "eligible_firms": int((eligible_f & kept_firms).sum()),
        "spells": {"rows_in": spells_in, "not_in_panel": int((~in_panel).sum()), "used": int(in_panel.sum())},
        "years": [first, last],
        "policies": opts,
        "notes": notes,
    }
    assert flow["rows_in"] == flow["rows_kept"] + sum(excluded.values())
    assert flow["firms_in"] == flow["firms_kept"] + sum(firms_excluded.values())
    return GroupsOutput(panel=out, summary=summary, flow=flow, keep=keep, new=new)


def _active(row_firm: np.ndarray, row_year: np.ndarray, spell_firm: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Per row: does any spell of the row's firm cover the row's year (start <= year <= end)?
    Vectorised over spells sorted by firm (a firm's spells are few)."""
    act = np.zeros(len(row_firm), bool)
    if not len(spell_firm):
        return act
    order = np.argsort(spell_firm, kind="stable")
    sf, s0, e0 = spell_firm[order], start[order], end[order]
    lo = np.searchsorted(sf, row_firm, side="left")
    hi = np.searchsorted(sf, row_firm, side="right")
    k = 0
    while True:  # the k-th spell of each row's firm, while any firm has one
        has = lo + k < hi
        if not has.any():
            break
        j = np.minimum(lo + k, len(sf) - 1)
        act |= has & (s0[j] <= row_year) & (row_year <= e0[j])
        k += 1
    return act


def _first_rows(codes: np.ndarray, year: np.ndarray, n_f: int) -> np.ndarray:
    """Row position of each firm's first (earliest-year) row."""
    if not n_f:
        return np.empty(0, np.int64)
    sorted_ = len(codes) < 2 or bool(((np.diff(codes) > 0) | ((np.diff(codes) == 0) & (np.diff(year) > 0))).all())
    order = np.arange(len(codes)) if sorted_ else np.lexsort((year, codes))
    c = codes[order]
    start = np.ones(len(c), bool)
    start[1:] = c[1:] != c[:-1]
    out = np.empty(n_f, np.int64)
    out[c[start]] = order[start]
    return out


def _take_text(labels: list[str], idx: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """labels[idx] as a text array (missing where idx < 0), built in Arrow."""
    import pyarrow as pa

    arr = pa.array(labels, type=pa.string()).take(pa.array(np.where(idx < 0, 0, idx), mask=idx < 0)) if labels else pa.nulls(len(idx), pa.string())
    return pd.Series(arr.to_pandas(), dtype="str").array


def _summary(kc: np.ndarray, ft: np.ndarray, n_f: int, dims: dict[str, tuple[np.ndarray, list[str]]]) -> pd.DataFrame:
    """Tidy group composition: dimension, level, n_firms, n_firm_years, n_members.

    ``dims``: {dimension: (row-level codes of the kept rows, -1 = missing; labels)}.
    """
    member_row = ft > 0
    mem_f = np.zeros(n_f, bool)
    mem_f[kc[member_row]] = True
    parts = []

    def tally(dim: str, lev_codes: np.ndarray, labels: list[str]) -> None:
        ok = lev_codes >= 0
        lc = lev_codes[ok].astype(np.int64)
        fy = np.bincount(lc, minlength=len(labels))
        pair = pd.unique(lc * n_f + kc[ok])
        pl = pair // n_f
        pf = pair % n_f
        firms = np.bincount(pl, minlength=len(labels))
        members = np.bincount(pl, weights=mem_f[pf].astype(float), minlength=len(labels)).astype(np.int64)
        parts.append(pd.DataFrame({"dimension": dim, "level": labels, "n_firms": firms, "n_firm_years": fy, "n_members": members}))
        if (~ok).any():
            miss_f = pd.unique(kc[~ok])
            parts.append(
                pd.DataFrame(
                    {
                        "dimension": [dim],
                        "level": ["(missing)"],
                        "n_firms": [len(miss_f)],
                        "n_firm_years": [int((~ok).sum())],
                        "n_members": [int(mem_f[miss_f].sum())],
                    }
                )
            )

    cohorts = np.unique(ft)
    tally("cohort", np.searchsorted(cohorts, ft), [str(int(c)) for c in cohorts])
    for dim, (dc, labels) in dims.items():
        before = len(parts)
        used = np.bincount(dc[dc >= 0], minlength=len(labels)) > 0
        if dim == "cluster" and not used.all():  # clusters whose only members were dropped
            remap = np.cumsum(used) - 1
            dc = np.where(dc >= 0, remap[np.maximum(dc, 0)], -1)
            labels = [lab for lab, u in zip(labels, used) if u]
        if not labels and dim == "cluster":
            continue
        tally(dim, dc, labels)
        if dim == "cluster" and len(parts) > before + 1:  # non-members have no cluster: no '(missing)' row
            parts.pop()
    if not parts:
        return pd.DataFrame({"dimension": [], "level": [], "n_firms": [], "n_firm_years": [], "n_members": []})
    res = pd.concat(parts, ignore_index=True)
    for c in ("n_firms", "n_firm_years", "n_members"):
        res[c] = res[c].astype(np.int64)
    res["dimension"] = res["dimension"].astype("str")
    res["level"] = res["level"].astype("str")
    return res
