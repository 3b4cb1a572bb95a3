"""Synthetic data in the CELLxGENE Census schema, written chunk by chunk: the fixtures of the
paper-profile tests and the data of the scale benchmark (``benchmarks/scale_100k.py``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..utils import atomic_write

__all__ = ["make_census_like_h5ad"]


def _census_var(genes: Sequence[str], ensembl: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame({"soma_joinid": np.arange(len(genes), dtype=np.int64),
                         "feature_id": list(ensembl), "feature_name": list(genes),
                         "feature_length": np.full(len(genes), 1000, np.int64)},
                        index=pd.Index([str(i) for i in range(len(genes))]))


def _census_obs(cell_types: np.ndarray, donors: np.ndarray, dataset_id: str, start: int) -> pd.DataFrame:
    n = len(cell_types)
    return pd.DataFrame({
        "soma_joinid": np.arange(start, start + n, dtype=np.int64),
        "dataset_id": dataset_id,
        "assay": "10x 3' v3", "assay_ontology_term_id": "EFO:0009922",
        "cell_type": cell_types, "cell_type_ontology_term_id": "CL:0000000",
        "development_stage": "adult", "disease": "normal", "donor_id": donors,
        "is_primary_data": True, "self_reported_ethnicity": "unknown", "sex": "unknown",
        "suspension_type": "cell", "tissue": np.where(np.arange(n) % 3 == 0, "spleen", "blood"),
        "tissue_ontology_term_id": "UBERON:0000178", "tissue_general": "blood",
    }, index=pd.Index([str(start + i) for i in range(n)]))


def make_census_like_h5ad(path: str | os.PathLike, n_cells: int, reference: ad.AnnData, *,
                          chunk_size: int = 10_000, seed: int = 0, n_donors: int = 8,
                          dataset_id: str = "00000000-0000-0000-0000-000000000000",
                          raw_census: bool = False) -> Path:
    """Write a synthetic dataset in the Census schema, chunk by chunk (bounded memory).

    Counts are negative binomial per cell type, fitted by moments to ``reference`` (raw counts
    with ``obs["cell_type"]``, e.g. the bundled Kang 2018 PBMCs): for type t and gene g, mean
    μ_tg and dispersion θ_tg = μ²/(var − μ) (clipped to [0.05, 50]); each cell's library size is
    drawn from the type's observed library sizes (log-normal jitter σ = 0.2) and counts are
    Gamma–Poisson draws. Types are drawn with the reference's proportions.

    Parameters
    ----------
    path
        Output ``.h5ad`` (written to a temporary name, then renamed).
    n_cells
        Number of synthetic cells.
    reference
        Raw counts (n_ref_cells, n_genes), symbols as ``var_names``, ``var["feature_id"]``.
        Genes without an Ensembl id get synthetic ids ``ENSG9<index>`` (this function makes synthetic data only).
    chunk_size
        Cells generated and appended per step (``anndata.io.sparse_dataset(...).append``);
        peak memory ≈ one dense chunk (chunk_size × n_genes × 8 bytes).
    raw_census
        ``True``: what ``cellxgene_census.get_anndata`` returns (``var`` index ``0..n-1`` with
        ``feature_id``/``feature_name``); ``False``: the cached project schema (symbols as
        ``var_names``, ``var["feature_id"]``), as
        :func:`~scconcepts.data.download.download_dataset` writes.

    Returns
    -------
    Path
    """
    import h5py

    try:
        from anndata.io import sparse_dataset, write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import sparse_dataset, write_elem

    rng = np.random.default_rng(seed)
    X = sp.csr_matrix(reference.X, dtype=np.float64)
    types = reference.obs["cell_type"].astype(str).to_numpy()
    uniq, counts = np.unique(types, return_counts=True)
    lib = np.asarray(X.sum(1)).ravel()
    mu, theta, libs = [], [], []
    for t in uniq:
        Xt = X[types == t]
        lt = np.asarray(Xt.sum(1)).ravel()
        prop = np.asarray(Xt.sum(0)).ravel() / max(lt.sum(), 1.0)  # expression profile
        norm = Xt.multiply(1.0 / np.maximum(lt, 1)[:, None]).tocsr() * np.median(lt)
        m = np.asarray(norm.mean(0)).ravel()
        v = np.asarray(norm.multiply(norm).mean(0)).ravel() - m ** 2
        th = np.where(v > m, m ** 2 / np.maximum(v - m, 1e-12), 50.0)
        mu.append(prop)
        theta.append(np.clip(th, 0.05, 50.0))
        libs.append(lt[lt > 0] if (lt > 0).any() else lib)
    p_type = counts / counts.sum()
    genes = list(reference.var_names.astype(str))
    fid = (reference.var["feature_id"].astype(str).tolist() if "feature_id" in reference.var
           else [""] * len(genes))
    ensembl = [f if f.startswith("ENS") else f"ENSG9{i:010d}" for i, f in enumerate(fid)]
    donors_all = np.array([f"donor_{i}" for i in range(n_donors)])
    type_idx = rng.choice(len(uniq), size=n_cells, p=p_type)
    donor_idx = rng.integers(0, n_donors, size=n_cells)
    obs = _census_obs(uniq[type_idx], donors_all[donor_idx], dataset_id, 0)
    if raw_census:
        var = _census_var(genes, ensembl)
    else:
        var = pd.DataFrame({"feature_id": ensembl}, index=pd.Index(genes))
        obs.index = obs["soma_joinid"].astype(str).to_numpy()
    for col in ("dataset_id", "assay", "cell_type", "donor_id", "tissue", "sex", "disease"):
        obs[col] = obs[col].astype("category")

    def chunk(start: int, stop: int) -> sp.csr_matrix:
        ti = type_idx[start:stop]
        out = np.empty((stop - start, len(genes)), np.float32)
        for j, t in enumerate(range(len(uniq))):
            rows = np.flatnonzero(ti == t)
            if rows.size == 0:
                continue
            size = rng.choice(libs[t], size=rows.size) * np.exp(rng.normal(0, 0.2, rows.size))
            m = size[:, None] * mu[t][None, :]
            lam = rng.gamma(shape=theta[t][None, :], scale=m / theta[t][None, :])
            out[rows] = rng.poisson(lam)
        return sp.csr_matrix(out)

    def write(tmp):
        skeleton = ad.AnnData(obs=obs, var=var)
        skeleton.uns["synthetic"] = {"reference_cells": int(reference.n_obs), "seed": int(seed),
                                     "generator": "negative binomial per cell type (moments)"}
        skeleton.write_h5ad(tmp)
        with h5py.File(tmp, "a") as f:
            bounds = list(range(0, n_cells, chunk_size))
            write_elem(f, "X", chunk(0, min(chunk_size, n_cells)))
            Xd = sparse_dataset(f["X"])
            for s in bounds[1:]:
                Xd.append(chunk(s, min(s + chunk_size, n_cells)))

    return atomic_write(Path(path), write)
