"""Why ATT(g,t) cells are NA, and what to do about it.

R did's ``att_gt`` sets a cell to NA when it cannot be estimated and ``aggte`` drops such
cells (``na.rm``) or stops when nothing is left. Each cell knows its reason; this module
turns the reasons into the message a user needs when a design has no estimable cell at all:
how many cells, grouped by reason, the first cells of each group, and the fix for that reason
(cf. fixest's notes on removed observations: say what was removed and why).

Reasons (recorded by models.did.att_gt and models.did.cs_moments in ``AttGtResult.na_reasons``):

* ``overlap`` -- R did's overlap guard: a preliminary propensity score >= 0.999 (Sant'Anna &
  Zhao 2020's estimators need overlap; did's ``pre_process_drdid`` refuses such cells);
* ``separation`` -- the propensity-score logit failed (singular Hessian or divergence): the
  covariates separate the cohort from its comparison group (perfectly, where did's glm would
  warn "fitted probabilities numerically 0 or 1" and then hit the overlap guard);
* ``no comparison`` / ``no treated`` -- the 2x2 sample has no comparison (or no treated) unit;
* anything else -- the message of the failed 2x2 fit (e.g. a singular outcome regression).
"""

from __future__ import annotations

from collections import OrderedDict

FIRST = 5  # cells listed per reason

_NEARLY = ("the covariates{names} nearly determine membership of the cohort against its comparison group: "
           "drop or coarsen the covariates that do (a fine sector or region code, a size band or a flag held only by "
           "members: estimate.covariates or the estimator's covariates), or use est_method: reg (outcome "
           "regression needs no propensity score)")
FIX = {
    "separation": _NEARLY,
    "overlap": _NEARLY,
    "no comparison": ("no comparison firm is left in these cells: with control_group: notyettreated the last "
                      "cohorts have none; use control_group: nevertreated with never-member firms in the panel, "
                      "or end ingest.years before the last cohort joins"),
    "no treated": ("the cohort has no firm observed in the cell's two periods: check the panel's years of the "
                   "cohort's firms (balanced panel: allow_unbalanced_panel keeps firms that enter or exit)"),
    "other": "the 2x2 fits failed as stated: usually collinear or constant covariates in small cells; drop "
             "covariates or pool cohorts",
}


def kind(reason: str) -> str:
    """Group a cell's reason string into one of FIX's keys."""
    r = reason.lower()
    if "overlap" in r or "propensity score >= 0.999" in r:
        return "overlap"
    if r.startswith("propensity-score logit"):
        return "separation"
    if r.startswith("no comparison"):
        return "no comparison"
    if r.startswith("no treated"):
        return "no treated"
    return "other"


def _cell(g: float, t: float) -> str:
    return f"(g,t)=({g:g},{t:g})"


def all_na_problems(na_reasons: dict, n_cells: int, covariates=()) -> list[str]:
    """One line per reason: count, the reason, the first cells, the fix. ``na_reasons`` maps
    ``(g, t)`` to the cell's reason; cells without a recorded reason are counted as such;
    ``covariates`` (att_gt's) are named in the fixes that concern them."""
    names = f" ({', '.join(map(str, covariates))})" if covariates else ""
    groups: "OrderedDict[str, list]" = OrderedDict()
    for (g, t), reason in sorted(na_reasons.items()):
        groups.setdefault(kind(reason), []).append((g, t, reason))
    out = []
    for k, cells in groups.items():
        shown = ", ".join(_cell(g, t) for g, t, _ in cells[:FIRST])
        more = f" and {len(cells) - FIRST} more" if len(cells) > FIRST else ""
        out.append(f"{len(cells)} cell(s): {cells[0][2]}; first: {shown}{more}. Fix: {FIX[k].format(names=names)}")
    missing = n_cells - len(na_reasons)
    if missing > 0:
        out.append(f"{missing} cell(s) with no recorded reason (an internal gap: please report it)")
    return out
