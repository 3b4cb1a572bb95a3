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

Training (:func:`train_sae`, :func:`train_sae_grid`; implemented in :mod:`scconcepts.sae_train`)
holds out a seeded ``val_fraction`` of the cells and stops when their R² has not improved by more
than ``tol`` for ``patience`` epochs (``epochs`` is the cap); :func:`split_metrics` reports R²
on the training cells (``r2``) and on the held-out ones (``r2_val``) apart.
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

from .utils import atomic_write

__all__ = ["SAEConfig", "TopKSAE", "train_sae", "train_sae_grid", "encode", "reconstruct",
           "sae_metrics", "cell_split", "split_metrics", "sae_row", "save_sae", "load_sae",
           "r2_score"]


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
    epochs: int = 100  # cap: training stops earlier once the held-out R² is flat
    batch_size: int = 1024
    seed: int = 0
    val_fraction: float = 0.1  # seeded share of the cells held out for the stopping rule
    tol: float = 1e-4  # held-out R² gain (absolute) that still counts as an improvement
    patience: int = 10  # epochs without such a gain before training stops
    decoder_bias: bool = True  # False: A' = U Dᵀ, the paper's decoder (b_dec fixed at 0)


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


def train_sae(embeddings: np.ndarray, config: SAEConfig, *, device: str | None = None,
              progress: bool = True) -> tuple[TopKSAE, dict]:
    """Train a Top-K SAE on cell embeddings A (n_cells, d) until its held-out R² stops improving
    (at most ``config.epochs`` epochs); see :func:`scconcepts.sae_train.train_sae`."""
    from .sae_train import train_sae as _train

    return _train(embeddings, config, device=device, progress=progress)


def train_sae_grid(embeddings: np.ndarray, configs: list[SAEConfig], *,
                   device: str | None = None, progress: bool = False,
                   workers: int | None = None) -> list[tuple[TopKSAE, dict]]:
    """Several SAEs on the same embeddings, each as :func:`train_sae` trains it;
    see :func:`scconcepts.sae_train.train_sae_grid`."""
    from .sae_train import train_sae_grid as _grid

    return _grid(embeddings, configs, device=device, progress=progress, workers=workers)


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


def cell_split(history: dict, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(training, held-out) cell indices of an SAE from its :func:`train_sae` history."""
    val = np.asarray(history.get("val_cells", []), dtype=np.int64)
    return np.setdiff1d(np.arange(n), val), val


def split_metrics(sae: TopKSAE, embeddings: np.ndarray, history: dict) -> dict:
    """:func:`sae_metrics` of an SAE trained by :func:`train_sae`, with R² split by cells.

    Returns
    -------
    dict
        ``r2`` (in-sample: the cells it was trained on), ``r2_val`` (the ``history["val_cells"]``
        held out by the stopping rule, never trained on; NaN when none), ``r2_all`` (every
        cell), ``n_val``; ``active_concepts``, ``dead_concepts``, ``l0``, ``sparsity`` over
        every cell; and from the history ``epochs_run``, ``converged``, ``init_cosine`` (mean
        cosine of the decoder atoms with their initialisation).
    """
    a = np.asarray(embeddings, dtype=np.float32)
    train, val = cell_split(history, a.shape[0])
    m = sae_metrics(sae, a)
    rec = reconstruct(sae, a)
    return {**m, "r2": r2_score(a[train], rec[train]), "r2_all": m["r2"],
            "r2_val": r2_score(a[val], rec[val]) if val.size > 1 else float("nan"),
            "n_val": int(val.size), "epochs_run": int(history.get("stopped_epoch", 0)),
            "converged": bool(history.get("converged", False)),
            "init_cosine": float(history.get("init_cosine", {}).get("mean", float("nan")))}


def sae_row(meta: dict) -> dict:
    """One row of the Table 3 analogue from the metadata of a cached SAE
    (:meth:`scconcepts.workflow.Workflow.sae`): settings, the stopping rule, R² (training and
    held-out cells), activity, and the cosine of the atoms to their initialisation (mean,
    median, min over all atoms)."""
    cf, m = meta["config"], meta["metrics"]
    cos = meta.get("history", {}).get("init_cosine", {})
    return {"c": cf["c"], "k": cf["k"], "lr": cf["lr"], "max_epochs": cf["epochs"],
            "epochs": m["epochs_run"], "converged": m["converged"], "r2": m["r2"],
            "r2_val": m["r2_val"], "active_concepts": m["active_concepts"],
            "dead_concepts": m["dead_concepts"], "l0": m["l0"], "sparsity": m["sparsity"],
            "init_cosine": m["init_cosine"],
            "init_cosine_median": cos.get("median", float("nan")),
            "init_cosine_min": cos.get("min", float("nan"))}


def save_sae(sae: TopKSAE, path: str | Path, config: SAEConfig | None = None,
             extra: dict | None = None) -> None:
    """Save weights and config atomically to ``path`` (a ``.pt`` file)."""
    payload = {
        "state_dict": sae.state_dict(),
        "shape": {"d": sae.d, "c": sae.c, "k": sae.k},
        "config": asdict(config) if config is not None else None,
        "extra": extra or {},
    }

    def write(tmp: str) -> None:
        # through a file object: torch names the archive's folder "archive", not after the
        # (random) temporary file, so equal SAEs give byte-identical files
        with open(tmp, "wb") as fh:
            torch.save(payload, fh)

    atomic_write(path, write)


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
