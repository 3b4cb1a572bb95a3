"""A perturbation case: do concepts learned without labels find the IFN-β response? (issue 5.6)

The SAE of the main dataset (Kang et al. 2018 *control* PBMCs: it never saw a stimulated cell)
encodes the cells of the perturbation dataset (Kang IFN-β: 1,000 control, 1,000 stimulated,
no cell-type labels). Concepts are then

* ranked by how well their activation separates stimulated from control cells: the AUROC of the
  activation (scikit-learn ``roc_auc_score``; 0.5 = no separation) and the difference of
  activation frequencies (share of cells with code > 0). The labels are used only to *rank* the
  concepts, after the SAE was trained;
* and, with no label at all, by their activation frequency in the perturbation cells minus their
  frequency in the main dataset (a distribution shift any user can compute).

The top concepts are explained with the attribution of Sec 3.2 (Eq 1–3) computed on the
perturbation cells with the main SAE (prototypes and counterfactuals among perturbation cells;
the workflow's ``attribution(model, "concept", role="perturbation", sae_role="main")``), and
with attribution-based GSEA (:func:`scconcepts.enrichment.annotate_units`).
"""

from __future__ import annotations

import json
import re
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .attribution import AttributionResult

__all__ = ["separating_concepts", "frequency_shift", "marker_hits", "marker_coverage",
           "interferon_evidence", "concept_table", "INTERFERON_TERMS"]

INTERFERON_TERMS = re.compile(r"interferon|virus|viral|antiviral", re.I)


def _dense(codes) -> np.ndarray:
    return np.asarray(codes.toarray() if sp.issparse(codes) else codes, dtype=np.float32)


def separating_concepts(codes, labels: Sequence, positive, min_cells: int = 1) -> pd.DataFrame:
    """Rank concepts by how well their activation separates ``positive`` cells from the others.

    Parameters
    ----------
    codes
        Concept activations U of the cells, shape (n_cells, c), dense or sparse.
    labels
        Condition of each cell, length n_cells.
    positive
        The label of the positive class (e.g. ``"IFN-beta stimulated"``).
    min_cells
        Concepts active in fewer cells are left out (their AUROC is noise).

    Returns
    -------
    DataFrame
        Index ``concept``; columns ``auroc`` (sklearn ``roc_auc_score`` of the activation;
        > 0.5 = higher in positive cells), ``freq_pos``, ``freq_neg`` (share of cells with
        code > 0), ``freq_diff``, ``mean_pos``, ``mean_neg``, ``n_active``; sorted by
        decreasing AUROC.

    Raises
    ------
    ValueError
        If the labels do not hold both classes or their length differs from the cells.
    """
    from sklearn.metrics import roc_auc_score

    U = _dense(codes)
    y = np.asarray(labels) == positive
    if len(y) != U.shape[0]:
        raise ValueError(f"{len(y)} labels for {U.shape[0]} cells.")
    if y.all() or not y.any():
        raise ValueError(f"Labels must contain {positive!r} and at least one other value.")
    n_active = (U > 0).sum(0)
    keep = np.flatnonzero(n_active >= max(1, min_cells))
    df = pd.DataFrame({
        "auroc": [roc_auc_score(y, U[:, j]) for j in keep],
        "freq_pos": (U[y][:, keep] > 0).mean(0), "freq_neg": (U[~y][:, keep] > 0).mean(0),
        "mean_pos": U[y][:, keep].mean(0), "mean_neg": U[~y][:, keep].mean(0),
        "n_active": n_active[keep]}, index=pd.Index(keep, name="concept"))
    df.insert(3, "freq_diff", df["freq_pos"] - df["freq_neg"])
    return df.sort_values("auroc", ascending=False, kind="stable")


def frequency_shift(codes_query, codes_reference) -> pd.Series:
    """Label-free ranking: activation frequency in the query cells minus in the reference cells.

    Parameters
    ----------
    codes_query, codes_reference
        Activations of the same SAE on two datasets, shapes (n_q, c) and (n_r, c).

    Returns
    -------
    Series
        Index ``concept`` (all c), sorted decreasingly.
    """
    fq = np.asarray((codes_query > 0).mean(0)).ravel()
    fr = np.asarray((codes_reference > 0).mean(0)).ravel()
    if fq.shape != fr.shape:
        raise ValueError(f"The two code matrices have {fq.size} and {fr.size} concepts.")
    return pd.Series(fq - fr, index=pd.Index(np.arange(fq.size), name="concept"),
                     name="freq_shift").sort_values(ascending=False, kind="stable")


def marker_hits(ranked: pd.Series, markers: Sequence[str], n: int = 20) -> list[str]:
    """Markers (e.g. interferon-stimulated genes) among the top-``n`` genes of a ranking."""
    top = [str(g).upper() for g in ranked.index[:n]]
    mk = {m.upper() for m in markers}
    return [g for g in top if g in mk]


