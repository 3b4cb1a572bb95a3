"""scVI wrapper (:mod:`scconcepts.models.scvi`): cached training, the attribution encoder f,
and query mapping of another dataset onto the reference genes."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scconcepts.data import load_dataset
from scconcepts.models import scvi as ms

from conftest import stratified_subsample

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning",
                                        "ignore::UserWarning")


def _weights(model):
    return {k: v.detach().cpu().clone() for k, v in model.module.state_dict().items()}


def test_train_reference_is_cached(scvi_ref, monkeypatch):
    ckpt = scvi_ref.save_dir / "model.pt"
    before = ckpt.stat().st_mtime_ns
    scvi = ms._scvi()

    def no_training(*args, **kwargs):
        raise AssertionError("train_reference retrained a cached model")

    monkeypatch.setattr(scvi.model.SCVI, "train", no_training)
    again = ms.train_reference(scvi_ref.adata, scvi_ref.save_dir, max_epochs=3, seed=0)
    assert ckpt.stat().st_mtime_ns == before
    w0, w1 = _weights(scvi_ref.model), _weights(again)
    assert w0.keys() == w1.keys()
    for k in w0:
        assert torch.equal(w0[k], w1[k]), k
    # the reloaded model gives the same embeddings
    np.testing.assert_allclose(ms.embed(again), scvi_ref.z, atol=1e-5)
    # no temporary folders are left next to the model
    assert [p.name for p in scvi_ref.save_dir.parent.iterdir()] == [scvi_ref.save_dir.name]


def test_train_reference_bad_batch_key(kang_small, tmp_path):
    with pytest.raises(KeyError, match="batch_key"):
        ms.train_reference(kang_small, tmp_path / "m", batch_key="no_such_column", max_epochs=1)
    assert not (tmp_path / "m").exists()


def test_load_reference_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="train it first"):
        ms.load_reference(tmp_path / "none")
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "model.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="delete the folder to retrain"):
        ms.load_reference(tmp_path / "bad")


def test_encoder_fn_matches_latent_representation(scvi_ref):
    f = ms.encoder_fn(scvi_ref.model)
    x = torch.from_numpy(scvi_ref.adata.X.toarray())
    z = f(x).numpy()
    assert z.shape == (scvi_ref.adata.n_obs, 50) and scvi_ref.z.dtype == np.float32
    assert np.abs(z - scvi_ref.z).max() <= 1e-5
    # f depends on the expression (not a constant) and is deterministic
    assert np.abs(z[0] - z[1]).max() > 1e-3
    assert torch.equal(f(x[:7]), f(x[:7]))
    assert not f(x[:2]).requires_grad


@pytest.fixture(scope="module")
def pbmc4k_small():
    a = load_dataset("pbmc4k_10x", required_obs=("cell_type",))
    return stratified_subsample(a, 80, "cell_type", seed=0)


@pytest.fixture(scope="module")
def query(pbmc4k_small, scvi_ref):
    return ms.prepare_query(pbmc4k_small, scvi_ref.save_dir)


def test_prepare_query_aligns_and_zero_fills(pbmc4k_small, scvi_ref, query):
    q, report = query
    ref_genes = list(scvi_ref.adata.var_names)
    assert ms.reference_genes(scvi_ref.save_dir) == ref_genes
    present = set(pbmc4k_small.var_names)
    expected_missing = [g for g in ref_genes if g not in present]
    assert report["n_reference"] == len(ref_genes) == 1287
    assert report["missing"] == expected_missing and len(expected_missing) > 0
    assert report["n_found"] == len(ref_genes) - len(expected_missing)
    assert list(q.var_names) == ref_genes and q.n_obs == pbmc4k_small.n_obs
    assert sp.isspmatrix_csr(q.X) and q.X.dtype == np.float32
    assert (q.obs["batch"] == ms.QUERY_BATCH).all()
    miss = np.isin(q.var_names, expected_missing)
    assert q.X[:, miss].nnz == 0
    found = [g for g in ref_genes if g in present]
    np.testing.assert_array_equal(q[:, found].X.toarray(), pbmc4k_small[:, found].X.toarray())
    assert pbmc4k_small.n_vars == 18368  # the input is not modified


def test_prepare_query_with_ensembl_ids_names_symbols(kang_small, scvi_ref):
    a = kang_small[:20].copy()
    a.var_names = a.var["feature_id"].astype(str).values
    with pytest.raises(ValueError, match="symbols") as ei:
        ms.prepare_query(a, scvi_ref.save_dir)
    assert "0/1287" in str(ei.value)


def test_query_embedding_is_deterministic(query, scvi_ref):
    q, _ = query
    z1 = ms.embed(ms.load_query(q, scvi_ref.save_dir), q)
    z2 = ms.embed(ms.load_query(q, scvi_ref.save_dir), q)
    assert z1.shape == (q.n_obs, 50)
    np.testing.assert_array_equal(z1, z2)
    # covariates are not encoded: the query embedding is the reference encoder on the counts
    f = ms.encoder_fn(scvi_ref.model)
    assert np.abs(f(torch.from_numpy(q.X.toarray())).numpy() - z1).max() <= 1e-5
