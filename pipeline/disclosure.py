"""Disclosure control (statistical disclosure control, SDC) of everything the report releases.

Output checking in a secure research environment asks, for every released number: how many
distinct units stand behind it, does one (or two) of them dominate it, could a contributor
estimate another's value from it, and is a model's residual degrees of freedom large enough.
This module implements those *primary* checks as named profiles and a *release scan* of the
finished report files.

Rules (definitions follow ACRO, the SACRO project's output checker: AI-SDC/ACRO,
``acro/acro_tables.py`` functions ``agg_threshold``, ``agg_nk``, ``agg_p_percent``; also the
Eurostat/ESSnet *Handbook on Statistical Disclosure Control* (Hundepool et al.), ch. 4):

* **threshold** — a cell fails if its number of distinct contributors is *below* ``min_units``
  (ACRO: ``vals.count() < THRESHOLD``): 9 firms fail, 10 pass. Contributors are distinct
  firms, never firm-years, and firms of one enterprise group (``group_id``) count as one.
* **(n, k) dominance** — a cell fails if the ``n`` largest contributors' share of the cell
  total *exceeds* ``k`` (ACRO: ``n_total / total > SAFE_NK_K``): a share of exactly 50 % passes
  the (1, 50 %) rule.
* **p % rule** — with contributions sorted x1 >= x2 >= ..., a cell fails if
  ``(total - x1 - x2) / x1 < p`` (ACRO: ``p_val < SAFE_PRATIO_P``), i.e. the second-largest
  contributor could estimate the largest to within p %. Exactly ``p`` passes. A cell with a
  total <= 0 or a single contributor fails when ``zeros_disclosive`` (ACRO's
  ``ZEROS_ARE_DISCLOSIVE``).
* **residual degrees of freedom** — a model fails if its residual dof is below ``min_dof``
  (ACRO's regression check): ``meta["df_resid"]`` when reported, else ``n_clusters - 1``
  (the effective dof of clustered inference), else ``n_obs`` minus the number of
  coefficients (:func:`model_dof`).
* **no raw minima/maxima** — columns named min/max (``min``, ``max``, ``*_min``, ``*_max``,
  ``minimum``, ``maximum``) are withheld from released tables (Bundesbank RDSC: extremes only
  as means of the 5 most extreme entities, which we do not compute).

Dominance and p % apply to *magnitude* cells: the contributions are the sum over the cell's
firm-years of each contributor's outcome value, for outcomes that are non-negative
magnitudes (turnover, exports, patents, ...). Logs, growth rates and 0/1 indicators are not
magnitudes; only the threshold applies to them. See :func:`cell_contributions`.

Profiles (:data:`PROFILES`): ``strict`` (10 firms; (1, 50 %), (2, 67 %); p = 10 %; dof 10;
no min/max; zeros disclosive), ``acro`` (10; (2, 90 %); p = 10 %; dof 10; zeros disclosive),
``bundesbank`` (5; (2, 85 %)), ``abs`` (10; (1, 50 %), (2, 67 %)), ``off`` (nothing checked;
for synthetic data).

What happens to a failing cell (``on_fail``): every profile defaults to ``"suppress"``: the
cell is blanked everywhere it would appear (tables, CSV, figures) and listed with its reasons
in disclosure.json/.md, and the rest is released — the primary-suppression practice of ACRO
(``suppress=True``) and of output checkers generally. ``on_fail: "block"`` (give
``report.disclosure: {profile: strict, on_fail: block}`` in params.yaml) makes any failing
cell fatal: verdict ``"block"``, the stage exits 3. Independently of ``on_fail``, the release
scan (:func:`release_scan`) blocks whenever a file would carry unit-level rows, firm
identifiers, residuals, fixed effects or pickles: those cannot be fixed by blanking a cell.

Limitation: no *secondary* suppression. A suppressed cohort coefficient can in principle be
recovered from a released aggregate and the other cohorts' coefficients when the
aggregation weights are known; an output checker should review such families.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd

from models.errors import ConfigError

# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class Profile:
    """A named set of disclosure rules (see module docstring)."""

    name: str
    min_units: int | None = None  # distinct contributors behind every cell
    dominance: tuple[tuple[int, float], ...] = ()  # (n, k): top-n share must not exceed k
    p_percent: float | None = None  # p as a fraction (0.10 = 10 %)
    min_dof: int | None = None
    no_minmax: bool = False
    zeros_disclosive: bool = False
    on_fail: str = "suppress"  # suppress | block

    @property
    def active(self) -> bool:
        return self.name != "off"

    def describe(self) -> list[dict[str, Any]]:
        """The checks this profile runs, for the summary."""
        out = []
        if self.min_units:
            out.append({"check": "threshold", "rule": f"at least {self.min_units} distinct firms (enterprise groups count once) behind every cell, cohort and coefficient"})
        for n, k in self.dominance:
            out.append({"check": f"dominance ({n}, {k:.0%})", "rule": f"the largest {n} contributor(s) may not exceed {k:.0%} of a magnitude cell's total"})
        if self.p_percent is not None:
            out.append({"check": f"p% rule (p = {self.p_percent:.0%})", "rule": "total minus the two largest contributions must be at least p% of the largest"})
        if self.min_dof:
            out.append({"check": "residual degrees of freedom", "rule": f"at least {self.min_dof} (n_clusters - 1 under clustered inference)"})
        if self.no_minmax:
            out.append({"check": "no minima/maxima", "rule": "raw minimum/maximum columns are withheld"})
        if self.zeros_disclosive:
            out.append({"check": "zeros disclosive", "rule": "a magnitude cell with total <= 0 or one contributor fails the p% rule"})
        out.append({"check": "release scan", "rule": "no unit-level rows, firm identifiers, residuals, fixed effects or pickles in any released file"})
        return out


PROFILES: dict[str, Profile] = {
    "strict": Profile("strict", 10, ((1, 0.50), (2, 0.67)), 0.10, 10, True, True, "suppress"),
    "acro": Profile("acro", 10, ((2, 0.90),), 0.10, 10, False, True, "suppress"),
    "bundesbank": Profile("bundesbank", 5, ((2, 0.85),), None, None, True, False, "suppress"),
    "abs": Profile("abs", 10, ((1, 0.50), (2, 0.67)), None, None, False, False, "suppress"),
    "off": Profile("off"),
}

_OVERRIDABLE = {"min_units", "dominance", "p_percent", "min_dof", "no_minmax", "zeros_disclosive", "on_fail"}


def resolve_profile(option: str | dict | None) -> Profile:
    """``report.disclosure`` -> :class:`Profile`.

    Either a profile name (``"strict"``) or a mapping ``{profile: strict, on_fail: block,
    min_units: 20, ...}`` overriding single rules of the named profile.
    """
    if option is None:
        option = "strict"
    overrides: dict[str, Any] = {}
    if isinstance(option, dict):
        overrides = dict(option)
        name = overrides.pop("profile", "strict")
    else:
        name = option
    if name not in PROFILES:
        raise ConfigError(f"report.disclosure: unknown profile {name!r}; known: {', '.join(PROFILES)}")
    bad = sorted(set(overrides) - _OVERRIDABLE)
    if bad:
        raise ConfigError(f"report.disclosure: unknown key(s) {bad}; allowed: profile, {', '.join(sorted(_OVERRIDABLE))}")
    if "on_fail" in overrides and overrides["on_fail"] not in ("suppress", "block"):
        raise ConfigError(f"report.disclosure.on_fail: {overrides['on_fail']!r}; allowed: suppress, block")
    if "dominance" in overrides:
        try:
            overrides["dominance"] = tuple((int(n), float(k)) for n, k in overrides["dominance"])
        except (TypeError, ValueError) as exc:
            raise ConfigError("report.disclosure.dominance: give a list of [n, k] pairs, e.g. [[1, 0.5], [2, 0.67]]") from exc
    return replace(PROFILES[name], **overrides)


# --------------------------------------------------------------------------- rules


def threshold_fails(n_units: int | float | None, min_units: int) -> bool:
    """ACRO ``agg_threshold``: fails when the count is *below* the threshold (unknown fails)."""
    if n_units is None or (isinstance(n_units, float) and np.isnan(n_units)) or n_units is pd.NA:
        return True
    return int(n_units) < int(min_units)


def nk_share(values: np.ndarray, n: int) -> float:
    """Share of the cell total held by the ``n`` largest contributions (0 when total <= 0)."""
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    total = v.sum()
    if not total > 0:
        return 0.0
    return float(v[:n].sum() / total)


def nk_fails(values: np.ndarray, n: int, k: float) -> bool:
    """ACRO ``agg_nk``: fails when the top-``n`` share *exceeds* ``k`` (exactly ``k`` passes).

    A tiny tolerance (1e-12) keeps a share of exactly k (computed in floating point) passing."""
    return nk_share(values, n) > k + 1e-12


def p_ratio(values: np.ndarray) -> float:
    """``(total - x1 - x2) / x1`` for contributions sorted descending (ACRO ``agg_p_percent``)."""
    v = np.sort(np.asarray(values, dtype=float))[::-1]
    if v.size < 2 or not v.sum() > 0:
        return np.nan
    return float((v.sum() - v[0] - v[1]) / v[0])


def p_percent_fails(values: np.ndarray, p: float, zeros_disclosive: bool = True) -> bool:
    """ACRO ``agg_p_percent``: fails when ``(total - x1 - x2) / x1 < p`` (exactly ``p`` passes).

    A total <= 0 or a single contributor fails when ``zeros_disclosive`` (ACRO's default)."""
    r = p_ratio(values)
    if np.isnan(r):
        return bool(zeros_disclosive)
    return r < p - 1e-12


def summary_reasons(n_contributors: Any, total: float, tops: list[float], profile: Profile, magnitude: bool = True) -> list[str]:
    """The threshold, (n, k) dominance and p % rules on a cell given as a summary: its number
    of distinct contributors, the total of their absolute contributions and the largest
    contributions ``tops`` (descending; :func:`models.contributions.top_contributions`).
    Same rules, tolerances and wording as the array-based checks above; a dominance rule
    with more contributors (n) than the summary keeps (and the cell has more than that) fails
    as "cannot be checked". Returns the failed rules (empty = releasable). One cell of
    :func:`summary_reasons_many`."""
    t = [x for x in tops]
    return summary_reasons_many([n_contributors], [total], [t] if t else np.zeros((1, 0)), profile, magnitude)[0]


def summary_reasons_many(n_contributors, totals, tops, profile: Profile, magnitude: bool = True) -> list[list[str]]:
    """:func:`summary_reasons` for many cells at once (vectorised): ``tops`` is a cells x k
    array of the largest contributions (missing = 0)."""
    n_rows = len(n_contributors)
    out: list[list[str]] = [[] for _ in range(n_rows)]
    if not profile.active or n_rows == 0:
        return out
    cnt = pd.to_numeric(pd.Series(list(n_contributors), dtype="object"), errors="coerce").to_numpy(float)
    if profile.min_units:
        unknown = np.isnan(cnt)
        few = ~unknown & (cnt < profile.min_units)
        for i in np.flatnonzero(unknown):
            out[i].append("no distinct-firm count available")
        for i in np.flatnonzero(few):
            out[i].append(f"fewer than {profile.min_units} distinct firms")
    if not magnitude:
        return out
    t = np.nan_to_num(np.asarray(tops, dtype=float).reshape(n_rows, -1), nan=0.0)
    k = t.shape[1]
    tot = np.nan_to_num(pd.to_numeric(pd.Series(list(totals), dtype="object"), errors="coerce").to_numpy(float), nan=0.0)
    for nn, kk in profile.dominance:
        if nn > k:
            deep = np.isnan(cnt) | (cnt > k)
            for i in np.flatnonzero(deep):
                out[i].append(f"dominance ({nn}, {kk:.0%}) cannot be checked from the stored top {k}")
            rest = ~deep
        else:
            rest = np.ones(n_rows, bool)
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(tot > 0, t[:, :nn].sum(axis=1) / tot, 0.0)
        for i in np.flatnonzero(rest & (share > kk + 1e-12)):
            out[i].append(f"dominance ({nn}, {kk:.0%}) exceeded")
    if profile.p_percent is not None:
        x1 = t[:, 0] if k else np.zeros(n_rows)
        x2 = t[:, 1] if k > 1 else np.zeros(n_rows)
        degenerate = (k < 2) | (~np.isnan(cnt) & (cnt < 2)) | ~(tot > 0) | ~(x1 > 0)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = (tot - x1 - x2) / x1
        if profile.zeros_disclosive:
            for i in np.flatnonzero(degenerate):
                out[i].append("p% rule: zero total or a single contributor")
        for i in np.flatnonzero(~degenerate & (ratio < profile.p_percent - 1e-12)):
            out[i].append(f"p% rule (p = {profile.p_percent:.0%}) failed")
    return out


# --------------------------------------------------------------------------- contributions


def _is_magnitude(name: str, s: pd.Series) -> bool:
    """A non-negative quantity that is summed (not a log, rate, growth or 0/1 indicator)."""
    if name.startswith("log_") or name.endswith(("_growth", "_intensity", "_status", "_share", "_rate")):
        return False
    x = pd.to_numeric(s, errors="coerce").dropna()
    if x.empty or (x < 0).any():
        return False
    return not x.isin([0, 1]).all()


def cell_contributions(
    panel: pd.DataFrame,
    outcomes: list[str],
    *,
    idname: str = "firm_id",
    tname: str = "year",
    gname: str = "first_treat",
    group: str | None = "group_id",
) -> pd.DataFrame:
    """Per released cell, each contributor's share: the input of the dominance and p% rules.

    From the processed panel (treated firms only: ``first_treat > 0``) and for each outcome,
    the cells are

    * ``(cohort, event_time)`` — one cohort at one event time (ATT(g, t) cells),
    * ``(<NA>, event_time)`` — all cohorts at one event time (event-study coefficients),
    * ``(cohort, <NA>)`` — one cohort over its post-treatment years (group aggregates),
    * ``(<NA>, <NA>)`` — all treated firms' post-treatment years (static / simple ATT).

    Returns one row per cell x contributor with columns ``outcome, cohort, event_time,
    contributor, n_firms, value, magnitude``: ``contributor`` is ``"g:<group_id>"`` when the
    firm belongs to an enterprise group, else ``"f:<firm_id>"``; ``n_firms`` is the number of
    distinct firms of that contributor in the cell; ``value`` the sum over its firm-years of
    the outcome's absolute value; ``magnitude`` whether the outcome is a magnitude (dominance
    and p% apply) or not (threshold only). Rows with a missing outcome are not counted.
    The frame holds identifiers: it is an input to the checks and is never released.
    """
    need = [idname, tname, gname]
    missing = [c for c in need if c not in panel.columns]
    if missing:
        raise ValueError(f"cell_contributions: panel lacks columns {missing}")
    treated = panel[pd.to_numeric(panel[gname], errors="coerce").fillna(0) > 0]
    firm = treated[idname].astype("string")
    if group and group in treated.columns:
        grp = treated[group].astype("string")
        contributor = ("g:" + grp).where(grp.notna() & (grp != ""), "f:" + firm)
    else:
        contributor = "f:" + firm
    cohort = pd.to_numeric(treated[gname]).astype("int64")
    event_time = pd.to_numeric(treated[tname]).astype("int64") - cohort
    frames = []
    for outcome in outcomes:
        if outcome not in treated.columns:
            continue
        y = pd.to_numeric(treated[outcome], errors="coerce")
        ok = y.notna().to_numpy()
        base = pd.DataFrame(
            {
                "contributor": contributor.to_numpy()[ok],
                "firm": firm.to_numpy()[ok],
                "cohort": cohort.to_numpy()[ok],
                "event_time": event_time.to_numpy()[ok],
                "value": np.abs(y.to_numpy(dtype=float)[ok]),
            }
        )
        magnitude = _is_magnitude(outcome, panel[outcome])
        post = base[base["event_time"] >= 0]
        for keys, src in (
            (["cohort", "event_time"], base),
            (["event_time"], base),
            (["cohort"], post),
            ([], post),
        ):
            g = src.groupby(keys + ["contributor"], sort=True, observed=True)
            agg = pd.DataFrame({"n_firms": g["firm"].nunique(), "value": g["value"].sum()}).reset_index()
            for k in ("cohort", "event_time"):
                if k not in keys:
                    agg[k] = pd.NA
            agg["outcome"] = outcome
            agg["magnitude"] = magnitude
            frames.append(agg)
    cols = ["outcome", "cohort", "event_time", "contributor", "n_firms", "value", "magnitude"]
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in cols})
    out = pd.concat(frames, ignore_index=True)[cols]
    out["outcome"] = out["outcome"].astype("string")
    out["contributor"] = out["contributor"].astype("string")
    out["cohort"] = pd.to_numeric(out["cohort"]).astype("Int64")
    out["event_time"] = pd.to_numeric(out["event_time"]).astype("Int64")
    out["n_firms"] = out["n_firms"].astype("int64")
    out["value"] = out["value"].astype("float64")
    out["magnitude"] = out["magnitude"].astype(bool)
    return out.sort_values(["outcome", "cohort", "event_time", "contributor"], na_position="first").reset_index(drop=True)


