"""pipeline.groups.build_groups on hand-made panels: coding, every policy counted, flags, summary."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from models.errors import BadInputError, ConfigError
from pipeline.groups import build_groups
from pipeline.io import dumps_json
from tests._factories import processed_inputs

YEARS = (2008, 2015)  # 8 years per firm
# firms A..F; sector S{i%2}: A,C,E = S0, B,D,F = S1; region R{i%3}: A,D = R0, B,E = R1, C,F = R2
SPELLS = [
    ("A", "CL1", 2011, None),  # member
    ("B", "CL2", 2008, None),  # always member (joins in the first year)
    ("C", "CL3", 2013, 2014),  # leaver (left before 2015)
    ("D", "CL2", 2018, None),  # after the window
    ("A", "CL4", 2013, None),  # A's second spell: multi_spell
    ("Z", "CL9", 2011, None),  # not in the panel
]


def _firm(out, fid):
    return out.panel[out.panel["firm_id"] == fid]


def test_coding_and_dtypes():
    panel, mem = processed_inputs(SPELLS)
    out = build_groups(panel, mem, {}, YEARS)
    p = out.panel
    assert list(p.columns[-9:]) == ["first_treat", "ever_member", "post", "rel_time", "cluster_id", "leave_year", "colocated", "eligible", "exposure_year"]
    assert str(p["exposure_year"].dtype) == "Int64"
    # exposure year: the first join in the co-located firm's cell, missing for everyone else
    expo = p.loc[p["colocated"], "exposure_year"]
    assert expo.notna().all() and p.loc[~p["colocated"], "exposure_year"].isna().all()
    assert p["first_treat"].dtype == np.int64 and p["ever_member"].dtype == bool and p["post"].dtype == bool
    assert str(p["rel_time"].dtype) == "Int64" and str(p["leave_year"].dtype) == "Int64" and str(p["cluster_id"].dtype) == "str"
    a = _firm(out, "A")
    assert (a["first_treat"] == 2011).all() and (a["cluster_id"] == "CL1").all()  # cluster of the first spell
    assert a["rel_time"].tolist() == list(range(2008 - 2011, 2016 - 2011))
    assert a["post"].tolist() == [y >= 2011 for y in range(2008, 2016)]
    assert a["leave_year"].isna().all()
    c = _firm(out, "C")  # leaver under 'absorbing': treated from 2013 on, also after leaving
    assert (c["first_treat"] == 2013).all() and c["post"].tolist() == [y >= 2013 for y in range(2008, 2016)]
    assert (c["leave_year"] == 2014).all()
    d = _firm(out, "D")  # joined after the window: never member
    assert (d["first_treat"] == 0).all() and not d["ever_member"].any() and d["rel_time"].isna().all() and d["cluster_id"].isna().all()
    assert not d["post"].any()
    assert "B" not in set(p["firm_id"])  # always member dropped
    assert p.iloc[:, :5].equals(panel[panel["firm_id"] != "B"].reset_index(drop=True))  # interim columns unchanged


def test_status_counts_and_identity():
    panel, mem = processed_inputs(SPELLS)
    out = build_groups(panel, mem, {}, YEARS)
    f = out.flow
    assert f["firms_by_status"] == {"never": 2, "member": 1, "leaver": 1, "always_member": 1, "after_window": 1, "multi_spell": 1}
    assert f["rows_in"] == 48 and f["excluded"] == {"always_treated": 8, "leaver": 0, "min_pre_periods": 0}
    assert f["rows_in"] == f["rows_kept"] + sum(f["excluded"].values()) and f["rows_kept"] == len(out.panel)
    assert f["firms_in"] == 6 and f["firms_kept"] == 5 and f["treated_firms_kept"] == 2 and f["never_member_firms_kept"] == 3
    assert f["spells"] == {"rows_in": 6, "not_in_panel": 1, "used": 5}
    json.loads(dumps_json(f))


def test_leavers_drop_counted():
    panel, mem = processed_inputs(SPELLS)
    out = build_groups(panel, mem, {"leavers": "drop"}, YEARS)
    assert out.flow["excluded"] == {"always_treated": 8, "leaver": 8, "min_pre_periods": 0}
    assert out.flow["firms_excluded"]["leaver"] == 1 and "C" not in set(out.panel["firm_id"])
    assert len(out.panel) == 48 - 16


@pytest.mark.parametrize(
    "options, needles",
    [
        ({"leavers": "error"}, ["1 firm(s) left their cluster before 2015", "(C, CL3, 2013, 2014)", "build_groups.leavers"]),
        ({"always_treated": "error"}, ["1 firm(s) joined in or before the first panel year 2008", "(B, CL2, 2008, -)", "always_treated"]),
        ({"after_window": "error"}, ["1 firm(s) joined only after the last panel year 2015", "(D, CL2, 2018, -)", "after_window"]),
    ],
)
def test_error_policies_list_the_firms(options, needles):
    panel, mem = processed_inputs(SPELLS)
    with pytest.raises(BadInputError) as e:
        build_groups(panel, mem, options, YEARS)
    for n in needles:
        assert n in str(e.value), (n, str(e.value))


def test_all_error_policies_in_one_message():
    panel, mem = processed_inputs(SPELLS)
    with pytest.raises(BadInputError, match="3 problem"):
        build_groups(panel, mem, {"leavers": "error", "always_treated": "error", "after_window": "error"}, YEARS)


def test_after_window_never_counted():
    panel, mem = processed_inputs(SPELLS)
    out = build_groups(panel, mem, {"after_window": "never"}, YEARS)
    assert out.flow["firms_by_status"]["after_window"] == 1
    assert any("coded as never members" in n for n in out.flow["notes"])


def test_min_pre_periods():
    # A joins 2011: 3 pre-periods (2008-2010); C joins 2013: 5
    panel, mem = processed_inputs(SPELLS)
    out = build_groups(panel, mem, {"min_pre_periods": 4}, YEARS)
    assert out.flow["excluded"]["min_pre_periods"] == 8 and "A" not in set(out.panel["firm_id"])
    out = build_groups(panel, mem, {"min_pre_periods": 3}, YEARS)
    assert out.flow["excluded"]["min_pre_periods"] == 0


def test_same_year_spells_take_smallest_cluster_and_leave_is_last():
    panel, mem = processed_inputs([("A", "CL7", 2011, 2012), ("A", "CL2", 2011, 2013)])
    out = build_groups(panel, mem, {}, YEARS)
    a = _firm(out, "A")
    assert (a["cluster_id"] == "CL2").all() and (a["leave_year"] == 2013).all()
    assert out.flow["firms_by_status"]["leaver"] == 1 and out.flow["firms_by_status"]["multi_spell"] == 1


def test_colocated_and_eligible():
    # members: A (S0, R0) and C (S0, R2); B (S1, R1) is an always member, dropped but still a spillover source
    panel, mem = processed_inputs([("A", "CL1", 2011, None), ("C", "CL1", 2012, None), ("B", "CL2", 2008, None)])
    out = build_groups(panel, mem, {}, YEARS)
    firm = out.panel.drop_duplicates("firm_id").set_index("firm_id")
    # D (S1, R0): region R0 has A -> eligible; cell (S1, R0) has no member -> not colocated
    # E (S0, R1): sector S0 has members; cell (S0, R1): no member but B is (S1, R1) -> not colocated
    # F (S1, R2): cell (S1, R2): none; eligible via region R2 (C)
    assert firm["colocated"].to_dict() == {"A": False, "C": False, "D": False, "E": False, "F": False}
    assert firm["eligible"].to_dict() == {"A": False, "C": False, "D": True, "E": True, "F": True}
    # a non-member in a member's cell is colocated
    panel2, mem2 = processed_inputs([("A", "CL1", 2011, None)], firms=("A", "B", "C", "D", "E", "F", "G"))
    firm2 = build_groups(panel2, mem2, {}, YEARS).panel.drop_duplicates("firm_id").set_index("firm_id")
    assert firm2["colocated"].to_dict()["G"]  # G is index 6: S0, R0 like A
    assert firm2["colocated"].sum() == 1 and not firm2.loc["A", "colocated"]


def test_summary_counts():
    panel, mem = processed_inputs(SPELLS)
    s = build_groups(panel, mem, {}, YEARS).summary
    assert list(s.columns) == ["dimension", "level", "n_firms", "n_firm_years", "n_members"]
    get = {(r.dimension, r.level): (r.n_firms, r.n_firm_years, r.n_members) for r in s.itertuples()}
    assert get[("cohort", "0")] == (3, 24, 0)
    assert get[("cohort", "2011")] == (1, 8, 1) and get[("cohort", "2013")] == (1, 8, 1)
    assert get[("cluster", "CL1")] == (1, 8, 1) and get[("cluster", "CL3")] == (1, 8, 1)
    # kept firms A, C, D, E, F: S0 = A, C, E; S1 = D, F
    assert get[("sector", "S0")] == (3, 24, 2) and get[("sector", "S1")] == (2, 16, 0)
    assert get[("region", "R0")] == (2, 16, 1)  # A, D
    assert sum(v[1] for k, v in get.items() if k[0] == "cohort") == 40


def test_years_default_to_panel_range_and_unsorted_panel():
    panel, mem = processed_inputs(SPELLS)
    shuffled = panel.sample(frac=1.0, random_state=np.random.default_rng(3)).reset_index(drop=True)
    out = build_groups(shuffled, mem, {}, None)
    assert out.flow["years"] == [2008, 2015]
    ref = build_groups(panel, mem, {}, YEARS).panel
    got = out.panel.sort_values(["firm_id", "year"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, ref)


def test_bad_options_are_config_errors():
    panel, mem = processed_inputs(SPELLS)
    with pytest.raises(ConfigError, match="build_groups.leavers"):
        build_groups(panel, mem, {"leavers": "maybe"}, YEARS)


def test_no_members_at_all():
    panel, mem = processed_inputs([])
    out = build_groups(panel, mem, {}, YEARS)
    assert (out.panel["first_treat"] == 0).all() and out.panel["cluster_id"].isna().all()
    assert out.flow["firms_by_status"]["never"] == 6 and not out.panel["eligible"].any()


@pytest.mark.slow
def test_speed_on_large_panel():
    """5M firm-years (250k firms x 20 years): well under a minute on one core."""
    import time

    n, t = 250_000, 20
    rng = np.random.default_rng(1)
    ids = np.array([f"F{i:07d}" for i in range(n)])
    panel = pd.DataFrame(
        {
            "firm_id": pd.array(np.repeat(ids, t), dtype="str"),
            "year": np.tile(np.arange(2003, 2003 + t), n).astype(np.int64),
            "sector": pd.array(np.repeat(rng.integers(10, 40, n).astype(str), t), dtype="str"),
            "region": pd.array(np.repeat(rng.integers(0, 20, n).astype(str), t), dtype="str"),
        }
    )
    k = n // 5
    mem = pd.DataFrame(
        {
            "firm_id": pd.array(ids[:k], dtype="str"),
            "cluster_id": pd.array(rng.integers(0, 30, k).astype(str), dtype="str"),
            "join_year": rng.integers(2004, 2025, k).astype(np.int64),
            "leave_year": pd.array([None] * k, dtype="Int64"),
        }
    )
    t0 = time.perf_counter()
    out = build_groups(panel, mem, {}, (2003, 2022))
    assert time.perf_counter() - t0 < 60
    assert out.flow["rows_in"] == n * t
