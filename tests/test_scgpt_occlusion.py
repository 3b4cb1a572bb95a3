"""Exact incremental occlusion for scGPT (:mod:`scconcepts.models.scgpt_occlusion`).

The fast path (deduplicated copies, incremental first-layer attention, ``<cls>``-only last layer)
must give the same attribution as the literal loop of Eq 2, where every perturbed copy is
re-binned and run through the unmodified model, one gene at a time.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from scconcepts.attribution import (NeuronReadout, UnitFunction, _dense_rows, occlusion_fast,
                                    occlusion_literal)

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

ms = pytest.importorskip("scconcepts.models.scgpt")
try:
    ms.import_scgpt()
except ImportError as exc:  # pragma: no cover - the Makefile installs scgpt
    pytest.skip(f"scgpt is not importable ({exc})", allow_module_level=True)

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
