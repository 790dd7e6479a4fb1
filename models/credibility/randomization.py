"""Randomization (permutation) inference on the cohort assignment.

Under the sharp null of no effect for any firm in any year, the outcomes do not depend on
who joined when, so the distribution of the estimator under re-assignments of the cohort
vector is known (Fisher 1935; Imbens & Rubin 2015, ch. 5; for DiD with staggered
adoption: MacKinnon & Webb 2020, "Randomization inference for difference-in-differences
with few treated clusters", J. Econometrics 218(2); Roth & Sant'Anna 2023, Econometrica
91(2) on design-based inference under random timing).

Procedure: firms in the estimation sample keep their rows; the firm-level vector of
``first_treat`` (0 = never member) is permuted across firms ``draws`` times, the static
effect re-estimated each time.

P-value convention (stated): ``p = (1 + #{b : |beta_b| >= |beta_actual|}) / (draws + 1)``,
i.e. the actual assignment is counted as one of the draws (Phipson & Smyth 2010), so p is
never 0 and its smallest value is ``1 / (draws + 1)``; two-sided on absolute values.

Seeds: one child of ``numpy.random.SeedSequence(seed)`` per draw (``spawn``), so draw b's
permutation depends on (seed, b) only — not on chunking or thread count (the estimates
then agree across batch sizes up to BLAS rounding, ~1e-16).

Fast path for ``estimator="twfe"`` (Frisch–Waugh–Lovell): with ``M`` the exact two-way
(firm + year [+ covariates]) annihilator on the TWFE estimation sample,
``beta = (D~' y~) / (D~' D~)`` with ``y~ = M y`` computed once and ``D~ = M D`` per draw.
``M`` is applied exactly (no iteration) by :class:`models.did._fe.TwoWayFE` (Schur
complement of the year block; valid for unbalanced panels too), in batches of draws; cost
per draw is O(n_obs + n_firms x n_years). The sample is built by the same
``_panel.prepare`` / ``drop_singletons`` as :mod:`models.did.twfe` (neither depends on
the assignment), so on the actual assignment the shortcut equals ``twfe.fit`` up to
pyfixest's demeaning tolerance (tested to 1e-10). Other estimators are re-fitted per draw
(slow: ``draws`` full fits).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.did import _panel
from models.did._fe import TwoWayFE
from models.errors import ConfigError, DesignError
from models.spec import EstimatorSpec

from ._common import recode_treatment, run

CONVENTION = "p = (1 + #{|placebo| >= |actual|}) / (draws + 1), two-sided; the actual assignment counts as a draw"
_BATCH_ELEMENTS = 40_000_000  # rows x draws held at once in the fast path (~320 MB of float64)


def _permutations(seed: int, draws: int, n_firms: int, start: int, stop: int) -> np.ndarray:
    """Permutations for draws ``start..stop-1`` (one SeedSequence child per draw)."""
    children = np.random.SeedSequence(seed).spawn(draws)[start:stop]
    return np.stack([np.random.default_rng(c).permutation(n_firms) for c in children]) if stop > start else np.empty((0, n_firms), int)


class TwfeFWL:
    """Exact FWL form of the static TWFE estimator on ``twfe``'s estimation sample."""

    def __init__(self, data: pd.DataFrame, spec: EstimatorSpec):
        panel = _panel.prepare(data, spec, "twfe")
        _panel.drop_singletons(panel)
        _panel.require_controls(panel, spec, "twfe")
        df = panel.df
        self.panel = panel
        self.unit = df["_unit"].to_numpy()
        self.time = df["_time"].to_numpy()
        self.n_units = int(self.unit.max()) + 1
        X = df[panel.covariates].to_numpy(dtype=float) if panel.covariates else None
        self.fe = TwoWayFE(self.unit, self.time, self.n_units, int(self.time.max()) + 1, X=X)
        self.ytil = self.fe.residualize(df["_y"].to_numpy(dtype=float))[:, 0]
        # firm-level cohort vector (indexed by unit code) and the period of each row
        self.g_firm = np.zeros(self.n_units, dtype=np.int64)
        self.g_firm[self.unit] = df["_g"].to_numpy(dtype=np.int64)
        self.t = df["_t"].to_numpy(dtype=np.int64)

    def beta(self, G: np.ndarray) -> np.ndarray:
        """Static TWFE coefficients for cohort vectors ``G`` (m, n_units)."""
        G = np.atleast_2d(G)
        gr = G[:, self.unit].T  # (n, m)
        D = ((gr > 0) & (self.t[:, None] >= gr)).astype(float)
        Dt = self.fe.residualize(D)
        den = np.einsum("ij,ij->j", Dt, Dt)
        num = Dt.T @ self.ytil
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(den > 1e-12 * max(len(D), 1), num / den, np.nan)


