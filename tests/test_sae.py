"""Top-K SAE (:mod:`scconcepts.sae`, :mod:`scconcepts.sae_train`): sparsity, unit-norm decoder,
reconstruction on a case with a known sparse dictionary, AuxK, the held-out stopping rule, grid
training, determinism, checkpoints and input errors."""

from __future__ import annotations

from dataclasses import asdict

import numpy as np
import pytest
import sklearn.metrics
import torch

import scconcepts.sae as sae_mod
from scconcepts import stability
from scconcepts.sae import (SAEConfig, TopKSAE, encode, load_sae, r2_score, reconstruct,
                            sae_metrics, save_sae, split_metrics, train_sae, train_sae_grid)
from scconcepts.sae_train import _topk, stopping_rule_met, validation_split

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
    assert len(hist["r2"]) == hist["stopped_epoch"] <= cfg.epochs
    assert hist["r2"][-1] > hist["r2"][0] and hist["r2_val"][-1] > 0.95
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


def _same(a, b) -> bool:
    return all(torch.equal(v, _state(b)[key]) for key, v in _state(a).items())


# ------------------------------------------------------------------------------ stopping rule


def test_stopping_rule_definition():
    assert not stopping_rule_met([0.1, 0.2, 0.3], tol=1e-4, patience=3)  # too few epochs
    assert stopping_rule_met([0.5, 0.9, 0.9, 0.90005], tol=1e-4, patience=2)
    assert not stopping_rule_met([0.5, 0.9, 0.9, 0.9002], tol=1e-4, patience=2)
    assert stopping_rule_met([0.5, 0.9, 0.8, 0.85], tol=0.0, patience=2)  # worse is no gain


def test_stops_early_on_an_easy_case_and_reports_it(dict_data):
    x, _ = dict_data
    cfg = SAEConfig(d=x.shape[1], c=80, k=3, aux_k=32, dead_after=1000, lr=3e-3, epochs=400,
                    batch_size=256, seed=0, tol=1e-3, patience=4)
    sae, hist = train_sae(x, cfg, device="cpu", progress=False)
    n = hist["stopped_epoch"]
    assert hist["converged"] and n < 100 and len(hist["r2_val"]) == len(hist["r2"]) == n
    r2v = hist["r2_val"]
    assert max(r2v[-4:]) <= max(r2v[:-4]) + 1e-3  # the rule held at the stop
    assert not stopping_rule_met(r2v[:-1], 1e-3, 4)  # ... and not one epoch before
    assert r2v[-1] > 0.9 and hist["steps"] == n * -(-hist["n_train"] // 256)
    # the cap: the rule cannot be met in 3 epochs with patience 4
    capped = SAEConfig(**{**asdict(cfg), "epochs": 3})
    _, h3 = train_sae(x, capped, device="cpu", progress=False)
    assert not h3["converged"] and h3["stopped_epoch"] == 3


def test_validation_cells_are_not_trained_on(dict_data):
    x = dict_data[0][:600]
    cfg = SAEConfig(d=x.shape[1], c=32, k=3, lr=1e-3, epochs=3, batch_size=64, seed=3,
                    patience=50)
    sae, hist = train_sae(x, cfg, device="cpu", progress=False)
    train, val = validation_split(600, 0.1, 3)
    assert hist["val_cells"] == val.tolist() and len(val) == 60 and hist["n_train"] == 540
    assert not set(train) & set(val) and len(train) + len(val) == 600
    # held-out R² is that of the held-out cells, and split_metrics tells it from in-sample R²
    assert hist["r2_val"][-1] == pytest.approx(r2_score(x[val], reconstruct(sae, x[val])),
                                               abs=1e-5)
    m = split_metrics(sae, x, hist)
    assert m["r2_val"] == pytest.approx(hist["r2_val"][-1], abs=1e-5) and m["n_val"] == 60
    assert m["r2"] == pytest.approx(r2_score(x[train], reconstruct(sae, x[train])), abs=1e-9)
    # any value in the held-out cells leaves the weights bit-identical
    noisy = x.copy()
    noisy[val] = np.random.default_rng(0).normal(size=(60, x.shape[1])) * 50
    other, h2 = train_sae(noisy, cfg, device="cpu", progress=False)
    assert _same(sae, other) and h2["r2"] == hist["r2"] and h2["r2_val"] != hist["r2_val"]


def test_grid_training_equals_single_training(dict_data):
    x = dict_data[0][:800]
    cfgs = [SAEConfig(d=x.shape[1], c=c, k=k, aux_k=16, dead_after=500, lr=2e-3, epochs=4,
                      batch_size=64, seed=s, patience=2) for c, k, s in
            ((48, 3, 0), (96, 6, 0), (48, 3, 1))]
    grid = train_sae_grid(x, cfgs, device="cpu", workers=2)
    for cfg, (g_sae, g_hist) in zip(cfgs, grid):
        s_sae, s_hist = train_sae(x, cfg, device="cpu", progress=False)
        assert _same(g_sae, s_sae) and g_hist == s_hist
    assert grid[0][1]["val_cells"] == grid[1][1]["val_cells"] != grid[2][1]["val_cells"]


def test_init_cosine_is_measured_against_the_real_initialisation(trained):
    cfg, sae, hist = trained[3]
    D0 = stability.initial_dictionary(cfg.d, cfg.c, cfg.k, cfg.seed)
    cos = (sae.D.detach().numpy().astype(np.float64) * D0).sum(0)
    got = hist["init_cosine"]
    assert got["mean"] == pytest.approx(cos.mean(), abs=1e-5)
    assert got["min"] == pytest.approx(cos.min(), abs=1e-5) and got["min"] <= got["median"] <= 1


@pytest.mark.parametrize("c,k", [(100, 4), (500, 8), (1000, 16), (2000, 32), (640, 10)])
def test_fast_topk_selects_the_topk_set(c, k):
    z = torch.from_numpy(np.random.default_rng(c).normal(size=(64, c)).astype(np.float32))
    v, i = _topk(z, k)
    ref_v, ref_i = torch.topk(z, k, dim=1)
    assert torch.equal(i.sort(1).values, ref_i.sort(1).values)
    assert torch.equal(torch.gather(z, 1, i), v)


def test_training_is_deterministic_per_seed(dict_data):
    x = dict_data[0][:500]
    cfg = SAEConfig(d=x.shape[1], c=24, k=3, lr=1e-3, epochs=3, batch_size=64, seed=7)
    a, ha = train_sae(x, cfg, device="cpu", progress=False)
    b, hb = train_sae(x, cfg, device="cpu", progress=False)
    for key, v in _state(a).items():
        assert torch.equal(v, _state(b)[key]), key
    assert ha == hb and set(ha) >= {"r2_val", "converged", "stopped_epoch", "init_cosine"}
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


def test_without_decoder_bias_the_paper_decoder(dict_data):
    """decoder_bias=False (chapter 02's ablation): b_dec stays exactly 0, so A' = U Dᵀ; the
    SAE still learns the constructed (uncentred, non-negative) dictionary."""
    x, _ = dict_data
    cfg = SAEConfig(d=x.shape[1], c=80, k=3, aux_k=32, dead_after=1000, lr=3e-3, epochs=30,
                    batch_size=128, seed=0, decoder_bias=False)
    sae, _ = train_sae(x, cfg, device="cpu", progress=False)
    assert torch.count_nonzero(sae.b_dec) == 0
    u = encode(sae, x).toarray()
    np.testing.assert_allclose(reconstruct(sae, x), u @ sae.D.detach().numpy().T, atol=1e-4)
    assert r2_score(x, reconstruct(sae, x)) > 0.8
