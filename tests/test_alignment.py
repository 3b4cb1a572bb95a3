"""Label alignment with the InterPLM protocol (:mod:`scconcepts.alignment`) on constructed cases
with known answers: planted indicators are found (directly and through the sign), random
features are not aligned, choices use validation cells only, the vectorised F1 equals
scikit-learn's, the split is stratified and seeded, sparse and dense inputs agree."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score, precision_score, recall_score

from scconcepts.alignment import (MAX_FRACTIONS, PERCENTILES, alignment_table, label_f1,
                                  split_cells)

LABELS = np.array(["A"] * 120 + ["B"] * 180 + ["C"] * 300)   # 20 %, 30 %, 50 % of 600 cells


def _labels(seed=0):
    return np.random.default_rng(seed).permutation(LABELS)


def _sparse_codes(n, c, k, seed):
    """Top-K-like non-negative codes: k random units per cell with uniform(0, 1) activations."""
    rng = np.random.default_rng(seed)
    rows = np.repeat(np.arange(n), k)
    cols = np.concatenate([rng.choice(c, k, replace=False) for _ in range(n)])
    return sp.csr_matrix((rng.uniform(0.0, 1.0, n * k), (rows, cols)), shape=(n, c))


def _brute_force_val_f1(X, labels, val_idx, label, signed, levels):
    """Best validation F1 for ``label`` over every (unit, sign, level), one sklearn call each."""
    Xv = X[val_idx]
    y = labels[val_idx] == label
    best = 0.0
    for u in range(X.shape[1]):
        for sign in ((1, -1) if signed else (1,)):
            x = sign * Xv[:, u]
            for lev in levels:
                t = np.percentile(x, lev) if signed else lev * Xv[:, u].max()
                best = max(best, f1_score(y, x > t, zero_division=0))
    return best


# ------------------------------------------------------------------------------ planted answers

def test_label_indicator_is_chosen_with_test_f1_one():
    labels = _labels()
    val, test = split_cells(len(labels), labels, seed=0)
    X = _sparse_codes(len(labels), 40, 4, seed=1).tolil()
    X[:, 7] = (labels == "B").astype(float)[:, None] * 0.9          # concept 7 fires on B only
    out = label_f1(X.tocsr(), labels, val, test).set_index("label")
    row = out.loc["B"]
    assert row["unit"] == 7 and row["sign"] == 1
    assert row["f1_val"] == 1.0 and row["f1_test"] == 1.0
    assert row["precision_test"] == 1.0 and row["recall_test"] == 1.0
    assert row["n_pos_test"] == (labels[test] == "B").sum()
    assert list(out.index) == ["A", "B", "C"]


def test_negated_indicator_is_found_through_the_sign():
    labels = _labels()
    val, test = split_cells(len(labels), labels, seed=0)
    rng = np.random.default_rng(2)
    Z = rng.normal(size=(len(labels), 30))                              # signed, dense "neurons"
    Z[:, 3] = (labels == "A").astype(float)                             # +indicator of A
    Z[:, 11] = -(labels == "B").astype(float)                           # −indicator of B
    out = label_f1(Z, labels, val, test).set_index("label")
    assert (out.loc["A", "unit"], out.loc["A", "sign"]) == (3, 1)
    assert (out.loc["B", "unit"], out.loc["B", "sign"]) == (11, -1)
    assert out.loc["A", "f1_test"] == 1.0 and out.loc["B", "f1_test"] == 1.0
    assert set(out["level"]) <= set(PERCENTILES)
    # without the sign flip, B is not found by unit 11
    pos_only = label_f1(Z[:, [11]] + 1.0, labels, val, test,
                        signed=False).set_index("label")
    assert pos_only.loc["B", "f1_test"] < 1.0


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_random_features_are_not_aligned(kind):
    rng = np.random.default_rng(3)
    labels = rng.choice(list("ABCDEFGH"), 2000)                         # 8 labels, ≈ 12.5 % each
    val, test = split_cells(len(labels), labels, seed=0)
    X = rng.normal(size=(2000, 64)) if kind == "dense" else _sparse_codes(2000, 64, 8, seed=4)
    out = label_f1(X, labels, val, test)
    assert (out["f1_test"] < 0.4).all()
    # selection on validation is optimistic: test F1 is on average below validation F1
    assert out["f1_test"].mean() < out["f1_val"].mean()
    _, summary = alignment_table({"random": X}, labels, val, test)
    assert summary.loc[0, "n_aligned"] == 0


# --------------------------------------------------------------------------- validation only

def test_threshold_is_chosen_on_validation_only():
    # one non-negative unit; validation: A at 1.0, B at 0.3 → only 0.5 × max (= 0.5) separates
    # them; test: A at 0.4, B at 0 (and one B at 100) → the test split would prefer threshold 0
    val = np.arange(20)
    test = np.arange(20, 41)
    labels = np.array(["A"] * 10 + ["B"] * 10 + ["A"] * 10 + ["B"] * 11)
    x = np.r_[np.full(10, 1.0), np.full(10, 0.3), np.full(10, 0.4), np.zeros(10), [100.0]]
    out = label_f1(x[:, None], labels, val, test).set_index("label")
    a = out.loc["A"]
    assert a["level"] == 0.5 and a["threshold"] == 0.5   # max over validation cells (1.0), not 100
    assert a["f1_val"] == 1.0
    assert a["f1_test"] == 0.0                           # only the 100-cell is active on test
    # what the test split would have preferred: threshold 0 → F1 = 20/21
    assert f1_score(labels[test] == "A", x[test] > 0.0) == pytest.approx(20 / 21)


@pytest.mark.parametrize("kind", ["dense", "sparse"])
def test_test_cells_do_not_influence_the_choice(kind):
    rng = np.random.default_rng(5)
    labels = _labels()
    val, test = split_cells(len(labels), labels, seed=1)
    X = rng.normal(size=(600, 20)) if kind == "dense" else _sparse_codes(600, 20, 3, seed=6)
    X2 = X.copy().tolil() if kind == "sparse" else X.copy()
    noise = rng.uniform(0, 5, size=(len(test), 20))
    X2[test] = (np.abs(noise) if kind == "sparse" else noise)
    a = label_f1(X, labels, val, test)
    b = label_f1(X2.tocsr() if kind == "sparse" else X2, labels, val, test)
    cols = ["label", "unit", "sign", "threshold", "level", "f1_val", "n_pos_val", "n_pos_test"]
    pd.testing.assert_frame_equal(a[cols], b[cols])


# ------------------------------------------------------------------------ agreement with sklearn

@pytest.mark.parametrize("signed", [True, False])
def test_vectorised_f1_equals_sklearn(signed):
    rng = np.random.default_rng(7)
    labels = _labels(1)[:300]
    val, test = split_cells(len(labels), labels, seed=2)
    X = rng.normal(size=(300, 12))
    X[:, 2] += 1.5 * (labels == "A")                                    # partial signals
    X[:, 5] -= 1.0 * (labels == "C")
    if not signed:
        X = np.maximum(X, 0.0)                                          # ReLU-like codes
    levels = PERCENTILES if signed else MAX_FRACTIONS
    out = label_f1(X, labels, val, test, signed=signed)
    for _, r in out.iterrows():
        # the validation F1 is the best over every candidate, as sklearn computes it
        assert r["f1_val"] == pytest.approx(
            _brute_force_val_f1(X, labels, val, r["label"], signed, levels), abs=1e-12)
        # the chosen candidate, rescored by sklearn on both parts
        pred = lambda idx: r["sign"] * X[idx, r["unit"]] > r["threshold"]  # noqa: E731
        assert r["f1_val"] == pytest.approx(f1_score(labels[val] == r["label"], pred(val)))
        y_t = labels[test] == r["label"]
        assert r["f1_test"] == pytest.approx(f1_score(y_t, pred(test), zero_division=0))
        assert r["precision_test"] == pytest.approx(
            precision_score(y_t, pred(test), zero_division=0))
        assert r["recall_test"] == pytest.approx(recall_score(y_t, pred(test)))


def test_sparse_and_dense_give_the_same_result():
    labels = _labels(2)
    val, test = split_cells(len(labels), labels, seed=0)
    S = _sparse_codes(600, 50, 5, seed=8).tolil()
    S[:, 9] = ((labels == "C") * np.random.default_rng(9).uniform(0.5, 1.0, 600))[:, None]
    S = S.tocsr()
    dense = label_f1(S.toarray(), labels, val, test)
    sparse = label_f1(S, labels, val, test)
    pd.testing.assert_frame_equal(dense, sparse)
    assert set(dense["level"]) <= set(MAX_FRACTIONS) and (dense["sign"] == 1).all()
    assert sp.csc_matrix(S).shape == S.shape                            # other sparse formats
    pd.testing.assert_frame_equal(label_f1(sp.csc_matrix(S), labels, val, test), sparse)


# -------------------------------------------------------------------------------------- split

def test_split_is_stratified_and_seeded():
    labels = _labels()
    val, test = split_cells(600, labels, val_fraction=0.5, seed=0)
    assert np.intersect1d(val, test).size == 0
    np.testing.assert_array_equal(np.sort(np.r_[val, test]), np.arange(600))
    for lab, n in zip(*np.unique(labels, return_counts=True)):
        assert abs((labels[val] == lab).sum() - n / 2) <= 1
    val2, test2 = split_cells(600, labels, val_fraction=0.5, seed=0)
    np.testing.assert_array_equal(val, val2)
    np.testing.assert_array_equal(test, test2)
    val3, _ = split_cells(600, labels, val_fraction=0.5, seed=1)
    assert not np.array_equal(val, val3)
    v, t = split_cells(600, labels, val_fraction=0.3, seed=0)
    assert len(v) == 180 and len(t) == 420
    with pytest.raises(ValueError):
        split_cells(600, labels, val_fraction=1.0)
    with pytest.raises(ValueError):
        split_cells(599, labels)


# ------------------------------------------------------------------------- table and errors

def test_alignment_table_counts_aligned_labels():
    rng = np.random.default_rng(10)
    labels = rng.permutation(np.repeat(list("ABCDEF"), 100))           # 6 labels, 1/6 each
    val, test = split_cells(600, labels, seed=0)
    planted = rng.normal(size=(600, 8))
    for j, lab in enumerate("ABCDEF"):
        planted[:, j] = (labels == lab)
    methods = {"planted": planted, "random": rng.normal(size=(600, 8)),
               "codes": _sparse_codes(600, 16, 3, seed=11)}
    per_label, summary = alignment_table(methods, labels, val, test, f1_min=0.5)
    assert list(per_label.columns[:2]) == ["method", "label"]
    assert list(summary["method"]) == ["planted", "random", "codes"]
    assert len(per_label) == 18
    s = summary.set_index("method")
    assert s.loc["planted", "n_aligned"] == 6 and s.loc["planted", "mean_f1_test"] == 1.0
    assert s.loc["random", "n_aligned"] == 0 and s.loc["codes", "n_units"] == 16
    assert (s["n_labels"] == 6).all() and (s["f1_min"] == 0.5).all()
    sub = per_label[per_label["method"] == "random"]["f1_test"]
    assert s.loc["random", "median_f1_test"] == pytest.approx(sub.median())
    assert s.loc["random", "mean_f1_test"] == pytest.approx(sub.mean())


def test_chance_reference_for_frequent_labels():
    # a 50 % label: calling every cell positive gives F1 = 2/3, a random unit ≈ 0.5
    labels = _labels()
    val, test = split_cells(600, labels, seed=0)
    out = label_f1(np.random.default_rng(13).normal(size=(600, 8)), labels, val, test)
    out = out.set_index("label")
    p = (labels[test] == "C").mean()
    assert out.loc["C", "f1_all_test"] == pytest.approx(2 * p / (1 + p))
    assert out.loc["C", "f1_all_test"] == pytest.approx(
        f1_score(labels[test] == "C", np.ones(len(test), bool)))
    assert out.loc["C", "f1_test"] > 0.4                                 # no signal, yet high


def test_errors():
    labels = _labels()
    val, test = split_cells(600, labels, seed=0)
    X = np.random.default_rng(12).normal(size=(600, 4))
    with pytest.raises(ValueError, match="overlap"):
        label_f1(X, labels, val, np.r_[test, val[:1]])
    with pytest.raises(ValueError, match="non-negative"):
        label_f1(X, labels, val, test, signed=False)
    with pytest.raises(ValueError, match="thresholds"):
        label_f1(np.abs(X), labels, val, test, thresholds=(0.5, 2.0))
    with pytest.raises(ValueError, match="test part"):
        only_val = labels.copy()
        only_val[test[labels[test] == "A"]] = "B"
        label_f1(X, only_val, val, test)
    with pytest.raises(ValueError, match="cells"):
        label_f1(X, labels[:-1], val, test)
    with pytest.raises(ValueError, match="missing"):
        label_f1(X, np.r_[labels[:-1], [None]], val, test)
    with pytest.raises(ValueError, match="2-D"):
        label_f1(X[:, 0], labels, val, test)
    with pytest.raises(ValueError, match="methods"):
        alignment_table({}, labels, val, test)
