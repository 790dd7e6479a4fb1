"""Matching and weighting: comparable non-members, and matched DiD.

Library API (mirrors R MatchIt, snake case):

* :func:`models.matching.matchit.matchit` — ``matchit(data, treat, covariates, method="nearest"|
  "exact"|"cem", distance="glm"|"probit"|"mahalanobis", link, ratio, replace, caliper,
  std_caliper, exact, m_order, discard, cutpoints, seed) -> MatchResult``;
  :func:`models.matching.matchit.att` — the ATT on the matched data (``lm(y ~ treat, weights)``
  with matched-set-clustered SE); ``matchit(..., ties="first"|"all")`` (MatchIt's tie rule, or
  every tied control with split weights: models.matching.ties) and
  :func:`models.matching.matchit.att_ai` (Abadie–Imbens SEs, models.matching.abadie_imbens).
* :func:`models.matching.ipw.att_odds_weights`, :func:`models.matching.ebal.entropy_balance`,
  :func:`models.matching.effects.weighted_att`, :func:`models.matching.balance.balance_table`.

Pipeline estimators (registry): ``matching`` (models.matching.estimator) and ``weighting``
(models.matching.weighting), both built on models.matching.stacking / staggered.
"""

from .matchit import MatchResult, att, matchit  # noqa: F401
