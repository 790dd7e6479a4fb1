"""Boundary validation shared by the count estimators (ppml, etwfe_poisson).

:func:`prepare` checks the processed panel once, collecting every problem, and returns the
estimation sample under internal names:

``_y`` outcome (float, >= 0), ``_id`` original unit id, ``_unit``/``_time`` dense integer
codes, ``_t`` period, ``_g`` first treated period (0 = never), ``_D`` treatment
``1{g > 0, t >= g}`` (derived from ``gname``/``tname`` so that every estimator uses the
same definition as the processed panel's ``post`` under absorbing membership), ``_rel``
event time ``t - g`` (NaN for never members), ``_cl0``/``_cl1`` cluster columns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from models.errors import BadInputError, ConfigError, first_keys
from models.did._panel import RowLedger
from models.spec import EstimatorSpec


@dataclass
class CountPanel(RowLedger):
    df: pd.DataFrame
    cluster_cols: list[str]
    dropped: dict[str, int] = field(default_factory=dict)
    fe_cols: list[str] = field(default_factory=list)  # _fe0.. codes of spec.fixed_effects
    fe_terms: list[str] = field(default_factory=list)

    def counts(self) -> dict:
        df = self.df
        tr = df["_g"] > 0
        out = {
            "n_obs": int(len(df)),
            "n_units": int(df["_id"].nunique()),
            "n_treated_units": int(df.loc[tr, "_id"].nunique()),
        }
        out["n_clusters"] = (
            min(int(df[c].nunique()) for c in self.cluster_cols) if self.cluster_cols else out["n_obs"]
        )
        return out


def prepare(data: pd.DataFrame, spec: EstimatorSpec, estimator: str, allow_covariates: bool = False) -> CountPanel:
    """Validate ``data`` for a count estimator and return the internal sample.

    Raises BadInputError (all problems at once) for missing columns, negative or
    non-finite outcomes, missing ids/periods, duplicate unit-periods, and a ``gname`` that
    is not constant within a unit; ConfigError for covariates (not supported here)."""
    if spec.covariates and not allow_covariates:
        raise ConfigError(
            f"{estimator}: covariates {list(spec.covariates)} are not supported by this estimator "
            "(the Poisson TWFE designs here are unconditional); set estimate.covariates: [] for it "
            "or use a DiD estimator that takes covariates."
        )
    y, t, i, g = spec.yname, spec.tname, spec.idname, spec.gname
    from models import fixed_effects as _fx

    fe_terms = list(getattr(spec, "fixed_effects", ()) or ())
    need = [y, t, i, g, *spec.vcov.by, *spec.covariates, *_fx.columns(fe_terms)]
    problems: list[str] = []
    missing = [c for c in dict.fromkeys(need) if c not in data.columns]
    if missing:
        raise BadInputError(
            f"{estimator}: processed panel lacks column(s) {missing} "
            f"(has: {', '.join(map(str, data.columns))}); re-run build_groups or fix the column map.",
        )
    df = pd.DataFrame(
        {
            "_id": data[i].astype("string").to_numpy(dtype=object),
            "_t": pd.to_numeric(data[t], errors="coerce").to_numpy(dtype=float),
            "_g": pd.to_numeric(data[g], errors="coerce").to_numpy(dtype=float),
            "_y": pd.to_numeric(data[y], errors="coerce").astype("float64").to_numpy(dtype=float, na_value=np.nan),
        }
    )
    cl = []
    for k, c in enumerate(spec.vcov.by):
        name = f"_cl{k}"
        df[name] = data[c].astype("string").to_numpy(dtype=object)
        cl.append(name)
    for k, c in enumerate(spec.covariates):
        df[f"_x{k}"] = pd.to_numeric(data[c], errors="coerce").astype("float64").to_numpy(dtype=float, na_value=np.nan)
        badx = ~np.isfinite(df[f"_x{k}"].to_numpy())
        if badx.any():
            problems.append(f"covariate '{c}': {int(badx.sum())} missing or non-numeric value(s)")
    for col, lab in (("_id", i), ("_t", t), ("_g", g)):
        bad = pd.isna(df[col]) if col == "_id" else ~np.isfinite(df[col].to_numpy())
        if bad.any():
            problems.append(f"column '{lab}': {int(bad.sum())} missing/non-numeric value(s) at rows {first_keys(np.flatnonzero(bad))}")
    yv = df["_y"].to_numpy()
    nonfin = ~np.isfinite(yv)
    if nonfin.any():
        problems.append(
            f"outcome '{y}': {int(nonfin.sum())} missing or non-finite value(s) (firms {first_keys(pd.unique(df.loc[nonfin, '_id']))}); "
            "drop them before estimation (the estimate stage does this and counts them)"
        )
    neg = yv < 0
    if neg.any():
        problems.append(
            f"outcome '{y}': {int(neg.sum())} negative value(s) (firms {first_keys(pd.unique(df.loc[neg, '_id']))}); "
            "Poisson PML needs y >= 0 (counts or non-negative amounts)"
        )
    if not problems:
        dup = df.duplicated(["_id", "_t"])
        if dup.any():
            problems.append(
                f"columns '{i}','{t}': {int(dup.sum())} duplicate unit-period row(s) (first {first_keys(df.loc[dup, '_id'].tolist())}); one row per firm-year"
            )
        gvar = df.groupby("_id", sort=False)["_g"].nunique()
        if (gvar > 1).any():
            problems.append(
                f"column '{g}': not constant within {int((gvar > 1).sum())} unit(s) ({first_keys(gvar.index[gvar > 1])})"
            )
    if problems:
        raise BadInputError(f"{estimator}: {len(problems)} problem(s) in the estimation input:", problems=problems)
    df["_t"] = df["_t"].astype(np.int64)
    df["_g"] = df["_g"].astype(np.int64)
    df["_D"] = ((df["_g"] > 0) & (df["_t"] >= df["_g"])).astype(float)
    df["_rel"] = np.where(df["_g"] > 0, df["_t"] - df["_g"], np.nan)
    fes = []
    for k, term in enumerate(fe_terms):
        df[f"_fe{k}"] = _fx.codes(data, term)
        fes.append(f"_fe{k}")
    p = CountPanel(df=df, cluster_cols=cl, fe_cols=fes, fe_terms=fe_terms)
    if fes:  # no sector (say): no sector x year effect; dropped and counted
        p.drop((p.df[fes].to_numpy() >= 0).all(axis=1), "missing_fixed_effect")
    p.recode()
    return p


def cluster_codes(df: pd.DataFrame, cols: list[str]) -> list[np.ndarray]:
    return [pd.factorize(df[c], sort=True)[0].astype(np.int64) for c in cols]
