"""The optional collaboration edge list (``data.collaborations``), read and validated in ingest.

Columns ``firm_a, firm_b, year, kind``: one row per collaboration of two firms in a year, an
undirected edge ((a, b) = (b, a)). ``kind`` is one of ``co-patent``, ``joint project``,
``supplier``, ``other`` (case and surrounding blanks ignored; ``joint_project`` is read as
``joint project``).

Refused (exit 2, every problem naming the file, column, count, first keys and the fix;
nothing is written): missing firm id or year, text or non-integer years, an unknown kind, a
self-loop (firm_a = firm_b), firm ids matching a panel id only after removing leading zeros.
Counted and excluded (``excluded`` in the flow, first ids under ``first_excluded``): exact and
undirected duplicates (same pair, year and kind, in either order), edges outside the
panel's years (``ingest.years`` or the file's years), edges to a firm absent from the panel
(``not_in_panel``: a partner outside the data is no firm of the evaluation; a mature edge
list from a patent office names many such firms, so they are counted, not refused).

The firm-year outcomes are derived in build_groups (:mod:`models.collaboration`), where
the membership spells are known; the edge list kept here is written to
``data/interim/collaborations.parquet`` (canonical order: firm_a < firm_b).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models.collaboration import KINDS

from .config import Params
from .readers import describe_issue, load_table

FIELDS = ("firm_a", "firm_b", "year", "kind")
KEYS = ("firm_a", "firm_b", "year")


def empty() -> pd.DataFrame:
    return pd.DataFrame({"firm_a": pd.array([], dtype="str"), "firm_b": pd.array([], dtype="str"),
                         "year": np.array([], np.int64), "kind": pd.array([], dtype="str")})


def read_collaborations(params: Params, firm_ids: pd.Index, firms_label: str, years: tuple[int, int] | None,
                        problems: list[str]) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    """``(edges, flow)``; appends refusals to ``problems``. Without the file: empty, None."""
    from .ingest import id_format_clash, isin_text, keys_text

    spec = params["data"].get("collaborations")
    if spec is None:
        return empty(), None
    label = spec["path"]
    table = load_table(params.resolve(spec["path"]), spec, role="collaborations", columns=list(FIELDS), numeric=["year"],
                       text=["firm_a", "firm_b", "kind"], label=label)
    f = table.frame
    e = pd.DataFrame({"firm_a": f["firm_a"], "firm_b": f["firm_b"], "year": f["year"], "kind": f["kind"]})
    flow: dict[str, Any] = {"file": label, "format": table.format, "rows_in": len(e), "rows_kept": 0, "excluded": {}, "first_excluded": {}}
    n_before = len(problems)
    if not len(e):
        problems.append(f"{label}: the edge list has a header but no rows. Fix: add the collaborations, or remove "
                        "data.collaborations from params.yaml")
    for issue in table.issues.values():
        problems.append(describe_issue(table, issue, keys=list(KEYS)))
    for col in ("firm_a", "firm_b"):
        miss = e[col].isna().to_numpy()
        if miss.any():
            problems.append(f"{label}, column '{col}': {miss.sum()} edge(s) without a firm id; first keys (firm_a, firm_b, year): "
                            f"{keys_text(e, miss, KEYS)}. Fix: fill in both firms of every collaboration or delete the rows")
    y = pd.to_numeric(e["year"]).to_numpy(np.float64, na_value=np.nan)
    bad = np.isnan(y)
    if "year" in table.issues:
        bad[table.issues["year"].positions] = False
    if bad.any():
        problems.append(f"{label}, column 'year': {bad.sum()} edge(s) without a year; first keys (firm_a, firm_b, year): "
                        f"{keys_text(e, bad, KEYS)}. Fix: fill in the year of the collaboration")
    frac = np.isfinite(y) & (np.floor(y) != y)
    if frac.any():
        problems.append(f"{label}, column 'year': {frac.sum()} non-integer year(s); first keys (firm_a, firm_b, year): "
                        f"{keys_text(e, frac, KEYS)}. Fix: give whole calendar years")
    kind = e["kind"].astype("str").str.strip().str.lower().str.replace("_", " ", regex=False)
    unknown = ~kind.isin(KINDS).to_numpy() | e["kind"].isna().to_numpy()
    if unknown.any():
        vals = pd.unique(e.loc[unknown, "kind"].astype("str"))[:5]
        problems.append(f"{label}, column 'kind': {unknown.sum()} edge(s) with an unknown kind (values: {', '.join(map(repr, vals))}); "
                        f"first keys (firm_a, firm_b, year): {keys_text(e, unknown, KEYS)}. Fix: use one of "
                        f"{', '.join(KINDS)}")
    loop = (e["firm_a"].astype("str") == e["firm_b"].astype("str")).to_numpy() & e["firm_a"].notna().to_numpy()
    if loop.any():
        problems.append(f"{label}: {loop.sum()} self-loop(s) (firm_a = firm_b); first keys (firm_a, firm_b, year): "
                        f"{keys_text(e, loop, KEYS)}. Fix: a collaboration needs two different firms; correct or delete the rows")
    ids = pd.Index(pd.concat([e["firm_a"], e["firm_b"]], ignore_index=True).dropna().astype("str")).unique()
    clash = id_format_clash(firm_ids, ids)
    if clash:
        problems.append(f"{label}, columns 'firm_a'/'firm_b' vs {firms_label}: {clash[0]} firm id(s) match a firm of the panel only "
                        f"after removing leading zeros (e.g. {clash[1]}); store firm ids as text with the same zero-padding in both files")
    if len(problems) > n_before:
        return empty(), flow

    # canonical undirected edge: firm_a < firm_b
    a, b = e["firm_a"].astype("str").to_numpy(object), e["firm_b"].astype("str").to_numpy(object)
    swap = a > b
    lo, hi = np.where(swap, b, a), np.where(swap, a, b)
    c = pd.DataFrame({"firm_a": pd.array(lo, dtype="str"), "firm_b": pd.array(hi, dtype="str"),
                      "year": y.astype(np.int64), "kind": pd.array(kind.to_numpy(object), dtype="str")})
    excluded: dict[str, int] = {}
    first: dict[str, list[str]] = {}

    def drop(mask: np.ndarray, reason: str) -> None:
        nonlocal c
        excluded[reason] = int(mask.sum())
        first[reason] = [f"({r.firm_a}, {r.firm_b}, {r.year})" for r in c.loc[mask].head(5).itertuples(index=False)]
        c = c.loc[~mask].reset_index(drop=True)

    drop(c.duplicated().to_numpy(), "duplicate_edge")
    if years is not None:
        drop(((c["year"] < years[0]) | (c["year"] > years[1])).to_numpy(), "outside_window")
    drop(~(isin_text(c["firm_a"], firm_ids) & isin_text(c["firm_b"], firm_ids)), "not_in_panel")
    c = c.sort_values(list(FIELDS), kind="stable").reset_index(drop=True)
    flow["excluded"], flow["first_excluded"], flow["rows_kept"] = excluded, first, len(c)
    flow["kinds"] = {k: int((c["kind"] == k).sum()) for k in KINDS}
    flow["years"] = [int(c["year"].min()), int(c["year"].max())] if len(c) else None
    if not len(c):
        problems.append(f"{label}: none of the {len(e)} edge(s) is left after the exclusions ({excluded}); first excluded: "
                        f"{'; '.join(v[0] for v in first.values() if v)}. Fix: check that firm_a/firm_b hold the panel's firm ids "
                        "and that the years overlap ingest.years")
        return empty(), flow
    return c, flow
