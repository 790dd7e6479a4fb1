"""Cluster mapping (models.cluster_map) against outside references and hand computations.

References (tests/reference/cluster_map/r_reference.json, made by
tests/reference/scripts/cluster_map_reference.R): EconGeo's own R source of
location.quotient / Hachman / Krugman.index / Herfindahl on its documentation matrix; REAT's
locq and ellison.a (documented examples + a hand-computed case); R's quantile(type = 7).
Tolerance 1e-12: the same closed-form arithmetic in double precision (R prints 15 digits).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from models import cluster_map as cm

REF = json.loads((Path(__file__).parent / "reference" / "cluster_map" / "r_reference.json").read_text())
TOL = 1e-12


def _cells_from_matrix(mat, n_firms: int = 99) -> pd.DataFrame:
    mat = np.asarray(mat, float)
    rows = [{"year": 2020, "region": f"R{i + 1}", "sector": f"I{j + 1}", "size": mat[i, j], "n_firms": n_firms}
            for i in range(mat.shape[0]) for j in range(mat.shape[1])]
    return pd.DataFrame(rows)


def _as_matrix(cells: pd.DataFrame, col: str, shape) -> np.ndarray:
    return cells.sort_values(["region", "sector"])[col].to_numpy(float).reshape(shape)


def test_locq_reat_documented_example():
    # ?REAT::locq: locq(1714, 79006, 879213, 15593224) = 0.3847623 (7 digits documented)
    assert cm.locq(1714, 79006, 879213, 15593224) == pytest.approx(0.3847623, abs=5e-8)
    assert cm.locq(1714, 79006, 879213, 15593224) == pytest.approx(REF["reat_locq_documented"], abs=TOL)


@pytest.mark.parametrize("name", ["econgeo", "ones"])
def test_location_quotients_match_econgeo(name):
    key = "econgeo_matrix" if name == "econgeo" else "ones_matrix"
    mat = np.array(REF[key], float)
    out = cm.location_quotients(_cells_from_matrix(mat), min_cell_firms=1)
    lq = _as_matrix(out, "lq", mat.shape)
    np.testing.assert_allclose(lq, np.array(REF[f"{name}_location_quotient"]), atol=TOL, rtol=0)
    # EconGeo's binary rule: exactly 1 is kept as specialised (the documentation matrix has two
    # quotients of exactly 1, the "ones" matrix only ones)
    np.testing.assert_array_equal(cm.specialised(lq), np.array(REF[f"{name}_location_quotient_binary"]))
    assert (lq == 1.0).sum() >= 2


def test_specialisation_indices_match_econgeo():
    mat = np.array(REF["econgeo_matrix"], float)
    np.testing.assert_allclose(cm.hachman(mat), REF["econgeo_hachman"], atol=TOL, rtol=0)
    np.testing.assert_allclose(cm.krugman(mat), REF["econgeo_krugman"], atol=TOL, rtol=0)
    np.testing.assert_allclose(cm.herfindahl(mat), REF["econgeo_herfindahl"], atol=TOL, rtol=0)
    # the tidy per-region wrapper used by the map gives the same numbers
    reg = cm.region_indices(_cells_from_matrix(mat)).sort_values("region")
    np.testing.assert_allclose(reg["hachman"], REF["econgeo_hachman"], atol=TOL, rtol=0)
    np.testing.assert_allclose(reg["krugman"], REF["econgeo_krugman"], atol=TOL, rtol=0)


FK_FIRMS = [200, 650, 12000, 100, 50, 16000, 13000, 1500, 1500, 25000]
FK_REGIONS = ["Wien"] * 5 + ["Linz"] * 4 + ["Graz"]
FK_TOTALS = {"Wien": 500000, "Linz": 400000, "Graz": 100000}


def test_ellison_glaeser_reat_documented_example():
    r = cm.ellison_glaeser(FK_FIRMS, FK_REGIONS, FK_TOTALS)
    assert r["gamma"] == pytest.approx(0.05990628, abs=5e-9)  # ?REAT::ellison.a (Farhauer/Kroell 2014)
    for k in ("gamma", "G", "H"):
        assert r[k] == pytest.approx(REF["reat_ellison_fk2014"][k], abs=TOL)


def test_ellison_glaeser_through_the_panel_convention():
    """sector_indices takes the regions' totals from all firms of the year: fill each region
    with one firm of another sector up to REAT's e_j and the documented gamma comes back."""
    rows = [{"year": 2020, "region": r, "sector": "S", "size": s} for r, s in zip(FK_REGIONS, FK_FIRMS)]
    for r, tot in FK_TOTALS.items():
        own = sum(s for rr, s in zip(FK_REGIONS, FK_FIRMS) if rr == r)
        rows.append({"year": 2020, "region": r, "sector": "other", "size": tot - own})
    out = cm.sector_indices(pd.DataFrame(rows)).set_index("sector")
    assert out.loc["S", "eg_gamma"] == pytest.approx(REF["reat_ellison_fk2014"]["gamma"], abs=TOL)


