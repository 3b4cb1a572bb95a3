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


def _table_inputs(n=240, per_class=60, sae_epochs=3, seed=0):
    from scconcepts.downstream import balanced_split
    from scconcepts.sae import SAEConfig, train_sae

    A, U, _ = _planted(n=n, d=10, c=4, seed=seed)
    A = A.astype(np.float32)
    labels = np.array(["a", "b", "c"])[U.argmax(1) % 3]
    tr, te, cl = balanced_split(labels, per_class, 0.25, seed=0)
    tasks = {"cell type": {"role": "main", "labels": labels, "train": tr, "test": te,
                           "classes": cl, "max_iter": 50}}
    sae, hist = train_sae(A, SAEConfig(d=10, c=20, k=3, epochs=sae_epochs, lr=1e-3, seed=0),
                          progress=False)
    return A, tasks, sae, hist


def test_baseline_table_pure_inputs():
    from scconcepts.sae import cell_split

    A, tasks, sae, hist = _table_inputs()
    held = {"main": cell_split(hist, len(A))[1]}
    table, details = baselines.baseline_table({"main": A}, {"main": sae}, tasks, n_iter=5,
                                              fit_cells=100, low_rank_c=4, seed=0,
                                              sae_held_out=held, n_boot=50)
    assert list(table.columns) == ["neurons", "Top-K SAE", "semi-NMF (c > d)",
                                   "semi-NMF (c > d), top 3 codes", "semi-NMF (c < d)", "PCA",
                                   "ICA"]
    assert table.loc["number of concepts c", "semi-NMF (c > d)"] == 20
    assert table.loc["number of concepts c", "neurons"] == 10
    assert 0 <= table.loc["cell type accuracy", "PCA"] <= 1
    assert "R² (held-out cells)" in table.index
    assert details["Top-K SAE"]["metrics"]["concepts"] == 20
    with pytest.raises(KeyError, match="role"):
        baselines.baseline_table({}, {}, tasks, 5, 100, 4, sae_held_out=held)
    with pytest.raises(KeyError, match="held-out"):
        baselines.baseline_table({"main": A}, {"main": sae}, tasks, 5, 100, 4, sae_held_out={})


def test_baseline_table_r2_on_cells_held_out_from_every_method():
    from scconcepts import sae as sae_mod
    from scconcepts.claims import stats

    A, tasks, sae, hist = _table_inputs(n=800, per_class=200)
    sae_train, sae_val = sae_mod.cell_split(hist, len(A))
    t = tasks["cell type"]
    table, details = baselines.baseline_table({"main": A}, {"main": sae}, tasks, n_iter=20,
                                              fit_cells=10_000, low_rank_c=4, seed=3,
                                              sae_held_out={"main": sae_val}, n_boot=200)
    cells = details["Top-K SAE"]["r2_cells"]
    # the R² cells: test cells of the task that the SAE held out, so none was fitted or trained on
    assert np.array_equal(cells, np.intersect1d(t["test"], sae_val)) and cells.size >= 3
    assert not np.intersect1d(cells, sae_train).size  # not the SAE's training cells
    assert not np.intersect1d(cells, t["train"]).size  # not the baselines' fitting cells
    n = cells.size
    for m in ["Top-K SAE", "semi-NMF (c > d)", "semi-NMF (c > d), top 3 codes",
              "semi-NMF (c < d)", "PCA", "ICA"]:
        mt = details[m]
        assert np.array_equal(mt["r2_cells"], cells) and mt["metrics"]["n_r2_cells"] == n
        assert mt["r2_replicates"].shape == (200,)
        assert table.loc["R² (held-out cells)", m] == round(mt["metrics"]["r2"], 3)
    assert details["neurons"]["metrics"] is None
    # the SAE's R² is computed on those cells only
    rec = sae_mod.reconstruct(sae, A[cells])
    assert details["Top-K SAE"]["metrics"]["r2"] == pytest.approx(
        sae_mod.r2_score(A[cells], rec))
    # one weight matrix, seeded by the seed, for every method (a paired bootstrap)
    W = stats.bootstrap_weights(n, 200, 3)
    assert np.allclose(details["Top-K SAE"]["r2_replicates"],
                       stats.r2_replicates(A[cells], rec, W))
    # PCA with the planted rank (4) reconstructs new cells exactly, in every replicate
    assert details["PCA"]["metrics"]["r2"] == pytest.approx(1.0, abs=1e-5)
    assert np.allclose(details["PCA"]["r2_replicates"], 1.0, atol=1e-5)


