"""Collaboration outcomes (models.collaboration) on a tiny edge list, every value computed by
hand in the comments: undirected duplicates, several kinds between one pair, same initiative
by spell years, new partners (NA in the first covered year), outside-region share (NA with no
partner), 0 vs NA (inside vs outside the covered years). Exact equality: counts and ratios of
small integers."""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.collaboration import OUTCOMES, collaboration_outcomes

NA = np.nan


def _panel():
    rows = [(f, y) for f in "ABCD" for y in (2010, 2011, 2012)] + [("E", y) for y in (2010, 2011, 2012, 2013)]
    region = {"A": "R1", "B": "R1", "C": "R2", "D": "R2", "E": "R1"}
    return pd.DataFrame({"firm_id": [f for f, _ in rows], "year": [y for _, y in rows], "region": [region[f] for f, _ in rows]})


EDGES = pd.DataFrame(
    [("A", "B", 2010, "co-patent"), ("B", "A", 2010, "co-patent"), ("A", "C", 2010, "supplier"),
     ("A", "B", 2011, "supplier"), ("B", "A", 2011, "joint project"), ("C", "D", 2011, "other"),
     ("D", "A", 2012, "co-patent"), ("A", "B", 2012, "co-patent")],
    columns=["firm_a", "firm_b", "year", "kind"],
)
# A in CL1 from 2010 on; B in CL1 in 2011 only (leave_year is the last year in); C in CL2; D in CL1 from 2012
MEMBERSHIP = pd.DataFrame({"firm_id": ["A", "B", "C", "D"], "cluster_id": ["CL1", "CL1", "CL2", "CL1"],
                           "join_year": [2010, 2011, 2010, 2012], "leave_year": pd.array([None, 2011, None, None], dtype="Int64")})

# (firm, year): n_partners, partners_same_initiative, new_partners, share_partners_outside_region
EXPECTED = {
    ("A", 2010): (2, 0, NA, 0.5),  # {B, C}; B not yet a member, C in CL2; first year: new NA; C in R2
    ("B", 2010): (1, 0, NA, 0.0),
    ("C", 2010): (1, 0, NA, 1.0),
    ("D", 2010): (0, 0, NA, NA),  # covered year, no edge: 0 partners, share undefined
    ("E", 2010): (0, 0, NA, NA),
    ("A", 2011): (1, 1, 0, 0.0),  # B twice (two kinds) = one partner, now in CL1; seen in 2010
    ("B", 2011): (1, 1, 0, 0.0),
    ("C", 2011): (1, 0, 1, 0.0),  # D: not yet a member (and C is CL2); new; same region R2
    ("D", 2011): (1, 0, 1, 0.0),
    ("E", 2011): (0, 0, 0, NA),
    ("A", 2012): (2, 1, 1, 0.5),  # {D, B}: D joined CL1 in 2012, B left after 2011; D new; D in R2
    ("B", 2012): (1, 0, 0, 0.0),
    ("C", 2012): (0, 0, 0, NA),
    ("D", 2012): (1, 1, 1, 1.0),
    ("E", 2012): (0, 0, 0, NA),
    ("E", 2013): (NA, NA, NA, NA),  # after the last edge year: not covered
}


def test_hand_computed_outcomes():
    panel = _panel()
    got = collaboration_outcomes(panel, EDGES, MEMBERSHIP)
    assert list(got.columns) == list(OUTCOMES)
    for i, (f, y) in enumerate(zip(panel["firm_id"], panel["year"])):
        exp = np.array(EXPECTED[(f, y)], dtype=float)
        np.testing.assert_array_equal(got.iloc[i].to_numpy(), exp, err_msg=f"{f} {y}")


def test_row_order_and_duplicate_direction_do_not_matter():
    panel = _panel()
    base = collaboration_outcomes(panel, EDGES, MEMBERSHIP)
    shuffled = panel.sample(frac=1.0, random_state=1)
    flipped = EDGES.rename(columns={"firm_a": "firm_b", "firm_b": "firm_a"}).iloc[::-1]
    again = collaboration_outcomes(shuffled, flipped, MEMBERSHIP)
    pd.testing.assert_frame_equal(again.loc[base.index], base)


def test_partner_region_in_the_edge_year_and_without_region_column():
    panel = _panel()
    panel.loc[(panel.firm_id == "C") & (panel.year == 2010), "region"] = "R1"  # C moved: R1 in 2010
    got = collaboration_outcomes(panel, EDGES, MEMBERSHIP)
    a2010 = ((panel.firm_id == "A") & (panel.year == 2010)).to_numpy()
    assert got.loc[a2010, "share_partners_outside_region"].item() == 0.0  # B and C both in R1 that year
    no_region = collaboration_outcomes(panel.drop(columns="region"), EDGES, MEMBERSHIP)
    assert no_region["share_partners_outside_region"].isna().all()
    pd.testing.assert_frame_equal(no_region[list(OUTCOMES[:3])], got[list(OUTCOMES[:3])])
