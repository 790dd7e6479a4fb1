"""Write tests/reference/pretrends_he_wang.json: inputs exported by pretrends_he_wang.R, outputs
copied from the pretrends README (printed values).

Run: Rscript tests/reference/scripts/pretrends_he_wang.R hw.rda > hw.txt
     uv run python tests/reference/scripts/pretrends_he_wang_json.py hw.txt
"""
import json
import sys
from pathlib import Path
inp = json.load(open(sys.argv[1]))
out = {
 "description": "Roth (2022) pretrends R package README, application to He & Wang (2017, AEJ: Applied) Figure 2C",
 "inputs": {"source": "github.com/jonathandroth/pretrends data/HeAndWangResults.rda (HEAD), exported by "
            "tests/reference/scripts/pretrends_he_wang.R", **inp, "referencePeriod": -1},
 "published": {
   "source": "github.com/jonathandroth/pretrends README.md (printed values; mvtnorm::pmvnorm / tmvtnorm numerical integration)",
   "slope_for_power_50": 0.05205871,
   "linear_slope50": {"call": "pretrends(beta, sigma, tVec, -1, deltatrue = slope50 * (tVec + 1))",
       "power": 0.4999776, "bayes_factor": 0.56901, "likelihood_ratio": 0.1057627,
       "t": [-4, -3, -2, 0, 1, 2, 3],
       "deltatrue": [-0.15617613, -0.10411742, -0.05205871, 0.05205871, 0.10411742, 0.15617613, 0.20823484],
       "meanAfterPretesting": [-0.09230764, -0.05555285, -0.02790950, 0.06490184, 0.12084694, 0.16946498, 0.22453827]},
   "quadratic": {"call": "pretrends(..., deltatrue = 0.024 * (tVec + 1)^2)",
       "power": 0.6624282, "bayes_factor": 0.3841516, "likelihood_ratio": 0.4332635}
 }
}
json.dump(out, open(Path(__file__).resolve().parents[1] / 'pretrends_he_wang.json', 'w'), indent=1)
