"""The out-of-core ingest (pipeline.ingest, module docstring): the firm panel split into many
shards gives the same panel, flow and error messages as one shard; the temporary shards are
removed after success and failure; a failed ingest writes nothing."""

from __future__ import annotations

import hashlib
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

import pipeline.ingest as ingest_mod
import pipeline.readers as readers
from models.errors import BadInputError
from pipeline.config import load_params
from pipeline.ingest import ingest
from pipeline.io import dumps_json
from pipeline.stages import ingest as ingest_stage
from tests._factories import ALL_DERIVED, deflators_frame, membership_frame, project
from tests._project import make_project, project_params

ONE = 10**9  # rows per shard: everything in one shard
MANY = 37  # rows per shard: dozens of shards for the small panels below


@pytest.fixture
def shards(monkeypatch):
    """``shards(n)`` sets the rows per shard (and small CSV blocks / Parquet batches, so that
    blocks and shards cut the file in different places)."""

    def set_rows(n: int) -> None:
        monkeypatch.setattr(ingest_mod, "SHARD_ROWS", n)
        monkeypatch.setattr(readers, "BLOCK_SIZE", 2048 if n < ONE else readers.BLOCK_SIZE)
        monkeypatch.setattr(readers, "PARQUET_BATCH_ROWS", 50 if n < ONE else readers.PARQUET_BATCH_ROWS)

    return set_rows


def _both(shards, run):
    """``run()`` with one shard and with many: both results."""
    shards(ONE)
    one = run()
    shards(MANY)
    return one, run()


def _panel(n_firms: int = 40, years=range(2010, 2016), seed: int = 3) -> pd.DataFrame:
    """n_firms x years, the raw file's column names (tests._factories.firms_frame, larger),
    rows in a shuffled order: the file is not sorted by firm."""
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n_firms):
        fid = f"F{i:03d}"
        for t, y in enumerate(years):
            rows.append({
                "firm_id": fid, "year": y, "nace2": "25" if i % 3 else "28", "nuts2": f"R0{i % 4}",
                "founding_year": 1980 + i % 20, "employees": 10.0 + i + t, "turnover": 1000.0 + 10 * i + t,
                "value_added": 400.0 + 5 * i + 3 * t, "wage_bill": 200.0 + i, "capital": 300.0 + 2 * i,
                "intermediates": 500.0 + i, "exports": 0.0 if i % 5 == 0 else 100.0 + i + t,
                "patent_applications": float((i + t) % 3 == 0), "rd_expenditure": float(i % 7), "group_id": f"G{i // 3}",
            })
    f = pd.DataFrame(rows)
    return f.iloc[rng.permutation(len(f))].reset_index(drop=True)


def _keys(frame: pd.DataFrame, mask) -> list[str]:
    """'(F001, 2012)' for the rows where mask holds, in file order."""
    sub = frame.loc[np.asarray(mask, bool)]
    return [f"({r.firm_id}, {int(float(r.year))})" for r in sub.itertuples()]


def _message(params) -> str:
    with pytest.raises(BadInputError) as e:
        ingest(params)
    return str(e.value)


# ------------------------------------------------------------------------------------------
# (a) many shards == one shard
# ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """A generated 300-firm project (pipeline.simulate) with early exits (gaps in firms' years)."""
    root = tmp_path_factory.mktemp("shards")
    params = project_params()
    params["ingest"]["derive"] = ALL_DERIVED + ["log_tfp"]
    make_project(root, n_firms=300, seed=5, params=params, attrition=0.2)
    return root


