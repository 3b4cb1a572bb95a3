"""Training of Top-K SAEs (:mod:`scconcepts.sae`) to convergence on held-out cells.

Stopping rule
    A seeded fraction ``val_fraction`` of the cells (10 %, as the paper holds out 10 %) is set
    aside and never trained on (:func:`validation_split`). After every epoch the variance-weighted
    R² of those cells (:func:`scconcepts.sae.r2_score`, SST about the held-out cells' own mean) is
    computed; training stops when the best held-out R² of the last ``patience`` epochs is no more
    than ``tol`` (absolute) above the best before them, and ``converged`` is then True. Training
    that reaches ``epochs`` (the cap) first is reported with ``converged`` False.

Speed
    One step touches the dense (batch × c) matrix only in the encoder's forward product and its
    Top-K; everything else is a gather or ``index_add`` over the k selected latents per cell
    (gradients written out by hand, no autograd), so a step costs about one dense product instead
    of six; the Top-K itself is taken over blocks where that is faster (:func:`_topk`). AuxK
    works on the latents that can be dead, as a dense product over those columns only: on a CPU
    (where reading a value costs nothing) exactly the dead latents with a positive
    pre-activation in the batch, and a Top-K only for rows with more than ``aux_k`` of them; on
    CUDA the candidates of a window of steps, known ahead from the samples-since-fired counters
    (one host read per window, none per step). Losses and R² accumulate as tensors and are read
    once per epoch. On a CPU every SAE runs on one thread (small matrices: a second thread does
    not pay, and other processes competing for the cores slow OpenMP teams a lot);
    :func:`train_sae_grid` trains several SAEs side by side on ``workers`` threads, each exactly
    as :func:`train_sae` would. ``torch.compile`` was measured and left out (see
    ``benchmarks/sae.py``).

Determinism: on a CPU, a given config and data give bit-identical weights and history (the
initialisation draws from ``seed_everything(seed)``, as
:func:`scconcepts.stability.initial_dictionary` assumes; split and batch order from their own
generators). On CUDA, gradients are dense products
instead of ``index_add`` (deterministic there too, up to cuBLAS).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch

from . import sae as sae_mod
from .utils import resolve_device, seed_everything

__all__ = ["validation_split", "train_sae", "train_sae_grid", "stopping_rule_met"]

_SPLIT_STREAM = 0x5AE  # the validation split's own random stream (not the init's, not the order's)


def validation_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted (train, held-out) cell indices: a seeded ``fraction`` of ``n`` cells held out.

    At least one cell is held out when ``fraction`` > 0 and at least one is kept for training.
    """
    if fraction <= 0:
        return np.arange(n), np.arange(0)
    n_val = min(max(1, int(round(n * fraction))), n - 1)
    perm = np.random.default_rng([int(seed), _SPLIT_STREAM]).permutation(n)
    return np.sort(perm[n_val:]), np.sort(perm[:n_val])


def stopping_rule_met(r2_val: list[float], tol: float, patience: int) -> bool:
    """True when max(last ``patience`` values) ≤ max(earlier values) + ``tol``."""
    if patience <= 0 or len(r2_val) <= patience or not all(map(math.isfinite, r2_val)):
        return False
    return max(r2_val[-patience:]) <= max(r2_val[:-patience]) + tol


def _check(a: np.ndarray, config) -> None:
    if a.ndim != 2 or a.shape[1] != config.d:
        raise ValueError(f"Embeddings of shape {a.shape} do not match SAEConfig.d={config.d}.")
    if not np.isfinite(a).all():
        raise ValueError("Embeddings contain NaN or inf; recompute them or drop those cells.")
    if a.shape[0] < 2:
        raise ValueError("Need at least 2 cells to train an SAE.")


def train_sae(embeddings: np.ndarray, config, *, device: str | None = None,
              progress: bool = True):
    """Train one Top-K SAE until the stopping rule holds or ``config.epochs`` (see module doc).

    Returns
    -------
    sae, history
        The trained model (eval mode, on CPU) and a history: per epoch ``epoch``, ``mse`` (train
        MSE per cell), ``aux`` (sum of AuxK losses), ``r2`` (train R², running over the epoch),
        ``r2_val`` (held-out R² after the epoch), ``dead`` (latents not fired for
        ``dead_after`` samples); once: ``converged``, ``stopped_epoch`` (epochs run), ``tol``,
        ``patience``, ``val_cells`` (held-out indices), ``n_train``, ``steps``,
        ``init_cosine`` (mean/median/min over atoms of the cosine of each decoder atom with its
        initialisation).

    Raises
    ------
    ValueError
        If the embedding dimension differs from ``config.d`` or the data contain NaN/inf, or
        there are fewer than 2 cells.
    """
    return train_sae_grid(embeddings, [config], device=device, progress=progress, workers=1)[0]


