"""``cluster-impact init`` through the real CLI (issue 14, item 3): registers with German,
French and English column names in Stata, Excel and CSV, the embedded sample, refusal to
overwrite, and a run on a proposed params file."""

from __future__ import annotations

import datetime as dt
import shutil

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import load_params
from pipeline.simulate import simulate_economy
from pipeline.synonyms import match_score, normalise
from tests._project import REPO, cli

GERMAN = {
    "firm_id": "betrieb_id", "year": "jahr", "nace2": "wz08", "nuts2": "kreis", "founding_year": "gruendungsjahr",
    "employees": "Beschäftigte", "turnover": "umsatz", "value_added": "wertschoepfung", "wage_bill": "personalkosten",
    "capital": "sachanlagen", "intermediates": "vorleistungen", "exports": "exporte", "patent_applications": "patentanmeldungen",
    "rd_expenditure": "fue_aufwand", "group_id": "konzern_id",
}
FRENCH = {
    "firm_id": "siren", "year": "année", "nace2": "naf", "nuts2": "departement", "employees": "effectif",
    "turnover": "chiffre_affaires", "value_added": "valeur_ajoutee", "wage_bill": "masse_salariale",
    "capital": "immobilisations", "intermediates": "consommations_intermediaires", "exports": "exportations",
    "patent_applications": "brevets",
}
# the pipeline names behind the simulated file's columns (the shipped params.yaml mapping)
PIPELINE = {v: k for k, v in yaml.safe_load((REPO / "params.yaml").read_text())["columns"].items()}


@pytest.fixture(scope="module")
def econ():
    return simulate_economy(n_firms=300, seed=11)


def _expected(names: dict[str, str]) -> dict[str, str]:
    return {PIPELINE[k]: v for k, v in names.items()}


def _init(root, *args):
    return cli("init", *args, cwd=root)


def test_german_stata_panel_and_excel_register(tmp_path, econ):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    f = econ.firms.drop(columns=["x_coord", "y_coord"]).rename(columns=GERMAN)
    f["betrieb_id"] = f["betrieb_id"].str[1:].astype(int)  # numeric ids, as Stata files hold them
    f["umsatz_vorjahr"] = f.groupby("betrieb_id")["umsatz"].shift()  # an extra column: passes through
    f["rechtsform"] = np.where(f["betrieb_id"] % 3 == 0, "GmbH", "AG")
    f.loc[f.index[::17], "wertschoepfung"] = np.nan  # Stata missing values
    f.to_stata(raw / "betriebe.dta", write_index=False, version=118)
    m = econ.membership.copy()
    start = [dt.datetime(int(y), 1 + i % 12, 1) for i, y in enumerate(m["join_year"])]
    end = [None if pd.isna(y) else dt.datetime(int(y), 6, 30) for y in m["leave_year"]]
    reg = pd.DataFrame({"unternehmen_id": m["firm_id"].str[1:].astype(int), "netzwerk": m["cluster_id"],
                        "beitrittsdatum": start, "austrittsdatum": end})
    with pd.ExcelWriter(raw / "register.xlsx") as xw:
        reg.to_excel(xw, sheet_name="Mitglieder", index=False)
        pd.DataFrame({"hinweis": ["Stand 2023"]}).to_excel(xw, sheet_name="Info", index=False)

    res = _init(tmp_path, "--firms", "data/raw/betriebe.dta", "--membership", "data/raw/register.xlsx")
    assert res.returncode == 0, res.stderr
    text = (tmp_path / "params.yaml").read_text(encoding="utf-8")
    params = load_params(tmp_path / "params.yaml").raw
    assert params["columns"] == _expected(GERMAN)
    assert params["membership_columns"] == {"firm_id": "unternehmen_id", "cluster_id": "netzwerk",
                                            "join_year": "beitrittsdatum", "leave_year": "austrittsdatum"}
    assert params["data"]["membership"] == {"path": "data/raw/register.xlsx", "sheet": "Mitglieder"}
    assert params["ingest"]["years"] == [2008, 2022]
    # every derived outcome needs only mapped columns; TFP has its four inputs
    assert "log_tfp" in params["ingest"]["derive"] and "log_labour_productivity" in params["ingest"]["derive"]
    assert params["estimate"]["outcome_estimators"]["patents"][-2:] == ["ppml", "etwfe_poisson"]
    # why each choice was made, and what passes through
    assert "German 'beschaeftigte'" in text
    assert "#   umsatz_vorjahr: numeric" in text and "#   rechtsform: text" in text
    assert "holds dates (date cells)" in text
    n_multi = int((m.groupby("firm_id")["cluster_id"].nunique() > 1).sum())
    assert n_multi and f"{n_multi} firm(s) in more than one initiative" in text


def _french(root, econ):
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    f = econ.firms[list(FRENCH)].rename(columns=FRENCH)
    f.to_csv(raw / "entreprises.csv", sep=";", decimal=",", index=False, encoding="cp1252")
    m = econ.membership.rename(columns={"firm_id": "siren", "cluster_id": "pole", "join_year": "annee_adhesion", "leave_year": "annee_sortie"})
    m.to_csv(raw / "adhesions.csv", sep=";", index=False, encoding="cp1252")
    res = _init(root, "--firms", "data/raw/entreprises.csv", "--membership", "data/raw/adhesions.csv", "--out", "params.yaml")
    assert res.returncode == 0, res.stderr
    return root / "params.yaml"


