"""Downloads of the paper's inputs into a :class:`~scconcepts.data.cache.CensusCache`: Census
datasets (resumable, in chunks of cells), the Census scVI ``model.pt``, Census precomputed
embeddings and Enrichr gene-set libraries.

Nothing here is reachable without network; the functions are tested up to the network boundary
with a local stand-in for ``cellxgene_census`` (``tests/test_census.py`` replaces
:func:`_client`). Install the client with ``pip install ".[census]"``.
"""

from __future__ import annotations

import logging
import os
import shutil
import urllib.request
import warnings
from pathlib import Path
from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..utils import atomic_write
from . import DataValidationError, validate_counts
from .cache import (
    _BY_ID,
    INSTALL_HINT,
    OBS_COLUMNS,
    ORGANISM,
    PAPER_CENSUS_VERSION,
    PAPER_DATASETS,
    SCGPT_EMBEDDINGS_CENSUS_VERSION,
    CensusCache,
)

log = logging.getLogger("scconcepts.data.download")

__all__ = [
    "require_census",
    "standardize_census_anndata",
    "download_dataset",
    "scvi_model_link",
    "download_scvi_model",
    "download_census_embeddings",
    "fetch_gene_set",
]


# --------------------------------------------------------------------------------------------
# optional dependency


def require_census():
    """Import and return ``cellxgene_census`` (and check ``tiledbsoma``).

    Raises
    ------
    ImportError
        If the optional ``census`` dependencies are not installed: ``pip install ".[census]"``.
    """
    try:
        import cellxgene_census  # noqa: F401
        import tiledbsoma  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            f"The CELLxGENE Census client is not installed ({exc}). Install the optional "
            f"dependencies of scconcepts:\n    {INSTALL_HINT}") from exc
    import cellxgene_census
    import cellxgene_census.experimental  # noqa: F401  (get_embedding*, model metadata)

    return cellxgene_census


def _client():
    """The Census client module (a seam: tests replace it with a local fake)."""
    return require_census()


# --------------------------------------------------------------------------------------------
# datasets


def standardize_census_anndata(adata: ad.AnnData) -> ad.AnnData:
    """Census / Discover AnnData → the project's schema (as the bundled data in ``data/``).

    Parameters
    ----------
    adata
        From ``cellxgene_census.get_anndata`` (``X`` raw counts, ``var`` with ``feature_id``
        Ensembl ids and ``feature_name`` symbols, index ``0..n-1``) or a Discover H5AD
        (``var_names`` Ensembl ids, normalised ``X`` with raw counts in ``raw.X``).

    Returns
    -------
    AnnData
        ``X`` raw counts (float32 CSR), ``var_names`` = gene symbols (``feature_name``, made
        unique with ``var_names_make_unique``), ``var["feature_id"]`` = Ensembl ids,
        ``obs_names`` = ``soma_joinid`` when present; ``obs`` and ``obsm`` kept.

    Raises
    ------
    DataValidationError
        If ``feature_id``/``feature_name`` are absent (not the Census schema), or no raw integer
        counts are found in ``X`` nor ``raw.X`` (log-normalised data only).
    """
    var = adata.var.copy()
    if "feature_id" not in var and str(var.index[0]).startswith("ENS"):
        var["feature_id"] = var.index.astype(str)
    missing = [c for c in ("feature_id", "feature_name") if c not in var]
    if missing:
        raise DataValidationError(
            f"var lacks {missing} (columns: {list(var.columns)}): this is not an AnnData in the "
            "CELLxGENE Census schema. Use cellxgene_census.get_anndata or a Discover H5AD.")
    X = adata.X
    try:
        validate_counts(adata)
    except DataValidationError:
        if adata.raw is None:
            raise DataValidationError(
                "X holds normalised values and there is no raw.X: the Census models need raw "
                "UMI counts. Download through cellxgene_census.get_anndata (X_name='raw').")
        X = adata.raw.X
        validate_counts(ad.AnnData(X=X))
        if adata.raw.n_vars != adata.n_vars:
            var = adata.raw.var.copy()
            if "feature_id" not in var:
                var["feature_id"] = adata.raw.var_names.astype(str)
    out = ad.AnnData(X=sp.csr_matrix(X, dtype=np.float32), obs=adata.obs.copy(),
                     obsm={k: np.asarray(v) for k, v in adata.obsm.items()})
    out.var = pd.DataFrame({"feature_id": var["feature_id"].astype(str).to_numpy()},
                           index=pd.Index(var["feature_name"].astype(str).to_numpy()))
    out.var_names_make_unique()
    if "soma_joinid" in out.obs:
        out.obs_names = out.obs["soma_joinid"].astype(str).to_numpy()
    out.obs_names = out.obs_names.astype(str)
    return out


def _write_h5ad(adata: ad.AnnData, path: Path) -> None:
    atomic_write(path, lambda tmp: adata.write_h5ad(tmp, compression="gzip"))


