"""Small hand-made inputs for the ingest / build_groups tests (no generator needed).

``firms_frame()`` is a 4-firm x 4-year panel with the raw file's column names (as in
data/raw/firms.csv); ``membership_frame()`` a register for it; ``deflators_frame()`` the
price indices. ``project(tmp_path, ...)`` writes them (CSV unless a file is given as text
or bytes) plus a params.yaml and returns the loaded :class:`~pipeline.config.Params`.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

from pipeline.config import load_params

COLUMNS = {
    "firm_id": "firm_id",
    "year": "year",
    "sector": "nace2",
    "region": "nuts2",
    "founding_year": "founding_year",
    "employment": "employees",
    "turnover": "turnover",
    "value_added": "value_added",
    "wage_bill": "wage_bill",
    "capital": "capital",
    "intermediates": "intermediates",
    "exports": "exports",
    "patents": "patent_applications",
    "rd": "rd_expenditure",
    "group_id": "group_id",
}
ALL_DERIVED = [
    "labour_productivity",
    "log_labour_productivity",
    "export_status",
    "export_intensity",
    "log_exports",
    "employment_growth",
    "rd_intensity",
    "wage_per_employee",
    "log_employment",
    "log_capital",
    "log_intermediates",
    "log_value_added",
    "real_value_added",
    "real_exports",
    "patent_status",
]


def firms_frame(years=(2010, 2011, 2012, 2013)) -> pd.DataFrame:
    """4 firms x len(years) years; every value is a simple function of (firm, year)."""
    rows = []
    for i, fid in enumerate(["F001", "F002", "F003", "F004"]):
        for t, y in enumerate(years):
            emp = 10.0 * (i + 1) + t
            rows.append(
                {
                    "firm_id": fid,
                    "year": y,
                    "nace2": "25" if i < 2 else "28",
                    "nuts2": "R01" if i % 2 == 0 else "R02",
                    "founding_year": 1990 + i,
                    "employees": emp,
                    "turnover": 1000.0 * (i + 1) + 10 * t,
                    "value_added": 400.0 * (i + 1) + 5 * t,
                    "wage_bill": 200.0 * (i + 1),
                    "capital": 300.0 * (i + 1),
                    "intermediates": 500.0 * (i + 1),
                    "exports": 0.0 if i == 3 else 100.0 * (i + 1) + t,
                    "patent_applications": float(t % 2),
                    "rd_expenditure": 10.0 * i,
                    "group_id": f"G{i // 2}",
                }
            )
    return pd.DataFrame(rows)


def membership_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "firm_id": ["F001", "F002"],
            "cluster_id": ["CL01", "CL02"],
            "join_year": [2012, 2011],
            "leave_year": pd.array([pd.NA, 2012], dtype="Int64"),
        }
    )


def deflators_frame(years=(2010, 2011, 2012, 2013)) -> pd.DataFrame:
    rows = [{"nace2": s, "year": y, "deflator": 1.0 + 0.1 * (y - 2010) + (0.05 if s == "28" else 0.0)} for s in ("25", "28") for y in years]
    return pd.DataFrame(rows)


def _write(path: Path, content: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, pd.DataFrame):
        content.to_csv(path, index=False)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")


def project(
    tmp_path: Path,
    *,
    firms: Any = None,
    membership: Any = None,
    deflators: Any = "default",
    firms_name: str = "firms.csv",
    membership_name: str = "membership.csv",
    firms_options: dict | None = None,
    columns: dict | None = None,
    derive: list[str] | None = None,
    years: list[int] | None = None,
    log_nonpositive: str = "drop",
    **ingest_extra,
):
    """Write the inputs under tmp_path/data/raw and a params.yaml; return Params."""
    raw = tmp_path / "data" / "raw"
    _write(raw / firms_name, firms_frame() if firms is None else firms)
    _write(raw / membership_name, membership_frame() if membership is None else membership)
    data = {
        "firms": {"path": f"data/raw/{firms_name}", **(firms_options or {})},
        "membership": {"path": f"data/raw/{membership_name}"},
        "deflators": None,
    }
    if deflators is not None:
        _write(raw / "deflators.csv", deflators_frame() if isinstance(deflators, str) and deflators == "default" else deflators)
        data["deflators"] = {"path": "data/raw/deflators.csv"}
    params = {
        "seed": 1,
        "data": data,
        "columns": copy.deepcopy(columns if columns is not None else COLUMNS),
        "membership_columns": {f: f for f in ("firm_id", "cluster_id", "join_year", "leave_year")},
        "ingest": {
            "years": years,
            "derive": list(ALL_DERIVED if derive is None else derive),
            "log_nonpositive": log_nonpositive,
            **ingest_extra,
        },
    }
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(params, sort_keys=False))
    return load_params(p)


def processed_inputs(spells: list[tuple[str, str, int, int | None]], firms=("A", "B", "C", "D", "E", "F"), years=(2008, 2015)):
    """Interim panel (balanced, firm i in sector/region by index) + register for build_groups."""
    ys = np.arange(years[0], years[1] + 1)
    n = len(firms)
    panel = pd.DataFrame(
        {
            "firm_id": pd.array(np.repeat(firms, len(ys)), dtype="str"),
            "year": np.tile(ys, n).astype(np.int64),
            "sector": pd.array(np.repeat([f"S{i % 2}" for i in range(n)], len(ys)), dtype="str"),
            "region": pd.array(np.repeat([f"R{i % 3}" for i in range(n)], len(ys)), dtype="str"),
            "y": np.arange(n * len(ys), dtype=float),
        }
    )
    mem = pd.DataFrame(
        {
            "firm_id": pd.array([s[0] for s in spells], dtype="str"),
            "cluster_id": pd.array([s[1] for s in spells], dtype="str"),
            "join_year": np.array([s[2] for s in spells], dtype=np.int64),
            "leave_year": pd.array([s[3] for s in spells], dtype="Int64"),
        }
    )
    return panel, mem
