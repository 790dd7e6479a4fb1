"""The specification every estimator receives.

Names follow R did: ``yname`` (outcome), ``tname`` (period), ``idname`` (unit),
``gname`` (first treated period, 0 = never treated).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .vcov import VcovSpec


@dataclass(frozen=True)
class EstimatorSpec:
    yname: str
    tname: str = "year"
    idname: str = "firm_id"
    gname: str = "first_treat"
    covariates: tuple[str, ...] = ()
    control_group: str = "nevertreated"  # nevertreated | notyettreated
    vcov: VcovSpec = field(default_factory=VcovSpec)
    alpha: float = 0.05
    seed: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # estimate.<key> merged with defaults
    # absorbed effects beyond idname and tname (estimate.fixed_effects, e.g. ("sector^year",));
    # set only for estimators that take them (models.registry.EXTRA_FIXED_EFFECTS)
    fixed_effects: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {
            "yname": self.yname,
            "tname": self.tname,
            "idname": self.idname,
            "gname": self.gname,
            "covariates": list(self.covariates),
            "control_group": self.control_group,
            "vcov": self.vcov.to_dict(),
            "alpha": self.alpha,
            "seed": self.seed,
            "options": dict(self.options),
        }
        if self.fixed_effects:
            out["fixed_effects"] = [self.idname, self.tname, *self.fixed_effects]
        return out
