"""Baselines (App B): semi-NMF (Ding et al. 2010), PCA/ICA wrappers, metrics."""

import numpy as np
import pytest

from scconcepts import baselines


def _planted(n=400, d=10, c=4, seed=0):
    rng = np.random.default_rng(seed)
    U = rng.uniform(0, 1, (n, c)) * (rng.uniform(size=(n, c)) < 0.5)
    D = rng.normal(size=(d, c))
    return U @ D.T, U, D


def test_semi_nmf_recovers_planted_factorisation():
    A, _, _ = _planted()
    # inputs are centred: A − ā = (U − Ū) Dᵀ needs the atoms ±D, i.e. 2c non-negative codes
    fit = baselines.semi_nmf(A, 8, n_iter=300, seed=0)
    assert (fit.codes >= 0).all()
    assert fit.history[-1] > 0.999  # the planted structure is reconstructed
    assert np.all(np.diff(fit.history) > -1e-9)  # monotone (Ding et al. 2010, Theorem 1)
    U_new = fit.transform(A[:50])
    from scconcepts.sae import r2_score
    assert r2_score(A[:50], fit.reconstruct(U_new)) > 0.95


def test_semi_nmf_is_seeded_and_checks_input():
    A, _, _ = _planted(n=100)
    a = baselines.semi_nmf(A, 3, n_iter=5, seed=1)
    b = baselines.semi_nmf(A, 3, n_iter=5, seed=1)
    assert np.array_equal(a.D, b.D)
    with pytest.raises(ValueError):
        baselines.semi_nmf(np.full((5, 3), np.nan), 2)


def test_too_few_concepts_lose_reconstruction():
    A, _, _ = _planted(c=6)
    r_full = baselines.semi_nmf(A, 6, n_iter=200).history[-1]
    r_low = baselines.semi_nmf(A, 2, n_iter=200).history[-1]
    assert r_low < r_full - 0.1


def test_pca_ica_metrics_and_top_k():
    A, _, _ = _planted()
    pca = baselines.fit_pca(A, 4)
    m = baselines.decomposition_metrics(A, pca.transform(A), pca.reconstruct(pca.transform(A)))
    assert m["r2"] == pytest.approx(1.0, abs=1e-6) and m["concepts"] == 4
    ica = baselines.fit_ica(A, 4)
    assert baselines.decomposition_metrics(A, ica.transform(A), ica.reconstruct(
        ica.transform(A)))["r2"] > 0.999
    U = np.array([[0.1, 3.0, 2.0, 0.0], [1.0, 0.0, 0.0, 5.0]])
    K = baselines.keep_top_k(U, 1)
    assert K.tolist() == [[0, 3.0, 0, 0], [0, 0, 0, 5.0]]
    sp = baselines.decomposition_metrics(U[:, :2], K, U[:, :2])
    assert sp["sparsity"] == pytest.approx(0.75) and sp["active"] == 2


def test_baseline_table_pure_inputs():
    from scconcepts.downstream import balanced_split
    from scconcepts.sae import SAEConfig, train_sae

    A, U, _ = _planted(n=240, d=10, c=4)
    A = A.astype(np.float32)
    labels = np.array(["a", "b", "c"])[U.argmax(1) % 3]
    tr, te, cl = balanced_split(labels, 60, 0.25, seed=0)
    tasks = {"cell type": {"role": "main", "labels": labels, "train": tr, "test": te,
                           "classes": cl, "max_iter": 50}}
    sae, _ = train_sae(A, SAEConfig(d=10, c=20, k=3, epochs=3, lr=1e-3, seed=0), progress=False)
    table, details = baselines.baseline_table({"main": A}, {"main": sae}, tasks, n_iter=5,
                                              fit_cells=100, low_rank_c=4, seed=0)
    assert list(table.columns) == ["neurons", "Top-K SAE", "semi-NMF (c > d)",
                                   "semi-NMF (c > d), top 3 codes", "semi-NMF (c < d)", "PCA",
                                   "ICA"]
    assert table.loc["number of concepts c", "semi-NMF (c > d)"] == 20
    assert table.loc["number of concepts c", "neurons"] == 10
    assert 0 <= table.loc["cell type accuracy", "PCA"] <= 1
    assert details["Top-K SAE"]["metrics"]["concepts"] == 20
    with pytest.raises(KeyError, match="role"):
        baselines.baseline_table({}, {}, tasks, 5, 100, 4)
