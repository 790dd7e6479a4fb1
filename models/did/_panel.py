"""Shared plumbing of the regression-based DiD estimators (twfe, event_study, sunab,
imputation, did2s, bacon).

* :func:`prepare` validates the processed panel at the boundary (collecting every problem
  and raising once), keeps the columns the estimator needs under internal names, drops
  (and counts) rows with a missing outcome/covariate, and derives the treatment indicator
  ``D_it = 1{g_i > 0, t >= g_i}`` and event time ``rel_time = t - g_i`` (null for never
  members) from ``gname``/``tname`` so that every estimator uses one definition.
* :func:`drop_singletons` removes, iteratively, observations whose unit (or period) fixed
  effect is identified by that observation alone, as fixest/pyfixest's
  ``fixef_rm="singleton"`` (Correia 2015, "Singletons, cluster-robust standard errors and
  fixed effects"), and counts them.
* :func:`bin_event_time` applies the event window (binned or trimmed endpoints).
* :func:`pretrend_test` is the joint Wald test that all leads are zero.

Internal column names: ``_y`` outcome, ``_id`` original unit id, ``_unit``/``_time``
integer codes, ``_g`` first treated period (0 never), ``_t`` period, ``_rel`` event time
(float, NaN for never members), ``_D`` treatment dummy, ``_x0..`` covariates,
``_cl0``/``_cl1`` cluster variables, ``_fe0``/``_fe1``.. dense integer codes of the fixed
effects beyond unit and period (``spec.fixed_effects``, :mod:`models.fixed_effects`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models import options as _opt
from models.errors import BadInputError, ConfigError, DesignError, UnsupportedVcovError, first_keys
from models.inference.wald import SingularVcovError, wald_test
from models.result import normal_inference
from models.spec import EstimatorSpec
from models.vcov import PYFIXEST_KINDS, VcovSpec

CONTROL_GROUPS = ("nevertreated", "notyettreated")


class RowLedger:
    """Row drops counted by reason, shared by the estimation-sample classes here and in
    models/counts: needs attributes ``df`` (with ``_id``, ``_t``) and ``dropped``."""

    def drop(self, keep: np.ndarray, reason: str) -> None:
        """Keep rows where ``keep`` is True; count the others under ``reason``."""
        keep = np.asarray(keep, dtype=bool)
        n = int((~keep).sum())
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n
            self.df = self.df.loc[keep].reset_index(drop=True)

    def recode(self) -> None:
        """(Re)build dense integer codes for units, periods and extra fixed effects after row drops."""
        self.df["_unit"] = pd.factorize(self.df["_id"], sort=True)[0].astype(np.int64)
        self.df["_time"] = pd.factorize(self.df["_t"], sort=True)[0].astype(np.int64)
        for c in getattr(self, "fe_cols", ()):
            self.df[c] = pd.factorize(self.df[c], sort=True)[0].astype(np.int64)

    @property
    def fe(self) -> tuple[str, ...]:
        """Internal names of all absorbed effects: unit, period, then the extra ones."""
        return ("_unit", "_time", *getattr(self, "fe_cols", ()))

    def fe_codes(self) -> list[tuple[np.ndarray, int]]:
        """(codes, number of levels) of each extra fixed effect (for :class:`._fe.TwoWayFE`)."""
        return [(self.df[c].to_numpy(np.int64), int(self.df[c].max()) + 1) for c in getattr(self, "fe_cols", ())]


@dataclass
class Panel(RowLedger):
    """The estimation sample under internal names plus its bookkeeping."""

    df: pd.DataFrame
    covariates: list[str]  # internal names _x0.. in the order of spec.covariates
    cluster_cols: list[str]  # internal names _cl0.. in the order of spec.vcov.by
    dropped: dict[str, int] = field(default_factory=dict)
    estimator: str = ""  # registry key, for error messages
    fe_cols: list[str] = field(default_factory=list)  # _fe0.. for spec.fixed_effects, in order
    fe_terms: list[str] = field(default_factory=list)  # the user's terms (e.g. "sector^year")


    @property
    def years(self) -> np.ndarray:
        return np.sort(self.df["_t"].unique())

    def vcov_spec(self, vcov: VcovSpec, estimator: str = "") -> VcovSpec:
        """The user's vcov with cluster columns renamed to the internal ones. Kinds pyfixest
        cannot express (crv3, wild) raise UnsupportedVcovError here, naming the user's
        columns (estimators that support them call this with kind 'cluster')."""
        if vcov.kind not in PYFIXEST_KINDS:
            raise UnsupportedVcovError(estimator or self.estimator, vcov.label(), list(PYFIXEST_KINDS))
        return vcov.with_by(tuple(self.cluster_cols))

    def counts(self) -> dict:
        df = self.df
        treated = df["_g"] > 0
        out = {
            "n_obs": len(df),
            "n_units": int(df["_id"].nunique()),
            "n_treated_units": int(df.loc[treated, "_id"].nunique()),
            "n_never_units": int(df.loc[~treated, "_id"].nunique()),
        }
        if self.cluster_cols:
            ns = [int(df[c].nunique()) for c in self.cluster_cols]
            out["n_clusters"] = min(ns)
            if len(ns) > 1:
                out["n_clusters_by"] = ns
        else:
            out["n_clusters"] = None
        return out


def prepare(
    data: pd.DataFrame,
    spec: EstimatorSpec,
    estimator: str,
    *,
    allow_covariates: bool = True,
) -> Panel:
    """Validate ``data`` against ``spec`` and return the estimation sample.

    Problems (missing columns, non-numeric outcome, non-integer or unit-varying
    ``gname``, duplicate unit-period rows, unknown control group) are collected and raised
    once. Rows with a missing or non-finite outcome/covariate are dropped and counted as
    ``missing_outcome_or_covariate``.
    """
    problems: list[str] = []
    if spec.control_group not in CONTROL_GROUPS:
        raise ConfigError(
            f"{estimator}: control_group = {spec.control_group!r}; allowed: {', '.join(CONTROL_GROUPS)}"
        )
    if spec.covariates and not allow_covariates:
        raise ConfigError(
            f"{estimator}: covariates {list(spec.covariates)} are not supported by this estimator; "
            "set estimate.covariates: [] or drop the estimator from estimate.estimators."
        )
    from models import fixed_effects as _fx

    fe_terms = list(getattr(spec, "fixed_effects", ()) or ())
    need = [spec.yname, spec.tname, spec.idname, spec.gname, *spec.covariates, *spec.vcov.by, *_fx.columns(fe_terms)]
    missing = [c for c in dict.fromkeys(need) if c not in data.columns]
    if missing:
        raise BadInputError(
            f"{estimator}: the panel lacks column(s) {missing} (have: {', '.join(map(str, data.columns))}); "
            "check estimate.outcomes / covariates / vcov.by / fixed_effects in params.yaml."
        )
    for c in [spec.yname, *spec.covariates]:
        if not (pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c])):
            problems.append(f"column {c!r} must be numeric (dtype {data[c].dtype}); convert it or choose another column")
    for c in (spec.tname, spec.gname):
        s = data[c]
        if s.isna().any():
            bad = data.loc[s.isna(), spec.idname].unique()
            problems.append(f"column {c!r} has {int(s.isna().sum())} missing values (first units: {first_keys(bad)})")
        elif not pd.api.types.is_integer_dtype(s):
            v = pd.to_numeric(s, errors="coerce")
            if v.isna().any() or not np.all(np.equal(np.mod(v.to_numpy(float), 1), 0)):
                problems.append(f"column {c!r} must hold integer periods (dtype {s.dtype})")
    if problems:
        raise BadInputError(f"{estimator}: {len(problems)} problem(s) with the panel:", problems=problems)

    df = pd.DataFrame(
        {
            "_id": data[spec.idname].to_numpy(),
            "_t": data[spec.tname].to_numpy(dtype=np.int64),
            "_g": data[spec.gname].to_numpy(dtype=np.int64),
            "_y": pd.to_numeric(data[spec.yname]).to_numpy(dtype=float, na_value=np.nan),
        }
    )
    covs = []
    for k, c in enumerate(spec.covariates):
        df[f"_x{k}"] = pd.to_numeric(data[c]).to_numpy(dtype=float, na_value=np.nan)
        covs.append(f"_x{k}")
    cls = []
    for k, c in enumerate(spec.vcov.by):
        df[f"_cl{k}"] = pd.factorize(data[c])[0]
        cls.append(f"_cl{k}")
    fes = []
    for k, term in enumerate(fe_terms):
        df[f"_fe{k}"] = _fx.codes(data, term)
        fes.append(f"_fe{k}")

    if (df["_g"] < 0).any():
        bad = df.loc[df["_g"] < 0, "_id"].unique()
        problems.append(f"column {spec.gname!r}: {len(bad)} units with negative values (first: {first_keys(bad)}); use 0 for never members")
    gvar = df.groupby("_id", sort=False)["_g"].nunique()
    if (gvar > 1).any():
        bad = gvar.index[gvar > 1]
        problems.append(
            f"column {spec.gname!r} varies within {len(bad)} units (first: {first_keys(bad)}); it must be the unit's first treated period"
        )
    for c in spec.vcov.by:
        if data[c].isna().any():
            bad = data.loc[data[c].isna(), spec.idname].unique()
            problems.append(
                f"cluster column {c!r} has {int(data[c].isna().sum())} missing values (first units: "
                f"{first_keys(bad)}); fill them or cluster by another column (estimate.vcov.by)"
            )
    dup = df.duplicated(["_id", "_t"])
    if dup.any():
        bad = df.loc[dup, "_id"].unique()
        problems.append(
            f"{int(dup.sum())} duplicate ({spec.idname}, {spec.tname}) rows (first units: {first_keys(bad)}); the panel must have one row per unit and period"
        )
    if problems:
        raise BadInputError(f"{estimator}: {len(problems)} problem(s) with the panel:", problems=problems)

    panel = Panel(df=df, covariates=covs, cluster_cols=cls, estimator=estimator, fe_cols=fes, fe_terms=fe_terms)
    vals = df[["_y", *covs]].to_numpy(dtype=float)
    panel.drop(np.isfinite(vals).all(axis=1), "missing_outcome_or_covariate")
    if fes:  # a row whose sector (say) is missing has no sector^year effect: dropped and counted
        panel.drop((panel.df[fes].to_numpy() >= 0).all(axis=1), "missing_fixed_effect")
    if panel.df.empty:
        raise DesignError(f"{estimator}: no observations with a finite {spec.yname!r} and covariates")
    d = panel.df
    d["_D"] = ((d["_g"] > 0) & (d["_t"] >= d["_g"])).astype(float)
    d["_rel"] = np.where(d["_g"] > 0, (d["_t"] - d["_g"]).astype(float), np.nan)
    panel.recode()
    return panel


def require_controls(panel: Panel, spec: EstimatorSpec, estimator: str) -> None:
    """DesignError when the requested comparison group does not exist in the sample."""
    c = panel.counts()
    if c["n_treated_units"] == 0:
        raise DesignError(f"{estimator}: no treated units (every {spec.gname} is 0); nothing to estimate")
    if spec.control_group == "nevertreated" and c["n_never_units"] == 0:
        raise DesignError(
            f"{estimator}: control_group is 'nevertreated' but the sample has no never members "
            f"({spec.gname} == 0). Set estimate.control_group: notyettreated to use not-yet-treated "
            "firms as controls (no silent switch is made)."
        )


def drop_singletons(panel: Panel, fe: tuple[str, ...] | None = None) -> int:
    """Iteratively drop observations that are alone in a fixed-effect level (fixest's
    ``fixef_rm = "singleton"``), over every absorbed effect (default ``panel.fe``: unit,
    period and the extra ones); counted as ``singleton``. Returns the number dropped."""
    fe = panel.fe if fe is None else fe
    total = 0
    while True:
        df = panel.df
        keep = np.ones(len(df), dtype=bool)
        for c in fe:
            sizes = df.groupby(c, sort=False)[c].transform("size").to_numpy()
            keep &= sizes > 1
        n = int((~keep).sum())
        if n == 0:
            break
        panel.drop(keep, "singleton")
        total += n
        if panel.df.empty:
            break
    if total:
        panel.recode()
    return total


def check_window(window, estimator: str) -> tuple[int, int]:
    """``estimate.<estimator>.event_window`` as (lo, hi) (the rule: models.options.EVENT_WINDOW)."""
    _opt.require(_opt.check({"event_window": window}, {"event_window": None}, {"event_window": _opt.EVENT_WINDOW},
                            f"estimate.{estimator}"), f"estimate.{estimator}")
    return int(window[0]), int(window[1])


ENDPOINTS = _opt.choice("bin", "trim")


def bin_event_time(panel: Panel, window, endpoints: str, estimator: str) -> tuple[int, int]:
    """Apply the event window to ``_rel`` in place, creating ``_e`` (binned event time,
    NaN for never members).

    ``endpoints="bin"``: event times beyond the window are accumulated into the end
    points (Schmidheiny & Siegloch 2023: the end dummies are 1{rel <= lo}, 1{rel >= hi}).
    ``endpoints="trim"``: treated units' observations outside the window are dropped
    (counted as ``outside_event_window``).
    """
    lo, hi = check_window(window, estimator)
    _opt.require(_opt.check({"endpoints": endpoints}, {"endpoints": None}, {"endpoints": ENDPOINTS},
                            f"estimate.{estimator}"), f"estimate.{estimator}")
    rel = panel.df["_rel"].to_numpy()
    if endpoints == "trim":
        outside = np.isfinite(rel) & ((rel < lo) | (rel > hi))
        panel.drop(~outside, "outside_event_window")
        panel.recode()
        rel = panel.df["_rel"].to_numpy()
    panel.df["_e"] = np.clip(rel, lo, hi)
    return lo, hi


def event_dummies(e: np.ndarray, times: list[int]) -> np.ndarray:
    """(n, len(times)) 0/1 matrix of 1{e == k}; NaN (never members) gives all zeros."""
    e = np.asarray(e, dtype=float)
    return (e[:, None] == np.asarray(times, dtype=float)[None, :]).astype(float)


def pretrend_test(beta, vcov, event_times, ref: int = -1) -> dict:
    """Joint chi2 Wald test that all lead coefficients (negative event times other than
    the reference ``ref``) are zero, using their covariance block. Returns
    statistic/df/p_value (None with a ``note`` if there are no leads or the lead vcov is
    singular)."""
    et = np.asarray(event_times)
    leads = np.where((et < 0) & (et != ref))[0]
    if leads.size == 0:
        return {"statistic": None, "df": 0, "p_value": None, "note": "no leads to test"}
    b = np.asarray(beta)[leads]
    V = np.asarray(vcov)[np.ix_(leads, leads)]
    try:
        out = wald_test(b, V)
    except SingularVcovError as exc:
        return {"statistic": None, "df": int(leads.size), "p_value": None, "note": str(exc)}
    out["leads"] = [int(x) for x in et[leads]]
    return out


def base_meta(panel: Panel, spec: EstimatorSpec, **extra) -> dict:
    """Meta shared by the regression DiD estimators; ``fixed_effects`` lists the absorbed
    effects when any beyond unit and period were given."""
    c = panel.counts()
    meta = {
        "n_obs": c["n_obs"],
        "n_units": c["n_units"],
        "n_treated_units": c["n_treated_units"],
        "n_clusters": c["n_clusters"],
        "vcov": spec.vcov.label(),
        "control_group": spec.control_group,
        "dropped": dict(panel.dropped),
    }
    if "n_clusters_by" in c:
        meta["n_clusters_by"] = c["n_clusters_by"]
    if panel.fe_terms:
        meta["fixed_effects"] = [spec.idname, spec.tname, *panel.fe_terms]
    meta.update(extra)
    return meta


def n_treated_by(df: pd.DataFrame, key: str) -> pd.Series:
    """Distinct treated units (g > 0) observed at each value of ``key``."""
    d = df.loc[df["_g"] > 0]
    return d.groupby(key)["_id"].nunique()


def check_not_collinear(panel: Panel, cols: list[str], estimator: str, why: str) -> None:
    """DesignError if a regressor has no variation left after unit and period fixed
    effects (exact two-way residualisation; relative tolerance 1e-10)."""
    from ._fe import TwoWayFE

    df = panel.df
    fe = TwoWayFE(df["_unit"], df["_time"], df["_unit"].max() + 1, df["_time"].max() + 1, extra=panel.fe_codes())
    M = df[cols].to_numpy(dtype=float)
    R = fe.residualize(M)
    ss = (R**2).sum(axis=0)
    tot = (M**2).sum(axis=0)
    bad = [c for c, s, t in zip(cols, ss, tot) if s <= 1e-10 * max(t, 1.0)]
    if bad:
        raise DesignError(f"{estimator}: {bad} collinear with the unit and period fixed effects: {why}")


def tidy_rows(aggregation, terms, beta, V, alpha, extra):
    """Tidy rows for coefficients ``beta`` with covariance ``V`` (normal inference);
    ``extra[j]`` adds fields such as event_time, n_obs, n_treated to row j."""
    se = np.sqrt(np.clip(np.diag(V), 0, None))
    stat, p, lo, hi = normal_inference(beta, se, alpha=alpha)
    return [
        {
            "aggregation": aggregation,
            "term": terms[j],
            "estimate": float(beta[j]),
            "std_error": float(se[j]),
            "statistic": float(stat[j]),
            "p_value": float(p[j]),
            "conf_low": float(lo[j]),
            "conf_high": float(hi[j]),
            **extra[j],
        }
        for j in range(len(terms))
    ]
