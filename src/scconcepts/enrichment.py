"""Attribution-based gene set enrichment analysis (Sec 3.4, Fig 3A.b).

For each unit i (concept or neuron), GSEA (Subramanian et al. 2005) is run with gseapy's
``prerank`` (Fang et al. 2023) on the attribution ranking C_i (Eq 3) instead of fold changes,
against GO Biological Process (Enrichr 2023 library bundled offline; the paper used 2025).
The label is the pathway with the highest NES among positively enriched sets; it is a *weak*
annotation when its nominal p ≤ 5e-3 and a *strong* one when p ≤ 5e-5.

**p-value resolution.** gseapy's nominal p (Subramanian et al. 2005) is the fraction of the
gene-set permutations whose null enrichment score has the observed score's sign that reach it;
about half of the ``permutations`` have that sign, so the smallest non-zero p is about 2/P (not
1/P), and "0" only means p below that. With the default P = 500 (≈ 4e-3), 5e-3 is resolvable —
at most one same-sign null score may reach the observed one — but 5e-5 is not. We therefore re-test the
best pathway of every weakly annotated unit alone and call it strong only when that test gives
p ≤ 5e-5. By default (``strong_method="multilevel"``) the re-test is gseapy's port of fgsea's
adaptive multilevel splitting (Korotkevich et al. 2021, *bioRxiv* 060012), which estimates the
same gene-permutation p-value down to 1e-50 from ``strong_permutations`` simple permutations
plus Monte-Carlo levels, about 50 times faster than brute force on one set. With
``strong_method="permutation"`` it is the brute-force test with ``strong_permutations``
permutations (40,000 give about 20,000 same-sign null scores, resolution 5e-5: strong then
means none of them reaches the enrichment score, p = 0).
"""

from __future__ import annotations

import json
import logging
from typing import Sequence

import numpy as np
import pandas as pd
from tqdm import tqdm

from .attribution import AttributionResult

__all__ = ["prerank", "annotate_units", "annotation_summary", "WEAK_P", "STRONG_P",
           "STRONG_FALLBACK_PERMUTATIONS"]

WEAK_P = 5e-3
STRONG_P = 5e-5
#: Permutations of the brute-force strong re-test when gseapy's multilevel estimate cannot run:
#: GSEApy's p counts only the null scores of the observed sign (about half of them), so
#: resolving STRONG_P needs 2 / STRONG_P = 40,000 permutations (p = 0 then means p < 5e-5).
STRONG_FALLBACK_PERMUTATIONS = int(np.ceil(2 / STRONG_P))


def _restrict(gene_sets: dict[str, list[str]], genes: Sequence[str], min_size: int,
              max_size: int) -> dict[str, list[str]]:
    universe = {g.upper() for g in genes}
    out = {}
    for name, members in gene_sets.items():
        kept = [g for g in members if g in universe]
        if min_size <= len(kept) <= max_size:
            out[name] = kept
    return out


def testable_sets(gene_sets: dict[str, list[str]], genes: Sequence[str], min_size: int = 15,
                  max_size: int = 500) -> int:
    """Number of gene sets GSEA can test on a ranking of ``genes``: those with ``min_size`` to
    ``max_size`` members among them (gseapy's filter, applied by :func:`prerank`). A unit's
    label is the best of these, so the count sizes the multiple-testing burden of a label.

    Parameters
    ----------
    gene_sets
        {name: gene symbols} (e.g. GO Biological Process).
    genes
        The genes of the attribution ranking (the model's input panel), length m.
    """
    return len(_restrict(gene_sets, genes, min_size, max_size))


