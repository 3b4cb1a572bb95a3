"""scGPT wrapper (:mod:`scconcepts.models.scgpt`) on a folder in the exact whole-human format.

The folder is built from ``data/scgpt/`` (the real 60,697-token vocabulary and the official
run's ``args.json``) plus a ``best_model.pt`` of random weights whose parameter names and shapes
are exactly those of ``whole_human_state_dict_keys.tsv`` (flash-attention names
``self_attn.Wqkv.*``) plus the ``mvc_decoder.*`` keys the real file also holds (~52M
parameters, 205 MB, as the real download). It proves the path a user with the real checkpoint
takes: strict loading, gene matching, deterministic binning, tokenisation and CLS embeddings
(compared with scGPT's own ``get_batch_cell_embeddings``), and the attribution encoder f.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from scconcepts.data import data_dir, load_dataset

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

try:
    from scconcepts.models import scgpt as ms

    ms.import_scgpt()
except ImportError as exc:  # pragma: no cover - the Makefile installs scgpt
    pytest.skip(f"scgpt is not importable ({exc}); install it with: "
                "pip install --no-deps scgpt==0.2.4 && pip install ipython datasets",
                allow_module_level=True)

N_CELLS = 16


def _keys_file() -> dict[str, tuple[int, ...]]:
    keys = {}
    for line in (data_dir() / "scgpt" / "whole_human_state_dict_keys.tsv").read_text().splitlines():
        if line and not line.startswith("#"):
            name, shape = line.split("\t")
            keys[name] = tuple(json.loads(shape))
    return keys


@pytest.fixture(scope="session")
def wh_state():
    """Random weights under the whole-human checkpoint's names (flash-attn ``Wqkv``)."""
    src = data_dir() / "scgpt"
    args = json.loads((src / "whole_human_args.json").read_text())
    vocab = json.loads((src / "whole_human_vocab.json").read_text())
    torch.manual_seed(0)
    model = ms.build_model(args, vocab)
    state = {k.replace("in_proj_", "Wqkv."): v for k, v in model.state_dict().items()
             if not k.startswith("cls_decoder.")}  # not in the real file (USE_CLS false)
    listed = _keys_file()
    # exactly the listed names/shapes, plus the mvc_decoder.* keys the real file also has
    assert {k: tuple(v.shape) for k, v in state.items() if k in listed} == listed
    assert sorted(set(state) - set(listed)) == ["mvc_decoder.W.weight",
                                                "mvc_decoder.gene2query.bias",
                                                "mvc_decoder.gene2query.weight"]
    return state


def _write_folder(path, state, vocab_file=None):
    src = data_dir() / "scgpt"
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / "whole_human_args.json", path / "args.json")
    shutil.copy(vocab_file or src / "whole_human_vocab.json", path / "vocab.json")
    if state is not None:
        torch.save(state, path / "best_model.pt")
    return path


@pytest.fixture(scope="session")
def wh_folder(wh_state, tmp_path_factory):
    return _write_folder(tmp_path_factory.mktemp("scgpt") / "scGPT_human", wh_state)


@pytest.fixture(scope="session")
def wh(wh_folder):
    return ms.load_checkpoint(wh_folder, device="cpu")


@pytest.fixture(scope="session")
def pbmc():
    """16 real cells of PBMC 4k (full transcriptome) and 1,200 HVGs among vocabulary genes."""
    adata = load_dataset("pbmc4k_10x")
    vocab = json.loads((data_dir() / "scgpt" / "whole_human_vocab.json").read_text())
    hvgs = ms.select_hvgs(adata, 1200, vocab=vocab)
    idx = np.random.default_rng(0).choice(adata.n_obs, N_CELLS, replace=False)
    return adata[np.sort(idx)].copy(), hvgs


@pytest.fixture(scope="session")
def pbmc_z(wh, pbmc):
    model, vocab, _ = wh
    cells, hvgs = pbmc
    return ms.embed(model, vocab, cells, hvgs, device="cpu", progress=False)


# -- loading ------------------------------------------------------------------------------------