def randomization_inference(
    data: pd.DataFrame,
    spec: EstimatorSpec,
    estimator: str = "twfe",
    draws: int = 199,
    seed: int | None = None,
    estimator_options: dict | None = None,
    fast: bool = True,
) -> dict:
    """RI p-value of the static effect under permutations of the cohort vector.

    Returns ``estimate`` (actual), ``p_value`` (RI, :data:`CONVENTION`), ``draws``,
    ``n_extreme`` (#|placebo| >= |actual|), ``placebo`` (the draws' estimates, ndarray),
    ``placebo_sd``, ``method`` ("fwl" or "refit"), ``seed``, ``convention``, ``n_obs``,
    ``n_treated``. Draws whose permuted design is not estimable (NaN) are excluded and
    counted in ``n_failed``. ``fast=False`` forces the re-fit path for ``twfe`` too (used
    by the tests to check the shortcut draw by draw).
    """
    if not isinstance(draws, (int, np.integer)) or isinstance(draws, bool) or draws < 1:
        raise ConfigError(f"randomization_inference: draws must be a whole number >= 1, got {draws!r}")
    seed = int(spec.seed if seed is None else seed)
    if estimator == "twfe" and fast:
        fwl = TwfeFWL(data, spec)
        actual = float(fwl.beta(fwl.g_firm)[0])
        n_f = fwl.n_units
        batch = max(1, min(draws, _BATCH_ELEMENTS // max(len(fwl.unit), 1)))
        placebo = np.empty(draws)
        for s in range(0, draws, batch):
            perms = _permutations(seed, draws, n_f, s, min(draws, s + batch))
            placebo[s : s + len(perms)] = fwl.beta(fwl.g_firm[perms])
        c = fwl.panel.counts()
        n_obs, n_treated, method = c["n_obs"], c["n_treated_units"], "fwl"
    else:
        base = run(data, spec, estimator, estimator_options)
        actual = base["estimate"]
        n_obs, n_treated, method = base["n_obs"], base["n_treated"], "refit"
        ids, codes = np.unique(data[spec.idname].to_numpy(), return_inverse=True)
        g_firm = np.zeros(ids.size, dtype=np.int64)
        g_firm[codes] = data[spec.gname].to_numpy(dtype=np.int64)
        placebo = np.empty(draws)
        for b in range(draws):
            perm = _permutations(seed, draws, ids.size, b, b + 1)[0]
            df = recode_treatment(data, spec, g_firm[perm][codes])
            try:
                placebo[b] = run(df, spec, estimator, estimator_options)["estimate"]
            except DesignError:
                placebo[b] = np.nan
    ok = np.isfinite(placebo)
    if not ok.any():
        raise DesignError("randomization_inference: no permuted assignment could be estimated")
    n_ext = int(np.sum(np.abs(placebo[ok]) >= np.abs(actual) - 1e-12 * max(abs(actual), 1.0)))
    return {
        "check": "ri_pvalue",
        "estimate": actual,
        "p_value": (1 + n_ext) / (int(ok.sum()) + 1),
        "draws": int(draws),
        "n_failed": int((~ok).sum()),
        "n_extreme": n_ext,
        "placebo": placebo,
        "placebo_sd": float(np.std(placebo[ok], ddof=1)) if ok.sum() > 1 else float("nan"),
        "method": method,
        "seed": seed,
        "convention": CONVENTION,
        "n_obs": n_obs,
        "n_treated": n_treated,
    }
