"""Scale proof: chapters 01–02 on a synthetic Census-shaped dataset of 100,000 cells, in bounded
memory, single-threaded.

Steps (the paper-scale code path, on CPU):

1. write a synthetic dataset in the Census schema, chunk by chunk
   (:func:`scconcepts.data.synthetic.make_census_like_h5ad`: negative-binomial counts per cell
   type, fitted to the bundled Kang 2018 PBMCs);
2. chapter 01: train the project's scVI (Census recipe) for a few epochs on a random subsample,
   then embed *all* cells through the resumable on-disk store
   (:func:`scconcepts.scale.embed_in_chunks` + :func:`scconcepts.scale.scvi_chunk_encoder`),
   reading the ``.h5ad`` backed;
3. chapter 02: train a Top-K SAE (:func:`scconcepts.sae.train_sae`) on all embeddings.

Prints the time of each step and the peak resident memory (``getrusage``); the last line is
``peak_rss_gb=<x> cells=<n> ...``. Run single-threaded::

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_100k.py            # 100,000 cells
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/scale_100k.py --cells 3000 --quick
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")

import anndata as ad  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cells", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=10_000, help="cells per generation/embedding chunk")
    p.add_argument("--train-cells", type=int, default=20_000, help="scVI training subsample")
    p.add_argument("--scvi-epochs", type=int, default=2)
    p.add_argument("--c", type=int, default=1000)
    p.add_argument("--k", type=int, default=16)
    p.add_argument("--sae-epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir", type=Path, default=None, help="kept if given; else a temp folder")
    p.add_argument("--quick", action="store_true", help="1 scVI epoch, 2 SAE epochs (tests)")
    args = p.parse_args(argv)
    if args.quick:
        args.scvi_epochs, args.sae_epochs = 1, 2

    torch.set_num_threads(1)
    from scconcepts import scale
    from scconcepts.data import load_dataset, synthetic
    from scconcepts.models import scvi as ms
    from scconcepts.sae import SAEConfig, sae_metrics, train_sae

    work = args.workdir or Path(tempfile.mkdtemp(prefix="scconcepts_scale_"))
    work.mkdir(parents=True, exist_ok=True)
    times = {}
    t_all = time.perf_counter()
    try:
        # 1. synthetic Census-shaped dataset, written chunk by chunk
        t = time.perf_counter()
        path = work / f"synthetic_{args.cells}.h5ad"
        if not path.exists():
            ref = load_dataset("kang2018_pbmc_ctrl", required_obs=("cell_type", "donor_id"))
            synthetic.make_census_like_h5ad(path, args.cells, ref, chunk_size=args.chunk,
                                            seed=args.seed)
            del ref
            gc.collect()
        times["generate_s"] = time.perf_counter() - t
        backed = ad.read_h5ad(path, backed="r")
        n_genes = backed.n_vars
        print(f"dataset: {backed.n_obs:,} cells x {n_genes:,} genes, {path.stat().st_size / 1e6:.0f} MB "
              f"on disk ({times['generate_s']:.1f} s); peak RSS {scale.peak_rss_gb():.2f} GB",
              flush=True)

        # 2a. scVI (Census recipe) trained on a subsample
        t = time.perf_counter()
        rng = np.random.default_rng(args.seed)
        idx = np.sort(rng.choice(backed.n_obs, min(args.train_cells, backed.n_obs), replace=False))
        sub = backed[idx].to_memory()
        model = ms.train_reference(sub, work / "scvi", batch_key="donor_id",
                                   max_epochs=args.scvi_epochs, seed=args.seed, accelerator="cpu")
        del sub
        gc.collect()
        times["scvi_train_s"] = time.perf_counter() - t
        print(f"scVI: {args.scvi_epochs} epoch(s) on {len(idx):,} cells in "
              f"{times['scvi_train_s']:.1f} s; peak RSS {scale.peak_rss_gb():.2f} GB", flush=True)

        # 2b. all cells embedded through the resumable chunked store
        t = time.perf_counter()
        encode = scale.scvi_chunk_encoder(model, list(model.adata.var_names), device="cpu")
        z = scale.embed_in_chunks(path, encode, work / "embeddings", chunk_size=args.chunk,
                                  key={"model": "scvi", "epochs": args.scvi_epochs,
                                       "seed": args.seed, "cells": args.cells}, progress=False)
        times["embed_s"] = time.perf_counter() - t
        print(f"embeddings: {z.shape} in {times['embed_s']:.1f} s "
              f"({z.shape[0] / times['embed_s']:,.0f} cells/s); peak RSS "
              f"{scale.peak_rss_gb():.2f} GB", flush=True)

        # 3. Top-K SAE on every embedding
        t = time.perf_counter()
        A = np.array(z, dtype=np.float32)  # a writable in-memory copy (n_cells x 50: 20 MB)
        cfg = SAEConfig(d=A.shape[1], c=args.c, k=args.k, lr=1e-3, epochs=args.sae_epochs,
                        batch_size=1024, seed=args.seed)
        sae, _ = train_sae(A, cfg, device="cpu", progress=False)
        metrics = sae_metrics(sae, A)
        times["sae_s"] = time.perf_counter() - t
        print(f"SAE c={args.c} k={args.k}: {args.sae_epochs} epochs in {times['sae_s']:.1f} s, "
              f"R2={metrics['r2']:.3f}, active={metrics['active_concepts']}; peak RSS "
              f"{scale.peak_rss_gb():.2f} GB", flush=True)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    total = time.perf_counter() - t_all
    peak = scale.peak_rss_gb()
    print(f"machine: {platform.processor() or platform.machine()}, torch threads "
          f"{torch.get_num_threads()}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}")
    print(f"peak_rss_gb={peak:.2f} cells={args.cells} genes={n_genes} chunk={args.chunk} "
          f"generate_s={times['generate_s']:.1f} scvi_train_s={times['scvi_train_s']:.1f} "
          f"embed_s={times['embed_s']:.1f} sae_s={times['sae_s']:.1f} total_s={total:.1f} "
          f"r2={metrics['r2']:.3f}", flush=True)
    return {"peak_rss_gb": peak, "cells": args.cells, **times, "r2": metrics["r2"]}


if __name__ == "__main__":
    main()
