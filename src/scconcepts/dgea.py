"""Attribution vs differential gene expression analysis (DGEA) of concepts (App C, Fig 8, Table 6).

Claye et al. 2025 compare the attribution gene list C_i (Sec 3.2, Eq 1–3) of a concept with the
genes of a classical DGEA, as proposed by Schuster (2024):

* **DGEA gene set.** scanpy ``rank_genes_groups`` (default ``"t-test"``) on normalised log1p
  expression, between the ≤ 1,000 cells that activate the concept most and their counterfactual
  cells (Eq 1: each one's nearest non-activating cell in the embedding, duplicates once).
* **Deletion curves (Fig 8).** The attribution's prototypes get their top-s genes replaced by
  the counterfactual's values (Eq 2 for s genes at once), or set to 0 (zero-masking, asked for
  by a reviewer), for s = 0 … S; orders: attribution (C_i) and DGEA (|log2FC| decreasing among
  genes with nominal p ≤ 5e-3, as the paper writes).
* **GSEA (Table 6).** gseapy prerank on the attribution scores and on the signed log2 fold
  changes; "enriched" = NES > 0 and nominal p ≤ 0.005. Per concept enriched by both: max
  |log2FC| and max attribution over the enriched pathways' leading-edge genes (the paper does not
  say which genes), IoU of the pathway sets and of their gene sets.

The verdicts on these measurements are in :mod:`scconcepts.claims.dgea`.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from .attribution import AttributionResult, UnitFunction, find_counterfactuals, select_prototypes
from .deletion import curve_summary, deletion_curve, deletion_curves, held_out_pairs

__all__ = ["counterfactual_cells", "rank_genes", "concept_dgea", "dgea_order", "deletion_curve",
           "deletion_curves", "iou", "enriched", "gsea_comparison", "unique_pathways",
           "held_out_pairs", "DGEA_P", "GSEA_P", "compare_with_dgea", "options",
           "save_comparison", "load_comparison", "enriched_by_unit", "curve_summary"]

DGEA_P = 5e-3   # App C: DGEA genes for the deletion curve need p ≤ 5e-3
GSEA_P = 5e-3   # Table 6: enriched pathways have p ≤ 0.005


def _dense(x) -> np.ndarray:
    return np.asarray(x.toarray() if sp.issparse(x) else x, dtype=np.float32)


def counterfactual_cells(embeddings: np.ndarray, activation: np.ndarray, cells: Sequence[int]
                         ) -> np.ndarray:
    """Eq 1 for a group of cells: the nearest non-activating cell of each, duplicates removed.

    Parameters
    ----------
    embeddings
        f(x) of every cell, shape (n_cells, d); L2 distances.
    activation
        The concept's activation in every cell, shape (n_cells,); non-activating means ≤ 0.
    cells
        Top-activating cells, shape (n_top,).

    Returns
    -------
    ndarray of int, shape (≤ n_top,)
        Sorted unique counterfactual cell indices.

    Raises
    ------
    ValueError
        If no cell is non-activating (from :func:`find_counterfactuals`).
    """
    return np.unique(find_counterfactuals(embeddings, activation, np.asarray(cells), 1).ravel())


def rank_genes(expression, genes: Sequence[str], group: Sequence[int], reference: Sequence[int],
               method: str = "t-test") -> pd.DataFrame:
    """DGEA of ``group`` vs ``reference`` cells with scanpy ``rank_genes_groups``.

    Parameters
    ----------
    expression, genes
        Raw counts (n_cells, m), dense or sparse, normalised here to 10⁴ counts per cell and
        log1p-transformed (scanpy's convention for its fold changes); m gene symbols.
    group, reference
        Cell indices of the two groups (disjoint; ≥ 2 cells each).
    method
        scanpy method: ``"t-test"`` (default), ``"wilcoxon"`` (~200× slower here), ...

    Returns
    -------
    DataFrame
        Index = gene (all m genes); columns ``log2fc`` (scanpy ``logfoldchanges``, group over
        reference; 0 where undefined), ``score``, ``pval``, ``pval_adj`` (Benjamini–Hochberg).

    Raises
    ------
    ValueError
        If a group has fewer than 2 cells or the groups overlap.
    """
    import anndata as ad
    import scanpy as sc

    group, reference = np.asarray(group, dtype=int), np.asarray(reference, dtype=int)
    if len(group) < 2 or len(reference) < 2:
        raise ValueError(f"DGEA needs ≥ 2 cells per group; got {len(group)} and "
                         f"{len(reference)}.")
    if np.intersect1d(group, reference).size:
        raise ValueError("DGEA groups overlap: a cell cannot be both top-activating and "
                         "counterfactual.")
    idx = np.concatenate([group, reference])
    x = expression[idx]
    x = sp.csr_matrix(x, dtype=np.float32) if sp.issparse(x) else np.asarray(x, np.float32)
    adata = ad.AnnData(X=x)
    adata.var_names = pd.Index([str(g) for g in genes])
    adata.obs["grp"] = pd.Categorical(np.r_[np.full(len(group), "concept"),
                                            np.full(len(reference), "counterfactual")])
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.tl.rank_genes_groups(adata, "grp", groups=["concept"], reference="counterfactual",
                            method=method, n_genes=adata.n_vars)
    df = sc.get.rank_genes_groups_df(adata, group="concept").set_index("names")
    out = pd.DataFrame({"log2fc": df["logfoldchanges"].astype(float),
                        "score": df["scores"].astype(float),
                        "pval": df["pvals"].astype(float),
                        "pval_adj": df["pvals_adj"].astype(float)})
    out.index.name = "gene"
    out = out.reindex(adata.var_names)
    out["log2fc"] = out["log2fc"].replace([np.inf, -np.inf], np.nan).fillna(0.0)
    return out


def concept_dgea(expression, genes: Sequence[str], embeddings: np.ndarray,
                 activation: np.ndarray, max_cells: int = 1000, method: str = "t-test"
                 ) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """DGEA gene set of one concept (App C): ≤ ``max_cells`` top cells vs their counterfactuals.

    ``expression``: raw counts in the model's genes (n_cells, m); ``embeddings``: f(x) for the
    counterfactual search (Eq 1); ``activation``: the concept in every cell; ``max_cells``: cap
    of each group (paper: 1,000). Returns the :func:`rank_genes` table and the cell indices of
    both groups; raises ValueError with fewer than 2 activating or counterfactual cells.
    """
    top = select_prototypes(activation, max_cells)
    cf = counterfactual_cells(embeddings, activation, top)[:max_cells]
    return rank_genes(expression, genes, top, cf, method=method), top, cf


def dgea_order(table: pd.DataFrame, p_max: float = DGEA_P, p_key: str = "pval") -> np.ndarray:
    """Genes for the DGEA deletion curve: p ≤ ``p_max``, by decreasing |log2FC| (App C).

    ``p_key`` is ``"pval"`` (nominal, the paper's "p-value") or ``"pval_adj"`` (BH).

    Returns
    -------
    ndarray of str
        Gene symbols, most important first (may be shorter than the number of steps).
    """
    ok = table[table[p_key] <= p_max]
    return ok["log2fc"].abs().sort_values(ascending=False, kind="stable").index.to_numpy(str)


@torch.no_grad()
def iou(a, b) -> float:
    """Intersection over union |a ∩ b| / |a ∪ b| of two sets; NaN when both are empty."""
    a, b = set(a), set(b)
    union = a | b
    return len(a & b) / len(union) if union else float("nan")


def enriched(table: pd.DataFrame, p_max: float = GSEA_P) -> pd.DataFrame:
    """Positively enriched pathways (NES > 0, nominal p ≤ ``p_max``) of a prerank table."""
    if table.empty:
        return table
    return table[(table["NES"] > 0) & (table["pval"] <= p_max)]


def _lead(terms: pd.DataFrame) -> set[str]:
    genes: set[str] = set()
    for lead in terms["lead_genes"]:
        genes.update(g for g in re.split(r"[;,]", str(lead)) if g)
    return genes


def gsea_comparison(attribution: pd.Series, log2fc: pd.Series, gene_sets: dict[str, list[str]],
                    *, permutations: int = 1000, min_size: int = 15, max_size: int = 500,
                    seed: int = 0, threads: int = 1, p_max: float = GSEA_P
                    ) -> tuple[dict, pd.DataFrame, pd.DataFrame]:
    """Attribution-based vs DGEA-based GSEA of one concept (App C, Table 6 metrics).

    Parameters
    ----------
    attribution
        Gene → attribution score C_i (activation units).
    log2fc
        Gene → signed log2 fold change, concept cells over counterfactual cells.
    gene_sets
        Pathway → upper-case symbols.

    Returns
    -------
    (metrics, enriched_att, enriched_dgea)
        ``metrics``: ``n_att``, ``n_dgea`` (enriched pathways), and when both are > 0
        ``maxfc_att``, ``maxfc_dgea`` (max |log2FC| over the leading-edge genes of the
        method's enriched pathways), ``maxatt_att``, ``maxatt_dgea`` (max attribution, same
        genes), ``iou_pathways``, ``iou_genes``; NaN otherwise. The two enriched tables.
    """
    from .enrichment import prerank

    kw = dict(permutations=permutations, min_size=min_size, max_size=max_size, seed=seed,
              threads=threads)
    # gseapy warns on stderr about tied scores (attribution: genes equal in prototype and
    # counterfactual are exactly 0); the ties are expected, the warning is silenced
    with contextlib.redirect_stderr(io.StringIO()):
        e_att = enriched(prerank(attribution, gene_sets, **kw), p_max)
        e_dgea = enriched(prerank(log2fc, gene_sets, **kw), p_max)
    fc = log2fc.abs().rename(index=str.upper)
    att = attribution.rename(index=str.upper)
    m = {"n_att": len(e_att), "n_dgea": len(e_dgea)}
    keys = ("maxfc_att", "maxfc_dgea", "maxatt_att", "maxatt_dgea", "iou_pathways", "iou_genes")
    m.update(dict.fromkeys(keys, np.nan))
    if len(e_att) and len(e_dgea):
        g_att, g_dgea = _lead(e_att), _lead(e_dgea)
        m.update(maxfc_att=float(fc.reindex(list(g_att)).max()),
                 maxfc_dgea=float(fc.reindex(list(g_dgea)).max()),
                 maxatt_att=float(att.reindex(list(g_att)).max()),
                 maxatt_dgea=float(att.reindex(list(g_dgea)).max()),
                 iou_pathways=iou(e_att["Term"], e_dgea["Term"]), iou_genes=iou(g_att, g_dgea))
    return m, e_att, e_dgea



def unique_pathways(enriched_att: dict[int, pd.DataFrame], enriched_dgea: dict[int, pd.DataFrame]
                    ) -> pd.DataFrame:
    """Pathways found by only one method, counted over concepts.

    Returns
    -------
    DataFrame
        One row per pathway: ``pathway``, ``only attribution`` (concepts where attribution-GSEA
        finds it and DGEA-GSEA does not), ``only DGEA``, ``both``; sorted by the larger count.
    """
    counts: dict[str, list[int]] = {}
    for unit in set(enriched_att) | set(enriched_dgea):
        a = set(enriched_att.get(unit, pd.DataFrame(columns=["Term"]))["Term"])
        d = set(enriched_dgea.get(unit, pd.DataFrame(columns=["Term"]))["Term"])
        for t in a | d:
            c = counts.setdefault(t, [0, 0, 0])
            c[0 if t in a - d else 1 if t in d - a else 2] += 1
    df = pd.DataFrame([(t, *c) for t, c in counts.items()],
                      columns=["pathway", "only attribution", "only DGEA", "both"])
    if df.empty:
        return df
    key = df[["only attribution", "only DGEA"]].max(1)
    return df.assign(_k=key).sort_values(["_k", "pathway"], ascending=[False, True]).drop(
        columns="_k").reset_index(drop=True)


# ------------------------------------------------------------------------ chapter driver
def _sample(units: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    if n is None or len(units) <= n:
        return np.asarray(units)
    return np.sort(np.random.default_rng(seed).choice(units, int(n), replace=False))


def options(global_settings, model_settings) -> dict:
    """Keyword arguments of :func:`compare_with_dgea` for one model (plain Python values:
    ``n_concepts``, ``n_gsea``, ``n_deletion``, ``n_steps``, ``max_pairs``, ``max_cells``,
    ``method``, ``permutations``) from the profile's ``dgea`` section and the model's
    ``models.<m>.dgea`` block, whose null values mean the global ones (``deletion_concepts``:
    every sampled concept)."""
    g, m = global_settings, model_settings
    return {"n_concepts": int(g.n_concepts), "n_gsea": int(g.gsea_n_concepts),
            "n_deletion": None if m.deletion_concepts is None else int(m.deletion_concepts),
            "n_steps": int(g.steps if m.steps is None else m.steps),
            "max_pairs": g.max_pairs if m.max_pairs is None else int(m.max_pairs),
            "max_cells": int(g.max_cells), "method": str(g.method),
            "permutations": int(g.gsea_permutations)}


def compare_with_dgea(expression, genes: Sequence[str], embeddings: np.ndarray, codes,
                      unit_fn: UnitFunction, attribution: AttributionResult,
                      gene_sets: dict[str, list[str]], *, n_concepts: int | None = 30,
                      n_gsea: int = 15, n_deletion: int | None = None, n_steps: int = 30,
                      max_pairs: int | None = None, max_cells: int = 1000,
                      method: str = "t-test", permutations: int = 200, min_size: int = 15,
                      seed: int = 0, threads: int = 1, random_curve: bool = True,
                      batch_size: int = 2048) -> dict[str, pd.DataFrame]:
    """Chapter 10 for one model: DGEA, deletion curves and GSEA comparison.

    Concepts are a seeded random sample (``seed``) of at most ``n_concepts`` concepts of
    ``attribution`` with finite scores; the first ``n_deletion`` (None = all) of those with a
    DGEA get deletion curves, the first ``n_gsea`` the GSEA comparison.

    Parameters
    ----------
    expression, genes
        The model's input counts (n_cells, m), dense or sparse, and their m genes (the
        attribution's genes): the DGEA runs on the genes the model reads.
    embeddings, codes
        f(x) (n_cells, d) for the counterfactual cells (Eq 1); concept activations U (n_cells, c).
    unit_fn
        (ψ∘f) on the model's input, for the deletion curves.
    attribution
        Concept attribution (Eq 1–3) on the same cells (units, scores, prototypes,
        counterfactuals).
    gene_sets
        Pathway → upper-case symbols (GSEA library).
    n_steps, max_pairs
        Genes removed at the last deletion step; (prototype, counterfactual) pairs per concept
        (None = all N_p × N_c of the attribution).
    max_cells, method
        Cap of each DGEA group (paper: 1,000); scanpy ``rank_genes_groups`` method.
    permutations
        gseapy permutations of both rankings (≥ 200 to resolve p ≤ 0.005).
    random_curve, batch_size
        Add a seeded random gene order as a null curve; perturbed copies per ``unit_fn`` call.

    Returns
    -------
    dict
        ``curves`` (:func:`deletion_curves`, with the held-out pairs), ``metrics`` (one row per GSEA concept, with
        ``unit`` and :func:`gsea_comparison` metrics), ``dgea`` (per concept: ``n_top``,
        ``n_cf`` cells, ``n_dgea_genes`` and ``top_dgea_genes``), ``enriched`` (long table
        ``unit``, ``method``, ``Term``, ``NES``, ``pval``, ``lead_genes``).

    Raises
    ------
    ValueError
        If ``permutations`` < 1/GSEA_P (p ≤ 0.005 could not be reached).
    """
    if permutations < round(1 / GSEA_P):
        raise ValueError(f"permutations={permutations} cannot resolve p ≤ {GSEA_P}: use ≥ "
                         f"{round(1 / GSEA_P)}.")
    att = attribution
    ok = att.units[~np.isnan(att.scores).all(1)]
    units = _sample(ok, n_concepts, int(seed))
    codes = sp.csc_matrix(codes) if sp.issparse(codes) else np.asarray(codes)
    tables, dgea_rows, orders = {}, [], {}
    for u in units:
        col = codes[:, int(u)]
        act = np.asarray(col.toarray() if sp.issparse(col) else col, dtype=float).ravel()
        try:
            tab, top, cfc = concept_dgea(expression, genes, embeddings, act,
                                         max_cells=max_cells, method=method)
        except ValueError:
            continue  # fewer than 2 activating or counterfactual cells
        tables[int(u)] = tab
        orders[int(u)] = dgea_order(tab)
        dgea_rows.append({"unit": int(u), "n_top": len(top), "n_cf": len(cfc),
                          "n_dgea_genes": len(orders[int(u)]),
                          "top_dgea_genes": ", ".join(orders[int(u)][:10])})
    dgea_df = pd.DataFrame(dgea_rows, columns=["unit", "n_top", "n_cf", "n_dgea_genes",
                                               "top_dgea_genes"])
    del_units = list(orders)[:n_deletion] if n_deletion is not None else list(orders)
    curves = deletion_curves(unit_fn, expression, att, {u: orders[u] for u in del_units},
                             n_steps, max_pairs=max_pairs, batch_size=batch_size,
                             random_seed=int(seed) if random_curve else None,
                             embeddings=embeddings, codes=codes)
    rows, enr = [], []
    for u in list(tables)[:n_gsea]:
        r = int(np.flatnonzero(att.units == u)[0])
        a = pd.Series(att.scores[r].astype(float), index=list(att.genes))
        m, e_a, e_d = gsea_comparison(a, tables[u]["log2fc"], gene_sets,
                                      permutations=permutations, min_size=int(min_size),
                                      seed=int(seed), threads=int(threads))
        rows.append({"unit": u, **m})
        for meth, e in (("attribution", e_a), ("DGEA", e_d)):
            enr += [{"unit": u, "method": meth, "Term": t.Term, "NES": t.NES, "pval": t.pval,
                     "lead_genes": t.lead_genes} for t in e.itertuples()]
    metric_cols = ["unit", "n_att", "n_dgea", "maxfc_att", "maxfc_dgea", "maxatt_att",
                   "maxatt_dgea", "iou_pathways", "iou_genes"]
    return {"curves": curves, "metrics": pd.DataFrame(rows, columns=metric_cols),
            "dgea": dgea_df,
            "enriched": pd.DataFrame(enr, columns=["unit", "method", "Term", "NES", "pval",
                                                   "lead_genes"])}


_TABLES = ("curves", "metrics", "dgea", "enriched")


def save_comparison(result: dict[str, pd.DataFrame], path: str) -> None:
    """Write a :func:`compare_with_dgea` result as one zip of parquet tables."""
    import zipfile

    with zipfile.ZipFile(path, "w") as z:
        for name in _TABLES:
            buf = io.BytesIO()
            result[name].to_parquet(buf)
            # a fixed date: equal results give byte-identical files (README, "Reproducibility")
            z.writestr(zipfile.ZipInfo(f"{name}.parquet", date_time=(1980, 1, 1, 0, 0, 0)),
                       buf.getvalue())


def load_comparison(path: str) -> dict[str, pd.DataFrame]:
    """Read :func:`save_comparison`'s file."""
    import zipfile

    with zipfile.ZipFile(path) as z:
        return {name: pd.read_parquet(io.BytesIO(z.read(f"{name}.parquet"))) for name in _TABLES}


def enriched_by_unit(enriched_long: pd.DataFrame, method: str) -> dict[int, pd.DataFrame]:
    """Split the long ``enriched`` table of :func:`compare_with_dgea` per concept for one method."""
    sub = enriched_long[enriched_long["method"] == method]
    return {int(u): g for u, g in sub.groupby("unit")}