# --------------------------------------------------------------------------- checks


@dataclass
class Finding:
    """One withheld item and why."""

    item: str  # e.g. "estimate exports/cs dynamic e=3"
    kind: str  # estimate | table | model | column | file
    reasons: list[str]
    where: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "kind": self.kind, "reasons": list(self.reasons), "where": dict(self.where)}


def _cell_key(row: pd.Series) -> tuple | None:
    agg = row.get("aggregation")
    if agg == "calendar":
        return None
    cohort = row.get("cohort")
    et = row.get("event_time")
    t = row.get("time")
    if pd.isna(et) and not pd.isna(cohort) and not pd.isna(t) and agg == "gt":
        et = int(t) - int(cohort)
    c = None if pd.isna(cohort) else int(cohort)
    e = None if pd.isna(et) else int(et)
    if agg in ("static", "simple") and c is None and e is None:
        return (None, None)
    if agg == "matched" and e is None and not pd.isna(t) and c is not None:
        e = int(t) - c
    return (c, e)


def _index_contributions(contributors: pd.DataFrame | None) -> dict[tuple, tuple[np.ndarray, int, bool]]:
    """(outcome, cohort, event_time) -> (values, n_contributors, magnitude)."""
    if contributors is None or len(contributors) == 0:
        return {}
    out = {}
    df = contributors
    keys = (
        df["outcome"].astype(str).to_numpy(),
        df["cohort"].astype("Int64").astype("float64").to_numpy(),
        df["event_time"].astype("Int64").astype("float64").to_numpy(),
    )
    frame = pd.DataFrame({"o": keys[0], "c": keys[1], "e": keys[2], "v": df["value"].to_numpy(dtype=float), "m": df["magnitude"].to_numpy(dtype=bool)})
    for (o, c, e), g in frame.groupby(["o", "c", "e"], dropna=False, sort=True):
        key = (o, None if np.isnan(c) else int(c), None if np.isnan(e) else int(e))
        out[key] = (g["v"].to_numpy(), len(g), bool(g["m"].iloc[0]))
    return out


