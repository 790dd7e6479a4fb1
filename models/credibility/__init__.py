"""Credibility battery: checks that re-run an estimator on modified designs.

* :mod:`.placebo` — fake adoption years, a fake treated group, an outcome that should not move;
* :mod:`.randomization` — randomization (permutation) inference on the cohort assignment;
* :mod:`.leave_one_out` — drop one cluster initiative at a time;
* :mod:`.spillover` — naive vs spillover-free controls, and the effect on co-located firms;
* :mod:`.battery` — all of them as one registry-style estimator (key ``checks``) with a
  plain verdict per check.

Pure functions over the processed panel (no I/O, no printing). The pure inference tools
(honest DiD, wild bootstrap, pre-trend power, multiple testing) live in
:mod:`models.inference`.
"""

from .leave_one_out import leave_one_out
from .placebo import placebo_adoption, placebo_outcome, placebo_treated_group
from .randomization import randomization_inference
from .spillover import spillover_designs

__all__ = [
    "leave_one_out",
    "placebo_adoption",
    "placebo_outcome",
    "placebo_treated_group",
    "randomization_inference",
    "spillover_designs",
]
