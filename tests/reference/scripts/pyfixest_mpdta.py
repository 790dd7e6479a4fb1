"""Reference values on mpdta from pyfixest (the peer implementation), stored so the
tests keep a fixed record even if pyfixest changes.

Run from the repo root:  uv run python tests/reference/scripts/pyfixest_mpdta.py
Writes tests/reference/pyfixest_mpdta.json.

* twfe: feols("lemp ~ post | countyreal + year", vcov={"CRV1": "countyreal"})
* event_study: feols("lemp ~ i(rel, ref=-1) | countyreal + year"), never members at -1
* sunab: event_study(..., estimator="saturated") cells and .aggregate() (period, shares)
* did2s: did2s(first_stage="~0|countyreal+year", second_stage="~i(treat)" / "~i(rel)"),
  with pyfixest's first-stage feols run with fixef_rm="none" (pyfixest's default
  "singleton" silently drops the 2004 cohort, whose only untreated year is 2003; R did2s
  keeps it).
"""

import functools
import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pyfixest as pf
from moderndid import load_mpdta

warnings.simplefilter("ignore")
d = load_mpdta().to_pandas().rename(columns={"first.treat": "first_treat"})
d["post"] = ((d["year"] >= d["first_treat"]) & (d["first_treat"] > 0)).astype(float)
out = {
    "source": f"pyfixest {metadata.version('pyfixest')}, moderndid {metadata.version('moderndid')} load_mpdta(); "
    "script tests/reference/scripts/pyfixest_mpdta.py",
}
f = pf.feols("lemp ~ post | countyreal + year", data=d, vcov={"CRV1": "countyreal"}, fixef_tol=1e-13)
out["twfe"] = {"estimate": float(f._beta_hat[0]), "std_error": float(f._se[0])}

d["rel"] = np.where(d["first_treat"] > 0, d["year"] - d["first_treat"], -1).astype(float)
f = pf.feols("lemp ~ i(rel, ref=-1.0) | countyreal + year", data=d, vcov={"CRV1": "countyreal"}, fixef_tol=1e-13)
out["event_study"] = {
    str(int(float(str(n).split("::")[1]))): {"estimate": float(b), "std_error": float(s)}
    for n, b, s in zip(f._coefnames, f._beta_hat, f._se)
}

s = pf.event_study(d, yname="lemp", idname="countyreal", tname="year", gname="first_treat", estimator="saturated")
agg = s.aggregate()
out["sunab_dynamic"] = {
    str(int(float(k))): {"estimate": float(v["Estimate"]), "std_error": float(v["Std. Error"])} for k, v in agg.iterrows()
}
out["sunab_cells"] = {
    str(n): {"estimate": float(b), "std_error": float(se)} for n, b, se in zip(s._coefnames, s._beta_hat, s._se)
}

import pyfixest.did.did2s

mod = sys.modules["pyfixest.did.did2s"]
mod.feols = functools.partial(pf.feols, fixef_rm="none", fixef_tol=1e-13)
d["treat"] = d["post"].astype(bool)
d["rel2"] = np.where(d["treat"], d["year"] - d["first_treat"], -1000).astype(float)
f = pf.did2s(d, yname="lemp", first_stage="~0|countyreal+year", second_stage="~i(treat)", treatment="treat", cluster="countyreal")
out["did2s_simple"] = {"estimate": float(f._beta_hat[0]), "std_error": float(f._se[0])}
f = pf.did2s(d, yname="lemp", first_stage="~0|countyreal+year", second_stage="~i(rel2, ref=-1000.0)", treatment="treat",
             cluster="countyreal")
out["did2s_dynamic"] = {
    str(int(float(str(n).split("::")[1]))): {"estimate": float(b), "std_error": float(se)}
    for n, b, se in zip(f._coefnames, f._beta_hat, f._se)
}
Path("tests/reference/pyfixest_mpdta.json").write_text(json.dumps(out, indent=2) + "\n")
print("wrote tests/reference/pyfixest_mpdta.json")
