"""Gardner's (2021) two-stage difference-in-differences ("Two-stage differences in
differences", arXiv:2207.05943; R package did2s, Butts & Gardner 2022).

Stage 1: :math:`y_{it} = \\alpha_i + \\lambda_t + x_{it}'\\gamma + \\varepsilon_{it}` on
untreated observations (never members and not-yet-treated periods,
:math:`t - g_i < -\\text{anticipation}`). Stage 2: OLS of
:math:`\\tilde y_{it} = y_{it} - \\hat\\alpha_i - \\hat\\lambda_t - x_{it}'\\hat\\gamma` on the
treatment indicators over all observations: :math:`D_{it}` (``simple``), event-time
dummies :math:`1\\{t-g_i=h\\}` (``dynamic``) and cohort-by-post dummies (``group``).
Standard errors: the GMM sandwich that accounts for the first-stage estimation (see
:mod:`._twostage`), as R did2s and pyfixest ``did2s``.

With indicator second stages the coefficients equal the imputation estimator of
Borusyak, Jaravel & Spiess (2024) exactly (both are means of the imputed
:math:`\\hat\\tau_{it}`); this module computes them as the stage-2 regression (least
squares), :mod:`models.did.imputation` as weighted means, and the tests check that they
agree (1e-8) and match pyfixest's ``did2s`` (1e-6 points, SEs to its convention).
Options as :mod:`models.did.imputation` (anticipation, horizons, pretrend_leads).
"""

from __future__ import annotations

import pandas as pd

from models import options as _opt
from models.result import EstimationResult

from . import imputation

OPTIONS: dict = {k: imputation.OPTIONS[k] for k in imputation.TWOSTAGE_OPTIONS}
RULES: dict = {k: imputation.RULES[k] for k in imputation.TWOSTAGE_OPTIONS}
NAME = "did2s"
validate_options = _opt.validator(OPTIONS, RULES, name=NAME)


def fit(data: pd.DataFrame, spec) -> EstimationResult:
    return imputation.estimate(data, spec, NAME, regression=True)
