"""Page one of the report (pipeline.report.headline): the verdict rules at their
boundaries, the outcome order, the display scales (hand-computed), and the rows built from a
hand-made set of released headline rows (preference order, same-scale range, lights)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.report import headline as hl
from pipeline.report.build import PREFERRED


@pytest.mark.parametrize("p, alpha, light", [
    (0.10, 0.05, "green"),  # p = 2 alpha: no evidence (the Pre-trends section's rule)
    (0.0999, 0.05, "amber"),
    (0.05, 0.05, "amber"),  # p = alpha is not a rejection at alpha
    (0.0499, 0.05, "red"),
    (0.15, 0.10, "amber"),  # judged at the run's alpha, not at 5%
    (0.21, 0.10, "green"),
    (float("nan"), 0.05, "none"),
    (None, 0.05, "none"),
])
def test_pretrend_light(p, alpha, light):
    assert hl.pretrend_light(p, alpha) == light


@pytest.mark.parametrize("bd, withheld, light", [
    (1.0, False, "green"),  # Rambachan & Roth's benchmark: violations as large as the largest pre-period one
    (2.5, False, "green"),
    (0.999, False, "amber"),
    (0.43, False, "amber"),
    (0.0, False, "red"),  # not significant even under exact parallel trends
    (None, False, "none"),
    (0.43, True, "withheld"),  # disclosure control withheld the analysis: its value is not used
])
def test_sensitivity_light(bd, withheld, light):
    assert hl.sensitivity_light(bd, withheld) == light


def test_disclosure_light_and_answer():
    assert hl.disclosure_light(False, 10, 0) == "green"
    assert hl.disclosure_light(False, 10, 3) == "amber"
    assert hl.disclosure_light(True, 10, 10) == "red"
    assert hl.answer(0.1, 0.049, 0.05) == "higher"
    assert hl.answer(-0.1, 0.049, 0.05) == "lower"
    assert hl.answer(0.1, 0.05, 0.05) == "not significant"
    assert hl.answer(0.1, 0.07, 0.10) == "higher"
    assert hl.answer(None, 0.01, 0.05) == "withheld"


def test_outcome_order_productivity_exports_patents_rest():
    got = hl.outcome_order(["patent_status", "employment", "exports", "log_tfp", "patents", "export_status", "log_labour_productivity", "rd"])
    assert got == ["log_labour_productivity", "log_tfp", "exports", "export_status", "patents", "patent_status", "employment", "rd"]


def test_display_scales_by_hand():
    assert hl.scale("log_labour_productivity", "cs") == "percent"
    assert hl.scale("patents", "ppml") == "percent"  # proportional estimator on a count
    assert hl.scale("patents", "cs") == "level"
    assert hl.scale("export_status", "twfe") == "pp"
    # 100 (e^0.0723 - 1) = 7.4978...% -> +7.5%; e^-0.2 - 1 = -18.127% -> -18.1%
    assert 100 * (math.exp(0.0723) - 1) == pytest.approx(7.4978, abs=1e-4)
    assert hl.show(hl.value(0.0723, "percent", "cs"), "percent") == "+7.5%"
    assert hl.show(hl.value(-0.2, "percent", "cs"), "percent") == "-18.1%"
    # a PPML 'pct' term is already exp(b) - 1: 0.25 is +25.0%, not 100 (e^0.25 - 1) = 28.4%
    assert hl.scale("patents", "ppml", "pct") == "percent"
    assert hl.show(hl.value(0.25, "percent", "ppml", "pct"), "percent") == "+25.0%"
    assert hl.show(hl.value(0.25, "percent", "ppml", "post"), "percent") == "+28.4%"
    # the ETWFE Poisson 'att' margin is a level effect (models.registry.SCALES)
    assert hl.scale("patents", "etwfe_poisson", "att") == "level"
    assert hl.show(hl.value(0.0521, "pp"), "pp") == "+5.2 pp"
    assert hl.show(77.84, "level") == "+77.84"
    assert hl.show(-0.149, "level") == "-0.149"
    assert hl.show(np.nan, "level") == ""


def _heads() -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = [
        # outcome, estimator, estimate, lo, hi, p, suppressed
        ("log_labour_productivity", "twfe", 0.06, 0.04, 0.08, 0.001, False),
        ("log_labour_productivity", "cs", 0.07, 0.05, 0.09, 0.001, False),
        ("log_labour_productivity", "sunab", 0.08, 0.05, 0.11, 0.001, False),
        ("patents", "twfe", 0.10, 0.02, 0.18, 0.01, False),
        ("patents", "cs", np.nan, np.nan, np.nan, np.nan, True),  # withheld: the next preferred released one is shown
        ("patents", "imputation", 0.12, 0.03, 0.21, 0.01, False),
        ("patents", "ppml", 0.40, 0.20, 0.60, 0.001, False),  # proportional: not in the level range
        ("employment", "cs", 0.5, -0.5, 1.5, 0.30, False),
    ]
    h = pd.DataFrame(rows, columns=["outcome", "estimator", "estimate", "conf_low", "conf_high", "p_value", "suppressed"])
    h["aggregation"] = "simple"
    dyn = pd.DataFrame({"outcome": "log_labour_productivity", "estimator": "event_study", "aggregation": "dynamic", "estimate": [0.01, 0.02],
                        "conf_low": 0.0, "conf_high": 0.03, "p_value": 0.5, "suppressed": [False, True]})
    return h, pd.concat([h, dyn], ignore_index=True)


def test_rows_from_released_headline_rows():
    heads, effects = _heads()
    metas = {
        "log_labour_productivity-cs": {"pretrend": {"p_value": 0.55}},
        "log_labour_productivity-event_study": {"pretrend": {"p_value": 0.01}, "sensitivity": {"breakdown_mbar": 0.43}},
        "patents-imputation": {"pretrend": {"p_value": 0.07}},
        "employment-cs": {"sensitivity": {"not_run": "too few pre-periods"}},
    }
    lab = {"log_labour_productivity": "Labour productivity (log)", "patents": "Patent applications", "employment": "Employment"}
    rows = hl.rows(effects, heads, metas, PREFERRED, lab, lambda e: {"cs": "CS", "imputation": "BJS", "event_study": "ES"}.get(e, e), 0.05, set(),
                   unit_of=lambda r: "count" if r["outcome"] == "patents" else "?")
    assert [r["key"] for r in rows] == ["log_labour_productivity", "patents", "employment"]
    lp, pa, em = rows
    # preferred: cs; percent of log points; range over the three linear estimators on this scale
    assert lp["estimator"] == "CS" and lp["effect"] == "+7.3%" and lp["ci"] == "+5.1% to +9.4%"
    assert lp["range"] == "+6.2% to +8.3% (3)"
    assert lp["answer"] == "higher"
    # pre-trend light from the preferred estimator (p = 0.55), not the event study's p = 0.01
    assert lp["lights"]["pretrend"] == {"light": "green", "text": "p = 0.55", "source": ""}
    # HonestDiD ran on the event study only: its breakdown, named as the light's source
    assert lp["lights"]["sensitivity"]["light"] == "amber" and lp["lights"]["sensitivity"]["source"] == "ES"
    assert lp["lights"]["disclosure"] == {"light": "amber", "text": "1/5 withheld", "source": ""}
    # CS withheld -> imputation (next in PREFERRED) shown, level scale, range without PPML
    assert pa["estimator"] == "BJS" and pa["effect"] == "+0.120" and pa["range"] == "+0.100 to +0.120 (2)" and pa["unit"] == "count"
    assert lp["unit"] == "%"
    assert pa["lights"]["pretrend"]["light"] == "amber" and pa["lights"]["disclosure"]["light"] == "amber"
    assert pa["lights"]["sensitivity"]["light"] == "none"
    # not significant; 'not_run' sensitivity counts as not computed; a single estimator has no range
    assert em["answer"] == "not significant" and em["range"] == "" and em["lights"]["sensitivity"]["light"] == "none"
    assert em["lights"]["pretrend"]["light"] == "none"
    # withheld sensitivity is shown as withheld
    rows2 = hl.rows(effects, heads, metas, PREFERRED, lab, str, 0.05, {"log_labour_productivity-event_study"})
    assert rows2[0]["lights"]["sensitivity"] == {"light": "withheld", "text": "withheld", "source": "event_study"}
    assert "Labour productivity (log): sensitivity from ES" in hl.sources_note(rows)


def test_every_estimate_of_an_outcome_withheld():
    heads, effects = _heads()
    h = heads[heads["outcome"] == "employment"].assign(estimate=np.nan, conf_low=np.nan, conf_high=np.nan, p_value=np.nan, suppressed=True)
    r = hl.rows(h, h, {}, PREFERRED, {}, str, 0.05, set())[0]
    assert r["effect"] == "withheld" and r["ci"] == "" and r["answer"] == "withheld" and r["lights"]["disclosure"]["light"] == "red"


def test_caveats_three_of_distinct_kinds_in_priority_order():
    got = hl.caveats([("synthetic", "A."), ("prices", ""), ("dropped", "B."), ("dropped", "B2."), ("failed", "C."), ("withheld", "D.")])
    assert got == ["A.", "B.", "C."]
    assert hl.caveats([("assumption", "Only.")]) == ["Only."]
