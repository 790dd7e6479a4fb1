"""Units and scales of the report (pipeline/report/units.py, units: in params, models.registry.SCALES).

Unit strings are checked against the README's "Units and scales" table by hand; the percent
conversion against exact values (log(1.1) log points = +10 %); the real-CLI test runs a
project whose params state another currency and asserts the sentence, the headline table
and the data the figures are drawn from (their ``x_label`` / ``y_label`` columns) use it.
"""

from __future__ import annotations

import html as htmllib
import math
import re

import pandas as pd
import pytest
import yaml

from models import registry
from pipeline.config import validate
from pipeline.report import units as un
from tests._project import cli, make_project, project_params

EUR = {"currency": "EUR", "scale": 1000, "price_base_year": 2015, "columns": {}}


@pytest.mark.parametrize("outcome, units, defl, want", [
    ("exports", EUR, True, "thousand EUR (nominal)"),
    ("exports", {"currency": "SEK", "scale": 1_000_000}, False, "million SEK (nominal)"),
    ("exports", {"currency": "EUR", "scale": 1}, False, "EUR (nominal)"),
    ("exports", None, False, "units of the data (set units.currency)"),
    ("labour_productivity", EUR, True, "thousand EUR per employee (real, 2015 prices)"),
    ("labour_productivity", {**EUR, "price_base_year": None}, True, "thousand EUR per employee (real (deflated))"),
    ("labour_productivity", EUR, False, "thousand EUR per employee (nominal: no deflators given)"),
    ("labour_productivity", None, True, "units of the data per employee"),
    ("wage_per_employee", EUR, True, "thousand EUR per employee (nominal)"),
    ("patents", None, False, "patent applications per firm and year"),
    ("export_status", EUR, True, "probability points (0 to 1)"),
    ("log_labour_productivity", EUR, True, "log points"),
    ("employment", {**EUR, "columns": {"employment": {"unit": "FTE"}}}, True, "FTE"),
    ("exports", {**EUR, "columns": {"exports": {"currency": "USD", "scale": 1}}}, True, "USD (nominal)"),
    ("my_outcome", EUR, True, "units of the data"),
    ("my_sales", {**EUR, "columns": {"my_sales": {"currency": "CHF"}}}, True, "thousand CHF (nominal)"),
])
def test_unit_label(outcome, units, defl, want):
    assert un.unit_label(outcome, "level", units, defl) == want


def test_scales_from_the_registry():
    assert registry.scale("ppml", "pct") == "proportion" and registry.scale("ppml", "post") == "log"
    assert registry.scale("etwfe_poisson", "att") == "level" and registry.scale("etwfe_poisson", "pct") == "proportion"
    assert registry.scale("cs", "ATT") == "level"
    assert un.effect_scale("exports", "ppml", "pct") == "proportional"
    assert un.effect_scale("exports", "cs", "ATT") == "level"
    assert un.effect_scale("patents", "etwfe_poisson", "att") == "level"
    assert un.effect_scale("log_labour_productivity", "cs", "ATT") == "proportional"
    assert un.row_unit("exports", "ppml", "pct", EUR, True) == un.PROPORTION
    assert un.row_unit("exports", "ppml", "post", EUR, True) == un.LOG_POINTS
    assert un.row_unit("exports", "twfe", "post", EUR, True) == "thousand EUR (nominal)"


def test_percent_exact():
    # log(1.1) log points are exactly +10 %; a proportion 0.254 is 25.4 %
    assert un.percent(math.log(1.1), "cs") == pytest.approx(10.0, abs=1e-12)
    assert un.percent(math.log(0.8), "twfe", "post") == pytest.approx(-20.0, abs=1e-12)
    assert un.percent(0.254, "ppml", "pct") == pytest.approx(25.4, abs=1e-12)
    assert un.percent(math.log(1.5), "ppml", "post") == pytest.approx(50.0, abs=1e-12)


def test_digits_per_scale():
    assert un.digits_for("level", 2) == 2 and un.digits_for("level", 0) == 0
    assert un.digits_for("proportional", 0) == 3 and un.digits_for("percent", 3) == 1


def _problems(units, **extra):
    p: list[str] = []
    validate({"units": units, **extra}, p)
    return p


def test_units_params_validated_with_key_value_and_fix():
    assert _problems(EUR, data={"deflators": {"path": "d.csv"}}) == []
    assert _problems({}) == [] and validate({}, [])["units"]["scale"] == 1  # old params files stay valid
    p = _problems({"currency": 978, "scale": 100, "price_base_year": 2015, "bogus": 1,
                   "columns": {"nosuch": {"unit": "x"}, "employment": {"unit": "FTE", "scale": 1000}, "exports": {"curr": "USD"}, "patents": "n"}})
    text = "\n".join(p)
    assert "units.bogus: unknown key" in text
    assert "units.currency: 978" in text and "e.g. EUR" in text
    assert "units.scale: 100" in text and "1000 (thousands)" in text
    assert "units.columns.nosuch: not a panel column or outcome" in text
    assert "units.columns.employment: give either unit" in text
    assert "units.columns.exports.curr: unknown option" in text
    assert "units.columns.patents: 'n'" in text
    assert len(p) == 7
    # a price base year without deflators is allowed (nothing is deflated: the labels say nominal)
    assert _problems({**EUR}) == []
    assert un.unit_label("labour_productivity", "level", EUR, False) == "thousand EUR per employee (nominal: no deflators given)"
    assert _problems("EUR")[0].startswith("units: 'EUR'")


