"""Build tests/reference/honestdid_medicaid.json (HonestDiD README Medicaid example).

Inputs: the README's TWFE event study (fixest::feols(dins ~ i(year, D, ref = 2013) |
stfips + year, cluster = "stfips") on ehec_data, years < 2016, 2015 cohort dropped),
re-estimated with pyfixest on the ehec data shipped with moderndid 0.2.0. The same
pipeline with the README's fake control (R set.seed(0); rnorm(n)) reproduces the
betahat/sigma cached in the HonestDiD repository's README_cache chunk 8 (checked below),
so pyfixest == fixest here.

Outputs ("published"): full-precision values of the README tables, read from the knitr
cache committed in github.com/asheshrambachan/HonestDiD (commit 6813f02, README_cache/gfm/
unnamed-chunk-4/6/7_*.rdb; loaded in R with lazyLoad()). The printed README shows the
same numbers rounded to 3 significant digits.

Peer: the `honestdid` Python package (0.1.1, torch + cvxpy port of the R package), run live.

Run: uv run python tests/reference/scripts/honestdid_medicaid.py tests/reference/scripts/r_rnorm_seed0_400.txt
(r_rnorm_seed0_400.txt: R 4 `set.seed(0); cat(sprintf("%.17g\\n", rnorm(400)))`, the README fake control).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pyfixest as pf
from moderndid.core.data import load_ehec

OUT = Path(__file__).resolve().parents[1] / "honestdid_medicaid.json"

# R: lazyLoad of README_cache chunks (HonestDiD commit 6813f02), printed with digits=15.
R_RM_FIRST = {  # chunk 4: createSensitivityResults_relativeMagnitudes(..., Mbarvec = seq(0.5, 2, by = 0.5))
    "Mbar": [0.5, 1.0, 1.5, 2.0],
    "lb": [0.02413012223779434, 0.01709372096304423, 0.00858690780210172, -0.00106702589708607],
    "ub": [0.0672633015831286, 0.0719629764814350, 0.0795988279137052, 0.0883472800330241],
}
R_SD_FIRST = {  # chunk 6: createSensitivityResults(..., Mvec = seq(0, 0.05, by = 0.01))  (FLCI)
    "M": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05],
    "lb": [0.02594147902742559, 0.01319702515144735, 0.00285699595143354,
           -0.00714257640305339, -0.01714257640222575, -0.02714257640139812],
    "ub": [0.0607257863763330, 0.0786707425358153, 0.0907160394065241,
           0.1007156117610110, 0.1107156117601834, 0.1207156117593558],
}
R_RM_AVG = {  # chunk 7: ..._relativeMagnitudes(..., Mbarvec = seq(0, 2, by = 0.5), l_vec = c(0.5, 0.5))
    "Mbar": [0.0, 0.5, 1.0, 1.5, 2.0],
    "lb": [0.04053046714881314, 0.03214178319537053, 0.01938431730559176,
           0.00582426487549143, -0.00853837409493050],
    "ub": [0.0751225624901543, 0.0798156016055951, 0.0901485614853929,
           0.1035014948083135, 0.1172486153551592],
    "original_lb": 0.0403699525107761,
    "original_ub": 0.0752830771281914,
}
# chunk 8 (README "Regressions with controls"): betahat with the fake control, to check pyfixest == fixest
R_CHUNK8_BETAHAT = [-0.005503459402068750, -0.011227788203632049, -0.002467612620447788,
                    -0.001666161646478015, -0.000239216716072322, 0.046573191126320905,
                    0.069296521139131567]


def medicaid_panel():
    df = load_ehec().to_pandas()
    d = df[(df.year < 2016) & (df.yexp2.isna() | (df.yexp2 != 2015))].copy()
    d = d.sort_values(["stfips", "year"]).reset_index(drop=True)
    d["D"] = (d.yexp2 == 2014).astype(int)
    return d


def main(r_draws: str | None = None) -> None:
    d = medicaid_panel()
    fit = pf.feols("dins ~ i(year, D, ref=2013) | stfips + year", data=d, vcov={"CRV1": "stfips"})
    betahat = fit.coef().to_numpy()
    sigma = np.asarray(fit._vcov)
    names = list(fit.coef().index)
    check = None
    if r_draws:  # R: set.seed(0); rnorm(400) written with %.17g
        z = np.loadtxt(r_draws)
        d["control"] = z[: len(d)]
        fc = pf.feols("dins ~ i(year, D, ref=2013) + control | stfips + year", data=d, vcov={"CRV1": "stfips"})
        check = float(np.max(np.abs(fc.coef().to_numpy()[:7] - np.array(R_CHUNK8_BETAHAT))))
        print("pyfixest vs fixest (README chunk 8) max abs diff in betahat:", check)

    # peer: honestdid (python port)
    import honestdid as hd

    peer = {}
    t0 = time.time()
    try:
        rm = hd.createSensitivityResults_relativeMagnitudes(
            betahat=betahat, sigma=sigma, numPrePeriods=5, numPostPeriods=2, Mbarvec=[0.5, 1.0, 1.5, 2.0]
        )
        peer["rm_first"] = {"Mbar": [0.5, 1.0, 1.5, 2.0], "lb": [float(x) for x in rm["lb"]],
                            "ub": [float(x) for x in rm["ub"]]}
    except Exception as exc:  # honestdid 0.1.1 calls float() on 1x1 arrays: TypeError under numpy 2.4
        peer["rm_first"] = {"error": f"{type(exc).__name__}: {exc}"}
    sd = hd.createSensitivityResults(
        betahat=betahat, sigma=sigma, numPrePeriods=5, numPostPeriods=2, Mvec=[0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    )
    peer["sd_first"] = {"M": [0.0, 0.01, 0.02, 0.03, 0.04, 0.05], "lb": [float(x) for x in sd["lb"]], "ub": [float(x) for x in sd["ub"]]}
    peer["seconds"] = time.time() - t0
    print(peer)

    out = {
        "description": "HonestDiD README Medicaid example (Rambachan & Roth 2023): TWFE event study of "
        "Medicaid expansion on insurance coverage (dins), 2014 cohort vs never/later, ref year 2013.",
        "inputs": {
            "source": "pyfixest 0.60 feols('dins ~ i(year, D, ref=2013) | stfips + year', vcov={'CRV1': 'stfips'}) "
            "on moderndid 0.2.0 load_ehec(), year < 2016, yexp2 != 2015 (as the README's fixest call)",
            "pyfixest_equals_fixest_check_max_abs_diff": check,
            "names": names,
            "betahat": betahat.tolist(),
            "sigma": sigma.tolist(),
            "num_pre": 5,
            "num_post": 2,
        },
        "published": {
            "source": "github.com/asheshrambachan/HonestDiD README.md (HEAD 6813f02, HonestDiD 0.2.8); full precision "
            "from the committed knitr cache README_cache/gfm/unnamed-chunk-{4,6,7}_*.rdb via R lazyLoad()",
            "rm_first_post": R_RM_FIRST,
            "sd_first_post_flci": R_SD_FIRST,
            "rm_average_post": R_RM_AVG,
            "rm_method": "C-LF (conditional least-favorable hybrid, kappa = alpha/10, 1000 LF draws, seed 0, gridPoints 1000)",
            "rm_grid_note": "every published RM endpoint lies on seq(id.lb - 20*sd, id.ub + 20*sd, length.out = 1000) "
            "(id = Delta^RM(Mbar) identified set at betahat), not on the HonestDiD 0.2.8 code's [-20 sd, 20 sd] grid: "
            "the README cache was knitted with a build using the identified-set grid",
        },
        "peer_python_honestdid_0_1_1": peer,
    }
    OUT.write_text(json.dumps(out, indent=1))
    print("wrote", OUT)


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else None)
