"""Synthetic DiD (registry key ``sdid``; Arkhangelsky, Athey, Hirshberg, Imbens & Wager 2021).

* = R synthdid 0.0.9 on California Proposition 99 (tests/reference/synthdid_prop99.json, script
  tests/reference/scripts/synthdid_prop99.R, data tests/data/california_prop99.csv): estimate
  (published -15.6, AER Table 1), unit and time weights, the placebo SE replayed with R's own
  permutations, the jackknife SE of a two-treated design; the placebo SE from our own draws
  within Monte Carlo error of R's;
* recovers simulated truth on a region-level panel aggregated from firms, with interactive
  fixed effects (plain DiD is biased), staggered in two cohorts;
* the aggregation rule (treated share), balanced-panel refusal, option validation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.did import _sdid, sdid
from models.errors import DesignError
from tests._did_sim import spec, stored

DATA = __import__("pathlib").Path(__file__).parent / "data" / "california_prop99.csv"
# Our Frank-Wolfe replays synthdid's iterations step for step (same start, same vertex choice,
# same exact line search, same stopping rule), so the two differ only by floating-point
# summation order (observed < 1e-14 relative). Had the paths differed, the stopping rule
# (objective decrease < (1e-5 sigma)^2) would bound agreement only near 1e-6 relative; 1e-9
# separates "same algorithm" from "same optimum, other path".
TOL = 1e-9


@pytest.fixture(scope="module")
def prop99():
    ref = stored("synthdid_prop99")
    df = pd.read_csv(DATA, sep=";").rename(columns={"State": "firm_id", "Year": "year", "PacksPerCapita": "packs"})
    return ref, df


def _firm_panel(df, treated):
    return df.assign(first_treat=np.where(df["firm_id"].isin(treated), 1989, 0))


def _matrices(ref, df):
    W = df.pivot(index="firm_id", columns="year", values="packs").loc[ref["units"]]
    Y = W.to_numpy(float)
    return Y[: ref["N0"]], Y[ref["N0"]:]


def test_prop99_estimate_and_weights_equal_r_synthdid(prop99):
    ref, df = prop99
    r = sdid.fit(_firm_panel(df, ["California"]), spec("packs", level="firm"))
    att = r.tidy.set_index("term").loc["ATT"]
    assert abs(att.estimate / ref["estimate"] - 1) < TOL and round(att.estimate, 2) == -15.60  # published -15.6
    assert att.n_obs == 39 * 31 and att.n_treated == 1 and r.meta["n_control_units"] == 38
    assert abs(r.meta["noise_level"]["1989"] / ref["noise_level"] - 1) < TOL
    assert abs(r.meta["zeta_omega"]["1989"] / ref["zeta_omega"] - 1) < TOL
    lam = r.tables["sdid_time_weights"]["weight"].to_numpy()
    assert np.abs(lam - ref["lambda"]).max() < TOL
    assert "sdid_unit_weights" not in r.tables  # firm level: no firm-level rows
    Y0, Y1 = _matrices(ref, df)
    c = _sdid.Cohort(Y1, ref["T0"])
    _sdid.fit(Y0, [c])
    assert np.abs(c.omega - ref["omega"]).max() < TOL
    # uniform weights give plain DiD (synthdid's did_estimate)
    assert abs(r.meta["did_estimate"] / ref["did"] - 1) < TOL


def test_prop99_placebo_se_with_r_permutations(prop99):
    ref, df = prop99
    Y0, Y1 = _matrices(ref, df)
    c = _sdid.Cohort(Y1, ref["T0"])
    _sdid.fit(Y0, [c])
    perms = np.asarray(ref["placebo_perms"]) - 1  # R's 1-based draws under set.seed(1)
    se, n = _sdid.placebo_se(Y0, [c], ref["placebo_replications"], None, perms=perms)
    assert n == 200 and abs(se[-1] / ref["se_placebo"] - 1) < TOL and se[0] == se[-1]


def test_prop99_placebo_se_own_draws_within_monte_carlo_error(prop99):
    ref, df = prop99
    r = sdid.fit(_firm_panel(df, ["California"]), spec("packs", level="firm", replications=1000))
    se = r.tidy.set_index("term").loc["ATT"].std_error
    # numpy's and R's draws differ; an SD estimated from R draws has relative SD about
    # 1/sqrt(2(R-1)): 5.0% for R's 200, 2.2% for our 1000, 5.5% for the difference; 4 x 5.5%
    assert abs(se / ref["se_placebo"] - 1) < 0.22, se
    assert r.meta["replications"] == 1000 and r.meta["seed"] == 0 and r.meta["vcov"] == "sdid placebo"
    again = sdid.fit(_firm_panel(df, ["California"]), spec("packs", level="firm", replications=1000))
    assert again.tidy.equals(r.tidy)  # draws from the seed


def test_inference_verdict_is_the_estimators_own(prop99):
    from pipeline.report.inference_checks import verdict

    _, df = prop99
    r = sdid.fit(_firm_panel(df, ["California"]), spec("packs", level="firm", replications=20))
    v = verdict(r.meta)
    assert v["verdict"] == "note" and v["sentence"].startswith("Standard errors from 20 placebo re-assignments")
    assert "38 control firms" in v["sentence"] and "Only 1 treated firm:" in v["sentence"]
    assert r.meta["n_treated_clusters"] is None  # the estimate stage's firm-cluster annotation is skipped


def test_prop99_two_treated_jackknife_equals_r(prop99):
    ref, df = prop99
    two = ref["two_treated"]
    r = sdid.fit(_firm_panel(df, two["treated"]), spec("packs", level="firm", vcov="jackknife"))
    att = r.tidy.set_index("term").loc["ATT"]
    assert abs(att.estimate / two["estimate"] - 1) < TOL
    assert abs(att.std_error / two["se_jackknife"] - 1) < TOL
    assert r.meta["replications"] is None and r.meta["vcov"] == "sdid jackknife"


def test_prop99_single_treated_refuses_jackknife_and_bootstrap(prop99):
    _, df = prop99
    for m in ("jackknife", "bootstrap"):
        with pytest.raises(DesignError, match="vcov: placebo"):
            sdid.fit(_firm_panel(df, ["California"]), spec("packs", level="firm", vcov=m))


def simulate_regions(seed, n_regions=40, firms=8, tau=1.0, cohorts=((2000, 3), (2003, 3))):
    """Firm panel 1990-2007 whose region means follow y_rt = a_r + b_t + gamma_r f_t + tau D_rt
    + e_rt: interactive fixed effects with treated loadings above the controls' mean, so DiD
    on region means is biased by (mean gamma_tr - mean gamma_co) x (change in f)."""
    rng = np.random.default_rng(seed)
    years = np.arange(1990, 2008)
    f = 0.3 * (years - 1990) + np.sin(years / 2.0)
    n_tr = sum(n for _, n in cohorts)
    g = np.zeros(n_regions, dtype=int)
    g[:n_tr] = np.repeat([c for c, _ in cohorts], [n for _, n in cohorts])
    gamma = np.where(g > 0, rng.uniform(1.2, 1.8, n_regions), rng.uniform(0.0, 2.0, n_regions))
    a = rng.normal(0, 1, n_regions)
    rows = []
    for r in range(n_regions):
        for i in range(firms):
            fe = rng.normal(0, 0.5)
            for k, t in enumerate(years):
                D = g[r] > 0 and t >= g[r]
                y = a[r] + 0.1 * k + gamma[r] * f[k] + tau * D + fe + rng.normal(0, 0.3)
                rows.append((f"F{r:02d}{i:02d}", t, f"R{r:02d}", g[r], y))
    df = pd.DataFrame(rows, columns=["firm_id", "year", "region", "first_treat", "y"])
    return df


def test_recovers_truth_where_did_is_biased():
    tau = 1.0
    df = simulate_regions(3, tau=tau)
    r = sdid.fit(df, spec("y"))  # defaults: level region, placebo SE
    att = r.tidy.set_index("term").loc["ATT"]
    assert r.meta["level"] == "region" and r.meta["n_treated_units"] == 6 and r.meta["n_control_units"] == 34
    assert r.meta["cohorts"] == [2000, 2003] and r.meta["cohort_weights"] == {"2000": 24 / 39, "2003": 15 / 39}
    assert abs(att.estimate - tau) < 0.2 * abs(r.meta["did_estimate"] - tau)
    assert att.n_treated == 48 and att.n_obs == len(df)
    g = r.tidy.set_index("term")
    assert abs(g.loc["ATT", "estimate"] - (24 * g.loc["cohort::2000", "estimate"] + 15 * g.loc["cohort::2003", "estimate"]) / 39) < 1e-12
    uw = r.tables["sdid_unit_weights"]
    assert set(uw["cohort"]) == {2000, 2003} and np.allclose(uw.groupby("cohort")["weight"].sum(), 1.0)
    # Monte Carlo over 12 panels (jackknife SEs: deterministic, cheap): every estimate within
    # 2 SE of the truth (observed max 1.2 SE); the mean error (observed +0.06: the ridge on
    # omega shrinks toward DiD's uniform weights) small next to DiD's bias (observed +1.40)
    err = []
    for s in range(12):
        rr = sdid.fit(simulate_regions(100 + s, tau=tau), spec("y", vcov="jackknife"))
        a = rr.tidy.set_index("term").loc["ATT"]
        err.append((a.estimate - tau, a.std_error, rr.meta["did_estimate"] - tau))
    err = np.array(err)
    assert (np.abs(err[:, 0]) < 2 * err[:, 1]).all(), err
    assert err[:, 2].mean() > 1.0 and abs(err[:, 0].mean()) < 0.1 * err[:, 2].mean(), err.mean(axis=0)


def test_cohort_rows_are_single_cohort_sdids_on_the_never_treated():
    """The staggered rule by hand: each cohort row is the one-cohort SDID of that cohort's
    regions against the never-treated regions alone (the other cohort removed)."""
    df = simulate_regions(11)
    r = sdid.fit(df, spec("y", vcov="jackknife")).tidy.set_index("term")
    for g in (2000, 2003):
        alone = sdid.fit(df.loc[df["first_treat"].isin([0, g])], spec("y", vcov="jackknife")).tidy.set_index("term")
        assert abs(r.loc[f"cohort::{g}", "estimate"] - alone.loc["ATT", "estimate"]) < 1e-12
        assert abs(r.loc[f"cohort::{g}", "std_error"] - alone.loc["ATT", "std_error"]) < 1e-12


def test_level_must_be_a_unit_column():
    from models.errors import BadInputError, ConfigError

    with pytest.raises(ConfigError, match="level: 'year' is a period"):
        sdid.fit(simulate_regions(5), spec("y", level="year"))
    with pytest.raises(BadInputError, match="level: 'nuts2' is not a column"):
        sdid.fit(simulate_regions(5), spec("y", level="nuts2"))
    # the unit id column is the firm level: no firm-level unit-weight rows
    r = sdid.fit(simulate_regions(5, firms=1), spec("y", level="firm_id", vcov="jackknife"))
    assert r.meta["level"] == "firm" and list(r.tables) == ["sdid_time_weights"]


def test_wild_vcov_refused():
    from models.errors import UnsupportedVcovError

    with pytest.raises(UnsupportedVcovError, match="'sdid' does not support vcov 'crv3"):
        sdid.fit(simulate_regions(5), spec("y", kind="crv3"))


def test_treated_share_rule_and_partly_treated_regions():
    df = simulate_regions(5)
    # region R39 (a control): 2 of its 8 firms join in 2001 -> share 0.25, never above 0.5
    part = df["firm_id"].isin(["F3900", "F3901"])
    df.loc[part, "first_treat"] = 2001
    r = sdid.fit(df, spec("y"))
    assert r.meta["dropped"]["partly_treated_units"] == 1 and r.meta["n_control_units"] == 33
    # at treated_share 0.2 the same region is treated from 2001 (a cohort of its own)
    r2 = sdid.fit(df, spec("y", treated_share=0.2))
    assert r2.meta["cohorts"] == [2000, 2001, 2003] and "partly_treated_units" not in r2.meta["dropped"]


def test_unbalanced_aggregate_refused_naming_units():
    df = simulate_regions(5)
    df = df.loc[~((df["region"] == "R07") & (df["year"] == 1995))]
    with pytest.raises(DesignError, match=r"balanced panel; 1 values of 'region'.*first: R07"):
        sdid.fit(df, spec("y"))
    with pytest.raises(DesignError, match="level: region"):
        sdid.fit(simulate_regions(5).iloc[1:], spec("y", level="firm"))  # firm F0000 lacks 1990


def test_bootstrap_runs_and_is_seeded():
    df = simulate_regions(7)
    a = sdid.fit(df, spec("y", vcov="bootstrap", replications=50))
    b = sdid.fit(df, spec("y", vcov="bootstrap", replications=50))
    assert a.tidy.equals(b.tidy) and np.isfinite(a.tidy["std_error"]).all()


@pytest.mark.parametrize("opts,needle", [
    ({"vcov": "wild"}, "estimate.sdid.vcov"), ({"treated_share": 1.0}, "estimate.sdid.treated_share"),
    ({"replications": 1}, "estimate.sdid.replications"), ({"level": ["region"]}, "estimate.sdid.level"),
    ({"lvl": "region"}, "estimate.sdid.lvl: unknown option"),
])
def test_options_validated(opts, needle):
    problems = sdid.validate_options(opts)
    assert any(p.startswith(needle) for p in problems), problems