def test_loader_loads_every_key(wh, wh_state):
    model, vocab, args = wh
    assert not model.training and len(vocab) == 60_697 and args["embsize"] == 512
    assert vocab["<pad>"] == 60_694 and vocab["<cls>"] == 60_695
    loaded = model.state_dict()
    renamed = {k.replace("Wqkv.", "in_proj_"): v for k, v in wh_state.items()}
    assert set(renamed) | {k for k in loaded if k.startswith("cls_decoder.")} == set(loaded)
    for k, v in renamed.items():
        assert torch.equal(loaded[k], v), k
    assert model.scconcepts_load_report["left_at_init"] == [
        k for k in loaded if k.startswith("cls_decoder.")]
    assert model.transformer_encoder.layers[0].self_attn.in_proj_weight.shape == (1536, 512)


def _bad_folder(tmp_path, state):
    return _write_folder(tmp_path / "bad", state)


def test_renamed_key_is_an_error(wh_state, tmp_path):
    state = dict(wh_state)
    state["transformer_encoder.layers.5.self_attn.qkv.weight"] = state.pop(
        "transformer_encoder.layers.5.self_attn.Wqkv.weight")
    with pytest.raises(ValueError) as err:
        ms.load_checkpoint(_bad_folder(tmp_path, state), device="cpu")
    msg = str(err.value)
    assert "transformer_encoder.layers.5.self_attn.in_proj_weight" in msg  # left unloaded
    assert "transformer_encoder.layers.5.self_attn.qkv.weight" in msg      # unknown
    assert "Fix" in msg


def test_missing_key_is_an_error(wh_state, tmp_path):
    state = {k: v for k, v in wh_state.items() if k != "mvc_decoder.W.weight"}
    with pytest.raises(ValueError, match=r"not in the checkpoint.*mvc_decoder\.W\.weight"):
        ms.load_checkpoint(_bad_folder(tmp_path, state), device="cpu")


def test_shape_mismatch_is_an_error(wh_state, tmp_path):
    state = dict(wh_state)
    state["transformer_encoder.layers.0.linear1.weight"] = torch.zeros(1024, 512)
    with pytest.raises(ValueError, match=r"shape mismatch.*layers\.0\.linear1\.weight"):
        ms.load_checkpoint(_bad_folder(tmp_path, state), device="cpu")


def test_vocab_mismatch_is_an_error(wh_folder, tmp_path):
    vocab = json.loads((wh_folder / "vocab.json").read_text())
    vocab["NOT_A_GENE"] = len(vocab)
    (tmp_path / "v.json").write_text(json.dumps(vocab))
    folder = _write_folder(tmp_path / "bad", None, vocab_file=tmp_path / "v.json")
    (folder / "best_model.pt").symlink_to(wh_folder / "best_model.pt")
    with pytest.raises(ValueError, match="vocab mismatch.*60,698.*60,697"):
        ms.load_checkpoint(folder, device="cpu")


def test_missing_files(wh_folder, tmp_path):
    folder = _write_folder(tmp_path / "no_weights", None)
    with pytest.raises(FileNotFoundError, match=r"best_model\.pt.*must contain.*args\.json"):
        ms.load_checkpoint(folder)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ms.load_checkpoint(tmp_path / "nowhere")


def test_corrupt_checkpoint(wh_folder, tmp_path):
    folder = _write_folder(tmp_path / "corrupt", None)
    with open(wh_folder / "best_model.pt", "rb") as src:  # a truncated download
        (folder / "best_model.pt").write_bytes(src.read(1 << 20))
    truncated = (folder / "best_model.pt").read_bytes()
    with pytest.raises(ValueError, match=r"best_model\.pt.*corrupt"):
        ms.load_checkpoint(folder)
    assert (folder / "best_model.pt").read_bytes() == truncated  # never rewritten
    (folder / "best_model.pt").write_bytes(b"<html>404 not found</html>")
    with pytest.raises(ValueError, match=r"best_model\.pt"):
        ms.load_checkpoint(folder)


