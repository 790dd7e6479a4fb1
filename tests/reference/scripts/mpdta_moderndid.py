"""Peer reference values for Callaway-Sant'Anna on mpdta from moderndid 0.2.0.

Writes tests/reference/mpdta_moderndid.json: for each configuration, moderndid's
``att_gt`` (analytic SEs, boot=False) and ``aggte`` for the four aggregation types.
Run: ``uv run python tests/reference/scripts/mpdta_moderndid.py`` (needs moderndid==0.2.0).
"""

import json
from pathlib import Path

import numpy as np
import polars as pl
import moderndid
from moderndid import aggte, att_gt

ROOT = Path(__file__).resolve().parents[2]

CONFIGS = {
    "unconditional_never_varying": dict(covariates=[], est_method="dr", control_group="nevertreated", base_period="varying", anticipation=0),
    "lpop_dr_never_varying": dict(covariates=["lpop"], est_method="dr", control_group="nevertreated", base_period="varying", anticipation=0),
    "lpop_ipw_never_varying": dict(covariates=["lpop"], est_method="ipw", control_group="nevertreated", base_period="varying", anticipation=0),
    "lpop_reg_never_varying": dict(covariates=["lpop"], est_method="reg", control_group="nevertreated", base_period="varying", anticipation=0),
    "lpop_dr_notyet_varying": dict(covariates=["lpop"], est_method="dr", control_group="notyettreated", base_period="varying", anticipation=0),
    "lpop_dr_never_universal": dict(covariates=["lpop"], est_method="dr", control_group="nevertreated", base_period="universal", anticipation=0),
    "lpop_reg_notyet_varying_antic1": dict(covariates=["lpop"], est_method="reg", control_group="notyettreated", base_period="varying", anticipation=1),
    "lpop_ipw_notyet_universal_antic1": dict(covariates=["lpop"], est_method="ipw", control_group="notyettreated", base_period="universal", anticipation=1),
    "unconditional_notyet_universal": dict(covariates=[], est_method="dr", control_group="notyettreated", base_period="universal", anticipation=0),
}


def _list(x):
    return [None if (v is None or not np.isfinite(v)) else float(v) for v in np.asarray(x, dtype=float)]


def main() -> None:
    df = pl.read_csv(ROOT / "data" / "mpdta.csv")
    out = {
        "source": "moderndid 0.2.0 (PyPI), moderndid.att_gt(boot=False, cband=False) + moderndid.aggte",
        "data": "tests/data/mpdta.csv (moderndid.load_mpdta)",
        "script": "tests/reference/scripts/mpdta_moderndid.py",
        "moderndid_version": moderndid.__version__,
        "se_convention": "sqrt(sum(IF^2))/n (analytic), identical to R did 2.5.1",
        "configs": {},
    }
    for name, c in CONFIGS.items():
        kw = dict(est_method=c["est_method"], control_group=c["control_group"], base_period=c["base_period"], anticipation=c["anticipation"])
        if c["covariates"]:
            kw["xformla"] = "~" + "+".join(c["covariates"])
        m = att_gt(data=df, yname="lemp", tname="year", idname="countyreal", gname="first.treat", boot=False, cband=False, **kw)
        rec = {"options": c, "gt": {"group": _list(m.groups), "time": _list(m.times), "att": _list(m.att_gt), "se": _list(m.se_gt)},
               "wald_pvalue": None if m.wald_pvalue is None else float(m.wald_pvalue), "agg": {}}
        for ty in ("simple", "dynamic", "group", "calendar"):
            a = aggte(m, type=ty)
            rec["agg"][ty] = {"overall_att": float(a.overall_att), "overall_se": float(a.overall_se),
                              "egt": None if a.event_times is None else _list(a.event_times),
                              "att": None if a.att_by_event is None else _list(a.att_by_event),
                              "se": None if a.se_by_event is None else _list(a.se_by_event)}
        if name == "unconditional_never_varying":
            a = aggte(m, type="dynamic", balance_e=1)
            rec["agg"]["dynamic_balance_e1"] = {"overall_att": float(a.overall_att), "overall_se": float(a.overall_se),
                                                "egt": _list(a.event_times), "att": _list(a.att_by_event), "se": _list(a.se_by_event)}
        out["configs"][name] = rec
    # 2x2 panel estimators on cohort 2006 vs never treated, 2005 -> 2006, covariates (1, lpop)
    from moderndid.drdid.estimators.drdid_imp_panel import drdid_imp_panel
    from moderndid.drdid.estimators.drdid_panel import drdid_panel
    from moderndid.drdid.estimators.reg_did_panel import reg_did_panel
    from moderndid.drdid.estimators.std_ipw_did_panel import std_ipw_did_panel

    pdf = df.to_pandas()
    w = pdf.pivot(index="countyreal", columns="year", values="lemp")
    g = pdf.groupby("countyreal")["first.treat"].first()
    x = pdf.groupby("countyreal")["lpop"].first()
    s = g.isin([2006, 0]).to_numpy()
    D = (g[s] == 2006).to_numpy(float)
    X = np.column_stack([np.ones(s.sum()), x.to_numpy()[s]])
    y1, y0 = w[2006].to_numpy()[s], w[2005].to_numpy()[s]
    out["two_by_two"] = {"sample": "units with first.treat in {0, 2006} sorted by countyreal; D = (first.treat == 2006); y1 = lemp 2006, y0 = lemp 2005; X = (1, lpop)"}
    for name, f in [("drdid_panel", drdid_panel), ("reg_did_panel", reg_did_panel), ("std_ipw_did_panel", std_ipw_did_panel), ("drdid_imp_panel", drdid_imp_panel)]:
        r = f(y1=y1, y0=y0, d=D, covariates=X, influence_func=True)
        out["two_by_two"][name] = {"att": float(r.att), "inf_func": _list(r.att_inf_func)}
    path = ROOT / "reference" / "mpdta_moderndid.json"
    path.write_text(json.dumps(out, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
