"""The one place the regression DiD estimators call pyfixest (backend objects never
leave this module: it returns plain numpy arrays).

Conventions: singletons are removed (and counted) by :func:`._panel.drop_singletons`
before the call, so pyfixest runs with ``fixef_rm="none"``; the fixed-effect demeaning
tolerance is tightened from pyfixest's default 1e-6 to 1e-10 so that unbalanced panels
agree with exact least squares to ~1e-9 (balanced panels converge in one sweep). Cluster
SEs follow fixest's CRV1 small-sample convention (fixed effects nested in the cluster are
not counted: 0.01327 on mpdta's TWFE, shared/REFERENCES.md).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.errors import DesignError
from models.vcov import VcovSpec

FIXEF_TOL = 1e-10


@dataclass
class OLSFit:
    names: list[str]
    beta: np.ndarray
    vcov: np.ndarray
    n_obs: int
    df_resid: float | None = None


def feols_fe(
    df: pd.DataFrame,
    y: str,
    xcols: list[str],
    vcov: VcovSpec,
    estimator: str,
    fe: tuple[str, ...] = ("_unit", "_time"),
    why_collinear: str = "",
) -> OLSFit:
    """OLS of ``y`` on ``xcols`` absorbing ``fe`` (internal integer-code columns only: the
    formula is built from these validated names, never from user strings; pass
    ``panel.fe`` for unit, period and the extra effects of ``estimate.fixed_effects``);
    DesignError naming the collinear regressors if pyfixest drops any (never a silent drop)."""
    import pyfixest as pf

    cols = list(dict.fromkeys([y, *xcols, *fe, *vcov.by]))
    fml = f"{y} ~ {' + '.join(xcols)} | {' + '.join(fe)}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            fit = pf.feols(
                fml,
                data=df[cols],
                vcov=vcov.to_pyfixest(estimator),
                fixef_rm="none",
                fixef_tol=FIXEF_TOL,
                fixef_maxiter=100_000,
                copy_data=False,
                store_data=False,
            )
        except ValueError as exc:
            if "collinear" not in str(exc).lower():
                raise
            raise DesignError(
                f"{estimator}: all regressors {xcols} are collinear with the fixed effects ({' + '.join(fe)}). "
                f"{why_collinear}".rstrip()
            ) from exc
    names = [str(n) for n in fit._coefnames]
    dropped = [c for c in xcols if c not in names]
    if dropped:
        raise DesignError(
            f"{estimator}: regressor(s) {dropped} are collinear with the fixed effects ({' + '.join(fe)}) "
            f"(or with each other) and cannot be estimated. {why_collinear}".rstrip()
        )
    order = [names.index(c) for c in xcols]
    beta = np.asarray(fit._beta_hat, dtype=float)[order]
    V = np.asarray(fit._vcov, dtype=float)[np.ix_(order, order)]
    return OLSFit(names=list(xcols), beta=beta, vcov=V, n_obs=int(fit._N))