def test_missing_scgpt_gives_install_command(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scgpt(name, *args, **kwargs):
        if name == "scgpt" or name.startswith("scgpt."):
            raise ModuleNotFoundError("No module named 'scgpt'", name="scgpt")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scgpt)
    with pytest.raises(ImportError, match=r"pip install --no-deps scgpt==0\.2\.4"):
        ms.import_scgpt()


# -- genes ----------------------------------------------------------------------------------------


def test_match_genes_kang(kang_full, wh):
    rep = ms.match_genes(kang_full, wh[1])
    assert rep["n_genes"] == 1287 and rep["n_found"] + rep["n_missing"] == 1287
    assert 1150 <= rep["n_found"] < 1287  # 1,213: Kang (2018) uses some retired symbols
    assert {"CD3E", "CD14", "LYZ", "NKG7", "HLA-DRA"} <= set(rep["found"])
    assert "IL8" in rep["missing"]  # now CXCL8
    assert ms.match_genes(["cd3e", "<pad>"], wh[1], min_fraction=0)["found"] == ["cd3e"]
    with pytest.raises(ValueError, match="Ensembl"):
        ms.match_genes([f"ENSG{i:011d}" for i in range(50)], wh[1])


def test_select_hvgs(pbmc, wh):
    _, hvgs = pbmc
    assert len(hvgs) == 1200 and len(set(hvgs)) == 1200
    assert set(hvgs) <= set(ms.match_genes(hvgs, wh[1])["found"])


# -- binning --------------------------------------------------------------------------------------


def test_bin_expression_equals_scgpt_without_ties():
    from scgpt.preprocess import binning

    rng = np.random.default_rng(0)
    row = np.zeros(600)
    row[rng.choice(600, 300, replace=False)] = rng.permutation(300) + 1.0 + rng.random(300) / 2
    ours = ms.bin_expression(row)
    for seed in range(3):  # scGPT's random tie-breaking plays no role without ties
        np.random.seed(seed)
        np.testing.assert_array_equal(ours, binning(row.copy(), n_bins=51))
    assert ours.min() == 0 and ours[row > 0].min() == 1 and ours.max() == 50


