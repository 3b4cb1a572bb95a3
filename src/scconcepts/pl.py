"""Plots on an AnnData after :mod:`scconcepts.tl` (scanpy style; return the matplotlib Axes)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .figstyle import OKABE_ITO

__all__ = ["concept_embedding", "top_genes"]


def concept_embedding(adata, concept: int, *, key: str = "concepts", basis: str = "umap",
                      ax=None, show: bool = False, **kwargs):
    """Cells on ``obsm[f"X_{basis}"]`` coloured by the activation of ``concept``.

    Thin wrapper of :func:`scanpy.pl.embedding` (the activation is put in a temporary ``obs``
    column, removed afterwards).
    """
    import scanpy as sc

    codes = sp.csc_matrix(adata.obsm[f"X_{key}"])
    col = f"{key} {concept}"
    adata.obs[col] = np.asarray(codes[:, concept].toarray()).ravel()
    try:
        return sc.pl.embedding(adata, basis=basis, color=col, ax=ax, show=show,
                               color_map=kwargs.pop("color_map", "viridis"), **kwargs)
    finally:
        del adata.obs[col]


def top_genes(adata, concept: int, n: int = 10, *, key: str = "concepts", ax=None):
    """Horizontal bars of the ``n`` genes with the largest attribution C_i to ``concept``
    (in the book's first colour; fonts from the caller's ``rcParams``).

    Raises
    ------
    KeyError
        If the concept was not attributed (:func:`scconcepts.tl.attribute`).
    """
    import matplotlib.pyplot as plt

    scores = adata.uns[key]["attribution"]
    if str(concept) not in scores.index:
        raise KeyError(f"concept {concept} has no attribution; attributed: "
                       f"{list(scores.index[:10])}...")
    row = scores.loc[str(concept)].astype(float).dropna().sort_values(ascending=False).head(n)
    if ax is None:
        _, ax = plt.subplots(figsize=(4, 0.25 * n + 1.2), layout="constrained")
    ax.barh(row.index[::-1], row.to_numpy()[::-1], color=OKABE_ITO[0])
    ax.set_xlabel("attribution C_i (activation)")
    ax.set_title(f"concept {concept}: top {n} genes")
    return ax