def marker_coverage(markers: Sequence[str], genes: Sequence[str]) -> pd.Series:
    """Which ``markers`` a model sees: ``seen`` / ``missing`` (comma-separated, in the markers'
    order, "none" when empty) and ``n_seen`` / ``n_markers``."""
    have = {str(g).upper() for g in genes}
    seen = [m for m in markers if m.upper() in have]
    missing = [m for m in markers if m.upper() not in have]
    return pd.Series({"n_seen": len(seen), "n_markers": len(markers),
                      "seen": ", ".join(seen) or "none", "missing": ", ".join(missing) or "none"})


def interferon_evidence(attribution: AttributionResult, summary: pd.DataFrame,
                        markers: Sequence[str], n: int = 20) -> dict:
    """How much interferon signal each explained concept carries (the measurement behind
    chapter 11's claim, :func:`scconcepts.claims.perturbation.interferon_claim`).

    Parameters
    ----------
    attribution
        Attribution of the concepts (first unit = the best-separating one).
    summary
        :func:`scconcepts.enrichment.annotate_units` summary of the same units (``unit``,
        ``best_term``, ``top_terms`` JSON, ``annotation``), matched to them by ``unit``.
    markers
        Interferon-stimulated genes (ISGs) the model sees.
    n
        Top attribution genes searched for ISGs.

    Returns
    -------
    dict
        Per concept, in the attribution's order: ``units``, ``isg`` (ISGs among its top-``n``
        genes), ``ifn`` (an interferon/virus term, :data:`INTERFERON_TERMS`, among its top GO
        terms), ``both`` (ISGs and such a term in the *same* concept). Counts: ``n_concepts``,
        ``with_isg``, ``ifn_best`` (best term matches), ``ifn_any`` (= sum of ``ifn``),
        ``with_both``, ``annotated`` (at least weakly annotated); ``n_markers`` (len(markers)),
        ``n_genes`` (``n``);
        ``top_genes`` (the best concept's top-3 attribution genes).
    """
    by_unit = summary.set_index("unit") if len(summary) else summary
    units = [int(u) for u in attribution.units]
    isg = [len(marker_hits(attribution.ranked(u), markers, n)) for u in units]
    rows = [by_unit.loc[u] if u in by_unit.index else None for u in units]
    ifn = [r is not None and any(INTERFERON_TERMS.search(t["term"])
                                 for t in json.loads(r["top_terms"])) for r in rows]
    best = [r is not None and bool(INTERFERON_TERMS.search(str(r["best_term"] or "")))
            for r in rows]
    both = [i > 0 and f for i, f in zip(isg, ifn)]
    return {"units": units, "isg": isg, "ifn": ifn, "both": both,
            "n_concepts": len(units), "with_isg": sum(i > 0 for i in isg),
            "ifn_best": sum(best), "ifn_any": sum(ifn), "with_both": sum(both),
            "annotated": sum(r is not None and r["annotation"] != "none" for r in rows),
            "n_markers": len(markers), "n_genes": int(n),
            "top_genes": list(attribution.ranked(units[0]).index[:3]) if units else []}


def concept_table(attribution: AttributionResult, summary: pd.DataFrame, auroc: pd.Series,
                  markers: Sequence[str], n_genes: int = 15, n_isg: int = 20) -> pd.DataFrame:
    """One row per explained concept: AUROC, top genes (markers starred), ISGs, best GO term.

    Parameters
    ----------
    attribution
        Attribution of the concepts (its units, in order).
    summary
        :func:`scconcepts.enrichment.annotate_units` summary (``unit``, ``best_term``, ``NES``,
        ``annotation``, ``top_terms`` JSON).
    auroc
        Concept → AUROC (:func:`separating_concepts` column).
    markers
        Marker genes the model sees (starred ★ in the gene list).

    Returns
    -------
    DataFrame
        Index ``concept``; columns ``AUROC``, ``top-15 attribution genes``, ``ISGs in top 20``,
        ``best GO term (NES)``, ``annotation``, ``interferon/virus terms in top 5``.
    """
    by_unit = summary.set_index("unit")
    mk = set(markers)
    rows = []
    for u in attribution.units:
        r = attribution.ranked(int(u))
        s = by_unit.loc[int(u)] if int(u) in by_unit.index else None
        terms = json.loads(s["top_terms"]) if s is not None else []
        rows.append({
            "concept": int(u), "AUROC": round(float(auroc.loc[u]), 3),
            f"top-{n_genes} attribution genes": ", ".join(f"{g}★" if g in mk else g
                                                          for g in r.index[:n_genes]),
            f"ISGs in top {n_isg}": len(marker_hits(r, markers, n_isg)),
            "best GO term (NES)": (f"{s['best_term']} ({s['NES']:.2f})"
                                   if s is not None and s["best_term"] else "none"),
            "annotation": s["annotation"] if s is not None else "none",
            "interferon/virus terms in top 5": sum(bool(INTERFERON_TERMS.search(t["term"]))
                                                   for t in terms)})
    return pd.DataFrame(rows).set_index("concept")
