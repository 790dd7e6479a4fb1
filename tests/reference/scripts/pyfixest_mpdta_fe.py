"""Reference values on mpdta with a fixed effect beyond county and year, and pyfixest's
local-projections DiD, from pyfixest (the peer implementation).

Run from the repo root:  uv run python tests/reference/scripts/pyfixest_mpdta_fe.py
Writes tests/reference/pyfixest_mpdta_fe.json. Re-running moves the last one or two digits
(pyfixest's multithreaded demeaning sums in varying order, ~1e-17); the tests compare at 1e-8.

mpdta has no sector, so a deterministic synthetic one is built: ``sector = countyreal mod 5``
(five groups that cut across the minimum-wage cohorts and states; treatment is assigned by
state in mpdta, so a state x year effect would absorb it). The extra effect is
``sector^year`` (sector-specific year shocks); every formula below names the real columns,
written independently of cluster-impact's internal code columns.

* twfe: feols("lemp ~ post | countyreal + year + sector^year"), CRV1 by county
* event_study: feols("lemp ~ i(rel, ref=-1) | countyreal + year + sector^year"), never members at -1
* sunab: the saturated regression written out (one dummy per treated cohort x event time,
  l != -1, never members as controls) with feols(... | countyreal + year + sector^year), and
  the IW aggregation by observation shares with the delta method (R V R'), as fixest's
  aggregate(); pyfixest's event_study(estimator="saturated") takes no extra effects
* did2s / imputation: did2s(first_stage="~0|countyreal+year+sector^year", second_stage=
  "~i(treat)" / "~i(rel2)"), first-stage feols with fixef_rm="none" as in pyfixest_mpdta.py;
  sector^year given as one precomputed column ``sector_year`` (pyfixest 0.60's fixef(), which
  did2s uses to impute, refuses '^'), and fixef()'s lsqr tolerances tightened from 1e-6 to
  1e-14 (at the default the imputed outcomes carry ~1e-7 of solver error)
* ppml: fepois("emp ~ post | countyreal + year + sector^year") with emp = exp(lemp), CRV1
* lpdid: pyfixest.did.estimation.lpdid(att=False) (event study) and (att=True) (pooled
  post-treatment ATT) with its default vcov {"CRV1": countyreal}; no extra effect (pyfixest's
  lpdid absorbs year only); and att=False with xfml="lpop" (a covariate at its period-t value)
"""

import functools
import json
import sys
import warnings
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
import pyfixest as pf
from moderndid import load_mpdta

warnings.simplefilter("ignore")
TOL = dict(fixef_tol=1e-13, fixef_maxiter=100_000)
d = load_mpdta().to_pandas().rename(columns={"first.treat": "first_treat"})
d = d.sort_values(["countyreal", "year"]).reset_index(drop=True)
d["sector"] = d["countyreal"] % 5
d["post"] = ((d["year"] >= d["first_treat"]) & (d["first_treat"] > 0)).astype(float)
d["emp"] = np.exp(d["lemp"])
FE = "countyreal + year + sector^year"
V = {"CRV1": "countyreal"}
out = {
    "source": f"pyfixest {metadata.version('pyfixest')}, moderndid {metadata.version('moderndid')} load_mpdta(); "
    "script tests/reference/scripts/pyfixest_mpdta_fe.py; sector = countyreal % 5",
    "fixed_effects": ["firm_id", "year", "sector^year"],
}


def coef(f, i=0):
    return {"estimate": float(f._beta_hat[i]), "std_error": float(f._se[i])}


f = pf.feols(f"lemp ~ post | {FE}", data=d, vcov=V, **TOL)
out["twfe"] = coef(f)

d["rel"] = np.where(d["first_treat"] > 0, d["year"] - d["first_treat"], -1).astype(float)
f = pf.feols(f"lemp ~ i(rel, ref=-1.0) | {FE}", data=d, vcov=V, **TOL)
out["event_study"] = {str(int(float(str(n).split("::")[1]))): coef(f, i) for i, n in enumerate(f._coefnames)}

# Sun & Abraham: saturated cells, never members as controls
cells = sorted({(int(g), int(t - g)) for g, t in zip(d["first_treat"], d["year"]) if g > 0 and t - g != -1})
names = []
for g, l in cells:
    name = f"c_{g}_{l + 10}"
    d[name] = ((d["first_treat"] == g) & (d["year"] - d["first_treat"] == l)).astype(float)
    names.append(name)
