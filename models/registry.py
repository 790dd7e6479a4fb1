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
