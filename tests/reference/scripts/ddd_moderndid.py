"""Reference for the triple-differences estimator (models/did/ddd.py): moderndid 0.2.0 ``ddd``
and ``agg_ddd`` on moderndid's own published DGPs (the README's example
``gen_ddd_mult_periods(n=500, dgp_type=1, random_state=42)``, staggered, and
``gen_ddd_2periods(n=500, dgp_type=1, random_state=42)``), with covariates cov1-cov4, for
est_method dr, reg, ipw, never-treated controls, universal base period (moderndid's defaults),
analytic SEs. Stores the data and the results in tests/reference/ddd_moderndid.json.

Run: uv run python tests/reference/scripts/ddd_moderndid.py
"""

import json
from pathlib import Path

import moderndid as did
import numpy as np

OUT = Path(__file__).resolve().parents[1] / "ddd_moderndid.json"


def _f(a):
    return [None if not np.isfinite(x) else float(x) for x in np.asarray(a, dtype=float).ravel()]


def main() -> None:
    ref = {"moderndid": did.__version__, "cases": {}}
    for name, gen in (("mult", did.gen_ddd_mult_periods), ("two", did.gen_ddd_2periods)):
        df = gen(n=500, dgp_type=1, random_state=42)["data"].to_pandas()
        gname = "group"
        if name == "two":  # 2 periods: state 1 is treated in period 2 (stored as group = 2, 0 = never)
            gname = "state"
            df["group"] = 2 * df["state"]
        case = {"data": {c: df[c].tolist() for c in ["id", "group", "partition", "time", "y", "cov1", "cov2", "cov3", "cov4"]}}
        for m, cg in (("dr", "nevertreated"), ("reg", "nevertreated"), ("ipw", "nevertreated"),
                      ("dr_notyet", "notyettreated"), ("reg_notyet", "notyettreated")):
            if name == "two" and cg == "notyettreated":
                continue
            r = did.ddd(data=df, yname="y", tname="time", idname="id", gname=gname, pname="partition",
                        xformla="~ cov1 + cov2 + cov3 + cov4", est_method=m.split("_")[0], control_group=cg,
                        base_period="universal")
            if name == "two":
                case[m] = {"att": float(r.att), "se": float(r.se)}
                continue
            out = {"groups": _f(r.groups), "times": _f(r.times), "att": _f(r.att), "se": _f(r.se)}
            for ty in ("simple", "eventstudy", "group", "calendar"):
                a = did.agg_ddd(r, type=ty, boot=False, cband=False)
                out[ty] = {"overall_att": float(a.overall_att), "overall_se": float(a.overall_se),
                           "egt": _f(a.egt) if a.egt is not None else None,
                           "att_egt": _f(a.att_egt) if a.att_egt is not None else None,
                           "se_egt": _f(a.se_egt) if a.se_egt is not None else None}
            case[m] = out
        ref["cases"][name] = case
    OUT.write_text(json.dumps(ref, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