f = pf.feols(f"lemp ~ {' + '.join(names)} | {FE}", data=d, vcov=V, **TOL)
beta = np.asarray(f._beta_hat)
Vc = np.asarray(f._vcov)
n = np.array([d[c].sum() for c in names])
ls = sorted({l for _, l in cells})
R = np.array([[n[j] / n[[k for k, c in enumerate(cells) if c[1] == l]].sum() if cells[j][1] == l else 0.0
               for j in range(len(cells))] for l in ls])
out["sunab_dynamic"] = {str(l): {"estimate": float(R[i] @ beta), "std_error": float(np.sqrt(R[i] @ Vc @ R[i]))}
                        for i, l in enumerate(ls)}
r = np.where([l >= 0 for _, l in cells], n, 0.0)
r = r / r.sum()
out["sunab_simple"] = {"estimate": float(r @ beta), "std_error": float(np.sqrt(r @ Vc @ r))}
out["sunab_cells"] = {f"{g}:{l}": coef(f, j) for j, (g, l) in enumerate(cells)}

import pyfixest.did.did2s  # noqa: E402

mod = sys.modules["pyfixest.did.did2s"]
mod.feols = functools.partial(pf.feols, fixef_rm="none", fixef_tol=1e-13)
# fixef() recovers the first-stage effects by scipy lsqr, default atol = btol = 1e-6: with a
# third effect that leaves ~1e-7 in the imputed outcomes; tightened to 1e-14 here
from pyfixest.estimation.models.feols_ import Feols  # noqa: E402

_fixef = Feols.fixef
Feols.fixef = lambda self, atol=1e-14, btol=1e-14: _fixef(self, atol=atol, btol=btol)
d["treat"] = d["post"].astype(bool)
d["rel2"] = np.where(d["treat"], d["year"] - d["first_treat"], -1000).astype(float)
# pyfixest 0.60's fixef() (used by did2s to impute) refuses '^': the same effect as one column
d["sector_year"] = d["sector"] * 10000 + d["year"]
FE2 = "countyreal + year + sector_year"
f = pf.did2s(d, yname="lemp", first_stage=f"~0|{FE2}", second_stage="~i(treat)", treatment="treat", cluster="countyreal")
out["did2s_simple"] = coef(f)
f = pf.did2s(d, yname="lemp", first_stage=f"~0|{FE2}", second_stage="~i(rel2, ref=-1000.0)", treatment="treat",
             cluster="countyreal")
out["did2s_dynamic"] = {str(int(float(str(n).split("::")[1]))): coef(f, i) for i, n in enumerate(f._coefnames)}

f = pf.fepois(f"emp ~ post | {FE}", data=d, vcov=V, fixef_rm="none", iwls_tol=1e-12, iwls_maxiter=200, **TOL)
out["ppml"] = coef(f)

from pyfixest.did.estimation import lpdid  # noqa: E402

base = d[["countyreal", "year", "first_treat", "lemp"]].copy()
es = lpdid(base, yname="lemp", idname="countyreal", tname="year", gname="first_treat", att=False).tidy()
out["lpdid_dynamic"] = {str(int(str(k).split("::")[1])): {"estimate": float(v["Estimate"]), "std_error": float(v["Std. Error"]),
                                                         "n_obs": int(v["N"])} for k, v in es.iterrows()}
att = lpdid(base, yname="lemp", idname="countyreal", tname="year", gname="first_treat", att=True).tidy()
v = att.iloc[0]
out["lpdid_pooled"] = {"estimate": float(v["Estimate"]), "std_error": float(v["Std. Error"]), "n_obs": int(v["N"])}
es = lpdid(d[["countyreal", "year", "first_treat", "lemp", "lpop"]].copy(), yname="lemp", idname="countyreal",
           tname="year", gname="first_treat", att=False, xfml="lpop").tidy()
out["lpdid_dynamic_lpop"] = {str(int(str(k).split("::")[1])): {"estimate": float(v["Estimate"]),
                                                              "std_error": float(v["Std. Error"])} for k, v in es.iterrows()}
out["lpdid_vcov"] = "CRV1 by countyreal (pyfixest lpdid default)"
Path("tests/reference/pyfixest_mpdta_fe.json").write_text(json.dumps(out, indent=2) + "\n")
print("wrote tests/reference/pyfixest_mpdta_fe.json")
