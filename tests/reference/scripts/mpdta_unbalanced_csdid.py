"""Peer reference values for Callaway-Sant'Anna on an *unbalanced* mpdta from csdid 0.4.3.

The panel: tests/data/mpdta.csv with 10 % of its rows removed (``numpy.random.default_rng(7)``,
a row is removed when its uniform draw is < 0.1; the removed (countyreal, year) keys are
stored too), plus a time-varying covariate ``x2 = lpop + 0.05 * N(0,1)`` drawn from the same
generator after the removal. csdid's ``ATTgt(..., allow_unbalanced_panel=True)`` follows
R did 2.5.1's repeated-cross-section path for unbalanced panels (rows of the two periods
of each cell, influence functions summed per unit, scale n / rows of the cell).

Why csdid and not moderndid: moderndid 0.2.0's ``att_gt(allow_unbalanced_panel=True)``
fails on an unbalanced panel (TypeError in compute_att_gt: no outcome tensor), and R DRDID
(ported by moderndid) has a sign slip in drdid_rc's influence function that csdid 0.4.3
corrects (see models/did/drdid_rc.py); ipw and reg agree with both.

Writes tests/reference/mpdta_unbalanced_csdid.json.
Run: ``uv run python tests/reference/scripts/mpdta_unbalanced_csdid.py``.
"""

import json
import warnings
from importlib.metadata import version
from pathlib import Path

import numpy as np
import pandas as pd
from csdid.att_gt import ATTgt

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = {
    "unconditional_never_varying": ([], "dr", "nevertreated", "varying"),
    "lpop_dr_never_varying": (["lpop"], "dr", "nevertreated", "varying"),
    "lpop_ipw_notyet_varying": (["lpop"], "ipw", "notyettreated", "varying"),
    "lpop_reg_never_universal": (["lpop"], "reg", "nevertreated", "universal"),
    "x2_dr_notyet_varying": (["x2"], "dr", "notyettreated", "varying"),
}


def unbalanced_mpdta() -> tuple[pd.DataFrame, pd.DataFrame]:
    df = pd.read_csv(ROOT / "data" / "mpdta.csv")
    rng = np.random.default_rng(7)
    drop = rng.random(len(df)) < 0.1
    du = df.loc[~drop].reset_index(drop=True)
    du["x2"] = du["lpop"] + 0.05 * rng.standard_normal(len(du))
    return du, df.loc[drop, ["countyreal", "year"]]


def _list(x):
    return [None if (v is None or not np.isfinite(v)) else float(v) for v in np.asarray(x, dtype=float)]


def main() -> None:
    warnings.filterwarnings("ignore")
    du, removed = unbalanced_mpdta()
    out = {
        "source": f"csdid {version('csdid')} (PyPI), ATTgt(allow_unbalanced_panel=True).fit(bstrap=False) + aggte(bstrap=False)",
        "data": "tests/data/mpdta.csv minus 10 % of rows (numpy default_rng(7) uniform < 0.1), x2 = lpop + 0.05 N(0,1)",
        "script": "tests/reference/scripts/mpdta_unbalanced_csdid.py",
        "removed_keys": removed.astype(int).values.tolist(),
        "configs": {},
    }
    for name, (cov, meth, cg, bp) in CONFIGS.items():
        xf = ("lemp ~ " + "+".join(cov)) if cov else None
        m = ATTgt(yname="lemp", tname="year", idname="countyreal", gname="first.treat", data=du, xformla=xf,
                  control_group=cg, allow_unbalanced_panel=True).fit(est_method=meth, base_period=bp, bstrap=False)
        rec = {"options": {"covariates": cov, "est_method": meth, "control_group": cg, "base_period": bp},
               "gt": {"group": _list(m.results["group"]), "time": _list(m.results["year"]),
                      "att": _list(m.results["att"]), "se": _list(m.results["se"])}, "agg": {}}
        for ty in ("simple", "dynamic", "group", "calendar"):
            m.aggte(typec=ty, bstrap=False)
            rec["agg"][ty] = {"overall_att": float(np.ravel(m.atte["overall_att"])[0]),
                              "overall_se": float(np.ravel(m.atte["overall_se"])[0])}
        out["configs"][name] = rec
    (ROOT / "reference" / "mpdta_unbalanced_csdid.json").write_text(json.dumps(out, indent=1) + "\n")


if __name__ == "__main__":
    main()
