"""One vcov vocabulary, translated per backend.

params.yaml says ``vcov: {kind: iid | hetero | cluster | twoway, by: [cols], small_sample: ...}``.
Each estimator declares which kinds it supports; anything else raises
:class:`~models.errors.UnsupportedVcovError` naming the estimator and the vcov, never a
silent fallback.

Conventions (stated, because implementations differ; see shared/REFERENCES.md):

* ``cluster`` through pyfixest uses fixest's CRV1 small-sample correction, where fixed
  effects nested in the cluster variable are not counted (0.01327 on mpdta's TWFE, not
  lm+sandwich's 0.01483).
* Influence-function estimators (Callaway–Sant'Anna, matching) cluster the influence
  function at ``by``: V = (1/n²) Σ_c (Σ_{i∈c} ψ_i)², with the G/(G−1) factor stated in the
  estimator's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .errors import ConfigError, UnsupportedVcovError

KINDS = ("iid", "hetero", "cluster", "twoway")


@dataclass(frozen=True)
class VcovSpec:
    kind: str = "cluster"
    by: tuple[str, ...] = ("firm_id",)

    @classmethod
    def from_params(cls, d: dict | None) -> "VcovSpec":
        d = dict(d or {})
        unknown = set(d) - {"kind", "by"}
        if unknown:
            raise ConfigError(f"estimate.vcov: unknown keys {sorted(unknown)}; allowed: kind, by")
        kind = d.get("kind", "cluster")
        if kind not in KINDS:
            raise ConfigError(f"estimate.vcov.kind = {kind!r}; allowed: {', '.join(KINDS)}")
        by = d.get("by", ["firm_id"]) or []
        if isinstance(by, str):
            by = [by]
        by = tuple(by)
        if kind == "cluster" and len(by) != 1:
            raise ConfigError("estimate.vcov: kind 'cluster' takes exactly one column in 'by' (use 'twoway' for two)")
        if kind == "twoway" and len(by) != 2:
            raise ConfigError("estimate.vcov: kind 'twoway' takes exactly two columns in 'by'")
        if kind in ("iid", "hetero"):
            by = ()
        return cls(kind=kind, by=by)

    def label(self) -> str:
        return self.kind if not self.by else f"{self.kind}({'+'.join(self.by)})"

    def require(self, estimator: str, supported: tuple[str, ...]) -> None:
        if self.kind not in supported:
            raise UnsupportedVcovError(estimator, self.label(), list(supported))

    def to_pyfixest(self, estimator: str):
        """Translate to pyfixest's ``vcov`` argument."""
        if self.kind == "iid":
            return "iid"
        if self.kind == "hetero":
            return "hetero"
        if self.kind == "cluster":
            return {"CRV1": self.by[0]}
        if self.kind == "twoway":
            return {"CRV1": f"{self.by[0]}+{self.by[1]}"}
        raise UnsupportedVcovError(estimator, self.label(), list(KINDS))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "by": list(self.by)}
