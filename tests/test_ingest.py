"""pipeline.ingest + pipeline.outcomes on small hand-made inputs (no generator)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.errors import BadInputError, ConfigError
from pipeline import outcomes
from pipeline.ingest import ingest
from pipeline.io import dumps_json
from tests._factories import ALL_DERIVED, COLUMNS, deflators_frame, firms_frame, membership_frame, project


def _identity(flow):
    for name in ("firms", "membership", "deflators"):
        f = flow[name]
        if f is not None:
            assert f["rows_in"] == f["rows_kept"] + sum(f["excluded"].values()), name


# ------------------------------------------------------------------------------------------
# the happy path
# ------------------------------------------------------------------------------------------
def test_clean_input_contract(tmp_path):
    out = ingest(project(tmp_path))
    p = out.panel
    assert len(p) == 16 and list(p.columns[:15]) == list(COLUMNS) and list(p.columns[15:]) == ALL_DERIVED
    assert str(p["firm_id"].dtype) == "str" and p["year"].dtype == np.int64 and str(p["founding_year"].dtype) == "Int64"
    assert str(p["export_status"].dtype) == "Int64" and p["employment"].dtype == np.float64
    assert p[["firm_id", "year"]].equals(p[["firm_id", "year"]].sort_values(["firm_id", "year"]).reset_index(drop=True))
    m = out.membership
    assert list(m.columns) == ["firm_id", "cluster_id", "join_year", "leave_year"]
    assert m["join_year"].dtype == np.int64 and str(m["leave_year"].dtype) == "Int64"
    assert m["leave_year"].isna().tolist() == [True, False]
    _identity(out.flow)
    assert out.flow["firms"]["rows_kept"] == 16 and out.flow["deflated"] is True
    json.loads(dumps_json(out.flow))  # JSON-serialisable


def test_deflated_productivity_against_hand_computation(tmp_path):
    out = ingest(project(tmp_path))
    p = out.panel.set_index(["firm_id", "year"])
    # F003 is sector 28: deflator 2012 = 1 + 0.2 + 0.05; VA = 1200 + 10; employment = 30 + 2
    lp = (1210.0 / 1.25) / 32.0
    assert p.loc[("F003", 2012), "labour_productivity"] == pytest.approx(lp, rel=1e-12)
    assert p.loc[("F003", 2012), "log_labour_productivity"] == pytest.approx(np.log(lp), rel=1e-12)
    assert p.loc[("F003", 2012), "log_value_added"] == pytest.approx(np.log(1210.0 / 1.25), rel=1e-12)


def test_no_deflator_file_is_nominal_and_flagged(tmp_path):
    out = ingest(project(tmp_path, deflators=None))
    p = out.panel.set_index(["firm_id", "year"])
    assert p.loc[("F003", 2012), "labour_productivity"] == pytest.approx(1210.0 / 32.0, rel=1e-12)
    assert out.flow["deflated"] is False and out.flow["deflators"] is None
    assert any("NOMINAL" in n for n in out.flow["notes"])
    assert out.flow["derived"]["labour_productivity"]["real"] is False


def test_derive_only_requested_plus_prerequisites(tmp_path):
    out = ingest(project(tmp_path, derive=["log_labour_productivity"]))
    assert [c for c in out.panel.columns if c not in COLUMNS] == ["labour_productivity", "log_labour_productivity"]


# ------------------------------------------------------------------------------------------
# each derived outcome's formula on a tiny frame
# ------------------------------------------------------------------------------------------
TINY = {
    "firm_code": np.array([0, 0, 0, 1, 1]),
    "year": np.array([2010, 2011, 2013, 2010, 2011]),
    "value_added": np.array([100.0, 120.0, 0.0, 50.0, 60.0]),
    "employment": np.array([10.0, 12.0, 5.0, 0.0, 4.0]),
    "turnover": np.array([200.0, 0.0, 100.0, 80.0, 90.0]),
    "exports": np.array([20.0, 0.0, 10.0, np.nan, 9.0]),
    "patents": np.array([0.0, 2.0, np.nan, 0.0, 1.0]),
    "rd": np.array([2.0, 1.0, 0.0, 0.0, 4.5]),
    "wage_bill": np.array([30.0, 36.0, 10.0, 5.0, 8.0]),
    "capital": np.array([50.0, -1.0, 0.0, 7.0, 7.0]),
    "intermediates": np.array([80.0, 90.0, 10.0, 0.0, 3.0]),
    "deflator": np.array([1.0, 1.2, 1.5, 1.0, 1.2]),
}
nan = np.nan
EXPECTED = {
    "labour_productivity": [10.0, 100.0 / 12.0, 0.0, nan, 12.5],  # (VA / deflator) / employment
    "log_labour_productivity": [np.log(10.0), np.log(100.0 / 12.0), nan, nan, np.log(12.5)],
    "export_status": [1, 0, 1, None, 1],
    "patent_status": [0, 1, None, 0, 1],
    "export_intensity": [0.1, nan, 0.1, nan, 0.1],
    "log_exports": [np.log(20.0), nan, np.log(10.0), nan, np.log(9.0)],
    "employment_growth": [nan, np.log(12.0 / 10.0), nan, nan, nan],  # gap 2011->2013; emp 0 in 2010
    "rd_intensity": [0.01, nan, 0.0, 0.0, 0.05],
    "wage_per_employee": [3.0, 3.0, 2.0, nan, 2.0],
    "log_employment": [np.log(10.0), np.log(12.0), np.log(5.0), nan, np.log(4.0)],
    "log_capital": [np.log(50.0), nan, nan, np.log(7.0), np.log(7.0)],
    "log_intermediates": [np.log(80.0), np.log(90.0), np.log(10.0), nan, np.log(3.0)],
    "log_value_added": [np.log(100.0), np.log(100.0), nan, np.log(50.0), np.log(50.0)],
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_derived_formula(name):
    fn = outcomes.REGISTRY[name]
    data = dict(TINY)
    for dep in fn.after:
        data[dep] = np.asarray(outcomes.REGISTRY[dep](data), dtype=float)
    got = fn(data)
    exp = EXPECTED[name]
    if name in ("export_status", "patent_status"):
        assert got.tolist() == [pd.NA if v is None else v for v in exp] and str(got.dtype) == "Int64"
    else:
        np.testing.assert_allclose(got, np.array(exp, dtype=float), rtol=1e-12, equal_nan=True)
    assert fn.__doc__ and "=" in fn.formula  # docstring gives the formula


def test_registry_matches_contract():
    assert list(outcomes.REGISTRY) == ALL_DERIVED


def test_employment_growth_in_ingest_after_gap(tmp_path):
    f = firms_frame()
    f = f[~((f["firm_id"] == "F001") & (f["year"] == 2011))]
    out = ingest(project(tmp_path, firms=f))
    g = out.panel.set_index(["firm_id", "year"])["employment_growth"]
    assert np.isnan(g[("F001", 2010)]) and np.isnan(g[("F001", 2012)])  # first year; after the gap
    assert g[("F001", 2013)] == pytest.approx(np.log(13.0 / 12.0))


# ------------------------------------------------------------------------------------------
# exclusions are counted; the accounting identity holds
# ------------------------------------------------------------------------------------------
def test_exclusion_counts_exact(tmp_path):
    f = firms_frame(years=(2009, 2010, 2011))
    # rows: F001 2009 (0), 2010 (1), 2011 (2); F002 2009 (3) ...
    f = pd.concat([f, f.iloc[[1, 1, 3]]], ignore_index=True)  # two copies of an in-window row, one of an outside row
    f.loc[5, "value_added"] = 0.0  # F002 2011
    extra = pd.DataFrame({"firm_id": ["F999"], "cluster_id": ["CL09"], "join_year": [2011], "leave_year": [pd.NA]})
    mem = pd.concat([membership_frame(), extra, membership_frame().iloc[[0]]])  # + not in panel, + exact duplicate
    out = ingest(project(tmp_path, firms=f, membership=mem, deflators=deflators_frame(years=(2009, 2010, 2011)), years=[2010, 2011]))
    ex = out.flow["firms"]["excluded"]
    assert ex == {"outside_window": 5, "exact_duplicate": 2, "nonpositive_for_log:value_added": 1, "nonpositive_for_log:employment": 0}
    assert out.flow["firms"]["rows_in"] == 15 and out.flow["firms"]["rows_kept"] == 7 == len(out.panel)
    assert out.flow["membership"]["excluded"] == {"exact_duplicate": 1, "not_in_panel": 1}
    assert out.flow["membership"]["rows_in"] == 4 and len(out.membership) == 2
    _identity(out.flow)


@pytest.mark.parametrize("seed", range(4))
def test_accounting_identity_random_defects(tmp_path, seed):
    """Random numbers of exact duplicates, out-of-window rows and zero value added: every
    count is recovered exactly and rows_in == rows_kept + sum(excluded)."""
    rng = np.random.default_rng(seed)
    f = firms_frame(years=tuple(range(2008, 2016)))  # 32 rows, window 2010-2013 keeps 16
    n_zero = int(rng.integers(0, 4))
    inside = f.index[f["year"].between(2010, 2013)].to_numpy()
    zero_rows = rng.choice(inside, n_zero, replace=False)
    f.loc[zero_rows, "value_added"] = 0.0
    n_dup = int(rng.integers(0, 6))
    dups = rng.choice(np.setdiff1d(inside, zero_rows), n_dup, replace=True)
    f = pd.concat([f, f.loc[dups]], ignore_index=True).sample(frac=1.0, random_state=seed)
    out = ingest(project(tmp_path, firms=f, deflators=deflators_frame(years=range(2008, 2016)), years=[2010, 2013]))
    ex = out.flow["firms"]["excluded"]
    assert ex["outside_window"] == 16 and ex["exact_duplicate"] == n_dup and ex["nonpositive_for_log:value_added"] == n_zero
    assert out.flow["firms"]["rows_in"] == 32 + n_dup
    assert len(out.panel) == out.flow["firms"]["rows_kept"] == 16 - n_zero
    _identity(out.flow)


def test_header_only_and_empty_window(tmp_path):
    with pytest.raises(BadInputError, match="no data rows"):
        ingest(project(tmp_path / "a", firms=firms_frame().iloc[:0]))
    with pytest.raises(BadInputError, match=r"no rows left after the exclusions \(outside_window: 16\); the file's years are 2010-2013"):
        ingest(project(tmp_path / "b", years=[1990, 1995]))


def test_drop_missing_outcomes(tmp_path):
    out = ingest(project(tmp_path, derive=["log_exports"], drop_missing_outcomes=True))
    assert out.flow["firms"]["excluded"]["missing_outcome:log_exports"] == 4  # F004 never exports
    assert len(out.panel) == 12
    _identity(out.flow)


# ------------------------------------------------------------------------------------------
# bad input: each defect -> one BadInputError naming file, column, count and keys
# ------------------------------------------------------------------------------------------
def _set(firm, year, col, value):
    def mutate(f):
        f[col] = f[col].astype(object)
        f.loc[f["firm_id"].eq(firm) & f["year"].eq(year), col] = value
        return f

    return mutate


def _dup_conflict(f):
    extra = f.iloc[[5]].copy()
    extra["value_added"] = extra["value_added"] + 1
    return pd.concat([f, extra], ignore_index=True)


FIRM_DEFECTS = {
    # case: (mutate firms, needles: file, column, count, keys)
    "missing mapped column": (lambda f: f.drop(columns=["capital"]), ["firms.csv", "'capital'", "1 mapped column", "'rd_expenditure'"]),
    "missing firm id": (_set("F002", 2011, "firm_id", None), ["firms.csv", "'firm_id'", "1 row(s) without a firm id", "(2011)"]),
    "missing year": (_set("F002", 2011, "year", None), ["firms.csv", "'year'", "1 row(s) without a year", "(F002, <missing>)"]),
    "non-integer year": (_set("F002", 2011, "year", 2011.5), ["firms.csv", "'year'", "1 non-integer", "(F002, 2011.5)"]),
    "n.a. text": (_set("F003", 2012, "employees", "n.a."), ["firms.csv", "'employees'", "1 value(s) are not numbers", "'n.a.'", "(F003, 2012)", "na_values"]),
    "dash text": (_set("F003", 2012, "turnover", "–"), ["firms.csv", "'turnover'", "1 value(s)", "'–'", "(F003, 2012)"]),
    "space thousands": (_set("F001", 2010, "value_added", "12 345"), ["firms.csv", "'value_added'", "'12 345'", "(F001, 2010)", "thousands"]),
    "undeclared decimal comma": (_set("F004", 2013, "capital", "1.234,5"), ["firms.csv", "'capital'", "'1.234,5'", "(F004, 2013)", "decimal"]),
    "inf": (_set("F004", 2013, "capital", np.inf), ["firms.csv", "'capital'", "1 infinite", "(F004, 2013)"]),
    "negative employment": (_set("F001", 2011, "employees", -3.0), ["firms.csv", "'employees'", "1 negative", "(F001, 2011)"]),
    "negative exports": (_set("F001", 2011, "exports", -3.0), ["firms.csv", "'exports'", "1 negative", "(F001, 2011)"]),
    "conflicting duplicate": (_dup_conflict, ["firms.csv", "1 firm-year(s) appear more than once", "value_added", "(F002, 2011)"]),
}


@pytest.mark.parametrize("case", sorted(FIRM_DEFECTS))
def test_firm_defect_raises_bad_input(tmp_path, case):
    mutate, needles = FIRM_DEFECTS[case]
    with pytest.raises(BadInputError) as e:
        ingest(project(tmp_path, firms=mutate(firms_frame())))
    msg = str(e.value)
    for n in needles:
        assert n in msg, (n, msg)
    assert e.value.exit_code == 2


def test_log_nonpositive_fail(tmp_path):
    with pytest.raises(BadInputError) as e:
        ingest(project(tmp_path, firms=_set("F002", 2012, "value_added", 0.0)(firms_frame()), log_nonpositive="fail"))
    msg = str(e.value)
    assert "'value_added'" in msg and "1 row(s) with value_added <= 0" in msg and "(F002, 2012)" in msg and "log_nonpositive: drop" in msg


def _mem(changes):
    def make():
        m = membership_frame().astype({"join_year": object, "leave_year": object})
        for (row, col), v in changes.items():
            m.loc[row, col] = v
        return m

    return make


MEMBERSHIP_DEFECTS = {
    "missing id": (_mem({(0, "firm_id"): None}), ["membership.csv", "'firm_id'", "1 spell(s) without firm_id", "(<missing>, CL01, 2012)"]),
    "missing join year": (_mem({(1, "join_year"): None}), ["membership.csv", "'join_year'", "1 spell(s) without a join year", "(F002, CL02, <missing>)"]),
    "non-integer join year": (_mem({(1, "join_year"): 2011.5}), ["membership.csv", "'join_year'", "1 non-integer", "(F002, CL02, 2011.5)"]),
    "text join year": (_mem({(1, "join_year"): "soon"}), ["membership.csv", "'join_year'", "'soon'", "(F002, CL02"]),
    "leave before join": (_mem({(1, "leave_year"): 2009}), ["membership.csv", "'leave_year'", "1 spell(s) with leave_year < join_year", "(F002, CL02, 2011)"]),
}


@pytest.mark.parametrize("case", sorted(MEMBERSHIP_DEFECTS))
def test_membership_defect_raises_bad_input(tmp_path, case):
    make, needles = MEMBERSHIP_DEFECTS[case]
    with pytest.raises(BadInputError) as e:
        ingest(project(tmp_path, membership=make()))
    msg = str(e.value)
    for n in needles:
        assert n in msg, (n, msg)


def test_all_problems_collected_in_one_error(tmp_path):
    f = _set("F001", 2011, "employees", -3.0)(_set("F003", 2012, "turnover", "n.a.")(firms_frame()))
    with pytest.raises(BadInputError) as e:
        ingest(project(tmp_path, firms=f, membership=_mem({(1, "leave_year"): 2009})()))
    msg = str(e.value)
    assert "3 problem(s)" in msg and "'employees'" in msg and "'turnover'" in msg and "leave_year < join_year" in msg


def test_id_format_clash(tmp_path):
    """Zero-padded ids in the panel, integers in the register: a clear error, not a silent non-match."""
    f = firms_frame()
    f["firm_id"] = f["firm_id"].str.replace("F", "00")  # '00001' ...
    m = membership_frame()
    m["firm_id"] = ["1", "2"]
    d = tmp_path / "data" / "raw"
    d.mkdir(parents=True)
    with pytest.raises(BadInputError) as e:
        ingest(project(tmp_path, firms=f, membership=m))
    msg = str(e.value)
    assert "membership.csv" in msg and "2 firm id(s)" in msg and "'1' vs '00001'" in msg and "leading zeros" in msg


def test_id_format_clash_reverse_and_sector_codes(tmp_path):
    """Integer-looking ids in the panel, padded in the register; sector '5' vs '05' in the deflators."""
    f = firms_frame()
    f["firm_id"] = f["firm_id"].str.replace("F00", "")  # '1', '2', ...
    f["nace2"] = f["nace2"].replace({"25": "5"})
    m = membership_frame()
    m["firm_id"] = ["0001", "2"]  # one padded (clash), one fine
    d = deflators_frame()
    d["nace2"] = d["nace2"].replace({"25": "05"})
    with pytest.raises(BadInputError) as e:
        ingest(project(tmp_path, firms=f, membership=m, deflators=d))
    msg = str(e.value)
    assert "1 firm id(s)" in msg and "'0001' vs '1'" in msg
    assert "deflators.csv vs data/raw/firms.csv: 1 sector code(s)" in msg and "'05' vs '5'" in msg


def test_missing_deflator_sector_years_named(tmp_path):
    d = deflators_frame()
    d = d[~((d["nace2"] == "28") & (d["year"] >= 2012))]
    with pytest.raises(BadInputError) as e:
        ingest(project(tmp_path, deflators=d))
    msg = str(e.value)
    assert "deflators.csv" in msg and "2 sector-year(s)" in msg and "(28, 2012), (28, 2013)" in msg


def test_conflicting_deflators(tmp_path):
    d = deflators_frame()
    extra = d.iloc[[0]].assign(deflator=9.0)
    with pytest.raises(BadInputError, match=r"1 sector-year\(s\) with different deflators; first keys \(sector, year\): \(25, 2010\)"):
        ingest(project(tmp_path, deflators=pd.concat([d, extra])))


# ------------------------------------------------------------------------------------------
# configuration errors
# ------------------------------------------------------------------------------------------
def test_unknown_derived_outcome_lists_known(tmp_path):
    with pytest.raises(ConfigError) as e:
        ingest(project(tmp_path, derive=["tfp_magic"]))
    assert "'tfp_magic'" in str(e.value) and "log_labour_productivity" in str(e.value)


def test_derived_needing_unmapped_column(tmp_path):
    cols = {k: v for k, v in COLUMNS.items() if k != "rd"}
    f = firms_frame().drop(columns=["rd_expenditure"])
    with pytest.raises(ConfigError, match="rd_intensity needs the column\\(s\\) rd"):
        ingest(project(tmp_path, firms=f, columns=cols))


# ------------------------------------------------------------------------------------------
# formats through the whole ingest
# ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["csv_semicolon_comma", "parquet", "dta", "xlsx"])
def test_same_panel_from_every_format(tmp_path, fmt):
    ref = ingest(project(tmp_path / "ref")).panel
    f = firms_frame()
    root = tmp_path / fmt
    (root / "data" / "raw").mkdir(parents=True)
    opts = {}
    if fmt == "csv_semicolon_comma":
        name = "firms.csv"
        f.to_csv(root / "data/raw" / name, sep=";", decimal=",", index=False)
        opts = {"sep": ";", "decimal": ","}
    elif fmt == "parquet":
        name = "firms.parquet"
        f.to_parquet(root / "data/raw" / name)
    elif fmt == "dta":
        name = "firms.dta"
        f.to_stata(root / "data/raw" / name, write_index=False)
    else:
        name = "firms.xlsx"
        f.to_excel(root / "data/raw" / name, index=False)
    params = project(root, firms=(root / "data/raw" / name).read_bytes(), firms_name=name, firms_options=opts)
    got = ingest(params).panel
    pd.testing.assert_frame_equal(got, ref, check_exact=False, rtol=1e-12)
