"""Paper-scale mechanics (:mod:`scconcepts.scale`): resumable chunked embeddings, the scVI chunk
encoder (equal to scvi-tools' latent means), mixed-precision tolerance, attribution shards, and a
small run of the 100k-cell benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from scconcepts import scale
from scconcepts.data.synthetic import make_census_like_h5ad
from scconcepts.data import DataValidationError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def census_h5ad(kang_small, tmp_path_factory):
    """450 synthetic cells in the cached Census schema (symbols + feature_id), on disk."""
    path = tmp_path_factory.mktemp("scale") / "cells.h5ad"
    return make_census_like_h5ad(path, 450, kang_small, chunk_size=200, seed=1)


class CountingEncoder:
    """Deterministic per-cell encoder (log1p counts @ fixed projection) that counts calls and can
    fail at a given call, as a run killed mid-way would."""

    def __init__(self, n_genes: int, fail_at: int | None = None):
        self.W = np.random.default_rng(0).normal(size=(n_genes, 7)).astype(np.float32)
        self.calls = 0
        self.rows = []
        self.fail_at = fail_at

    def __call__(self, chunk: ad.AnnData) -> np.ndarray:
        self.calls += 1
        if self.fail_at is not None and self.calls == self.fail_at:
            raise KeyboardInterrupt("simulated kill")
        self.rows.append(chunk.obs_names[0])
        return np.log1p(sp.csr_matrix(chunk.X).toarray()) @ self.W


def test_chunked_embedding_resumes_without_recomputing(census_h5ad, tmp_path):
    n_genes = ad.read_h5ad(census_h5ad, backed="r").n_vars
    full = scale.embed_in_chunks(census_h5ad, CountingEncoder(n_genes), tmp_path / "ref",
                                 chunk_size=100, key="k", progress=False)
    assert full.shape == (450, 7)

    out = tmp_path / "run"
    first = CountingEncoder(n_genes, fail_at=4)       # chunks 0, 1, 2 finish; dies in chunk 3
    with pytest.raises(KeyboardInterrupt):
        scale.embed_in_chunks(census_h5ad, first, out, chunk_size=100, key="k", progress=False)
    state = scale.embedding_progress(out)
    assert state == {"done": 3, "total": 5, "complete": False, "n_obs": 450, "dim": 7}

    second = CountingEncoder(n_genes)
    z = scale.embed_in_chunks(census_h5ad, second, out, chunk_size=100, key="k", progress=False)
    assert second.calls == 2                           # only chunks 3 and 4
    assert second.rows == ["300", "400"]               # soma_joinid of their first cells
    np.testing.assert_array_equal(np.asarray(z), np.asarray(full))
    assert scale.embedding_progress(out)["complete"]

    third = CountingEncoder(n_genes)                   # complete store: nothing recomputed
    scale.embed_in_chunks(census_h5ad, third, out, chunk_size=100, key="k", progress=False)
    assert third.calls == 0


@pytest.mark.slow  # fault injection: kills a subprocess
def test_chunked_embedding_survives_a_hard_kill(census_h5ad, tmp_path):
    """A process killed with os._exit (no cleanup, no exception handling) resumes too."""
    out = tmp_path / "killed"
    script = textwrap.dedent(f"""
        import os, sys, numpy as np, scipy.sparse as sp
        from scconcepts import scale
        calls = []
        def enc(chunk):
            calls.append(1)
            if len(calls) == 3:
                os._exit(9)
            return np.asarray(sp.csr_matrix(chunk.X).sum(1), dtype=np.float32)
        scale.embed_in_chunks({str(census_h5ad)!r}, enc, {str(out)!r}, chunk_size=100,
                              key="sum", progress=False)
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 9, proc.stderr
    manifest = json.loads((out / scale.MANIFEST_NAME).read_text())
    assert manifest["done"] == [0, 1]
    calls = []

    def enc(chunk):
        calls.append(chunk.n_obs)
        return np.asarray(sp.csr_matrix(chunk.X).sum(1), dtype=np.float32)

    z = scale.embed_in_chunks(census_h5ad, enc, out, chunk_size=100, key="sum", progress=False)
    assert calls == [100, 100, 50]
    want = np.asarray(ad.read_h5ad(census_h5ad).X.sum(1)).ravel()
    np.testing.assert_allclose(np.asarray(z).ravel(), want, rtol=1e-6)


def test_chunked_store_refuses_another_run_and_corrupt_files(census_h5ad, tmp_path):
    n_genes = ad.read_h5ad(census_h5ad, backed="r").n_vars
    out = tmp_path / "s"
    scale.embed_in_chunks(census_h5ad, CountingEncoder(n_genes), out, chunk_size=100,
                          key={"model": "a"}, progress=False)
    with pytest.raises(scale.ChunkedEmbeddingError, match="another run"):
        scale.embed_in_chunks(census_h5ad, CountingEncoder(n_genes), out, chunk_size=100,
                              key={"model": "b"}, progress=False)
    with pytest.raises(scale.ChunkedEmbeddingError, match="another run"):
        scale.embed_in_chunks(census_h5ad, CountingEncoder(n_genes), out, chunk_size=50,
                              key={"model": "a"}, progress=False)
    (out / scale.EMBEDDINGS_NAME).write_bytes(b"\x93NUMPY truncated")
    with pytest.raises(scale.ChunkedEmbeddingError, match="Delete"):
        scale.embed_in_chunks(census_h5ad, CountingEncoder(n_genes), out, chunk_size=100,
                              key={"model": "a"}, progress=False)
    with pytest.raises(ValueError, match="one row per cell"):
        scale.embed_in_chunks(census_h5ad, lambda c: np.zeros((3, 2)), tmp_path / "bad",
                              chunk_size=100, progress=False)


