"""Named estimator variants (``estimate.variants``): the same registry estimator twice in one
run with other options, covariates or control group (e.g. Callaway–Sant'Anna without and with
covariates), through the real CLI."""

from __future__ import annotations

import json

import pandas as pd
import pytest
import yaml

from pipeline.config import load_params
from models.errors import ConfigError

from tests._project import cli, make_project, project_params

COVS = ["log_employment", "log_capital"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("variants")
    params = project_params(
        outcomes=["log_labour_productivity"],
        estimators=["cs", "cs_x", "cs_ny"],
        variants={
            "cs_x": {"estimator": "cs", "covariates": COVS, "est_method": "dr"},
            "cs_ny": {"estimator": "cs", "control_group": "notyettreated"},
        },
    )
    params["report"]["formats"] = ["html"]
    make_project(tmp, n_firms=600, params=params)
    cli("run", cwd=tmp, check=True)
    return tmp


def test_variants_are_separate_results_with_their_own_specs(run_dir):
    est = run_dir / "data" / "estimates"
    metas = {k: json.loads((est / f"log_labour_productivity-{k}.json").read_text()) for k in ("cs", "cs_x", "cs_ny")}
    assert metas["cs"]["spec"]["covariates"] == []
    assert metas["cs_x"]["spec"]["covariates"] == COVS
    assert metas["cs_x"]["base_estimator"] == "cs" and metas["cs_x"]["estimator"] == "cs_x"
    assert metas["cs_ny"]["spec"]["control_group"] == "notyettreated"
    assert metas["cs"]["spec"]["control_group"] == "nevertreated"
    tidy = {k: pd.read_parquet(est / f"log_labour_productivity-{k}.parquet") for k in metas}
    assert set(tidy["cs_x"]["estimator"]) == {"cs_x"}
    simple = {k: t.loc[t["aggregation"] == "simple", "estimate"].iloc[0] for k, t in tidy.items()}
    # covariates and the control group change the estimate (an unchanged number would mean the
    # variant's settings were ignored)
    assert simple["cs_x"] != simple["cs"] and simple["cs_ny"] != simple["cs"]


def test_variant_equals_the_base_estimator_run_with_the_same_settings(run_dir, tmp_path):
    """cs_ny must be exactly cs under estimate.control_group: notyettreated. Both sides through
    the real CLI (a copy of the project, estimate stage with the alternative params): the CLI pins
    the BLAS kernel and SIMD width, an in-process fit in the test would not (on an AVX-512
    machine its last bits differ from the CLI's)."""
    import shutil

    alt = tmp_path / "alt"
    shutil.copytree(run_dir, alt, ignore=shutil.ignore_patterns("estimates", "report", "reports"))
    raw = yaml.safe_load((alt / "params.yaml").read_text())
    raw["estimate"].update(estimators=["cs"], control_group="notyettreated", variants={})
    (alt / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    cli("estimate", cwd=alt, check=True)
    res = pd.read_parquet(alt / "data" / "estimates" / "log_labour_productivity-cs.parquet")
    ours = pd.read_parquet(run_dir / "data" / "estimates" / "log_labour_productivity-cs_ny.parquet")
    pd.testing.assert_series_equal(ours["estimate"], res["estimate"], check_exact=True)
    pd.testing.assert_series_equal(ours["std_error"], res["std_error"], check_exact=True)


def test_report_labels_a_variant(run_dir):
    html = (run_dir / "reports" / "report.html").read_text()
    assert "(cs_x)" in html and "(cs_ny)" in html


@pytest.mark.parametrize(
    "variants, fragment",
    [
        ({"cs": {"estimator": "cs"}}, "is a registry estimator"),
        ({"v": {"estimator": "nope"}}, "estimate.variants.v: give {estimator"),
        ({"v": {"estimator": "cs", "bogus": 1}}, "estimate.variants.v.bogus: unknown option of cs"),
        ({"v": {"estimator": "cs", "covariates": "x"}}, "covariates: give a list"),
        ({"v": {"estimator": "cs", "control_group": "all"}}, "control_group: 'all'"),
        ({"bad name!": {"estimator": "cs"}}, "estimate.variants.bad name!"),
    ],
)
def test_bad_variants_are_config_errors(tmp_path, variants, fragment):
    params = project_params(estimators=["cs"], variants=variants)
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_params(p)
    assert fragment in str(exc.value) + " ".join(getattr(exc.value, "problems", []) or [])


def test_unknown_variant_key_in_estimators_is_named(tmp_path):
    params = project_params(estimators=["cs", "cs_missing"])
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(ConfigError) as exc:
        load_params(p)
    assert "cs_missing" in str(exc.value) + " ".join(getattr(exc.value, "problems", []) or [])
