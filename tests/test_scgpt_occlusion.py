"""Exact incremental occlusion for scGPT (:mod:`scconcepts.models.scgpt_occlusion`).

The fast path (token differences per (a, b) count change, deduplicated copies, rank-Δ update of
the first-layer attention, piecewise-linear first-layer feed-forward with exact hinge
corrections, ``<cls>``-only last layer without keys or values, worker threads) must give the
same embeddings as the unmodified model on every perturbed copy, and the same attribution as
the literal loop of Eq 2, where every copy is re-binned and run through the model one gene at a
time. Each step is also checked on its own: token differences against tokenising every copy,
post-/pre-norm and ReLU/GELU layers, one and three layers, the feed-forward with all and with no
hinge corrections, the fallback for ill-conditioned rows, truncated cells.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from scconcepts.attribution import (NeuronReadout, UnitFunction, _dense_rows, occlusion_fast,
                                    occlusion_literal)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

ms = pytest.importorskip("scconcepts.models.scgpt")
try:
    ms.import_scgpt()
except ImportError as exc:  # pragma: no cover - the Makefile installs scgpt
    pytest.skip(f"scgpt is not importable ({exc})", allow_module_level=True)

from scconcepts.models.scgpt_copies import (cell_tokens, token_differences,  # noqa: E402
                                            token_differences_loop)
from scconcepts.models.scgpt_occlusion import ScGPTOcclusion  # noqa: E402


@pytest.fixture(scope="module")
def project(kang_full):
    from scconcepts.config import repo_root

    net, vocab, _ = ms.load_checkpoint(repo_root() / "models" / "scgpt_pbmc_small")
    genes = ms.match_genes(kang_full, vocab)["found"][:400]  # a panel subset keeps the loop short
    X = kang_full[:, genes].X
    return net, vocab, genes, X


def _cells(X, seed, n):
    rng = np.random.default_rng(seed)
    return _dense_rows(X, rng.choice(X.shape[0], n, replace=False))


def test_fast_equals_literal_on_real_cells(project):
    net, vocab, genes, X = project
    torch.manual_seed(0)
    occ = ScGPTOcclusion(net, vocab, genes)
    rows = _cells(X, 0, 300)
    readout = NeuronReadout.from_embeddings(occ(torch.from_numpy(rows)).numpy())
    xp, xc1, xc2 = rows[:3]
    fast = occlusion_fast(UnitFunction(occ, readout), np.stack([xp, xp]), np.stack([xc1, xc2]), 7)
    plain = UnitFunction(lambda x: occ(x), readout)  # no ``occlude``: the literal model path
    for r, xc in enumerate((xc1, xc2)):
        lit = occlusion_literal(plain, xp, xc, 7)
        assert np.abs(fast[r] - lit).max() <= 1e-5
        assert np.all(fast[r][xp == xc] == 0)           # equal genes: exactly 0, never computed
        assert np.count_nonzero(lit[xp != xc]) > 0.5 * (xp != xc).sum()


def test_occlude_matches_f_with_middle_layers_and_dedup(project):
    """A 4-layer random model exercises the full middle layers; duplicates and no-op copies."""
    _, vocab, genes, X = project
    torch.manual_seed(1)
    net = ms.build_model({"embsize": 32, "nheads": 4, "d_hid": 64, "nlayers": 4, "dropout": 0.0},
                         vocab).eval()
    occ = ScGPTOcclusion(net, vocab, genes, variants_per_batch=7)
    xp, xc = _cells(X, 3, 2)
    g = np.flatnonzero(xp != xc)
    nz = np.flatnonzero(xp)
    genes_v = np.concatenate([g, g[:5], nz[:1]])        # repeated copies and one that changes nothing
    vals_v = np.concatenate([xc[g], xc[g[:5]], xp[nz[:1]]])
    z = occ.occlude(xp, genes_v, vals_v)
    copies = np.repeat(xp[None], len(genes_v), 0)
    copies[np.arange(len(genes_v)), genes_v] = vals_v
    ref = occ(torch.from_numpy(copies)).numpy()
    assert z.shape == (len(genes_v), net.d_model)
    assert np.abs(z - ref).max() <= 1e-5
    assert np.array_equal(z[len(g):len(g) + 5], z[:5])


def test_occlusion_rejects_flash_layers(project):
    net, vocab, genes, _ = project

    class Odd(torch.nn.Module):
        pass

    layers = net.transformer_encoder.layers
    saved = layers[0]
    layers[0] = Odd()
    try:
        with pytest.raises(ValueError, match="TransformerEncoderLayer"):
            ScGPTOcclusion(net, vocab, genes)
    finally:
        layers[0] = saved


# ---------------------------------------------------------------------------------------------
# the pieces of the fast path, each against the unmodified model


def _copies(xp, genes_v, vals_v):
    copies = np.repeat(xp[None], len(genes_v), 0)
    copies[np.arange(len(genes_v)), genes_v] = vals_v
    return copies


def _check_occlude(occ, xp, genes_v, vals_v, tol=1e-5):
    z = occ.occlude(xp, genes_v, vals_v)
    ref = occ(torch.from_numpy(_copies(xp, genes_v, vals_v))).numpy()
    assert np.abs(z - ref).max() <= tol
    return z


def _variants(xp, xc, n=60):
    """Copies with the counterfactual's count, plus removals, additions and large counts."""
    g = np.flatnonzero(xp != xc)[:n]
    nz, zero = np.flatnonzero(xp), np.flatnonzero(xp == 0)
    genes_v = np.concatenate([g, nz[:5], zero[:5], nz[5:8]])
    vals_v = np.concatenate([xc[g], np.zeros(5), np.full(5, 3.0), xp[nz[5:8]] + 40])
    return genes_v, vals_v.astype(np.float32)


