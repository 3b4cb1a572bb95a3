"""Top-K SAE training speed and quality: this project's trainer against a reference library.

Both train a Top-K SAE (Gao et al. 2024) at the same c, k, batch size, learning rate, number of
steps, AuxK settings and on the same mini-batches, in the same order, of the same real cell
embeddings; both are scored on the same held-out cells (the seeded 10 % that
:func:`scconcepts.sae_train.validation_split` sets aside, never trained on).

* ours: :func:`scconcepts.sae.train_sae` with the stopping rule switched off (fixed steps);
* reference: ``dictionary_learning`` 0.1.0 (``TopKTrainer`` / ``AutoEncoderTopK``, the Top-K
  recipe of Gao et al. as kept by the ``saprmarks/dictionary_learning`` project), driven
  through its own ``update(step, x)``: tied initialisation with the same Kaiming draw as ours
  (same seed), geometric-median decoder bias, unit-norm decoder with the parallel gradient
  removed, gradient clipping at 1, Adam, normalised AuxK. We set what differs from our settings
  to ours: ``warmup_steps=0``, ``top_k_aux`` = ``aux_k`` (512), ``dead_feature_threshold`` =
  ``dead_after`` (100,000 samples). Its package ``__init__`` imports ``nnsight`` (activation
  buffers of language models), so only its trainer modules are loaded.

Data: ``--source scvi`` / ``scgpt`` read the default profile's cached embeddings of the main
dataset (``artifacts/default``); ``pca`` (the fallback) is a 50-component PCA of the bundled
Kang et al. control PBMCs (log-normalised counts), no network.

Usage: ``python benchmarks/sae.py [--source auto|scvi|scgpt|pca] [--c 500] [--k 8]
[--steps 1200] [--batch 1024] [--lr 1e-3] [--threads 1] [--grid]``. ``--grid`` also trains the
default profile's SAE grids (plus c/d = 40 for scVI and 20 for scGPT) with the stopping rule
and prints seconds, epochs and held-out R² per SAE. The last line is exactly
``sae_steps_per_s_ratio=<ours/reference> r2_diff=<ours-reference>``.

``torch.compile`` of our step (measured on 2 shared cores, torch 2.13, one thread): with static
shapes 6.8 → 3.2 ms per step at c = 500 and 18.9 → 13.0 ms at c = 2000, but 4–20 s of
compilation per (c, k, batch shape), i.e. per SAE and per last-batch size, in every chapter
process; with dynamic shapes no gain. It does not pay for the book's ~15 SAEs, so the trainer
runs eagerly.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import sys
import time
import types

import numpy as np
import torch

from scconcepts.config import repo_root
from scconcepts.sae import SAEConfig, r2_score, reconstruct, train_sae
from scconcepts.sae_train import validation_split

PIP = "pip install --no-deps dictionary-learning==0.1.0 einops"
GRIDS = {"scvi": [(200, 3), (500, 8), (1000, 16), (2000, 32)],
         "scgpt": [(128, 2), (256, 4), (640, 10), (1280, 20)]}


def _reference():
    """``TopKTrainer`` of dictionary_learning, without its package ``__init__`` (nnsight)."""
    if "dictionary_learning" not in sys.modules:
        spec = importlib.util.find_spec("dictionary_learning")
        if spec is None or importlib.util.find_spec("einops") is None:
            sys.exit(f"The reference Top-K SAE is not installed; run: {PIP}")
        pkg = types.ModuleType("dictionary_learning")
        pkg.__path__ = list(spec.submodule_search_locations)
        sys.modules["dictionary_learning"] = pkg
    from dictionary_learning.trainers.top_k import TopKTrainer

    return TopKTrainer


def _cached(model: str) -> np.ndarray | None:
    """The default profile's main-dataset embedding of ``model`` if it is cached."""
    folder = repo_root() / "artifacts" / "default" / "embedding"
    for side in sorted(folder.glob("embedding-*.npy.json")):
        meta = json.loads(side.read_text())
        if meta.get("model") == model and meta.get("role") == "main":
            return np.load(side.with_suffix(""))
    return None


def _pca(d: int = 50) -> np.ndarray:
    import scanpy as sc

    from scconcepts.data import load_dataset

    adata = load_dataset("kang2018_pbmc_ctrl")
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    sc.pp.pca(adata, n_comps=d, random_state=0)
    return np.asarray(adata.obsm["X_pca"], dtype=np.float32)


def load(source: str) -> tuple[np.ndarray, str]:
    if source in ("auto", "scvi", "scgpt"):
        a = _cached("scvi" if source == "auto" else source)
        if a is not None:
            return a, f"{'scvi' if source == 'auto' else source} (cached, default profile)"
        if source != "auto":
            sys.exit(f"No cached {source} embedding under artifacts/default; run the book's "
                     "chapter 01 first or use --source pca.")
    return _pca(), "PCA (50) of log-normalised Kang control PBMCs"


def batches(n_train: int, train: np.ndarray, batch: int, steps: int, seed: int):
    """The mini-batches (cell indices) our trainer draws: one permutation per epoch from a CPU
    generator seeded with ``seed``, batches in order, the last one of an epoch smaller."""
    gen = torch.Generator(device="cpu").manual_seed(seed)
    out = []
    while len(out) < steps:
        order = train[torch.randperm(n_train, generator=gen).numpy()]
        out += [order[s:s + batch] for s in range(0, n_train, batch)]
    return out[:steps]


def run_ours(a: np.ndarray, cfg: SAEConfig):
    t = time.perf_counter()
    sae, hist = train_sae(a, cfg, device="cpu", progress=False)
    return sae, hist, time.perf_counter() - t


