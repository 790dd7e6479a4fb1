"""The report's significance level: one ``alpha`` behind every interval label, star,
verdict and sentence of the report (``estimate.alpha`` in params.yaml).

The intervals themselves come from the estimators (``models/``), computed with the same
``alpha`` (``spec.alpha``): the report only labels and judges them. :func:`report_alpha`
reads the level the estimates were computed with (their ``meta["spec"]["alpha"]``), so a
report never labels 90% intervals as 95% ones.

Stars: one star marks significance at ``alpha`` itself; more stars mark the conventional
stricter levels below it (0.05, 0.01, 0.001), at most three in all. With ``alpha = 0.05``:
``* p<0.05, ** p<0.01, *** p<0.001``; with ``alpha = 0.10``: ``* p<0.1, ** p<0.05,
*** p<0.01`` (the fixest/etable convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

CONVENTIONAL = (0.05, 0.01, 0.001)
DEFAULT_ALPHA = 0.05


def pct(x: float) -> str:
    """0.9 -> '90%', 0.975 -> '97.5%' (no float noise)."""
    return f"{round(100 * x, 6):g}%"


@dataclass(frozen=True)
class Significance:
    alpha: float = DEFAULT_ALPHA

    @property
    def ci(self) -> str:
        """The interval level as text: '95%' for alpha 0.05, '90%' for 0.10."""
        return pct(1 - self.alpha)

    @property
    def interval(self) -> str:
        return f"{self.ci} interval"

    @property
    def level(self) -> str:
        """The test level as text: '5%' for alpha 0.05."""
        return pct(self.alpha)

    @property
    def star_levels(self) -> tuple[float, ...]:
        return (self.alpha, *[c for c in CONVENTIONAL if c < self.alpha * (1 - 1e-9)])[:3]

    def significant(self, p: Any) -> bool:
        return _isnum(p) and float(p) < self.alpha

    def stars(self, p: Any) -> str:
        if not _isnum(p):
            return ""
        return "*" * sum(float(p) < lv for lv in self.star_levels)

    def star_note(self) -> str:
        return ", ".join(f"{'*' * (i + 1)} p<{lv:g}" for i, lv in enumerate(self.star_levels))


def _isnum(x: Any) -> bool:
    try:
        return x is not None and not isinstance(x, bool) and math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def report_alpha(metas: dict[str, dict[str, Any]], params: dict[str, Any] | None) -> float:
    """The alpha the estimates were computed with: their ``meta["spec"]["alpha"]`` when the
    results agree on one value, else ``estimate.alpha`` of ``params`` (default 0.05)."""
    seen = {float(a) for m in (metas or {}).values() if _isnum(a := ((m or {}).get("spec") or {}).get("alpha"))}
    if len(seen) == 1:
        return seen.pop()
    given = ((params or {}).get("estimate") or {}).get("alpha")
    return float(given) if _isnum(given) else DEFAULT_ALPHA