def test_token_differences_equal_tokenised_copies(project):
    """Per-(a, b) binning gives the same token differences as tokenising every copy."""
    net, vocab, genes, X = project
    occ = ScGPTOcclusion(net, vocab, genes)
    for seed in (0, 1):
        xp, xc = _cells(X, seed, 2)
        xp = xp.astype(np.float64)
        genes_v, vals_v = _variants(xp, xc, n=400)
        nz_b, _, vals_b = cell_tokens(occ.tok, xp)
        fast = token_differences(occ.tok, xp, nz_b, vals_b, genes_v, vals_v.astype(np.float64))
        loop = token_differences_loop(occ.tok, xp, nz_b, vals_b, genes_v,
                                      vals_v.astype(np.float64))
        assert (fast[0] >= 0).sum(1).max() > 1           # some copies move other genes' bins
        for a, b in zip(fast, loop):
            w = max(a.shape[1], b.shape[1])
            pad = -1 if a.dtype == np.int64 else 0
            a, b = (np.pad(x, ((0, 0), (0, w - x.shape[1])), constant_values=pad) for x in (a, b))
            assert np.array_equal(a, b)


@pytest.mark.parametrize("norm_first,activation,nlayers", [
    (False, "relu", 2), (True, "relu", 2), (False, "gelu", 2), (True, "gelu", 3),
    (False, "relu", 3), (False, "relu", 1)])
def test_occlude_layer_variants(project, norm_first, activation, nlayers):
    """Post-/pre-norm layers, ReLU (piecewise-linear feed-forward) and GELU (full feed-forward),
    one layer (<cls> of the first layer) and middle layers."""
    _, vocab, genes, X = project
    torch.manual_seed(2)
    net = ms.build_model({"embsize": 32, "nheads": 4, "d_hid": 64, "nlayers": nlayers,
                          "dropout": 0.0}, vocab).eval()
    for layer in net.transformer_encoder.layers:
        layer.norm_first = norm_first
        if activation == "gelu":
            layer.activation = F.gelu
    occ = ScGPTOcclusion(net, vocab, genes, variants_per_batch=16)
    xp, xc = _cells(X, 4, 2)
    _check_occlude(occ, xp, *_variants(xp, xc))


