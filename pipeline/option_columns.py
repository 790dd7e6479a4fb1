"""Every params value that names a panel column, checked against the panel's columns at once.

Column names are known only once the panel is: ``cluster-impact check`` predicts them from the
firm file's header (mapped, passed-through and derived columns plus what build_groups adds),
and the estimate stage reads the processed panel's Parquet schema (no data) before it fits
anything. Both call :func:`check_columns`, which raises one ConfigError (exit 5) listing every
unknown name with its close matches. The options that name columns (``COLUMN_OPTIONS``):

* ``estimate.outcomes``, ``covariates``, ``variants.<name>.covariates``, ``vcov.by``;
* ``estimate.fixed_effects``: each part of a column or an ``a^b`` interaction;
* ``matching``: ``covariates``, ``trends`` (as given; the default trend is skipped where the
  panel lacks it, as documented), ``exact``, the keys of ``cutpoints``;
* ``weighting``: ``covariates``, ``trends``;
* ``heterogeneity.by``: a column, or a dimension word whose column must exist (``size_class``
  reads ``employment``; ``cluster_strength`` is skipped without a cluster map);
* ``checks``: ``placebo_outcome``, ``loo_by`` and the re-run estimator's own options;
* ``sdid.level``: a column to aggregate to (the word ``firm`` excepted).

Only the estimators that run (``estimate.estimators`` / ``outcome_estimators``) are checked.
"""

from __future__ import annotations

import difflib
from typing import Any, Iterable

from models.errors import ConfigError

from .config import VARIANT_KEYS, Params, estimator_base, estimators_for

#: option -> "numeric" (a number column) | "any" (any column) | "keys" (the mapping's keys are columns)
COLUMN_OPTIONS: dict[str, dict[str, str]] = {
    "matching": {"covariates": "numeric", "trends": "numeric", "exact": "any", "cutpoints": "keys"},
    "weighting": {"covariates": "numeric", "trends": "numeric"},
    "heterogeneity": {"by": "dimension"},
    "checks": {"placebo_outcome": "numeric", "loo_by": "any"},
    "sdid": {"level": "any"},
}
WORDS = {"trends": ("outcome",), "level": ("firm",)}  # values with a meaning of their own
DIMENSION_COLUMNS = {"size_class": "employment", "sector": "sector", "region": "region", "cluster_id": "cluster_id"}
SKIPPED_DIMENSIONS = ("cluster_strength",)  # no cluster map: the subgroup is skipped with a note


def _listed(v: Any) -> list[Any]:
    if v is None:
        return []
    if isinstance(v, dict):
        return list(v)
    return [v] if isinstance(v, str) else list(v) if isinstance(v, list) else []


class _Checker:
    def __init__(self, columns: Iterable[str], numeric: set[str] | None, source: str):
        self.columns = set(columns)
        self.numeric = numeric
        self.source = source
        self.problems: list[str] = []

    def name(self, where: str, name: Any, kind: str = "any") -> None:
        if not isinstance(name, str):
            return  # the load-time validation reported it
        pool = sorted(self.numeric if kind == "numeric" and self.numeric is not None else self.columns)
        if name in self.columns and (kind != "numeric" or self.numeric is None or name in self.numeric):
            return
        close = difflib.get_close_matches(name, pool, n=3, cutoff=0.7)
        hint = f" (did you mean {' or '.join(map(repr, close))}?)" if close else ""
        numeric = kind == "numeric" and self.numeric is not None
        if name in self.columns:
            why = f"{name!r} is a column of {self.source} but not numeric; give a numeric column"
        else:
            why = f"{name!r} is not a column of {self.source}{hint}; give one of the {'numeric ' if numeric else ''}columns listed above"
        self.problems.append(f"{where}: {why}")

    def available(self) -> str:
        def show(names):
            names = sorted(names)
            return ", ".join(names[:80]) + (f" (+{len(names) - 80} more)" if len(names) > 80 else "")
        text = f"columns: {show(self.columns)}"
        return text + (f"; numeric columns: {show(self.numeric)}" if self.numeric is not None else "")

    def names(self, where: str, values: Any, kind: str = "any", words: tuple[str, ...] = ()) -> None:
        for v in _listed(values):
            if v not in words:
                self.name(where, v, kind)


