"""Seeded synthetic economy: the embedded sample, the recovery tests and the benchmarks.

``simulate_economy(...)`` draws a firm panel, a cluster-membership register, sector price
indices and the *true* effects of membership; ``write_sample(out_dir, economy)`` writes
``firms.csv``, ``membership.csv``, ``deflators.csv`` and ``truth.csv`` (the raw-file contract
of the project brief) byte-for-byte reproducibly; ``inject_defects(economy, rates, seed)``
adds known numbers of bad rows for the ingest accounting tests; ``main(argv)`` is
``cluster-impact simulate``.

The economy
===========
Firms ``i`` in 10 sectors (NACE-2 codes as strings) and 8 regions ("R01".."R08"), observed in
years ``t``. Most firms are singleton enterprise groups, some belong to groups of 2-5 (mostly
within one region). Coordinates (km) scatter around a region centre (4 x 2 grid, 100 km apart).

Production (the Monte-Carlo design of Ackerberg, Caves & Frazer 2015, Econometrica 83(6),
as reproduced by prodest's ``panelSim``): real value added is Cobb-Douglas and Hicks-neutral,

    va_it = b0_s + 0.6 l_it + 0.4 k_it + A_it + e_it,          e_it ~ N(0, 0.1^2)
    A_it  = omega_it + (g_i + psi_i) * (t - entry_i)
    omega_it = 0.7 omega_i,t-1 + xi_it,                        xi_it ~ N(0, 0.15^2)

with ``l`` = log employees (headcount, the *observed* integer), ``k`` = log real capital,
``g_i`` a deterministic trend by sector, region and size class, and ``psi_i`` ~ N(0, 0.006^2)
an idiosyncratic firm trend (both zero in the firm's first year). There is no permanent firm
effect in TFP (ACF's Markov assumption holds up to the small trend terms); firms differ
permanently in scale ``c_i`` and capital intensity ``k*_i = c_i + log 60 + a_i``
(``a_i`` ~ N(0, 0.4^2)). Inputs respond to productivity, so OLS of ``va`` on ``l, k`` is
biased (the point of the design; on the default sample pooled OLS gives about 0.64/0.39 and
the within estimator 1.26/0.52): capital is chosen a year ahead,
``k_it = 0.8 k_i,t-1 + 0.2 k*_i + 0.3 A_i,t-1 + N(0, 0.08^2)``, labour contemporaneously,
``l_it = c_i + 0.5 (omega_it + trend_it) + eta_it`` with an AR(1) (0.5) optimisation/wage shock
``eta``. Intermediates are the Levinsohn-Petrin / ACF proxy, a deterministic increasing
function of productivity given the inputs: ``M = theta_s/(1-theta_s) exp(b0_s + 0.6 l + 0.4 k + A)``
(``theta_s`` = sector intermediate share of gross output). Turnover = value added +
intermediates (nominal). Nominal values are real values times the sector deflator
(2015 = 1), all in thousands of euro; capital and intermediates use the same sector index, so
deflating them with ``deflators.csv`` returns the real quantities of the design.

Wages: employees x a wage per head rising with ``a_i``, ``omega`` and a regional premium,
times a 1.8 %/year wage index. R&D: about a fifth of firms (more of the large ones and of
the high-tech sectors) are persistent R&D performers spending 1-10 % of their ``Y(0)``
turnover (R&D does not respond to membership).
Exports: zero-heavy and persistent. Status is a dynamic logit
``s_it = 1[x_it + 2.8 s_i,t-1 > 0]`` with ``x_it`` rising in size and productivity plus a
firm effect and logistic noise; when exporting, exports = turnover x
``sigmoid(m_i + N(0, 0.3^2))`` (log-normal-like values, intensity ~ 20 %). Patents:
``Poisson(lambda_it)``, ``log lambda`` rising in size, R&D status, sector and a firm effect;
about nine firm-years in ten are zero.

Membership and selection
========================
``n_clusters`` initiatives ("CL01".."), each with a home region and a main sector; each is
launched in one of the ``cohorts`` and takes members in its launch year and the two next
cohorts (weights 0.5/0.3/0.2). ``selection``:

* ``random``: a firm joins with a constant probability (``member_share``) and a random cluster.
* ``observables``: ``logit P(join) = a + 0.9 z_size + sector effect + region effect`` where
  ``z_size`` is the standardised log employment in the firm's first observed year; members go
  to the cluster of their region/sector. Productivity *trends* ``g_i`` differ by the same
  sector, region and size class (employment in the first observed year: <10, 10-49, 50-249,
  250+), in the direction of selection, so parallel trends hold only conditional on them.
* ``observables+trends``: as ``observables`` and, in addition, firms with a high
  idiosyncratic productivity slope ``psi_i`` join more often (selection on pre-trends; matching
  on pre-treatment outcome trends removes it).

``a`` is set so that the expected share of members is ``member_share``. A firm can only join
while it is in the panel (after its first observed year). With ``irregular=True`` (the default
when ``cohorts`` is not given) the register also holds what the pipeline's policies count:
about 3 % of members joined before the first panel year (always-members), 2.5 % leave
(``leave_year``), 2 % have a second, overlapping spell in another cluster, and about 2 % of
members' number of non-members join after the last panel year. Given ``cohorts`` explicitly,
the design is clean (e.g. ``cohorts=[2015]``: one cohort, so TWFE makes no forbidden
comparisons), unless ``irregular=True`` is passed.

Size of the selection bias (2x2 DiD of log labour productivity, ``cohorts=[2015]``,
``effect="homogeneous"``, true ATT 0.06, mean over 6 seeds): random 0.054 (n=2500) / 0.067
(n=800, SE 0.02), observables 0.071 / 0.088, observables+trends 0.110 / 0.132. So the
single-cohort homogeneous design is unbiased for TWFE under ``selection="random"``; under the
default ``observables`` it carries a trend bias of about +0.02 (one to two SE at n=800).

Effects (the truth)
===================
Each exposed firm has an exposure year ``g`` (first join year for members; for co-located
firms the first join year of any member in their region x sector cell) and a scale (1 for
members, ``spillover`` for co-located non-members). For event time ``e = t - g >= 0`` the effect
multiplier is ``m(g, e)``:

* ``homogeneous``: 1;
* ``heterogeneous``: ``f_g * min(e + 1, 4) / 4`` with ``f_g = 1.5 - (g - g_first)/(g_last - g_first)``
  clipped to [0.5, 1.5] (earlier cohorts gain more; effects build up over four years);
* ``none``: 0.

and ``scale * m`` multiplies the base effects: +0.06 on log value added (inputs unchanged,
so log labour productivity rises by exactly that, up to the 0.1 rounding of value added),
+0.6 on the export-status latent index, +0.25 on the export-intensity index, +0.35 on the log
patent rate. Effects are absorbing: they persist after ``leave_year`` (matching the default
``build_groups.leavers: absorbing``); a second spell adds nothing. Members' ``Y(0)`` is the
outcome without membership *and* without spillover.

Both potential outcomes use the same shocks: ``Y(1)`` value added = ``Y(0)`` x ``exp(delta)``;
export status runs two dynamic chains with the same noise; patents are coupled exactly,
``P(1) = P(0) + Poisson(lambda0 (e^delta - 1))`` (or binomial thinning for negative effects).
``truth.csv`` holds, per outcome, exposure group ("member" or "colocated"), cohort and year
with exposed firms (``event_time >= 0``): ``att`` = mean over those observed firm-years of
``Y(1) - Y(0)``, ``pct`` = ``sum Y(1) / sum Y(0) - 1`` (blank when ``sum Y(0) = 0``) and
``n_firms``. Always-members (cohort before the first panel year) have truth rows too; to
compare with estimates, keep ``first year < cohort <= last year``. Outcomes are defined as the ingest stage defines them, from the *rounded* values
written to the files: labour_productivity = (value_added / deflator) / employees,
log_labour_productivity = its log, exports, export_status = exports > 0, patents
(= patent_applications). Monetary values are rounded to 0.1 (thousand euro) and deflators
to 4 decimals *before* the truth is computed, and ``round(x, d)`` equals the value a CSV
reader parses from the ``%.{d}f`` text, so truth.csv is exact for the data in the files.
``SimulatedEconomy.potential`` holds the ``Y(0)`` values of every exposed firm-year (``Y(1)``
is what ``firms`` shows) so the truth can be recomputed.

Entry and exit: ``attrition`` = share of firms that exit before the last year (last observed
year uniform over the first ... second-to-last year) and, as many again, firms that enter
after the first year (founded in their entry year): an unbalanced panel.

Randomness: ``numpy.random.default_rng(seed)`` and its spawned child streams only (firm
traits, the economy's shocks, entry/exit, membership, effect draws, prices), so e.g. ``Y(0)``
of every firm-year does not depend on ``effect``, ``selection`` or ``spillover``.
Fully vectorised over firms (a loop over years only): 1M firms x 20 years in well under a
minute.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from models.errors import ConfigError

# --------------------------------------------------------------------------------------------
# Fixed structure of the economy
# --------------------------------------------------------------------------------------------
SECTORS = ("10", "20", "22", "24", "25", "26", "27", "28", "29", "62")
SECTOR_WEIGHTS = np.array([0.14, 0.06, 0.09, 0.05, 0.20, 0.07, 0.07, 0.13, 0.06, 0.13])
SECTOR_TFP = np.array([-0.10, 0.15, -0.05, 0.05, -0.05, 0.20, 0.05, 0.10, 0.10, 0.20])  # b0_s - log(11)
SECTOR_INTERMEDIATE_SHARE = np.array([0.70, 0.62, 0.58, 0.68, 0.52, 0.55, 0.57, 0.55, 0.66, 0.40])
SECTOR_JOIN = np.array([-0.8, 0.4, -0.3, -0.5, 0.0, 0.9, 0.6, 0.5, 0.3, 0.8])  # logit shift, selection
SECTOR_OPEN = np.array([-0.2, 0.6, 0.2, 0.5, 0.0, 0.8, 0.5, 0.7, 0.6, -0.3])  # export propensity
SECTOR_INNOV = np.array([-0.8, 0.5, -0.2, -0.3, -0.4, 0.9, 0.5, 0.5, 0.3, 0.4])  # R&D / patents
SECTOR_PRICE_TREND = np.array([0.020, 0.015, 0.012, 0.025, 0.014, -0.010, 0.010, 0.012, 0.011, 0.008])

REGIONS = tuple(f"R{j:02d}" for j in range(1, 9))
REGION_WEIGHTS = np.array([0.18, 0.15, 0.14, 0.12, 0.12, 0.10, 0.10, 0.09])
REGION_JOIN = np.array([0.7, 0.5, 0.4, 0.2, 0.0, -0.3, -0.6, -0.9])
REGION_WAGE = np.array([0.10, 0.06, 0.04, 0.02, 0.0, -0.03, -0.06, -0.08])
REGION_CENTRES = np.array([[100.0 * (j % 4) + 50.0, 100.0 * (j // 4) + 50.0] for j in range(8)])

SIZE_BOUNDS = (10, 50, 250)  # employees in the first observed year: micro | small | medium | large
# productivity trends (log points / year), in the direction of selection (DESIGN.md §4)
TREND_SIZE = np.array([-0.002, 0.0, 0.002, 0.004])
TREND_SECTOR = 0.003 * SECTOR_JOIN
TREND_REGION = 0.0025 * REGION_JOIN

CLUSTER_SECTORS = (5, 9, 7, 1, 6, 8)  # indices into SECTORS: 26, 62, 28, 20, 27, 29

# production design (ACF 2015)
BETA_L, BETA_K, RHO_OMEGA, SD_XI = 0.6, 0.4, 0.7, 0.15
SD_EPS, SD_A, SD_PSI = 0.1, 0.4, 0.006  # SD_A: firm capital intensity (not in TFP)
LOG_SIZE_MEAN, LOG_SIZE_SD = np.log(9.0), 1.25

# exports: status latent index = EXPORT_INTERCEPT + 0.5 z_size + sector + firm effect + 0.8 A
# + logistic noise + EXPORT_PERSISTENCE * last year's status
EXPORT_INTERCEPT, EXPORT_FE_SD, EXPORT_PERSISTENCE = -4.3, 2.0, 3.5

# base effects of membership (multiplied by the effect multiplier m(g, e) and the scale)
BASE_EFFECTS = {"log_value_added": 0.06, "export_index": 0.6, "export_intensity": 0.25, "log_patent_rate": 0.35}

TRUTH_OUTCOMES = ("log_labour_productivity", "labour_productivity", "exports", "export_status", "patents")
EFFECTS = ("heterogeneous", "homogeneous", "none")
SELECTIONS = ("random", "observables", "observables+trends")

FIRM_COLUMNS = (
    "firm_id", "year", "nace2", "nuts2", "founding_year", "employees", "turnover", "value_added",
    "wage_bill", "capital", "intermediates", "exports", "patent_applications", "rd_expenditure",
    "group_id", "x_coord", "y_coord",
)  # fmt: skip
MONEY = ("turnover", "value_added", "wage_bill", "capital", "intermediates", "exports", "rd_expenditure")

DEFECTS = (
    "duplicate",  # exact copies of a row, appended
    "conflicting_duplicate",  # copies of a row with a different value_added, appended
    "missing_firm_id",  # firm_id blank, in place
    "year_out_of_window",  # copies of a row with a year before/after the window, appended
    "non_numeric",  # text ("n.a.", "–", "12 345") in a numeric column, in place
    "negative_employment",  # employees < 0, in place
    "zero_value_added",  # value_added == 0 (log of zero), in place
)
NON_NUMERIC_COLUMNS = ("employees", "turnover", "value_added", "exports", "capital")

_STR = pd.StringDtype("pyarrow", na_value=np.nan)  # pandas' default "str" dtype


@dataclass
class SimulatedEconomy:
    """The generated data: raw-file frames plus what is needed to check the truth.

    firms, membership, deflators, truth: exactly the content of the four CSV files.
    potential: ``Y(0)`` of every exposed firm-year (firm_id, year, group, cohort,
    value_added_0, exports_0, patent_applications_0); ``Y(1)`` is the row in ``firms``.
    config: the arguments that produced it (and derived counts).
    """

    firms: pd.DataFrame
    membership: pd.DataFrame
    deflators: pd.DataFrame
    truth: pd.DataFrame
    potential: pd.DataFrame = field(repr=False)
    config: dict[str, Any] = field(default_factory=dict)
    other_programme: pd.DataFrame | None = None  # a second programme's register (other_programme.csv)
    collaborations: pd.DataFrame | None = None  # edges firm_a, firm_b, year, kind, induced (pipeline.simulate_collab)
    costs: pd.DataFrame | None = None  # the programme's spending per initiative and year (costs.csv)


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------
def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _label_matrix(labels: Sequence[str]) -> np.ndarray:
    """Equal-width ASCII labels as a (n_labels, width) uint8 matrix."""
    width = len(labels[0])
    if any(len(x) != width for x in labels):
        raise ValueError("labels must have equal width")
    return np.frombuffer("".join(labels).encode("ascii"), dtype=np.uint8).reshape(len(labels), width)


def _id_matrix(prefix: str, n: int, width: int = 6) -> np.ndarray:
    """Labels ``prefix + zero-padded 1..n`` (width at least ``width`` digits) as a uint8 matrix,
    built arithmetically (no Python string per label)."""
    width = max(width, len(str(n)))
    num = np.arange(1, n + 1, dtype=np.int64)[:, None]
    digits = (num // 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)[None, :]) % 10 + ord("0")
    pre = np.broadcast_to(np.frombuffer(prefix.encode("ascii"), dtype=np.uint8), (n, len(prefix)))
    return np.ascontiguousarray(np.hstack([pre, digits.astype(np.uint8)]))


def _str_take(labels: Sequence[str] | np.ndarray, codes: np.ndarray) -> pd.api.extensions.ExtensionArray:
    """``labels[codes]`` as pandas' default string dtype, built from Arrow buffers directly
    (labels given as equal-width strings or a uint8 label matrix)."""
    codes = np.asarray(codes)
    if not isinstance(labels, np.ndarray) and len({len(x) for x in labels}) > 1:  # unequal widths
        return pd.array(pa.array(list(labels), type=pa.large_string()).take(pa.array(codes)), dtype=_STR)
    lab = labels if isinstance(labels, np.ndarray) else _label_matrix(list(labels))
    m, w = codes.size, lab.shape[1]
    data = lab[codes].reshape(-1)
    if m * w < 2**31 - 1:
        typ, offsets = pa.string(), np.arange(0, (m + 1) * w, w, dtype=np.int32)
    else:
        typ, offsets = pa.large_string(), np.arange(0, (m + 1) * w, w, dtype=np.int64)
    arr = pa.Array.from_buffers(typ, m, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    return pd.array(arr, dtype=_STR)


def default_cohorts(years: tuple[int, int]) -> list[int]:
    """2011..2018 for 2008-2022: eight cohorts starting in the fourth panel year, ending at
    least four years before the last year (shrunk for short panels)."""
    y0, y1 = years
    lo, hi = y0 + 3, min(y0 + 10, y1 - 4)
    if hi < lo:
        lo = hi = y0 + max(1, (y1 - y0) // 2)
    return list(range(lo, hi + 1))


def effect_multiplier(effect: str, g: np.ndarray, e: np.ndarray, g_first: int, g_last: int) -> np.ndarray:
    """m(g, e): the effect of a unit exposed since ``g`` at event time ``e`` (0 for e < 0)."""
    g = np.asarray(g, dtype=np.float64)
    e = np.asarray(e, dtype=np.float64)
    post = e >= 0
    if effect == "none":
        return np.zeros(np.broadcast(g, e).shape)
    if effect == "homogeneous":
        return np.where(post, 1.0, 0.0)
    span = float(g_last - g_first)
    f = np.ones_like(g) if span == 0 else np.clip(1.5 - (g - g_first) / span, 0.5, 1.5)
    ramp = np.minimum(e + 1.0, 4.0) / 4.0
    return np.where(post, f * ramp, 0.0)


def _check_args(n_firms, years, n_clusters, cohorts, effect, selection, spillover, attrition, member_share):
    problems = []
    if not isinstance(n_firms, (int, np.integer)) or n_firms < 10:
        problems.append(f"n_firms: need an integer >= 10, got {n_firms!r}")
    try:
        y0, y1 = (int(y) for y in years)
        if y1 - y0 < 2:
            problems.append(f"years: need at least 3 years, got {years!r}")
    except (TypeError, ValueError):
        problems.append(f"years: give (first, last), got {years!r}")
        y0 = y1 = None
    if not isinstance(n_clusters, (int, np.integer)) or not 1 <= n_clusters <= 99:
        problems.append(f"n_clusters: need 1..99, got {n_clusters!r}")
    if cohorts is not None and y0 is not None:
        bad = [g for g in cohorts if not (isinstance(g, (int, np.integer)) and y0 < g <= y1)]
        if bad or not len(cohorts):
            problems.append(f"cohorts: join years must lie in ({y0}, {y1}] (one pre-period at least); bad: {bad or cohorts!r}")
    if effect not in EFFECTS:
        problems.append(f"effect: {effect!r}; allowed: {', '.join(EFFECTS)}")
    if selection not in SELECTIONS:
        problems.append(f"selection: {selection!r}; allowed: {', '.join(SELECTIONS)}")
    if not np.isfinite(spillover) or abs(spillover) > 5:
        problems.append(f"spillover: a share of the members' effect in [-5, 5], got {spillover!r}")
    if not 0.0 <= attrition <= 0.5:
        problems.append(f"attrition: a share in [0, 0.5], got {attrition!r}")
    if not 0.0 < member_share < 0.9:
        problems.append(f"member_share: a share in (0, 0.9), got {member_share!r}")
    if problems:
        raise ConfigError("simulate: bad arguments", problems=problems)


# --------------------------------------------------------------------------------------------
# the generator
# --------------------------------------------------------------------------------------------
def simulate_economy(
    n_firms: int = 2500,
    years: tuple[int, int] = (2008, 2022),
    seed: int = 20261122,
    n_clusters: int = 6,
    cohorts: Sequence[int] | None = None,
    effect: str = "heterogeneous",
    selection: str = "observables",
    spillover: float = 0.0,
    attrition: float = 0.0,
    *,
    irregular: bool | None = None,
    member_share: float = 0.18,
    spillover_radius: float | None = None,
    other_share: float = 0.0,
    other_effect: float = 0.05,
    collab_rate: float | None = None,
    collab_base: float = 1.0,
) -> SimulatedEconomy:
    """Simulate the economy described in the module docstring. See there for every option."""
    _check_args(n_firms, years, n_clusters, cohorts, effect, selection, spillover, attrition, member_share)
    if spillover_radius is not None and not (np.isfinite(spillover_radius) and spillover_radius > 0):
        raise ConfigError(f"spillover_radius: a positive distance in km (or None for region x sector cells), got {spillover_radius!r}")
    n = int(n_firms)
    y0, y1 = int(years[0]), int(years[1])
    T = y1 - y0 + 1
    cohort_list = sorted({int(g) for g in (cohorts if cohorts is not None else default_cohorts((y0, y1)))})
    if irregular is None:
        irregular = cohorts is None
    g_first, g_last = cohort_list[0], cohort_list[-1]

    root = np.random.default_rng(seed)
    r_firm, r_econ, r_exit, r_member, r_effect, r_price = root.spawn(6)

    # ---- firm traits --------------------------------------------------------------------
    sector = r_firm.choice(len(SECTORS), size=n, p=SECTOR_WEIGHTS / SECTOR_WEIGHTS.sum())
    region = r_firm.choice(len(REGIONS), size=n, p=REGION_WEIGHTS / REGION_WEIGHTS.sum())
    c_size = r_firm.normal(LOG_SIZE_MEAN, LOG_SIZE_SD, n)
    zc = (c_size - LOG_SIZE_MEAN) / LOG_SIZE_SD
    a_fe = r_firm.normal(0.0, SD_A, n)
    psi = r_firm.normal(0.0, SD_PSI, n)
    age0 = 1 + np.floor(np.exp(r_firm.normal(2.2, 0.8, n))).astype(np.int64)
    rd_performer = r_firm.random(n) < _sigmoid(-1.6 + 0.6 * zc + SECTOR_INNOV[sector])
    rd_share = np.exp(r_firm.normal(np.log(0.03), 0.5, n))
    exp_fe = r_firm.normal(0.0, EXPORT_FE_SD, n)
    int_fe = r_firm.normal(-1.6, 0.8, n)
    pat_fe = r_firm.normal(0.0, 0.8, n)
    wage_fe = r_firm.normal(0.0, 0.08, n)
    coords = np.round(REGION_CENTRES[region] + r_firm.normal(0.0, 12.0, (n, 2)), 1)
    # enterprise groups: consecutive firms in a region-sorted random order; ~82 % singletons
    order = r_firm.permutation(n)
    order = order[np.argsort(region[order], kind="stable")]
    sizes = r_firm.choice(5, size=n, p=[0.93, 0.03, 0.02, 0.01, 0.01]) + 1
    g_sorted = np.searchsorted(np.cumsum(sizes), np.arange(n), side="right")
    group = np.empty(n, dtype=np.int64)
    group[order] = g_sorted
    first_member = np.full(group.max() + 1, n, dtype=np.int64)
    np.minimum.at(first_member, group, np.arange(n))
    used = np.flatnonzero(first_member < n)
    relabel = np.empty(group.max() + 1, dtype=np.int64)
    relabel[used[np.argsort(first_member[used], kind="stable")]] = np.arange(used.size)
    group = relabel[group]

    # ---- entry and exit -------------------------------------------------------------------
    first_k = np.zeros(n, dtype=np.int64)
    last_k = np.full(n, T - 1, dtype=np.int64)
    n_move = int(round(attrition * n))
    perm = r_exit.permutation(n)
    exits, entrants = perm[:n_move], perm[n_move : 2 * n_move]
    last_k[exits] = r_exit.integers(0, T - 1, exits.size)  # last observed year < last panel year
    first_k[entrants] = r_exit.integers(1, T, entrants.size)  # enter after the first panel year
    founding = np.where(first_k > 0, y0 + first_k, y0 - age0)

    # ---- prices -----------------------------------------------------------------------------
    p_lo, p_hi = min(y0, 2015), max(y1, 2015)
    p_years = np.arange(p_lo, p_hi + 1)
    noise = np.zeros((len(SECTORS), p_years.size))
    for j in range(1, p_years.size):
        noise[:, j] = 0.6 * noise[:, j - 1] + r_price.normal(0.0, 0.01, len(SECTORS))
    log_p = SECTOR_PRICE_TREND[:, None] * (p_years - 2015)[None, :] + noise - noise[:, [2015 - p_lo]]
    defl_table = np.round(np.exp(log_p[:, y0 - p_lo : y1 - p_lo + 1]), 4)  # (sectors, T)
    wage_index = 1.018 ** (np.arange(y0, y1 + 1) - 2015)

    # ---- the economy, Y(0): loop over years, vectorised over firms --------------------------
    b0 = np.log(11.0) + SECTOR_TFP[sector]
    m_ratio = SECTOR_INTERMEDIATE_SHARE / (1 - SECTOR_INTERMEDIATE_SHARE)
    m_ratio = m_ratio[sector]
    kstar = c_size + np.log(60.0) + a_fe
    lam_base = -3.2 + 0.6 * zc + 1.4 * rd_performer + SECTOR_INNOV[sector] + pat_fe
    exp_base = EXPORT_INTERCEPT + 0.5 * zc + SECTOR_OPEN[sector] + exp_fe

    shape = (n, T)
    # outputs, firm-major (n, T): Y(0) values for now; exposed cells are overwritten with Y(1)
    va = np.empty(shape)  # nominal value added, unrounded until the exposed block is taken
    m_nom = np.empty(shape)
    cap_nom = np.empty(shape)
    wage = np.empty(shape)
    emp = np.empty(shape, dtype=np.int64)
    turnover = np.empty(shape)
    exports = np.empty(shape)
    patents = np.empty(shape, dtype=np.int64)
    rd = np.empty(shape)
    # what Y(1) of the exposed firms needs (float32 keeps 1M x 20 within a few GiB)
    x_exp = np.empty(shape, dtype=np.float32)  # export-status latent index without persistence
    z_int = np.empty(shape, dtype=np.float32)  # export-intensity latent index
    lam0 = np.empty(shape, dtype=np.float32)  # patent rate
    s0 = np.empty(shape, dtype=bool)

    emp_first = np.zeros(n, dtype=np.int64)
    g_trend = np.zeros(n)
    omega = r_econ.normal(0.0, SD_XI / np.sqrt(1 - RHO_OMEGA**2), n)
    eta = r_econ.normal(0.0, 0.1 / np.sqrt(1 - 0.25), n)
    k_log = kstar + r_econ.normal(0.0, 0.3, n)
    A_prev = None
    s_prev = np.zeros(n, dtype=bool)
    for k in range(T):
        if k > 0:
            omega = RHO_OMEGA * omega + r_econ.normal(0.0, SD_XI, n)
            eta = 0.5 * eta + r_econ.normal(0.0, 0.1, n)
            k_log = 0.8 * k_log + 0.2 * kstar + 0.3 * A_prev + r_econ.normal(0.0, 0.08, n)
        trend = (g_trend + psi) * np.maximum(k - first_k, 0)
        A = omega + trend  # Hicks-neutral productivity: AR(1) omega (+ the trend terms)
        e_k = np.maximum(1, np.rint(np.exp(c_size + 0.5 * (omega + trend) + eta))).astype(np.int64)
        starts = first_k == k
        if starts.any():
            emp_first[starts] = e_k[starts]
            cls = np.searchsorted(SIZE_BOUNDS, e_k[starts], side="right")
            g_trend[starts] = TREND_SIZE[cls] + TREND_SECTOR[sector[starts]] + TREND_REGION[region[starts]]
        core = b0 + BETA_L * np.log(e_k) + BETA_K * k_log + A
        d = defl_table[sector, k]
        va_k = np.exp(core + r_econ.normal(0.0, SD_EPS, n)) * d
        m_k = np.round(m_ratio * np.exp(core) * d, 1)
        va[:, k] = va_k
        m_nom[:, k] = m_k
        cap_nom[:, k] = np.round(np.exp(k_log) * d, 1)
        w = 32.0 * np.exp(0.15 * a_fe + 0.25 * omega + REGION_WAGE[region] + wage_fe + r_econ.normal(0.0, 0.04, n))
        wage[:, k] = np.round(e_k * w * wage_index[k], 1)
        emp[:, k] = e_k
        to_k = np.round(np.maximum(np.round(va_k, 1), 0.1) + m_k, 1)
        turnover[:, k] = to_k
        x_k = exp_base + 0.8 * A
        if k == 0:  # burn-in of the persistent export status
            for _ in range(6):
                s_prev = x_k + r_econ.logistic(0.0, 1.0, n) + EXPORT_PERSISTENCE * s_prev > 0
            s_init = s_prev.copy()
        # rounded through float32 (as stored) so that the Y(1) chain sees identical inputs
        x_k = (x_k + r_econ.logistic(0.0, 1.0, n)).astype(np.float32).astype(np.float64)
        s_prev = x_k + EXPORT_PERSISTENCE * s_prev > 0
        x_exp[:, k] = x_k
        s0[:, k] = s_prev
        z_k = int_fe + r_econ.normal(0.0, 0.3, n)
        z_int[:, k] = z_k
        # exports from the float32-stored index, so that Y(0) and Y(1) use identical inputs
        exports[:, k] = np.where(s_prev, np.maximum(np.round(to_k * _sigmoid(z_int[:, k].astype(np.float64)), 1), 0.1), 0.0)
        lam_k = np.exp(lam_base + 0.3 * omega).astype(np.float32)
        lam0[:, k] = lam_k
        patents[:, k] = r_econ.poisson(lam_k.astype(np.float64))
        rd[:, k] = np.where(rd_performer, np.round(to_k * rd_share * np.exp(r_econ.normal(0.0, 0.15, n)), 1), 0.0)
        A_prev = A
    del omega, eta, k_log, A, A_prev, core, va_k, m_k, to_k, x_k, z_k, lam_k, trend, w

    # ---- membership ---------------------------------------------------------------------
    yrs_all = np.arange(y0, y1 + 1)
    z_first = (np.log(emp_first) - LOG_SIZE_MEAN) / LOG_SIZE_SD
    if selection == "random":
        index = np.zeros(n)
    else:
        index = 0.9 * z_first + SECTOR_JOIN[sector] + REGION_JOIN[region]
        if selection == "observables+trends":
            index = index + 1.0 * psi / SD_PSI
    lo_a, hi_a = -20.0, 20.0  # intercept so that the expected member share is member_share
    for _ in range(60):
        mid = 0.5 * (lo_a + hi_a)
        lo_a, hi_a = (mid, hi_a) if _sigmoid(mid + index).mean() < member_share else (lo_a, mid)
    p_join = _sigmoid(0.5 * (lo_a + hi_a) + index)
    u_join = r_member.random(n)
    gumbel = r_member.gumbel(0.0, 1.0, (n, n_clusters))
    home = np.arange(n_clusters) % len(REGIONS)
    csec = np.array([CLUSTER_SECTORS[c % len(CLUSTER_SECTORS)] for c in range(n_clusters)])
    if selection == "random":
        score = gumbel
    else:
        score = 2.0 * (region[:, None] == home[None, :]) + 1.5 * (sector[:, None] == csec[None, :]) + gumbel
    cluster = np.argmax(score, axis=1)
    # cohort windows: cluster c launched in cohort L_c, takes members in the next three cohorts
    m_coh = len(cohort_list)
    launch = np.rint(np.arange(n_clusters) * (m_coh - 1) / max(n_clusters - 1, 1)).astype(int)
    win_years = np.full((n_clusters, 3), -1, dtype=np.int64)
    win_cum = np.ones((n_clusters, 3))
    for c in range(n_clusters):
        ys = cohort_list[launch[c] : launch[c] + 3]
        w = np.array([0.5, 0.3, 0.2][: len(ys)])
        win_years[c, : len(ys)] = ys
        win_cum[c, : len(ys)] = np.cumsum(w / w.sum())
    u_year = r_member.random(n)
    pick = (u_year[:, None] > win_cum[cluster]).sum(axis=1)
    join = win_years[cluster, np.minimum(pick, 2)]
    first_year, last_year = y0 + first_k, y0 + last_k
    member = (u_join < p_join) & (join > first_year) & (join <= last_year)
    leave = np.full(n, -1, dtype=np.int64)
    spell2_cluster = np.full(n, -1, dtype=np.int64)
    spell2_join = np.full(n, -1, dtype=np.int64)
    after_window = np.zeros(n, dtype=bool)
    n_always = n_leave = n_two = n_after = 0
    if irregular:
        mem = r_member.permutation(np.flatnonzero(member))
        n_m = mem.size

        def share(s: float) -> int:
            return int(round(s * n_m)) if n_m * s >= 1 else int(n_m >= 20)

        always = mem[first_k[mem] == 0][: share(0.03)]
        rest = np.setdiff1d(mem, always, assume_unique=True)
        rest = rest[join[rest] < y1]
        rest = r_member.permutation(rest)
        leavers, two = rest[: share(0.025)], rest[share(0.025) : share(0.025) + share(0.02)]
        n_always, n_leave, n_two = always.size, leavers.size, two.size
        join[always] = y0 - r_member.integers(1, 5, always.size)
        leave[leavers] = np.minimum(join[leavers] + r_member.integers(1, 5, leavers.size), y1)
        spell2_cluster[two] = (cluster[two] + r_member.integers(1, max(n_clusters, 2), two.size)) % n_clusters
        spell2_join[two] = np.minimum(join[two] + r_member.integers(1, 4, two.size), y1)
        pool = np.flatnonzero(~member & (last_k == T - 1))
        after = r_member.permutation(pool)[: share(0.02)]
        after_window[after] = True
        join[after] = y1 + r_member.integers(1, 3, after.size)
        n_after = after.size
    in_register = member | after_window

    # ---- a second programme (e.g. an R&D subsidy): its own effect on value added, in both
    # potential outcomes of membership (so the truth of the cluster effect is unchanged);
    # members are three times as likely to be in it, so ignoring it biases the naive estimate.
    # Its own random stream: without it (other_share = 0) every other draw is unchanged.
    other_df = None
    if other_share > 0:
        r_other = np.random.default_rng([seed, 4242])
        p_in = np.clip(other_share * np.where(member, 3.0, 1.0), 0.0, 1.0)
        in_o = r_other.random(n) < p_in
        o_start = r_other.integers(y0 + 2, y1 + 1, n)
        active = in_o[:, None] & (yrs_all[None, :] >= o_start[:, None])
        va *= np.exp(float(other_effect) * active)
        fo = np.flatnonzero(in_o)
        other_df = pd.DataFrame({"firm_id": _str_take(_id_matrix("F", n), fo), "start_year": o_start[fo].astype(np.int64),
                                 "end_year": pd.array([pd.NA] * fo.size, dtype="Int64")})
    # ---- exposure ---------------------------------------------------------------------
    expo_g = np.where(member, join, 0)
    expo_scale = np.where(member, 1.0, 0.0)
    expo_group = np.where(member, 1, 0)  # 1 member, 2 colocated
    if spillover != 0.0 and spillover_radius is not None:
        # exposure by distance: from the first join of a member within the ring (pipeline.geo)
        from .geo import ring_exposure

        ring = ring_exposure(coords, member, np.where(member, join, 0), float(spillover_radius))
        coloc = ~member & (ring > 0)
        expo_g = np.where(coloc, ring, expo_g)
        expo_scale = np.where(coloc, float(spillover), expo_scale)
        expo_group = np.where(coloc, 2, expo_group)
    elif spillover != 0.0:
        cell = sector * len(REGIONS) + region
        cell_first = np.full(len(SECTORS) * len(REGIONS), np.iinfo(np.int64).max)
        np.minimum.at(cell_first, cell[member], join[member])
        coloc = ~member & (cell_first[cell] < np.iinfo(np.int64).max)
        expo_g = np.where(coloc, cell_first[cell], expo_g)
        expo_scale = np.where(coloc, float(spillover), expo_scale)
        expo_group = np.where(coloc, 2, expo_group)
    exposed_firms = np.flatnonzero(expo_group > 0)

    # effect multipliers on the (n_exposed, T) block
    E = exposed_firms
    m_blk = effect_multiplier(effect, expo_g[E, None], yrs_all[None, :] - expo_g[E, None], g_first, g_last)
    m_blk *= expo_scale[E, None]
    delta = {key: v * m_blk for key, v in BASE_EFFECTS.items()}

    # ---- Y(0) and Y(1) of the exposed block; observed = Y(1) ---------------------------
    va_e = va[E]  # unrounded nominal value added of the exposed firms
    np.round(va, 1, out=va)
    np.maximum(va, 0.1, out=va)
    y0_blk = {"va": va[E], "ex": exports[E], "pat": patents[E]}
    va1 = np.maximum(np.round(va_e * np.exp(delta["log_value_added"]), 1), 0.1)
    s1 = np.empty((E.size, T), dtype=bool)
    prev = s_init[E]
    x_e = x_exp[E].astype(np.float64)
    for k in range(T):
        prev = x_e[:, k] + delta["export_index"][:, k] + EXPORT_PERSISTENCE * prev > 0
        s1[:, k] = prev
    dp = delta["log_patent_rate"]
    lam_e = lam0[E].astype(np.float64)
    extra = r_effect.poisson(lam_e * np.maximum(np.expm1(dp), 0.0))
    thin = r_effect.binomial(y0_blk["pat"], np.minimum(np.exp(dp), 1.0))
    pat1 = np.where(dp >= 0, y0_blk["pat"] + extra, thin)
    turnover1 = np.round(va1 + m_nom[E], 1)
    ex1 = np.where(
        s1, np.maximum(np.round(turnover1 * _sigmoid(z_int[E].astype(np.float64) + delta["export_intensity"]), 1), 0.1), 0.0
    )
    va[E], turnover[E], exports[E], patents[E] = va1, turnover1, ex1, pat1
    y1_blk = {"va": va1, "ex": ex1, "pat": pat1}
    del x_exp, z_int, lam0, s0, va_e, x_e, lam_e, extra, thin, s1, turnover1, delta, m_blk

    # ---- truth and potential outcomes: exposed, observed firm-years with e >= 0 ----------
    alive = (np.arange(T)[None, :] >= first_k[:, None]) & (np.arange(T)[None, :] <= last_k[:, None])
    obs_blk = alive[E] & (yrs_all[None, :] >= expo_g[E, None])
    bi, bk = np.nonzero(obs_blk)
    fe = E[bi]
    defl_rows = defl_table[sector[fe], bk]
    emp_rows = emp[fe, bk]
    pot = {}
    for tag, blk in (("1", y1_blk), ("0", y0_blk)):
        lp = (blk["va"][bi, bk] / defl_rows) / emp_rows
        ex = blk["ex"][bi, bk]
        pot[f"labour_productivity_{tag}"] = lp
        pot[f"log_labour_productivity_{tag}"] = np.log(lp)
        pot[f"exports_{tag}"] = ex
        pot[f"export_status_{tag}"] = (ex > 0).astype(np.float64)
        pot[f"patents_{tag}"] = blk["pat"][bi, bk].astype(np.float64)
    truth = _truth_table(expo_group[fe], expo_g[fe], y0 + bk, pot)
    firm_labels = _id_matrix("F", n)
    potential = pd.DataFrame(
        {
            "firm_id": _str_take(firm_labels, fe),
            "year": (y0 + bk).astype(np.int64),
            "group": _str_take(("", "member", "colocated"), expo_group[fe]),
            "cohort": expo_g[fe].astype(np.int64),
            "value_added_0": y0_blk["va"][bi, bk],
            "exports_0": y0_blk["ex"][bi, bk],
            "patent_applications_0": y0_blk["pat"][bi, bk].astype(np.int64),
        }
    )
    del pot, y0_blk, y1_blk, va1, ex1, pat1, bi, bk, fe, defl_rows, emp_rows

    # ---- assemble the raw frames --------------------------------------------------------
    balanced = bool(alive.all())
    if balanced:  # views, no copies
        fi = np.repeat(np.arange(n), T)
        year_col = np.tile(yrs_all.astype(np.int64), n)

        def take(a: np.ndarray) -> np.ndarray:
            return a.reshape(-1)
    else:
        fi, kk = np.nonzero(alive)  # firm-major, years ascending
        year_col = (y0 + kk).astype(np.int64)
        del kk

        def take(a: np.ndarray) -> np.ndarray:
            return a[alive]

    firms = pd.DataFrame(
        {
            "firm_id": _str_take(firm_labels, fi),
            "year": year_col,
            "nace2": _str_take(SECTORS, sector[fi]),
            "nuts2": _str_take(REGIONS, region[fi]),
            "founding_year": founding[fi].astype(np.int64),
            "employees": take(emp),
            "turnover": take(turnover),
            "value_added": take(va),
            "wage_bill": take(wage),
            "capital": take(cap_nom),
            "intermediates": take(m_nom),
            "exports": take(exports),
            "patent_applications": take(patents),
            "rd_expenditure": take(rd),
            "group_id": _str_take(_id_matrix("G", int(group.max()) + 1), group[fi]),
            "x_coord": coords[:, 0][fi],
            "y_coord": coords[:, 1][fi],
        },
        copy=False,
    )
    del emp, turnover, va, wage, cap_nom, m_nom, exports, patents, rd, fi, year_col

    # membership register: first spells (members, after-window joiners) + second spells
    cl_labels = _id_matrix("CL", n_clusters, width=2)
    f1 = np.flatnonzero(in_register)
    f2 = np.flatnonzero(spell2_join > 0)
    m_firm = np.concatenate([f1, f2])
    m_cl = np.concatenate([cluster[f1], spell2_cluster[f2]])
    m_join = np.concatenate([join[f1], spell2_join[f2]])
    m_leave = np.concatenate([leave[f1], np.full(f2.size, -1)])
    o = np.lexsort((m_cl, m_join, m_firm))
    membership = pd.DataFrame(
        {
            "firm_id": _str_take(firm_labels, m_firm[o]),
            "cluster_id": _str_take(cl_labels, m_cl[o]),
            "join_year": m_join[o].astype(np.int64),
            "leave_year": pd.arrays.IntegerArray(np.maximum(m_leave[o], 0), m_leave[o] <= 0),
        }
    )
    deflators = pd.DataFrame(
        {
            "nace2": _str_take(SECTORS, np.repeat(np.arange(len(SECTORS)), T)),
            "year": np.tile(yrs_all, len(SECTORS)).astype(np.int64),
            "deflator": defl_table.ravel(),
        }
    )
    config = {
        "n_firms": n, "years": [y0, y1], "seed": seed, "n_clusters": n_clusters, "cohorts": cohort_list,
        "effect": effect, "selection": selection, "spillover": float(spillover), "attrition": float(attrition),
        "spillover_radius": None if spillover_radius is None else float(spillover_radius),
        "irregular": bool(irregular), "member_share": float(member_share),
        "n_members": int(member.sum()), "n_always_members": n_always, "n_leavers": n_leave,
        "n_two_spells": n_two, "n_after_window": n_after, "n_colocated": int((expo_group == 2).sum()),
        "n_rows": int(len(firms)),
    }  # fmt: skip
    config["other_share"], config["other_effect"] = float(other_share), float(other_effect)
    collab = None
    if collab_rate is not None:  # collaborations.csv + truth rows appended (pipeline.simulate_collab)
        from .simulate_collab import collaboration_edges, collaboration_truth

        if not (np.isfinite(collab_rate) and collab_rate >= 0 and np.isfinite(collab_base) and collab_base >= 0):
            raise ConfigError(f"collab_rate, collab_base: partners per firm-year, >= 0; got {collab_rate!r}, {collab_base!r}")
        collab = collaboration_edges(firms, membership, seed, float(collab_base), float(collab_rate))
        truth = pd.concat([truth, collaboration_truth(firms, membership, potential, collab)], ignore_index=True)
        config["collab_rate"], config["collab_base"], config["n_edges"] = float(collab_rate), float(collab_base), int(len(collab))
    costs = _costs(membership, deflators, (y0, y1), seed)
    return SimulatedEconomy(firms, membership, deflators, truth, potential, config, other_df, collab, costs)


#: what an initiative costs a year (thousand euro, 2015 prices): overhead + per active member
COST_OVERHEAD = (100.0, 200.0)
COST_PER_MEMBER = (20.0, 40.0)


def _costs(membership: pd.DataFrame, deflators: pd.DataFrame, years: tuple[int, int], seed: int) -> pd.DataFrame:
    """costs.csv: per initiative and year from the year before its first member joins to the last
    year, ``amount`` = (overhead + per-member cost x members active that year) x the year's mean
    sector price index (nominal, thousand EUR, rounded to 0.1), overhead and per-member cost drawn
    once per initiative. Its own stream ``default_rng([seed, 16])``: every other file is unchanged."""
    rng = np.random.default_rng([int(seed), 16])
    mem = membership.copy()
    mem["join_year"] = mem["join_year"].astype(float)
    leave = mem["leave_year"].astype(float).fillna(np.inf)
    price = deflators.groupby("year")["deflator"].mean()
    rows = []
    for c in sorted(mem["cluster_id"].unique()):
        m = mem["cluster_id"].to_numpy() == c
        over = rng.uniform(*COST_OVERHEAD)
        per = rng.uniform(*COST_PER_MEMBER)
        first = max(int(mem.loc[m, "join_year"].min()) - 1, years[0])
        for t in range(first, years[1] + 1):
            active = int(((mem.loc[m, "join_year"] <= t) & (leave[m] > t)).sum())
            rows.append((c, t, round((over + per * active) * float(price.get(t, 1.0)), 1), "EUR"))
    return pd.DataFrame(rows, columns=["initiative", "year", "amount", "currency"])


def _truth_table(group: np.ndarray, cohort: np.ndarray, year: np.ndarray, pot: dict[str, np.ndarray],
                 outcomes: Sequence[str] = TRUTH_OUTCOMES) -> pd.DataFrame:
    """Aggregate per firm-year ``Y(1)``, ``Y(0)`` (``pot["<outcome>_1"]``, ``pot["<outcome>_0"]``)
    to one truth row per (group, outcome, cohort, year): att = mean(Y1 - Y0), pct = sum Y1 /
    sum Y0 - 1 (NaN when sum Y0 = 0), n_firms."""
    key = (group.astype(np.int64) * 10_000 + cohort.astype(np.int64)) * 10_000 + year.astype(np.int64)
    ukey, inv = np.unique(key, return_inverse=True)
    cnt = np.bincount(inv, minlength=ukey.size)
    u_group, u_cohort, u_year = ukey // 100_000_000, (ukey // 10_000) % 10_000, ukey % 10_000
    blocks = []
    for name in outcomes:
        y1, y0 = pot[f"{name}_1"], pot[f"{name}_0"]
        s1 = np.bincount(inv, weights=y1, minlength=ukey.size)
        s0 = np.bincount(inv, weights=y0, minlength=ukey.size)
        att = np.bincount(inv, weights=y1 - y0, minlength=ukey.size) / cnt
        with np.errstate(divide="ignore", invalid="ignore"):
            pct = np.where(s0 != 0, s1 / s0 - 1.0, np.nan)
        blocks.append((name, att, pct))
    frames = []
    for g, label in ((1, "member"), (2, "colocated")):
        sel = u_group == g
        for name, att, pct in blocks:
            frames.append(
                pd.DataFrame(
                    {
                        "outcome": pd.array([name] * int(sel.sum()), dtype=_STR),
                        "group": pd.array([label] * int(sel.sum()), dtype=_STR),
                        "cohort": u_cohort[sel],
                        "year": u_year[sel],
                        "event_time": u_year[sel] - u_cohort[sel],
                        "att": att[sel],
                        "pct": pct[sel],
                        "n_firms": cnt[sel].astype(np.int64),
                    }
                )
            )
    return pd.concat(frames, ignore_index=True)


# --------------------------------------------------------------------------------------------
# defects for the ingest accounting tests
# --------------------------------------------------------------------------------------------
def inject_defects(economy: SimulatedEconomy, rates: dict[str, float], seed: int) -> tuple[SimulatedEconomy, dict[str, int]]:
    """Add defects to ``economy.firms`` at known rates; return the new economy and exact counts.

    ``rates``: {defect: share of the clean rows}, defects in ``DEFECTS``. For each defect,
    ``round(rate * n_rows)`` distinct clean rows are chosen (all roles disjoint, so each row
    carries at most one defect and every count is exact):

    - duplicate: an exact copy of the row is appended (the pair is identical);
    - conflicting_duplicate: a copy with value_added x 1.5 (+1) is appended (same firm-year,
      different values);
    - year_out_of_window: a copy with the year moved 1-3 years before the first or after the
      last panel year is appended (no clash with an existing firm-year);
    - missing_firm_id: firm_id set blank;
    - non_numeric: one of employees/turnover/value_added/exports/capital replaced by "n.a.",
      "–" or the value written with a space as thousands separator ("12 345.6"); those columns
      become text columns (numbers formatted as in the file);
    - negative_employment: employees negated (-1 when 0);
    - zero_value_added: value_added set to 0.

    ``expected_counts``: rows per defect, plus ``rows_clean`` and ``rows_total`` (= clean
    + appended). Truth, membership and deflators are unchanged. Rows stay sorted by
    (firm_id, year) with blank firm ids last.
    """
    unknown = set(rates) - set(DEFECTS)
    if unknown:
        raise ConfigError(f"inject_defects: unknown defect(s) {sorted(unknown)}; known: {', '.join(DEFECTS)}")
    rng = np.random.default_rng(seed)
    firms = economy.firms.reset_index(drop=True)
    n = len(firms)
    counts = {d: int(round(float(rates.get(d, 0.0)) * n)) for d in DEFECTS}
    if any(c < 0 for c in counts.values()) or sum(counts.values()) > n:
        raise ConfigError(f"inject_defects: rates must be >= 0 and sum to at most 1, got {rates!r}")
    perm = rng.permutation(n)
    roles, start = {}, 0
    for d in DEFECTS:
        roles[d] = np.sort(perm[start : start + counts[d]])
        start += counts[d]

    out = firms.copy()
    if counts["missing_firm_id"]:
        fid = out["firm_id"].to_numpy(dtype=object, copy=True)
        fid[roles["missing_firm_id"]] = None
        out["firm_id"] = pd.array(fid, dtype=_STR)
    r = roles["negative_employment"]
    if r.size:
        emp = out["employees"].to_numpy(copy=True)
        emp[r] = -np.maximum(emp[r], 1)
        out["employees"] = emp
    r = roles["zero_value_added"]
    if r.size:
        va = out["value_added"].to_numpy(copy=True)
        va[r] = 0.0
        out["value_added"] = va
    if counts["non_numeric"]:
        col_pick = rng.integers(0, len(NON_NUMERIC_COLUMNS), counts["non_numeric"])
        kind = rng.integers(0, 3, counts["non_numeric"])
        for j, col in enumerate(NON_NUMERIC_COLUMNS):
            rows = roles["non_numeric"][col_pick == j]
            if rows.size == 0:
                continue
            is_int = col == "employees"
            vals = out[col].to_numpy()
            txt = np.array([f"{v:.0f}" if is_int else f"{v:.1f}" for v in vals], dtype=object)
            for r_, kd in zip(rows, kind[col_pick == j]):
                if kd == 0:
                    txt[r_] = "n.a."
                elif kd == 1:
                    txt[r_] = "–"
                else:  # thousands separated by a space: at least 1 000, so the space is there
                    v = max(abs(vals[r_]), 1000)
                    txt[r_] = (f"{v:,.0f}" if is_int else f"{v:,.1f}").replace(",", " ")
            out[col] = pd.array(txt, dtype=_STR)

    appended = [out.loc[roles["duplicate"]]]
    conf = out.loc[roles["conflicting_duplicate"]].copy()
    new_va = np.round(firms["value_added"].to_numpy()[roles["conflicting_duplicate"]] * 1.5 + 1.0, 1)
    if pd.api.types.is_float_dtype(out["value_added"].dtype):
        conf["value_added"] = new_va
    else:  # value_added became a text column (non_numeric defects)
        conf["value_added"] = pd.array([f"{v:.1f}" for v in new_va], dtype=_STR)
    appended.append(conf)
    oow = out.loc[roles["year_out_of_window"]].copy()
    y0, y1 = int(firms["year"].min()), int(firms["year"].max())
    shift = rng.integers(1, 4, len(oow))
    before = rng.random(len(oow)) < 0.5
    oow["year"] = np.where(before, y0 - shift, y1 + shift).astype(np.int64)
    appended.append(oow)
    # the originals of out-of-window copies stay as they are (clean rows)
    all_rows = pd.concat([out, *appended], ignore_index=True)
    all_rows = all_rows.sort_values(["firm_id", "year"], kind="stable", na_position="last").reset_index(drop=True)
    expected = {d: counts[d] for d in DEFECTS}
    expected["rows_clean"] = n
    expected["rows_total"] = len(all_rows)
    return replace(economy, firms=all_rows), expected


# --------------------------------------------------------------------------------------------
# writing
# --------------------------------------------------------------------------------------------
def _csv_text(df: pd.DataFrame, float_format: str) -> str:
    return df.to_csv(index=False, lineterminator="\n", float_format=float_format, na_rep="")


def _write_csv(path: Path, df: pd.DataFrame, float_format: str) -> None:
    path.write_text(_csv_text(df, float_format), encoding="utf-8", newline="\n")
    os.chmod(path, 0o644)  # the temporary file is private (0600); a data file is not


def write_sample(out_dir: str | Path, economy: SimulatedEconomy) -> dict[str, Path]:
    """Write firms.csv, membership.csv, deflators.csv, truth.csv (and costs.csv, other_programme.csv
    when the economy has them) into ``out_dir`` atomically.

    Deterministic: rows in a stable order (firm_id, year / firm_id, join_year, cluster_id /
    nace2, year / group, outcome, cohort, year), fixed float formats (money and coordinates
    ``%.1f``, deflators ``%.4f``, truth ``%.12g``), ``\\n`` line endings, no index, UTF-8.
    The data were rounded to these precisions before the truth was computed, so the files
    and truth.csv agree exactly (see the module docstring).
    """
    from .io import StageOutputs

    out_dir = Path(out_dir)
    files = {
        "firms.csv": (economy.firms, "%.1f"),
        "membership.csv": (economy.membership, "%.1f"),
        "deflators.csv": (economy.deflators, "%.4f"),
        "truth.csv": (economy.truth, "%.12g"),
    }
    if economy.other_programme is not None:
        files["other_programme.csv"] = (economy.other_programme, "%.1f")
    if economy.collaborations is not None:
        files["collaborations.csv"] = (economy.collaborations.drop(columns="induced"), "%.1f")
    if economy.costs is not None:
        files["costs.csv"] = (economy.costs, "%.1f")
    paths = {}
    with StageOutputs() as out:
        for name, (df, fmt) in files.items():
            target = out_dir / name
            out.write(target, lambda p, df=df, fmt=fmt: _write_csv(p, df, fmt))
            paths[name] = target
    return paths


# German column names a statistical office's register might use (for --style de-stata)
DE_FIRM_COLUMNS = {
    "firm_id": "betrieb_id", "year": "jahr", "nace2": "wz2008", "nuts2": "kreis", "founding_year": "gruendungsjahr",
    "employees": "beschaeftigte", "turnover": "umsatz", "value_added": "wertschoepfung", "wage_bill": "lohnsumme",
    "capital": "anlagevermoegen", "intermediates": "vorleistungen", "exports": "exporte",
    "patent_applications": "patentanmeldungen", "rd_expenditure": "fue_ausgaben", "group_id": "konzern_id",
    "x_coord": "rechtswert", "y_coord": "hochwert",
}


def write_register_style(out_dir: str | Path, economy: SimulatedEconomy, seed: int) -> dict[str, Path]:
    """The economy as an evaluator's own files arrive, for the README's tutorial: a Stata
    panel ``unternehmen.dta`` with German column names, value labels on ``wz2008`` and ~1 %
    of ``exporte`` missing; an Excel register ``mitglieder.xlsx`` (sheet ``Mitglieder``) with
    join and leave *dates* (the year of each date is the generator's year, so the truth holds
    under ``join_rule: year_of_date``), plus three register firms absent from the panel and
    one member entered for a second initiative; ``deflatoren.csv`` and ``truth.csv`` as
    :func:`write_sample` writes them. What was added is in ``register_style.json``."""
    import json

    from .io import StageOutputs

    out_dir = Path(out_dir)
    rng = np.random.default_rng([int(seed), 7])
    firms = economy.firms.rename(columns=DE_FIRM_COLUMNS).copy()
    miss = rng.random(len(firms)) < 0.01
    firms["exporte"] = firms["exporte"].astype(float).where(~miss)
    firms["wz2008"] = firms["wz2008"].astype(int)
    labels = {int(c): f"WZ {int(c):02d}" for c in sorted(firms["wz2008"].unique())}
    mem = economy.membership.copy()
    month = rng.integers(1, 13, size=len(mem))
    day = rng.integers(1, 29, size=len(mem))
    join = pd.to_datetime({"year": mem["join_year"].astype(int), "month": month, "day": day})
    leave = pd.to_datetime({"year": mem["leave_year"].fillna(2000).astype(int), "month": 12, "day": 31}).where(mem["leave_year"].notna())
    reg = pd.DataFrame({"betrieb_id": mem["firm_id"], "netzwerk": mem["cluster_id"], "beitrittsdatum": join, "austrittsdatum": leave})
    first = reg.iloc[0]
    other = sorted(set(reg["netzwerk"]) - {first["netzwerk"]})[0]
    second = pd.DataFrame({"betrieb_id": [first["betrieb_id"]], "netzwerk": [other],
                           "beitrittsdatum": [first["beitrittsdatum"] + pd.DateOffset(years=2)], "austrittsdatum": [pd.NaT]})
    absent = pd.DataFrame({"betrieb_id": ["X900001", "X900002", "X900003"], "netzwerk": [first["netzwerk"]] * 3,
                           "beitrittsdatum": pd.to_datetime(["2014-03-01", "2015-06-15", "2016-09-30"]), "austrittsdatum": [pd.NaT] * 3})
    reg = pd.concat([reg, second, absent], ignore_index=True)
    added = {"exporte_missing": int(miss.sum()), "absent_from_panel": absent["betrieb_id"].tolist(),
             "second_initiative": {"firm": str(first["betrieb_id"]), "initiative": str(other)}}
    paths: dict[str, Path] = {}
    with StageOutputs() as out:
        paths["unternehmen.dta"] = out_dir / "unternehmen.dta"
        out.write(paths["unternehmen.dta"], lambda p: firms.to_stata(p, write_index=False, value_labels={"wz2008": labels}, version=118))
        paths["mitglieder.xlsx"] = out_dir / "mitglieder.xlsx"
        out.write(paths["mitglieder.xlsx"], lambda p: _write_xlsx(p, reg, "Mitglieder"))
        for name, df, fmt in (("deflatoren.csv", economy.deflators.rename(columns={"nace2": "wz2008", "year": "jahr"}), "%.4f"),
                              ("truth.csv", economy.truth, "%.12g")):
            paths[name] = out_dir / name
            out.write(paths[name], lambda p, df=df, fmt=fmt: _write_csv(p, df, fmt))
        paths["register_style.json"] = out_dir / "register_style.json"
        out.text(paths["register_style.json"], json.dumps(added, indent=2, sort_keys=True) + "\n")
    return paths


def _write_xlsx(path: Path, df: pd.DataFrame, sheet: str) -> None:
    with pd.ExcelWriter(path, engine="openpyxl") as xw:
        df.to_excel(xw, sheet_name=sheet, index=False)


# --------------------------------------------------------------------------------------------
# CLI: cluster-impact simulate
# --------------------------------------------------------------------------------------------
class _ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad option is a configuration error (exit 5), not argparse's exit 2
    (which the project reserves for bad input data)."""

    def error(self, message: str):  # type: ignore[override]
        raise ConfigError(f"simulate: {message} (see: cluster-impact simulate --help)")


