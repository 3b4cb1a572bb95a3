"""Usefulness of representations for downstream tasks (Sec 4.5, App G).

This edition holds the embedding-quality check of chapter 01; the logistic-regression tasks on
concept codes vs neurons come with the usefulness chapter.
"""

from __future__ import annotations

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
from sklearn.model_selection import StratifiedKFold, cross_val_score
from sklearn.neighbors import KNeighborsClassifier

__all__ = ["knn_accuracy", "pca_of_counts"]


def knn_accuracy(X: np.ndarray, labels, k: int = 15, folds: int = 5, seed: int = 0) -> float:
    """Cross-validated accuracy of a k-NN classifier (scikit-learn).

    Parameters
    ----------
    X
        Representation, shape (n_cells, d).
    labels
        Class of each cell, length n_cells.

    Returns
    -------
    float
        Mean accuracy over stratified folds.
    """
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    clf = KNeighborsClassifier(n_neighbors=k)
    return float(cross_val_score(clf, X, np.asarray(labels), cv=cv).mean())


def pca_of_counts(adata: ad.AnnData, n_comps: int = 50, seed: int = 0) -> np.ndarray:
    """PCA of log-normalised counts (scanpy: normalize_total 1e4, log1p, pca), (n, n_comps)."""
    tmp = ad.AnnData(X=adata.layers["counts"].copy() if "counts" in adata.layers
                     else adata.X.copy())
    sc.pp.normalize_total(tmp, target_sum=1e4)
    sc.pp.log1p(tmp)
    sc.pp.pca(tmp, n_comps=min(n_comps, tmp.n_vars - 1, tmp.n_obs - 1), random_state=seed)
    return tmp.obsm["X_pca"]


def knn_table(reps: dict[str, np.ndarray], labels, k: int = 15, folds: int = 5,
              seed: int = 0) -> pd.DataFrame:
    """k-NN cross-validated accuracy for several representations (rows)."""
    return pd.DataFrame({"accuracy": {n: knn_accuracy(X, labels, k, folds, seed)
                                      for n, X in reps.items()},
                         "dimensions": {n: X.shape[1] for n, X in reps.items()}})