def test_piecewise_linear_feed_forward_branches(project, monkeypatch):
    """The fused kernel with all hinge corrections, none (every changed row in full) and the
    default, and the first layer in torch (no kernel)."""
    import scconcepts.models.scgpt_occlusion as so
    from scconcepts.models.scgpt_occlusion_rows import rows_supported

    net, vocab, genes, X = project
    assert rows_supported(net.transformer_encoder.layers[0], 1200)   # the project model
    occ = ScGPTOcclusion(net, vocab, genes)
    xp, xc = _cells(X, 5, 2)
    variants = _variants(xp, xc)
    ref = _check_occlude(occ, xp, *variants)
    for k in (0, 64):
        monkeypatch.setattr(so, "_MAX_RISKY", k)
        assert np.abs(_check_occlude(occ, xp, *variants) - ref).max() <= 1e-6
    monkeypatch.setattr(so, "rows_supported", lambda layer, L: False)
    assert np.abs(_check_occlude(occ, xp, *variants) - ref).max() <= 1e-6


def test_ill_conditioned_rows_fall_back_to_the_model(project, monkeypatch):
    """Copies flagged as ill-conditioned (here: all of them) are embedded by the plain model."""
    import scconcepts.models.scgpt_occlusion as so

    net, vocab, genes, X = project
    monkeypatch.setattr(so, "_MIN_Z_RATIO", 2.0)
    occ = ScGPTOcclusion(net, vocab, genes)
    xp, xc = _cells(X, 6, 2)
    _check_occlude(occ, xp, *_variants(xp, xc, n=20))


def test_truncated_cells_and_worker_threads(project):
    """Cells longer than max_len (per-copy tokenisation) and batches over two worker threads."""
    net, vocab, genes, X = project
    occ = ScGPTOcclusion(net, vocab, genes, max_len=40, variants_per_batch=8)
    xp, xc = _cells(X, 7, 2)
    assert np.count_nonzero(xp) > 40
    prev = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        _check_occlude(occ, xp, *_variants(xp, xc, n=40))
    finally:
        torch.set_num_threads(prev)


def test_edge_cells(project):
    """No copies, an empty prototype, a one-gene prototype (its gene removed: only <cls> left)."""
    net, vocab, genes, _ = project
    occ = ScGPTOcclusion(net, vocab, genes)
    assert occ.occlude(np.zeros(len(genes)), np.zeros(0, np.int64), np.zeros(0)).shape == (0, 64)
    x = np.zeros(len(genes), dtype=np.float32)
    _check_occlude(occ, x, np.array([3, 5, 3]), np.array([1.0, 2.0, 1.0], dtype=np.float32))
    x[7] = 2
    _check_occlude(occ, x, np.array([7, 7, 8]), np.array([0.0, 5.0, 1.0], dtype=np.float32))


def test_memory_budget_splits_batches_without_changing_results(project):
    """A tight ``batch_mib`` makes batches of copies that change many tokens smaller (each
    within the budget, or a single copy), and the embeddings stay those of the model."""
    net, vocab, genes, X = project
    xp, xc = _cells(X, 8, 2)
    genes_v, vals_v = _variants(xp, xc, n=40)
    wide = ScGPTOcclusion(net, vocab, genes)
    tight = ScGPTOcclusion(net, vocab, genes, batch_mib=0.05)
    L = np.count_nonzero(xp) + 1
    n_old, n_new = np.array([3, 3, 50, 50, 50, 400]), np.array([0, 1, 0, 2, 2, 0])
    todo = np.arange(6)
    assert [len(b) for b in wide._batches(todo, n_old, n_new, L)] == [6]
    batches = tight._batches(todo, n_old, n_new, L)
    assert np.array_equal(np.concatenate(batches), todo) and len(batches) > 1
    from scconcepts.models.scgpt_occlusion import _LIVE_ARRAYS
    per = _LIVE_ARRAYS * 4 * net.transformer_encoder.layers[0].self_attn.num_heads * (L + 1)
    for b in batches:
        assert len(b) == 1 or len(b) * (n_old[b].max() + n_new[b].max()) * per <= 0.05 * 2 ** 20
    z = _check_occlude(tight, xp, genes_v, vals_v)
    assert np.abs(z - wide.occlude(xp, genes_v, vals_v)).max() <= 1e-5
