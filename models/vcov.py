"""One vcov vocabulary, translated per backend.

params.yaml says ``vcov: {kind: iid | hetero | cluster | twoway | crv3 | wild, by: [cols], ...}``.
Each estimator declares which kinds it supports; anything else raises
:class:`~models.errors.UnsupportedVcovError` naming the estimator and the vcov, never a
silent fallback.

Kinds:

* ``iid``, ``hetero``: no ``by``.
* ``cluster``: one column (CRV1). ``twoway``: two columns (Cameron, Gelbach & Miller 2011
  two-way CRV1, pyfixest ``{"CRV1": "a+b"}``).
* ``crv3``: one column; the leave-one-cluster-out jackknife variance
  V3 = (G-1)/G sum_g (b_(g) - b)(b_(g) - b)' (MacKinnon, Nielsen & Webb 2023, JAE),
  with t(G-1) critical values. Meant for few clusters (5-50).
* ``wild``: one column; wild cluster restricted bootstrap (WCR11; Cameron, Gelbach &
  Miller 2008; Roodman, MacKinnon, Nielsen & Webb 2019) of each coefficient:
  ``weights: rademacher | webb | mammen | normal`` (default rademacher; Webb's six-point
  weights are advised below ~12 clusters, Webb 2023), ``draws: B`` (default 9999;
  Rademacher with 2^G <= B enumerates all sign vectors). p-values from the bootstrap
  t distribution, confidence intervals by test inversion; the standard error shown is
  CRV1's. Seeds come from ``spec.seed``.

Conventions (stated, because implementations differ; see shared/REFERENCES.md):

* ``cluster`` through pyfixest uses fixest's CRV1 small-sample correction, where fixed
  effects nested in the cluster variable are not counted (0.01327 on mpdta's TWFE, not
  lm+sandwich's 0.01483).
* Influence-function estimators (Callaway–Sant'Anna, matching) cluster the influence
  function at ``by``: V = (1/n²) Σ_c (Σ_{i∈c} ψ_i)², with the G/(G−1) factor stated in the
  estimator's docstring.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import ConfigError, UnsupportedVcovError
from .options import MAX_DRAWS

KINDS = ("iid", "hetero", "cluster", "twoway", "crv3", "wild")
#: kinds pyfixest's ``vcov=`` argument expresses (the others are computed in models/inference)
PYFIXEST_KINDS = ("iid", "hetero", "cluster", "twoway")
#: kinds that need a few-clusters method of their own (models.inference.wild_bootstrap)
FEW_CLUSTER_KINDS = ("crv3", "wild")
WILD_WEIGHTS = ("rademacher", "webb", "mammen", "normal")
WILD_DEFAULTS = {"weights": "rademacher", "draws": 9999}


@dataclass(frozen=True)
class VcovSpec:
    kind: str = "cluster"
    by: tuple[str, ...] = ("firm_id",)
    weights: str = "rademacher"  # kind 'wild' only
    draws: int = 9999  # kind 'wild' only

    @classmethod
    def from_params(cls, d: dict | None) -> "VcovSpec":
        # weights/draws left null (None) count as not given: pipeline/config.py merges the
        # user's mapping onto defaults, where they are null for every kind
        d = {k: v for k, v in dict(d or {}).items() if not (k in WILD_DEFAULTS and v is None)}
        kind = d.get("kind", "cluster")
        allowed = ["kind", "by", "weights", "draws"] if kind == "wild" else ["kind", "by"]
        unknown = set(d) - set(allowed)
        if unknown:
            extra = " (weights and draws are options of kind 'wild')" if unknown & {"weights", "draws"} else ""
            raise ConfigError(
                f"estimate.vcov: unknown keys {sorted(unknown)}; allowed: {', '.join(allowed)}{extra}"
            )
        if kind not in KINDS:
            raise ConfigError(f"estimate.vcov.kind = {kind!r}; allowed: {', '.join(KINDS)}")
        by = d.get("by", ["firm_id"]) or []
        if isinstance(by, str):
            by = [by]
        by = tuple(by)
        if kind in ("cluster", "crv3", "wild") and len(by) != 1:
            raise ConfigError(f"estimate.vcov: kind '{kind}' takes exactly one column in 'by'" + (" (use 'twoway' for two)" if kind == "cluster" else ""))
        if kind == "twoway" and len(by) != 2:
            raise ConfigError("estimate.vcov: kind 'twoway' takes exactly two columns in 'by'")
        if kind in ("iid", "hetero"):
            by = ()
        if kind != "wild":
            return cls(kind=kind, by=by)
        weights = d.get("weights", WILD_DEFAULTS["weights"])
        if weights not in WILD_WEIGHTS:
            raise ConfigError(f"estimate.vcov.weights = {weights!r}; allowed: {', '.join(WILD_WEIGHTS)}")
        draws = d.get("draws", WILD_DEFAULTS["draws"])
        if isinstance(draws, bool) or not isinstance(draws, int) or not 99 <= draws <= MAX_DRAWS:
            raise ConfigError(
                f"estimate.vcov.draws = {draws!r}: need an integer from 99 to {MAX_DRAWS} (9999 is customary; "
                "B such that alpha (B+1) is an integer avoids size distortion, Davidson & MacKinnon 2000; "
                "memory and run time grow with B)"
            )
        return cls(kind=kind, by=by, weights=weights, draws=int(draws))

    def label(self) -> str:
        if self.kind == "wild":
            return f"wild({'+'.join(self.by)}; {self.weights}, B={self.draws})"
        return self.kind if not self.by else f"{self.kind}({'+'.join(self.by)})"

    def require(self, estimator: str, supported: tuple[str, ...]) -> None:
        if self.kind not in supported:
            raise UnsupportedVcovError(estimator, self.label(), list(supported))

    def with_by(self, by: tuple[str, ...]) -> "VcovSpec":
        """The same vcov on other (e.g. internal) column names, keeping every option."""
        return VcovSpec(kind=self.kind, by=tuple(by), weights=self.weights, draws=self.draws)

    def to_pyfixest(self, estimator: str):
        """Translate to pyfixest's ``vcov`` argument (``crv3``/``wild`` are not passed to
        pyfixest: they raise here; estimators that support them compute them in
        :mod:`models.inference.wild_bootstrap`)."""
        if self.kind == "iid":
            return "iid"
        if self.kind == "hetero":
            return "hetero"
        if self.kind == "cluster":
            return {"CRV1": self.by[0]}
        if self.kind == "twoway":
            return {"CRV1": f"{self.by[0]}+{self.by[1]}"}
        raise UnsupportedVcovError(estimator, self.label(), list(PYFIXEST_KINDS))

    def to_dict(self) -> dict:
        out = {"kind": self.kind, "by": list(self.by)}
        if self.kind == "wild":
            out.update(weights=self.weights, draws=self.draws)
        return out