def model_dof(meta: dict[str, Any], n_params: int) -> float | None:
    """Residual dof of a model: ``df_resid`` when the estimator reports it (preferred);
    else ``n_clusters - 1`` under clustered inference (the effective dof of a cluster-robust
    variance); else ``n_obs - n_params``. Unit fixed effects are not subtracted here because
    the metadata does not say whether a model absorbs them: estimators that do should
    report ``df_resid``."""
    if meta.get("df_resid") is not None:
        return float(meta["df_resid"])
    if meta.get("n_clusters"):
        return float(meta["n_clusters"]) - 1
    if meta.get("n_obs") is not None:
        return float(meta["n_obs"]) - n_params
    return None


def _row_label(row: pd.Series) -> str:
    bits = [f"{row['outcome']}/{row['estimator']}", str(row.get("aggregation"))]
    if not pd.isna(row.get("term")):
        bits.append(f"term={row['term']}")
    for k, short in (("cohort", "g"), ("event_time", "e"), ("time", "t")):
        if not pd.isna(row.get(k)):
            bits.append(f"{short}={int(row[k])}")
    return "estimate " + " ".join(bits)


def check_estimates(
    tidy: pd.DataFrame,
    metas: dict[str, dict[str, Any]],
    contributors: pd.DataFrame | None,
    profile: Profile,
) -> tuple[pd.DataFrame, list[Finding]]:
    """Check every tidy row. Returns ``(flags, findings)`` with ``flags`` aligned to ``tidy``:
    ``n_contributors`` (the count the threshold used), ``suppressed`` (bool) and ``reasons``
    (``"; "``-joined)."""
    n = len(tidy)
    flags = pd.DataFrame({"n_contributors": pd.array([pd.NA] * n, dtype="Int64"), "suppressed": np.zeros(n, bool), "reasons": [""] * n})
    findings: list[Finding] = []
    if not profile.active or n == 0:
        return flags, findings
    index = _index_contributions(contributors)
    # model-level dof
    model_fail: dict[str, str] = {}
    if profile.min_dof:
        for key, meta in sorted(metas.items()):
            part = tidy[(tidy["outcome"].astype(str) + "-" + tidy["estimator"].astype(str)) == key]
            k = int(part["aggregation"].isin(["static", "dynamic", "gt"]).sum()) or 1
            dof = model_dof(meta or {}, k)
            if dof is not None and dof < profile.min_dof:
                model_fail[key] = f"residual degrees of freedom {dof:.0f} < {profile.min_dof}"
                findings.append(Finding(f"model {key}", "model", [model_fail[key]], {"model": key}))
    for i, row in tidy.reset_index(drop=True).iterrows():
        reasons: list[str] = []
        key = f"{row['outcome']}-{row['estimator']}"
        if key in model_fail:
            reasons.append(model_fail[key])
        meta = metas.get(key) or {}
        count = row.get("n_treated")
        count = None if pd.isna(count) else int(count)
        if count is None and (row.get("aggregation") in ("static", "simple") or (row.get("aggregation") == "matched" and pd.isna(row.get("event_time")))) and meta.get("n_treated_units") is not None:
            count = int(meta["n_treated_units"])
        ck = _cell_key(row)
        cell = index.get((str(row["outcome"]), *ck)) if ck is not None else None
        if cell is not None:
            count = cell[1] if count is None else min(count, cell[1])
        if count is not None:
            flags.at[i, "n_contributors"] = count
        if profile.min_units and threshold_fails(count, profile.min_units):
            reasons.append(
                "no distinct-firm count available" if count is None else f"fewer than {profile.min_units} distinct firms"
            )
        if cell is not None and cell[2]:
            values = cell[0]
            for nn, kk in profile.dominance:
                if nk_fails(values, nn, kk):
                    reasons.append(f"dominance ({nn}, {kk:.0%}) exceeded")
            if profile.p_percent is not None and p_percent_fails(values, profile.p_percent, profile.zeros_disclosive):
                r = p_ratio(values)
                reasons.append(
                    f"p% rule (p = {profile.p_percent:.0%}) failed" if not np.isnan(r)
                    else "p% rule: zero total or a single contributor"
                )
        if reasons:
            flags.at[i, "suppressed"] = True
            flags.at[i, "reasons"] = "; ".join(reasons)
            if not reasons == [model_fail.get(key)]:
                findings.append(Finding(_row_label(row), "estimate", reasons, {"outcome": str(row["outcome"]), "estimator": str(row["estimator"])}))
    return flags, findings


