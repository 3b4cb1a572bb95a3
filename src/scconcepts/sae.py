"""Top-K sparse autoencoders (Sec 2 and 4.2; Gao et al. 2024, "Scaling and evaluating sparse
autoencoders").

Given cell embeddings A (n_cells, d) produced by a model f, the SAE learns a dictionary
D (d, c) of c concepts and an encoder ψ:

    U = ψ(A) = ReLU(TopK((A - b_dec) W + b))      codes / concept activations, (n, c)
    A' = U Dᵀ + b_dec                             reconstruction, (n, d)

* decoder columns (the concept vectors, "atoms") are kept at unit L2 norm after every step
  (Gao et al. 2024, Sec 2.3), so a code value is the concept's magnitude in embedding units;
* inputs are centred by the pre-encoder bias ``b_dec``, initialised to the data mean;
* the AuxK loss (Gao et al. 2024, App. A.2) reconstructs the residual with the ``aux_k`` most
  active *dead* latents (not fired for ``dead_after`` training samples), which revives them;
* a concept "activates" in a cell when its code is > 0.

Reconstruction quality is reported as R² = 1 − SSE / SST with SST the sum of squared deviations
from the per-dimension mean of A (the variance-weighted R² of scikit-learn's ``r2_score`` with
``multioutput="variance_weighted"``).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn
from tqdm import tqdm

from .utils import atomic_write, resolve_device, seed_everything

__all__ = ["SAEConfig", "TopKSAE", "train_sae", "encode", "reconstruct", "sae_metrics",
           "save_sae", "load_sae", "r2_score"]


@dataclass
class SAEConfig:
    """Hyper-parameters of a Top-K SAE (Appendix B, Table 3)."""

    d: int
    c: int
    k: int
    aux_k: int = 512
    aux_coef: float = 1 / 32
    dead_after: int = 100_000  # training samples without firing before a latent counts as dead
    lr: float = 1e-4
    epochs: int = 100
    batch_size: int = 1024
    seed: int = 0


class TopKSAE(nn.Module):
    """Top-K SAE module; see the module docstring for equations.

    Parameters
    ----------
    d, c, k
        Embedding dimension, number of concepts, active concepts per cell (k ≤ c).
    """

    def __init__(self, d: int, c: int, k: int):
        super().__init__()
        if not 0 < k <= c:
            raise ValueError(f"Top-K SAE needs 0 < k <= c, got k={k}, c={c}.")
        self.d, self.c, self.k = d, c, k
        self.b_dec = nn.Parameter(torch.zeros(d))
        self.W_enc = nn.Parameter(torch.empty(d, c))
        self.b_enc = nn.Parameter(torch.zeros(c))
        self.D = nn.Parameter(torch.empty(d, c))  # decoder: columns are concept vectors
        nn.init.kaiming_uniform_(self.D, a=math.sqrt(5))
        self.normalize_decoder()
        with torch.no_grad():  # tied initialisation (Gao et al. 2024, Sec 2.4)
            self.W_enc.copy_(self.D)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        self.D.div_(self.D.norm(dim=0, keepdim=True).clamp_min(1e-8))

    def pre_activation(self, a: torch.Tensor) -> torch.Tensor:
        """(A − b_dec) W + b, shape (n, c)."""
        return (a - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, a: torch.Tensor) -> torch.Tensor:
        """Codes U = ReLU(TopK(pre-activation)), shape (n, c), exactly ≤ k non-zeros per row."""
        z = self.pre_activation(a)
        vals, idx = torch.topk(z, self.k, dim=-1)
        return torch.zeros_like(z).scatter_(-1, idx, torch.relu(vals))

    def decode(self, u: torch.Tensor) -> torch.Tensor:
        """A' = U Dᵀ + b_dec, shape (n, d)."""
        return u @ self.D.T + self.b_dec

    def forward(self, a: torch.Tensor):
        u = self.encode(a)
        return u, self.decode(u)


def r2_score(a: np.ndarray, a_hat: np.ndarray) -> float:
    """R² = 1 − Σ‖a − â‖² / Σ‖a − ā‖², ā the per-dimension mean of ``a`` (shape (n, d))."""
    a = np.asarray(a, dtype=np.float64)
    a_hat = np.asarray(a_hat, dtype=np.float64)
    sst = ((a - a.mean(0)) ** 2).sum()
    return float(1.0 - ((a - a_hat) ** 2).sum() / sst)


