"""Literal per-gene occlusion loop (Eq 2 as written) vs the fast path, side by side.

Same real cells, same concepts of the default-profile scVI SAE: for ``--concepts`` concepts with
enough activating cells, the first ``--prototypes`` prototypes and their nearest counterfactual.
The literal loop runs one forward pass per gene and per pair, including genes equal in both
cells; the fast path skips those (their attribution is exactly 0) and batches the rest.

Usage: ``python benchmarks/attribution.py [--profile default] [--concepts 4] [--prototypes 2]``.
Trains/loads the default models through the cached workflow. The last line is
``fast_vs_literal_ratio=<x> max_abs_diff=<y>``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch

from scconcepts import sae as sae_mod
from scconcepts.attribution import (SAEReadout, UnitFunction, find_counterfactuals,
                                    occlusion_fast, occlusion_literal, select_prototypes)
from scconcepts.config import load_config
from scconcepts.workflow import Workflow


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--profile", default="default")
    ap.add_argument("--concepts", type=int, default=4)
    ap.add_argument("--prototypes", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3, help="fast-path repeats (best time kept)")
    args = ap.parse_args()

    cfg = load_config(args.profile)
    wf = Workflow(cfg)
    A = wf.embeddings("main", "scvi")
    sae, _ = wf.sae("scvi")
    codes = sae_mod.encode(sae, A).tocsc()
    X, genes = wf.model("scvi").inputs(wf.dataset("main"), "main")
    unit_fn = UnitFunction(wf.model("scvi").encoder(genes), SAEReadout(sae))
    rng = np.random.default_rng(cfg.seed)
    candidates = np.flatnonzero(codes.getnnz(axis=0) >= cfg.concepts.min_cells)
    units = rng.choice(candidates, min(args.concepts, len(candidates)), replace=False)

    pairs = []
    for u in units:
        col = codes[:, u].toarray().ravel()
        protos = select_prototypes(col, args.prototypes)
        cfs = find_counterfactuals(A, col, protos, 1)[:, 0]
        pairs += [(int(u), int(p), int(c)) for p, c in zip(protos, cfs)]
    xp = {p: X[p].toarray()[0] for _, p, _ in pairs}
    xc = {c: X[c].toarray()[0] for _, _, c in pairs}
    n_genes = X.shape[1]
    n_diff = int(sum((xp[p] != xc[c]).sum() for _, p, c in pairs))

    t0 = time.perf_counter()
    literal = [occlusion_literal(unit_fn, xp[p], xc[c], u) for u, p, c in pairs]
    t_literal = time.perf_counter() - t0

    best = np.inf
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        fast = []
        for u in units:  # one batched call per concept, all its pairs stacked
            sel = [(p, c) for uu, p, c in pairs if uu == u]
            fast.append(occlusion_fast(unit_fn, np.stack([xp[p] for p, _ in sel]),
                                       np.stack([xc[c] for _, c in sel]), int(u)))
        best = min(best, time.perf_counter() - t0)
    fast = np.concatenate(fast)
    diff = float(np.abs(np.stack(literal) - fast).max())

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"pairs (prototype, counterfactual): {len(pairs)} over {len(units)} concepts; "
          f"genes {n_genes}; genes differing per pair (mean): {n_diff / len(pairs):.0f}")
    print(f"literal loop: {t_literal:.3f} s  ({len(pairs) * n_genes} forward passes of 1 cell)")
    print(f"fast path:    {best:.4f} s  ({n_diff} perturbed copies, batched; best of {args.repeats})")
    print(f"fast_vs_literal_ratio={t_literal / best:.1f} max_abs_diff={diff:.3g}")


if __name__ == "__main__":
    main()
