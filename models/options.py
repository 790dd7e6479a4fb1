"""Estimator options: one declarative check, used at load (pipeline.config) and by ``fit``.

Every registry module pairs its ``OPTIONS`` (key: default) with ``RULES`` (key: rule) and a
``validate_options(opts, where) -> list[str]``: :func:`check` against the rules, plus the few
checks that involve two options at once. ``pipeline.config`` calls it for ``estimate.<key>``
and every ``estimate.variants.<name>`` when params.yaml is loaded (exit 5 before any stage
runs); ``fit`` calls the same function (:func:`require`) when the library is used directly.
A problem reads ``<where>.<option>: <value given>; <what is allowed>``.

Bounds stated here (README "params.yaml reference"): bootstrap / permutation / draw counts
are integers in 1..:data:`MAX_DRAWS` (memory and run time grow linearly with the count).
"""

from __future__ import annotations

import numbers
import re
from dataclasses import dataclass, replace
from typing import Any, Callable

from .errors import ConfigError

SAFE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
#: upper bound of every bootstrap / permutation / draws count in params.yaml
MAX_DRAWS = 100_000
DRAWS_NOTE = "memory and run time grow with the count; 999 to 9999 is customary"

_TYPE_NAMES = {bool: "true/false", int: "an integer", float: "a number", str: "a string", list: "a list",
               dict: "a mapping", type(None): "null"}


def type_name(v: Any) -> str:
    return _TYPE_NAMES.get(type(v), type(v).__name__)


def shown(v: Any) -> str:
    """The value as the message shows it: its repr, with its type when that is the surprise."""
    text = repr(v)
    if len(text) > 80:
        text = text[:77] + "..."
    if isinstance(v, (str, list, dict, bool)) or v is None:
        return f"{text} ({type_name(v)})"
    return text


def is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def is_number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v == v and abs(v) != float("inf")


@dataclass(frozen=True)
class Rule:
    """``ok(value) -> bool``; ``allowed`` says what is allowed (and how to fix it); ``bad`` is a
    value the rule rejects (the completeness test feeds it to every validator)."""

    ok: Callable[[Any], bool]
    allowed: str
    bad: Any = object()
    null: bool = False

    def problem(self, value: Any) -> str | None:
        if value is None and self.null:
            return None
        return None if self.ok(value) else f"{shown(value)}; {self.allowed}{', or null' if self.null else ''}"


def nullable(rule: Rule) -> Rule:
    """``rule``, or null."""
    return replace(rule, null=True)


def choice(*values: Any, null: bool = False) -> Rule:
    def ok(v):
        return not isinstance(v, (list, dict)) and any(v == x and type(v) is type(x) for x in values)
    return Rule(ok, "allowed: " + ", ".join(str(x) for x in values), bad="__no_such_choice__", null=null)


def integer(lo: int | None = None, hi: int | None = None, *, null: bool = False, note: str = "") -> Rule:
    def ok(v):
        return is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi)
    if lo is not None and hi is not None:
        text = f"give an integer from {lo} to {hi}"
    elif lo is not None:
        text = f"give an integer >= {lo}"
    else:
        text = "give an integer"
    return Rule(ok, text + (f" ({note})" if note else ""), bad=1.5, null=null)


def draws(lo: int = 1) -> Rule:
    """A bootstrap / permutation / draws count: an integer from ``lo`` to :data:`MAX_DRAWS`."""
    return integer(lo, MAX_DRAWS, note=DRAWS_NOTE)


def number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False, hi_open: bool = False,
           null: bool = False) -> Rule:
    def ok(v):
        if not is_number(v):
            return False
        if lo is not None and (v <= lo if lo_open else v < lo):
            return False
        return not (hi is not None and (v >= hi if hi_open else v > hi))
    parts = []
    if lo is not None:
        parts.append(f"{'>' if lo_open else '>='} {lo}")
    if hi is not None:
        parts.append(f"{'<' if hi_open else '<='} {hi}")
    return Rule(ok, "give a number" + (" " + " and ".join(parts) if parts else ""), bad="ten", null=null)


