"""scGPT speed, side by side in one run: forward passes and the attribution fast path.

1. Forward pass (CLS embedding, batch 32, length-sorted batches, MHA fast path off on CPU) of
   the project model (``models/scgpt_pbmc_small``) and of a whole-human-size model (the official
   ``args.json`` and 60,697-token vocabulary from ``data/scgpt/``, random weights, ~51M
   parameters) on the same real Kang cells: milliseconds per cell.
2. Occlusion attribution (Eq 2) of one scGPT neuron with the project model: the literal loop
   (one forward pass of the unmodified model per gene and per (prototype, counterfactual) pair,
   every gene of the panel, each perturbed copy re-binned) against the fast path
   (:class:`scconcepts.models.scgpt_occlusion.ScGPTOcclusion` through
   :func:`scconcepts.attribution.occlusion_fast`), on the same pairs. Both use ``--threads``
   CPU threads in this one process: the literal loop as intra-op threads of each forward pass,
   the fast path as worker threads over its batches of copies (one intra-op thread each).

Usage: ``python benchmarks/scgpt.py [--threads 2] [--cells 256] [--prototypes 2]
[--counterfactuals 3] [--repeats 3]``. On a machine with CUDA the forward passes also run there (cells/s).
The last line is exactly
``project_ms_per_cell=<x> whole_human_ms_per_cell=<y> fast_vs_literal_ratio=<z> max_abs_diff=<w>``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

# This file is named like the package it benchmarks: drop its folder from the import path so
# that ``import scgpt`` (inside scconcepts) finds the scGPT package, not this script.
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != os.path.dirname(os.path.abspath(__file__))]

import numpy as np
import torch

from scconcepts.attribution import (NeuronReadout, UnitFunction, _dense_rows,
                                    find_counterfactuals, occlusion_fast, occlusion_literal,
                                    select_prototypes)
from scconcepts.data import data_dir, load_dataset
from scconcepts.models import scgpt as ms
from scconcepts.models.scgpt_occlusion import ScGPTOcclusion
from scconcepts.config import repo_root


def _forward_ms(net, vocab, adata, device, repeats: int = 2) -> float:
    """Best of ``repeats`` embedding runs, ms per cell (batch 32)."""
    best = np.inf
    for _ in range(repeats):
        t = time.perf_counter()
        ms.embed(net, vocab, adata, batch_size=32, device=device, progress=False)
        if device == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best / adata.n_obs * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cells", type=int, default=256, help="cells for the forward timings")
    ap.add_argument("--prototypes", type=int, default=2)
    ap.add_argument("--counterfactuals", type=int, default=3, help="N_c (paper: 3)")
    ap.add_argument("--repeats", type=int, default=3, help="fast-path repeats (best time kept)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, {args.threads} threads")

    kang = load_dataset("kang2018_pbmc_ctrl")
    rng = np.random.default_rng(args.seed)
    cells = kang[np.sort(rng.choice(kang.n_obs, args.cells, replace=False))].copy()

    # ---- 1. forward passes
    net, vocab, _ = ms.load_checkpoint(repo_root() / "models" / "scgpt_pbmc_small", device="cpu")
    lengths = np.diff(cells[:, ms.match_genes(cells, vocab)["found"]].X.tocsr().indptr) + 1
    project_ms = _forward_ms(net, vocab, cells, "cpu")
    print(f"project model ({sum(p.numel() for p in net.parameters()):,} parameters): "
          f"{project_ms:.2f} ms/cell on CPU (batch 32, {args.cells} cells, mean "
          f"{lengths.mean():.0f} tokens)")
    wh_args = json.loads((data_dir() / "scgpt" / "whole_human_args.json").read_text())
    wh_vocab = json.loads((data_dir() / "scgpt" / "whole_human_vocab.json").read_text())
    torch.manual_seed(args.seed)
    wh = ms.build_model(wh_args, wh_vocab).eval()
    wh_ms = _forward_ms(wh, wh_vocab, cells, "cpu", repeats=1)
    print(f"whole-human-size model ({sum(p.numel() for p in wh.parameters()):,} parameters, "
          f"random weights): {wh_ms:.2f} ms/cell on CPU")
    if torch.cuda.is_available():
        for name, (m, v) in {"project": (net, vocab), "whole-human-size": (wh, wh_vocab)}.items():
            ms.embed(m, v, cells[:64], device="cuda", progress=False)  # warm-up
            g = _forward_ms(m, v, cells, "cuda")
            print(f"{name} on {torch.cuda.get_device_name()}: {1e3 / g:,.0f} cells/s")
        net.to("cpu")
    del wh

    # ---- 2. attribution: literal loop vs fast path, same pairs
    genes = ms.match_genes(kang, vocab)["found"]
    X = kang[:, genes].X.tocsr()
    occ = ScGPTOcclusion(net, vocab, genes, seed=args.seed, device="cpu")
    pool = np.sort(rng.choice(kang.n_obs, 2000, replace=False))
    Z = occ(torch.from_numpy(_dense_rows(X, pool))).numpy()
    readout = NeuronReadout.from_embeddings(Z)
    neuron = 0
    act = Z[:, neuron] - readout.median.numpy()[neuron]
    protos = select_prototypes(act, args.prototypes)
    cfs = find_counterfactuals(Z, act, protos, args.counterfactuals)
    xp = _dense_rows(X, pool[np.repeat(protos, args.counterfactuals)])
    xc = _dense_rows(X, pool[cfs.ravel()])
    fast_fn = UnitFunction(occ, readout)
    literal_fn = UnitFunction(lambda x: occ(x), readout)  # no ``occlude``: the unmodified model
    occlusion_fast(fast_fn, xp[:1], xc[:1], neuron)  # warm-up (first-call allocations)
    t_fast = np.inf
    for _ in range(args.repeats):
        t = time.perf_counter()
        fast = occlusion_fast(fast_fn, xp, xc, neuron)
        t_fast = min(t_fast, time.perf_counter() - t)
    t = time.perf_counter()
    literal = np.stack([occlusion_literal(literal_fn, a, b, neuron) for a, b in zip(xp, xc)])
    t_lit = time.perf_counter() - t
    diff = float(np.abs(fast - literal).max())
    n_diff = int((xp != xc).sum())
    print(f"attribution, {len(xp)} pairs x {len(genes)} genes ({n_diff} differing): literal "
          f"{t_lit:.1f} s ({t_lit / xp.size * 1e3:.2f} ms/gene), fast {t_fast:.2f} s")
    print(f"project_ms_per_cell={project_ms:.2f} whole_human_ms_per_cell={wh_ms:.2f} "
          f"fast_vs_literal_ratio={t_lit / t_fast:.1f} max_abs_diff={diff:.2e}")


if __name__ == "__main__":
    main()