# ------------------------------------------------------------------------------ real CLI


@pytest.fixture(scope="module")
def sek(tmp_path_factory):
    root = tmp_path_factory.mktemp("units")
    params = project_params(outcomes=["log_labour_productivity", "exports"], estimators=["twfe", "cs"],
                            outcome_estimators={"exports": ["cs", "twfe", "ppml"]})
    params["units"] = {"currency": "SEK", "scale": 1000, "price_base_year": 2015}
    params["data"].pop("costs", None)  # the generator's costs are in EUR: under SEK they are refused (exit 2), rightly
    params["report"]["formats"] = ["html"]
    p = make_project(root, params=params, n_firms=600, seed=3)
    assert yaml.safe_load(p.read_text())["units"]["currency"] == "SEK"
    cli("run", "--params", str(p), cwd=root, check=True)
    return root


def test_cli_sentence_and_table_use_the_params_unit(sek):
    page = htmllib.unescape((sek / "reports" / "report.html").read_text())
    text = re.sub(r"<[^>]+>", " ", page)
    assert re.search(r"Exports: according to the Callaway–Sant'Anna estimator, members' outcomes were [\d.,]+ thousand SEK \(nominal\) (higher|lower)", text)
    assert "log points higher" in text or "log points lower" in text
    assert "thousand euro" not in text and "EUR" not in text
    est = page.split('<section id="estimates">')[1].split("</section>")[0]
    rows = [re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "|", r)) for r in re.findall(r"<tr>(.*?)</tr>", est, flags=re.S)]
    ppml = next(r for r in rows if "PPML" in r)
    assert "proportion (0.10 = +10 %)" in ppml
    # PPML rounded on its own scale (3 decimals), not with the exports level rounding
    assert re.search(r"\|-?\d+\.\d{3}\|", ppml), ppml
    cs = next(r for r in rows if "Exports" in r and "Callaway" in r)
    assert "thousand SEK (nominal)" in cs
    # the regression table: a Unit row per column, the PPML column with its own decimals
    tab = pd.read_csv(sek / "reports" / "tables" / "exports.csv", dtype=str, keep_default_na=False).set_index("term")
    assert tab.loc["Unit", "Callaway–Sant'Anna"] == "thousand SEK (nominal)" and tab.loc["Unit", "PPML"] == un.PROPORTION
    assert re.fullmatch(r"-?\d+\.\d{3}\**", tab.loc["ATT (overall)", "PPML"]), tab.loc["ATT (overall)", "PPML"]
    assert re.fullmatch(r"-?[\d,]+\.\d{1,2}\**", tab.loc["ATT (overall)", "Callaway–Sant'Anna"])


def test_cli_figure_axes_carry_the_unit(sek):
    figs = sek / "reports" / "figures"
    es = pd.read_csv(figs / "event_study-exports.csv")
    assert set(es["y_label"]) == {"Effect on Exports, thousand SEK (nominal)"}
    assert "ppml" not in set(es["estimator"])
    es_lp = pd.read_csv(figs / "event_study-log_labour_productivity.csv")
    assert set(es_lp["y_label"]) == {"Effect on Labour productivity (log), log points"}
    lev = pd.read_csv(figs / "forest-level.csv")
    prop = pd.read_csv(figs / "forest-proportional.csv")
    assert "ppml" not in set(lev["estimator"]) and set(lev["outcome"]) == {"exports"}
    assert set(lev["x_label"]) == {"Effect on Exports, thousand SEK (nominal), 95% interval"}
    assert set(prop["outcome"]) == {"exports", "log_labour_productivity"}
    assert set(prop.loc[prop["outcome"] == "exports", "estimator"]) == {"ppml"}
    assert all(x.endswith(", %, 95% interval") for x in prop["x_label"])
    # the proportional figure draws percent: PPML's exp(b) - 1 x 100, a log-outcome ATT as 100 (e^b - 1)
    est = pd.read_csv(sek / "reports" / "estimates.csv")
    pct = est[(est["estimator"] == "ppml") & (est["term"] == "pct") & (est["aggregation"] == "static")].iloc[0]
    row = prop[prop["estimator"] == "ppml"].iloc[0]
    assert row["estimate"] == pytest.approx(100 * pct["estimate"], rel=1e-9)
    assert row["conf_low"] == pytest.approx(100 * pct["conf_low"], rel=1e-9)
    cs = est[(est["outcome"] == "log_labour_productivity") & (est["estimator"] == "cs") & (est["aggregation"] == "simple")].iloc[0]
    row = prop[(prop["estimator"] == "cs") & (prop["outcome"] == "log_labour_productivity")].iloc[0]
    assert row["estimate"] == pytest.approx(100 * math.expm1(cs["estimate"]), rel=1e-9)

