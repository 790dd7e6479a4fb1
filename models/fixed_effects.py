"""Fixed effects beyond firm and year (params ``estimate.fixed_effects``).

``estimate.fixed_effects`` lists the absorbed effects, fixest style: a panel column
(``sector``: one effect per sector) or an interaction ``a^b`` of columns (``sector^year``:
one effect per sector and year, i.e. sector-specific year shocks; Correia 2016, reghdfe;
Bergé 2018, fixest). ``firm_id`` and ``year`` must be in the list: every regression DiD
here is a two-way design with further absorbed effects, and dropping the unit or period
effect would be another estimator.

The names are validated at load (:func:`problems`: safe column names, at most
:data:`MAX_PARTS` parts, no repeats) and against the panel's columns before estimating
(:mod:`pipeline.option_columns`). Estimators never put user strings into a formula: each
extra effect becomes an integer code column ``_fe0``, ``_fe1``, ... (:func:`codes`), and
formulas name those (``_y ~ _D | _unit + _time + _fe0``).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np
import pandas as pd

from .options import SAFE_NAME, shown

BASE = ("firm_id", "year")
MAX_PARTS = 3


def parts(term: str) -> tuple[str, ...]:
    """``"sector^year"`` -> ``("sector", "year")``."""
    return tuple(term.split("^"))


def problems(value: Any, where: str = "estimate.fixed_effects", base: tuple[str, str] = BASE) -> list[str]:
    """Everything wrong with an ``estimate.fixed_effects`` value (empty list: fine)."""
    eg = "e.g. [firm_id, year, sector^year, region^year]"
    if not isinstance(value, list) or not value:
        return [f"{where}: {shown(value)}; give a list of panel columns or a^b interactions, {eg}"]
    out: list[str] = []
    seen: set[tuple[str, ...]] = set()
    for i, term in enumerate(value):
        at = f"{where}[{i}]"
        if not isinstance(term, str) or not term:
            out.append(f"{at}: {shown(term)}; give a column name or an interaction a^b of column names, {eg}")
            continue
        ps = parts(term)
        bad = [p for p in ps if not SAFE_NAME.match(p)]
        if bad:
            out.append(f"{at}: {term!r}: {', '.join(map(repr, bad))} is not a safe column name (letters, digits, "
                       "underscore, starting with a letter or underscore); interactions are written a^b, "
                       f"nothing else is allowed, {eg}")
            continue
        if len(ps) > MAX_PARTS or len(set(ps)) != len(ps):
            out.append(f"{at}: {term!r}; an interaction joins 2 to {MAX_PARTS} different columns with ^, {eg}")
            continue
        key = tuple(sorted(ps))
        if key in seen:
            out.append(f"{at}: {term!r} is listed twice (a^b and b^a are the same effect); keep one")
        seen.add(key)
    terms = [t for t in value if isinstance(t, str)]
    for b in base:
        if b not in terms:
            out.append(f"{where}: {b!r} is missing; the firm and year effects are required (every regression DiD "
                       f"here is a two-way design and dropping one would be another estimator), e.g. {eg}")
    return out


def extra(value: Iterable[str] | None, base: tuple[str, str] = BASE) -> tuple[str, ...]:
    """The terms beyond the unit and period effects, in the order given."""
    return tuple(t for t in (value or ()) if t not in base)


def columns(terms: Iterable[str]) -> list[str]:
    """The panel columns the terms read."""
    return list(dict.fromkeys(p for t in terms for p in parts(t)))


def codes(data: pd.DataFrame, term: str) -> np.ndarray:
    """Dense integer codes (0..L-1, sorted by the level values) of ``term`` on ``data``'s
    rows; -1 where any part is missing."""
    ps = parts(term)
    miss = np.zeros(len(data), dtype=bool)
    keys = []
    for p in ps:
        s = data[p]
        miss |= s.isna().to_numpy()
        keys.append(pd.factorize(s, sort=True)[0])
    if len(keys) == 1:
        code = keys[0].astype(np.int64)
    else:
        mi = pd.MultiIndex.from_arrays(keys)
        code = pd.factorize(mi, sort=True)[0].astype(np.int64)
    code[miss] = -1
    return code


def label(spec_terms: Iterable[str], idname: str = "firm_id", tname: str = "year") -> str:
    """The absorbed effects as written in a fixest formula: ``firm_id + year + sector^year``."""
    return " + ".join([idname, tname, *spec_terms])