def prerank(
    ranking: pd.Series,
    gene_sets: dict[str, list[str]],
    *,
    permutations: int = 1000,
    min_size: int = 5,
    max_size: int = 500,
    seed: int = 0,
    threads: int = 1,
    method: str = "permutation",
) -> pd.DataFrame:
    """GSEA prerank of one ranked gene list.

    Parameters
    ----------
    ranking
        Gene symbol → score (attribution, activation units), any order; symbols are upper-cased.
    gene_sets
        Name → upper-case symbols (e.g. :func:`scconcepts.data.load_gene_sets`).
    permutations
        Gene-set permutations (p resolution about 2/permutations: same-sign null scores).
    min_size, max_size
        Gene-set size limits after restricting to the ranked genes.
    seed
        gseapy permutation seed.
    method
        ``"permutation"`` (nominal p = fraction of ``permutations`` gene-set permutations) or
        ``"multilevel"`` (gseapy's fgsea multilevel estimate of the same p-value, Korotkevich
        et al. 2021; ``permutations`` is then the size of its simple-permutation phase).

    Returns
    -------
    DataFrame
        One row per tested set: ``Term``, ``ES``, ``NES``, ``pval`` (nominal), ``fdr``,
        ``lead_genes``, ``n_genes``; sorted by decreasing NES. Empty if no set passes the
        size filter.
    """
    import gseapy

    r = ranking.copy()
    r.index = r.index.astype(str).str.upper()
    r = r[~r.index.duplicated()].astype(float).sort_values(ascending=False)
    sets = _restrict(gene_sets, r.index, min_size, max_size)
    cols = ["Term", "ES", "NES", "pval", "fdr", "lead_genes", "n_genes"]
    if not sets or r.abs().sum() == 0:
        return pd.DataFrame(columns=cols)
    logging.getLogger("gseapy").setLevel(logging.ERROR)
    res = gseapy.prerank(rnk=r, gene_sets=sets, permutation_num=permutations, min_size=min_size,
                         max_size=max_size, seed=seed, threads=threads, outdir=None,
                         no_plot=True, verbose=False, method=method).res2d
    out = pd.DataFrame({
        "Term": res["Term"].astype(str),
        "ES": res["ES"].astype(float),
        "NES": res["NES"].astype(float),
        "pval": res["NOM p-val"].astype(float),
        "fdr": res["FDR q-val"].astype(float),
        "lead_genes": res["Lead_genes"].astype(str),
    })
    out["n_genes"] = out["Term"].map(lambda t: len(sets[t]))
    return out.sort_values("NES", ascending=False, kind="stable").reset_index(drop=True)


def _strong_retest(scores: pd.Series, one: dict[str, list[str]], method: str, permutations: int,
                   **kw) -> tuple[float, str]:
    """p-value of the strong re-test of one set, and the method that produced it.

    gseapy's multilevel port panics (Rust sort on NaN) when it can draw a random gene set whose
    genes all score exactly 0 (0/0 in the running sum): attribution rankings often hold hundreds
    of genes with C_i = 0 (genes equal in prototype and counterfactuals). When a random set of
    this size is all zeros with probability ≥ 1e-9 (the sampler draws up to ~10⁵ sets), or if it
    panics anyway, the re-test falls back to brute force with
    enough permutations to resolve ``STRONG_P`` (:data:`STRONG_FALLBACK_PERMUTATIONS` = 40,000:
    only the same-sign half of the null scores counts).
    """
    if method == "multilevel":
        genes = {g.upper() for g in next(iter(one.values()))}
        upper = scores.index.astype(str).str.upper()
        n_set = int(np.isin(upper, list(genes)).sum())
        n_zero, n_all = int((scores.to_numpy(float) == 0).sum()), len(scores)
        # probability that a uniformly drawn set of this size has only zero scores
        log_p0 = (np.sum(np.log((n_zero - np.arange(n_set)) / (n_all - np.arange(n_set))))
                  if n_zero >= n_set else -np.inf)
        if log_p0 < np.log(1e-9):
            try:
                tab = prerank(scores, one, permutations=permutations, method="multilevel", **kw)
                return (float(tab["pval"].iloc[0]) if len(tab) else np.nan), "multilevel"
            except BaseException as err:  # pyo3's PanicException derives from BaseException
                if type(err).__name__ != "PanicException":
                    raise
        permutations = max(int(permutations), STRONG_FALLBACK_PERMUTATIONS)
    tab = prerank(scores, one, permutations=permutations, method="permutation", **kw)
    return (float(tab["pval"].iloc[0]) if len(tab) else np.nan), "permutation"


