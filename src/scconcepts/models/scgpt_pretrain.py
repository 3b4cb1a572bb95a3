"""Pretrain a CPU-size scGPT (scGPT's own ``TransformerModel``) on the bundled cells and save it
in the whole-human checkpoint format.

What it is
----------
The same ``scgpt.model.TransformerModel`` class as the official ``scGPT_human`` checkpoint,
built by :func:`scconcepts.models.scgpt.build_model` at a small size, trained from scratch with
scGPT's masked-expression pretraining objective on all cells bundled in ``data/scrna``:

* **GEP** (gene expression prediction, "masked value prediction"): a fraction ``mask_ratio`` of
  each cell's non-padding gene values (never ``<cls>``) is replaced by ``mask_value`` (−1) and
  the expression decoder's ``mlm_output`` must predict the binned value at those positions
  (``scgpt.loss.masked_mse_loss``);
* **MVC** (masked value prediction for cell embedding, ``model(..., MVC=True)``): the
  ``mvc_output`` predicts the same masked values from the ``<cls>`` cell embedding and the gene
  embeddings only (``scgpt.loss.masked_mse_loss``).

The loss is their sum, as in scGPT's pretraining with ``MVC: true`` (generative training,
CLS/CCE/ECS off, like the whole-human run: ``USE_CLS: false``, ``USE_CCE: false``).

Input is tokenised exactly as at embedding time (:class:`scconcepts.models.scgpt._Tokenizer`):
non-zero genes only, deterministic per-cell binning into ``n_bins - 1`` = 50 bins, ``<cls>``
prepended with ``pad_value``, over-long cells cut to ``max_len - 1`` genes by seeded priority.

What it is not
--------------
It is **not** the whole-human model (33M cells, 12 layers, 512 dimensions, 60,697 genes): it
has seen ~16k PBMCs and knows only the genes of the bundled panels. It exists so that the default
book can show scGPT concepts on real cells, on a CPU, with a model that was really trained.

Vocabulary
----------
A compact vocabulary: the genes of the main dataset (Kang 2018 control) plus the top
``n_hvg`` highly variable genes of each other bundled dataset, all found in the real
whole-human vocabulary (``data/scgpt/whole_human_vocab.json``, under its symbols), in
whole-human token order, followed by ``<pad>``, ``<cls>``, ``<eoc>``. Every gene in it was
seen in training.

Saved folder (whole-human format)
---------------------------------
``args.json`` (whole-human keys), ``vocab.json``, ``best_model.pt`` (state_dict with the
flash-attention names ``self_attn.Wqkv.weight``/``bias`` and without ``cls_decoder.*``, as the
official file), ``training_log.json`` (loss per step and per epoch). Load it with
:func:`scconcepts.models.scgpt.load_checkpoint`.

CLI::

    python -m scconcepts.models.scgpt_pretrain --out models/scgpt_pbmc_small --seed 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from . import scgpt as ms

__all__ = [
    "DEFAULT_CONFIG",
    "DATASETS",
    "build_vocab",
    "tokenize_cells",
    "make_batches",
    "mask_values",
    "train",
    "save_checkpoint",
    "pretrain",
    "main",
]

#: Bundled datasets used for pretraining (all cells of each).
DATASETS = ("kang2018_pbmc_ctrl", "pbmc4k_10x", "kang2018_pbmc_ifnb")

#: Model size and training settings of the committed ``models/scgpt_pbmc_small``.
DEFAULT_CONFIG = {
    "embsize": 64, "nheads": 4, "d_hid": 128, "nlayers": 2, "n_layers_cls": 3,
    "dropout": 0.1, "n_bins": 51, "max_seq_len": 512, "mask_ratio": 0.4, "mask_value": -1,
    "pad_value": -2, "pad_token": "<pad>", "batch_size": 32, "lr": 1e-3, "epochs": 2,
    "warmup_steps": 100, "n_hvg": 1200, "grad_clip": 1.0,
}


# --------------------------------------------------------------------------------------------
# data


def _whole_human_vocab() -> dict[str, int]:
    from ..data import bundled_file

    with open(bundled_file("scgpt/whole_human_vocab.json")) as fh:
        return json.load(fh)


def _csr(adata) -> sp.csr_matrix:
    X = sp.csr_matrix(adata.X, dtype=np.float64)
    X.eliminate_zeros()
    X.sort_indices()
    return X


def build_vocab(adatas: Mapping[str, "object"], main: str = DATASETS[0], n_hvg: int = 1200,
                whole_human: Mapping[str, int] | None = None
                ) -> tuple[dict[str, int], dict[str, list[str]]]:
    """Compact vocabulary of the genes the model is trained on.

    Parameters
    ----------
    adatas
        Dataset name → AnnData (raw counts, gene symbols in ``var_names``).
    main
        All genes of this dataset found in the whole-human vocabulary are kept.
    n_hvg
        For every other dataset, its top ``n_hvg`` HVGs among whole-human genes
        (:func:`scconcepts.models.scgpt.select_hvgs`, seurat_v3).
    whole_human
        The whole-human vocabulary (default: ``data/scgpt/whole_human_vocab.json``).

    Returns
    -------
    vocab : dict
        Whole-human token symbol → new consecutive id, genes in whole-human id order, then
        ``<pad>``, ``<cls>``, ``<eoc>``.
    panels : dict
        Dataset name → the dataset's own gene names (``var_names``) used for it: every one
        of its genes whose token is in ``vocab``.
    """
    wh = dict(whole_human) if whole_human is not None else _whole_human_vocab()
    chosen: dict[str, list[str]] = {}
    for name, adata in adatas.items():
        rep = ms.match_genes(adata, wh)
        if name == main:
            chosen[name] = rep["tokens"]
        else:
            hv = set(ms.select_hvgs(adata, n_hvg, vocab=wh))
            chosen[name] = [t for g, t in zip(rep["found"], rep["tokens"]) if g in hv]
    tokens = sorted({t for ts in chosen.values() for t in ts}, key=lambda t: wh[t])
    vocab = {t: i for i, t in enumerate(tokens)}
    for tok in ms.SPECIAL_TOKENS:
        vocab[tok] = len(vocab)
    panels = {}
    for name, adata in adatas.items():
        rep = ms.match_genes(adata, wh)
        panels[name] = [g for g, t in zip(rep["found"], rep["tokens"]) if t in vocab]
    return vocab, panels


def tokenize_cells(adata, genes: Sequence[str], vocab: Mapping[str, int], *,
                   max_len: int = 512, n_bins: int = 51, pad_value: float = -2,
                   seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per-cell ``(gene ids, binned values)`` with ``<cls>`` first, exactly as
    :func:`scconcepts.models.scgpt.embed` tokenises (non-zero genes, deterministic bins,
    seeded cut to ``max_len``), unpadded."""
    X = _csr(adata[:, list(genes)])
    tok = ms._Tokenizer(ms._gene_token_ids(list(genes), vocab), vocab["<cls>"], vocab["<pad>"],
                        pad_value, n_bins, max_len, seed, "mid")
    return [tok.cell(X.indices[X.indptr[r]:X.indptr[r + 1]], X.data[X.indptr[r]:X.indptr[r + 1]])
            for r in range(X.shape[0])]


