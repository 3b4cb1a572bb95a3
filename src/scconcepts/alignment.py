"""Label alignment of units (concepts, neurons, PCA/ICA components) with the InterPLM protocol.

For each label (a cell type, a donor, …) we ask which single unit, binarised at a threshold,
best recovers the cells carrying that label, and how well that choice holds up on unseen cells.

**Protocol** (Simon & Zou 2024, *InterPLM: discovering interpretable features in protein language
models via sparse autoencoders*, bioRxiv 10.1101/2024.11.14.623630, Nature Methods 2025; code:
``interplm/analysis/concepts``): every (feature, concept) pair is scored by the F1 of the feature
binarised at each of a few activation thresholds (fractions ``0, 0.15, 0.5, 0.6, 0.8`` of the
feature's maximum activation, features being normalised to a maximum of 1); for every concept the
feature and threshold with the best F1 are chosen on a validation split and that pair's F1 is
reported on a held-out test split. Here the "concepts" of InterPLM are cell labels and the F1 is
the plain cell-level F1 (InterPLM's domain-level recall does not apply to cells).

Two kinds of inputs:

* **non-negative codes** (SAE concepts; sparse or dense): a unit is *active* in a cell when its
  activation is ``> f · max``, with ``f`` in ``thresholds`` (InterPLM's fractions) and ``max`` the
  unit's largest activation **over the validation cells** (nothing is estimated on test cells);
  ``f = 0`` means "fires at all";
* **signed dense features** (neurons = embedding dimensions, PCA and ICA components): the sign of
  such a unit is arbitrary and it has no natural zero, so both ``+unit`` and ``−unit`` are
  candidates, each active when ``> q``, with ``q`` its per-unit percentiles (``thresholds``, in %)
  over the validation cells.

Functions:

* :func:`split_cells` — stratified, seeded validation/test split of the cells;
* :func:`label_f1` — the protocol for one set of units, one row per label;
* :func:`alignment_table` — the protocol for several methods, plus the per-method summary (number
  of labels with test F1 > ``f1_min``, mean and median test F1).
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
from sklearn.model_selection import train_test_split

__all__ = [
    "MAX_FRACTIONS",
    "PERCENTILES",
    "split_cells",
    "label_f1",
    "alignment_table",
]

#: InterPLM's thresholds, as fractions of each unit's maximum activation (non-negative codes).
MAX_FRACTIONS: tuple[float, ...] = (0.0, 0.15, 0.5, 0.6, 0.8)
#: Per-unit percentiles (in %) of the validation cells used as thresholds for signed features.
PERCENTILES: tuple[float, ...] = (50.0, 75.0, 90.0, 95.0, 99.0)

_COLUMNS = ["label", "unit", "sign", "threshold", "level", "f1_val", "f1_test", "n_pos_val",
            "n_pos_test", "precision_test", "recall_test", "f1_all_test"]


# --------------------------------------------------------------------------------------- inputs

def _labels_array(labels, n_cells: int | None = None) -> np.ndarray:
    lab = np.asarray(labels, dtype=object)
    if lab.ndim != 1:
        raise ValueError(f"labels must be one-dimensional, got shape {lab.shape}")
    if n_cells is not None and lab.shape[0] != n_cells:
        raise ValueError(f"labels has {lab.shape[0]} entries for {n_cells} cells")
    if pd.isna(lab).any():
        raise ValueError("labels contain missing values (NaN/None); drop or name those cells")
    return lab


def _indices(idx, n_cells: int, name: str) -> np.ndarray:
    idx = np.asarray(idx)
    if idx.ndim != 1 or idx.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-D array of cell indices")
    if not np.issubdtype(idx.dtype, np.integer):
        raise ValueError(f"{name} must hold integer cell indices, got dtype {idx.dtype}")
    if idx.min() < 0 or idx.max() >= n_cells:
        raise ValueError(f"{name} has indices outside [0, {n_cells})")
    if np.unique(idx).size != idx.size:
        raise ValueError(f"{name} has repeated indices")
    return idx


def _features(features):
    """(n_cells, n_units) float matrix: CSR for sparse input, ndarray otherwise."""
    if sp.issparse(features):
        X = sp.csr_matrix(features, dtype=np.float64)
    else:
        X = np.asarray(features, dtype=np.float64)
    if X.ndim != 2:
        raise ValueError(f"features must be 2-D (n_cells, n_units), got shape {X.shape}")
    if X.shape[1] == 0:
        raise ValueError("features has no units (0 columns)")
    data = X.data if sp.issparse(X) else X
    if not np.isfinite(data).all():
        raise ValueError("features contain NaN or infinite values")
    return X


def _has_negative(X) -> bool:
    return bool((X.data < 0).any()) if sp.issparse(X) else bool((X < 0).any())


# ---------------------------------------------------------------------------------------- split

def split_cells(n_cells: int, labels, val_fraction: float = 0.5,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Stratified, seeded split of the cells into a validation and a test part.

    Parameters
    ----------
    n_cells
        Number of cells.
    labels
        (n_cells,) labels to stratify on (e.g. cell types): every label keeps about the same share
        of its cells in both parts.
    val_fraction
        Share of the cells in the validation part, in (0, 1).
    seed
        Random state of :func:`sklearn.model_selection.train_test_split`.

    Returns
    -------
    val_idx, test_idx
        Sorted, disjoint integer arrays of cell indices whose union is ``range(n_cells)``.

    Raises
    ------
    ValueError
        If ``val_fraction`` is not in (0, 1), ``labels`` does not have ``n_cells`` entries or
        contains missing values, or (from scikit-learn) a label has fewer than 2 cells or a part
        would be too small to hold every label.
    """
    if not 0.0 < float(val_fraction) < 1.0:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    lab = _labels_array(labels, int(n_cells))
    val_idx, test_idx = train_test_split(np.arange(int(n_cells)), train_size=float(val_fraction),
                                         stratify=lab, random_state=seed, shuffle=True)
    return np.sort(val_idx), np.sort(test_idx)


