"""Inference verdicts for the report: is each estimate's inference at the right level and
trustworthy for the number of clusters it rests on?

Pure functions of the *released* tidy rows (``rel``: disclosure-checked, column
``suppressed``) and the estimators' ``meta`` dicts (keys ``"<outcome>-<estimator>"``), in
the style of :func:`pipeline.report.sections.credibility`: one row per outcome x
estimator with ``check`` / ``verdict`` (``pass`` | ``concern`` | ``note``) / ``css`` /
``sentence`` / ``numbers``, plus a summary sentence.

Rules (thresholds and citations in :mod:`models.inference.few_clusters`):

* not clustered (``vcov`` iid/hetero on a panel): ``note`` — errors of the same firm over
  time are correlated (Bertrand, Duflo & Mullainathan 2004, QJE 119(1)); cluster at the
  firm or a coarser level.
* G >= 50 clusters and (G1 unknown or G1 >= 10 treated clusters): ``pass``.
* G < 50 with CRV1 (``cluster``/``twoway``): ``concern`` — p-values likely too small
  (Cameron, Gelbach & Miller 2008); re-run with ``vcov: {kind: wild}`` or ``crv3``
  (twfe, event_study).
* G < 50 with ``wild``/``crv3``: ``pass`` (the few-clusters method is in use), unless:
* G1 < 10 treated clusters (and G1 < G): ``concern`` (CRV1 over-rejects, WCR is conservative);
  G1 <= 3: ``concern`` whatever the method — no cluster-robust inference is reliable
  (MacKinnon & Webb 2017, 2018), prefer randomization inference.

* the estimator's own ``meta["inference_verdict"]`` (``verdict``, ``sentence``, ``numbers``),
  when its inference is not cluster-robust by design (``sdid``: placebo / jackknife / bootstrap
  over the aggregate units), replaces these rules.

Other warnings the estimator recorded in ``meta["warnings"]`` (beyond the few-clusters
ones) are passed through in ``notes``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from models.inference.few_clusters import FEW_CLUSTERS, FEW_TREATED_CLUSTERS, VERY_FEW_TREATED_CLUSTERS

from .tables import ESTIMATOR_LABELS, fmt_int, label

WITHHELD = "withheld by disclosure control"
SKIP = ("checks",)  # the credibility battery re-runs an estimator: its rows are not results of their own
_FEW_PREFIXES = ("few clusters", "few treated clusters", "very few treated clusters")


def _kind(vcov_label: str) -> str:
    return str(vcov_label or "").split("(", 1)[0].strip()


def _by(vcov_label: str) -> str:
    s = str(vcov_label or "")
    if "(" not in s:
        return ""
    return s.split("(", 1)[1].rstrip(")").split(";", 1)[0].strip()


def verdict(meta: dict[str, Any]) -> dict[str, Any]:
    """The inference verdict of one result from its meta: ``verdict``, ``sentence``,
    ``numbers`` (cluster counts as text) and the counts themselves."""
    vc = str(meta.get("vcov") or "")
    kind, by = _kind(vc), _by(vc)
    G = meta.get("n_clusters")
    G1 = meta.get("n_treated_clusters")
    G = int(G) if isinstance(G, (int, float)) and not isinstance(G, bool) and G == G else None
    G1 = int(G1) if isinstance(G1, (int, float)) and not isinstance(G1, bool) and G1 == G1 else None
    numbers = "; ".join(
        p for p in (f"vcov = {vc}" if vc else "", f"clusters = {fmt_int(G)}" if G else "",
                    f"treated clusters = {fmt_int(G1)}" if G1 is not None else "") if p
    )
    own = meta.get("inference_verdict")  # an estimator whose inference is not cluster-robust by design (sdid)
    if isinstance(own, dict) and own.get("sentence"):
        return {"verdict": own.get("verdict", "note"), "sentence": str(own["sentence"]),
                "numbers": str(own.get("numbers") or numbers), "n_clusters": G, "n_treated_clusters": G1}
    robust = kind in ("wild", "crv3")
    method = {"wild": "the wild cluster restricted bootstrap", "crv3": "the CRV3 jackknife"}.get(kind, "")
    on = f" by {by.replace('_', ' ')}" if by else ""
    if kind in ("iid", "hetero") or (not G and not by):
        return {"verdict": "note", "numbers": numbers, "n_clusters": G, "n_treated_clusters": G1,
                "sentence": ("Standard errors are not clustered: errors of the same firm are correlated over time, "
                             "so they are likely too small (Bertrand, Duflo & Mullainathan 2004); cluster at the firm "
                             "or a coarser level (estimate.vcov).")}
    parts: list[str] = []
    concern = False
    if G is not None and G < FEW_CLUSTERS:
        if robust:
            parts.append(f"Only {G} clusters{on}: {method} is used, as advised with fewer than {FEW_CLUSTERS} clusters.")
        else:
            concern = True
            parts.append(
                f"Only {G} clusters{on}: cluster-robust (CRV1) p-values are likely too small with fewer than "
                f"{FEW_CLUSTERS} clusters (Cameron, Gelbach & Miller 2008); re-run with estimate.vcov kind 'wild' "
                "or 'crv3' (twfe, event_study)."
            )
    elif G is not None:
        parts.append(f"Inference clusters{on} with {fmt_int(G)} clusters.")
    if G1 is not None and G is not None and G1 >= G:
        pass  # every cluster has treated firms: the cluster count above is what matters
    elif G1 is not None and G1 <= VERY_FEW_TREATED_CLUSTERS:
        concern = True
        parts.append(
            f"Only {G1} treated cluster{'s' if G1 != 1 else ''}: no cluster-robust method is reliable, not even the "
            "wild bootstrap (MacKinnon & Webb 2017, 2018); treat p-values as indicative and prefer randomization "
            "inference over the treated clusters."
        )
    elif G1 is not None and G1 < FEW_TREATED_CLUSTERS:
        concern = True
        parts.append(
            f"Only {G1} treated clusters (< {FEW_TREATED_CLUSTERS}): "
            + ("the wild restricted bootstrap is conservative here (MacKinnon & Webb 2017)." if kind == "wild"
               else "CRV1 over-rejects even with many clusters overall (MacKinnon & Webb 2017); the wild bootstrap is safer.")
        )
    return {"verdict": "concern" if concern else "pass", "sentence": " ".join(parts), "numbers": numbers,
            "n_clusters": G, "n_treated_clusters": G1}


def inference_rows(rel: pd.DataFrame, metas: dict[str, dict], lab_o: dict[str, str]) -> list[dict[str, Any]]:
    """One row per released outcome x estimator: ``outcome, estimator, check, verdict, css,
    sentence, numbers, notes``. A result whose rows were all suppressed shows
    :data:`WITHHELD` (the sentence would qualify numbers the reader cannot see)."""
    out = []
    for key in sorted(metas):
        o, _, e = key.partition("-")
        if e in SKIP:
            continue
        part = rel[(rel["outcome"] == o) & (rel["estimator"] == e)] if len(rel) else rel
        if not len(part):
            continue
        meta = metas[key] or {}
        v = verdict(meta)
        withheld = bool(part["suppressed"].astype(bool).all()) if "suppressed" in part else False
        notes = [str(w) for w in (meta.get("warnings") or []) if not str(w).startswith(_FEW_PREFIXES)]
        out.append({
            "key": key,
            "outcome": lab_o.get(o, o),
            "estimator": label(e, {}, ESTIMATOR_LABELS),
            "check": "Inference and number of clusters",
            "verdict": v["verdict"],
            "css": {"pass": "good", "concern": "warn"}.get(v["verdict"], "muted"),
            "sentence": WITHHELD if withheld else v["sentence"],
            "numbers": "" if withheld else v["numbers"],
            "notes": [] if withheld else notes,
        })
    return out


def inference_summary(rows: list[dict[str, Any]]) -> str:
    """One sentence for the report overview ('' when there is nothing to say)."""
    if not rows:
        return ""
    conc = [r for r in rows if r["verdict"] == "concern"]
    if not conc:
        return f"Inference: all {len(rows)} results cluster at a level with enough clusters, or use a few-clusters method."
    which = ", ".join(f"{r['outcome']} / {r['estimator']}" for r in conc[:6]) + (f" (+{len(conc) - 6} more)" if len(conc) > 6 else "")
    return (f"Inference: {len(conc)} of {len(rows)} results rest on few clusters or few treated clusters ({which}); "
            "their p-values and intervals are likely too optimistic — see the inference section.")