def make_batches(lengths: np.ndarray, batch_size: int, rng: np.random.Generator,
                 bucket: int = 50) -> list[np.ndarray]:
    """Shuffled batches of similar-length cells (less padding): shuffle, sort chunks of
    ``bucket`` batches by length, cut into batches, shuffle the batches."""
    order = rng.permutation(len(lengths))
    chunk = batch_size * bucket
    batches = []
    for s in range(0, len(order), chunk):
        part = order[s:s + chunk]
        part = part[np.argsort(-lengths[part], kind="stable")]
        batches += [part[i:i + batch_size] for i in range(0, len(part), batch_size)]
    return [batches[i] for i in rng.permutation(len(batches))]


def _pad(cells: Sequence[tuple[np.ndarray, np.ndarray]], pad_id: int, pad_value: float):
    L = max(len(c[0]) for c in cells)
    ids = np.full((len(cells), L), pad_id, dtype=np.int64)
    vals = np.full((len(cells), L), pad_value, dtype=np.float32)
    for i, (g, v) in enumerate(cells):
        ids[i, :len(g)] = g
        vals[i, :len(v)] = v
    ids, vals = torch.from_numpy(ids), torch.from_numpy(vals)
    return ids, vals, ids == pad_id


def mask_values(values: torch.Tensor, padding_mask: torch.Tensor, mask_ratio: float,
                mask_value: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """scGPT's ``random_mask_value``: in each cell mask ``round(mask_ratio * n)`` of its ``n``
    non-padding gene positions (position 0, ``<cls>``, is never masked).

    Returns
    -------
    masked_values, masked_positions
        Values with ``mask_value`` at the masked positions, and the BoolTensor of those.
    """
    valid = ~padding_mask.clone()
    valid[:, 0] = False
    scores = torch.rand(values.shape, generator=generator)
    scores[~valid] = 2.0
    rank = scores.argsort(dim=1).argsort(dim=1)
    k = torch.round(valid.sum(1).float() * mask_ratio).long().clamp(min=1)
    masked = (rank < k[:, None]) & valid
    return values.masked_fill(masked, mask_value), masked


# --------------------------------------------------------------------------------------------
# training


def _lr_factor(step: int, total: int, warmup: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def train(model, cells: Sequence[tuple[np.ndarray, np.ndarray]], vocab: Mapping[str, int],
          config: Mapping, *, seed: int = 0, max_minutes: float | None = None,
          max_steps: int | None = None, progress: bool = True) -> dict:
    """Pretrain ``model`` in place with GEP + MVC (scGPT's masked-expression objective).

    Parameters
    ----------
    model
        ``scgpt.model.TransformerModel`` with ``do_mvc=True``.
    cells
        Tokenised cells from :func:`tokenize_cells`.
    config
        ``batch_size``, ``lr``, ``epochs``, ``warmup_steps``, ``mask_ratio``, ``mask_value``,
        ``pad_value``, ``grad_clip``.
    seed
        Seeds batching, masking and dropout: same seed → same weights.
    max_minutes, max_steps
        Stop early after this much wall time / this many steps.

    Returns
    -------
    dict
        The training log: per step ``loss``, ``loss_gep``, ``loss_mvc``, ``lr``; per epoch
        means; ``steps``, ``seconds``, ``stopped_early``.
    """
    from tqdm import tqdm

    from scgpt.loss import masked_mse_loss

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    lengths = np.array([len(c[0]) for c in cells])
    bs, epochs = int(config["batch_size"]), int(config["epochs"])
    steps_per_epoch = math.ceil(len(cells) / bs)
    total = steps_per_epoch * epochs  # the schedule ignores early stops (max_steps/minutes)
    opt = torch.optim.Adam(model.parameters(), lr=float(config["lr"]))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: _lr_factor(s, total, int(config["warmup_steps"])))
    pad_id = vocab[config.get("pad_token", "<pad>")]
    log = {"step": [], "epoch": [], "loss": [], "loss_gep": [], "loss_mvc": [], "lr": [],
           "epochs": [], "steps_per_epoch": steps_per_epoch, "stopped_early": False}
    t0 = time.perf_counter()
    step = 0
    model.train()
    prev_fast = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        for epoch in range(epochs):
            batches = make_batches(lengths, bs, rng)
            sums = np.zeros(3)
            n = 0
            bar = tqdm(batches, desc=f"scGPT pretrain epoch {epoch + 1}/{epochs}", unit="step",
                       disable=not progress)
            for rows in bar:
                ids, vals, pad = _pad([cells[i] for i in rows], pad_id, config["pad_value"])
                inp, masked = mask_values(vals, pad, config["mask_ratio"],
                                          config["mask_value"], gen)
                out = model(ids, inp, src_key_padding_mask=pad, MVC=True)
                l_gep = masked_mse_loss(out["mlm_output"], vals, masked)
                l_mvc = masked_mse_loss(out["mvc_output"], vals, masked)
                loss = l_gep + l_mvc
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(config["grad_clip"]))
                opt.step()
                sched.step()
                vals3 = [loss.item(), l_gep.item(), l_mvc.item()]
                if not all(np.isfinite(vals3)):
                    raise FloatingPointError(f"non-finite loss at step {step}: {vals3}")
                sums += vals3
                n += 1
                log["step"].append(step)
                log["epoch"].append(epoch)
                log["loss"].append(vals3[0])
                log["loss_gep"].append(vals3[1])
                log["loss_mvc"].append(vals3[2])
                log["lr"].append(opt.param_groups[0]["lr"])
                step += 1
                if step % 20 == 0:
                    bar.set_postfix(loss=f"{np.mean(log['loss'][-20:]):.2f}")
                out_of_time = (max_minutes is not None
                               and time.perf_counter() - t0 > 60 * max_minutes)
                if out_of_time or (max_steps is not None and step >= max_steps):
                    log["stopped_early"] = bool(out_of_time)
                    break
            bar.close()
            log["epochs"].append({"epoch": epoch, "steps": n, "loss": sums[0] / n,
                                  "loss_gep": sums[1] / n, "loss_mvc": sums[2] / n,
                                  "seconds": time.perf_counter() - t0})
            if step >= total or log["stopped_early"] or (max_steps is not None
                                                      and step >= max_steps):
                break
    finally:
        torch.backends.mha.set_fastpath_enabled(prev_fast)
    model.eval()
    log["steps"] = step
    log["seconds"] = time.perf_counter() - t0
    return log


