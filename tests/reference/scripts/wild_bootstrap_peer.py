"""Build tests/reference/wild_bootstrap.json: wildboottest 0.3 (WCR11, Rademacher, full
enumeration of 2^8 sign vectors) and pyfixest 0.60 CRV3 on a seeded 8-cluster design.

Run: uv run python tests/reference/scripts/wild_bootstrap_peer.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

OUT = Path(__file__).resolve().parents[1] / "wild_bootstrap.json"


def design(seed: int = 3, G: int = 8, N: int = 400):
    rng = np.random.default_rng(seed)
    cl = rng.integers(0, G, N)
    x = rng.normal(size=N) + rng.normal(size=G)[cl]
    z = rng.normal(size=N)
    y = 0.1 * x + 0.5 * z + rng.normal(size=N) + rng.normal(size=G)[cl]
    return np.column_stack([np.ones(N), x, z]), y, cl


def main():
    import pyfixest as pf  # peers imported here so that tests can import design() cheaply
    from wildboottest.wildboottest import WildboottestCL

    X, y, cl = design()
    out = {"design": "tests/reference/scripts/wild_bootstrap_peer.py::design(seed=3, G=8, N=400); X = [1, x, z]",
           "wildboottest": {}, "pyfixest_crv3": {}}
    for j in (1, 2):
        R = np.zeros(3)
        R[j] = 1
        wb = WildboottestCL(X=X, Y=y, cluster=cl, R=R, B=9999, seed=1, parallel=False)
        wb.get_scores(bootstrap_type="11", impose_null=True)
        wb.get_weights("rademacher")
        wb.get_numer()
        wb.get_denom()
        wb.get_tboot()
        wb.get_vcov()
        wb.get_tstat()
        wb.get_pvalue()
        out["wildboottest"][str(j)] = {
            "call": "WildboottestCL(B=9999) get_scores('11', impose_null=True), weights 'rademacher' "
            "(full enumeration: 2^8 < B)",
            "p_value": float(wb.pvalue),
            "t_stat": float(np.ravel(wb.t_stat)[0]),
            "B": int(wb.B),
            "t_boot_sorted": np.sort(np.ravel(wb.t_boot)).tolist(),
        }
    R = np.array([0.0, 1.0, 0.0])
    wb = WildboottestCL(X=X, Y=y, cluster=cl, R=R, B=9999, seed=11, parallel=False)
    wb.get_scores(bootstrap_type="11", impose_null=True)
    wb.get_weights("webb")
    wb.get_numer()
    wb.get_denom()
    wb.get_tboot()
    wb.get_vcov()
    wb.get_tstat()
    wb.get_pvalue()
    out["wildboottest_webb"] = {"call": "WildboottestCL(B=9999, seed=11), WCR11, weights 'webb', param x",
                                "p_value": float(wb.pvalue), "B": int(wb.B)}
    df = pd.DataFrame({"y": y, "x": X[:, 1], "z": X[:, 2], "cl": cl})
    f1 = pf.feols("y ~ x + z", data=df, vcov={"CRV1": "cl"})
    out["pyfixest_crv1"] = {"call": "pf.feols('y ~ x + z', vcov={'CRV1': 'cl'}) (default ssc)",
                            "vcov": np.asarray(f1._vcov).tolist()}
    f = pf.feols("y ~ x + z", data=df, vcov={"CRV3": "cl"}, ssc=pf.ssc(k_adj=False, G_adj=False))
    out["pyfixest_crv3"] = {
        "call": "pf.feols('y ~ x + z', vcov={'CRV3': 'cl'}, ssc=pf.ssc(k_adj=False, G_adj=False)) "
        "= sum_g (b_(g) - b)(b_(g) - b)' (no small-sample factor)",
        "vcov_raw": np.asarray(f._vcov).tolist(),
    }
    OUT.write_text(json.dumps(out, indent=1))
    print("wrote", OUT)


if __name__ == "__main__":
    main()
