"""Zeros and log-like transforms (Chen & Roth 2024, "Logs with zeros? Some problems and
solutions", Quarterly Journal of Economics 139(2)).

For an outcome with a mass at zero, an average treatment effect on ``log(1 + y)``,
``asinh(y)`` or any transform that behaves like ``log(y)`` for large ``y`` and is finite at
zero is not a percentage effect: it depends on the units of ``y`` (rescaling euros to
thousands of euros changes it arbitrarily, because the extensive-margin jump from 0 to a
positive value is worth ``log`` of the unit scale). Chen & Roth recommend a PPML /
proportional effect on levels (:mod:`models.counts.ppml`, :mod:`models.counts.etwfe_poisson`),
separate extensive/intensive margins, or an explicit valuation of the extensive margin.

:func:`log_zero_check` is the screening rule the pipeline applies before estimating on a
log-like transform.
"""

from __future__ import annotations

import numpy as np

#: zero share at or above which a log-like transform is refused (not just flagged)
REFUSE_SHARE = 0.05


def log_zero_check(y, *, refuse_share: float = REFUSE_SHARE) -> dict:
    """Screen an outcome for zeros before a ``log(1+y)``/``asinh`` transform.

    Returns a dict with ``n`` (non-missing values), ``n_zero``, ``zero_share``,
    ``n_negative``, ``status`` (``"ok"`` no zeros: logs are well defined; ``"flag"`` some
    zeros, below ``refuse_share``; ``"refuse"`` zero share >= ``refuse_share`` or any
    negative value), ``log_defined`` (``log(y)`` defined for every value), and ``sentence``,
    a sentence for the report.
    """
    a = np.asarray(y, dtype=float).ravel()
    a = a[np.isfinite(a)]
    n = int(a.size)
    n_zero = int(np.sum(a == 0))
    n_neg = int(np.sum(a < 0))
    share = n_zero / n if n else float("nan")
    if n == 0:
        status = "refuse"
        sentence = "The outcome has no non-missing values; no transform can be assessed."
    elif n_neg:
        status = "refuse"
        sentence = (
            f"The outcome has {n_neg} negative value(s); log(1+y) and PPML are not applicable "
            "without redefining the outcome."
        )
    elif n_zero == 0:
        status = "ok"
        sentence = "The outcome has no zeros, so effects on log(y) are proportional effects and do not depend on its units."
    else:
        status = "refuse" if share >= refuse_share else "flag"
        verdict = (
            "so effects on log(1+y) or asinh(y) are not reported"
            if status == "refuse"
            else "so effects on log(1+y) or asinh(y) are shown only with this warning"
        )
        sentence = (
            f"{share:.1%} of the observations ({n_zero} of {n}) are zero; with zeros, an average effect on "
            "log(1+y) or asinh(y) depends on the units in which y is measured (Chen and Roth 2024), "
            f"{verdict}; the proportional effect from Poisson PML (ppml, etwfe_poisson) is the headline instead."
        )
    return {
        "n": n,
        "n_zero": n_zero,
        "zero_share": share,
        "n_negative": n_neg,
        "status": status,
        "log_defined": bool(n and n_zero == 0 and n_neg == 0),
        "refuse_share": refuse_share,
        "sentence": sentence,
    }