def test_ellison_glaeser_hand_computed():
    """Regions A, B, C with totals 50, 30, 20 (x = .5, .3, .2); the sector's firms 10, 5 in A
    and 5 in B: s = (.75, .25, 0), G = .0625 + .0025 + .04 = .105, H = .5² + .25² + .25² =
    .375, 1 − Σx² = .62, γ = (.105 − .62 · .375) / (.62 · .625) = −.1275 / .3875."""
    r = cm.ellison_glaeser([10, 5, 5], ["A", "A", "B"], {"A": 50, "B": 30, "C": 20})
    assert r["G"] == pytest.approx(0.105, abs=TOL)
    assert r["H"] == pytest.approx(0.375, abs=TOL)
    assert r["gamma"] == pytest.approx(-0.1275 / 0.3875, abs=TOL)
    for k in ("gamma", "G", "H"):  # REAT (with a zero firm in C, as ellison.a2 adds)
        assert r[k] == pytest.approx(REF["reat_ellison_hand"][k], abs=TOL)


@pytest.mark.parametrize("q", ["0.25", "0.75", "0.9"])
def test_percentile_is_r_type7(q):
    assert cm.quantile7(REF["quantile_x"], float(q)) == pytest.approx(REF["quantile_type7"][q], abs=TOL)


def _cells(lq, size, firms, sector="A", e_r=None):
    n = len(lq)
    return pd.DataFrame({"year": 2020, "region": [f"r{i + 1}" for i in range(n)], "sector": sector, "lq": lq, "size": size,
                         "n_firms": firms, "e_r": e_r if e_r is not None else [1000.0] * n})


def test_strong_cluster_rule_hand_computed():
    """Sector A: LQ (.8, 1, 1, 1.5, 2) -> type-7 75th percentile = x(4) = 1.5; size
    (100 .. 500) -> 25th = 200; firms (5 .. 25) -> 10. Strong: LQ >= 1.5, >= 1, size > 200,
    firms > 10: r4 and r5. Sector B: LQ (1, 1, 1, .5) -> 75th = 1.0, so the three LQ = 1 cells
    are "at or above" it and >= 1; size (10, 50, 60, 5) -> 25th = 5 + .75 · 5 = 8.75;
    firms (3, 4, 6, 1) -> 1 + .75 · 2 = 2.5: b1, b2, b3 strong (LQ exactly 1 kept)."""
    a = _cells([0.8, 1.0, 1.0, 1.5, 2.0], [100, 200, 300, 400, 500], [5, 10, 15, 20, 25])
    b = _cells([1.0, 1.0, 1.0, 0.5], [10, 50, 60, 5], [3, 4, 6, 1], sector="B")
    out = cm.strong_clusters(pd.concat([a, b], ignore_index=True))
    got = out.set_index(["sector", "region"])["strong"]
    assert list(got.loc["A"]) == [False, False, False, True, True]
    assert list(got.loc["B"]) == [True, True, True, False]
    pb = out[out["sector"] == "B"].iloc[0]
    assert (pb["lq_p"], pb["size_p"], pb["firms_p"]) == pytest.approx((1.0, 8.75, 2.5), abs=TOL)


