"""Ground truth for attribution: a gene programme planted into real cells (issue 13, item 11).

Nothing in real data says which genes truly drive a concept. A semi-synthetic test makes the
answer known: choose a programme G of genes and a subset S of real cells, raise the counts of G
in S (:func:`plant_programme`), embed the edited cells with the model f, train the SAE on the
edited embeddings, find the unit that fires on S (:func:`best_units`: the concept and the neuron
with the highest AUROC for S), attribute it, and score its top genes against G
(:func:`precision_at_k`). The same is done with zero-masking (each gene replaced by 0 instead of
the counterfactual's value), the common occlusion baseline the paper argues against.

Precision@k is the share of the top-k attribution genes that are planted genes; with |G| genes
among m, a random ranking scores |G|/m on average (:func:`precision_at_k` reports it).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["choose_programme", "choose_cells", "plant_programme", "best_units",
           "precision_at_k"]


def choose_programme(X, genes: Sequence[str], n_genes: int = 20, min_fraction: float = 0.1,
                     max_fraction: float = 0.6, seed: int = 0,
                     exclude: Sequence[str] = ()) -> np.ndarray:
    """A seeded random programme: ``n_genes`` gene indices among genes detected in between
    ``min_fraction`` and ``max_fraction`` of the cells (neither rare nor ubiquitous), not in
    ``exclude`` (e.g. ribosomal genes or canonical markers).

    ``X``: counts (n_cells, m), sparse or dense. Raises ValueError when too few genes qualify."""
    detected = np.asarray((X > 0).mean(0)).ravel()
    ok = (detected >= min_fraction) & (detected <= max_fraction)
    ok &= ~np.isin(np.asarray(genes, dtype=str), list(exclude))
    pool = np.flatnonzero(ok)
    if pool.size < n_genes:
        raise ValueError(f"Only {pool.size} genes are detected in {min_fraction:.0%}–"
                         f"{max_fraction:.0%} of the cells; {n_genes} needed for the programme. "
                         "Lower n_genes or widen the detection range.")
    return np.sort(np.random.default_rng(seed).choice(pool, n_genes, replace=False))


def choose_cells(n_cells: int, fraction: float = 0.05, seed: int = 0) -> np.ndarray:
    """A seeded random subset S of ``fraction`` of the cells (sorted indices), across all cell
    types, so that S is not a population the model already separates."""
    n = max(1, int(round(fraction * n_cells)))
    return np.sort(np.random.default_rng(seed + 1).choice(n_cells, n, replace=False))


def plant_programme(X, cells: np.ndarray, genes: np.ndarray, factor: float = 4.0,
                    seed: int = 0) -> sp.csr_matrix:
    """Counts with the programme planted: for every cell of S and gene of G, a new count drawn
    from Poisson(factor × (x + 1)) (a factor-fold rise that also switches on undetected genes);
    every other count is unchanged.

    Parameters
    ----------
    X
        Counts (n_cells, m), sparse or dense, non-negative.
    cells, genes
        Indices of S and G.
    factor
        Fold rise of the programme's expression (> 1).

    Returns
    -------
    csr_matrix
        Float32 counts of the same shape.

    Raises
    ------
    ValueError
        If ``factor`` ≤ 1 or an index is out of range.
    """
    if factor <= 1:
        raise ValueError(f"factor must be > 1 to plant a rise, not {factor}")
    X = sp.csr_matrix(X, dtype=np.float32)
    n, m = X.shape
    cells, genes = np.asarray(cells, dtype=int), np.asarray(genes, dtype=int)
    if cells.size and (cells.min() < 0 or cells.max() >= n) or \
            genes.size and (genes.min() < 0 or genes.max() >= m):
        raise ValueError(f"cell or gene index out of range for counts of shape {X.shape}")
    sub = X[cells][:, genes].toarray()
    new = np.random.default_rng(seed + 2).poisson(factor * (sub + 1.0)).astype(np.float32)
    out = X.tolil()
    out[np.ix_(cells, genes)] = new
    return out.tocsr()


def best_units(activations, cells: np.ndarray) -> pd.DataFrame:
    """AUROC of every unit's activation for telling S from the other cells, best first.

    ``activations``: (n_cells, n_units), sparse codes or dense neurons; ``cells``: indices of S.
    Returns a DataFrame (index = unit) with ``auroc`` (ties count half: the Mann–Whitney U
    statistic over n_S × n_rest, :func:`scipy.stats.rankdata`) and ``fires_in_S`` (share of S with
    activation > 0), sorted by decreasing AUROC."""
    from scipy.stats import rankdata

    A = activations.toarray() if sp.issparse(activations) else np.asarray(activations)
    n = A.shape[0]
    pos = np.zeros(n, dtype=bool)
    pos[np.asarray(cells, dtype=int)] = True
    n1, n0 = pos.sum(), (~pos).sum()
    ranks = rankdata(A, axis=0)
    auroc = (ranks[pos].sum(0) - n1 * (n1 + 1) / 2) / (n1 * n0)
    out = pd.DataFrame({"auroc": auroc, "fires_in_S": (A[pos] > 0).mean(0)})
    out.index.name = "unit"
    return out.sort_values("auroc", ascending=False, kind="stable")


def precision_at_k(ranked_genes: Sequence[str], planted: Sequence[str],
                   ks: Sequence[int] = (5, 10, 20), n_genes: int | None = None) -> dict:
    """Share of the top-k genes of a ranking that are planted genes, for each k, and the random
    expectation |G| / m (``n_genes`` = m, the length of the ranking when None)."""
    ranked = list(ranked_genes)
    planted = set(planted)
    out = {f"precision@{k}": float(np.mean([g in planted for g in ranked[:k]])) for k in ks}
    out["random"] = len(planted) / float(n_genes or len(ranked))
    return out
