"""The credibility battery as one registry-style estimator (registry key ``checks``).

``run_checks(data, spec, options)`` runs the selected checks with one estimator and
returns one :class:`~models.result.EstimationResult` (estimator ``"checks"``) with one
``static`` row per number and a plain verdict per check in ``meta["verdicts"]``:
``{check: {"verdict": "pass" | "concern" | "not run", "sentence": ..., numbers}}``.

Rows (``term``):

==========================  ========================================================
``placebo_adoption``         fake adoption ``placebo_shift`` years early, pre-membership data
``placebo_group``            fake treated group among non-members of the members' sectors
``placebo_outcome``          the estimator on ``placebo_outcome`` (if named)
``ri_pvalue``                actual estimate; ``p_value`` = randomization-inference p-value
``loo:<value>``              estimate leaving out the members of one ``loo_by`` value
``spillover_naive``          members vs all non-members
``spillover_free``           members vs non-members not co-located with members
``spillover_effect``         co-located non-members (exposed) vs spillover-free ones
==========================  ========================================================

Verdict rules (alpha = ``spec.alpha``, z = its two-sided normal critical value):

* placebos: ``pass`` if ``|estimate| / SE < z`` (the placebo effect is not distinguishable
  from zero), else ``concern``;
* ``ri_pvalue``: ``concern`` if the conventional p-value is below alpha but the RI p-value
  is not (significance rests on the asymptotic SE), else ``pass``; ``not run`` (row still
  reported) when ``1 / (ri_draws + 1) >= alpha``, i.e. too few draws to reach alpha;
* ``leave_one_out``: ``concern`` if some left-out estimate leaves the full-sample
  confidence interval or has the opposite sign, else ``pass``;
* ``spillover``: ``concern`` if the spillover effect is distinguishable from zero (the
  non-member controls are contaminated: prefer the spillover-free design), else ``pass``.

A check whose design cannot be estimated (DesignError) or is not configured is
``not run``, with the reason in the sentence; the other checks still run.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from models import options as _opt
from models import registry
from models.errors import ConfigError, DesignError
from models.result import EstimationResult, normal_inference
from models.spec import EstimatorSpec

from ._common import run, z_crit
from .leave_one_out import leave_one_out
from .placebo import placebo_adoption, placebo_outcome, placebo_treated_group
from .randomization import CONVENTION, randomization_inference
from .spillover import spillover_designs

NAME = "checks"
CHECKS = ("placebo_adoption", "placebo_group", "placebo_outcome", "ri", "leave_one_out", "spillover")

OPTIONS: dict = {
    "checks": list(CHECKS),  # which checks to run
    "estimator": "twfe",  # registry key of the estimator re-run on each design
    "estimator_options": {},  # options for that estimator (merged over its OPTIONS)
    "ri_draws": 199,  # permutations for randomization inference
    "placebo_shift": 2,  # years the fake adoption precedes the real one
    "placebo_outcome": None,  # a time-varying outcome membership cannot move (None: not run)
    "loo_by": "cluster_id",  # leave one value of this column out at a time
}


def _name(v) -> bool:
    return isinstance(v, str) and bool(_opt.SAFE_NAME.match(v))


RULES: dict = {
    "checks": _opt.custom(lambda v: isinstance(v, list) and all(c in CHECKS for c in v),
                          f"give a list of checks from: {', '.join(CHECKS)}", bad="placebo"),
    "estimator": _opt.choice(*(k for k in registry.REGISTRY if k != NAME)),
    "estimator_options": _opt.mapping(),
    "ri_draws": _opt.draws(),
    "placebo_shift": _opt.integer(1),
    "placebo_outcome": _opt.custom(_name, "give a column name of the panel (a time-varying outcome membership cannot "
                                   "move), or null to skip the check", bad=["x"], null=True),
    "loo_by": _opt.custom(_name, "give a column name of the panel (default cluster_id)", bad=3),
}


def _cross(o: dict, where: str) -> list[str]:
    """The re-run estimator's own options, checked by its own validator."""
    return registry.get(o["estimator"]).validate_options(o["estimator_options"], where=f"{where}.estimator_options")


validate_options = _opt.validator(OPTIONS, RULES, _cross, name=NAME)


def _options(options: dict | None) -> dict:
    _opt.require(validate_options(options), f"estimate.{NAME}")
    return {**OPTIONS, **(options or {})}


