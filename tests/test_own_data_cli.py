"""An evaluator's own files through the REAL command (`python -m pipeline ...`): firm-file
columns that pass through under their own names, registers with dates, membership from a
panel column, register oddities counted, and the register's hostile cases (issue 14 items 1-2,
issue 21's register cases).

Reference: R did 2.5.1's published ATT(g,t) on mpdta (tests/reference/mpdta_r_did_published.json,
source and URLs in the file), printed to 4 decimals: tolerance half a unit of the last printed
digit (5e-5), as in tests/test_cs_mpdta.py. mpdta ships in tests/data/mpdta.csv (the extract of
R did's data set; moderndid and csdid ship the same table).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests._project import cli, copy_project, make_project

HERE = Path(__file__).resolve().parent
R_REF = json.loads((HERE / "reference" / "mpdta_r_did_published.json").read_text())
MPDTA = pd.read_csv(HERE / "data" / "mpdta.csv")
TOL = 5e-5 + 1e-12  # printed to 4 decimals: half a unit of the last digit (+ float slack)


def _mpdta_project(root: Path, **estimate) -> None:
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    MPDTA.to_csv(raw / "counties.csv", index=False)  # countyreal, year, lpop, lemp, first.treat, treat
    treated = MPDTA.loc[MPDTA["first.treat"] > 0].drop_duplicates("countyreal")
    pd.DataFrame({"county": treated["countyreal"], "programme": "P1", "joined": treated["first.treat"], "left": ""}).to_csv(
        raw / "register.csv", index=False)
    params = {
        "seed": 1,
        "data": {"firms": {"path": "data/raw/counties.csv"}, "membership": {"path": "data/raw/register.csv"}},
        "columns": {"firm_id": "countyreal", "year": "year"},
        "membership_columns": {"firm_id": "county", "cluster_id": "programme", "join_year": "joined", "leave_year": "left"},
        "ingest": {"years": None, "derive": []},
        "estimate": {"outcomes": ["lemp"], "estimators": ["cs"], "covariates": [], "control_group": "nevertreated",
                     "sensitivity": {"estimators": [], "outcomes": None}, **estimate},
        "report": {"formats": ["html"], "disclosure": "off"},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _gt(root: Path, name: str) -> pd.DataFrame:
    d = pd.read_parquet(root / "data" / "estimates" / f"{name}.parquet")
    return d[d["aggregation"] == "gt"].sort_values(["cohort", "time"]).reset_index(drop=True)


@pytest.mark.slow
def test_mpdta_as_own_files_reproduces_r_did_through_run(tmp_path):
    """mpdta as a firm file (lemp, lpop unmapped: they pass through) + a register derived from
    first.treat: `cluster-impact run` gives R did's published ATT(g,t), unconditional and
    doubly robust with lpop."""
    _mpdta_project(tmp_path, variants={"cs_lpop": {"estimator": "cs", "covariates": ["lpop"], "est_method": "dr"}},
                   estimators=["cs", "cs_lpop"])
    res = cli("run", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    flow = json.loads((tmp_path / "data/interim/ingest_flow.json").read_text())
    assert flow["passthrough"] == {"lemp": {"column": "lemp", "type": "number"}, "lpop": {"column": "lpop", "type": "number"}}
    panel = pd.read_parquet(tmp_path / "data/interim/panel.parquet")
    assert list(panel.columns) == ["firm_id", "year", "lpop", "lemp"]  # pruned: first.treat and treat are never read
    html = (tmp_path / "reports/report.html").read_text()
    assert "register checks" in html and "firms in several initiatives" in html  # the register oddities are shown
    for name, cfg in (("lemp-cs", "unconditional_never_varying"), ("lemp-cs_lpop", "lpop_dr_never_varying")):
        ref = R_REF["configs"][cfg]["gt"]
        gt = _gt(tmp_path, name)
        assert gt["cohort"].tolist() == ref["group"] and gt["time"].tolist() == ref["time"]
        np.testing.assert_allclose(gt["estimate"], ref["att"], atol=TOL, rtol=0)


def test_unsafe_column_name_needs_a_rename(tmp_path):
    """first.treat is not a safe name: using it is exit 5 with the columns: rename suggested;
    with the rename it passes through (as a number) under the new name."""
    _mpdta_project(tmp_path, covariates=["first.treat"])
    res = cli("ingest", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 5, res.stderr
    assert "'first.treat' is not a safe column name" in res.stderr and "columns: {first_treat: 'first.treat'}" in res.stderr
    p = yaml.safe_load((tmp_path / "params.yaml").read_text())
    p["columns"]["ft_file"] = "first.treat"
    p["estimate"]["covariates"] = ["ft_file"]
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    res = cli("ingest", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    panel = pd.read_parquet(tmp_path / "data/interim/panel.parquet")
    assert panel["ft_file"].dtype == np.float64 and set(panel["ft_file"]) == {0, 2004, 2006, 2007}
    # a reserved name (build_groups creates first_treat) is refused at load
    p["columns"]["first_treat"] = "first.treat"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(p))
    res = cli("ingest", "--params", "params.yaml", cwd=tmp_path)
    assert res.returncode == 5 and "columns.first_treat: the pipeline creates a column of that name" in res.stderr


# ------------------------------------------------------------------ the generated sample
@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    root = tmp_path_factory.mktemp("own")
    make_project(root, n_firms=200, seed=5)
    return root


def _params(root: Path, mutate) -> None:
    p = yaml.safe_load((root / "params.yaml").read_text())
    mutate(p)
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))


def _firms(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data/raw/firms.csv", dtype=str, keep_default_na=False)


def _mem(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "data/raw/membership.csv", dtype=str, keep_default_na=False)


def _flow(root: Path) -> dict:
    return json.loads((root / "data/interim/ingest_flow.json").read_text())


def _light(p, **est):
    p["ingest"]["derive"] = ["log_labour_productivity"]
    p["estimate"].update({"outcomes": ["log_labour_productivity"], "estimators": ["twfe"], "outcome_estimators": {}, **est})


@pytest.mark.slow
def test_own_columns_as_outcome_covariate_strata_cluster_and_dimension(sample, tmp_path):
    """Extra columns: a numeric outcome, a numeric covariate, a text stratum for exact
    matching, a text heterogeneity dimension and a text cluster variable; a column used by
    nothing is not read; all through ingest -> estimate."""
    root = copy_project(sample, tmp_path)
    f = _firms(root)
    rng = np.random.default_rng(3)
    f["score"] = np.round(rng.normal(size=len(f)), 4).astype(str)
    f["size0"] = np.round(np.log1p(pd.to_numeric(f["employees"])), 4).astype(str)
    firm_code = pd.factorize(f["firm_id"])[0]
    f["band"] = np.where(firm_code % 2 == 0, "even", "odd")
    f["district"] = "D" + (firm_code % 7).astype(str)
    f["unused"] = "x"
    f.to_csv(root / "data/raw/firms.csv", index=False)
    _params(root, lambda p: (_light(p, outcomes=["score"], estimators=["twfe", "cs", "matching", "heterogeneity"],
                                    covariates=["size0"], vcov={"kind": "cluster", "by": ["firm_id"]},
                                    matching={"exact": ["band"], "covariates": ["size0"]},
                                    heterogeneity={"by": ["band"], "min_treated": 2}),
                             p["estimate"].setdefault("variants", {}).update(
                                 {"twfe_d": {"estimator": "twfe", "covariates": []}}),
                             p["estimate"]["estimators"].append("twfe_d"),
                             p["report"].update({"disclosure": "off"})))
    p = yaml.safe_load((root / "params.yaml").read_text())
    p["estimate"]["variants"]["twfe_d"] = {"estimator": "twfe"}
    (root / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    flow = _flow(root)
    assert flow["passthrough"] == {"score": {"column": "score", "type": "number"}, "size0": {"column": "size0", "type": "number"},
                                   "band": {"column": "band", "type": "text"}}
    panel = pd.read_parquet(root / "data/interim/panel.parquet")
    assert "unused" not in panel and "district" not in panel and panel["band"].dtype == "str"
    for stage in ("build_groups", "estimate"):
        res = cli(stage, "--params", "params.yaml", cwd=root)
        assert res.returncode == 0, (stage, res.stderr)
    het = pd.read_parquet(root / "data/estimates/score-heterogeneity.parquet")
    assert {"band:even", "band:odd"} <= set(het["term"].astype(str)) or het["term"].astype(str).str.contains("even").any()
    # the cluster variable: a text column of the user's own
    _params(root, lambda p: p["estimate"].update({"estimators": ["twfe"], "vcov": {"kind": "cluster", "by": ["district"]},
                                                  "variants": {}}))
    for stage in ("ingest", "build_groups", "estimate"):
        res = cli(stage, "--params", "params.yaml", cwd=root)
        assert res.returncode == 0, (stage, res.stderr)
    meta = json.loads((root / "data/estimates/score-twfe.json").read_text())
    assert meta["n_clusters"] == 7


def test_text_in_own_numeric_outcome_is_exit_2(sample, tmp_path):
    root = copy_project(sample, tmp_path)
    f = _firms(root)
    f["score"] = "1.5"
    f.loc[[3, 8], "score"] = "n.a."
    f.to_csv(root / "data/raw/firms.csv", index=False)
    _params(root, lambda p: _light(p, outcomes=["score"]))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 2, res.stderr
    assert "column 'score': 2 value(s) are not numbers" in res.stderr and "'n.a.'" in res.stderr and "na_values" in res.stderr
    assert not (root / "data/interim/panel.parquet").exists()


# ------------------------------------------------------------------ registers with dates
def _dates(root: Path, fmt) -> pd.DataFrame:
    m = _mem(root)
    j = pd.to_numeric(m["join_year"])
    months = (np.arange(len(m)) % 12) + 1
    m["join_year"] = [fmt(y, mo) for y, mo in zip(j, months)]
    m.to_csv(root / "data/raw/membership.csv", index=False)
    return pd.DataFrame({"year": j, "month": months})


AFTER_JUNE = {"next_year_if_after_month": 6}


@pytest.mark.parametrize("spelling, fmt, date_format, rule", [  # each spelling once, the two rules alternating
    ("iso", lambda y, m: f"{y}-{m:02d}-15", None, AFTER_JUNE),
    ("dmy", lambda y, m: f"15.{m:02d}.{y}", None, "year_of_date"),
    ("slash", lambda y, m: f"15/{m:02d}/{y}", "%d/%m/%Y", AFTER_JUNE),
    ("excel", lambda y, m: str(int((pd.Timestamp(y, m, 15) - pd.Timestamp(1899, 12, 30)).days)), "excel", AFTER_JUNE),
])
def test_register_dates_and_join_rule(sample, tmp_path, spelling, fmt, date_format, rule):
    """Join dates in four spellings -> years under the join rule; leave years (plain years)
    stay years, also under date_format: excel."""
    root = copy_project(sample, tmp_path)
    truth = _dates(root, fmt)
    _params(root, lambda p: p["data"]["membership"].update({"date_format": date_format, "join_rule": rule}))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    mem = pd.read_parquet(root / "data/interim/membership.parquet")
    raw = _mem(root).assign(expect=truth["year"] + ((truth["month"] > 6) if isinstance(rule, dict) else 0))
    got = mem.merge(raw[["firm_id", "cluster_id", "expect"]], on=["firm_id", "cluster_id"])
    assert len(got) >= len(mem) and (got["join_year"] == got["expect"]).all()
    assert _flow(root)["membership"]["dates"]["join_dates"] == len(raw)


def test_register_dates_in_xlsx_and_stata(sample, tmp_path):
    """Excel date cells and Stata %td variables are read as dates."""
    root = copy_project(sample, tmp_path)
    m = _mem(root)
    j = pd.to_numeric(m["join_year"]).astype(int)
    dates = pd.to_datetime({"year": j, "month": 9, "day": 1})
    x = m.assign(join_year=dates, leave_year=pd.to_numeric(m["leave_year"]))
    x.to_excel(root / "data/raw/membership.xlsx", index=False)
    _params(root, lambda p: p["data"].update({"membership": {"path": "data/raw/membership.xlsx",
                                                             "join_rule": {"next_year_if_after_month": 6}}}))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    mem = pd.read_parquet(root / "data/interim/membership.parquet")
    assert sorted(mem["join_year"]) == sorted(j + 1)
    x.to_stata(root / "data/raw/membership.dta", write_index=False, convert_dates={"join_year": "td"})
    _params(root, lambda p: p["data"].update({"membership": {"path": "data/raw/membership.dta"}}))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    mem = pd.read_parquet(root / "data/interim/membership.parquet")
    assert sorted(mem["join_year"]) == sorted(j)


def test_bad_dates_and_options(sample, tmp_path):
    root = copy_project(sample, tmp_path)
    _dates(root, lambda y, m: f"{m:02d}/15/{y}")
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 2
    assert "value(s) are neither years nor dates" in res.stderr and "date_format" in res.stderr
    _params(root, lambda p: p["data"]["membership"].update({"join_rule": {"next_year_if_after_month": 13}, "date_format": "weird"}))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 5
    assert "data.membership.join_rule" in res.stderr and "data.membership.date_format: 'weird'" in res.stderr


# ------------------------------------------------------------------ membership from the panel
def test_membership_from_a_panel_column(sample, tmp_path):
    """A cluster-id column in the panel gives one spell per contiguous run: the same
    membership as the register it was made from (first join, cluster of the first spell)."""
    root = copy_project(sample, tmp_path)
    f = _firms(root)
    m = _mem(root)
    m["j"], m["l"] = pd.to_numeric(m["join_year"]), pd.to_numeric(m["leave_year"]).fillna(9999)
    first = m.sort_values(["firm_id", "j", "cluster_id"]).drop_duplicates("firm_id").set_index("firm_id")
    y = pd.to_numeric(f["year"])
    cl = f["firm_id"].map(first["cluster_id"])
    on = (y >= f["firm_id"].map(first["j"])) & (y <= f["firm_id"].map(first["l"]))
    f["member_of"] = np.where(on, cl, "0")
    f.to_csv(root / "data/raw/firms.csv", index=False)
    _params(root, lambda p: (_light(p), p["data"].update({"membership": {"from_panel": "member_of"}})))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    mem = pd.read_parquet(root / "data/interim/membership.parquet")
    panel = pd.read_parquet(root / "data/interim/panel.parquet")
    assert "member_of" not in panel
    fl = _flow(root)["membership"]
    assert fl["format"] == "from_panel" and fl["rows_kept"] == len(mem)
    got = mem.groupby("firm_id")["join_year"].min()
    kept = panel.groupby("firm_id")["year"].agg(["min", "max"])
    exp = first["j"].loc[got.index].clip(lower=kept.loc[got.index, "min"])
    assert (got == exp).all()
    assert set(mem["cluster_id"]) <= set(m["cluster_id"])


# ------------------------------------------------------------------ register oddities and hostile cases
def test_register_oddities_counted(sample, tmp_path):
    root = copy_project(sample, tmp_path)
    m = _mem(root)
    a, b = m["firm_id"].iloc[0], m["firm_id"].iloc[1]
    extra = pd.DataFrame({"firm_id": [a, "GHOST1", "GHOST2", b], "cluster_id": ["CLX", "CL01", "CL01", m["cluster_id"].iloc[1]],
                          "join_year": [m["join_year"].iloc[0], "2012", "2013", str(int(m["join_year"].iloc[1]) + 1)],
                          "leave_year": ["", "", "", ""]})
    pd.concat([m, extra]).to_csv(root / "data/raw/membership.csv", index=False)
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    fl = _flow(root)
    c = fl["membership"]["register_checks"]
    assert c["firms_not_in_panel"] == 2 and fl["membership"]["register_check_first_ids"]["firms_not_in_panel"] == ["GHOST1", "GHOST2"]
    assert a in fl["membership"]["register_check_first_ids"]["firms_in_several_initiatives"]
    assert b in fl["membership"]["register_check_first_ids"]["firms_with_overlapping_spells"]
    assert fl["membership"]["excluded"]["not_in_panel"] == 2
    assert any("2 firm(s) are not in the panel" in n for n in fl["notes"])
    mem = pd.read_parquet(root / "data/interim/membership.parquet")
    assert (mem["firm_id"] == a).sum() >= 2 and (mem["firm_id"] == b).sum() >= 2  # nothing merged


def _case(root):
    m = _mem(root)
    m.loc[:13, "firm_id"] = m.loc[:13, "firm_id"].str.lower()
    m.to_csv(root / "data/raw/membership.csv", index=False)


def _year(value):
    def mut(root):
        m = _mem(root)
        m.loc[[2, 5], "join_year"] = value
        m.to_csv(root / "data/raw/membership.csv", index=False)
    return mut


def _header_only(root):
    (root / "data/raw/membership.csv").write_text("firm_id,cluster_id,join_year,leave_year\n")


def _no_match(root):
    m = _mem(root)
    m["firm_id"] = "X" + m["firm_id"]
    m.to_csv(root / "data/raw/membership.csv", index=False)


@pytest.mark.parametrize("case, mutate, needles", [
    ("case-only ids", _case, ["match a firm of the panel only when upper and lower case are ignored", "vs 'F", "same case"]),
    ("overflow year", _year("99999999999999999999999"),
     ["membership.csv, column 'join_year'", "not plausible calendar years", "'99999999999999999999999'", "first keys (firm_id, cluster_id, join_year)"]),
    ("negative year", _year("-5"), ["column 'join_year'", "2 value(s) are not plausible calendar years", "'-5'", ", -5)"]),
    ("header-only register", _header_only, ["membership.csv: the register has no data rows (only a header)"]),
    ("no id matches", _no_match, ["none of the register's", "first register ids: XF", "first panel ids: F", "membership_columns.firm_id"]),
])
def test_register_hostile_cases_exit_2(sample, tmp_path, case, mutate, needles):
    root = copy_project(sample, tmp_path)
    mutate(root)
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 2, res.stderr
    for n in needles:
        assert n in res.stderr, (case, n, res.stderr)
    assert "Traceback" not in res.stderr and "pre-treatment period" not in res.stderr
    assert not (root / "data/interim/panel.parquet").exists()


@pytest.mark.slow
def test_stata_value_labels_and_excel_label_sheets(sample, tmp_path):
    """A .dta panel's value labels of sector, and an .xlsx panel's sheet named after the
    region column, are kept as code -> label tables in ingest_flow.json."""
    root = copy_project(sample, tmp_path)
    f = _firms(root)
    num = [c for c in f.columns if c not in ("firm_id", "nuts2", "group_id")]
    d = f.copy()
    for c in num:
        d[c] = pd.to_numeric(d[c])
    d["nace2"] = d["nace2"].astype("int32")
    codes = sorted(d["nace2"].unique())
    d.to_stata(root / "data/raw/firms.dta", write_index=False, value_labels={"nace2": {int(c): f"Sector {c}" for c in codes}})
    _params(root, lambda p: (_light(p), p["data"].update({"firms": {"path": "data/raw/firms.dta"}})))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    assert _flow(root)["labels"] == {"sector": {str(c): f"Sector {c}" for c in codes}}
    with pd.ExcelWriter(root / "data/raw/firms.xlsx") as xw:
        d.to_excel(xw, sheet_name="panel", index=False)
        regions = sorted(d["nuts2"].unique())
        pd.DataFrame({"code": regions, "name": [f"Region {r}" for r in regions]}).to_excel(xw, sheet_name="nuts2", index=False)
    _params(root, lambda p: p["data"].update({"firms": {"path": "data/raw/firms.xlsx", "sheet": "panel"}}))
    res = cli("ingest", "--params", "params.yaml", cwd=root)
    assert res.returncode == 0, res.stderr
    assert _flow(root)["labels"] == {"region": {r: f"Region {r}" for r in regions}}