def train_sae_grid(embeddings: np.ndarray, configs: list, *, device: str | None = None,
                   progress: bool = False, workers: int | None = None) -> list:
    """Train several SAEs on the same embeddings, each exactly as :func:`train_sae` would.

    Members with the same seed share the held-out cells and the batch order. The data are put on
    the device once; members run side by side on ``workers`` threads (default: torch's thread
    count; a CPU member itself uses one thread), so the result of a member does not depend on
    the others or on ``workers``.

    Returns
    -------
    list of (TopKSAE, dict)
        In the order of ``configs``.
    """
    a = np.asarray(embeddings, dtype=np.float32)
    for config in configs:
        _check(a, config)
    dev = resolve_device(device)
    threads = torch.get_num_threads()
    workers = max(1, min(len(configs), int(workers or (threads if dev.type == "cpu" else 1))))
    x = torch.from_numpy(a).to(dev)
    try:
        if dev.type == "cpu":
            torch.set_num_threads(1)
        members = [_Member.start(x, config, dev) for config in configs]  # init draws in order
        run = lambda m: m.run(progress)  # noqa: E731
        if workers == 1:
            out = [run(m) for m in members]
        else:
            with ThreadPoolExecutor(workers) as pool:
                out = list(pool.map(run, members))
    finally:
        torch.set_num_threads(threads)
    return out