def _given(params: Params, key: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The options of estimator ``key`` as the user gave them (base section, then the variant's
    own), with where each came from."""
    est = params["estimate"]
    base = estimator_base(params, key)
    out, where = {}, {}
    for k, v in (est.get(base) or {}).items():
        out[k], where[k] = v, f"estimate.{base}.{k}"
    if base != key:
        for k, v in (est["variants"][key] or {}).items():
            if k not in VARIANT_KEYS:  # covariates / control_group of a variant are the spec's (checked above)
                out[k], where[k] = v, f"estimate.variants.{key}.{k}"
    return out, where


def _estimator_columns(chk: _Checker, base: str, given: dict[str, Any], where: dict[str, str]) -> None:
    for opt, kind in COLUMN_OPTIONS.get(base, {}).items():
        if opt not in given:
            continue  # defaults: documented as used where present (matching trends, checks.loo_by)
        at, value = where[opt], given[opt]
        if kind == "keys":
            chk.names(at, list(value) if isinstance(value, dict) else [], "any")
        elif kind == "dimension":
            for d in _listed(value):
                if d in SKIPPED_DIMENSIONS:
                    continue
                chk.name(at, DIMENSION_COLUMNS.get(d, d))
        else:
            chk.names(at, value, kind, WORDS.get(opt, ()))
    if base == "checks":
        from models import registry

        inner = given.get("estimator", "twfe")
        inner_opts = given.get("estimator_options")
        if isinstance(inner_opts, dict) and inner in registry.REGISTRY:
            prefix = where.get("estimator_options", "estimate.checks.estimator_options")
            _estimator_columns(chk, inner, inner_opts, {k: f"{prefix}.{k}" for k in inner_opts})


def column_problems(params: Params, columns: Iterable[str], numeric: set[str] | None = None,
                    source: str = "the processed panel") -> list[str]:
    """Every option value that names a column missing from ``columns`` (or, with ``numeric``,
    not numeric where a number is needed)."""
    return _check(params, columns, numeric, source).problems


def _check(params: Params, columns: Iterable[str], numeric: set[str] | None, source: str) -> _Checker:
    est = params["estimate"]
    chk = _Checker(columns, numeric, source)
    chk.names("estimate.outcomes", est["outcomes"], "numeric")
    chk.names("estimate.covariates", est["covariates"], "numeric")
    for name, v in (est.get("variants") or {}).items():
        chk.names(f"estimate.variants.{name}.covariates", (v or {}).get("covariates"), "numeric")
    from models.fixed_effects import parts

    for i, term in enumerate(est.get("fixed_effects") or []):
        if isinstance(term, str):
            for p in parts(term):
                chk.name(f"estimate.fixed_effects[{i}]", p)
    by = (est.get("vcov") or {}).get("by")
    if (est.get("vcov") or {}).get("kind", "cluster") not in ("iid", "hetero"):
        chk.names("estimate.vcov.by", by)
    keys = dict.fromkeys(k for o in est["outcomes"] or [] for k in estimators_for(params, o))
    for key in keys:
        given, where = _given(params, key)
        _estimator_columns(chk, estimator_base(params, key), given, where)
    chk.problems = list(dict.fromkeys(chk.problems))
    return chk


def check_columns(params: Params, columns: Iterable[str], numeric: set[str] | None = None,
                  source: str = "the processed panel") -> None:
    """Raise one ConfigError (exit 5) listing every column-valued option that names no column."""
    chk = _check(params, columns, numeric, source)
    if chk.problems:
        raise ConfigError(
            f"{len(chk.problems)} estimate setting(s) name columns that {source} lacks; fix the names in params.yaml "
            f"(a column of your firm file is usable under its own name, or map it under columns:). {chk.available()}:",
            problems=chk.problems,
        )