# --------------------------------------------------------------------------------------------
# saving


def _args_json(config: Mapping, n_cells: int) -> dict:
    """``args.json`` with the whole-human keys that mean something here."""
    c = dict(config)
    return {
        "data_source": "scconcepts bundled data/scrna: " + ", ".join(DATASETS),
        "n_cells": n_cells, "load_model": None, "n_hvg": c["n_hvg"], "pad_token": c["pad_token"],
        "input_style": "binned", "input_emb_style": "continuous", "cell_emb_style": "cls",
        "n_bins": c["n_bins"], "max_seq_len": c["max_seq_len"], "training_tasks": "both",
        "mask_ratio": c["mask_ratio"], "trunc_by_sample": True, "batch_size": c["batch_size"],
        "epochs": c["epochs"], "lr": c["lr"], "warmup_ratio_or_step": c["warmup_steps"],
        "no_cls": True, "no_cce": True, "fp16": False, "fast_transformer": False,
        "nlayers": c["nlayers"], "nheads": c["nheads"], "embsize": c["embsize"],
        "d_hid": c["d_hid"], "dropout": c["dropout"], "n_layers_cls": c["n_layers_cls"],
        "mask_value": c["mask_value"], "pad_value": c["pad_value"], "USE_CLS": False,
        "USE_CCE": False, "MVC": True, "USE_GENERATIVE_TRAINING": True, "seed": c.get("seed"),
    }


