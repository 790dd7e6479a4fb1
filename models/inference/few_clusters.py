"""Few-clusters diagnostics: how many clusters (and treated clusters) the inference rests on,
and the warnings that go into every estimator's ``meta["warnings"]``.

Thresholds (rules of thumb from the literature, stated so a reader can disagree):

* :data:`FEW_CLUSTERS` = 50. Cluster-robust (CRV1) t-tests with t(G-1) or normal critical
  values over-reject when clusters are few: Cameron, Gelbach & Miller (2008, REStat 90(3),
  Table 2: 5-30 clusters, rejection rates of 8-20% at a nominal 5%); with clusters of
  unequal size the distortion persists at G = 50 and beyond (MacKinnon & Webb 2017,
  "Wild bootstrap inference for wildly different cluster sizes", J. Applied Econometrics
  32(2)). Angrist & Pischke (2009, ch. 8.2) quote 42; MacKinnon, Nielsen & Webb (2023,
  "Cluster-robust inference: a guide to empirical practice", J. Econometrics 232(2))
  advise the wild cluster restricted bootstrap and CRV3 whenever G is "small (below 50,
  say)" or clusters are unbalanced. We take 50: cluster initiatives typically number 5-40,
  so a warning there is the rule, not the exception.
* :data:`FEW_TREATED_CLUSTERS` = 10. What matters for a treatment dummy is the number of
  *treated* clusters G1: with G1 small CRV1 over-rejects badly whatever G is, the WCR
  bootstrap becomes conservative (it under-rejects, losing power) and the WCU bootstrap
  over-rejects (MacKinnon & Webb 2017, §§4-5; MacKinnon & Webb 2018, "The wild bootstrap
  for few (treated) clusters", Econometrics Journal 21(2)); their simulations show
  reliable WCR inference only with roughly G1 >= 10 or so. With G1 <= 3 no cluster-robust
  method (WCR, WCU, CRV3) is reliable; randomization inference over the assignment of
  treatment to clusters (the ``checks`` battery's ``ri_pvalue``) is the remaining option.
  These sentences are given only when some clusters are untreated (G1 < G): when every
  cluster has treated firms (staggered timing), the cluster-count warning applies.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEW_CLUSTERS = 50
FEW_TREATED_CLUSTERS = 10
VERY_FEW_TREATED_CLUSTERS = 3

__all__ = [
    "FEW_CLUSTERS",
    "FEW_TREATED_CLUSTERS",
    "VERY_FEW_TREATED_CLUSTERS",
    "cluster_counts",
    "few_clusters_warnings",
    "annotate",
    "annotate_from_data",
    "annotate_meta",
]


def cluster_counts(cluster, treated) -> tuple[int, int]:
    """(G, G1): distinct clusters, and clusters with at least one treated unit.

    ``cluster``: cluster label per row; ``treated``: bool per row (the row's unit is ever
    treated)."""
    codes, uniq = pd.factorize(np.asarray(cluster), use_na_sentinel=True)
    tr = np.asarray(treated, dtype=bool)
    ok = codes >= 0
    G = len(uniq)
    G1 = int(np.unique(codes[ok & tr]).size)
    return int(G), G1


def few_clusters_warnings(
    n_clusters: int | None,
    n_treated_clusters: int | None = None,
    by: str | None = None,
    kind: str | None = None,
    threshold: int = FEW_CLUSTERS,
    treated_threshold: int = FEW_TREATED_CLUSTERS,
) -> list[str]:
    """Warnings (possibly none) naming the cluster counts.

    ``kind`` is the vcov kind in use: the advice differs when the wild bootstrap or CRV3 is
    already what the estimates use."""
    out: list[str] = []
    if n_clusters is None or n_clusters <= 0:
        return out
    on = f" (clustered by {by})" if by else ""
    robust = kind in ("wild", "crv3")
    if n_clusters < threshold:
        if robust:
            out.append(
                f"few clusters: inference rests on {n_clusters} clusters{on} (< {threshold}); the "
                f"{'wild cluster bootstrap' if kind == 'wild' else 'CRV3 jackknife'} in use is the advised "
                "method; CRV1 standard errors would over-reject (Cameron, Gelbach & Miller 2008)"
            )
        else:
            out.append(
                f"few clusters: only {n_clusters} clusters{on} (< {threshold}): CRV1 cluster-robust "
                "standard errors over-reject with few clusters (Cameron, Gelbach & Miller 2008; "
                "MacKinnon & Webb 2017); use estimate.vcov kind 'wild' (wild cluster restricted "
                "bootstrap; Webb weights below 12 clusters) or 'crv3' where the estimator supports them"
            )
    # the treated-cluster sentences apply when some clusters are untreated (G1 < G); with
    # every cluster treated (staggered timing) the cluster-count sentence covers it
    if n_treated_clusters is not None and int(n_treated_clusters) < n_clusters:
        g1 = int(n_treated_clusters)
        if g1 <= VERY_FEW_TREATED_CLUSTERS:
            out.append(
                f"very few treated clusters: {g1} of {n_clusters} clusters{on} contain treated firms: no "
                "cluster-robust method is reliable here, not even the wild cluster restricted bootstrap "
                "(it cannot reject; the unrestricted one over-rejects; MacKinnon & Webb 2017, 2018); "
                "read p-values with great caution and prefer randomization inference over the treated clusters"
            )
        elif g1 < treated_threshold:
            out.append(
                f"few treated clusters: {g1} of {n_clusters} clusters{on} contain treated firms "
                f"(< {treated_threshold}): CRV1 over-rejects and the wild cluster restricted bootstrap "
                "becomes conservative (MacKinnon & Webb 2017, 2018); interpret p-values near the "
                "threshold with care"
            )
    return out


def annotate(meta: dict, *, n_clusters: int | None, n_treated_clusters: int | None, by: str | None, kind: str | None) -> dict:
    """Add ``n_treated_clusters`` and the few-clusters warnings to ``meta`` (in place,
    idempotent: a warning already present is not repeated). Returns ``meta``."""
    if n_treated_clusters is not None:
        meta["n_treated_clusters"] = int(n_treated_clusters)
    warns = list(meta.get("warnings") or [])
    for w in few_clusters_warnings(n_clusters, n_treated_clusters, by=by, kind=kind):
        if w not in warns:
            warns.append(w)
    if warns or "warnings" in meta:
        meta["warnings"] = warns
    return meta


def annotate_from_data(meta: dict, data: pd.DataFrame, spec) -> dict:
    """:func:`annotate` for any estimator's result, from the panel it was fitted on and its
    spec (cluster column ``spec.vcov.by[0]``, or the smallest of two-way clusters; treated
    = ``spec.gname > 0``). For the estimate stage: one call after every fit. No-op when the
    vcov is not clustered, the columns are absent, or the estimator annotated its own
    estimation sample already (``n_treated_clusters`` in meta: twfe, event_study)."""
    if "n_treated_clusters" in meta:
        return meta
    by = [c for c in spec.vcov.by if c in data.columns]
    if not by or spec.gname not in data.columns:
        return meta
    treated = pd.to_numeric(data[spec.gname], errors="coerce").fillna(0).to_numpy() > 0
    counts = [cluster_counts(data[c].to_numpy(), treated) for c in by]
    j = int(np.argmin([g for g, _ in counts]))
    G, G1 = counts[j]
    return annotate(meta, n_clusters=G, n_treated_clusters=G1, by=by[j], kind=spec.vcov.kind)


def annotate_meta(meta: dict, spec) -> dict:
    """:func:`annotate` from the meta dict alone (``n_clusters``, and ``n_treated_clusters``
    when the estimator recorded it): for results fitted without the panel in memory
    (engine duckdb/spark). No-op for unclustered vcov kinds and when the estimator
    annotated its own sample already (``n_treated_clusters`` in meta)."""
    if not spec.vcov.by or "n_treated_clusters" in meta:
        return meta
    by = spec.vcov.by[0] if len(spec.vcov.by) == 1 else "+".join(spec.vcov.by)
    return annotate(meta, n_clusters=meta.get("n_clusters"), n_treated_clusters=meta.get("n_treated_clusters"),
                    by=by, kind=spec.vcov.kind)