def download_dataset(
    dataset_id: str,
    cache: CensusCache,
    *,
    chunk_size: int = 50_000,
    obs_embeddings: Sequence[str] = (),
    expected_n_cells: int | None = None,
    progress: bool = True,
) -> Path:
    """Download one Census dataset (raw counts) into the cache, resumably, in chunks of cells.

    Parameters
    ----------
    dataset_id
        CELLxGENE dataset id (``obs["dataset_id"]`` in Census), e.g. :data:`PAPER_DATASETS`.
    cache
        :class:`CensusCache` (folder and Census release).
    chunk_size
        Cells per ``get_anndata`` call (``obs_coords`` = their ``soma_joinid``); each chunk is
        written as ``<id>.parts/part_<i>.h5ad`` (atomically) and skipped on a rerun; peak memory
        is one chunk (~50,000 cells × 60k genes sparse ≈ 2–3 GB).
    obs_embeddings
        Census embeddings to add to ``obsm`` (e.g. ``["scvi"]``).
    expected_n_cells
        Warn if the dataset has another number of cells (default: :data:`PAPER_DATASETS`).

    Returns
    -------
    Path
        ``cache.dataset(dataset_id)``: an ``.h5ad`` in the project's schema
        (:func:`standardize_census_anndata`), whose ``uns["census"]`` records the release and id.
        Returned at once if it already exists.

    Raises
    ------
    ImportError
        Without the ``census`` extra (:data:`INSTALL_HINT`).
    ValueError
        If the dataset id selects no cell in this Census release.
    """
    final = cache.dataset(dataset_id)
    if final.exists():
        return final
    cx = _client()
    parts_dir = cache.dataset_parts(dataset_id)
    parts_dir.mkdir(parents=True, exist_ok=True)
    value_filter = f"dataset_id == '{dataset_id}'"
    with cx.open_soma(census_version=cache.version) as census:
        ids_path = parts_dir / "soma_joinids.npy"
        if ids_path.exists():
            ids = np.load(ids_path)
        else:
            obs = cx.get_obs(census, ORGANISM, value_filter=value_filter,
                             column_names=["soma_joinid"])
            ids = np.sort(np.asarray(obs["soma_joinid"], dtype=np.int64))
            atomic_write(ids_path, lambda t: np.save(open(t, "wb"), ids))
        if ids.size == 0:
            raise ValueError(f"No cell of dataset_id {dataset_id!r} in Census {cache.version}; "
                             "check the id on CELLxGENE Discover or choose another release.")
        want = expected_n_cells or PAPER_DATASETS.get(_BY_ID.get(dataset_id, ""), {}).get("n_cells")
        if want and ids.size != want:
            warnings.warn(f"dataset {dataset_id} has {ids.size:,} cells in Census "
                          f"{cache.version}, the paper reports {want:,}.", stacklevel=2)
        parts = []
        starts = range(0, ids.size, chunk_size)
        for i, s in enumerate(starts):
            part = parts_dir / f"part_{i:05d}.h5ad"
            parts.append(part)
            if part.exists():
                continue
            if progress:
                log.info("Census %s: dataset %s cells %d..%d of %d", cache.version, dataset_id,
                         s, min(s + chunk_size, ids.size) - 1, ids.size)
            kw = {"obs_embeddings": list(obs_embeddings)} if obs_embeddings else {}
            chunk = cx.get_anndata(census, ORGANISM, obs_coords=ids[s:s + chunk_size],
                                   obs_column_names=list(OBS_COLUMNS), **kw)
            _write_h5ad(standardize_census_anndata(chunk), part)
    _concat_parts(parts, final, {"census_version": cache.version, "dataset_id": dataset_id,
                                 "n_cells": int(ids.size)})
    shutil.rmtree(parts_dir, ignore_errors=True)
    return final


def _concat_parts(parts: Sequence[Path], final: Path, meta: dict) -> None:
    """Concatenate chunk files on disk (``anndata.experimental.concat_on_disk``: bounded memory)
    into ``final`` atomically, and record ``meta`` in ``uns["census"]``."""
    import h5py
    from anndata.experimental import concat_on_disk

    try:
        from anndata.io import write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import write_elem

    def write(tmp):
        h5 = f"{tmp}.h5ad"  # concat_on_disk picks the format from the suffix (.h5ad vs zarr)
        try:
            concat_on_disk([str(p) for p in parts], h5, merge="same")
            with h5py.File(h5, "a") as f:
                if "uns" in f:
                    del f["uns"]
                write_elem(f, "uns", {"census": meta})
            os.replace(h5, tmp)
        finally:
            if os.path.exists(h5):
                os.remove(h5)

    atomic_write(final, write)


# --------------------------------------------------------------------------------------------
# Census scVI model


def scvi_model_link(census_version: str = PAPER_CENSUS_VERSION, organism: str = "homo_sapiens") -> str:
    """``model_link`` of the Census scVI embedding of a release (an ``s3://`` URI of model.pt).

    Through ``cellxgene_census.experimental.get_embedding_metadata_by_name("scvi", organism,
    census_version)``; for 2025-01-30 it is
    ``s3://cellxgene-contrib-public/models/scvi/2025-01-30/homo_sapiens/model.pt`` (paper,
    footnote 2).
    """
    cx = _client()
    meta = cx.experimental.get_embedding_metadata_by_name(
        "scvi", organism=organism, census_version=census_version, embedding_type="obs_embedding")
    return str(meta["model_link"])


