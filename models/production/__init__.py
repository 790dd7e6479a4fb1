"""Production functions and total factor productivity (TFP).

Control-function estimators of Cobb-Douglas elasticities from firm panels, each in its own
module (Olley & Pakes 1996 :mod:`.olley_pakes`; Levinsohn & Petrin 2003
:mod:`.levinsohn_petrin`; Ackerberg, Caves & Frazer 2015 :mod:`.acf`; Wooldridge 2009
:mod:`.wooldridge`), shared first-stage/GMM helpers in :mod:`.common`, and the entry points
:func:`.tfp.estimate_tfp` and :func:`.tfp.tfp_bootstrap_draws`.
"""

from .tfp import TFPResult, estimate_tfp, tfp_bootstrap_draws

__all__ = ["TFPResult", "estimate_tfp", "tfp_bootstrap_draws"]