def _remove_parallel_grad(sae: TopKSAE) -> None:
    # Keep unit-norm decoder columns: project out the gradient component parallel to each column.
    if sae.D.grad is None:
        return
    d = sae.D.data
    sae.D.grad -= (sae.D.grad * d).sum(0, keepdim=True) * d


def train_sae(
    embeddings: np.ndarray,
    config: SAEConfig,
    *,
    device: str | None = None,
    progress: bool = True,
) -> tuple[TopKSAE, dict]:
    """Train a Top-K SAE on cell embeddings.

    Parameters
    ----------
    embeddings
        A, shape (n_cells, d), float (model embedding units, e.g. ``obsm["X_scvi"]``).
    config
        :class:`SAEConfig`; ``config.d`` must equal ``embeddings.shape[1]``.
    device
        ``"cpu"``, ``"cuda"``, or ``None`` to pick CUDA when available.
    progress
        Show a tqdm bar over epochs.

    Returns
    -------
    sae, history
        The trained model (eval mode, on CPU) and ``{"epoch", "mse", "aux", "r2", "dead"}`` lists.

    Raises
    ------
    ValueError
        If the embedding dimension differs from ``config.d``, the data contain NaN, or there are
        fewer cells than ``config.k``.
    """
    a = np.asarray(embeddings, dtype=np.float32)
    if a.ndim != 2 or a.shape[1] != config.d:
        raise ValueError(f"Embeddings of shape {a.shape} do not match SAEConfig.d={config.d}.")
    if not np.isfinite(a).all():
        raise ValueError("Embeddings contain NaN or inf; recompute them or drop those cells.")
    if a.shape[0] < 2:
        raise ValueError("Need at least 2 cells to train an SAE.")
    seed_everything(config.seed)
    dev = resolve_device(device)
    threads = torch.get_num_threads()
    if dev.type == "cpu":
        # SAE matrices are small (d ≤ 512): one thread is as fast as two here, and immune to the
        # 10-20x OpenMP slow-down seen when other processes compete for the cores.
        torch.set_num_threads(1)
    try:
        sae, hist = _train_loop(a, config, dev, progress)
    finally:
        torch.set_num_threads(threads)
    return sae, hist


def _train_loop(a: np.ndarray, config: SAEConfig, dev: torch.device, progress: bool):
    x = torch.from_numpy(a).to(dev)
    sae = TopKSAE(config.d, config.c, config.k).to(dev)
    with torch.no_grad():
        sae.b_dec.copy_(x.mean(0))
    opt = torch.optim.Adam(sae.parameters(), lr=config.lr, eps=6.25e-10)
    gen = torch.Generator(device="cpu").manual_seed(config.seed)
    n = x.shape[0]
    since_fired = torch.zeros(config.c, dtype=torch.long, device=dev)
    sst = ((x - x.mean(0)) ** 2).sum().item()
    hist = {"epoch": [], "mse": [], "aux": [], "r2": [], "dead": []}
    bar = tqdm(range(config.epochs), desc=f"SAE c={config.c} k={config.k}", disable=not progress)
    for epoch in bar:
        perm = torch.randperm(n, generator=gen).to(dev)
        sse = aux_tot = 0.0
        for start in range(0, n, config.batch_size):
            batch = x[perm[start:start + config.batch_size]]
            z = sae.pre_activation(batch)
            vals, idx = torch.topk(z, config.k, dim=-1)
            u = torch.zeros_like(z).scatter_(-1, idx, torch.relu(vals))
            recon = sae.decode(u)
            err = batch - recon
            loss_mse = (err ** 2).sum(-1).mean()
            fired = (u > 0).any(0)
            since_fired += batch.shape[0]
            since_fired[fired] = 0
            dead = since_fired > config.dead_after
            loss_aux = torch.zeros((), device=dev)
            n_dead = int(dead.sum())
            if n_dead > 0 and config.aux_k > 0:
                k_aux = min(config.aux_k, n_dead)
                z_dead = z.masked_fill(~dead, -float("inf"))
                av, ai = torch.topk(z_dead, k_aux, dim=-1)
                u_aux = torch.zeros_like(z).scatter_(-1, ai, torch.relu(av))
                e_hat = u_aux @ sae.D.T
                # Normalised AuxK loss, as in Gao et al. (2024) App. A.2.
                loss_aux = ((err.detach() - e_hat) ** 2).sum(-1).mean() / (
                    (err.detach() - err.detach().mean(0)) ** 2).sum(-1).mean().clamp_min(1e-8)
            loss = loss_mse + config.aux_coef * loss_aux * loss_mse.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            _remove_parallel_grad(sae)
            opt.step()
            sae.normalize_decoder()
            sse += (err.detach() ** 2).sum().item()
            aux_tot += float(loss_aux)
        n_dead_epoch = int((since_fired > config.dead_after).sum())
        hist["epoch"].append(epoch)
        hist["mse"].append(sse / n)
        hist["aux"].append(aux_tot)
        hist["r2"].append(1 - sse / sst)
        hist["dead"].append(n_dead_epoch)
        bar.set_postfix(r2=f"{1 - sse / sst:.4f}", dead=n_dead_epoch)
    sae = sae.cpu().eval()
    return sae, hist


