"""Top-K SAE (:mod:`scconcepts.sae`): sparsity, unit-norm decoder, reconstruction on a case with
a known sparse dictionary, AuxK, determinism, checkpoints and input errors."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import sklearn.metrics
import torch

import scconcepts.sae as sae_mod
from scconcepts.sae import (SAEConfig, TopKSAE, encode, load_sae, r2_score, reconstruct,
                            sae_metrics, save_sae, train_sae)

pytestmark = pytest.mark.filterwarnings("ignore:Converting a tensor with requires_grad")


def sparse_dictionary_data(n=2000, d=40, n_atoms=40, active=3, seed=0):
    """A = C · atoms: every sample a non-negative combination of ``active`` unit atoms."""
    rng = np.random.default_rng(seed)
    atoms = rng.normal(size=(n_atoms, d))
    atoms /= np.linalg.norm(atoms, axis=1, keepdims=True)
    coef = np.zeros((n, n_atoms))
    for i in range(n):
        j = rng.choice(n_atoms, active, replace=False)
        coef[i, j] = rng.uniform(0.5, 2.0, active)
    return (coef @ atoms).astype(np.float32), atoms


@pytest.fixture(scope="module")
def dict_data():
    return sparse_dictionary_data()


@pytest.fixture(scope="module")
def trained(dict_data):
    """SAEs with c = 80 on the constructed data, for k = 3 and k = 6."""
    x, _ = dict_data
    out = {}
    for k in (3, 6):
        cfg = SAEConfig(d=x.shape[1], c=80, k=k, aux_k=32, dead_after=1000, lr=3e-3, epochs=60,
                        batch_size=128, seed=0)
        out[k] = (cfg, *train_sae(x, cfg, device="cpu", progress=False))
    return out


# ------------------------------------------------------------------------------ encoder


def test_encode_keeps_at_most_k_top_preactivations():
    torch.manual_seed(0)
    sae = TopKSAE(d=8, c=32, k=5)
    x = np.random.default_rng(1).normal(size=(200, 8)).astype(np.float32)
    codes = encode(sae, x, batch_size=64).toarray()  # several batches
    assert codes.shape == (200, 32)
    assert (codes >= 0).all()
    nnz = (codes > 0).sum(1)
    assert nnz.max() <= 5 and nnz.min() >= 1
    with torch.no_grad():
        z = sae.pre_activation(torch.from_numpy(x)).numpy()
    top5 = np.argsort(-z, axis=1)[:, :5]
    for i in range(200):
        nz = np.flatnonzero(codes[i])
        assert set(nz) <= set(top5[i])
        np.testing.assert_allclose(codes[i, nz], z[i, nz], rtol=1e-6)
        # a top-5 latent is zero only because its pre-activation is ≤ 0 (ReLU)
        assert (z[i, np.setdiff1d(top5[i], nz)] <= 0).all()


def test_encode_exactly_k_when_all_preactivations_positive():
    torch.manual_seed(0)
    sae = TopKSAE(d=8, c=32, k=5)
    with torch.no_grad():
        sae.b_enc.fill_(100.0)  # every pre-activation > 0
    x = np.random.default_rng(2).normal(size=(300, 8)).astype(np.float32)
    codes = encode(sae, x).toarray()
    np.testing.assert_array_equal((codes > 0).sum(1), np.full(300, 5))
    with torch.no_grad():
        z = sae.pre_activation(torch.from_numpy(x)).numpy()
    expected = np.sort(np.argsort(-z, axis=1)[:, :5], axis=1)
    np.testing.assert_array_equal(np.sort(np.argsort(-codes, axis=1)[:, :5], axis=1), expected)
    assert sae_metrics(sae, x)["l0"] == 5.0


def test_invalid_k():
    with pytest.raises(ValueError, match="k <= c"):
        TopKSAE(d=4, c=8, k=9)
    with pytest.raises(ValueError):
        TopKSAE(d=4, c=8, k=0)


# ------------------------------------------------------------------------------ training


def test_decoder_columns_unit_norm_after_training(trained):
    for _, sae, _ in trained.values():
        norms = sae.D.detach().norm(dim=0).numpy()
        np.testing.assert_allclose(norms, 1.0, atol=1e-5)


@pytest.mark.parametrize("k", [3, 6])
def test_reconstruction_of_sparse_dictionary(trained, dict_data, k):
    x, atoms = dict_data
    cfg, sae, hist = trained[k]
    rec = reconstruct(sae, x)
    r2 = r2_score(x, rec)
    assert r2 > 0.95
    sk = sklearn.metrics.r2_score(x.astype(np.float64), rec.astype(np.float64),
                                  multioutput="variance_weighted")
    assert r2 == pytest.approx(sk, abs=1e-9)
    m = sae_metrics(sae, x)
    assert m["r2"] == pytest.approx(r2, abs=1e-6)
    assert m["l0"] <= k and m["sparsity"] == pytest.approx(1 - m["l0"] / 80)
    assert m["active_concepts"] + m["dead_concepts"] == 80
    assert len(hist["r2"]) == cfg.epochs and hist["r2"][-1] > hist["r2"][0]
    # the dictionary is recovered: most true atoms have a decoder column with cosine > 0.9
    cos = atoms @ sae.D.detach().numpy()
    assert (cos.max(1) > 0.9).mean() >= 0.8


def test_r2_score_matches_sklearn_on_random_data():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(50, 7)) * rng.uniform(0.1, 5, 7) + rng.normal(size=7)
    b = a + rng.normal(scale=0.5, size=a.shape)
    assert r2_score(a, b) == pytest.approx(
        sklearn.metrics.r2_score(a, b, multioutput="variance_weighted"), abs=1e-12)
    assert r2_score(a, a) == 1.0
    assert r2_score(a, np.broadcast_to(a.mean(0), a.shape)) == pytest.approx(0.0, abs=1e-12)


def _with_handicapped_latents(delta):
    """TopKSAE whose second half of latents starts with b_enc lowered by ``delta``: they never
    win the Top-K at initialisation (dead), but keep small positive pre-activations."""

    class Handicapped(TopKSAE):
        def __init__(self, d, c, k):
            super().__init__(d, c, k)
            with torch.no_grad():
                self.b_enc[c // 2:] -= delta

    return Handicapped


def test_auxk_revives_dead_latents(monkeypatch, dict_data):
    x, _ = dict_data
    rms = float(np.sqrt(((x - x.mean(0)) ** 2).sum(1).mean()))
    monkeypatch.setattr(sae_mod, "TopKSAE", _with_handicapped_latents(0.3 * rms))
    dead = {}
    for aux_k in (0, 32):
        cfg = SAEConfig(d=x.shape[1], c=80, k=3, aux_k=aux_k, dead_after=500, lr=3e-3,
                        epochs=10, batch_size=128, seed=0)
        sae, hist = train_sae(x, cfg, device="cpu", progress=False)
        assert hist["dead"][0] >= 10  # the handicap does kill latents in both runs
        if aux_k == 0:
            assert all(a == 0 for a in hist["aux"])
        else:
            assert sum(hist["aux"]) > 0
        dead[aux_k] = sae_metrics(sae, x)["dead_concepts"]
    assert dead[0] >= 15
    assert dead[32] <= dead[0] // 2


def _state(sae):
    return {k: v.detach().clone() for k, v in sae.state_dict().items()}


def test_training_is_deterministic_per_seed(dict_data):
    x = dict_data[0][:500]
    cfg = SAEConfig(d=x.shape[1], c=24, k=3, lr=1e-3, epochs=3, batch_size=64, seed=7)
    a, ha = train_sae(x, cfg, device="cpu", progress=False)
    b, hb = train_sae(x, cfg, device="cpu", progress=False)
    for key, v in _state(a).items():
        assert torch.equal(v, _state(b)[key]), key
    assert ha == hb
    c, _ = train_sae(x, SAEConfig(**{**asdict(cfg), "seed": 8}), device="cpu", progress=False)
    assert not torch.equal(_state(a)["W_enc"], _state(c)["W_enc"])
    assert not torch.equal(_state(a)["D"], _state(c)["D"])


# ------------------------------------------------------------------------------ checkpoints


def test_save_load_roundtrip(tmp_path, trained, dict_data):
    x, _ = dict_data
    cfg, sae, _ = trained[3]
    path = tmp_path / "sub" / "sae.pt"
    save_sae(sae, path, cfg, extra={"metrics": {"r2": 0.5}})
    assert [p.name for p in path.parent.iterdir()] == ["sae.pt"]  # no temporary left behind
    loaded, meta = load_sae(path)
    assert (loaded.d, loaded.c, loaded.k) == (sae.d, sae.c, sae.k)
    for key, v in _state(sae).items():
        assert torch.equal(v, _state(loaded)[key]), key
    assert meta["config"] == asdict(cfg) and meta["metrics"] == {"r2": 0.5}
    assert not loaded.training
    assert (encode(loaded, x) != encode(sae, x)).nnz == 0


def test_load_corrupt_checkpoint_says_retrain(tmp_path):
    path = tmp_path / "bad.pt"
    path.write_bytes(np.random.default_rng(0).bytes(1000))
    with pytest.raises(ValueError, match="retrain"):
        load_sae(path)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, other)  # readable, but not an SAE checkpoint
    with pytest.raises(ValueError, match="not a readable scconcepts SAE checkpoint"):
        load_sae(other)


def test_shape_and_value_errors():
    x = np.random.default_rng(0).normal(size=(20, 6)).astype(np.float32)
    with pytest.raises(ValueError, match=r"SAEConfig.d=5"):
        train_sae(x, SAEConfig(d=5, c=8, k=2, epochs=1), device="cpu", progress=False)
    bad = x.copy()
    bad[3, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        train_sae(bad, SAEConfig(d=6, c=8, k=2, epochs=1), device="cpu", progress=False)
    with pytest.raises(ValueError, match="at least 2 cells"):
        train_sae(x[:1], SAEConfig(d=6, c=8, k=2, epochs=1), device="cpu", progress=False)
    sae = TopKSAE(d=6, c=8, k=2)
    with pytest.raises(ValueError, match="expects d=6"):
        encode(sae, x[:, :5])
