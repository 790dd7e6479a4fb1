"""Units and scales of the report's numbers: one place that says what an effect is measured in.

* :func:`effect_scale` - ``"level"`` (the outcome's own unit) or ``"proportional"`` for an
  (outcome, estimator, term): Poisson terms (registry :data:`models.registry.SCALES`) and any
  effect on a log outcome are proportional (Santos Silva & Tenreyro 2006; a log-point effect
  b is 100 (e^b - 1) percent, Halvorsen & Palmquist 1980, AER 70(3)).
* :func:`unit_label` - the unit label of an outcome on a scale, from ``units:`` in params
  (currency, scale, price base year; README "Units") and whether the outcome is deflated
  (:mod:`pipeline.outcomes`): ``"thousand EUR (nominal)"``, ``"thousand EUR per employee (real,
  2015 prices)"``, ``"patent applications per firm and year"``, ``"%"``, ``"log points"``.
  Statements, tables and axes call this one function.
* :func:`percent` - a proportional number as percent: ``100 (e^b - 1)`` for log points,
  ``100 p`` for a proportion (``exp(b) - 1`` terms); monotone, so it maps interval ends too.
* :func:`digits_for` - decimals per scale: proportional numbers never take a level
  outcome's rounding (3 decimals in log points / proportions, 1 in percent).

Nothing here reads data; ``units`` is the validated ``units`` section of params.
"""

from __future__ import annotations

import math
from typing import Any

from models import registry

# pipeline columns holding money (raw files: nominal, in units.scale x units.currency)
MONEY_COLUMNS = ("turnover", "value_added", "wage_bill", "capital", "intermediates", "exports", "rd", "real_value_added", "real_exports")
SCALE_WORDS = {1: "", 1000: "thousand ", 1_000_000: "million ", 1_000_000_000: "billion "}
# level-scale units of the pipeline's non-money outcomes (derived ones inherit: README "Units")
FIXED_UNITS = {
    "employment": "employees",
    "patents": "patent applications per firm and year",
    "export_status": "probability points (0 to 1)",
    "patent_status": "probability points (0 to 1)",
    "export_intensity": "share of turnover (0 to 1)",
    "rd_intensity": "share of turnover (0 to 1)",
    "employment_growth": "growth rate (0.01 = 1 %)",
}
# derived money outcomes: (money column, per what)
PER = {"labour_productivity": ("value_added", "employee"), "wage_per_employee": ("wage_bill", "employee")}
PERCENT = "%"
LOG_POINTS = "log points"
PROPORTION = "proportion (0.10 = +10 %)"


def estimator_scale(estimator: str, term: Any = None) -> str:
    """``"level"``, ``"log"`` or ``"proportion"`` of an estimator's term (:data:`models.registry.SCALES`)."""
    return registry.scale(str(estimator), None if term is None else str(term))


def effect_scale(outcome: str, estimator: str, term: Any = None) -> str:
    """``"proportional"`` for Poisson log/proportion terms and every effect on a log outcome, else ``"level"``."""
    if estimator_scale(estimator, term) != "level" or str(outcome).startswith("log_"):
        return "proportional"
    return "level"


def _units(units: dict | None) -> dict:
    return units if isinstance(units, dict) else {}


def _deflated(outcome: str) -> bool:
    from pipeline.outcomes import REGISTRY

    fn = REGISTRY.get(outcome)
    return bool(getattr(fn, "deflated", False))


def money_label(column: str, units: dict | None, deflated: bool, has_deflators: bool) -> str | None:
    """``"<scale> <currency>, <price basis>"`` for a money column, or None when params state no currency."""
    u = _units(units)
    own = (u.get("columns") or {}).get(column) or {}
    currency = own.get("currency", u.get("currency"))
    scale = own.get("scale", u.get("scale", 1))
    if not currency:
        return None
    word = SCALE_WORDS.get(int(scale), f"x {scale:g} ") if isinstance(scale, (int, float)) else ""
    if deflated and has_deflators:
        base = u.get("price_base_year")
        basis = f"real, {int(base)} prices" if base is not None else "real (deflated)"
    elif deflated:
        basis = "nominal: no deflators given"
    else:
        basis = "nominal"
    return f"{word}{currency} ({basis})"


def unit_label(outcome: str, scale: str = "level", units: dict | None = None, has_deflators: bool = False) -> str:
    """The unit an effect on ``outcome`` is measured in on ``scale`` (``"level"`` or
    ``"proportional"``; ``"percent"`` is the proportional scale shown as percent).

    ``units``: the validated ``units`` section of params; ``has_deflators``: ``data.deflators``
    is set. A ``units.columns.<outcome>.unit`` overrides everything on the level scale. An
    outcome whose unit params do not state reads ``"units of the data"``: never a guessed
    currency."""
    o = str(outcome)
    if scale == "percent":
        return PERCENT
    if scale == "proportional" or o.startswith("log_"):
        return LOG_POINTS if o.startswith("log_") else PROPORTION
    u = _units(units)
    own = (u.get("columns") or {}).get(o) or {}
    if own.get("unit"):
        return str(own["unit"])
    if o in PER:
        col, per = PER[o]
        m = money_label(col, u, _deflated(o), has_deflators)
        if m is None:
            return f"units of the data per {per}"
        word_cur, _, basis = m.partition(" (")
        return f"{word_cur} per {per} ({basis}"
    if o in MONEY_COLUMNS or own.get("currency"):  # a column of your own given a currency is money too
        return money_label(o, u, _deflated(o), has_deflators) or "units of the data (set units.currency)"
    if o in FIXED_UNITS:
        return FIXED_UNITS[o]
    return "units of the data"


def row_unit(outcome: str, estimator: str, term: Any = None, units: dict | None = None, has_deflators: bool = False) -> str:
    """Unit label of one tidy row: ``"proportion (0.10 = +10 %)"`` for an ``exp(b) - 1`` term,
    ``"log points"`` for a log-scale term or any effect on a log outcome, else the outcome's
    level unit (:func:`unit_label`). ``estimator``: the registry key (a variant's base)."""
    es = estimator_scale(estimator, term)
    if es == "proportion":
        return PROPORTION
    if es == "log" or str(outcome).startswith("log_"):
        return LOG_POINTS
    return unit_label(outcome, "level", units, has_deflators)


def percent(x: Any, estimator: str, term: Any = None) -> float:
    """A proportional effect as percent: ``100 p`` when the term is a proportion (``exp(b) - 1``),
    else ``100 (e^x - 1)`` (log points)."""
    v = float(x)
    if math.isnan(v):
        return v
    return 100.0 * v if estimator_scale(estimator, term) == "proportion" else 100.0 * math.expm1(v)


def digits_for(scale: str, level_digits: int) -> int:
    """Decimals: ``level_digits`` (from the level values of the outcome alone) on the level
    scale, 3 for log points / proportions, 1 for percent."""
    return {"proportional": 3, "percent": 1}.get(scale, level_digits)


def axis_label(outcome_label: str, unit: str) -> str:
    """Axis text of an effect: ``"Effect on Exports, thousand EUR (nominal)"``."""
    return f"Effect on {outcome_label}, {unit}"