MINMAX = re.compile(r"^(min|max|minimum|maximum)$|(_min|_max|_minimum|_maximum)$|^(min|max)_", re.IGNORECASE)
ROW_COUNTS = ("n_treated", "n_treated_units", "n_control", "n_control_units", "n_firms", "n_units")
LABEL_COLUMNS = {"treated", "control", "cohort", "year", "time", "event_time", "level", "dimension", "covariate", "sample", "type", "term"}


def check_table(
    name: str,
    df: pd.DataFrame,
    profile: Profile,
    *,
    n_units: int | None = None,
    row_counts: tuple[str, ...] = ROW_COUNTS,
    cell_counts: tuple[str, ...] = (),
) -> tuple[pd.DataFrame, list[Finding]]:
    """Check an auxiliary table before release and return the releasable copy + findings.

    * min/max columns are dropped (``no_minmax``);
    * a row whose distinct-firm count in one of ``row_counts`` is positive but below the
      threshold has all its numeric statistics blanked (labels such as cohort years kept);
    * a count in one of ``cell_counts`` below the threshold is blanked on its own (a small
      frequency, e.g. 3 members in a sector of 200 firms);
    * ``n_units``: distinct treated firms behind the whole table (e.g. the estimator's
      ``n_treated_units`` for a balance table of treated means); below the threshold every
      numeric statistic is blanked.
    """
    findings: list[Finding] = []
    out = df.copy()
    if not profile.active:
        return out, findings
    if profile.no_minmax:
        drop = [c for c in out.columns if MINMAX.search(str(c))]
        if drop:
            out = out.drop(columns=drop)
            findings.append(Finding(f"table {name}: columns {', '.join(map(str, drop))}", "column", ["raw minima/maxima are not released"], {"table": name}))
    if not profile.min_units:
        return out, findings
    stats = [c for c in out.columns if pd.api.types.is_numeric_dtype(out[c]) and not pd.api.types.is_bool_dtype(out[c]) and str(c) not in LABEL_COLUMNS]
    labels = [c for c in out.columns if c not in stats]

    def blank(mask: np.ndarray, cols: list[str]) -> None:
        for c in cols:
            out[c] = out[c].astype("float64")
            out.loc[mask, c] = np.nan

    if n_units is not None and threshold_fails(n_units, profile.min_units):
        blank(np.ones(len(out), bool), stats)
        findings.append(Finding(f"table {name}", "table", [f"fewer than {profile.min_units} distinct treated firms behind the table"], {"table": name}))
        return out, findings
    rc = [c for c in out.columns if c in row_counts]
    if rc:
        cnt = out[rc].apply(pd.to_numeric, errors="coerce")
        bad = ((cnt > 0) & (cnt < profile.min_units)).any(axis=1).to_numpy()
        if bad.any():
            blank(bad, stats)
            for j in np.flatnonzero(bad):
                lab = ", ".join(f"{c}={out.iloc[j][c]}" for c in labels[:3]) or f"row {j}"
                findings.append(Finding(f"table {name}: {lab}", "table", [f"fewer than {profile.min_units} distinct firms"], {"table": name}))
    for c in [c for c in out.columns if c in cell_counts]:
        v = pd.to_numeric(out[c], errors="coerce")
        bad = ((v > 0) & (v < profile.min_units)).to_numpy()
        if bad.any():
            blank(bad, [c])
            for j in np.flatnonzero(bad):
                lab = ", ".join(f"{k}={out.iloc[j][k]}" for k in labels[:3]) or f"row {j}"
                findings.append(Finding(f"table {name}: {lab}, {c}", "table", [f"a count below {profile.min_units} (small frequency)"], {"table": name}))
    return out, findings