def boolean() -> Rule:
    return Rule(lambda v: isinstance(v, bool), "give true or false (unquoted; a quoted 'yes' or 'true' is a string)",
                bad="yes")


def names(*, null: bool = False, single: bool = False, extra: tuple[str, ...] = ()) -> Rule:
    """A list of column names (safe identifiers). ``single``: one name is accepted too.
    ``extra``: words with a meaning of their own (e.g. ``outcome``)."""
    def ok(v):
        if single and isinstance(v, str):
            v = [v]
        return isinstance(v, list) and all(isinstance(x, str) and (SAFE_NAME.match(x) or x in extra) for x in v)
    text = ("give a list of column names (letters, digits, underscore), e.g. [log_employment]; "
            "a single name is written [name]")
    return Rule(ok, text, bad="not a list" if not single else ["bad name!"], null=null)


def int_pair(*, null: bool = False, cond: Callable[[int, int], bool] = lambda lo, hi: lo <= hi,
             need: str = "lo <= hi") -> Rule:
    def ok(v):
        return isinstance(v, (list, tuple)) and len(v) == 2 and all(is_int(x) for x in v) and cond(v[0], v[1])
    return Rule(ok, f"give [lo, hi], two integers with {need}", bad=[3, "x"], null=null)


def mapping(*, null: bool = False) -> Rule:
    return Rule(lambda v: isinstance(v, dict), "give a mapping {option: value}", bad=["x"], null=null)


def custom(ok: Callable[[Any], bool], allowed: str, bad: Any, *, null: bool = False) -> Rule:
    return Rule(ok, allowed, bad=bad, null=null)


#: the event-study window of event_study / sunab: at least one lead besides the reference -1
EVENT_WINDOW = int_pair(cond=lambda lo, hi: lo <= -2 and hi >= 0,
                        need="lo <= -2 (at least one lead besides the reference period -1) and hi >= 0")


def check(opts: dict | None, defaults: dict, rules: dict[str, Rule], where: str) -> list[str]:
    """Problems of ``opts`` (merged over ``defaults``): unknown keys, and every value against its
    rule. A key of ``defaults`` without a rule is a programming error (tests catch it)."""
    if opts is not None and not isinstance(opts, dict):
        return [f"{where}: {shown(opts)}; give a mapping of options (option: value)"]
    given = dict(opts or {})
    out = [f"{where}.{k}: unknown option (allowed: {', '.join(sorted(defaults)) or 'none'})"
           for k in sorted(set(given) - set(defaults), key=str)]
    merged = {**defaults, **{k: v for k, v in given.items() if k in defaults}}
    for k, rule in rules.items():
        if k in merged:
            msg = rule.problem(merged[k])
            if msg:
                out.append(f"{where}.{k}: {msg}")
    return out


def require(problems: list[str], where: str) -> None:
    """Raise the ConfigError (exit 5) listing ``problems``, if any."""
    if problems:
        raise ConfigError(f"{where}: bad options:", problems=problems)


def validator(defaults: dict, rules: dict[str, Rule], cross: Callable[[dict, str], list[str]] | None = None,
              name: str = "") -> Callable[..., list[str]]:
    """``validate_options(opts, where='estimate.<name>')`` for a module: :func:`check` plus
    ``cross(merged options, where)`` (run only when every single value is fine)."""
    def validate_options(opts: dict | None = None, where: str = f"estimate.{name}") -> list[str]:
        out = check(opts, defaults, rules, where)
        if not out and cross is not None:
            out = cross({**defaults, **(opts or {})}, where)
        return out
    validate_options.__doc__ = f"Problems with the options of estimator {name!r} (``estimate.{name}``)."
    return validate_options