def _row(term: str, r: dict, alpha: float) -> dict:
    est, se = r.get("estimate"), r.get("std_error")
    stat, p, lo, hi = normal_inference(est, se if se is not None else np.nan, alpha=alpha)
    return {
        "aggregation": "static",
        "term": term,
        "estimate": est,
        "std_error": se,
        "statistic": float(stat),
        "p_value": float(p),
        "conf_low": float(lo),
        "conf_high": float(hi),
        "n_obs": r.get("n_obs"),
        "n_treated": r.get("n_treated"),
    }


def _placebo_verdict(name: str, r: dict, z: float, what: str) -> dict:
    est, se = r["estimate"], r["std_error"]
    t = est / se if se and se > 0 else float("nan")
    ok = bool(np.isfinite(t) and abs(t) < z)
    return {
        "verdict": "pass" if ok else "concern",
        "sentence": (
            f"{what}: placebo effect {est:.4g} (SE {se:.3g}, t = {t:.2f}) is "
            + ("not distinguishable from zero." if ok else "distinguishable from zero: the design picks up something other than membership.")
        ),
        "estimate": est,
        "std_error": se,
        "t": t,
    }


def run_checks(data: pd.DataFrame, spec: EstimatorSpec, options: dict | None = None) -> EstimationResult:
    """Run the checks named in ``options['checks']``; see the module docstring."""
    opts = _options(options)
    est_name, est_opts = opts["estimator"], opts["estimator_options"]
    alpha, z = spec.alpha, z_crit(spec.alpha)
    rows: list[dict[str, Any]] = []
    verdicts: dict[str, dict] = {}
    details: dict[str, Any] = {}
    tables: dict[str, pd.DataFrame] = {}

    def not_run(check: str, why: str) -> None:
        verdicts[check] = {"verdict": "not run", "sentence": f"{check} not run: {why}"}

    for check in opts["checks"]:
        try:
            if check == "placebo_adoption":
                r = placebo_adoption(data, spec, est_name, opts["placebo_shift"], est_opts)
                rows.append(_row("placebo_adoption", r, alpha))
                verdicts[check] = _placebo_verdict(
                    check, r, z, f"Fake adoption {r['shift']} years early (pre-membership years only)"
                )
                details[check] = {k: r[k] for k in ("shift", "horizon", "n_placebo_treated", "dropped")}
            elif check == "placebo_group":
                r = placebo_treated_group(data, spec, est_name, None, estimator_options=est_opts)
                rows.append(_row("placebo_group", r, alpha))
                verdicts[check] = _placebo_verdict(
                    check, r, z, f"Fake treated group ({r['n_placebo_treated']} non-members of the members' sectors)"
                )
                details[check] = {k: r[k] for k in ("n_candidates", "n_placebo_treated", "seed", "dropped")}
            elif check == "placebo_outcome":
                if not opts["placebo_outcome"]:
                    not_run(check, f"no placebo outcome named (set estimate.{NAME}.placebo_outcome)")
                    continue
                r = placebo_outcome(data, spec, opts["placebo_outcome"], est_name, est_opts)
                rows.append(_row("placebo_outcome", r, alpha))
                verdicts[check] = _placebo_verdict(check, r, z, f"Placebo outcome {opts['placebo_outcome']!r}")
            elif check == "ri":
                r = randomization_inference(data, spec, est_name, opts["ri_draws"], None, est_opts)
                row = {
                    "aggregation": "static",
                    "term": "ri_pvalue",
                    "estimate": r["estimate"],
                    "p_value": r["p_value"],
                    "n_obs": r["n_obs"],
                    "n_treated": r["n_treated"],
                }
                rows.append(row)
                # conventional p-value of the same estimator for the verdict
                base = run(data, spec, est_name, est_opts)
                p_conv = base["p_value"] if base["p_value"] is not None else float("nan")
                concern = bool(p_conv < alpha <= r["p_value"])
                too_few = 1.0 / (r["draws"] + 1) >= alpha
                head = (
                    f"Randomization inference ({r['draws']} permutations of the cohort assignment): p = {r['p_value']:.3g} "
                    f"vs conventional p = {p_conv:.3g}; "
                )
                if too_few:
                    verdict, tail = "not run", (
                        f"with {r['draws']} draws the RI p-value cannot fall below {alpha:g}: no comparison made "
                        f"(set estimate.{NAME}.ri_draws >= {int(np.ceil(1 / alpha))}, 199 or more recommended)."
                    )
                elif concern:
                    verdict, tail = "concern", "the conventional significance is not confirmed by the permutation distribution."
                else:
                    verdict, tail = "pass", f"the two agree at the {alpha:g} level."
                verdicts["ri_pvalue"] = {
                    "verdict": verdict,
                    "sentence": head + tail,
                    "p_value": r["p_value"],
                    "p_value_conventional": p_conv,
                    "estimate": r["estimate"],
                    "draws": r["draws"],
                    "n_extreme": r["n_extreme"],
                    "placebo_sd": r["placebo_sd"],
                    "method": r["method"],
                    "convention": CONVENTION,
                }
            elif check == "leave_one_out":
                r = leave_one_out(data, spec, est_name, opts["loo_by"], est_opts)
                full, tab = r["full"], r["table"]
                for rec in tab.to_dict("records"):
                    rows.append(_row(f"loo:{rec['left_out']}", rec, alpha))
                est = tab["estimate"].to_numpy(dtype=float)
                ok = np.isfinite(est)
                outside = ok & ((est < full["conf_low"]) | (est > full["conf_high"]) | (np.sign(est) != np.sign(full["estimate"])))
                bad = list(tab.loc[outside, "left_out"])
                sp = r["spread"]
                verdicts[check] = {
                    "verdict": "concern" if bad else "pass",
                    "sentence": (
                        f"Leaving out one {opts['loo_by']} at a time ({sp['n_left_out']} values): estimates from "
                        f"{sp['min']:.4g} to {sp['max']:.4g} (full sample {full['estimate']:.4g}); "
                        + (
                            f"leaving out {', '.join(bad)} moves it outside the full-sample CI or flips its sign."
                            if bad
                            else "all stay inside the full-sample confidence interval."
                        )
                    ),
                    "full_estimate": full["estimate"],
                    **sp,
                    "influential": bad,
                }
                tables["leave_one_out"] = tab.drop(columns=["note"]).assign(by=opts["loo_by"])
            elif check == "spillover":
                r = spillover_designs(data, spec, est_name, estimator_options=est_opts)
                rows.append(_row("spillover_naive", r["naive"], alpha))
                rows.append(_row("spillover_free", r["free"], alpha))
                e = r["effect"]
                if e is None:
                    verdicts[check] = {
                        "verdict": "not run",
                        "sentence": f"Spillover effect not estimated: {r['note']}.",
                        "counts": r["counts"],
                    }
                    continue
                rows.append(_row("spillover_effect", e, alpha))
                t = e["estimate"] / e["std_error"] if e["std_error"] else float("nan")
                concern = bool(np.isfinite(t) and abs(t) >= z)
                verdicts[check] = {
                    "verdict": "concern" if concern else "pass",
                    "sentence": (
                        f"Effect on co-located non-members {e['estimate']:.4g} (SE {e['std_error']:.3g}); members vs all "
                        f"non-members {r['naive']['estimate']:.4g}, vs spillover-free non-members {r['free']['estimate']:.4g}. "
                        + (
                            "Co-located non-members are affected: they are not valid controls; prefer the spillover-free design."
                            if concern
                            else "No detectable spillover onto co-located non-members."
                        )
                    ),
                    "spillover_effect": e["estimate"],
                    "spillover_std_error": e["std_error"],
                    "naive": r["naive"]["estimate"],
                    "free": r["free"]["estimate"],
                    "contamination": r["contamination"],
                    "counts": r["counts"],
                }
        except DesignError as exc:
            key = "ri_pvalue" if check == "ri" else check
            not_run(key, str(exc).splitlines()[0])

    if not rows:
        raise DesignError(
            "checks: no credibility check could be run:", problems=[v["sentence"] for v in verdicts.values()]
        )
    n_treated = [r["n_treated"] for r in rows if r.get("n_treated") is not None]
    meta = {
        "n_obs": int(len(data)),
        "n_units": int(data[spec.idname].nunique()),
        "n_treated_units": int(data.loc[data[spec.gname] > 0, spec.idname].nunique()),
        "n_clusters": int(data[spec.vcov.by[0]].nunique()) if spec.vcov.by and spec.vcov.by[0] in data else None,
        "vcov": spec.vcov.label(),
        "control_group": spec.control_group,
        "dropped": {},
        "estimator_checked": est_name,
        "verdicts": verdicts,
        "details": details,
        "min_n_treated": min(n_treated) if n_treated else None,
        "spec": spec.to_dict(),
    }
    return EstimationResult(estimator=NAME, outcome=spec.yname, tidy=pd.DataFrame(rows), meta=meta, tables=tables)


def fit(data: pd.DataFrame, spec: EstimatorSpec) -> EstimationResult:
    """Registry entry point: ``spec.options`` = OPTIONS merged with ``estimate.checks``."""
    return run_checks(data, spec, spec.options)
