"""scVI (Lopez et al. 2018) through scvi-tools: the reference model, query mapping, and the
encoder f used by attribution.

The default profile cannot download the CELLxGENE Census scVI model, so we train one on the main
dataset with the Census recipe (``n_layers=2``, ``n_latent=50``, ``gene_likelihood="nb"``,
``encode_covariates=False``, batch = donor) and apply it to other datasets exactly as a user
applies the Census model: ``SCVI.prepare_query_anndata`` (zero-fills genes missing from the query
and reorders them) then ``SCVI.load_query_data`` with the query batch ``"unassigned"``. Because
covariates are not encoded, the latent mean does not depend on the batch, so no query training is
needed (the Census tutorial does the same).

Embeddings are the posterior means E[q(z|x)], shape (n_cells, 50), stored in
``obsm["X_scvi"]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from ..utils import seed_everything

__all__ = ["train_reference", "load_reference", "embed", "prepare_query", "encoder_fn",
           "QUERY_BATCH"]

QUERY_BATCH = "unassigned"


def _scvi():
    import logging

    import scvi  # heavy import (lightning); deferred so `import scconcepts` stays light

    # scvi-tools logs every load ("File ... already downloaded") at INFO to stdout
    scvi.settings.verbosity = logging.WARNING
    return scvi


def train_reference(
    adata: ad.AnnData,
    save_dir: str | os.PathLike,
    *,
    batch_key: str = "donor_id",
    n_latent: int = 50,
    n_layers: int = 2,
    n_hidden: int = 128,
    max_epochs: int = 100,
    seed: int = 0,
    accelerator: str = "auto",
    overwrite: bool = False,
):
    """Train the reference scVI on raw counts and save it (cached: reloads when present).

    Parameters
    ----------
    adata
        Raw integer counts in ``X`` (n_cells, n_genes), gene symbols as ``var_names``, batch
        column ``obs[batch_key]`` (the donor in the Census recipe).
    save_dir
        Folder for ``model.pt`` (written atomically: trained to a temporary folder, then renamed).
    max_epochs
        Training epochs (scvi-tools' heuristic is min(400, 20000/n·400)).
    seed
        ``scvi.settings.seed``; same seed, same weights on the same device.

    Returns
    -------
    scvi.model.SCVI

    Raises
    ------
    KeyError
        If ``batch_key`` is not an ``obs`` column.
    """
    scvi = _scvi()
    save_dir = Path(save_dir)
    if (save_dir / "model.pt").exists() and not overwrite:
        return load_reference(save_dir, adata, batch_key=batch_key)
    if batch_key not in adata.obs:
        raise KeyError(f"batch_key {batch_key!r} not in obs ({list(adata.obs.columns)}).")
    scvi.settings.seed = seed
    seed_everything(seed)
    adata = adata.copy()
    adata.obs["batch"] = adata.obs[batch_key].astype(str)
    scvi.model.SCVI.setup_anndata(adata, batch_key="batch")
    model = scvi.model.SCVI(adata, n_layers=n_layers, n_latent=n_latent, n_hidden=n_hidden,
                            gene_likelihood="nb", encode_covariates=False)
    model.train(max_epochs=max_epochs, accelerator=accelerator, devices=1,
                enable_progress_bar=True, logger=False, enable_checkpointing=False)
    save_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=save_dir.parent, prefix=f".{save_dir.name}."))
    try:
        model.save(str(tmp), overwrite=True, save_anndata=False)
        if save_dir.exists():
            shutil.rmtree(save_dir)
        os.replace(tmp, save_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return model


def load_reference(save_dir: str | os.PathLike, adata: ad.AnnData | None = None,
                   batch_key: str = "donor_id"):
    """Load a saved reference scVI (``model.pt`` folder), optionally with its training data.

    Parameters
    ----------
    adata
        The reference dataset (raw counts); ``obs[batch_key]`` becomes the scVI batch.

    Raises
    ------
    FileNotFoundError
        If ``save_dir/model.pt`` is absent.
    ValueError
        If the checkpoint cannot be read (corrupt or from another model class).
    """
    scvi = _scvi()
    save_dir = Path(save_dir)
    if not (save_dir / "model.pt").exists():
        raise FileNotFoundError(f"No scVI model at {save_dir}/model.pt; train it first "
                                "(scconcepts.models.scvi.train_reference).")
    try:
        if adata is not None:
            adata = adata.copy()
            adata.obs["batch"] = adata.obs[batch_key].astype(str)
        return scvi.model.SCVI.load(str(save_dir), adata=adata, accelerator="cpu")
    except Exception as exc:
        raise ValueError(f"Could not load the scVI checkpoint at {save_dir} "
                         f"({type(exc).__name__}: {exc}); delete the folder to retrain.") from exc


def reference_genes(save_dir: str | os.PathLike) -> list[str]:
    """Gene symbols the reference model encodes, in its input order."""
    return list(_scvi().model.SCVI.prepare_query_anndata(
        ad.AnnData(np.zeros((1, 1), np.float32)), str(save_dir), return_reference_var_names=True))


def prepare_query(adata: ad.AnnData, save_dir: str | os.PathLike, min_overlap: float = 0.2
                  ) -> tuple[ad.AnnData, dict]:
    """Align a query dataset to the reference genes (``SCVI.prepare_query_anndata``).

    Parameters
    ----------
    adata
        Query with raw counts in ``X`` and gene symbols as ``var_names``.
    min_overlap
        Minimum fraction of reference genes present in the query.

    Returns
    -------
    (AnnData, dict)
        The aligned copy (n_cells, n_reference_genes; missing genes zero-filled) with
        ``obs["batch"] = "unassigned"``, and ``{"n_reference", "n_found", "missing"}``.

    Raises
    ------
    ValueError
        If fewer than ``min_overlap`` of the reference genes are found (wrong gene ids?).
    """
    ref = reference_genes(save_dir)
    found = [g for g in ref if g in set(adata.var_names)]
    report = {"n_reference": len(ref), "n_found": len(found),
              "missing": [g for g in ref if g not in set(adata.var_names)]}
    if len(found) < min_overlap * len(ref):
        raise ValueError(
            f"Only {len(found)}/{len(ref)} reference genes found in the query var_names (e.g. "
            f"{list(adata.var_names[:3])}). The model expects gene symbols like {ref[:3]}: map "
            "your gene ids to symbols first.")
    q = adata.copy()
    _scvi().model.SCVI.prepare_query_anndata(q, str(save_dir))
    q.X = sp.csr_matrix(q.X, dtype=np.float32)
    q.obs["batch"] = QUERY_BATCH
    return q, report


def load_query(adata_aligned: ad.AnnData, save_dir: str | os.PathLike):
    """``SCVI.load_query_data`` on an aligned query, marked trained (encoder is batch-free)."""
    scvi = _scvi()
    model = scvi.model.SCVI.load_query_data(adata_aligned, str(save_dir))
    model.is_trained = True
    return model


def embed(model, adata: ad.AnnData | None = None, batch_size: int = 1024) -> np.ndarray:
    """Posterior-mean embeddings, shape (n_cells, n_latent), float32."""
    z = model.get_latent_representation(adata=adata, give_mean=True, batch_size=batch_size)
    return np.asarray(z, dtype=np.float32)


def encoder_fn(model):
    """f for attribution: raw counts tensor (n, n_genes) → posterior mean (n, n_latent).

    The module runs in eval mode on CPU. The batch index is irrelevant
    (``encode_covariates=False``) and set to 0.
    """
    module = model.module.cpu().eval()

    @torch.no_grad()
    def f(x: torch.Tensor) -> torch.Tensor:
        batch_index = torch.zeros((x.shape[0], 1), dtype=torch.long, device=x.device)
        return module.inference(x=x, batch_index=batch_index)["qz"].loc

    return f


def describe(model, paper_census: bool = True):
    """Table 2 analogue for a trained scVI, next to the paper's Census scVI column.

    Returns
    -------
    DataFrame
        Rows: architecture, encoder / total parameters, genes, preprocessing, embedding.
    """
    import pandas as pd

    module = model.module
    n_enc = sum(p.numel() for p in module.z_encoder.parameters())
    n_all = sum(p.numel() for p in module.parameters())
    ours = {
        "Model architecture": "VAE (scvi-tools SCVI)",
        "Encoder parameters (total)": f"{n_enc / 1e6:.2f}M ({n_all / 1e6:.2f}M)",
        "Genes in vocabulary": f"{module.n_input:,}",
        "Gene expression preprocessing": "raw counts; log1p inside the encoder",
        "Sequence length": f"{module.n_input:,} genes (all genes of the main dataset)",
        "Cell embedding strategy": "posterior mean of q(z|x)",
        "Cell embedding size": str(module.n_latent),
        "Training data": f"{model.adata.n_obs:,} cells" if model.adata is not None else "",
    }
    paper = {
        "Model architecture": "VAE",
        "Encoder parameters (total)": "2M (8M)",
        "Genes in vocabulary": "8 000",
        "Gene expression preprocessing": "sum norm + log1p",
        "Sequence length": "8000 HVG",
        "Cell embedding strategy": "Latent embedding",
        "Cell embedding size": "50",
        "Training data": "CELLxGENE Census (millions of cells)",
    }
    return pd.DataFrame({"scVI (this book)": ours, "scVI Census (paper, Table 2)": paper})