def test_strong_rule_needs_lq_at_least_one():
    """All LQs below 1: the 75th percentile is below 1 too, but LQ >= 1 still fails."""
    out = cm.strong_clusters(_cells([0.5, 0.6, 0.7, 0.9], [10, 20, 30, 40], [10, 20, 30, 40]))
    assert not out["strong"].any()


def test_stars_hand_computed():
    """Sizes (100, 200, 300, 400): 90% quantile = 300 + .7 · 100 = 370 -> size star for 400.
    LQ (2, 1.99, .5, 3): specialisation star at LQ >= 2 (exactly 2 counts) -> cells 1, 4.
    Focus = size / e_r = (.1, .2, .6, .1): 90% quantile = .2 + .7 · .4 = .48 -> cell 3."""
    out = cm.stars(_cells([2.0, 1.99, 0.5, 3.0], [100, 200, 300, 400], [9, 9, 9, 9], e_r=[1000, 1000, 500, 4000]))
    assert list(out["star_size"]) == [False, False, False, True]
    assert list(out["star_specialisation"]) == [True, False, False, True]
    assert list(out["star_focus"]) == [False, False, True, False]
    assert list(out["stars"]) == [1, 0, 1, 2]


def _panel():
    """Two regions x two sectors, one year. Region X: sector s 3 firms (10, 20, 30), sector t
    1 firm (40); region Y: s 1 firm (20), t 2 firms (30, 50). Totals: e_X = 100, e_Y = 100,
    e_s = 80, e_t = 120, e = 200."""
    rows = [("f1", "X", "s", 10), ("f2", "X", "s", 20), ("f3", "X", "s", 30), ("f4", "X", "t", 40),
            ("f5", "Y", "s", 20), ("f6", "Y", "t", 30), ("f7", "Y", "t", 50)]
    d = pd.DataFrame(rows, columns=["firm_id", "region", "sector", "size"]).assign(year=2015)
    d["contributor"] = "f:" + d["firm_id"]
    d.loc[d["firm_id"].isin(["f2", "f3"]), "contributor"] = "g:G1"  # one enterprise group
    return d


def test_cluster_map_end_to_end_hand_computed():
    out = cm.cluster_map(_panel(), {"min_cell_firms": 2})
    cells = out[out["level"] == "cell"].set_index(["region", "sector"])
    # LQ_Xs = (60/100)/(80/200) = 1.5; LQ_Yt = (80/100)/(120/200) = 4/3; LQ_Xt and LQ_Ys
    # come from 1-firm cells: no quotient under min_cell_firms = 2 (small cell)
    assert cells.loc[("X", "s"), "lq"] == pytest.approx(1.5, abs=TOL)
    assert cells.loc[("Y", "t"), "lq"] == pytest.approx(4 / 3, abs=TOL)
    assert np.isnan(cells.loc[("X", "t"), "lq"]) and bool(cells.loc[("X", "t"), "small_cell"])
    assert not bool(cells.loc[("X", "t"), "strong"]) and int(cells.loc[("X", "t"), "stars"]) == 0
    # the small cells still count in the totals
    assert cells.loc[("X", "s"), "e_r"] == 100 and cells.loc[("X", "s"), "e"] == 200
    # disclosure inputs: X-s has 3 firms but 2 contributors (f2 + f3 are one group: 50), top = 50, 10
    assert int(cells.loc[("X", "s"), "n_firms"]) == 3 and int(cells.loc[("X", "s"), "n_contributors"]) == 2
    assert (cells.loc[("X", "s"), "top1"], cells.loc[("X", "s"), "top2"], cells.loc[("X", "s"), "top3"]) == (50.0, 10.0, 0.0)
    reg = out[out["level"] == "region"].set_index("region")
    # Hachman of X: s_X = (.6, .4), LQ = (1.5, .4/.6): 1 / (1.5 · .6 + (2/3) · .4) = 1 / (.9 + .2667)
    assert reg.loc["X", "hachman"] == pytest.approx(1 / (0.9 + 0.4 * 0.4 / 0.6), abs=TOL)
    assert reg.loc["X", "krugman"] == pytest.approx(abs(0.6 - 0.4) + abs(0.4 - 0.6), abs=TOL)
    assert reg.loc["X", "herfindahl"] == pytest.approx(0.6**2 + 0.4**2, abs=TOL)
    sec = out[out["level"] == "sector"].set_index("sector")
    # EG for s: firms 10, 20, 30 in X and 20 in Y; x = (.5, .5); s = (.75, .25): G = .125;
    # H = (1 + 4 + 9 + 4) / 64; gamma = (G - .5 H) / (.5 (1 - H))
    H = (1 + 4 + 9 + 4) / 64
    assert sec.loc["s", "eg_gamma"] == pytest.approx((0.125 - 0.5 * H) / (0.5 * (1 - H)), abs=TOL)