def small_count(n: Any, profile: Profile) -> bool:
    """A positive count below the threshold (flow tables show it as '< k')."""
    if not profile.active or not profile.min_units or n is None or pd.isna(n):
        return False
    return 0 < int(n) < profile.min_units


# --------------------------------------------------------------------------- release scan

UNIT_COLUMNS = {"firm_id", "group_id", "idname", "unit", "unit_id", "firm", "contributor"}
FORBIDDEN_COLUMN = re.compile(r"^(resid|residual|residuals|fitted|fitted_values|yhat|fe_|fixef|firm_fe|unit_fe|alpha_i)", re.IGNORECASE)
FORBIDDEN_SUFFIX = (".pkl", ".pickle", ".joblib", ".npy", ".npz", ".parquet", ".feather", ".dta", ".rds", ".rdata")
PICKLE_MAGIC = (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05")


def scannable_ids(ids) -> set[str]:
    """The identifiers the release scan looks for as tokens: every id of at least 3
    characters that is not all digits (an all-digit id cannot be told from a count or a
    year in a table; such ids are kept out of report text by :func:`redact_units`, which
    drops every ``(first: ...)`` list naming one, but the scan cannot find them)."""
    return {str(i) for i in ids if i is not None and len(str(i)) >= 3 and not str(i).isdigit()}


def release_scan(files: dict[str, bytes], forbidden_ids: set[str] | None = None, id_columns: set[str] | None = None,
                 sources: dict[str, bytes] | None = None) -> list[Finding]:
    """Scan the files about to be released. Finds: pickles and binary data frames; CSV,
    Markdown and LaTeX tables with an identifier column (``firm_id``, ``group_id``, ...) or a
    residual / fitted-value / fixed-effect column; and, when ``forbidden_ids`` is given (the
    run's firm and group ids; :func:`scannable_ids` says which can be searched), any
    occurrence of one of those identifiers as a token in any released text: every text file
    (HTML, CSV, JSON, Markdown, LaTeX) byte for byte, and for a file whose bytes are
    compressed (``report.pdf``) the text it was rendered from, given in ``sources`` (path ->
    the Typst source). A PNG is checked through its source data, the ``figures/*.csv``
    beside it; a PDF without a source in ``sources`` fails when ids are given."""
    findings: list[Finding] = []
    idcols = {c.lower() for c in (id_columns or set()) | UNIT_COLUMNS}
    token = re.compile(rb"[A-Za-z0-9_\-]+")
    ids = {i.encode() for i in scannable_ids(forbidden_ids or set())}
    sources = sources or {}
    for path in sorted(files):
        data = files[path]
        low = path.lower()
        if low.endswith(FORBIDDEN_SUFFIX) or data[:2] in PICKLE_MAGIC:
            findings.append(Finding(f"file {path}", "file", ["pickles and binary data frames are never released"], {"file": path}))
            continue
        if low.endswith(".png"):
            continue
        text = data
        if low.endswith(".pdf"):
            if path not in sources:
                if ids:
                    findings.append(Finding(f"file {path}", "file", ["the text this PDF was rendered from was not given to the scan"], {"file": path}))
                continue
            text = sources[path]
        header = None
        if low.endswith(".csv"):
            header = text.split(b"\n", 1)[0].decode("utf-8", "replace")
        elif low.endswith(".md"):
            header = next((ln for ln in text.decode("utf-8", "replace").splitlines() if ln.startswith("|")), None)
        if header is not None:
            cells = [c.strip().strip('"').strip("'").strip().lower() for c in re.split(r"[,|]", header)]
            bad = sorted({c for c in cells if c in idcols or (c and FORBIDDEN_COLUMN.match(c))})
            if bad:
                findings.append(Finding(f"file {path}: column(s) {', '.join(bad)}", "file", ["unit-level identifiers, residuals or fixed effects are never released"], {"file": path}))
        if ids:
            hits = sorted({t.decode() for t in token.findall(text) if t in ids})
            if hits:
                findings.append(Finding(f"file {path}: {len(hits)} unit identifier(s)", "file", ["unit identifiers are never released (the ids themselves are not repeated here)"], {"file": path}))
    return findings


_FIRST_LIST = re.compile(r"\s*\((?:the )?first(?: \d+)?:\s*((?:[^()]|\([^()]*\))*)\)", re.IGNORECASE)
_TOKEN = re.compile(r"[A-Za-z0-9_\-]+")
_SEP = re.compile(r"^(?:\s*[,;]\s*|\s+and\s+|\s+)$")
_MORE = re.compile(r"^\s*\(\+(\d+) more\)")
_MORE_ANY = re.compile(r"\(\+\d+ more\)")
_PAREN_LIST = re.compile(r"\s*\(((?:[^()]|\(\+\d+ more\))*)\)")


def redact_units(text: str, ids, noun: str = "firm") -> str:
    """``text`` with every unit identifier in ``ids`` rewritten to a count, for any text the
    report shows (error messages of skipped estimators, limitations, notes, captions):

    * a parenthesised list of offending keys, ``" (first: F1, F5, F9 (+354 more))"`` as
      :func:`models.errors.first_keys` writes it, is removed when it names an identifier
      (all-digit ids too): the message states the count before it; so is a parenthesis
      holding nothing but ids, ``" (1001, 1005)"``;
    * any other run of identifiers (separated by commas, semicolons or "and", optionally
      followed by ``"(+N more)"``) becomes ``"<n> firms"``; all-digit ids are left here
      (they cannot be told from numbers), which is why the first rule exists.

    Pure and idempotent; ``ids`` is the run's firm (and group) ids as strings."""
    if not text or not ids:
        return text
    idset = ids if isinstance(ids, (set, frozenset)) else set(ids)

    def first_list(m: re.Match) -> str:
        return "" if any(t in idset for t in _TOKEN.findall(m.group(1))) else m.group(0)

    def id_list(m: re.Match) -> str:  # "(1001, 1005 (+3 more))": nothing but ids
        toks = _TOKEN.findall(_MORE_ANY.sub("", m.group(1)))
        return "" if toks and all(t in idset for t in toks) else m.group(0)

    text = _FIRST_LIST.sub(first_list, text)
    text = _PAREN_LIST.sub(id_list, text)
    hits = [m for m in _TOKEN.finditer(text) if m.group(0) in idset and not m.group(0).isdigit()]
    if not hits:
        return text
    runs: list[list[re.Match]] = [[hits[0]]]
    for m in hits[1:]:
        if _SEP.match(text[runs[-1][-1].end():m.start()]):
            runs[-1].append(m)
        else:
            runs.append([m])
    out, pos = [], 0
    for run in runs:
        n, end = len(run), run[-1].end()
        more = _MORE.match(text[end:])
        if more:
            n += int(more.group(1))
            end += more.end()
        out.append(text[pos:run[0].start()])
        out.append(f"{n} {noun}{'' if n == 1 else 's'}")
        pos = end
    out.append(text[pos:])
    return "".join(out)


def redact_tree(obj: Any, ids) -> Any:
    """:func:`redact_units` applied to every string of a nested dict/list (the report
    content); other values unchanged."""
    if not ids:
        return obj
    if isinstance(obj, str):
        return redact_units(obj, ids)
    if isinstance(obj, dict):
        return {k: redact_tree(v, ids) for k, v in obj.items()}
    if isinstance(obj, list):
        return [redact_tree(v, ids) for v in obj]
    if isinstance(obj, tuple):
        return tuple(redact_tree(v, ids) for v in obj)
    return obj


# --------------------------------------------------------------------------- summary


@dataclass
class DisclosureSummary:
    profile: Profile
    findings: list[Finding] = field(default_factory=list)
    scan_findings: list[Finding] = field(default_factory=list)
    n_checked: int = 0

    @property
    def n_withheld(self) -> int:
        """Withheld items: the one count the badge, the box, the limitations and
        disclosure.json/.md all show."""
        return len(self.findings)

    @property
    def verdict(self) -> str:
        if self.scan_findings:
            return "block"
        if self.findings and self.profile.on_fail == "block":
            return "block"
        return "pass"

    def status_line(self) -> str:
        if not self.profile.active:
            return "Disclosure control is OFF (profile 'off'): nothing was checked. Do not release outputs from real data with this profile."
        if self.verdict == "block":
            why = "the release scan found unit-level content" if self.scan_findings else f"{self.n_withheld} item(s) failed and the profile blocks on failure"
            return f"BLOCKED: {why}. Nothing may be released."
        if self.findings:
            return f"Released with suppression: {self.n_withheld} item(s) withheld under profile '{self.profile.name}'; everything else passed."
        return f"Passed: all {self.n_checked} released estimates passed profile '{self.profile.name}'."

    def to_dict(self) -> dict[str, Any]:
        p = self.profile
        return {
            "profile": {
                "name": p.name, "min_units": p.min_units, "dominance": [list(d) for d in p.dominance],
                "p_percent": p.p_percent, "min_dof": p.min_dof, "no_minmax": p.no_minmax,
                "zeros_disclosive": p.zeros_disclosive, "on_fail": p.on_fail,
            },
            "checks": p.describe() if p.active else [{"check": "release scan", "rule": "no unit-level rows, firm identifiers, residuals, fixed effects or pickles"}],
            "verdict": self.verdict,
            "status": self.status_line(),
            "n_estimates_checked": self.n_checked,
            "n_withheld": self.n_withheld,
            "withheld": [f.to_dict() for f in self.findings],
            "release_scan": [f.to_dict() for f in self.scan_findings],
        }

    def to_markdown(self) -> str:
        d = self.to_dict()
        lines = ["# Disclosure control summary", "", f"Profile: **{self.profile.name}** (on failure: {self.profile.on_fail})", "",
                 f"Verdict: **{d['verdict']}** — {d['status']}", "", "## Checks", "", "| check | rule |", "|---|---|"]
        for c in d["checks"]:
            lines.append(f"| {md_escape(c['check'])} | {md_escape(c['rule'])} |")
        lines += ["", f"## Withheld items ({self.n_withheld})", ""]
        if self.findings:
            lines += ["| item | reasons |", "|---|---|"]
            lines += [f"| {md_escape(f.item)} | {md_escape('; '.join(f.reasons))} |" for f in self.findings]
        else:
            lines.append("None.")
        lines += ["", "## Release scan", ""]
        if self.scan_findings:
            lines += [f"- {md_escape(f.item)}: {md_escape('; '.join(f.reasons))}" for f in self.scan_findings]
        else:
            lines.append("No unit-level rows, identifiers, residuals, fixed effects or pickles found in the released files.")
        return "\n".join(lines) + "\n"


def md_escape(s: Any) -> str:
    """Escape text for a Markdown table cell."""
    s = str(s).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")
    for ch in "*_`[]<>#":
        s = s.replace(ch, "\\" + ch)
    return s