@torch.no_grad()
def encode(sae: TopKSAE, embeddings: np.ndarray, batch_size: int = 8192) -> sp.csr_matrix:
    """Concept activations U = ψ(A) as a sparse matrix.

    Parameters
    ----------
    embeddings
        A, shape (n_cells, d).

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape (n_cells, c), float32 activations (≥ 0, at most k non-zeros per row).
    """
    a = np.asarray(embeddings, dtype=np.float32)
    if a.shape[1] != sae.d:
        raise ValueError(f"Embeddings have d={a.shape[1]} but the SAE expects d={sae.d}.")
    blocks = []
    for s in range(0, a.shape[0], batch_size):
        u = sae.encode(torch.from_numpy(a[s:s + batch_size])).numpy()
        blocks.append(sp.csr_matrix(u))
    return sp.vstack(blocks).tocsr()


@torch.no_grad()
def reconstruct(sae: TopKSAE, embeddings: np.ndarray) -> np.ndarray:
    """A' = ψ decoder(ψ(A)), shape (n_cells, d)."""
    a = torch.from_numpy(np.asarray(embeddings, dtype=np.float32))
    return sae.decode(sae.encode(a)).numpy()


def sae_metrics(sae: TopKSAE, embeddings: np.ndarray) -> dict:
    """Reconstruction and sparsity metrics on ``embeddings`` (n_cells, d).

    Returns
    -------
    dict
        ``r2`` (variance-weighted, see module docstring), ``active_concepts`` (concepts with a
        code > 0 in at least one cell), ``dead_concepts`` (c − active), ``l0`` (mean non-zeros
        per cell), ``sparsity`` (1 − l0 / c, as in Tables 4/5).
    """
    codes = encode(sae, embeddings)
    rec = sae.decode(torch.from_numpy(codes.toarray())).detach().numpy()
    active = int((codes.getnnz(axis=0) > 0).sum())
    l0 = float(codes.getnnz(axis=1).mean())
    return {
        "r2": r2_score(embeddings, rec),
        "active_concepts": active,
        "dead_concepts": sae.c - active,
        "l0": l0,
        "sparsity": 1 - l0 / sae.c,
    }


def save_sae(sae: TopKSAE, path: str | Path, config: SAEConfig | None = None,
             extra: dict | None = None) -> None:
    """Save weights and config atomically to ``path`` (a ``.pt`` file)."""
    payload = {
        "state_dict": sae.state_dict(),
        "shape": {"d": sae.d, "c": sae.c, "k": sae.k},
        "config": asdict(config) if config is not None else None,
        "extra": extra or {},
    }
    atomic_write(path, lambda tmp: torch.save(payload, tmp))


def load_sae(path: str | Path) -> tuple[TopKSAE, dict]:
    """Load an SAE saved by :func:`save_sae`.

    Raises
    ------
    ValueError
        If the file is not an scconcepts SAE checkpoint or is corrupt.
    """
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
        sae = TopKSAE(**payload["shape"])
        sae.load_state_dict(payload["state_dict"])
    except Exception as exc:
        raise ValueError(
            f"{path} is not a readable scconcepts SAE checkpoint ({type(exc).__name__}: {exc}); "
            "delete it so that the workflow retrains it."
        ) from exc
    return sae.eval(), {"config": payload.get("config"), **payload.get("extra", {})}


def config_json(config: SAEConfig) -> str:
    return json.dumps(asdict(config), sort_keys=True)