def _https(s3_uri: str) -> str:
    """``s3://bucket/key`` → public HTTPS URL (the Census buckets are in us-west-2)."""
    if not s3_uri.startswith("s3://"):
        return s3_uri
    bucket, _, key = s3_uri[5:].partition("/")
    return f"https://{bucket}.s3.us-west-2.amazonaws.com/{key}"


def download_scvi_model(cache: CensusCache, model_link: str | None = None) -> Path:
    """Download the Census scVI ``model.pt`` into ``cache.scvi_model_dir()`` (skip if present).

    ``model_link`` defaults to :func:`scvi_model_link` of the cache's release. The file is
    streamed to a temporary name and renamed when complete, so an interrupted download never
    leaves a truncated ``model.pt``.
    """
    target = cache.scvi_model_dir() / "model.pt"
    if target.exists():
        return target.parent
    url = _https(model_link or scvi_model_link(cache.version))

    def fetch(tmp):
        with urllib.request.urlopen(url, timeout=60) as r, open(tmp, "wb") as fh:
            shutil.copyfileobj(r, fh, length=1 << 22)

    atomic_write(target, fetch)
    return target.parent


# --------------------------------------------------------------------------------------------
# Census precomputed embeddings (SAE-only chapters)


def _embedding_uri(meta: dict, census_version: str) -> str:
    # get_all_available_embeddings lists a "uri"; older metadata only an "id", hosted under
    # the contrib bucket as in the Census tutorial "Access CELLxGENE-hosted embeddings".
    if meta.get("uri"):
        return str(meta["uri"])
    return f"s3://cellxgene-contrib-public/contrib/cell-census/soma/{census_version}/{meta['id']}"


def download_census_embeddings(dataset_id: str, cache: CensusCache, name: str = "scvi", *,
                               census_version: str | None = None) -> Path:
    """Census precomputed cell embeddings of one dataset → ``.npy`` (+ ``.obs.parquet``).

    Parameters
    ----------
    name
        ``"scvi"`` (maintained, ``get_anndata(obs_embeddings=["scvi"])``, one Ensembl gene
        fetched so that ``X`` stays empty) or a hosted embedding such as ``"scgpt"``
        (``experimental.get_embedding``; scGPT embeddings exist in release 2023-12-15,
        :data:`SCGPT_EMBEDDINGS_CENSUS_VERSION`).
    census_version
        Release of the embedding (default: the cache's; ``"scgpt"`` defaults to 2023-12-15).
        Embeddings are only valid for the cells (``soma_joinid``) of their own release.

    Returns
    -------
    Path
        ``cache.embedding(dataset_id, name, version)``: float32 (n_cells, d), rows in the order
        of the ``soma_joinid`` column of the sibling ``.obs.parquet`` (with Census obs columns).
    """
    version = census_version or (SCGPT_EMBEDDINGS_CENSUS_VERSION if name == "scgpt"
                                 else cache.version)
    out = cache.embedding(dataset_id, name, version)
    obs_out = out.with_suffix(".obs.parquet")
    if out.exists() and obs_out.exists():
        return out
    cx = _client()
    with cx.open_soma(census_version=version) as census:
        if name in ("scvi", "geneformer"):
            a = cx.get_anndata(census, ORGANISM, obs_value_filter=f"dataset_id == '{dataset_id}'",
                               var_value_filter="feature_id == 'ENSG00000141510'",
                               obs_column_names=list(OBS_COLUMNS), obs_embeddings=[name])
            obs, z = a.obs.reset_index(drop=True), np.asarray(a.obsm[name], np.float32)
        else:
            obs = cx.get_obs(census, ORGANISM, value_filter=f"dataset_id == '{dataset_id}'",
                             column_names=list(OBS_COLUMNS)).reset_index(drop=True)
            meta = cx.experimental.get_embedding_metadata_by_name(name, "homo_sapiens", version)
            z = cx.experimental.get_embedding(version, _embedding_uri(meta, version),
                                              obs["soma_joinid"].to_numpy(np.int64))
    atomic_write(obs_out, obs.to_parquet)
    atomic_write(out, lambda t: np.save(open(t, "wb"), np.asarray(z, np.float32)))
    return out


# --------------------------------------------------------------------------------------------
# gene sets


def fetch_gene_set(name: str, cache: CensusCache) -> Path:
    """Fetch an Enrichr library by name with ``gseapy.get_library`` and cache it as GMT.

    ``GO_Biological_Process_2025`` is the paper's library (footnote 1). Written atomically;
    returned at once if present. :func:`scconcepts.data.load_gene_sets` reads the path.
    """
    path = cache.gene_set(name)
    if path.exists():
        return path
    import gseapy

    lib = gseapy.get_library(name=name, organism="Human")
    if not lib:
        raise ValueError(f"gseapy returned an empty library for {name!r}.")

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as fh:
            for term, genes in lib.items():
                fh.write("\t".join([term, "", *genes]) + "\n")

    atomic_write(path, write)
    return path
