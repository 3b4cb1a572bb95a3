"""The planted-programme ground truth (:mod:`scconcepts.planted`) on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from scconcepts import planted


def _counts(n=200, m=50, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.poisson(0.5, size=(n, m)).astype(np.float32)
    X[:, :5] = 0          # never detected
    X[:, 5:10] = 3        # detected everywhere
    return sp.csr_matrix(X), [f"G{i}" for i in range(m)]


def test_choose_programme_and_cells_are_seeded_and_respect_the_ranges():
    X, genes = _counts()
    g = planted.choose_programme(X, genes, n_genes=8, seed=1, exclude=["G20"])
    assert len(g) == 8 and np.array_equal(g, planted.choose_programme(X, genes, 8, seed=1,
                                                                       exclude=["G20"]))
    assert not np.isin(g, np.arange(10)).any() and 20 not in g
    s = planted.choose_cells(200, 0.1, seed=3)
    assert len(s) == 20 and np.array_equal(s, np.sort(s))
    with pytest.raises(ValueError, match="genes are detected"):
        planted.choose_programme(X, genes, n_genes=45)


def test_plant_programme_raises_only_the_programme_in_s():
    X, _ = _counts()
    cells, genes = np.array([1, 4, 7]), np.array([12, 30])
    Y = planted.plant_programme(X, cells, genes, factor=5.0, seed=0)
    D = (Y - X).toarray()
    mask = np.zeros_like(D, dtype=bool)
    mask[np.ix_(cells, genes)] = True
    assert (D[~mask] == 0).all()
    assert Y.toarray()[np.ix_(cells, genes)].mean() > 3 * (X.toarray()[np.ix_(cells, genes)]
                                                           .mean() + 1) / 2
    with pytest.raises(ValueError, match="factor"):
        planted.plant_programme(X, cells, genes, factor=1.0)
    with pytest.raises(ValueError, match="out of range"):
        planted.plant_programme(X, [500], genes)


def test_best_units_finds_the_unit_that_marks_s():
    rng = np.random.default_rng(0)
    n = 300
    cells = np.arange(0, n, 10)
    A = rng.normal(size=(n, 4))
    A[cells, 2] += 5                     # unit 2 marks S
    res = planted.best_units(A, cells)
    assert res.index[0] == 2 and res.loc[2, "auroc"] > 0.99
    assert abs(res.loc[0, "auroc"] - 0.5) < 0.15
    codes = sp.csr_matrix(np.where(A > 3, A, 0))
    assert planted.best_units(codes, cells).index[0] == 2


def test_precision_at_k():
    p = planted.precision_at_k(["A", "x", "B", "y", "z"], {"A", "B", "C"}, ks=(1, 2, 4),
                               n_genes=100)
    assert p == {"precision@1": 1.0, "precision@2": 0.5, "precision@4": 0.5, "random": 0.03}
