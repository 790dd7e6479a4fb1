"""pipeline.readers: round trips for every format, number formats, hostile and broken files."""

from __future__ import annotations

import io
import zipfile

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from models.errors import BadInputError, ConfigError
from pipeline.readers import load_table, parse_numbers, read_table

FRAME = pd.DataFrame(
    {
        "firm_id": ["00123", "F2", "F3"],
        "year": [2010, 2011, 2012],
        "value_added": [1234.5, np.nan, -0.25],
        "nace2": ["05", "25", "28"],
    }
)
NUM = ["year", "value_added"]
TXT = ["firm_id", "nace2"]


def _check(df: pd.DataFrame) -> None:
    assert df["firm_id"].tolist() == ["00123", "F2", "F3"]  # ids stay text, zero padding kept
    assert df["nace2"].tolist() == ["05", "25", "28"]
    assert df["year"].dtype == np.float64 and df["year"].tolist() == [2010.0, 2011.0, 2012.0]
    np.testing.assert_array_equal(df["value_added"].to_numpy(), [1234.5, np.nan, -0.25])


def test_csv_semicolon_decimal_comma_roundtrip(tmp_path):
    p = tmp_path / "f.csv"
    FRAME.to_csv(p, sep=";", decimal=",", index=False)
    assert "1234,5" in p.read_text()
    _check(read_table(p, {"sep": ";", "decimal": ","}, role="firms", numeric=NUM, text=TXT))


def test_csv_thousands_and_na_values(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("firm_id;year;value_added;nace2\n00123;2010;1.234,5;05\nF2;2011;n.a.;25\nF3;2012;-0,25;28\n", encoding="utf-8")
    opts = {"sep": ";", "decimal": ",", "thousands": ".", "na_values": ["n.a."]}
    _check(read_table(p, opts, role="firms", numeric=NUM, text=TXT))


def test_csv_latin1_declared(tmp_path):
    p = tmp_path / "f.csv"
    p.write_bytes("firm_id,year,value_added,nace2\n00123,2010,1234.5,05\nF2,2011,,25\nF3,2012,-0.25,28\n".replace("F3", "F3").encode("latin-1"))
    _check(read_table(p, {"encoding": "latin-1"}, role="firms", numeric=NUM, text=TXT))


def test_parquet_roundtrip(tmp_path):
    p = tmp_path / "f.parquet"
    FRAME.to_parquet(p)
    _check(read_table(p, {}, role="firms", numeric=NUM, text=TXT))


def test_dta_roundtrip(tmp_path):
    p = tmp_path / "f.dta"
    FRAME.to_stata(p, write_index=False)
    _check(read_table(p, {}, role="firms", numeric=NUM, text=TXT))


def test_xlsx_roundtrip_and_sheet(tmp_path):
    p = tmp_path / "f.xlsx"
    with pd.ExcelWriter(p, engine="openpyxl") as w:
        pd.DataFrame({"x": [1]}).to_excel(w, sheet_name="notes", index=False)
        FRAME.to_excel(w, sheet_name="panel", index=False)
    _check(read_table(p, {"sheet": "panel"}, role="firms", numeric=NUM, text=TXT))
    _check(read_table(p, {"sheet": 1}, role="firms", numeric=NUM, text=TXT))
    with pytest.raises(BadInputError, match="no sheet 'nope'"):
        read_table(p, {"sheet": "nope"}, role="firms")


def test_numbers_stored_as_numbers_become_integer_text(tmp_path):
    """Stata/Excel ids stored as numbers come back as '123', never '123.0'."""
    p = tmp_path / "f.dta"
    pd.DataFrame({"firm_id": [123, 7], "v": [1.0, 2.0]}).to_stata(p, write_index=False)
    assert read_table(p, {}, role="firms", text=["firm_id"])["firm_id"].tolist() == ["123", "7"]
    p = tmp_path / "g.xlsx"
    pd.DataFrame({"firm_id": [123.0, 7.0]}).to_excel(p, index=False)
    assert read_table(p, {}, role="firms", text=["firm_id"])["firm_id"].tolist() == ["123", "7"]


@pytest.mark.parametrize(
    "text, decimal, thousands, value, bad",
    [
        ("1234.5", ".", None, 1234.5, False),
        (" 3 ", ".", None, 3.0, False),
        ("1e3", ".", None, 1000.0, False),
        ("", ".", None, np.nan, False),
        ("1.234,5", ",", ".", 1234.5, False),
        ("12 345", ".", " ", 12345.0, False),
        ("12\u00a0345,5", ",", " ", 12345.5, False),
        ("1.5", ",", None, np.nan, True),  # '.' is not the declared decimal mark
        ("1.234,5", ".", None, np.nan, True),
        ("12 345", ".", None, np.nan, True),
        ("n.a.", ".", None, np.nan, True),
        ("–", ".", None, np.nan, True),
    ],
)
def test_parse_numbers(text, decimal, thousands, value, bad):
    vals, mask = parse_numbers(pa.array([text, "1"]), decimal, thousands)
    np.testing.assert_array_equal(vals, [value, 1.0])
    assert (mask is not None and bool(mask[0])) == bad
    assert mask is None or not mask[1]


def test_non_numeric_text_is_reported_not_coerced(tmp_path):
    p = tmp_path / "f.csv"
    p.write_text("firm_id,year,employees\nA,2010,12\nB,2010,n.a.\nC,2010,12 345\nD,2010,–\n", encoding="utf-8")
    t = load_table(p, {}, role="firms", numeric=["year", "employees"], text=["firm_id"])
    issue = t.issues["employees"]
    assert issue.count == 3 and issue.rows == [1, 2, 3]
    assert issue.examples == ["n.a.", "12 345", "–"]
    assert np.isnan(t.frame["employees"].to_numpy()[1:]).all()
    with pytest.raises(BadInputError) as e:
        read_table(p, {}, role="firms", numeric=["year", "employees"])
    msg = str(e.value)
    assert "f.csv" in msg and "'employees'" in msg and "3 value(s)" in msg and "'n.a.'" in msg and "decimal" in msg


def test_usecols_only_reads_mapped_columns_and_names_missing(tmp_path):
    p = tmp_path / "f.csv"
    FRAME.to_csv(p, index=False)
    df = read_table(p, {}, role="firms", columns=["firm_id", "year"], numeric=["year"], text=["firm_id"])
    assert list(df.columns) == ["firm_id", "year"]
    with pytest.raises(BadInputError) as e:
        read_table(p, {}, role="firms", columns=["firm_id", "employees"])
    assert "'employees'" in str(e.value) and "'value_added'" in str(e.value)  # lists the file's columns


def _dta_bytes() -> bytes:
    buf = io.BytesIO()
    FRAME.to_stata(buf, write_index=False)
    return buf.getvalue()


def _xlsx_bytes() -> bytes:
    buf = io.BytesIO()
    FRAME.to_excel(buf, index=False)
    return buf.getvalue()


def _parquet_bytes() -> bytes:
    buf = io.BytesIO()
    FRAME.to_parquet(buf)
    return buf.getvalue()


def _zip_bomb() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("[Content_Types].xml", "<Types/>")
        z.writestr("xl/worksheets/sheet1.xml", b"\0" * (4 << 20))  # 4 MiB of zeros: ~1000:1
    return buf.getvalue()


def _xlsx_with_entities() -> bytes:
    src = zipfile.ZipFile(io.BytesIO(_xlsx_bytes()))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for info in src.infolist():
            data = src.read(info)
            if info.filename == "xl/worksheets/sheet1.xml":
                body = data.split(b"?>", 1)[1] if data.startswith(b"<?xml") else data
                data = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]>' + body
            z.writestr(info, data)
    return buf.getvalue()