# ---- ingest.tfp (the production function behind derive: [log_tfp]; models.production) -------
TFP_METHODS = ("acf", "op", "lp", "wooldridge", "ols")
TFP_OUTPUTS = ("value_added", "gross_output")
TFP_DEFAULTS = {"method": "acf", "output": "value_added", "by": None, "bootstrap": 0}
TFP_RULES: dict = {
    "method": choice(*TFP_METHODS),
    "output": choice(*TFP_OUTPUTS),
    "by": custom(lambda v: isinstance(v, str) and bool(SAFE_NAME.match(v)),
                 "give a column to estimate by (e.g. sector)", bad=["sector"], null=True),
    "bootstrap": integer(0, MAX_DRAWS, note="0 = no bootstrap; " + DRAWS_NOTE),
}

# units: what the money columns are measured in (README "Units"; pipeline.report.units)
UNITS_SCALES = (1, 1000, 1_000_000, 1_000_000_000)
UNITS_DEFAULTS = {"currency": None, "scale": 1, "price_base_year": None, "columns": {}}
UNIT_TEXT_MAX = 60


def _unit_text(v: Any, n: int) -> bool:
    return isinstance(v, str) and 0 < len(v.strip()) <= n and v.isprintable()


UNITS_RULES: dict = {
    "currency": custom(lambda v: _unit_text(v, 12), "give the currency as a short text, e.g. EUR (at most 12 characters)",
                       bad=978, null=True),
    "scale": custom(lambda v: is_int(v) and v in UNITS_SCALES,
                    "give how many currency units one unit of the file is: 1, 1000 (thousands), 1000000 or 1000000000",
                    bad=100),
    "price_base_year": integer(1800, 2200, null=True, note="the year in which data.deflators equal 1"),
    "columns": mapping(),
}
UNIT_COLUMN_RULES: dict = {
    "unit": custom(lambda v: _unit_text(v, UNIT_TEXT_MAX), f"give the unit as text, e.g. FTE (at most {UNIT_TEXT_MAX} characters)",
                   bad="", null=True),
    "currency": UNITS_RULES["currency"],
    "scale": custom(lambda v: is_int(v) and v in UNITS_SCALES, UNITS_RULES["scale"].allowed, bad=100, null=True),
}


# ---- value_for_money (models.value_for_money; needs data.costs) ------------------------------
def _discount_ok(v: Any) -> bool:
    if v == "green_book" or (is_number(v) and 0 <= v < 1):
        return True
    return (isinstance(v, list) and len(v) > 0 and all(isinstance(b, list) and len(b) == 2 and is_int(b[0]) and b[0] >= 0
                                                       and is_number(b[1]) and 0 <= b[1] < 1 for b in v)
            and sorted(b[0] for b in v) == [b[0] for b in v] and v[0][0] == 0 and len({b[0] for b in v}) == len(v))


VFM_DEFAULTS = {"discount": "green_book", "base_year": None, "leakage": 0.0, "displacement": 0.0, "substitution": 0.0,
                "multiplier": 1.0, "benefit": "real_value_added", "jobs": "employment",
                "totals": ["real_value_added", "real_exports", "employment"]}
VFM_RULES: dict = {
    "discount": custom(_discount_ok, "give green_book (HM Treasury: 3.5 % years 0-30, 3.0 % 31-75, 2.5 % 76-125), one rate "
                       "in [0, 1) such as 0.035, or bands [[0, 0.035], [31, 0.03]] (first year from 0, increasing)", bad="4%"),
    "base_year": integer(1800, 2200, null=True, note="the year present values are discounted to; null = the first year of data.costs"),
    "leakage": number(0, 1, hi_open=True),
    "displacement": number(0, 1, hi_open=True),
    "substitution": number(0, 1, hi_open=True),
    "multiplier": number(0, lo_open=True),
    "benefit": custom(lambda v: isinstance(v, str) and bool(SAFE_NAME.match(v)),
                      "give the money outcome (in levels) whose total effect is the benefit, e.g. real_value_added", bad=3),
    "jobs": custom(lambda v: isinstance(v, str) and bool(SAFE_NAME.match(v)),
                   "give the employment outcome (in levels), e.g. employment", bad=3),
    "totals": names(),
}
