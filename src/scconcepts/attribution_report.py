"""Reporting helpers over attribution results: Fig 2C gene-set sizes (:func:`gene_set_summary`),
top genes with their names (:func:`top_genes_table`), canonical markers among the top genes
(:func:`marker_overlap`, :func:`marker_report`) and example concepts chosen by a fixed rule
(:func:`example_concepts`).

Split from :mod:`scconcepts.attribution`, which re-exports these names.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Sequence

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from .attribution import AttributionResult

__all__ = [
    "gene_set_summary",
    "top_genes_table",
    "marker_overlap",
    "housekeeping_genes",
    "housekeeping_share",
    "marker_report",
    "example_concepts",
]


def gene_set_summary(absolute: dict[str, np.ndarray], relative: dict[str, np.ndarray],
                     min_genes: int = 3) -> pd.DataFrame:
    """Fig 2C table: per group of units, the median gene-set size and the share above ``min_genes``.

    Parameters
    ----------
    absolute, relative
        Group label → :meth:`AttributionResult.gene_set_sizes` with the absolute and the relative
        threshold, shapes (n_units,); NaN (units that never activate) are left out.
    min_genes
        The paper's "more than 3 genes" (Sec 4.2).

    Returns
    -------
    pandas.DataFrame
        One row per group: ``units``, ``median genes (absolute)``, ``share with > 3 genes
        (absolute)``, and the same two for the relative threshold (3 decimals).
    """
    rows = {}
    for label, v in absolute.items():
        r = relative[label]
        rows[label] = {
            "units": int(np.isfinite(v).sum()),
            "median genes (absolute)": np.nanmedian(v),
            f"share with > {min_genes} genes (absolute)": np.nanmean(np.where(np.isnan(v), np.nan, v > min_genes)),
            "median genes (relative)": np.nanmedian(r),
            f"share with > {min_genes} genes (relative)": np.nanmean(np.where(np.isnan(r), np.nan, r > min_genes)),
        }
    return pd.DataFrame(rows).T.round(3)


def top_genes_table(result: AttributionResult, units: Sequence[int], n: int = 10,
                    gene_info: pd.DataFrame | None = None) -> pd.DataFrame:
    """Top-``n`` genes of C_i for each unit, with full gene names.

    Parameters
    ----------
    gene_info
        :func:`scconcepts.data.load_gene_info` (index = symbol; ``name``, ``gene_type``).

    Returns
    -------
    DataFrame
        Columns ``unit``, ``rank`` (1-based), ``gene``, ``attribution``, ``name``, ``gene_type``.
    """
    rows = []
    for u in units:
        top = result.ranked(int(u)).head(n)
        for rank, (g, a) in enumerate(top.items(), 1):
            info = gene_info.loc[g] if gene_info is not None and g in gene_info.index else None
            rows.append({"unit": int(u), "rank": rank, "gene": g, "attribution": float(a),
                         "name": "" if info is None else info["name"],
                         "gene_type": "" if info is None else info["gene_type"]})
    return pd.DataFrame(rows)


def marker_overlap(result: AttributionResult, units: Sequence[int], markers: Sequence[str],
                   n: int = 10) -> pd.DataFrame:
    """Which of ``markers`` appear among the top-``n`` attribution genes of each unit.

    Returns
    -------
    DataFrame
        One row per unit: ``unit``, ``hits`` (comma-joined markers found), ``n_hits``,
        ``top_genes`` (comma-joined top-``n``).
    """
    mk = set(markers)
    rows = []
    for u in units:
        top = list(result.ranked(int(u)).index[:n])
        hits = [g for g in top if g in mk]
        rows.append({"unit": int(u), "hits": ", ".join(hits), "n_hits": len(hits),
                     "top_genes": ", ".join(top)})
    # the columns also when there is no unit (a cell type without specific concepts)
    return pd.DataFrame(rows, columns=["unit", "hits", "n_hits", "top_genes"])


def housekeeping_genes(genes: Sequence[str], mean_counts: np.ndarray, n_top: int = 20
                       ) -> set[str]:
    """Genes a perturbation of raw counts is suspected to favour: ribosomal-protein (RPL*, RPS*)
    and mitochondrial (MT-*) genes, and the ``n_top`` genes with the highest mean count
    (``mean_counts``, (m,), counts per cell) of the dataset."""
    genes = np.asarray(genes, dtype=str)
    pattern = np.char.startswith(genes, "RPL") | np.char.startswith(genes, "RPS") | \
        np.char.startswith(genes, "MT-")
    top = genes[np.argsort(-np.asarray(mean_counts, dtype=float))[:n_top]]
    return set(genes[pattern]) | set(top)


def housekeeping_share(result: AttributionResult, units: Sequence[int], genes: set[str],
                       n: int = 10) -> pd.Series:
    """Share of each unit's top-``n`` attribution genes that are in ``genes`` (e.g.
    :func:`housekeeping_genes`); index = unit, NaN for units without scores."""
    out = {}
    for u in units:
        ranked = result.ranked(int(u))
        out[int(u)] = (float(np.isin(ranked.index[:n], list(genes)).mean())
                       if len(ranked) and np.isfinite(ranked.iloc[0]) else np.nan)
    return pd.Series(out, name="housekeeping share", dtype=float)


def marker_report(result: AttributionResult, categories: pd.DataFrame,
                  markers: dict[str, Sequence[str]], n: int = 10
                  ) -> tuple[pd.DataFrame, dict[str, pd.DataFrame]]:
    """Canonical markers among the top-``n`` genes of cell-type-specific concepts, with a control.

    Parameters
    ----------
    result
        Concept attributions (must contain every specific concept).
    categories
        :func:`scconcepts.concepts.categorize_concepts` output (``category``,
        ``cell_type_label``, ``cell_type_ratio``, ``n_cells``).
    markers
        Cell type → canonical marker symbols.

    Returns
    -------
    (summary, tables)
        ``summary``: one row per cell type with the number of specific concepts, how many have a
        marker in their top ``n``, that share, and the control share among concepts specific to
        *other* cell types; ``tables``: cell type → :func:`marker_overlap` of its concepts with
        their ``ratio`` and ``n_cells``.
    """
    specific = categories[categories["category"] == "cell_type-specific"]
    rows, tables = [], {}
    for cell_type, mk in markers.items():
        own = specific.index[specific["cell_type_label"] == cell_type]
        other = specific.index[specific["cell_type_label"] != cell_type]
        hits_own = marker_overlap(result, own, mk, n)
        hits_other = marker_overlap(result, other, mk, n)
        tables[cell_type] = hits_own.assign(
            ratio=categories.loc[hits_own["unit"], "cell_type_ratio"].round(2).to_numpy(),
            n_cells=categories.loc[hits_own["unit"], "n_cells"].to_numpy())
        rows.append({"cell type": cell_type, "specific concepts": len(own),
                     "with a marker in top 10": int((hits_own["n_hits"] > 0).sum()),
                     "share": (hits_own["n_hits"] > 0).mean() if len(own) else np.nan,
                     "control: other-type concepts with one of these markers":
                         (hits_other["n_hits"] > 0).mean() if len(other) else np.nan})
    return pd.DataFrame(rows).set_index("cell type"), tables


def example_concepts(codes, cell_types: pd.Series, tables: dict[str, pd.DataFrame]
                     ) -> pd.DataFrame:
    """Example concepts per cell type, by a fixed rule (no cherry-picking).

    For each cell type of ``tables`` (from :func:`marker_report`): its *main concept*, the
    specific concept that activates in the most cells of that type, and, when different, the one
    with the most such cells among those with a marker in their top genes.

    Parameters
    ----------
    codes
        Concept activations U, shape (n_cells, c).
    cell_types
        Cell type of every cell, length n_cells.

    Returns
    -------
    DataFrame
        Columns ``cell_type``, ``unit``, ``rule`` (``"main concept"`` / ``"with a marker"``),
        ``cells`` (cells of that type activating it), ``has_marker``.
    """
    rows = []
    labels = np.asarray(cell_types)
    for ct, tab in tables.items():
        if tab.empty:
            continue
        own = tab["unit"].to_numpy()
        cov = pd.Series(np.asarray((codes[labels == ct][:, own] > 0).sum(0)).ravel(), index=own)
        hit = tab.set_index("unit")["n_hits"] > 0
        main = int(cov.idxmax())
        rows.append({"cell_type": ct, "unit": main, "rule": "main concept",
                     "cells": int(cov[main]), "has_marker": bool(hit[main])})
        if hit.any() and not hit[main]:
            best = int(cov[hit[hit].index].idxmax())
            rows.append({"cell_type": ct, "unit": best, "rule": "with a marker",
                         "cells": int(cov[best]), "has_marker": True})
    return pd.DataFrame(rows, columns=["cell_type", "unit", "rule", "cells", "has_marker"])