def annotate_units(
    attribution: AttributionResult,
    gene_sets: dict[str, list[str]],
    units: Sequence[int] | None = None,
    *,
    permutations: int = 1000,
    strong_permutations: int = 1000,
    strong_method: str = "multilevel",
    min_size: int = 5,
    max_size: int = 500,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
    shuffle: bool = False,
    n_top_terms: int = 5,
) -> tuple[pd.DataFrame, dict[int, pd.DataFrame]]:
    """Attribution-based GSEA label of each unit (Sec 3.4, Fig 3A.b).

    Parameters
    ----------
    attribution
        Scores C_i from :func:`scconcepts.attribution.attribute_units`.
    units
        Subset of ``attribution.units`` (default: all with finite scores).
    permutations, strong_permutations
        Permutations of the full run and of the strong re-test (see module docstring).
    strong_method
        ``"multilevel"`` (fgsea multilevel p-value, default) or ``"permutation"`` (brute force
        with ``strong_permutations``) for the strong re-test.
    shuffle
        Null control: shuffle each unit's attribution scores across genes (seeded) before GSEA.
        The best pathway is still chosen among ~10² tested sets with *nominal* p-values (as in
        the paper), so shuffled rankings also get "annotations"; their rate is the false-positive
        baseline against which concept and neuron rates should be read.
    n_top_terms
        Positively enriched sets kept per unit in ``top_terms`` (by decreasing NES).

    Returns
    -------
    (summary, tables)
        ``summary``: one row per unit with ``unit``, ``best_term`` (highest NES among
        positively enriched sets, ``None`` if none), ``NES``, ``pval`` (full run),
        ``pval_strong`` (re-test, NaN if not re-tested), ``strong_method`` (how the re-test
        was computed: ``"multilevel"``, or ``"permutation"`` for brute force, also the multilevel
        fallback when many genes score exactly 0), ``fdr`` (GSEApy FDR q-value of the best
        term), ``annotation`` (``"strong"``, ``"weak"`` or ``"none"``), ``n_sets_tested``,
        ``top_terms`` (JSON list of the ``n_top_terms`` positively enriched sets with the highest
        NES, each ``{"term", "NES", "pval", "fdr"}``; shown by :mod:`scconcepts.viewer`);
        ``tables``: unit → full prerank table.

    Raises
    ------
    ValueError
        If ``strong_method`` is neither ``"multilevel"`` nor ``"permutation"``.
    """
    if strong_method not in ("multilevel", "permutation"):
        raise ValueError(f"strong_method must be 'multilevel' or 'permutation', got "
                         f"{strong_method!r} (params key gsea_strong_method)")
    units = attribution.units if units is None else np.asarray(units)
    rows, tables = [], {}
    for unit in tqdm(units, desc=f"GSEA ({attribution.kind}s)", disable=not progress):
        scores = attribution.ranked(int(unit))
        if scores.isna().all():
            continue
        if shuffle:
            perm = np.random.default_rng([seed, int(unit)]).permutation(len(scores))
            scores = pd.Series(scores.to_numpy()[perm], index=scores.index)
        tab = prerank(scores, gene_sets, permutations=permutations, min_size=min_size,
                      max_size=max_size, seed=seed, threads=threads)
        tables[int(unit)] = tab
        pos = tab[tab["NES"] > 0]
        best = pos.iloc[0] if len(pos) else None
        row = {"unit": int(unit), "kind": attribution.kind, "n_sets_tested": len(tab),
               "best_term": None, "NES": np.nan, "pval": np.nan, "pval_strong": np.nan,
               "fdr": np.nan, "shuffled": shuffle, "strong_method": None,
               "lead_genes": "", "annotation": "none",
               "top_terms": json.dumps([
                   {"term": str(t.Term), "NES": float(t.NES), "pval": float(t.pval),
                    "fdr": float(t.fdr)} for t in pos.head(n_top_terms).itertuples()])}
        if best is not None:
            row.update(best_term=best["Term"], NES=best["NES"], pval=best["pval"],
                       fdr=best["fdr"], lead_genes=best["lead_genes"])
            if best["pval"] <= WEAK_P:
                row["annotation"] = "weak"
                one = {best["Term"]: gene_sets[best["Term"]]}
                p_strong, row["strong_method"] = _strong_retest(
                    scores, one, strong_method, strong_permutations, min_size=min_size,
                    max_size=max_size, seed=seed, threads=threads)
                if np.isfinite(p_strong):
                    row["pval_strong"] = p_strong
                    if row["pval_strong"] <= STRONG_P:
                        row["annotation"] = "strong"
        rows.append(row)
    summary = pd.DataFrame(rows)
    summary.attrs.update(permutations=permutations, strong_permutations=strong_permutations,
                         strong_method=strong_method)
    return summary, tables


def annotation_summary(*summaries: pd.DataFrame) -> pd.DataFrame:
    """Fraction of units per annotation level (Fig 3A.b), one row per (model, kind)."""
    df = pd.concat(summaries, ignore_index=True)
    if "shuffled" in df.columns:
        df["kind"] = np.where(df["shuffled"], df["kind"] + " (shuffled genes)", df["kind"])
    keys = [k for k in ("model", "kind") if k in df.columns]
    tab = (df.groupby(keys)["annotation"].value_counts(normalize=True).unstack(fill_value=0.0)
           .reindex(columns=["strong", "weak", "none"], fill_value=0.0))
    tab["n_units"] = df.groupby(keys).size()
    if "fdr" in df.columns:
        tab["best term FDR ≤ 0.05"] = df.assign(q=df["fdr"] <= 0.05).groupby(keys)["q"].mean()
    return tab
