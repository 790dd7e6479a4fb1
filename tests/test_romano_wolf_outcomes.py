"""Romano–Wolf across outcomes from the estimates' influence functions (a joint multiplier
bootstrap with one weight per firm shared across outcomes), through the estimate stage and
into the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from models.inference.multiple_testing import holm, influence_t_boot, romano_wolf
from tests._project import cli, make_project, project_params


def _inf(seed, n=3000, m=1, rho=0.0):
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, m))
    common = rng.normal(size=(n, 1))
    psi = np.sqrt(1 - rho) * z + np.sqrt(rho) * common
    ids = np.array([f"F{i:06d}" for i in range(n)])
    return [{"ids": ids, "psi": psi[:, j], "n": n} for j in range(m)], psi


def test_bootstrap_t_has_unit_variance_and_keeps_the_correlation():
    infs, psi = _inf(1, m=2, rho=0.6)
    ses = [np.sqrt((psi[:, j] ** 2).sum()) / psi.shape[0] for j in range(2)]
    tb = influence_t_boot(infs, ses, draws=4000, seed=5)
    # sd of t* is 1 by construction (se = sqrt(sum psi^2)/n); MC error of an sd from 4000
    # draws is ~1/sqrt(2*4000) = 0.011 -> 0.05 is > 4 MC SEs
    assert np.allclose(tb.std(axis=0), 1.0, atol=0.05)
    emp = np.corrcoef(psi.T)[0, 1]
    assert abs(np.corrcoef(tb.T)[0, 1] - emp) < 0.06  # MC SE of a correlation ~ (1-r^2)/sqrt(B) = 0.01


def test_identical_outcomes_are_one_test_for_romano_wolf_not_for_holm():
    """Perfectly dependent tests: RW gives each the unadjusted bootstrap p, Holm multiplies by m."""
    infs, psi = _inf(2, m=1)
    infs = infs * 3
    se = np.sqrt((psi[:, 0] ** 2).sum()) / psi.shape[0]
    t = np.array([2.0, 2.0, 2.0])
    tb = influence_t_boot(infs, [se] * 3, draws=4000, seed=9)
    rw = romano_wolf(t, tb)
    p_unadj = 2 * stats.norm.sf(2.0)
    assert np.allclose(rw, p_unadj, atol=0.012)  # binomial MC SE sqrt(.045*.955/4000) = 0.0033
    assert np.allclose(holm(np.full(3, p_unadj)), 3 * p_unadj)


def test_draws_depend_on_seed_not_on_row_order():
    infs, _ = _inf(3, m=2)
    a = influence_t_boot(infs, [1.0, 1.0], draws=200, seed=11)
    perm = np.random.default_rng(0).permutation(infs[0]["ids"].size)
    shuffled = [{"ids": f["ids"][perm], "psi": f["psi"][perm], "n": f["n"]} for f in infs]
    np.testing.assert_array_equal(influence_t_boot(shuffled, [1.0, 1.0], draws=200, seed=11), a)
    assert not np.array_equal(influence_t_boot(infs, [1.0, 1.0], draws=200, seed=12), a)


def test_size_under_the_null_is_controlled():
    """FWER of RW at 5% over independent null families: within 2–9% over 200 families
    (binomial 95% band around 5% for 200 draws is about 2–8%)."""
    rej = 0
    for s in range(200):
        infs, psi = _inf(100 + s, n=400, m=3, rho=0.3)
        n = psi.shape[0]
        ses = [np.sqrt((psi[:, j] ** 2).sum()) / n for j in range(3)]
        t = np.array([psi[:, j].sum() / n / ses[j] for j in range(3)])  # estimate - truth = sum(psi)/n
        rw = romano_wolf(t, influence_t_boot(infs, ses, draws=299, seed=s))
        rej += bool((rw < 0.05).any())
    assert 0.02 <= rej / 200 <= 0.09


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("rw")
    params = project_params(outcomes=["log_labour_productivity", "export_status", "exports"], estimators=["cs", "twfe"])
    params["report"]["formats"] = ["html"]
    make_project(tmp, n_firms=500, params=params)
    cli("run", cwd=tmp, check=True)
    return tmp


def test_pipeline_records_rw_and_holm_and_the_report_shows_them(run_dir):
    est = run_dir / "data" / "estimates"
    mts = {}
    for o in ("log_labour_productivity", "export_status", "exports"):
        meta = json.loads((est / f"{o}-cs.json").read_text())
        mts[o] = meta["multiple_testing"]
        assert "multiple_testing" not in json.loads((est / f"{o}-twfe.json").read_text())
    fam = mts["exports"]["family"]
    assert sorted(fam) == ["export_status", "exports", "log_labour_productivity"]
    for mt in mts.values():
        # an adjustment does not lower a p-value beyond the bootstrap's Monte Carlo error (the
        # unadjusted p is normal-theory, RW's is a 999-draw bootstrap: MC SE <= 0.016 at p = .5)
        assert mt["p_romano_wolf"] >= mt["p_value"] - 0.02
        assert mt["draws"] == 999
    html = (run_dir / "reports" / "report.html").read_text()
    assert "Romano–Wolf-adjusted" in html and "Holm-adjusted" in html


def test_influence_function_reproduces_the_reported_se(tmp_path):
    """The IF kept in memory is the one behind the released SE (so the bootstrap t is the
    released t): sqrt(sum psi^2)/n equals the simple ATT's std_error."""
    from models.did import cs
    from tests._did_sim import simulate, spec

    df, _ = simulate(n_units=400, seed=4)
    r = cs.fit(df, spec("y", **dict(cs.OPTIONS)))
    psi = r.influence["psi"]
    se = float(r.tidy.loc[r.tidy["aggregation"] == "simple", "std_error"].iloc[0])
    assert np.sqrt((psi**2).sum()) / r.influence["n"] == pytest.approx(se, rel=1e-10)