def test_bin_expression_with_ties(pbmc, monkeypatch):
    import scgpt.preprocess as pp

    cells, _ = pbmc
    counts = cells.X[:4].toarray()  # raw counts: most non-zero values are tied (1, 2, ...)
    b = ms.bin_expression(counts)
    np.testing.assert_array_equal(b, ms.bin_expression(counts))  # deterministic
    np.testing.assert_array_equal(b, ms.bin_expression(cells.X[:4]))  # sparse input
    assert b.dtype == np.int64 and b.min() >= 0 and b.max() <= 50
    assert np.array_equal(b == 0, counts == 0)  # zeros stay 0, non-zeros are >= 1
    # scGPT draws each tied value uniformly from low..high; we take the (lower) median bin
    ends = {}
    for u, name in [(0.0, "high"), (1 - 1e-9, "low")]:
        monkeypatch.setattr(pp.np.random, "rand", lambda n, u=u: np.full(n, u))
        ends[name] = np.stack([pp.binning(row.copy(), n_bins=51) for row in counts])
    monkeypatch.undo()
    assert (ends["low"] < ends["high"]).any()  # there are ties
    np.testing.assert_array_equal(b, (ends["low"] + ends["high"]) // 2)
    np.testing.assert_array_equal(ms.bin_expression(counts, ties="high"), ends["high"])
    # invariant to normalize_total + log1p, so binning raw counts is what embed_data does
    norm = np.log1p(counts / counts.sum(1, keepdims=True) * 1e4)
    np.testing.assert_array_equal(b, ms.bin_expression(norm))
    assert (ms.bin_expression(np.zeros(5)) == 0).all()
    with pytest.raises(ValueError, match="non-negative"):
        ms.bin_expression(-counts)


# -- tokenisation and embeddings -------------------------------------------------------------------


def test_tokenize(pbmc, wh):
    cells, hvgs = pbmc
    vocab = wh[1]
    tok = ms.tokenize(cells, hvgs, vocab, max_len=64)
    nnz = (cells[:, hvgs].X.toarray() > 0).sum(1)
    np.testing.assert_array_equal(tok["lengths"], np.minimum(nnz + 1, 64))
    assert tok["gene_ids"].shape == (N_CELLS, 64)
    assert (tok["gene_ids"][:, 0] == vocab["<cls>"]).all() and (tok["values"][:, 0] == -2).all()
    pad = tok["padding_mask"]
    assert (tok["gene_ids"][pad] == vocab["<pad>"]).all() and (tok["values"][pad] == -2).all()
    assert (tok["values"][:, 1:][~pad[:, 1:]] >= 1).all()
    again = ms.tokenize(cells, hvgs, vocab, max_len=64)  # sub-sampling is seeded
    assert torch.equal(tok["gene_ids"], again["gene_ids"])
    assert torch.equal(tok["values"], again["values"])
    # binning happens over all non-zero genes, before sub-sampling (as scGPT's collator)
    full = ms.tokenize(cells, hvgs, vocab, max_len=2000)
    i = int(np.argmax(nnz))
    kept = tok["gene_ids"][i, 1:]
    pos = {int(g): j for j, g in enumerate(full["gene_ids"][i])}
    np.testing.assert_array_equal(tok["values"][i, 1:].numpy(),
                                  full["values"][i, [pos[int(g)] for g in kept]].numpy())


def test_embed_real_cells(wh, pbmc, pbmc_z):
    model, vocab, _ = wh
    cells, hvgs = pbmc
    assert pbmc_z.shape == (N_CELLS, 512) and pbmc_z.dtype == np.float32
    assert np.isfinite(pbmc_z).all()
    np.testing.assert_allclose(np.linalg.norm(pbmc_z, axis=1), 1, atol=1e-5)  # as embed_data
    assert torch.backends.mha.get_fastpath_enabled()  # restored after the call
    # deterministic, and independent of batching / order (other batch size, obsm output)
    z2 = ms.embed(model, vocab, cells, hvgs, batch_size=5, device="cpu", progress=False,
                  key_added="X_scgpt")
    np.testing.assert_allclose(z2, pbmc_z, atol=1e-5)
    assert cells.obsm["X_scgpt"] is z2


@pytest.mark.slow  # whole-human-size forward passes
def test_embed_matches_scgpt_get_batch_cell_embeddings(wh, pbmc, pbmc_z, monkeypatch):
    """Same CLS embeddings as scGPT's own code once its random tie-break is made ours."""
    import scgpt.preprocess as pp
    import scgpt.tasks.cell_emb as ce

    model, vocab, args = wh
    cells, hvgs = pbmc

    def det_digitize(x, bins, side="both"):
        left = np.digitize(x, bins)
        low = np.minimum(np.digitize(x, bins, right=True) + 1, left)
        return (low + left) // 2

    monkeypatch.setattr(pp, "_digitize", det_digitize)
    monkeypatch.setattr(ce.os, "sched_getaffinity", lambda pid: {0})  # 1 loader worker
    sub = cells[:, hvgs].copy()
    gene_ids = np.array([vocab[g] for g in hvgs])
    with ms._mha_fastpath(False):  # the fast path is slow on CPU (it does not change results)
        z = ce.get_batch_cell_embeddings(sub, model=model, vocab=vocab, max_length=1200,
                                         batch_size=64, model_configs=args, gene_ids=gene_ids)
    np.testing.assert_allclose(z, pbmc_z, atol=1e-5)


@pytest.mark.slow  # whole-human-size forward passes
def test_encoder_fn_equals_embed(wh, pbmc, pbmc_z):
    model, vocab, _ = wh
    cells, hvgs = pbmc
    f = ms.encoder_fn(model, vocab, hvgs, device="cpu")
    x = torch.tensor(cells[:, hvgs].X.toarray(), dtype=torch.float32)
    z = f(x)
    assert z.dtype == torch.float32 and z.shape == (N_CELLS, 512)
    assert np.abs(z.numpy() - pbmc_z).max() <= 1e-5
    with pytest.raises(ValueError, match="raw counts"):
        f(x[:, :10])
