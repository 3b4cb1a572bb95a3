"""Cell-level overview of concepts with metadata (Sec 3.1, Fig 2B).

For concept i, let the j cells that activate it (code > 0) carry one-hot metadata labels
M ∈ {0,1}^{j×l}. The ratio of each label is r = (1/j) Σ_i M_iᵀ. A concept is
*<key>-specific* when the largest ratio for ``key`` (cell_type, tissue, donor_id, ...) is at
least ``threshold`` (70 % in the paper), and has *not enough data* when fewer than ``min_cells``
cells (100 in the paper) activate it.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["metadata_ratios", "top_labels", "categorize_concepts", "category_counts",
           "specific_share", "CATEGORY_ORDER"]

CATEGORY_ORDER = [
    "cell_type-specific",
    "tissue-specific",
    "donor_id-specific",
    "condition-specific",
    "other",
    "not enough data",
    "dead",
]


def _as_csc(codes):
    return codes.tocsc() if sp.issparse(codes) else sp.csc_matrix(np.asarray(codes))


def metadata_ratios(codes, obs: pd.DataFrame, key: str) -> pd.DataFrame:
    """Ratio of each label of ``obs[key]`` among the cells activating each concept.

    Parameters
    ----------
    codes
        Concept activations U, shape (n_cells, c), dense or sparse.
    obs
        Cell metadata with ``n_cells`` rows.
    key
        Categorical column, e.g. ``"cell_type"``.

    Returns
    -------
    DataFrame, shape (c, n_labels)
        r for every concept (rows) and label (columns); rows of never-activating concepts are NaN.

    Raises
    ------
    KeyError
        If ``key`` is not an ``obs`` column.
    ValueError
        If ``codes`` and ``obs`` have different numbers of cells.
    """
    if key not in obs.columns:
        raise KeyError(f"obs has no column {key!r}; available: {list(obs.columns)}.")
    if codes.shape[0] != len(obs):
        raise ValueError(f"codes have {codes.shape[0]} cells but obs has {len(obs)} rows.")
    labels = pd.Categorical(obs[key].astype(str))
    onehot = sp.csr_matrix(
        (np.ones(len(labels)), (np.arange(len(labels)), labels.codes)),
        shape=(len(labels), len(labels.categories)),
    )
    active = (_as_csc(codes) > 0).astype(np.float64).T.tocsr()  # (c, n_cells)
    counts = np.asarray((active @ onehot).todense())  # (c, n_labels)
    j = counts.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = counts / j
    ratios[j.ravel() == 0] = np.nan
    return pd.DataFrame(ratios, columns=list(labels.categories), index=pd.RangeIndex(
        codes.shape[1], name="concept"))


def top_labels(codes, obs: pd.DataFrame, key: str) -> pd.DataFrame:
    """Most frequent label of ``obs[key]`` per concept and its ratio.

    Returns
    -------
    DataFrame, shape (c, 2)
        Columns ``label`` and ``ratio``.
    """
    r = metadata_ratios(codes, obs, key)
    filled = r.fillna(-1.0)
    return pd.DataFrame({"label": np.where(r.isna().all(1), None, filled.idxmax(1)),
                         "ratio": r.max(1)}, index=r.index)


def categorize_concepts(
    codes,
    obs: pd.DataFrame,
    keys: Sequence[str] = ("cell_type", "tissue", "donor_id"),
    *,
    threshold: float = 0.7,
    min_cells: int = 100,
) -> pd.DataFrame:
    """Sec 3.1 categories of every concept.

    Parameters
    ----------
    codes
        Concept activations U, shape (n_cells, c).
    obs
        Cell metadata; keys absent from ``obs`` (or with a single value, which makes every
        concept trivially specific) are skipped and reported in ``DataFrame.attrs["skipped"]``.
    keys
        Metadata columns, in priority order: a concept specific to several keys gets the first.
    threshold
        Minimum ratio of the top label (0.7 in the paper).
    min_cells
        Concepts activated in fewer cells are "not enough data" (100 in the paper).

    Returns
    -------
    DataFrame, shape (c, ...)
        ``n_cells`` (activating cells), ``category`` (one of :data:`CATEGORY_ORDER`), and for
        each used key ``<key>_label`` and ``<key>_ratio``; ``specific_to`` lists every key whose
        top ratio reaches the threshold.
    """
    n_active = np.asarray((_as_csc(codes) > 0).sum(0)).ravel()
    out = pd.DataFrame({"n_cells": n_active}, index=pd.RangeIndex(codes.shape[1], name="concept"))
    used, skipped = [], []
    for key in keys:
        if key not in obs.columns or obs[key].nunique() < 2:
            skipped.append(key)
            continue
        tl = top_labels(codes, obs, key)
        out[f"{key}_label"] = tl["label"]
        out[f"{key}_ratio"] = tl["ratio"]
        used.append(key)
    specific = [
        [k for k in used if (r := out.at[i, f"{k}_ratio"]) == r and r >= threshold]
        for i in out.index
    ]
    out["specific_to"] = [",".join(s) for s in specific]
    cat = []
    for i, s in zip(out.index, specific):
        if n_active[i] == 0:
            cat.append("dead")
        elif n_active[i] < min_cells:
            cat.append("not enough data")
        elif s:
            cat.append(f"{s[0]}-specific")
        else:
            cat.append("other")
    out["category"] = cat
    out.attrs["skipped"] = skipped
    out.attrs["threshold"] = threshold
    out.attrs["min_cells"] = min_cells
    return out


def category_counts(categories: dict) -> pd.DataFrame:
    """Fig 2B table: concepts per Sec 3.1 category for several SAEs.

    Parameters
    ----------
    categories
        ``(c, k)`` → :func:`categorize_concepts` result of that SAE.

    Returns
    -------
    pandas.DataFrame
        Rows ``"c=…, k=…"``, columns the categories, integer counts (0 where absent).
    """
    return pd.DataFrame({f"c={c}, k={k}": df["category"].value_counts()
                         for (c, k), df in categories.items()}).T.fillna(0).astype(int)


def specific_share(categories: pd.DataFrame, category: str = "cell_type-specific"
                   ) -> tuple[int, float]:
    """Share of ``category`` among the concepts that can be characterised (Fig 2B, Sec 4.2).

    Parameters
    ----------
    categories
        :func:`categorize_concepts` result of one SAE.

    Returns
    -------
    (n_characterised, share)
        Concepts that are neither dead nor "not enough data" (fewer activating cells than the
        minimum), and the fraction of them in ``category`` (NaN when there are none).
    """
    enough = categories[~categories["category"].isin(["not enough data", "dead"])]
    share = float((enough["category"] == category).mean()) if len(enough) else float("nan")
    return len(enough), share
