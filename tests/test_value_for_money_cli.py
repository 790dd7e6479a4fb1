"""data.costs through the real CLI: `cluster-impact run` on a small generated project writes the
value-for-money table and report section with the numbers; a bad costs file stops ingest with
exit 2 naming file, column, count, first keys and the fix, and nothing is written; bad
value_for_money options are exit 5 at load."""

from __future__ import annotations

import pandas as pd
import pytest
import yaml

from tests._project import cli, make_project, project_params


def _params(**vfm):
    p = project_params(outcomes=["log_labour_productivity"], estimators=["cs"])
    p["report"]["formats"] = ["html"]
    p["value_for_money"] = {"totals": ["exports", "real_value_added", "employment"], **vfm}
    return p


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("vfm")
    make_project(root, n_firms=1500, seed=4, params=_params(), selection="random")
    res = cli("run", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    return root


def test_table_and_section_hold_the_numbers(run):
    t = pd.read_csv(run / "reports/tables/value_for_money.csv")
    costs = pd.read_csv(run / "data/raw/costs.csv")
    row = t.set_index(["quantity", t["outcome"].fillna("")])
    # the nominal total is the costs file's sum (rounding of the CSV's 10 significant digits only)
    assert row.loc[("costs", ""), "estimate"] == pytest.approx(costs["amount"].sum(), rel=1e-9)
    truth = pd.read_csv(run / "data/raw/truth.csv")
    tx = truth[(truth["outcome"] == "exports") & (truth["group"] == "member") & (truth["cohort"] > 2008)]
    ex = row.loc[("total_effect", "exports")]
    # N_{g,t}: the treated firm-years the truth counts (balanced simulated panel)
    assert int(ex["firm_years"]) == int(tx["n_firms"].sum())
    # recovery: the simulated total effect on exports, sum over treated firm-years of Y(1) - Y(0)
    true_total = float((tx["att"] * tx["n_firms"]).sum())
    assert abs(ex["estimate"] - true_total) < 2 * ex["std_error"], (ex["estimate"], true_total, ex["std_error"])
    assert ex["conf_low"] < true_total < ex["conf_high"]
    # the BCR interval is the PV-benefit interval over PV(costs)
    pvb, pvc, bcr = row.loc[("pv_benefits", "real_value_added")], row.loc[("pv_costs", "")], row.loc[("benefit_cost_ratio", "real_value_added")]
    assert bcr["estimate"] == pytest.approx(pvb["estimate"] / pvc["estimate"], rel=1e-8)
    assert bcr["conf_low"] == pytest.approx(pvb["conf_low"] / pvc["estimate"], rel=1e-8)
    cpj = row.loc[("cost_per_job", "employment")]
    assert str(cpj["interval"]).startswith("Fieller")
    html = (run / "data/report/report.html").read_text()
    sec = html[html.index('id="value_for_money"'):html.index('id="estimates"')]
    assert f"The programme cost {row.loc[('costs_real', ''), 'estimate']:,.0f}" in sec
    assert "cost per additional job-year" in sec and "Benefit-cost ratio" in sec and "Green Book" in sec
    assert f"over {int(pvb['firm_years']):,} treated firm-years" in sec


def _bad_project(tmp_path, edit):
    make_project(tmp_path, n_firms=300, seed=6, params=_params())
    path = tmp_path / "data/raw/costs.csv"
    c = pd.read_csv(path, dtype=str, keep_default_na=False)
    c = edit(c)
    c.to_csv(path, index=False)
    return c


def test_bad_costs_file_exit_2_names_file_column_count_keys_and_fix(tmp_path):
    def edit(c):
        c.loc[0, "amount"] = "lots"
        c.loc[1, "initiative"] = "CL99"
        c.loc[2, "amount"] = "-5.0"
        c.loc[3, "amount"] = "-7.0"
        c.loc[4, "year"] = ""
        return c

    c = _bad_project(tmp_path, edit)
    res = cli("ingest", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    err = res.stderr
    assert "data/raw/costs.csv, column 'amount': 1 value(s) are not numbers (e.g. 'lots')" in err
    assert f"column 'initiative': 1 row(s) whose initiative is no cluster_id of the membership register; first keys (initiative, year): (CL99, {c.loc[1, 'year']})" in err
    assert f"column 'amount': 2 negative amount(s); first keys (initiative, year): ({c.loc[2, 'initiative']}, {c.loc[2, 'year']})" in err
    assert "column 'year': 1 row(s) without a year" in err
    assert err.count("Fix:") >= 4
    assert not (tmp_path / "data/interim/panel.parquet").exists() and not (tmp_path / "data/interim/costs.parquet").exists()


def test_costs_in_another_currency_or_without_a_column(tmp_path):
    _bad_project(tmp_path, lambda c: c.assign(currency=["USD"] * 2 + list(c["currency"][2:])))
    res = cli("ingest", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "column 'currency': 2 row(s) not in the panel's currency 'EUR' (units.currency)" in res.stderr
    _bad_project(tmp_path, lambda c: c.drop(columns=["currency"]))
    res = cli("ingest", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 2 and "costs.csv: column(s) currency not found" in res.stderr


def test_bad_value_for_money_options_exit_5(tmp_path):
    p = _params(leakage=1.5, discount="4%", totals=["log_tfp"], benefit="real_value_added")
    p["ingest"]["derive"] = [d for d in p["ingest"]["derive"] if d not in ("real_value_added",)]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = cli("check", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 5, res.stderr
    assert "value_for_money.leakage: 1.5; give a number >= 0 and < 1" in res.stderr
    assert "value_for_money.discount: '4%'" in res.stderr
    assert "value_for_money: 'real_value_added' is neither a mapped column" in res.stderr
    assert "value_for_money: 'log_tfp' is neither" in res.stderr
