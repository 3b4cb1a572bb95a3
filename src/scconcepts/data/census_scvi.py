"""The paper's pretrained models from the cache: the Census scVI as a query model
(``prepare_query_anndata`` + ``load_query_data``, as in the Census tutorial "scVI for cell type
prediction and data projection"), its chunk encoder, and the scGPT whole-human checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import DataValidationError, validate_counts
from .cache import SCGPT_HELP, PaperInputsMissing

__all__ = ["load_census_scvi", "census_scvi_encoder", "load_scgpt_whole_human"]


# --------------------------------------------------------------------------------------------
# Census scVI


def _check_ensembl(adata: ad.AnnData, column: str, ref: Sequence[str], min_overlap: float) -> None:
    ids = set(adata.var[column].astype(str)) if column in adata.var else set()
    n = sum(g in ids for g in ref)
    if n < min_overlap * len(ref):
        example = list(adata.var[column][:3]) if column in adata.var else list(adata.var_names[:3])
        raise DataValidationError(
            f"Only {n}/{len(ref)} Census scVI genes found in var[{column!r}] (e.g. {example}). "
            f"The Census model is indexed by Ensembl ids like {list(ref[:3])}: keep the Census "
            "column feature_id (a Census/Discover download has it) or map symbols to Ensembl "
            "with scconcepts.data.load_gene_info()['ensembl_ids'].")


def load_census_scvi(adata: ad.AnnData, model_dir: str | os.PathLike, *,
                     gene_column: str = "feature_id", n_cells: int = 1000,
                     min_overlap: float = 0.2):
    """Census scVI as a query model: ``prepare_query_anndata`` + ``load_query_data``.

    Parameters
    ----------
    adata
        Raw counts (project schema: symbols as ``var_names``, Ensembl ids in
        ``var[gene_column]``). May be backed: only the first ``n_cells`` cells are read.
    model_dir
        Folder with the Census ``model.pt``
        (:func:`~scconcepts.data.download.download_scvi_model`).
    n_cells
        Cells used to build the query model. The encoder is batch-free
        (``encode_covariates=False``) and not retrained, so its weights do not depend on them;
        embed every cell afterwards with :func:`census_scvi_encoder` in chunks.

    Returns
    -------
    (scvi.model.SCVI, dict)
        The query model (``is_trained=True``; ``obs["batch"] = "unassigned"``) and the gene
        report ``{"n_reference", "n_found", "missing"}`` (Ensembl ids).

    Raises
    ------
    FileNotFoundError
        If ``model_dir/model.pt`` is absent.
    scconcepts.data.DataValidationError
        If the counts are not raw integers, or too few model genes are found in
        ``var[gene_column]`` (e.g. symbols where Ensembl ids are needed).
    """
    from ..models import scvi as ms

    model_dir = Path(model_dir)
    if not (model_dir / "model.pt").exists():
        raise FileNotFoundError(
            f"No Census scVI model at {model_dir}/model.pt: run `python -m scconcepts.data.census "
            "download --profile paper --what scvi_model`.")
    ref = ms.reference_genes(model_dir)
    sub = adata[: min(n_cells, adata.n_obs)]
    sub = sub.to_memory() if adata.isbacked else sub.copy()
    validate_counts(sub)
    _check_ensembl(sub, gene_column, ref, min_overlap)
    q = ad.AnnData(X=sp.csr_matrix(sub.X, dtype=np.float32), obs=sub.obs[[]].copy(),
                   var=pd.DataFrame(index=pd.Index(sub.var[gene_column].astype(str))))
    q.var_names_make_unique()
    aligned, report = ms.prepare_query(q, model_dir, min_overlap=min_overlap)
    return ms.load_query(aligned, model_dir), report


def census_scvi_encoder(model, model_dir: str | os.PathLike, *, device=None, amp: bool = False,
                        gene_column: str = "feature_id"):
    """Chunk encoder (:func:`scconcepts.scale.scvi_chunk_encoder`) for the Census scVI: cells
    are matched to the model's Ensembl ids through ``var[gene_column]``."""
    from ..models import scvi as ms
    from ..scale import scvi_chunk_encoder

    return scvi_chunk_encoder(model, ms.reference_genes(model_dir), gene_column=gene_column,
                              device=device, amp=amp)


# --------------------------------------------------------------------------------------------
# scGPT whole-human


def load_scgpt_whole_human(folder: str | os.PathLike, device=None):
    """The scGPT whole-human checkpoint through :func:`scconcepts.models.scgpt.load_checkpoint`
    (strict), with the download instructions when the folder is absent.

    Returns
    -------
    (model, vocab, args)
        As :func:`scconcepts.models.scgpt.load_checkpoint`.
    """
    from ..models import scgpt as ms

    folder = Path(folder)
    if not all((folder / f).is_file() for f in ms.REQUIRED_FILES):
        raise PaperInputsMissing(f"scGPT whole-human checkpoint missing: {SCGPT_HELP} {folder}/")
    return ms.load_checkpoint(folder, device=device)