def run_reference(a: np.ndarray, cfg: SAEConfig, steps: int, val: np.ndarray):
    TopKTrainer = _reference()
    train = np.setdiff1d(np.arange(a.shape[0]), val)
    x = torch.from_numpy(a)
    plan = batches(train.size, train, cfg.batch_size, steps, cfg.seed)
    t = time.perf_counter()
    tr = TopKTrainer(steps=steps, activation_dim=cfg.d, dict_size=cfg.c, k=cfg.k, layer=0,
                     lm_name="scconcepts-benchmark", lr=cfg.lr, auxk_alpha=cfg.aux_coef,
                     warmup_steps=0, seed=cfg.seed, device="cpu")
    tr.top_k_aux, tr.dead_feature_threshold = cfg.aux_k, cfg.dead_after
    for step, idx in enumerate(plan):
        tr.update(step, x[torch.from_numpy(idx)])
    secs = time.perf_counter() - t
    with torch.no_grad():
        xv = x[torch.from_numpy(val)]
        rec = tr.ae.decode(tr.ae.encode(xv)).numpy()
    return tr.ae, r2_score(a[val], rec), secs


def grid_times(threads: int) -> None:
    """Training time, epochs and held-out R² of every SAE of the default grids (stopping rule
    of the default profile: 10 % held out, tol 1e-4, patience 10, lr 1e-3)."""
    from scconcepts.config import load_config

    s = load_config("default").sae
    print(f"\n# SAE grids, stopping rule (val {s.val_fraction}, tol {s.tol}, patience "
          f"{s.patience}, cap {s.epochs}), lr {s.lr}, batch {s.batch_size}")
    print(f"{'model':6} {'c':>5} {'k':>3} {'epochs':>6} {'conv':>5} {'steps':>6} {'s':>7} "
          f"{'steps/s':>8} {'R2 train':>8} {'R2 val':>7} {'cos init':>8}")
    total = 0.0
    for model, sizes in GRIDS.items():
        a = _cached(model)
        if a is None:
            print(f"{model}: no cached embedding, skipped")
            continue
        for c, k in sizes:
            cfg = SAEConfig(d=a.shape[1], c=c, k=k, aux_k=s.aux_k, lr=s.lr, epochs=s.epochs,
                            batch_size=s.batch_size, seed=0, val_fraction=s.val_fraction,
                            tol=s.tol, patience=s.patience)
            _, h, secs = run_ours(a, cfg)
            total += secs
            print(f"{model:6} {c:5d} {k:3d} {h['stopped_epoch']:6d} {str(h['converged']):>5} "
                  f"{h['steps']:6d} {secs:7.1f} {h['steps'] / secs:8.1f} {h['r2'][-1]:8.4f} "
                  f"{h['r2_val'][-1]:7.4f} {h['init_cosine']['mean']:8.3f}", flush=True)
    print(f"# grids: {total:.0f} s in all, one thread per SAE")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--source", default="auto", choices=["auto", "scvi", "scgpt", "pca"])
    p.add_argument("--c", type=int, default=500)
    p.add_argument("--k", type=int, default=8)
    p.add_argument("--steps", type=int, default=1200)
    p.add_argument("--batch", type=int, default=1024)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", action="store_true", help="also time the default SAE grids")
    args = p.parse_args()
    _reference()  # fail early, with the pip command, when it is missing
    torch.set_num_threads(args.threads)
    a, what = load(args.source)
    _, val = validation_split(a.shape[0], 0.1, args.seed)
    n_train = a.shape[0] - val.size
    per_epoch = -(-n_train // args.batch)
    epochs = -(-args.steps // per_epoch)
    steps = epochs * per_epoch  # whole epochs, so that both see the same batches
    cfg = SAEConfig(d=a.shape[1], c=args.c, k=args.k, lr=args.lr, epochs=epochs,
                    batch_size=args.batch, seed=args.seed, val_fraction=0.1,
                    patience=epochs + 1)  # the stopping rule never fires: fixed steps
    print(f"# data: {what}, {a.shape[0]} cells x d = {a.shape[1]} ({val.size} held out); "
          f"c = {args.c}, k = {args.k}, batch {args.batch}, lr {args.lr}, {steps} steps "
          f"({epochs} epochs), aux_k {cfg.aux_k}, dead after {cfg.dead_after:,} samples")
    print(f"# torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{args.threads} thread(s); best of 2 alternating runs each")
    ours_t, ref_t = [], []
    for _ in range(2):
        sae, hist, t = run_ours(a, cfg)
        ours_t.append(t)
        _, r2_ref, t = run_reference(a, cfg, steps, val)
        ref_t.append(t)
    r2_ours = r2_score(a[val], reconstruct(sae, a[val]))
    assert abs(r2_ours - hist["r2_val"][-1]) < 1e-4
    sps_o, sps_r = steps / min(ours_t), steps / min(ref_t)
    print(f"ours      : {sps_o:8.1f} steps/s  ({min(ours_t):.1f} s)  held-out R2 {r2_ours:.4f}")
    print(f"reference : {sps_r:8.1f} steps/s  ({min(ref_t):.1f} s)  held-out R2 {r2_ref:.4f}"
          f"  (dictionary_learning TopKTrainer)")
    if args.grid:
        grid_times(args.threads)
    print(f"sae_steps_per_s_ratio={sps_o / sps_r:.3f} r2_diff={r2_ours - r2_ref:+.4f}")


if __name__ == "__main__":
    main()