# ---------------------------------------------------------------------------- vectorised counts

def _candidate_thresholds(Xv, signed: bool, thresholds: Sequence[float]) -> np.ndarray:
    """Absolute thresholds, shape (n_signs, n_levels, n_units), in units of ``sign · feature``."""
    levels = np.asarray(thresholds, dtype=np.float64)
    if signed:
        # percentiles of +x and of −x over the validation cells (both signs are candidates);
        # the q-th percentile of −x is −(the (100 − q)-th percentile of x): one selection pass
        q = levels / 100.0
        qs = np.quantile(Xv, np.r_[q, 1.0 - q], axis=0)       # (2 · n_levels, n_units)
        return np.stack([qs[: q.size], -qs[q.size:]])
    vmax = Xv.max(axis=0)
    vmax = vmax.toarray().ravel() if sp.issparse(vmax) else np.asarray(vmax).ravel()
    return (levels[:, None] * vmax[None, :])[None]            # (1, n_levels, n_units)


def _counts(Xv, Y: np.ndarray, signs: Sequence[int], thr: np.ndarray):
    """True positives (n_signs, n_levels, n_labels, n_units) and predicted positives
    (n_signs, n_levels, n_units) of every candidate on the validation cells.

    ``Y`` is the (n_val, n_labels) 0/1 indicator matrix: ``Yᵀ B`` counts, for every label and unit
    at once, the cells that are both labelled and active, ``B`` being the (n_val, n_units) 0/1
    matrix of active cells for one (sign, threshold level).
    """
    n_s, n_l, n_u = thr.shape
    tp = np.empty((n_s, n_l, Y.shape[1], n_u))
    pred = np.empty((n_s, n_l, n_u))
    if sp.issparse(Xv):
        Xv = Xv.tocsr()
        for j in range(n_l):
            # active where the stored value exceeds its column's threshold; thresholds are ≥ 0 in
            # the unsigned case, so implicit zeros are never active
            on = (Xv.data > thr[0, j][Xv.indices]).astype(np.float64)
            B = sp.csr_matrix((on, Xv.indices, Xv.indptr), shape=Xv.shape)
            tp[0, j] = (B.T @ Y).T
            pred[0, j] = np.asarray(B.sum(axis=0)).ravel()
        return tp, pred
    # float32 products count exactly up to 2**24 cells and halve the memory traffic
    Yt = np.ascontiguousarray(Y.T, dtype=np.float32)
    for s, sign in enumerate(signs):
        for j in range(n_l):
            # −x > t  ⇔  x < −t: no negated copy of the matrix
            on = Xv > thr[s, j] if sign > 0 else Xv < -thr[s, j]
            B = on.astype(np.float32)
            tp[s, j] = Yt @ B
            pred[s, j] = np.count_nonzero(on, axis=0)
    return tp, pred


def _f1(tp, pred, pos):
    """F1 = 2 TP / (predicted positives + actual positives); 0 where both are 0 (sklearn's
    ``zero_division=0``)."""
    den = pred + pos
    return np.divide(2.0 * tp, den, out=np.zeros(np.broadcast(tp, den).shape), where=den > 0)