HOSTILE = {
    "empty csv": ("f.csv", b"", "empty"),
    "empty dta": ("f.dta", b"", "empty"),
    "truncated dta": ("f.dta", _dta_bytes()[:300], "Stata"),
    "random dta": ("f.dta", bytes(range(256)) * 8, "Stata"),
    "truncated parquet": ("f.parquet", _parquet_bytes()[:200], "Parquet"),
    "text as parquet": ("f.parquet", b"firm_id,year\nA,2010\n", "Parquet"),
    "truncated xlsx": ("f.xlsx", _xlsx_bytes()[:500], "xlsx"),
    "csv renamed xlsx": ("f.xlsx", b"firm_id,year\nA,2010\n", "xlsx"),
    "zip bomb xlsx": ("f.xlsx", _zip_bomb(), "zip bomb"),
    "xlsx with DTD entities": ("f.xlsx", _xlsx_with_entities(), "DTD"),
    "latin-1 declared utf-8": ("f.csv", "firm_id,year\nJos\xe9,2010\n".encode("latin-1"), "encoding"),
    "utf-16 declared utf-8": ("f.csv", "firm_id,year\nA,2010\n".encode("utf-16"), "encoding"),
    "ragged rows": ("f.csv", b"firm_id,year,employees\nA,2010,1\nB,2011,2,7,8\n", "number of fields"),
    "wrong separator": ("f.csv", b"firm_id;year;employees\nA;2010;1\n", "separator ';'"),
    "unsupported type": ("f.sav", b"xxxx", "unsupported file type"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_or_broken_files_raise_bad_input(tmp_path, case):
    name, content, needle = HOSTILE[case]
    p = tmp_path / name
    p.write_bytes(content)
    with pytest.raises(BadInputError) as e:
        read_table(p, {"path": f"data/raw/{name}"}, role="firms", columns=["firm_id", "year"], numeric=["year"], text=["firm_id"])
    msg = str(e.value)
    assert f"data/raw/{name}" in msg  # the file is named
    assert needle.lower() in msg.lower(), msg
    assert e.value.exit_code == 2


def test_missing_file_and_bad_options(tmp_path):
    with pytest.raises(BadInputError, match="file not found"):
        read_table(tmp_path / "nope.csv", {"path": "data/raw/nope.csv"}, role="firms")
    p = tmp_path / "f.csv"
    FRAME.to_csv(p, index=False)
    with pytest.raises(ConfigError, match="unknown encoding"):
        read_table(p, {"encoding": "klingon"}, role="firms")
    with pytest.raises(ConfigError, match="decimal and thousands"):
        read_table(p, {"decimal": ",", "thousands": ","}, role="firms")


def test_csv_streams_in_blocks(tmp_path, monkeypatch):
    """Many small blocks give the same frame and the right row positions for problems."""
    import pipeline.readers as r

    n = 5000
    df = pd.DataFrame({"firm_id": [f"F{i:05d}" for i in range(n)], "year": 2010, "v": np.arange(n, dtype=float)})
    df["v"] = df["v"].astype(object)
    df.loc[4321, "v"] = "oops"
    p = tmp_path / "f.csv"
    df.to_csv(p, index=False)
    monkeypatch.setattr(r, "BLOCK_SIZE", 4096)
    t = load_table(p, {}, role="firms", numeric=["year", "v"], text=["firm_id"])
    assert len(t.frame) == n and t.issues["v"].rows == [4321]
    assert t.frame["firm_id"].iloc[-1] == f"F{n - 1:05d}" and t.frame["v"].iloc[4320] == 4320.0
