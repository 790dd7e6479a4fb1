"""Estimator registry: params key -> ``module:function`` and its option defaults.

Each estimator module exposes

* ``OPTIONS: dict`` — the keys accepted under ``estimate.<key>`` in params.yaml with their
  defaults (unknown keys are a ConfigError), and
* ``fit(data: pd.DataFrame, spec: EstimatorSpec) -> EstimationResult``, and optionally
* ``COLUMNS: tuple`` — panel columns it reads beyond the spec's (the estimate stage loads
  only the columns in use).

Modules are imported lazily so that an estimator's heavy dependencies load only when used.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from .errors import ConfigError

REGISTRY: dict[str, str] = {
    "twfe": "models.did.twfe",
    "event_study": "models.did.event_study",
    "cs": "models.did.cs",
    "sunab": "models.did.sunab",
    "imputation": "models.did.imputation",
    "did2s": "models.did.did2s",
    "lpdid": "models.did.lpdid",
    "bacon": "models.did.bacon",
    "sdid": "models.did.sdid",
    "matching": "models.matching.estimator",
    "weighting": "models.matching.weighting",
    "ppml": "models.counts.ppml",
    "etwfe_poisson": "models.counts.etwfe_poisson",
    "checks": "models.credibility.battery",
    "heterogeneity": "models.heterogeneity.subgroups",
}

# The scale of each estimator's tidy terms (default "level": the outcome's own unit). Poisson
# models estimate on the log scale: ``log`` terms are log points (b), ``proportion`` terms
# exp(b) - 1 (0.10 = +10 %); ETWFE Poisson's ``att`` is the average partial effect on the
# outcome's own scale (Wooldridge 2023, Econometrics Journal 26(3), section 4).
SCALES: dict[str, dict[str, str]] = {
    "ppml": {"post": "log", "pct": "proportion", "*": "log"},
    "etwfe_poisson": {"att": "level", "pct": "proportion", "tau": "log", "*": "level"},
}


def scale(key: str, term: str | None = None) -> str:
    """``"level"``, ``"log"`` or ``"proportion"``: the scale of estimator ``key``'s ``term``
    (a named variant: pass its base estimator's key)."""
    s = SCALES.get(key)
    if not s:
        return "level"
    return s.get(term, s["*"]) if term is not None else s["*"]


#: estimators that absorb ``estimate.fixed_effects`` beyond firm and year (the others have no
#: regression fixed effects to add them to; their results say so in ``meta["fixed_effects_note"]``)
EXTRA_FIXED_EFFECTS = ("twfe", "event_study", "sunab", "imputation", "did2s", "ppml", "lpdid")


def get(key: str) -> ModuleType:
    if key not in REGISTRY:
        raise ConfigError(
            f"estimate.estimators: unknown estimator '{key}'; known: {', '.join(sorted(REGISTRY))}"
        )
    try:
        return importlib.import_module(REGISTRY[key])
    except ModuleNotFoundError as exc:  # listed but not built yet
        raise ConfigError(
            f"estimator '{key}' is listed in the registry but not available in this build ({exc})."
        ) from exc


def available() -> list[str]:
    out = []
    for key, mod in REGISTRY.items():
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError:
            continue
        out.append(key)
    return out