def flash_state_dict(model) -> dict[str, torch.Tensor]:
    """``model.state_dict()`` under the official checkpoint's names: ``self_attn.in_proj_*``
    → ``self_attn.Wqkv.*`` (flash-attention), without ``cls_decoder.*`` (not trained)."""
    return {k.replace("self_attn.in_proj_", "self_attn.Wqkv."): v.detach().clone().contiguous()
            for k, v in model.state_dict().items() if not k.startswith("cls_decoder.")}


def save_checkpoint(model, vocab: Mapping[str, int], config: Mapping, out: str | os.PathLike,
                    log: Mapping | None = None, n_cells: int = 0) -> Path:
    """Write ``args.json``, ``vocab.json``, ``best_model.pt`` (flash-attention key names) and,
    if given, ``training_log.json`` into ``out``; returns the folder."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "args.json").write_text(json.dumps(_args_json(config, n_cells), indent=2) + "\n")
    (out / "vocab.json").write_text(json.dumps(dict(vocab)) + "\n")
    torch.save(flash_state_dict(model), out / "best_model.pt")
    if log is not None:
        (out / "training_log.json").write_text(json.dumps(log) + "\n")
    return out


# --------------------------------------------------------------------------------------------
# end to end


def pretrain(out: str | os.PathLike, *, seed: int = 0, config: Mapping | None = None,
             adatas: Mapping[str, object] | None = None, max_minutes: float | None = None,
             max_steps: int | None = None, progress: bool = True,
             init_from: str | os.PathLike | None = None):
    """Build the vocabulary, tokenise all cells, build and train the model, save the folder.

    Parameters
    ----------
    out
        Output folder (whole-human format).
    seed
        Seeds model initialisation, batching, masking and dropout.
    config
        Overrides of :data:`DEFAULT_CONFIG`.
    adatas
        Dataset name → AnnData; default all :data:`DATASETS` via
        :func:`scconcepts.data.load_dataset`. The first one is the "main" dataset whose every
        gene is kept.
    max_minutes, max_steps
        Early stop (see :func:`train`).
    init_from
        Continue training a saved folder (same data, hence the same vocabulary) instead of
        starting from random weights; its ``training_log.json`` is prepended to the new log
        (``stage`` counts the runs).

    Returns
    -------
    model, vocab, log
    """
    cfg = {**DEFAULT_CONFIG, **(config or {}), "seed": seed}
    if adatas is None:
        from ..data import load_dataset

        adatas = {name: load_dataset(name) for name in DATASETS}
    names = list(adatas)
    vocab, panels = build_vocab(adatas, main=names[0], n_hvg=int(cfg["n_hvg"]))
    cells = []
    per_dataset = {}
    for name in names:
        toks = tokenize_cells(adatas[name], panels[name], vocab, max_len=int(cfg["max_seq_len"]),
                              n_bins=int(cfg["n_bins"]), pad_value=cfg["pad_value"], seed=seed)
        per_dataset[name] = {"n_cells": len(toks), "n_genes": len(panels[name]),
                             "median_len": float(np.median([len(t[0]) for t in toks]))}
        cells += toks
    torch.manual_seed(seed)
    model = ms.build_model({**cfg, "MVC": True}, vocab)
    prev = None
    if init_from is not None:
        loaded, vocab0, _ = ms.load_checkpoint(init_from, device="cpu")
        if vocab0 != vocab:
            raise ValueError(f"{init_from} was trained with another vocabulary.")
        model.load_state_dict(loaded.state_dict())
        log_file = Path(init_from) / "training_log.json"
        prev = json.loads(log_file.read_text()) if log_file.is_file() else None
    log = train(model, cells, vocab, cfg, seed=seed, max_minutes=max_minutes,
                max_steps=max_steps, progress=progress)
    if prev is not None:
        log = _concat_logs(prev, log, cfg)
    log.update({"config": cfg, "datasets": per_dataset, "n_vocab": len(vocab),
                "n_params": int(sum(p.numel() for n, p in model.named_parameters()
                                    if not n.startswith("cls_decoder."))),
                "torch": torch.__version__, "threads": torch.get_num_threads(),
                "machine": platform.processor() or platform.machine()})
    save_checkpoint(model, vocab, cfg, out, log, n_cells=len(cells))
    return model, vocab, log


def _concat_logs(prev: Mapping, new: dict, cfg: Mapping) -> dict:
    """One curve over successive runs: steps, epochs and seconds continue from ``prev``."""
    n, n_ep, secs = int(prev["steps"]), len(prev["epochs"]), float(prev["seconds"])
    stages = list(prev.get("stages", [{"config": prev.get("config"), "steps": n,
                                       "seconds": secs}]))
    stages.append({"config": dict(cfg), "steps": new["steps"], "seconds": new["seconds"]})
    out = dict(new)
    for key in ("loss", "loss_gep", "loss_mvc", "lr"):
        out[key] = list(prev[key]) + list(new[key])
    out["step"] = list(prev["step"]) + [s + n for s in new["step"]]
    out["epoch"] = list(prev["epoch"]) + [e + n_ep for e in new["epoch"]]
    out["epochs"] = list(prev["epochs"]) + [
        {**e, "epoch": e["epoch"] + n_ep, "seconds": e["seconds"] + secs} for e in new["epochs"]]
    out["steps"], out["seconds"], out["stages"] = n + new["steps"], secs + new["seconds"], stages
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """CLI: ``python -m scconcepts.models.scgpt_pretrain --out DIR --seed 0 [--epochs N]
    [--max-minutes M] [--threads T]``."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--epochs", type=int, default=DEFAULT_CONFIG["epochs"])
    p.add_argument("--max-minutes", type=float, default=None)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--init-from", default=None,
                   help="continue training this saved folder (same data and vocabulary)")
    for key in ("embsize", "nheads", "d_hid", "nlayers", "max_seq_len", "batch_size", "n_hvg",
                "warmup_steps"):
        p.add_argument("--" + key.replace("_", "-"), type=int, default=DEFAULT_CONFIG[key])
    for key in ("lr", "mask_ratio", "dropout"):
        p.add_argument("--" + key.replace("_", "-"), type=float, default=DEFAULT_CONFIG[key])
    a = p.parse_args(argv)
    torch.set_num_threads(a.threads)
    cfg = {k: getattr(a, k) for k in ("epochs", "embsize", "nheads", "d_hid", "nlayers",
                                      "max_seq_len", "batch_size", "n_hvg", "lr", "mask_ratio",
                                      "dropout", "warmup_steps")}
    _, vocab, log = pretrain(a.out, seed=a.seed, config=cfg, max_minutes=a.max_minutes,
                             max_steps=a.max_steps, init_from=a.init_from)
    print(f"saved {a.out}: {log['n_params']:,} parameters, {len(vocab):,} tokens, "
          f"{log['steps']} steps in {log['seconds'] / 60:.1f} min, "
          f"final epoch loss {log['epochs'][-1]['loss']:.3f}")


if __name__ == "__main__":
    main()