def test_french_csv_semicolon_decimal_comma(tmp_path, econ):
    params = load_params(_french(tmp_path, econ)).raw
    assert params["columns"] == _expected(FRENCH)
    assert params["data"]["firms"] == {"path": "data/raw/entreprises.csv", "sep": ";", "decimal": ",", "encoding": "cp1252"}
    assert params["membership_columns"] == {"firm_id": "siren", "cluster_id": "pole", "join_year": "annee_adhesion", "leave_year": "annee_sortie"}
    assert "log_tfp" in params["ingest"]["derive"]  # capital, intermediates, value added, employment all mapped
    assert "rd_intensity" not in params["ingest"]["derive"]  # no R&D column


@pytest.mark.slow  # ~100 s on 2 shared cores: the proposed design in full (6 outcomes, HonestDiD, PDF)
def test_french_proposal_runs_through(tmp_path, econ):
    """The second of the three commands, on the params file exactly as init wrote it."""
    path = _french(tmp_path, econ)
    res = cli("run", "--params", path.name, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    est = pd.read_csv(tmp_path / "reports/estimates.csv")
    assert set(load_params(path).raw["estimate"]["outcomes"]) == set(est["outcome"])
    assert (tmp_path / "reports/report.html").is_file() and (tmp_path / "reports/report.pdf").is_file()


def test_embedded_sample_gives_the_shipped_mapping(tmp_path):
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    res = _init(tmp_path, "--firms", "data/raw/firms.csv", "--membership", "data/raw/membership.csv",
                "--deflators", "data/raw/deflators.csv", "--out", "proposed.yaml")
    assert res.returncode == 0, res.stderr
    shipped = yaml.safe_load((REPO / "params.yaml").read_text())
    proposed = load_params(tmp_path / "proposed.yaml").raw
    assert proposed["columns"] == shipped["columns"]
    assert proposed["membership_columns"] == shipped["membership_columns"]
    assert proposed["ingest"]["years"] == shipped["ingest"]["years"]
    assert set(proposed["ingest"]["derive"]) == set(shipped["ingest"]["derive"])
    # init does not propose the collaboration edge list, so not its outcomes (README: Collaboration outcomes)
    from models.collaboration import OUTCOMES as COLLAB

    assert proposed["estimate"]["outcomes"] == [o for o in shipped["estimate"]["outcomes"] if o not in COLLAB]
    assert proposed["estimate"]["outcome_estimators"] == {o: k for o, k in shipped["estimate"]["outcome_estimators"].items() if o not in COLLAB}
    # units are not in a data file: the proposal states none (the report then never guesses a currency)
    assert proposed["units"] == {"currency": None, "scale": 1, "price_base_year": None, "columns": {}}
    assert "units:" in (tmp_path / "proposed.yaml").read_text()


def test_never_overwrites(tmp_path):
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    (tmp_path / "params.yaml").write_text("seed: 1\n")
    res = _init(tmp_path, "--firms", "data/raw/firms.csv", "--membership", "data/raw/membership.csv")
    assert res.returncode == 5
    assert "never overwrites" in res.stderr and "--out" in res.stderr
    assert (tmp_path / "params.yaml").read_text() == "seed: 1\n"
    assert not list(tmp_path.glob(".*init-tmp"))


def test_files_outside_the_params_folder_and_unrecognised_columns(tmp_path):
    shutil.copytree(REPO / "data" / "raw", tmp_path / "data" / "raw")
    (tmp_path / "sub").mkdir()
    res = _init(tmp_path, "--firms", "data/raw/firms.csv", "--membership", "data/raw/membership.csv", "--out", "sub/params.yaml")
    assert res.returncode == 5 and "outside" in res.stderr
    pd.DataFrame({"a": ["x", "y"], "b": [1.5, 2.5]}).to_csv(tmp_path / "data" / "raw" / "odd.csv", index=False)
    res = _init(tmp_path, "--firms", "data/raw/odd.csv", "--membership", "data/raw/membership.csv")
    assert res.returncode == 2
    assert "no column recognised as firm_id, year" in res.stderr and "--column firm_id=" in res.stderr
    assert not (tmp_path / "params.yaml").exists()
    # forced on the command line: a name the table does not know
    pd.DataFrame({"unit": ["x", "y", "x", "y"], "t": [2010, 2010, 2011, 2011]}).to_csv(tmp_path / "data" / "raw" / "odd2.csv", index=False)
    res = _init(tmp_path, "--firms", "data/raw/odd2.csv", "--membership", "data/raw/membership.csv", "--column", "firm_id=unit", "--column", "year=t")
    assert res.returncode == 0, res.stderr
    assert load_params(tmp_path / "params.yaml").raw["columns"] == {"firm_id": "unit", "year": "t"}


@pytest.mark.parametrize("column, synonym, score", [
    ("Beschäftigte", "beschaeftigte", 100), ("BESCHAEFTIGTE", "beschäftigte", 100), ("Année", "annee", 100), ("año", "ano", 100),
    ("anzahl_beschaeftigte", "beschaeftigte", 55), ("Chiffre d'affaires", "chiffre_d_affaires", 100),
    ("umsatzerloese_eur", "umsatz", 30), ("cluster_id", "id", 55), ("emp", "employees", 0), ("turnover", "ca", 0),
])
def test_name_matching(column, synonym, score):
    assert match_score(column, synonym) == score, (column, normalise(column), synonym)
