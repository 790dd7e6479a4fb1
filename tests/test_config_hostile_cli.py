"""Hostile and mistaken params.yaml through the real CLI: every bad configuration is exit 5 when
params.yaml is loaded (``cluster-impact check`` and ``run`` alike), with a message naming the
key, the value and the fix, no traceback, and nothing written; column-valued options are exit 5
before any estimate is written. Plus the unit guarantee that every option of every registry
estimator has a rule in its validator."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from _project import cli, copy_project, make_project, project_params

OUTPUT_DIRS = ("data/interim", "data/processed", "data/estimates", "reports")


@pytest.fixture(scope="module")
def sample(tmp_path_factory) -> Path:
    """One small generated project (raw data + light params), copied by every case."""
    root = tmp_path_factory.mktemp("hostile_sample")
    make_project(root, n_firms=100, seed=3)
    return root


def _both(cwd: Path, *commands: str) -> dict[str, subprocess.CompletedProcess]:
    """``cluster-impact <command> --params params.yaml`` for each command, run side by side."""
    import os

    env = dict(os.environ, CLUSTER_IMPACT_QUIET="1", MPLBACKEND="Agg", DVC_NO_ANALYTICS="1")
    procs = {c: subprocess.Popen([sys.executable, "-m", "pipeline", c, "--params", "params.yaml"], cwd=cwd, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for c in commands}
    out = {}
    for c, p in procs.items():
        stdout, stderr = p.communicate(timeout=300)
        out[c] = subprocess.CompletedProcess(p.args, p.returncode, stdout, stderr)
    return out


def _written(root: Path) -> list[str]:
    return [str(f.relative_to(root)) for d in OUTPUT_DIRS if (root / d).exists() for f in (root / d).rglob("*") if f.is_file()]


def _params(**estimate) -> dict:
    p = project_params()
    p["estimate"].update(estimate)
    return p


def _dump(p: dict) -> str:
    return yaml.safe_dump(p, sort_keys=False)


def _with(edit) -> str:
    p = _params()
    edit(p)
    return _dump(p)


def _set(path: str, value):
    def edit(p):
        *head, last = path.split(".")
        d = p
        for k in head:
            d = d.setdefault(k, {})
        d[last] = value
    return edit


def _many(*edits):
    def edit(p):
        for e in edits:
            e(p)
    return edit


BOMB = "\n".join(["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
                 + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]" for i in range(8)]) + "\n"

# id -> (params text or bytes, needles in stderr)
CASES = {
    "estimator_and_variant_options": (
        _with(_many(_set("estimate.cs", {"est_method": "drr"}),
                    _set("estimate.variants", {"cs_x": {"estimator": "cs", "anticipation": -1}}))),
        ["estimate.cs.est_method", "'drr'", "allowed: dr, dr_imp, ipw, reg",
         "estimate.variants.cs_x.anticipation: -1; give an integer >= 0"]),
    "matching_options_and_non_integer_counts": (
        _with(_many(_set("estimate.matching", {"method": "optimal", "ratio": 0, "replace": "no", "trend_lags": 1.5}),
                    _set("estimate.cs", {"biters": 2.5, "anticipation": "one"}))),
        ["estimate.matching.method: 'optimal'", "allowed: nearest, exact, cem",
         "estimate.matching.ratio: 0; give an integer >= 1", "estimate.matching.replace: 'no'", "true or false",
         "estimate.matching.trend_lags: 1.5", "estimate.cs.biters: 2.5", "estimate.cs.anticipation: 'one'", "give an integer"]),
    "duplicate_keys": (_dump(_params()).replace("  alpha: 0.05\n", "  alpha: 0.05\n  alpha: 0.1\n") + "seed: 3\n",
                       ["2 duplicate key(s)", "seed: duplicate key (lines 1 and", "estimate.alpha: duplicate key (lines",
                        "keep one of them"]),
    "alias_bomb": (BOMB, ["anchor &a is not allowed", "line 1", "write the values out"]),
    "latin1": (_dump(_params()).replace("title: Cluster", "title: Clust\u00e9r").encode("latin-1"),
               ["not UTF-8", "byte 0xe9", "line ", "save the file as UTF-8"]),
    "seed_negative": (_with(_set("seed", -1)), ["seed: must be an integer", "got -1", "from 0 to 4294967295", "2**32"]),
    "seed_2_40": (_with(_set("seed", 2**40)), [f"got {2**40}", "from 0 to 4294967295"]),
    "draws_beyond_bound": (
        _with(_many(_set("estimate.cs", {"biters": "1e9"}), _set("estimate.checks", {"ri_draws": 10**6}),
                    _set("ingest.tfp.bootstrap", 10**6), _set("estimate.vcov", {"kind": "wild", "by": ["firm_id"], "draws": 10**6}))),
        ["estimate.cs.biters: '1e9' (a string)", "from 1 to 100000", "memory and run time grow",
         "estimate.checks.ri_draws: 1000000", "ingest.tfp.bootstrap: 1000000", "estimate.vcov.draws", "99 to 100000"]),
    "container_types": (
        _with(_many(_set("data", [1, 2]), _set("columns", ["x"]), _set("report.labels", ["a", "b"]),
                    _set("ingest.derive", "tfp"), _set("estimate.outcomes", "lemp"))),
        ["data: [1, 2] (a list); give a mapping", "columns: ['x'] (a list); give a mapping",
         "report.labels: ['a', 'b'] (a list); give a mapping", "ingest.derive: 'tfp' (a string); give a list, e.g. [tfp]",
         "estimate.outcomes: 'lemp' (a string); give a list, e.g. [lemp]"]),
    "estimate_is_a_list": (_with(_set("estimate", ["x"])), ["estimate: ['x'] (a list); give a mapping"]),
    "booleans_as_strings_and_report": (
        _with(_many(_set("estimate.cs", {"bstrap": "yes"}), _set("ingest.drop_missing_outcomes", "yes"),
                    _set("report.formats", ["html", "docx"]), _set("report.labels", {"exports": 3}), _set("report.title", 2024))),
        ["estimate.cs.bstrap: 'yes' (a string); give true or false",
         "ingest.drop_missing_outcomes: 'yes' (a string); give true or false",
         "report.formats: 'docx'", "allowed: html, pdf", "report.labels.exports: 3", "report.title: 2024"]),
    # build_groups' own options, checked at load (they used to fail only when build_groups started)
    "build_groups_options": (
        _with(lambda p: p["build_groups"].update(min_pre_periods=-1, spillover={"by": "ring"}, overlap="both")),
        ["build_groups.min_pre_periods: a whole number >= 0, got -1", "build_groups.spillover.radius: a positive distance",
         "build_groups.overlap: 'both'; allowed: exclude, control, arm"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_params_exit_5_at_load(sample, tmp_path, case):
    text, needles = CASES[case]
    root = copy_project(sample, tmp_path / "p")
    target = root / "params.yaml"
    target.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    for command, r in _both(root, "check", "run").items():
        _assert_exit_5(r, needles, command)
    assert _written(root) == []


def test_utf8_bom_is_accepted(sample, tmp_path):
    root = copy_project(sample, tmp_path / "p")
    (root / "params.yaml").write_bytes(b"\xef\xbb\xbf" + (root / "params.yaml").read_bytes())
    r = cli("check", "--params", "params.yaml", cwd=root)
    assert r.returncode == 0, r.stderr


COLUMN_CASES = {
    "matching_covariate": ({"estimators": ["matching"], "matching": {"covariates": ["nope", "sector"]}},
                           ["estimate.matching.covariates: 'nope' is not a column", "numeric columns:", "log_employment",
                            "estimate.matching.covariates: 'sector' is a column", "not numeric"]),
    "placebo_outcome": ({"estimators": ["checks"], "checks": {"placebo_outcome": "nope", "checks": ["placebo_outcome"]}},
                        ["estimate.checks.placebo_outcome: 'nope' is not a column"]),
    "weighting_trend_typo": ({"estimators": ["weighting"], "weighting": {"trends": ["log_labour_productivty"]}},
                             ["estimate.weighting.trends: 'log_labour_productivty'", "did you mean 'log_labour_productivity'"]),
    "several_at_once": ({"estimators": ["matching", "heterogeneity"],
                         "matching": {"exact": ["secto"], "cutpoints": {"empl": 3}},
                         "heterogeneity": {"by": ["colour"]}, "vcov": {"kind": "cluster", "by": ["regio"]}},
                        ["estimate.matching.exact: 'secto'", "did you mean 'sector'",
                         "estimate.matching.cutpoints: 'empl'", "estimate.heterogeneity.by: 'colour'",
                         "estimate.vcov.by: 'regio'"]),
}


def _column_params(*cases: str) -> dict:
    est: dict = {"outcomes": ["log_labour_productivity"], "estimators": []}
    for c in cases:
        for k, v in COLUMN_CASES[c][0].items():
            est[k] = est[k] + v if k == "estimators" else v
    return _params(**est)


def _assert_exit_5(r, needles, command):
    assert r.returncode == 5, (command, r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr, (command, r.stderr)
    for needle in needles:
        assert needle in r.stderr, (command, needle, r.stderr)


@pytest.mark.parametrize("case", list(COLUMN_CASES))
def test_unknown_column_options_are_exit_5_in_check(sample, tmp_path, case):
    """check predicts the panel's columns from the firm file's header and params."""
    root = copy_project(sample, tmp_path / "p")
    (root / "params.yaml").write_text(_dump(_column_params(case)))
    _assert_exit_5(cli("check", "--params", "params.yaml", cwd=root), COLUMN_CASES[case][1], "check")
    assert _written(root) == []


def test_unknown_column_options_are_exit_5_before_any_estimate(sample, tmp_path):
    """run: ingest and build_groups run, then the estimate stage reads the panel's schema and
    stops with every unknown column at once, before fitting or writing any estimate."""
    root = copy_project(sample, tmp_path / "p")
    cases = [c for c in COLUMN_CASES if c != "several_at_once"]
    p = _column_params(*cases)
    p["estimate"]["matching"]["exact"] = ["secto"]  # several options of one estimator
    (root / "params.yaml").write_text(_dump(p))
    r = cli("run", "--params", "params.yaml", cwd=root)
    needles = [n for c in cases for n in COLUMN_CASES[c][1]] + ["estimate.matching.exact: 'secto'", "data/processed/panel.parquet"]
    _assert_exit_5(r, needles, "run")
    assert (root / "data" / "processed" / "panel.parquet").exists()
    est = root / "data" / "estimates"
    assert not est.exists() or not any(est.iterdir())


# ---- unit: every option of every registry estimator is validated ------------------------------

def test_every_registry_option_has_a_rule_that_rejects_a_bad_value():
    from models import registry

    for key in registry.REGISTRY:
        mod = registry.get(key)
        assert set(mod.RULES) == set(mod.OPTIONS), (key, set(mod.OPTIONS) ^ set(mod.RULES))
        assert mod.validate_options({}) == [], key  # the defaults are valid
        for opt, rule in mod.RULES.items():
            problems = mod.validate_options({opt: rule.bad})
            assert any(p.startswith(f"estimate.{key}.{opt}:") for p in problems), (key, opt, rule.bad, problems)
            where = f"estimate.variants.v_{key}"
            assert any(p.startswith(f"{where}.{opt}:") for p in mod.validate_options({opt: rule.bad}, where=where))
        assert mod.validate_options({"no_such_option": 1}), key


def test_tfp_rules_match_the_production_module():
    from models import options
    from models.production import tfp

    assert set(options.TFP_METHODS) == {*tfp.METHODS, "ols"}
    assert set(options.TFP_OUTPUTS) == set(tfp.OUTPUTS)