@pytest.mark.parametrize("variant", ["csv", "parquet", "window+drop_missing"])
def test_many_shards_same_panel_flow_and_bytes(generated, tmp_path, shards, variant):
    root = tmp_path / "p"
    shutil.copytree(generated / "data" / "raw", root / "data" / "raw")
    params = yaml.safe_load((generated / "params.yaml").read_text())
    if variant == "parquet":
        f = pd.read_csv(root / "data/raw/firms.csv", dtype={"firm_id": str, "nace2": str, "nuts2": str, "group_id": str})
        f.to_parquet(root / "data/raw/firms.parquet", row_group_size=300)
        params["data"]["firms"] = {"path": "data/raw/firms.parquet"}
    if variant == "window+drop_missing":
        params["ingest"].update(years=[2010, 2020], drop_missing_outcomes=True)
        params["ingest"]["derive"] = ["log_exports", "employment_growth", "log_tfp"]
    (root / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))

    one, many = _both(shards, lambda: ingest(load_params(root / "params.yaml")))
    kept = one.flow["firms"]["rows_in"] - one.flow["firms"]["excluded"].get("outside_window", 0)
    assert kept > 20 * MANY  # dozens of shards
    pd.testing.assert_frame_equal(many.panel, one.panel, check_exact=True)
    pd.testing.assert_frame_equal(many.membership, one.membership, check_exact=True)
    assert dumps_json(many.flow) == dumps_json(one.flow)

    def stage_bytes() -> dict[str, str]:
        ingest_stage.run(load_params(root / "params.yaml"))
        return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted((root / "data/interim").iterdir())}

    one_bytes, many_bytes = _both(shards, stage_bytes)
    assert many_bytes == one_bytes and len(one_bytes) == 6  # panel, membership, other_programme, collaborations, costs, flow (empty files without those inputs)