def test_cluster_strength_at_baseline_and_fixed_year():
    p = pd.concat([_panel(), _panel().assign(year=2016, size=lambda d: d["size"] * np.where(d["firm_id"] == "f4", 10, 1))], ignore_index=True)
    cmap = cm.cluster_map(p, {"min_cell_firms": 1, "strength": "lq_band"})
    fc = pd.DataFrame({"firm_id": ["f1", "f4", "f5"], "region": ["X", "X", "Y"], "sector": ["s", "t", "s"], "first_treat": [2017, 2016, 0]})
    st = cm.cluster_strength(cmap, fc, (2015, 2016), {"min_cell_firms": 1, "strength": "lq_band"}).set_index("firm_id")
    # f1 joined 2017: baseline 2016; f4 joined 2016: baseline 2015; f5 never: first year 2015
    assert list(st["strength_year"]) == [2016, 2015, 2015]
    # 2015: LQ_Xt = (40/100)/(120/200) = 2/3 -> "LQ < 1"; LQ_Ys = (20/100)/(80/200) = .5
    assert st.loc["f4", "cluster_strength"] == "LQ < 1" and st.loc["f5", "cluster_strength"] == "LQ < 1"
    # 2016: X-t grows to 400: e_X = 460, e_s = 80, e = 560: LQ_Xs = (60/460)/(80/560) = .913
    assert st.loc["f1", "lq"] == pytest.approx((60 / 460) / (80 / 560), abs=TOL)
    fixed = cm.cluster_strength(cmap, fc, (2015, 2016), {"year": 2016, "strength": "stars"})
    assert list(fixed["strength_year"]) == [2016, 2016, 2016]
    assert set(fixed["cluster_strength"].dropna()) <= {"0 stars", "1 star", "2 stars", "3 stars"}


@pytest.mark.parametrize("bad, where", [
    ({"year": "latest"}, "year"), ({"min_cell_firms": 0}, "min_cell_firms"), ({"strength": "big"}, "strength"),
    ({"strong": {"lq_quantile": 1.5}}, "strong.lq_quantile"), ({"stars": {"specialisation": -1}}, "stars.specialisation"),
    ({"stars": {"size": 0.9, "extra": 1}}, "stars.extra"), ({"colour": "red"}, "colour"),
])
def test_bad_options_are_named(bad, where):
    problems = cm.check_options(bad)
    assert problems and any(f"build_groups.cluster_map.{where}" in p for p in problems)
    assert cm.check_options({}) == [] and cm.check_options(None) == []