def _column(X, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Dense (len(rows), len(cols)) block of X."""
    block = X[rows][:, cols]
    return block.toarray() if sp.issparse(block) else np.asarray(block)


# ----------------------------------------------------------------------------------- protocol

def label_f1(features, labels, val_idx, test_idx, thresholds: Sequence[float] | None = None,
             signed: bool | None = None) -> pd.DataFrame:
    """Best unit per label, chosen on validation cells, scored on test cells (InterPLM protocol).

    Every candidate (unit, sign, threshold) defines a binary prediction "cell is active"
    (``sign · feature > threshold``). For each label its F1 against the label indicator is computed
    on the validation cells for all candidates; the best one is kept and evaluated, unchanged
    (same unit, sign and absolute threshold), on the test cells.

    Parameters
    ----------
    features
        (n_cells, n_units) activations: a dense ndarray or a scipy sparse matrix. Non-negative
        codes (SAE concepts) or signed features (neurons, PCA/ICA components); any unit.
    labels
        (n_cells,) label of every cell (strings or any hashable; missing values are refused).
    val_idx, test_idx
        Disjoint 1-D integer indices of the validation and test cells (e.g. :func:`split_cells`).
        Thresholds, the choice of unit and sign all use the validation cells only.
    thresholds
        Threshold levels. Unsigned mode: fractions of each unit's maximum activation over the
        validation cells (default :data:`MAX_FRACTIONS` = InterPLM's ``0, 0.15, 0.5, 0.6, 0.8``),
        each in [0, 1]. Signed mode: per-unit percentiles over the validation cells, in %
        (default :data:`PERCENTILES` = ``50, 75, 90, 95, 99``), each in [0, 100].
    signed
        ``False``: non-negative codes, only ``+unit``, fractions of the maximum. ``True``: both
        ``+unit`` and ``−unit``, percentile thresholds (sparse input is densified). ``None``
        (default): ``True`` exactly when some activation is negative, so the same non-negative
        data give the same result whether passed dense or sparse.

    Returns
    -------
    pandas.DataFrame
        One row per label (sorted by label), columns:

        ``label``; ``unit`` (column index into ``features``); ``sign`` (+1 or −1); ``threshold``
        (absolute threshold, in the units of ``sign · feature``: the cell is active when
        ``sign · feature > threshold``); ``level`` (the fraction of the maximum or the percentile
        it came from); ``f1_val``, ``f1_test`` (F1 in [0, 1]); ``n_pos_val``, ``n_pos_test``
        (number of labelled cells in each part); ``precision_test``, ``recall_test`` (in [0, 1];
        precision is 0 when no test cell is active); ``f1_all_test`` (chance reference: the test F1
        of calling every test cell positive, ``2p / (1 + p)`` with ``p`` the label's share of
        the test cells — a frequent label reaches F1 > 0.5 without any information, e.g.
        0.67 at p = 0.5, and a random unit cut at its median gets ≈ 0.5 there).

        Ties on validation F1 are broken by the first candidate in the order: sign (+ before −),
        threshold level (in the order given), unit index.

    Raises
    ------
    ValueError
        If ``features`` is not 2-D, has no units or non-finite values; ``labels`` has the wrong
        length or missing values; ``val_idx``/``test_idx`` are empty, not integer, out of range,
        repeated or overlapping; ``signed=False`` with negative activations; a threshold is out of
        its range; or a label has no cell in the validation or in the test part.
    """
    X = _features(features)
    n_cells, n_units = X.shape
    lab = _labels_array(labels, n_cells)
    val_idx = _indices(val_idx, n_cells, "val_idx")
    test_idx = _indices(test_idx, n_cells, "test_idx")
    if np.intersect1d(val_idx, test_idx).size:
        raise ValueError("val_idx and test_idx overlap: the test cells must be held out")

    negative = _has_negative(X)
    if signed is None:
        signed = negative
    if not signed and negative:
        raise ValueError("signed=False needs non-negative features; use signed=True (or None)")
    if signed and sp.issparse(X):
        X = X.toarray()
    if thresholds is None:
        thresholds = PERCENTILES if signed else MAX_FRACTIONS
    levels = np.asarray(thresholds, dtype=np.float64).ravel()
    hi = 100.0 if signed else 1.0
    if levels.size == 0 or (levels < 0).any() or (levels > hi).any():
        raise ValueError(f"thresholds must be non-empty and in [0, {hi:g}] "
                         f"({'percentiles' if signed else 'fractions of the maximum'})")
    signs = (1, -1) if signed else (1,)

    names, codes = np.unique(lab, return_inverse=True)
    n_labels = names.size
    Y_val = np.zeros((val_idx.size, n_labels))
    Y_val[np.arange(val_idx.size), codes[val_idx]] = 1.0
    pos_val = Y_val.sum(axis=0)
    pos_test = np.bincount(codes[test_idx], minlength=n_labels).astype(np.float64)
    for part, pos in (("validation", pos_val), ("test", pos_test)):
        if (pos == 0).any():
            missing = [str(n) for n in names[pos == 0]]
            raise ValueError(f"labels with no cell in the {part} part: {missing}")

    # Why by hand: sklearn.metrics.f1_score scores one (y_true, y_pred) pair per call, i.e.
    # n_labels × n_units × n_signs × n_levels calls (≈ 10 × 1,280 × 10 = 128,000 here, minutes);
    # one indicator-matrix product per (sign, level) gives every true-positive count at once.
    # tests/test_alignment.py checks the result against sklearn's f1_score.
    Xv = X[val_idx]
    thr = _candidate_thresholds(Xv, signed, levels)                   # (S, T, U)
    tp, pred = _counts(Xv, Y_val, signs, thr)                         # (S, T, L, U), (S, T, U)
    f1 = _f1(tp, pred[:, :, None, :], pos_val[None, None, :, None])  # (S, T, L, U)

    flat = np.moveaxis(f1, 2, 0).reshape(n_labels, -1)               # (L, S·T·U)
    best = flat.argmax(axis=1)
    s_best, t_best, u_best = np.unravel_index(best, (len(signs), levels.size, n_units))
    sign_best = np.asarray(signs)[s_best]
    thr_best = thr[s_best, t_best, u_best]

    # the chosen candidates, unchanged, on the test cells
    Xt = _column(X, test_idx, u_best) * sign_best[None, :]           # (n_test, L)
    active = Xt > thr_best[None, :]
    Y_test = codes[test_idx][:, None] == np.arange(n_labels)[None, :]
    tp_t = (active & Y_test).sum(axis=0).astype(np.float64)
    pred_t = active.sum(axis=0).astype(np.float64)
    precision = np.divide(tp_t, pred_t, out=np.zeros(n_labels), where=pred_t > 0)
    recall = tp_t / pos_test

    return pd.DataFrame({
        "label": names,
        "unit": u_best.astype(np.int64),
        "sign": sign_best.astype(np.int64),
        "threshold": thr_best,
        "level": levels[t_best],
        "f1_val": flat[np.arange(n_labels), best],
        "f1_test": _f1(tp_t, pred_t, pos_test),
        "n_pos_val": pos_val.astype(np.int64),
        "n_pos_test": pos_test.astype(np.int64),
        "precision_test": precision,
        "recall_test": recall,
        "f1_all_test": 2.0 * pos_test / (pos_test + test_idx.size),
    }, columns=_COLUMNS)


def alignment_table(methods: Mapping[str, object], labels, val_idx, test_idx,
                    f1_min: float = 0.5) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`label_f1` for several methods on the same labels and split, and their summary.

    Parameters
    ----------
    methods
        Method name → (n_cells, n_units) features (dense or sparse; the number of units may differ
        between methods), e.g. ``{"concepts": codes, "neurons": Z, "PCA": P, "ICA": S}``. Each is
        run with :func:`label_f1`'s defaults: signed exactly when it has negative values.
    labels, val_idx, test_idx
        As in :func:`label_f1`, shared by every method.
    f1_min
        A label counts as aligned when its test F1 is > ``f1_min``.

    Returns
    -------
    per_label
        Long table, :func:`label_f1`'s columns preceded by ``method``; methods in the given order.
    summary
        One row per method: ``method``, ``n_units``, ``n_labels``, ``n_aligned`` (labels with test
        F1 > ``f1_min``), ``f1_min``, ``mean_f1_test``, ``median_f1_test``.

    Raises
    ------
    ValueError
        If ``methods`` is empty, or from :func:`label_f1`.
    """
    if not methods:
        raise ValueError("methods is empty")
    tables, rows = [], []
    for name, feats in methods.items():
        t = label_f1(feats, labels, val_idx, test_idx)
        t.insert(0, "method", name)
        tables.append(t)
        rows.append({
            "method": name,
            "n_units": int(feats.shape[1] if sp.issparse(feats) else np.shape(feats)[1]),
            "n_labels": len(t),
            "n_aligned": int((t["f1_test"] > f1_min).sum()),
            "f1_min": float(f1_min),
            "mean_f1_test": float(t["f1_test"].mean()),
            "median_f1_test": float(t["f1_test"].median()),
        })
    return pd.concat(tables, ignore_index=True), pd.DataFrame(rows)
