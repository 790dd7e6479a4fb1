"""params.yaml: load (safe loader), validate against the schema, resolve paths.

Every key is declared here with its default. Unknown keys are errors (exit 5). Paths are
relative to the params file's folder and may not escape the project folder. Column names
and outcome names are checked against a strict allowlist before any formula library sees
them (formula libraries evaluate Python).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from models import cluster_map as _cluster_map
from models import options as _opt
from models import registry
from models.errors import ConfigError

SAFE_NAME = _opt.SAFE_NAME
SEED_MAX = 2**32 - 1  # numpy's generators take 0 <= seed < 2**32
MAX_PARAMS_BYTES = 1_000_000  # a params file is a few kB; refuse anything that is not one
# list-valued keys that also take one name (vcov.by: firm_id)
STR_AS_LIST = {"estimate.vcov.by"}

# pipeline column names the firm panel may map (pipeline name: meaning)
PANEL_FIELDS = {
    "firm_id": "firm identifier (required)",
    "year": "calendar year (required)",
    "sector": "sector code, e.g. NACE 2-digit",
    "region": "region code, e.g. NUTS-2",
    "founding_year": "year the firm was founded",
    "employment": "employees (headcount or FTE)",
    "turnover": "turnover / sales, nominal",
    "value_added": "value added, nominal",
    "wage_bill": "wage bill / personnel costs, nominal",
    "capital": "tangible fixed assets, nominal",
    "intermediates": "intermediate inputs / materials, nominal",
    "exports": "export sales, nominal",
    "patents": "patent applications (count)",
    "rd": "R&D expenditure, nominal",
    "group_id": "enterprise group id (firms of one group count as one contributor)",
    "x_coord": "location easting/longitude (optional, for distance rings)",
    "y_coord": "location northing/latitude (optional)",
}
MEMBERSHIP_FIELDS = ("firm_id", "cluster_id", "join_year", "leave_year")

DEFAULTS: dict[str, Any] = {
    "seed": 20261122,
    "engine": "pandas",
    "data": {
        "firms": {"path": "data/raw/firms.csv"},
        # the register; date_format / join_rule: join and leave given as dates (README "Registers");
        # from_panel: membership read from a 0/1 or cluster-id column of the firm panel instead
        "membership": {"path": "data/raw/membership.csv", "date_format": None, "join_rule": "year_of_date", "from_panel": None},
        "deflators": None,
        "truth": None,
        # a second programme's register (e.g. an R&D subsidy): firm_id, start_year[, end_year];
        # how its firms are handled: build_groups.overlap
        "other_programme": None,
        # a collaboration edge list: firm_a, firm_b, year, kind (pipeline/collaborations.py);
        # derives n_partners, partners_same_initiative, new_partners, share_partners_outside_region
        "collaborations": None,
        # the programme's spending (value_for_money): initiative (cluster_id) or firm_id, year, amount, currency
        "costs": None,
    },
    "columns": {
        "firm_id": "firm_id",
        "year": "year",
    },
    "membership_columns": {f: f for f in MEMBERSHIP_FIELDS},
    # what the money columns are measured in (README "Units"): every sentence, table and axis says it
    "units": copy.deepcopy(_opt.UNITS_DEFAULTS),
    "ingest": {
        "years": None,  # [first, last] or null = all years in the file
        "derive": ["labour_productivity", "log_labour_productivity", "export_status"],
        "log_nonpositive": "drop",  # drop | fail : rows where a logged input is <= 0
        "drop_missing_outcomes": False,
        "tfp": {"method": "acf", "output": "value_added", "by": None, "bootstrap": 0},  # for derive: [log_tfp]
    },
    "build_groups": {
        "leavers": "absorbing",  # absorbing | drop | error
        "always_treated": "drop",  # drop | error
        "after_window": "never",  # never | error
        "min_pre_periods": 0,
        "spillover": {"by": "cell", "radius": None},  # co-location: cell (region x sector) | ring (within radius of a member)
        "overlap": "exclude",  # firms of data.other_programme: exclude | control | arm
        # cluster map + cluster_strength (defaults: models.cluster_map.DEFAULTS)
        "cluster_map": copy.deepcopy(_cluster_map.DEFAULTS),
    },
    "estimate": {
        "outcomes": ["log_labour_productivity"],
        "estimators": ["cs", "sunab", "imputation", "event_study", "twfe"],  # heterogeneity-robust first
        "covariates": [],
        # absorbed effects of the regression DiD estimators (models.fixed_effects): columns or
        # a^b interactions; firm_id and year required (models.registry.EXTRA_FIXED_EFFECTS take more)
        "fixed_effects": ["firm_id", "year"],
        "control_group": "nevertreated",
        "vcov": {"kind": "cluster", "by": ["firm_id"], "weights": None, "draws": None},  # weights/draws: kind wild
        "alpha": 0.05,
        "outcome_estimators": {},  # outcome: [keys] replacing `estimators` for that outcome (e.g. Poisson for counts)
        # named variants of a registry estimator with their own options, covariates or control
        # group, usable as estimator keys: {cs_dr: {estimator: cs, covariates: [...], est_method: dr}}
        "variants": {},
        # HonestDiD + pre-test power for event studies (models.inference.sensitivity)
        "sensitivity": {"estimators": ["event_study"], "outcomes": None, "mbar": [0.5, 1.0, 1.5, 2.0], "window": [-5, 5]},
        "on_error": "fail",  # fail | skip : a design that cannot be estimated stops the stage (exit 4) or is listed and skipped
    },
    # what the effects imply for the spending in data.costs (models.value_for_money; README "Value for money")
    "value_for_money": copy.deepcopy(_opt.VFM_DEFAULTS),
    "report": {
        "formats": ["html"],
        "disclosure": "strict",
        "title": "Cluster programme impact evaluation",
        "labels": {},
    },
}

FILE_OPTIONS = {"path", "sep", "decimal", "thousands", "encoding", "sheet", "na_values"}
MEMBERSHIP_OPTIONS = {"date_format", "join_rule", "from_panel"}  # data.membership only
DATE_FORMATS = ("iso", "dmy", "excel", "stata")  # or a strftime pattern such as '%d/%m/%Y'
# panel column names the pipeline creates after ingest (build_groups) or uses internally: a
# firm-file column may not pass through under them
RESERVED_COLUMNS = ("first_treat", "ever_member", "post", "rel_time", "cluster_id", "leave_year", "colocated",
                    "eligible", "exposure_year", "other_programme", "arm", "_row", "_key")


@dataclass(frozen=True)
class Params:
    """Validated parameters. ``raw`` is the merged dict; ``root`` the params folder."""

    raw: dict[str, Any]
    root: Path
    path: Path

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def section(self, key: str) -> dict[str, Any]:
        return copy.deepcopy(self.raw[key])

    def resolve(self, rel: str | Path) -> Path:
        return resolve_path(self.root, rel)

    @property
    def seed(self) -> int:
        return int(self.raw["seed"])


def resolve_path(root: Path, rel: str | Path) -> Path:
    """Resolve ``rel`` against ``root``; refuse absolute paths and paths (or symlinks)
    that land outside ``root``."""
    rel = Path(rel)
    if rel.is_absolute():
        raise ConfigError(f"path {str(rel)!r} is absolute; give paths relative to the params file's folder {root}")
    root_r = root.resolve()
    target = (root_r / rel).resolve()
    if target != root_r and root_r not in target.parents:
        raise ConfigError(
            f"path {str(rel)!r} resolves to {target}, outside the project folder {root_r}; "
            "paths (and symlinks) may not escape the project"
        )
    return target


def _merge(default: Any, given: Any, where: str, problems: list[str], open_keys: bool = False) -> Any:
    """``given`` over ``default``; a value of the wrong container type (a list where a mapping
    belongs, a string where a list belongs: it would be read letter by letter) or a quoted
    boolean is a problem, and the default is kept so that later checks see a usable value."""
    if given is not None and isinstance(default, dict) and not isinstance(given, dict):
        problems.append(f"{where}: {_opt.shown(given)}; give a mapping (key: value on indented lines, or {{key: value}})")
        return copy.deepcopy(default)
    if given is not None and isinstance(default, list) and not isinstance(given, list) and where not in STR_AS_LIST:
        eg = f"[{given}]" if isinstance(given, (str, int, float)) else "[a, b]"
        problems.append(f"{where}: {_opt.shown(given)}; give a list, e.g. {eg}")
        return copy.deepcopy(default)
    if isinstance(default, bool) and given is not None and not isinstance(given, bool):
        problems.append(f"{where}: {_opt.shown(given)}; give true or false (unquoted; a quoted 'yes' is a string)")
        return default
    if isinstance(default, dict) and not default:  # an open mapping (labels, outcome_estimators)
        return copy.deepcopy(given)
    if isinstance(default, dict) and isinstance(given, dict):
        out = copy.deepcopy(default)
        for k, v in given.items():
            if k not in default and not open_keys:
                problems.append(f"{where}.{k}: unknown key (allowed: {', '.join(sorted(default))})")
                continue
            out[k] = _merge(default.get(k), v, f"{where}.{k}", problems) if k in default else v
        return out
    if given is None:
        return None
    return given


def check_name(name: Any, where: str, problems: list[str]) -> None:
    if not isinstance(name, str) or not SAFE_NAME.match(name):
        hint = ""
        if isinstance(name, str) and name:
            safe = re.sub(r"[^A-Za-z0-9_]", "_", name)
            safe = safe if re.match(r"[A-Za-z_]", safe) else "_" + safe
            hint = (f"; if it is a column of your firm file, give it a safe name under columns: "
                    f"(e.g. columns: {{{safe[:64]}: {name!r}}}) and use that name here")
        problems.append(
            f"{where}: {name!r} is not a safe column name (letters, digits, underscore; "
            f"starting with a letter or underscore; at most 64 characters){hint}"
        )


def _check_membership_options(spec: dict[str, Any], firms: Any, problems: list[str]) -> None:
    """data.membership.date_format / join_rule / from_panel (see the README, "Registers")."""
    df = spec.get("date_format")
    if df is not None and not (isinstance(df, str) and (df in DATE_FORMATS or "%" in df)):
        problems.append(f"data.membership.date_format: {df!r}; allowed: null (years, ISO yyyy-mm-dd, dd.mm.yyyy and the "
                        f"file's own date cells), {', '.join(DATE_FORMATS)}, or a strftime pattern such as '%d/%m/%Y'")
    rule = spec.get("join_rule", "year_of_date")
    ok = rule is None or rule == "year_of_date"
    if isinstance(rule, dict) and set(rule) == {"next_year_if_after_month"}:
        m = rule["next_year_if_after_month"]
        ok = isinstance(m, int) and not isinstance(m, bool) and 0 <= m <= 11
    if not ok:
        problems.append(f"data.membership.join_rule: {rule!r}; allowed: year_of_date, or {{next_year_if_after_month: N}} "
                        "with N in 0..11 (a join date after month N counts from the next year)")
    fp = spec.get("from_panel")
    if fp is not None:
        if not isinstance(fp, str) or not fp or len(fp) > 128 or any(c in fp for c in "\n\r\x00"):
            problems.append(f"data.membership.from_panel: {fp!r}; give the firm file's 0/1 or cluster-id column")
        firms_path = firms.get("path") if isinstance(firms, dict) else firms
        if spec.get("path") is not None and spec.get("path") != firms_path:
            problems.append("data.membership: from_panel reads the firm file; give path only as that same file "
                            f"({firms_path!r}, which DVC's input@membership stage then tracks) or leave it out")


def validate(raw: dict[str, Any], problems: list[str]) -> dict[str, Any]:
    """Merge ``raw`` onto DEFAULTS, collecting every problem."""
    if not isinstance(raw, dict):
        problems.append("params file must be a YAML mapping")
        return copy.deepcopy(DEFAULTS)
    top_unknown = set(raw) - set(DEFAULTS)
    for k in sorted(top_unknown):
        problems.append(f"{k}: unknown top-level key (allowed: {', '.join(DEFAULTS)})")
    merged: dict[str, Any] = {}
    for key, default in DEFAULTS.items():
        given = raw.get(key, default)
        if isinstance(default, dict) and given is not None and not isinstance(given, dict):
            problems.append(f"{key}: {_opt.shown(given)}; give a mapping (key: value on indented lines), "
                            "see the README's params.yaml reference")
            given = default
        if key == "columns":
            merged[key] = {**default, **(given or {})}
        elif key == "data":
            given = given or {}
            for k in sorted(set(given) - set(default)):
                problems.append(f"data.{k}: unknown key (allowed: {', '.join(default)})")
            merged[key] = {k: copy.deepcopy(given.get(k, v)) for k, v in default.items()}
        elif key == "estimate":
            merged[key] = _merge(default, given or {}, key, problems, open_keys=True)
        else:
            merged[key] = _merge(default, given, key, problems)

    # seed
    seed = merged["seed"]
    if not _opt.is_int(seed) or not 0 <= seed <= SEED_MAX:
        problems.append(f"seed: must be an integer from 0 to {SEED_MAX}, got {_opt.shown(seed)} (numpy's random generators "
                        "take 0 <= seed < 2**32), e.g. seed: 20261122")
    if merged["engine"] not in ("pandas", "duckdb", "spark"):
        problems.append(f"engine: {merged['engine']!r}; allowed: pandas, duckdb, spark")

    # data files
    for name in ("firms", "membership", "deflators", "truth", "other_programme", "collaborations", "costs"):
        spec = merged["data"].get(name)
        if spec is None:
            if name in ("firms", "membership"):
                problems.append(f"data.{name}: required")
            continue
        if isinstance(spec, str):
            spec = {"path": spec}
            merged["data"][name] = spec
        if name == "membership" and isinstance(spec, dict):
            _check_membership_options(spec, merged["data"].get("firms"), problems)
            if spec.get("from_panel") is not None:
                continue
        if not isinstance(spec, dict) or "path" not in spec:
            problems.append(f"data.{name}: give a mapping with at least 'path'")
            continue
        allowed = FILE_OPTIONS | (MEMBERSHIP_OPTIONS if name == "membership" else set())
        for k in set(spec) - allowed:
            problems.append(f"data.{name}.{k}: unknown key (allowed: {', '.join(sorted(allowed))})")

    # column maps
    for pname, fname in merged["columns"].items():
        if pname not in PANEL_FIELDS:  # a column of your own under a name of your choice (a rename)
            if not isinstance(pname, str) or not SAFE_NAME.match(pname):
                problems.append(f"columns.{pname}: not a safe column name for a column of your own (letters, digits, "
                                f"underscore; known pipeline columns: {', '.join(PANEL_FIELDS)})")
            elif pname in RESERVED_COLUMNS:
                problems.append(f"columns.{pname}: the pipeline creates a column of that name; map your column "
                                f"under another name (e.g. {pname}_file: {fname!r})")
        if not isinstance(fname, str) or not fname or len(fname) > 128 or any(c in fname for c in "\n\r\x00"):
            problems.append(f"columns.{pname}: {fname!r} is not a usable column name")
    for pname, fname in merged["membership_columns"].items():
        if not isinstance(fname, str) or not fname:
            problems.append(f"membership_columns.{pname}: {fname!r} is not a usable column name")

    # ingest
    ing = merged["ingest"]
    yrs = ing["years"]
    if yrs is not None and not (isinstance(yrs, list) and len(yrs) == 2 and all(isinstance(y, int) for y in yrs) and yrs[0] <= yrs[1]):
        problems.append(f"ingest.years: give [first, last] as two integers, got {yrs!r}")
    if ing["log_nonpositive"] not in ("drop", "fail"):
        problems.append(f"ingest.log_nonpositive: {ing['log_nonpositive']!r}; allowed: drop, fail")
    for i, d in enumerate(ing["derive"] or []):
        check_name(d, f"ingest.derive[{i}]", problems)
    if ing.get("tfp") is not None:
        problems += _opt.check(ing["tfp"], _opt.TFP_DEFAULTS, _opt.TFP_RULES, "ingest.tfp")

    bg = merged["build_groups"]
    from pipeline import groups as _groups  # the stage's own option rules, applied at load

    problems += _groups.option_problems({k: v for k, v in bg.items() if k != "cluster_map"})[1]

    seen = {m.split(":", 1)[0] for m in problems}
    problems += [m for m in _cluster_map.check_options(bg.get("cluster_map")) if m.split(":", 1)[0] not in seen]
    if bg.get("cluster_map") is not None:
        check_name(_cluster_map.options(bg["cluster_map"])["size"], "build_groups.cluster_map.size", problems)

    # estimate
    est = merged["estimate"]
    base_keys = set(DEFAULTS["estimate"])
    for i, o in enumerate(est["outcomes"] or []):
        check_name(o, f"estimate.outcomes[{i}]", problems)
    for i, c in enumerate(est["covariates"] or []):
        check_name(c, f"estimate.covariates[{i}]", problems)
    from models import fixed_effects as _fe

    problems += _fe.problems(est["fixed_effects"])
    if est["control_group"] not in ("nevertreated", "notyettreated"):
        problems.append(f"estimate.control_group: {est['control_group']!r}; allowed: nevertreated, notyettreated")
    from models.vcov import VcovSpec

    try:
        vc = VcovSpec.from_params(est["vcov"])
        for i, c in enumerate(vc.by):
            check_name(c, f"estimate.vcov.by[{i}]", problems)
    except ConfigError as exc:
        problems.append(str(exc))
    if est["on_error"] not in ("fail", "skip"):
        problems.append(f"estimate.on_error: {est['on_error']!r}; allowed: fail, skip")
    if not (isinstance(est["alpha"], float) and 0 < est["alpha"] < 1):
        problems.append(f"estimate.alpha: must be a number in (0, 1), got {est['alpha']!r}")
    oe = est["outcome_estimators"] or {}
    if not isinstance(oe, dict):
        problems.append("estimate.outcome_estimators: give a mapping outcome: [estimators]")
        oe = {}
    outcomes_ok = not any(m.startswith("estimate.outcomes:") for m in problems)
    for o, keys in oe.items():
        if outcomes_ok and o not in (est["outcomes"] or []):
            problems.append(f"estimate.outcome_estimators.{o}: not one of estimate.outcomes")
        if not isinstance(keys, list):
            problems.append(f"estimate.outcome_estimators.{o}: give a list of estimators")
    variants = _check_variants(est, problems)
    known = sorted(set(registry.REGISTRY) | set(variants))
    all_keys = list(est["estimators"] or []) + [k for keys in oe.values() if isinstance(keys, list) for k in keys]
    for key in dict.fromkeys(all_keys):
        if key not in registry.REGISTRY and key not in variants:
            problems.append(f"estimate.estimators: unknown estimator {key!r} (known: {', '.join(known)})")
    for key in sorted(set(est) - base_keys):
        if key not in registry.REGISTRY:
            problems.append(f"estimate.{key}: unknown key (estimator options go under a registry key: {', '.join(sorted(registry.REGISTRY))})")
            continue
        try:
            mod = registry.get(key)
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        opts = getattr(mod, "OPTIONS", {})
        given = est[key] if est[key] is not None else {}
        if not isinstance(given, dict):
            problems.append(f"estimate.{key}: {_opt.shown(given)}; give a mapping of options "
                            f"(allowed: {', '.join(sorted(opts)) or 'none'})")
            continue
        for k in sorted(set(given) - set(opts), key=str):
            problems.append(f"estimate.{key}.{k}: unknown option (allowed: {', '.join(sorted(opts)) or 'none'})")
        problems.extend(mod.validate_options({k: v for k, v in given.items() if k in opts}, where=f"estimate.{key}"))
    _check_variant_options(est, variants, problems)
    _check_sensitivity(est.get("sensitivity"), problems)
    _check_units(merged, problems)
    problems += _opt.check(merged["value_for_money"], _opt.VFM_DEFAULTS, _opt.VFM_RULES, "value_for_money")
    _check_value_for_money(merged, raw.get("value_for_money"), problems)
    rep = merged["report"]
    from .disclosure import resolve_profile

    try:
        resolve_profile(rep["disclosure"])
    except ConfigError as exc:
        problems.append(str(exc))
    for f in rep["formats"] or []:
        if f not in ("html", "pdf"):
            problems.append(f"report.formats: {_opt.shown(f)}; allowed: html, pdf")
    if not isinstance(rep["title"], str):
        problems.append(f"report.title: {_opt.shown(rep['title'])}; give the title as text (quote it if it looks like a number)")
    for k, v in (rep["labels"] or {}).items():
        if not isinstance(k, str) or not isinstance(v, str):
            problems.append(f"report.labels.{k}: {_opt.shown(v)}; give name: label, both text "
                            "(e.g. labels: {log_labour_productivity: Labour productivity (log)})")
    return merged


def _check_units(merged: dict[str, Any], problems: list[str]) -> None:
    """``units``: currency, scale, price base year (used only with data.deflators), per-column
    overrides ``columns.<name>: {unit: text}`` (a non-money unit) or ``{currency, scale}``
    (a money column in its own currency or scale); a name must be a panel column or an outcome."""
    u = merged.get("units")
    if not isinstance(u, dict):
        return  # _merge reported it
    # a price base year without data.deflators is not an error (a params file copied from the shipped
    # one and run without deflators stays valid): nothing is deflated and the report says "nominal"
    problems += _opt.check(u, _opt.UNITS_DEFAULTS, _opt.UNITS_RULES, "units")
    cols = u.get("columns")
    if not isinstance(cols, dict):
        return
    from .outcomes import REGISTRY as DERIVED

    known = set(PANEL_FIELDS) | set(DERIVED) | set(merged["columns"] or {}) | set(merged["estimate"].get("outcomes") or [])
    for name, spec in cols.items():
        where = f"units.columns.{name}"
        if name not in known:
            problems.append(f"{where}: not a panel column or outcome (give a name under columns:, a derived outcome or one of "
                            f"estimate.outcomes, e.g. {', '.join(sorted(PANEL_FIELDS)[:4])})")
            continue
        if not isinstance(spec, dict):
            problems.append(f"{where}: {_opt.shown(spec)}; give a mapping, e.g. {{unit: FTE}} or {{currency: USD, scale: 1}}")
            continue
        defaults = {k: None for k in _opt.UNIT_COLUMN_RULES}
        problems += _opt.check(spec, defaults, _opt.UNIT_COLUMN_RULES, where)
        if spec.get("unit") is not None and (spec.get("currency") is not None or spec.get("scale") is not None):
            problems.append(f"{where}: give either unit (a non-money unit, e.g. FTE) or currency/scale (money), not both")


def _check_value_for_money(merged: dict[str, Any], given: Any, problems: list[str]) -> None:
    """With ``data.costs`` set, an outcome named in value_for_money (benefit, jobs, totals) must be
    in the panel in levels: a mapped column or a derived outcome listed in ingest.derive (the
    estimate stage fits cs on those not already estimated by cs). Only names the params give are
    checked: a default that the panel lacks (e.g. real_exports without exports) is left out of the
    table, and the report says so."""
    vfm = merged.get("value_for_money")
    if merged["data"].get("costs") is None or not isinstance(vfm, dict) or not isinstance(given, dict):
        return
    derive = merged["ingest"].get("derive") or []
    mapped = set(merged["columns"] or {})
    need = [given.get("benefit"), given.get("jobs")] + (list(given["totals"]) if isinstance(given.get("totals"), list) else [])
    for o in dict.fromkeys(x for x in need if isinstance(x, str)):
        if o not in derive and o not in mapped:
            problems.append(f"value_for_money: {o!r} is neither a mapped column (columns:) nor in ingest.derive (data.costs is set); "
                            f"add {o} to ingest.derive (real_value_added, real_exports) or map it under columns:, "
                            "or drop it from value_for_money")


def _check_sensitivity(sens: Any, problems: list[str]) -> None:
    """``estimate.sensitivity`` (HonestDiD): estimators and outcomes lists, mbar numbers >= 0, window."""
    if not isinstance(sens, dict):
        return  # _merge reported it
    rules = {"estimators": _opt.names(), "outcomes": _opt.names(null=True),
             "mbar": _opt.custom(lambda v: isinstance(v, list) and all(_opt.is_number(x) and x >= 0 for x in v),
                                 "give a list of numbers >= 0, e.g. [0.5, 1.0, 2.0]", bad=[-1]),
             "window": _opt.int_pair(cond=lambda lo, hi: lo < 0 <= hi, need="lo < 0 <= hi")}
    problems += _opt.check(sens, DEFAULTS["estimate"]["sensitivity"], rules, "estimate.sensitivity")


VARIANT_KEYS = {"estimator", "covariates", "control_group"}  # the rest are the base estimator's options


def _check_variants(est: dict[str, Any], problems: list[str]) -> dict[str, dict[str, Any]]:
    """Validate ``estimate.variants``; return the usable ones."""
    raw = est.get("variants") or {}
    if not isinstance(raw, dict):
        problems.append("estimate.variants: give a mapping name: {estimator: <registry key>, <options>}")
        return {}
    good: dict[str, dict[str, Any]] = {}
    for name, v in raw.items():
        where = f"estimate.variants.{name}"
        check_name(name, where, problems)
        if name in registry.REGISTRY:
            problems.append(f"{where}: the name is a registry estimator; choose another name (e.g. {name}_2)")
            continue
        if not isinstance(v, dict) or v.get("estimator") not in registry.REGISTRY:
            problems.append(f"{where}: give {{estimator: <one of {', '.join(sorted(registry.REGISTRY))}>, ...options}}")
            continue
        try:
            opts = getattr(registry.get(v["estimator"]), "OPTIONS", {})
        except ConfigError as exc:
            problems.append(str(exc))
            continue
        for k in sorted(set(v) - VARIANT_KEYS - set(opts)):
            problems.append(f"{where}.{k}: unknown option of {v['estimator']} (allowed: {', '.join(sorted(VARIANT_KEYS | set(opts)))})")
        covs = v.get("covariates", [])
        if not isinstance(covs, list):
            problems.append(f"{where}.covariates: give a list of column names")
        else:
            for i, c in enumerate(covs):
                check_name(c, f"{where}.covariates[{i}]", problems)
        if v.get("control_group", "nevertreated") not in ("nevertreated", "notyettreated"):
            problems.append(f"{where}.control_group: {v['control_group']!r}; allowed: nevertreated, notyettreated")
        good[name] = v
    return good


def _check_variant_options(est: dict[str, Any], variants: dict[str, dict[str, Any]], problems: list[str]) -> None:
    """Each variant's options over its base estimator's ``estimate.<key>``, through the base's
    validator (prefix ``estimate.variants.<name>``). A problem of the base's own options is
    reported once, under ``estimate.<key>``."""
    for name, v in variants.items():
        base = v["estimator"]
        try:
            mod = registry.get(base)
        except ConfigError:
            continue
        opts = getattr(mod, "OPTIONS", {})
        given = est.get(base) if isinstance(est.get(base), dict) else {}
        own = {k: x for k, x in v.items() if k not in VARIANT_KEYS and k in opts}
        merged = {**{k: x for k, x in given.items() if k in opts}, **own}
        where = f"estimate.variants.{name}"
        base_bad = {p.split(":", 1)[0].removeprefix(f"estimate.{base}.") for p in mod.validate_options(
            {k: x for k, x in given.items() if k in opts}, where=f"estimate.{base}")}
        for p in mod.validate_options(merged, where=where):
            key = p.split(":", 1)[0].removeprefix(where + ".")
            if key not in own and key in base_bad:
                continue
            problems.append(p)


def estimator_base(params: Params, key: str) -> str:
    """The registry key behind estimator ``key`` (itself, or a variant's ``estimator``)."""
    v = (params.raw["estimate"].get("variants") or {}).get(key)
    return v["estimator"] if v else key


def variant_overrides(params: Params, key: str) -> dict[str, Any]:
    """``covariates`` / ``control_group`` a variant sets (empty for a registry key)."""
    v = (params.raw["estimate"].get("variants") or {}).get(key) or {}
    return {k: v[k] for k in ("covariates", "control_group") if k in v}


def estimators_for(params: Params, outcome: str) -> list[str]:
    """The estimators run on ``outcome``: ``estimate.outcome_estimators[outcome]`` if given,
    else ``estimate.estimators``."""
    est = params.raw["estimate"]
    return list((est.get("outcome_estimators") or {}).get(outcome) or est["estimators"])


def estimator_options(params: Params, key: str) -> dict[str, Any]:
    """Defaults of estimator ``key`` overlaid with ``estimate.<key>`` from params; for a
    variant, its base estimator's options overlaid with the variant's own."""
    base = estimator_base(params, key)
    mod = registry.get(base)
    opts = copy.deepcopy(getattr(mod, "OPTIONS", {}))
    opts.update(params.raw["estimate"].get(base) or {})
    if base != key:
        v = params.raw["estimate"]["variants"][key]
        opts.update({k: copy.deepcopy(x) for k, x in v.items() if k not in VARIANT_KEYS})
    return opts


class _ParamsYamlError(Exception):
    """A params file that the loader refuses (anchors, aliases); the message says how to fix it."""


class ParamsLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses anchors and aliases (``&name`` / ``*name``, and so ``<<:``
    merge keys): an alias expands to a copy of its anchor, so a few lines can stand for
    billions of values (the "billion laughs" bomb), and params are short enough to write out.
    Duplicate keys are found on the composed tree (:func:`duplicate_keys`)."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            kind = "alias *" if isinstance(event, yaml.AliasEvent) else "anchor &"
            raise _ParamsYamlError(
                f"line {event.start_mark.line + 1}: YAML {kind}{event.anchor} is not allowed in params files "
                "(anchors, aliases and <<: merge keys are refused: an alias can expand without bound); "
                "write the values out in full")
        return super().compose_node(parent, index)


def duplicate_keys(node: Any, where: str = "") -> list[str]:
    """Every key given twice in one mapping of the composed YAML tree, with both lines."""
    out: list[str] = []
    if isinstance(node, yaml.MappingNode):
        seen: dict[Any, int] = {}
        for k, v in node.value:
            key = k.value if isinstance(k, yaml.ScalarNode) else None
            path = f"{where}.{key}" if where else str(key)
            if key is not None:
                if key in seen:
                    out.append(f"{path}: duplicate key (lines {seen[key]} and {k.start_mark.line + 1}); a later "
                               "value would silently replace the earlier one; keep one of them")
                else:
                    seen[key] = k.start_mark.line + 1
            out += duplicate_keys(v, path)
    elif isinstance(node, yaml.SequenceNode):
        for i, v in enumerate(node.value):
            out += duplicate_keys(v, f"{where}[{i}]")
    return out


def read_params_text(path: Path) -> str:
    """The params file as text: UTF-8 (a UTF-8 byte-order mark is accepted), at most
    :data:`MAX_PARAMS_BYTES`; anything else is a ConfigError saying which byte and how to fix it."""
    data = path.read_bytes()
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path}: {len(data)} bytes; a params file is a few kilobytes (at most {MAX_PARAMS_BYTES}): "
                          "pass the params.yaml, not a data file")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        pos = exc.start
        line = data.count(b"\n", 0, pos) + 1
        col = pos - (data.rfind(b"\n", 0, pos) + 1) + 1
        raise ConfigError(
            f"{path}: not UTF-8: byte 0x{data[pos]:02x} at line {line}, column {col} is not valid UTF-8 (a latin-1 or "
            "Windows-1252 accented letter, e.g. from a spreadsheet export?); save the file as UTF-8 (your editor's "
            f"'save with encoding', or: iconv -f latin1 -t utf-8 {path.name} > {path.stem}.utf8{path.suffix})"
        ) from None


def parse_params(text: str, path: Path) -> Any:
    """``text`` parsed by :class:`ParamsLoader`; duplicate keys, anchors and YAML syntax errors
    raise one ConfigError."""
    loader = ParamsLoader(text)
    try:
        node = loader.get_single_node()
        dups = duplicate_keys(node)
        if dups:
            raise ConfigError(f"{path}: {len(dups)} duplicate key(s); fix them and run again:", problems=dups)
        return loader.construct_document(node) if node is not None else None
    except _ParamsYamlError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a params file; check the brackets and indentation") from None
    finally:
        loader.dispose()


def load_params(path: str | Path) -> Params:
    """Read ``path`` (UTF-8, :class:`ParamsLoader`) and validate; raise ConfigError listing every problem."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"params file {path} not found; pass --params PATH (default: params.yaml in the project folder)")
    raw = parse_params(read_params_text(path), path)
    raw = {} if raw is None else raw
    problems: list[str] = []
    merged = validate(raw, problems)
    if problems:
        raise ConfigError(f"{path}: {len(problems)} problem(s) in the parameters; fix them and run again:", problems=problems)
    return Params(raw=merged, root=path.resolve().parent, path=path.resolve())