def _topk(z: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Row-wise Top-K of z (B, c), unsorted: the same set as ``torch.topk`` (up to ties).

    On a CPU, ``torch.topk`` is fast when c ≥ 64 k (partial sort) and 2-4x slower below that
    (our grid has c ≈ 62 k). There, the rows are cut into blocks of g ≈ √(c/k) columns: the k
    largest values lie in the k blocks with the largest maxima (a block holding one of them has
    a maximum at least as large, and at most k − 1 values exceed it), so the Top-K runs over
    c/g block maxima and k·g candidates instead of c values.
    """
    b, c = z.shape
    if z.device.type != "cpu" or 64 * k <= c or c < 4 * k:
        return torch.topk(z, k, dim=1, sorted=False)
    g = max(2, round(math.sqrt(c / k)))
    nb = -(-c // g)
    if nb * g != c:
        z = torch.nn.functional.pad(z, (0, nb * g - c), value=-math.inf)
    zb = z.view(b, g, nb)  # block j: columns j, j + nb, j + 2 nb, ... (a strided max is fast)
    _, blocks = torch.topk(zb.amax(1), k, dim=1, sorted=False)
    cand = torch.gather(zb, 2, blocks.unsqueeze(1).expand(b, g, k)).reshape(b, g * k)
    vals, j = torch.topk(cand, k, dim=1, sorted=False)
    cols = (blocks.unsqueeze(1) + nb * torch.arange(g, device=z.device).unsqueeze(1))
    return vals, cols.reshape(b, g * k).gather(1, j)


def _rows(table: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """table[idx] for a (c, d) table and (B, k) indices → (B, k, d) (index_select: fast)."""
    return table.index_select(0, idx.reshape(-1)).view(*idx.shape, table.shape[1])


def _wsum(w: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Σ_j w[b, j] · g[b, j] → (B, d)."""
    return torch.bmm(w.unsqueeze(1), g).squeeze(1)


def _scatter_outer(rows: torch.Tensor, w: torch.Tensor, v: torch.Tensor, c: int) -> torch.Tensor:
    """G (c, d) with G[i] = Σ_{(b, j): rows[b, j] = i} w[b, j] · v[b]."""
    if rows.device.type == "cpu":  # sequential index_add: deterministic, O(B k d)
        return torch.zeros(c, v.shape[1], dtype=v.dtype, device=v.device).index_add_(
            0, rows.reshape(-1), (w.unsqueeze(2) * v.unsqueeze(1)).reshape(-1, v.shape[1]))
    dense = torch.zeros(rows.shape[0], c, dtype=v.dtype, device=v.device).scatter_(1, rows, w)
    return dense.T @ v  # no atomics on CUDA


def _scatter_sum(rows: torch.Tensor, w: torch.Tensor, c: int) -> torch.Tensor:
    if rows.device.type == "cpu":
        return torch.zeros(c, dtype=w.dtype, device=w.device).index_add_(0, rows.reshape(-1),
                                                                         w.reshape(-1))
    return torch.zeros(rows.shape[0], c, dtype=w.dtype, device=w.device).scatter_(
        1, rows, w).sum(0)


@dataclass
class _Member:
    """One SAE in training: parameters as (c, d) row tables, optimiser, counters, history."""

    config: object
    sae: object
    x: torch.Tensor
    train: torch.Tensor
    val: torch.Tensor
    params: dict
    D0: torch.Tensor
    opt: object = None

    @classmethod
    def start(cls, x: torch.Tensor, config, dev: torch.device) -> "_Member":
        seed_everything(config.seed)
        sae = sae_mod.TopKSAE(config.d, config.c, config.k)  # first draws after the seed
        tr, va = validation_split(x.shape[0], config.val_fraction, config.seed)
        tr, va = torch.from_numpy(tr).to(dev), torch.from_numpy(va).to(dev)
        p = {"WT": sae.W_enc.detach().T.contiguous().to(dev),
             "b": sae.b_enc.detach().clone().to(dev),
             "DT": sae.D.detach().T.contiguous().to(dev),
             "bd": (x[tr].mean(0).clone() if config.decoder_bias
                    else torch.zeros(x.shape[1], dtype=x.dtype, device=x.device))}
        return cls(config, sae, x, tr, va, p, p["DT"].clone())

    # ------------------------------------------------------------------ one step
    def _step(self, batch: torch.Tensor, cand, since: torch.Tensor, acc: torch.Tensor):
        """One Adam step on ``batch``; gradients of the loss of :mod:`scconcepts.sae` by hand."""
        cf, p = self.config, self.params
        WT, b, DT, bd = p["WT"], p["b"], p["DT"], p["bd"]
        c, n = WT.shape[0], batch.shape[0]
        xc = batch - bd
        z = torch.addmm(b, xc, WT.T)
        vals, idx = _topk(z, cf.k)
        a, Dg = vals.clamp_min(0), _rows(DT, idx)
        err = batch - _wsum(a, Dg) - bd
        sse = err.square().sum()
        g_r = err * (-2.0 / n)  # d(Σ‖err‖² / n) / d recon
        hits = torch.zeros(c, device=z.device).index_add_(0, idx.reshape(-1),
                                                         (vals > 0).to(z.dtype).reshape(-1))
        since.copy_(torch.where(hits > 0, torch.zeros_like(since), since + n))
        gDT = _scatter_outer(idx, a, g_r, c)
        gv = torch.bmm(g_r.unsqueeze(1), Dg.transpose(1, 2)).squeeze(1) * (vals > 0)
        gb = _scatter_sum(idx, gv, c)
        gWT = _scatter_outer(idx, gv, xc, c)
        g_bd = g_r.sum(0) - gb @ WT
        if cand is not None:  # AuxK, dense over the latents that can be dead in this window
            dead = since[cand] > cf.dead_after
            u = z.index_select(1, cand).masked_fill_(~dead, 0).clamp_min_(0)
            cpu = z.device.type == "cpu"
            if cpu:  # columns without a positive value add nothing: drop them (reads are free)
                keep = torch.nonzero(u.amax(0) > 0).flatten()
                cand, u = cand[keep], u[:, keep]
            if cf.aux_k < cand.numel():  # keep the aux_k largest of each row ...
                rows = torch.arange(n, device=z.device)
                if cpu:  # ... where more than aux_k are > 0 (the others are 0 anyway)
                    rows = torch.nonzero((u > 0).sum(1) > cf.aux_k).flatten()
                if rows.numel():
                    av, j = _topk(u[rows], cf.aux_k)
                    u[rows] = torch.zeros_like(u[rows]).scatter_(1, j, av)
            Dc, Wc = DT.index_select(0, cand), WT.index_select(0, cand)
            resid = err - u @ Dc
            denom = (err - err.mean(0)).square().sum(1).mean().clamp_min(1e-8)
            acc[1] += resid.square().sum(1).mean() / denom * dead.any()  # 0 while none is dead
            # loss = mse + aux_coef · aux · mse (mse and err detached in the auxiliary term)
            g_h = resid * (-2.0 * cf.aux_coef * (sse / n) / (denom * n))
            gu = (g_h @ Dc.T) * (u > 0)
            gbc = gu.sum(0)
            gDT.index_add_(0, cand, u.T @ g_h)
            gb.index_add_(0, cand, gbc)
            gWT.index_add_(0, cand, gu.T @ xc)
            g_bd -= gbc @ Wc
        if not cf.decoder_bias:  # the paper's decoder: b_dec stays 0 (Adam moves nothing)
            g_bd = torch.zeros_like(g_bd)
        gDT -= (gDT * DT).sum(1, keepdim=True) * DT  # keep unit-norm atoms: no radial gradient
        for name, g in (("WT", gWT), ("b", gb), ("DT", gDT), ("bd", g_bd)):
            p[name].grad = g
        self.opt.step()
        DT.div_(DT.norm(dim=1, keepdim=True).clamp_min(1e-8))
        acc[0] += sse

    # ------------------------------------------------------------------ evaluation
    @torch.no_grad()
    def _sse(self, rows: torch.Tensor, chunk: int = 8192) -> torch.Tensor:
        p, out = self.params, torch.zeros((), dtype=torch.float64, device=self.x.device)
        for s in range(0, rows.shape[0], chunk):
            xb = self.x[rows[s:s + chunk]]
            z = torch.addmm(p["b"], xb - p["bd"], p["WT"].T)
            vals, idx = _topk(z, self.config.k)
            out += (xb - _wsum(vals.clamp_min(0), _rows(p["DT"], idx)) - p["bd"]).square().sum()
        return out

    def _sst(self, rows: torch.Tensor) -> float:
        xr = self.x[rows].double()
        return float((xr - xr.mean(0)).square().sum()) if rows.numel() else float("nan")

    # ------------------------------------------------------------------ epochs
    @torch.no_grad()
    def run(self, progress: bool = False):
        from tqdm import tqdm

        cf, p, dev = self.config, self.params, self.x.device
        self.opt = torch.optim.Adam(list(p.values()), lr=cf.lr, eps=6.25e-10)
        gen = torch.Generator(device="cpu").manual_seed(cf.seed)
        n, c, bs = self.train.shape[0], cf.c, cf.batch_size
        since = torch.zeros(c, dtype=torch.long, device=dev)
        sst, sst_val = self._sst(self.train), self._sst(self.val)
        h = {key: [] for key in ("epoch", "mse", "aux", "r2", "r2_val", "dead")}
        # steps between two reads of the counters (a read costs nothing on a CPU)
        window = max(1, cf.dead_after // (2 * bs)) if dev.type != "cpu" else 1
        use_aux = cf.aux_k > 0 and cf.aux_coef > 0
        converged, steps, cand, left = False, 0, None, 0
        bar = tqdm(range(cf.epochs), desc=f"SAE c={c} k={cf.k}", disable=not progress)
        for epoch in bar:
            order = self.train[torch.randperm(n, generator=gen).to(dev)]
            acc = torch.zeros(2, dtype=torch.float64, device=dev)
            for s in range(0, n, bs):
                if use_aux and left == 0:  # latents that can be dead within the next window
                    left = window
                    cand = torch.nonzero(since + window * bs > cf.dead_after).flatten()
                    cand = cand if cand.numel() else None
                self._step(self.x[order[s:s + bs]], cand, since, acc)
                left, steps = max(left - 1, 0), steps + 1
            sse, aux = acc.tolist()
            r2_val = 1 - float(self._sse(self.val)) / sst_val if self.val.numel() else math.nan
            for key, v in zip(h, (epoch, sse / n, aux, 1 - sse / sst, r2_val,
                                  int((since > cf.dead_after).sum()))):
                h[key].append(v)
            bar.set_postfix(r2=f"{h['r2'][-1]:.4f}", r2_val=f"{r2_val:.4f}", dead=h["dead"][-1])
            if stopping_rule_met(h["r2_val"], cf.tol, cf.patience):
                converged = True
                break
        return self._finish(h, converged, steps)

    def _finish(self, h: dict, converged: bool, steps: int):
        p, sae = self.params, self.sae
        cos = (p["DT"] * self.D0).sum(1).cpu().double().numpy()  # unit rows: the cosine
        with torch.no_grad():
            sae.W_enc.copy_(p["WT"].T.cpu())
            sae.b_enc.copy_(p["b"].cpu())
            sae.D.copy_(p["DT"].T.cpu())
            sae.b_dec.copy_(p["bd"].cpu())
        h.update(converged=bool(converged), stopped_epoch=len(h["epoch"]),
                 tol=float(self.config.tol), patience=int(self.config.patience),
                 val_cells=self.val.cpu().tolist(), n_train=int(self.train.shape[0]),
                 steps=int(steps), init_cosine={"mean": float(cos.mean()),
                                                "median": float(np.median(cos)),
                                                "min": float(cos.min())})
        return sae.cpu().eval(), h