def main(argv: Sequence[str] | None = None) -> int:
    p = _ArgumentParser(
        prog="cluster-impact simulate",
        description="Generate a seeded synthetic economy (firms, membership, deflators, truth, costs CSVs).",
    )
    p.add_argument("--firms", type=int, default=2500, help="number of firms (default 2500)")
    p.add_argument("--years", type=int, nargs=2, default=(2008, 2022), metavar=("FIRST", "LAST"), help="default 2008 2022")
    p.add_argument("--seed", type=int, default=20261122, help="default 20261122")
    p.add_argument("--out", type=Path, default=Path("data/raw"), help="output folder (default data/raw)")
    p.add_argument("--clusters", type=int, default=6, help="number of cluster initiatives (default 6)")
    p.add_argument("--cohorts", type=int, nargs="+", default=None, help="join years (default: staggered)")
    p.add_argument("--selection", choices=SELECTIONS, default="observables")
    p.add_argument("--effect", choices=EFFECTS, default="heterogeneous")
    p.add_argument("--spillover", type=float, default=0.0, help="effect on co-located non-members, share of members' (default 0)")
    p.add_argument("--spillover-radius", type=float, default=None,
                   help="co-location by distance: non-members within this many km of a member (default: same region x sector cell)")
    p.add_argument("--attrition", type=float, default=0.0, help="share of firms exiting early (default 0)")
    p.add_argument("--other-share", type=float, default=0.0,
                   help="a second programme (other_programme.csv): share of non-members in it, members 3x as likely (default 0 = none)")
    p.add_argument("--other-effect", type=float, default=0.05, help="its effect on log value added (default 0.05)")
    p.add_argument("--collab-rate", type=float, default=None,
                   help="write collaborations.csv: extra partners a year of a member inside its initiative (default: no file)")
    p.add_argument("--collab-base", type=float, default=1.0, help="partners a year of every firm, background (default 1)")
    p.add_argument("--style", choices=("csv", "de-stata"), default="csv",
                   help="csv: the embedded sample's files (default); de-stata: unternehmen.dta (German names, value labels, "
                   "missing values) + mitglieder.xlsx (join/leave dates, oddities), as an evaluator's files arrive")
    a = p.parse_args(list(argv) if argv is not None else None)
    econ = simulate_economy(
        n_firms=a.firms, years=tuple(a.years), seed=a.seed, n_clusters=a.clusters, cohorts=a.cohorts,
        effect=a.effect, selection=a.selection, spillover=a.spillover, attrition=a.attrition,
        spillover_radius=a.spillover_radius, other_share=a.other_share, other_effect=a.other_effect,
        collab_rate=a.collab_rate, collab_base=a.collab_base,
    )  # fmt: skip
    if a.style == "de-stata":
        write_register_style(a.out, econ, a.seed)
    else:
        write_sample(a.out, econ)
    c = econ.config
    print(
        f"simulate: {c['n_firms']} firms, {c['n_rows']} firm-years {c['years'][0]}-{c['years'][1]}, "
        f"{c['n_members']} members in {c['n_clusters']} clusters (cohorts {c['cohorts'][0]}-{c['cohorts'][-1]}), "
        f"seed {c['seed']} -> {a.out}"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    import sys

    sys.exit(main())