def test_scvi_chunk_encoder_equals_scvi_latent_means(scvi_ref, tmp_path):
    from scconcepts.models import scvi as ms

    adata = scvi_ref.adata
    encode = scale.scvi_chunk_encoder(scvi_ref.model, device="cpu")
    z = scale.embed_in_chunks(adata, encode, tmp_path / "z", chunk_size=97, key="scvi",
                              progress=False)
    np.testing.assert_allclose(np.asarray(z), ms.embed(scvi_ref.model), atol=1e-4)

    # genes in another order, some missing: aligned as prepare_query_anndata does (zero-filled)
    rng = np.random.default_rng(0)
    keep = np.sort(rng.choice(adata.n_vars, adata.n_vars - 40, replace=False))
    shuffled = adata[:, rng.permutation(keep)].copy()
    q, _ = ms.prepare_query(shuffled, scvi_ref.save_dir)
    want = ms.embed(ms.load_query(q, scvi_ref.save_dir), q)
    got = scale.scvi_chunk_encoder(scvi_ref.model, device="cpu")(shuffled)
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_scvi_chunk_encoder_rejects_wrong_ids_and_log_data(scvi_ref):
    adata = scvi_ref.adata[:50].copy()
    ens = adata.copy()
    ens.var_names = ens.var["feature_id"].astype(str).to_numpy()
    with pytest.raises(DataValidationError, match="Ensembl|feature_id"):
        scale.scvi_chunk_encoder(scvi_ref.model, device="cpu")(ens)
    logged = adata.copy()
    logged.X = sp.csr_matrix(np.log1p(logged.X.toarray()))
    with pytest.raises(DataValidationError, match="raw integer counts"):
        scale.scvi_chunk_encoder(scvi_ref.model, device="cpu")(logged)


def test_mixed_precision_within_stated_tolerance(scvi_ref):
    """bf16 autocast on CPU changes scVI latent means by < 5e-2 (docstring tolerance)."""
    exact = scale.scvi_chunk_encoder(scvi_ref.model, device="cpu")(scvi_ref.adata)
    mixed = scale.scvi_chunk_encoder(scvi_ref.model, device="cpu", amp=True)(scvi_ref.adata)
    diff = np.abs(exact - mixed).max()
    assert 0 < diff < 5e-2, diff


# ------------------------------------------------------------------------------ shards


def _attribution_inputs(scvi_ref, sae_small):
    from scconcepts.attribution import SAEReadout, UnitFunction
    from scconcepts.models import scvi as ms

    unit_fn = UnitFunction(ms.encoder_fn(scvi_ref.model), SAEReadout(sae_small.sae))
    active = np.flatnonzero(sae_small.codes.getnnz(axis=0) >= 5)[:7]
    return unit_fn, active


def test_shard_units_partition():
    units = [9, 3, 3, 7, 1, 12, 5]
    parts = [scale.shard_units(units, i, 3) for i in range(3)]
    assert [p.tolist() for p in parts] == [[1, 3], [5, 7], [9, 12]]
    assert scale.shard_units(units, 0, 1).tolist() == [1, 3, 5, 7, 9, 12]
    assert scale.shard_units([1], 3, 4).size == 0
    with pytest.raises(ValueError):
        scale.shard_units(units, 3, 3)
    with pytest.raises(ValueError):
        scale.shard_units(units, 0, 0)


def test_sharded_attribution_merges_to_the_unsharded_result(scvi_ref, sae_small, tmp_path):
    from scconcepts.attribution import attribute_units

    unit_fn, units = _attribution_inputs(scvi_ref, sae_small)
    adata = scvi_ref.adata
    codes = sae_small.codes
    genes = list(adata.var_names)

    def compute(sub):
        return attribute_units(unit_fn, adata.X, scvi_ref.z, codes, sub, genes, n_prototypes=3,
                               n_counterfactuals=2, progress=False)

    whole = compute(units)
    for i in (2, 0):                                     # any order, separate "jobs"
        scale.run_shard(compute, units, i, 3, tmp_path, "scvi_c32")
    with pytest.raises(FileNotFoundError, match=r"\[1\]"):
        scale.merge_shards(tmp_path, "scvi_c32", 3, units)
    scale.run_shard(compute, units, 1, 3, tmp_path, "scvi_c32")
    merged = scale.merge_shards(tmp_path, "scvi_c32", 3, units, out_path=tmp_path / "all.npz")
    np.testing.assert_array_equal(merged.units, np.sort(units))
    order = np.argsort(whole.units)
    np.testing.assert_allclose(merged.scores, whole.scores[order], atol=1e-6, equal_nan=True)
    np.testing.assert_array_equal(merged.prototypes, whole.prototypes[order])
    assert (tmp_path / "all.npz").exists()
    with pytest.raises(ValueError, match="do not cover"):
        scale.merge_shards(tmp_path, "scvi_c32", 3, list(units) + [31])


@pytest.mark.slow  # runs a benchmark script end to end
def test_scale_benchmark_small_run():
    """benchmarks/scale_100k.py on 3,000 cells: runs end to end and reports peak RSS."""
    t0 = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "scale_100k.py"), "--cells", "3000",
         "--chunk", "1000", "--train-cells", "1500", "--quick"],
        capture_output=True, text=True, timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    fields = dict(kv.split("=") for kv in last.split())
    assert last.startswith("peak_rss_gb=")
    assert fields["cells"] == "3000"
    assert 0 < float(fields["peak_rss_gb"]) < 8
    assert time.perf_counter() - t0 < 600