def test_baseline_table_r2_difference_interval_decides():
    """Known answer: on rank-4 data, PCA with 4 components reconstructs held-out cells exactly
    while a 4-code semi-NMF cannot (centred data need ±atoms), so the paired interval of the R²
    difference lies above 0 and the claim agrees."""
    from scconcepts.claims import usefulness as cu
    from scconcepts.sae import cell_split

    A, tasks, sae, hist = _table_inputs(n=800, per_class=200)
    _, details = baselines.baseline_table({"main": A}, {"main": sae}, tasks, n_iter=50,
                                          fit_cells=10_000, low_rank_c=4, seed=0,
                                          sae_held_out={"main": cell_split(hist, len(A))[1]},
                                          n_boot=200)
    hi, lo = details["PCA"], details["semi-NMF (c < d)"]
    n = hi["metrics"]["n_r2_cells"]
    # "semi-NMF (c > d)" vs "semi-NMF (c < d)" have paper values for scVI; PCA plays "c > d"
    c = cu.r2_greater("k", "scvi", "scVI", "semi-NMF (c > d)", hi["metrics"]["r2"],
                      "semi-NMF (c < d)", lo["metrics"]["r2"], n,
                      replicates=(hi["r2_replicates"], lo["r2_replicates"]))
    assert c.verdict == "agrees" and c.interval[0] > 0 and c.n == n
    c = cu.r2_greater("k", "scvi", "scVI", "semi-NMF (c < d)", lo["metrics"]["r2"],
                      "semi-NMF (c > d)", hi["metrics"]["r2"], n,
                      replicates=(lo["r2_replicates"], hi["r2_replicates"]))
    assert c.verdict == "disagrees" and c.interval[1] < 0


def test_matched_rank_finds_the_planted_rank():
    """Capacity-matched PCA (issue 13, item 8): data of rank 3 plus tiny noise reach R² 0.99 at
    3 components, not before; an unreachable target returns the full rank."""
    rng = np.random.default_rng(0)
    Z = rng.normal(size=(600, 3)) * np.array([5.0, 3.0, 2.0])
    A = Z @ rng.normal(size=(3, 8)) + 0.01 * rng.normal(size=(600, 8))
    r, r2 = baselines.matched_rank(A[:400], A[400:], 0.99)
    assert r == 3 and r2 >= 0.99
    r, r2 = baselines.matched_rank(A[:400], A[400:], 1.5)
    assert r == 8 and r2 < 1.5


def test_component_readout_equals_transform_centred():
    """Components as units: the readout is scikit-learn's transform minus each score's median,
    for PCA and for FastICA (whose components_ include the whitening)."""
    import torch

    rng = np.random.default_rng(1)
    A = rng.normal(size=(300, 6)) @ rng.normal(size=(6, 6))
    for dec in (baselines.fit_pca(A, 3), baselines.fit_ica(A, 3)):
        r = baselines.ComponentReadout.from_decomposition(dec, A, "pca")
        got = r(torch.from_numpy(A.astype(np.float32))).numpy()
        want = dec.transform(A)
        np.testing.assert_allclose(got, want - np.median(want, 0), atol=1e-3)
        assert r.kind == "pca" and np.allclose(np.median(got, 0), 0, atol=1e-3)