def test_bad_input_messages_across_shards(tmp_path, shards):
    """Defects in many shards, in a file not sorted by firm: the same message as one shard;
    counts are whole-file counts and the first keys are the first in the file."""
    f = _panel()
    conflicts = ["F035", "F003", "F020", "F012", "F039", "F001", "F027"]
    extra = []
    for fid in conflicts:  # a second row with another value added for one year of each
        row = f.loc[(f["firm_id"] == fid) & (f["year"] == 2012)].copy()
        row["value_added"] += 1
        extra.append(row)
    f = pd.concat([f, *extra], ignore_index=True)
    f["employees"] = f["employees"].astype(object)
    for i in (7, 50, 120, 190, 230, 239):
        f.loc[i, "employees"] = -1.0  # negative
    f["turnover"] = f["turnover"].astype(object)
    for i in (3, 88, 150, 201, 222, 235, 238):
        f.loc[i, "turnover"] = "n.a."  # text in a numeric column (the reader's fast path restarts)
    f.loc[[30, 160], "firm_id"] = None
    d = deflators_frame(years=range(2010, 2016))
    d = d[~(((d["nace2"] == "28") & (d["year"] == 2014)) | ((d["nace2"] == "25") & (d["year"] == 2011)))]
    params = project(tmp_path, firms=f, deflators=d, years=[2010, 2015])

    one, many = _both(shards, lambda: _message(params))
    assert many == one
    ok = f[f["firm_id"].notna()]
    dup = ok[ok.duplicated(["firm_id", "year"], keep=False)]
    first = _keys(dup.drop_duplicates(["firm_id", "year"]), np.ones(len(dup) // 2, bool))
    assert len(first) == 7 and first[:5] != sorted(first)[:5]  # file order is not firm order
    assert "7 firm-year(s) appear more than once with different values (conflicting duplicates, 14 rows" in one
    assert "first keys (firm_id, year): " + ", ".join(first[:5]) + " (+2 more)" in one
    assert "6 negative value(s)" in one and "7 value(s) are not numbers" in one and "2 row(s) without a firm id" in one
    assert "first data rows (year): 31 (" in one
    assert "2 sector-year(s) of the firm panel have no deflator" in one and "(25, 2011), (28, 2014)" in one


def test_log_policy_fail_across_shards(tmp_path, shards):
    f = _panel()
    zero = f.index[f["firm_id"].isin(["F039", "F002", "F021", "F010", "F033", "F017"]) & (f["year"] == 2013)]
    f.loc[zero, "value_added"] = 0.0
    params = project(tmp_path, firms=f, deflators=deflators_frame(years=range(2010, 2016)), log_nonpositive="fail")
    one, many = _both(shards, lambda: _message(params))
    assert many == one
    shown = _keys(f, f.index.isin(zero))
    assert "6 row(s) with value_added <= 0" in one and ", ".join(shown[:5]) + " (+1 more)" in one


def test_nothing_left_and_header_only_across_shards(tmp_path, shards):
    params = project(tmp_path / "a", firms=_panel(), deflators=deflators_frame(years=range(2010, 2016)), years=[1990, 1995])
    one, many = _both(shards, lambda: _message(params))
    assert many == one and "no rows left after the exclusions (outside_window: 240); the file's years are 2010-2015" in one
    params = project(tmp_path / "b", firms=_panel().iloc[:0])
    one, many = _both(shards, lambda: _message(params))
    assert many == one and "no data rows" in one


# ------------------------------------------------------------------------------------------
# (b) temporary shards removed; (c) a failed ingest writes nothing
# ------------------------------------------------------------------------------------------
def _tmpdir(tmp_path, monkeypatch):
    import tempfile

    d = tmp_path / "systmp"
    d.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(d))
    return d


def test_temporary_shards_removed_after_success_and_failure(tmp_path, shards, monkeypatch):
    systmp = _tmpdir(tmp_path, monkeypatch)
    shards(MANY)
    good = project(tmp_path / "good", firms=_panel(), deflators=deflators_frame(years=range(2010, 2016)))
    assert len(ingest(good).panel) == 240
    assert list(systmp.iterdir()) == []
    f = _panel()
    f.loc[f["firm_id"] == "F039", "employees"] = -1.0
    with pytest.raises(BadInputError):
        ingest(project(tmp_path / "bad", firms=f, deflators=deflators_frame(years=range(2010, 2016))))
    assert list(systmp.iterdir()) == []

    calls = []

    def broken(*args, **kwargs):  # an unexpected error half-way through the shards
        calls.append(1)
        if len(calls) == 3:
            raise RuntimeError("boom")
        return derive(*args, **kwargs)

    derive = ingest_mod._derive
    monkeypatch.setattr(ingest_mod, "_derive", broken)
    with pytest.raises(RuntimeError, match="boom"):
        ingest(good)
    assert list(systmp.iterdir()) == []


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


def test_stage_success_leaves_only_outputs_and_failure_writes_nothing(tmp_path, shards, monkeypatch):
    systmp = _tmpdir(tmp_path, monkeypatch)
    shards(MANY)
    good = project(tmp_path, firms=_panel(), deflators=deflators_frame(years=range(2010, 2016)))
    interim = tmp_path / "data" / "interim"
    ingest_stage.run(good)
    assert _files(interim) == ["collaborations.parquet", "costs.parquet", "ingest_flow.json", "membership.parquet", "other_programme.parquet", "panel.parquet"]
    before = {p: (interim / p).read_bytes() for p in _files(interim)}
    assert pd.read_parquet(interim / "panel.parquet").shape[0] == 240

    # a defect in the last firms only: the first shards were already written when it is found
    f = _panel()
    f.loc[f["firm_id"] >= "F038", "value_added"] = 0.0
    (tmp_path / "data/raw/firms.csv").write_text(f.to_csv(index=False))
    raw = yaml.safe_load((tmp_path / "params.yaml").read_text())
    raw["ingest"]["log_nonpositive"] = "fail"
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(raw, sort_keys=False))
    with pytest.raises(BadInputError, match="12 row"):
        ingest_stage.run(load_params(tmp_path / "params.yaml"))
    assert _files(interim) == sorted(before) and all((interim / p).read_bytes() == b for p, b in before.items())
    assert list(systmp.iterdir()) == []

    fresh = tmp_path / "fresh"
    bad_fresh = project(fresh, firms=f, deflators=deflators_frame(years=range(2010, 2016)), log_nonpositive="fail")
    with pytest.raises(BadInputError):
        ingest_stage.run(bad_fresh)
    assert _files(fresh / "data" / "interim") == []


def test_panel_path_streams_instead_of_returning(tmp_path, shards):
    shards(MANY)
    params = project(tmp_path, firms=_panel(), membership=membership_frame(), deflators=deflators_frame(years=range(2010, 2016)))
    out = ingest(params, panel_path=tmp_path / "panel.parquet")
    assert out.panel is None
    shards(ONE)
    ref = ingest(params).panel
    got = pd.read_parquet(tmp_path / "panel.parquet")
    assert len(got) == len(ref) == out.flow["firms"]["rows_kept"]
    assert got["firm_id"].tolist() == ref["firm_id"].tolist()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
