"""Project pretraining of a CPU-size scGPT (:mod:`scconcepts.models.scgpt_pretrain`) and the
committed checkpoint ``models/scgpt_pbmc_small`` (whole-human format, flash-attention names)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning",
                                        "ignore::FutureWarning")

try:
    from scconcepts.models import scgpt as ms

    ms.import_scgpt()
except ImportError as exc:  # pragma: no cover - the Makefile installs scgpt
    pytest.skip(f"scgpt is not importable ({exc})", allow_module_level=True)

from scconcepts.models import scgpt_pretrain as sp  # noqa: E402

COMMITTED = Path(__file__).resolve().parents[1] / "models" / "scgpt_pbmc_small"
TINY = {"embsize": 16, "nheads": 2, "d_hid": 32, "nlayers": 1, "max_seq_len": 64,
        "batch_size": 32, "lr": 1e-3, "warmup_steps": 1, "dropout": 0.1}


@pytest.fixture(scope="module")
def cells64(kang_full):
    idx = np.random.default_rng(0).choice(kang_full.n_obs, 64, replace=False)
    return kang_full[np.sort(idx)].copy()


def _run(cells, out, seed=0):
    return sp.pretrain(out, seed=seed, config=TINY, adatas={"kang2018_pbmc_ctrl": cells},
                       max_steps=2, progress=False)


@pytest.fixture(scope="module")
def tiny(cells64, tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain") / "tiny"
    model, vocab, log = _run(cells64, out)
    return out, model, vocab, log


def test_two_steps_finite_loss_and_log(tiny):
    out, _, vocab, log = tiny
    assert log["steps"] == 2 and len(log["loss"]) == 2
    assert np.isfinite(log["loss"]).all() and np.isfinite(log["loss_mvc"]).all()
    np.testing.assert_allclose(log["loss"], np.add(log["loss_gep"], log["loss_mvc"]), rtol=1e-5)
    saved = json.loads((out / "training_log.json").read_text())
    assert saved["loss"] == log["loss"] and saved["n_vocab"] == len(vocab)
    args = json.loads((out / "args.json").read_text())
    assert args["embsize"] == 16 and args["mask_value"] == -1 and args["MVC"] is True
    assert list(vocab)[-3:] == ["<pad>", "<cls>", "<eoc>"]


def test_mask_values():
    vals = torch.arange(1, 11, dtype=torch.float32).repeat(3, 1)
    pad = torch.zeros(3, 10, dtype=torch.bool)
    pad[1, 6:] = True
    g = torch.Generator().manual_seed(0)
    masked_vals, masked = sp.mask_values(vals, pad, 0.4, -1, g)
    assert not masked[:, 0].any() and not (masked & pad).any()
    assert masked.sum(1).tolist() == [4, 2, 4]  # round(0.4 * non-pad genes), <cls> excluded
    assert (masked_vals[masked] == -1).all() and torch.equal(masked_vals[~masked], vals[~masked])


def test_checkpoint_round_trip_with_flash_names(tiny, cells64):
    out, model, vocab, _ = tiny
    state = torch.load(out / "best_model.pt", weights_only=True)
    assert "transformer_encoder.layers.0.self_attn.Wqkv.weight" in state
    assert not any("in_proj" in k or k.startswith("cls_decoder.") for k in state)
    loaded, vocab2, _ = ms.load_checkpoint(out, device="cpu")  # strict
    assert vocab2 == vocab
    for k, v in model.state_dict().items():
        if not k.startswith("cls_decoder."):
            assert torch.equal(loaded.state_dict()[k], v), k
    z = ms.embed(loaded, vocab2, cells64[:8], device="cpu", progress=False)
    assert z.shape == (8, 16) and np.isfinite(z).all()


def test_same_seed_same_weights(tiny, cells64, tmp_path):
    _, model, _, log = tiny
    model2, _, log2 = _run(cells64, tmp_path / "again")
    assert log2["loss"] == log["loss"]
    for k, v in model.state_dict().items():
        assert torch.equal(model2.state_dict()[k], v), k


def test_committed_model_loads_and_embeds(kang_full):
    model, vocab, args = ms.load_checkpoint(COMMITTED, device="cpu")
    assert model.scconcepts_load_report["left_at_init"] == [
        k for k in model.state_dict() if k.startswith("cls_decoder.")]
    size = sum(f.stat().st_size for f in COMMITTED.iterdir())
    assert size <= 10 * 2**20
    assert {"training_log.json", "README.md"} <= {f.name for f in COMMITTED.iterdir()}
    cells = kang_full[:8].copy()
    z1 = ms.embed(model, vocab, cells, device="cpu", progress=False)
    z2 = ms.embed(model, vocab, cells, batch_size=3, device="cpu", progress=False)
    assert z1.shape == (8, args["embsize"]) and np.isfinite(z1).all()
    np.testing.assert_allclose(z1, z2, atol=1e-5)
