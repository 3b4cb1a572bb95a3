"""The paper's own inputs: CELLxGENE Census atlases, the Census scVI model, scGPT whole-human,
GO_Biological_Process_2025 — downloaded into a cache folder, located, checked before a run.

Nothing here runs in the default profile, and nothing here is reachable from this workplace (no
network): the functions are tested up to the network boundary on local files in the Census schema
(``tests/test_census.py``), and :func:`preflight` makes the paper profile fail within seconds with
the list of downloads, their exact commands and target paths.

Install the optional dependencies with ``pip install ".[census]"`` (cellxgene-census, tiledbsoma).

Sources
-------
* Datasets (Sec 4.1, Table 1): Tabula Sapiens Immune (592,317 cells) and the Cross-tissue Immune
  Cell Atlas (329,762 cells), by their CELLxGENE Discover / Census ``dataset_id``
  (:data:`PAPER_DATASETS`, with the public pages that give these ids).
* Census release ``2025-01-30``: the paper's scVI checkpoint is
  ``s3://cellxgene-contrib-public/models/scvi/2025-01-30/homo_sapiens/model.pt`` (footnote 2),
  the ``model_link`` that ``cellxgene_census.experimental.get_embedding_metadata_by_name("scvi",
  "homo_sapiens", "2025-01-30")`` returns (the Census tutorial "scVI for cell type prediction and
  data projection" reads it the same way).
* Query mapping as in that tutorial: Ensembl ids as ``var_names``, ``obs["batch"] =
  "unassigned"``, ``SCVI.prepare_query_anndata`` then ``SCVI.load_query_data`` and
  ``is_trained = True`` — done by :mod:`scconcepts.models.scvi` (``prepare_query``,
  ``load_query``), which this module reuses.
* scGPT whole-human (``scGPT_human``: ``args.json``, ``vocab.json``, ``best_model.pt``) from the
  model zoo linked in the scGPT README (bowang-lab/scGPT), loaded by
  :func:`scconcepts.models.scgpt.load_checkpoint`.
* Census precomputed embeddings for the SAE-only chapters: ``obs_embeddings=["scvi"]`` of
  ``get_anndata``; the community scGPT embeddings of release ``2023-12-15`` through
  ``cellxgene_census.experimental.get_embedding``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .data import DataValidationError, validate_counts
from .utils import atomic_write

log = logging.getLogger("scconcepts.census")

__all__ = [
    "INSTALL_HINT",
    "PAPER_CENSUS_VERSION",
    "PAPER_DATASETS",
    "SCGPT_EMBEDDINGS_CENSUS_VERSION",
    "PaperInputsMissing",
    "require_census",
    "CensusCache",
    "cache_for",
    "is_census_dataset_id",
    "standardize_census_anndata",
    "download_dataset",
    "resolve_dataset",
    "scvi_model_link",
    "download_scvi_model",
    "load_census_scvi",
    "census_scvi_encoder",
    "load_scgpt_whole_human",
    "download_census_embeddings",
    "fetch_gene_set",
    "resolve_gene_sets",
    "make_census_like_h5ad",
    "preflight",
    "main",
]

INSTALL_HINT = 'pip install ".[census]"   (cellxgene-census and tiledbsoma; needs internet)'
PAPER_CENSUS_VERSION = "2025-01-30"
SCGPT_EMBEDDINGS_CENSUS_VERSION = "2023-12-15"
ORGANISM = "Homo sapiens"

#: The paper's datasets (Sec 4.1, Appendix A Table 1) in CELLxGENE Discover / Census.
#: ``dataset_id`` is the stable Discover id used in Census ``obs["dataset_id"]``;
#: ``dataset_version_id`` names the Discover H5AD of that size (an alternative download).
#: Provenance of the ids (public pages, looked up for this project):
#: * Tabula Sapiens - Immune: dataset_id 78b60b70-129a-4a6d-b15f-825b241eec66 as used in public
#:   pipelines that load it from Census (e.g. a ``TS_DATASET_ID`` in GitHub code with that title);
#:   592,317 cells × 60,606 genes for dataset version e62b0182-368f-4875-8ac1-f49e3d5eda60,
#:   collection e5f58829-1a66-40b5-a624-9046778e74f5 (Tabula Sapiens, CELLxGENE schema 7.0.0).
#: * Cross-tissue Immune Cell Atlas, "Global" dataset of the collection "Cross-tissue immune cell
#:   analysis reveals tissue-specific features in humans" (62ef75e4-cbea-454e-a0ce-998ec40223d3):
#:   dataset_id 1b9d8702-5af8-4142-85ed-020eb06ec4f6 (Open Problems' ``cellxgene_census/
#:   immune_cell_atlas`` loader filters Census on it: 329,762 × 29,335), Discover H5AD
#:   08f58b32-a01b-4300-8ebc-2b93c18f26f7.
#: The download checks the cell count and warns when a Census release holds another revision.
PAPER_DATASETS: dict[str, dict[str, Any]] = {
    "tabula_sapiens_immune": {
        "title": "Tabula Sapiens - Immune",
        "dataset_id": "78b60b70-129a-4a6d-b15f-825b241eec66",
        "dataset_version_id": "e62b0182-368f-4875-8ac1-f49e3d5eda60",
        "collection_id": "e5f58829-1a66-40b5-a624-9046778e74f5",
        "n_cells": 592_317,
        "citation": "The Tabula Sapiens Consortium et al., Science 376:eabl4896 (2022)",
    },
    "cross_tissue_immune_cell_atlas": {
        "title": "Cross-tissue Immune Cell Atlas (Global)",
        "dataset_id": "1b9d8702-5af8-4142-85ed-020eb06ec4f6",
        "dataset_version_id": "08f58b32-a01b-4300-8ebc-2b93c18f26f7",
        "collection_id": "62ef75e4-cbea-454e-a0ce-998ec40223d3",
        "n_cells": 329_762,
        "citation": "Domínguez Conde et al., Science 376:eabl5197 (2022)",
    },
}
_BY_ID = {v["dataset_id"]: k for k, v in PAPER_DATASETS.items()}

#: Census obs columns kept in the cached datasets (Census schema names).
OBS_COLUMNS = (
    "soma_joinid", "dataset_id", "assay", "assay_ontology_term_id", "cell_type",
    "cell_type_ontology_term_id", "development_stage", "disease", "donor_id",
    "is_primary_data", "self_reported_ethnicity", "sex", "suspension_type", "tissue",
    "tissue_ontology_term_id", "tissue_general",
)
#: The whole-human scGPT folder name, as in the scGPT model zoo.
SCGPT_FOLDER_NAME = "scGPT_human"
SCGPT_HELP = ("download the 'whole-human' checkpoint folder (scGPT_human: args.json, vocab.json, "
              "best_model.pt, 205 MB) from the 'Pretrained scGPT Model Zoo' linked in the scGPT "
              "README (https://github.com/bowang-lab/scGPT) and put its three files in")


class PaperInputsMissing(RuntimeError):
    """Inputs of the paper profile are absent; the message lists downloads and target paths."""


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
# cache layout


@dataclass(frozen=True)
class CensusCache:
    """Where the paper's downloads live under one cache folder (one Census release).

    Layout::

        <root>/census/<version>/datasets/<dataset_id>.h5ad      raw counts, symbols, feature_id
        <root>/census/<version>/datasets/<dataset_id>.parts/    chunks of an unfinished download
        <root>/census/<version>/embeddings/<dataset_id>_<name>.npy (+ .obs.parquet)
        <root>/models/scvi/<version>/homo_sapiens/model.pt      Census scVI
        <root>/scGPT_human/{args.json,vocab.json,best_model.pt} scGPT whole-human
        <root>/genesets/<library>.gmt                            Enrichr library via gseapy
    """

    root: Path
    version: str = PAPER_CENSUS_VERSION

    def dataset(self, dataset_id: str) -> Path:
        return self.root / "census" / self.version / "datasets" / f"{dataset_id}.h5ad"

    def dataset_parts(self, dataset_id: str) -> Path:
        return self.root / "census" / self.version / "datasets" / f"{dataset_id}.parts"

    def embedding(self, dataset_id: str, name: str, version: str | None = None) -> Path:
        return (self.root / "census" / (version or self.version) / "embeddings"
                / f"{dataset_id}_{name}.npy")

    def scvi_model_dir(self) -> Path:
        return self.root / "models" / "scvi" / self.version / "homo_sapiens"

    def scgpt_dir(self) -> Path:
        return self.root / SCGPT_FOLDER_NAME

    def gene_set(self, name: str) -> Path:
        return self.root / "genesets" / f"{name}.gmt"


def _dataset_of(cfg, role: str):
    return getattr(cfg.data, role).dataset


def _census_scvi(cfg) -> bool:
    """Some model of the profile is the Census scVI (``source: census``)."""
    return any(getattr(m, "source", None) == "census" for m in cfg.models.values())


def _checkpoints(cfg) -> list[str]:
    """Checkpoint folders named by the profile's model blocks (e.g. scGPT)."""
    return [m.checkpoint for m in cfg.models.values() if getattr(m, "checkpoint", None)]


def _repo_path(p: str | os.PathLike) -> Path:
    path = Path(os.path.expanduser(str(p)))
    if path.is_absolute():
        return path
    from .config import repo_root

    return repo_root() / path


def cache_for(cfg) -> CensusCache:
    """:class:`CensusCache` of a config (``cache_dir``, relative to the repository, and
    ``census_version``); ``$SCCONCEPTS_CACHE`` overrides ``cache_dir``.

    Raises
    ------
    KeyError
        If the profile defines no ``cache_dir`` (not a Census profile).
    """
    root = os.environ.get("SCCONCEPTS_CACHE") or cfg.scale.cache_dir
    if not root:
        raise KeyError("This profile has no scale.cache_dir: it does not use CELLxGENE Census "
                       "inputs.")
    return CensusCache(_repo_path(root), str(cfg.scale.census_version or PAPER_CENSUS_VERSION))


def is_census_dataset_id(value: Any) -> bool:
    """True for a CELLxGENE dataset id (a UUID such as ``1b9d8702-5af8-4142-85ed-020eb06ec4f6``)."""
    import uuid

    try:
        uuid.UUID(str(value))
        return len(str(value)) == 36
    except ValueError:
        return False


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


def resolve_dataset(cfg, role: str) -> str:
    """The value ``Workflow.dataset`` should load for ``role``: the cached ``.h5ad`` path when
    the profile names a Census dataset id, else the name/path unchanged.

    Raises
    ------
    PaperInputsMissing
        If the Census dataset has not been downloaded (the message gives the command).
    """
    name = _dataset_of(cfg, role)
    if not is_census_dataset_id(name):
        return name
    path = cache_for(cfg).dataset(str(name))
    if not path.exists():
        raise PaperInputsMissing(_missing_message(preflight_items(cfg)))
    return str(path)


# --------------------------------------------------------------------------------------------
# Census scVI


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


def _static_scvi_link(version: str) -> str:
    return f"s3://cellxgene-contrib-public/models/scvi/{version}/homo_sapiens/model.pt"


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
        Folder with the Census ``model.pt`` (:func:`download_scvi_model`).
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
    from .models import scvi as ms

    model_dir = Path(model_dir)
    if not (model_dir / "model.pt").exists():
        raise FileNotFoundError(
            f"No Census scVI model at {model_dir}/model.pt: run `python -m scconcepts.census "
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
    from .models import scvi as ms
    from .scale import scvi_chunk_encoder

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
    from .models import scgpt as ms

    folder = Path(folder)
    if not all((folder / f).is_file() for f in ms.REQUIRED_FILES):
        raise PaperInputsMissing(f"scGPT whole-human checkpoint missing: {SCGPT_HELP} {folder}/")
    return ms.load_checkpoint(folder, device=device)


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


def resolve_gene_sets(cfg) -> str:
    """What ``Workflow.gsea`` should pass to :func:`scconcepts.data.load_gene_sets`: the bundled
    name, or the cached GMT of a library fetched by name (paper: GO_Biological_Process_2025)."""
    from .data import BUNDLED_GENE_SETS

    name = str(cfg.gsea.gene_sets)
    if name in BUNDLED_GENE_SETS or Path(name).exists() or not cfg.scale.cache_dir:
        return name
    path = cache_for(cfg).gene_set(name)
    if not path.exists():
        raise PaperInputsMissing(_missing_message(preflight_items(cfg)))
    return str(path)


# --------------------------------------------------------------------------------------------
# synthetic data in the Census schema (fixtures and the scale benchmark)


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
        ``var_names``, ``var["feature_id"]``), as :func:`download_dataset` writes.

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


# --------------------------------------------------------------------------------------------
# preflight


@dataclass
class Missing:
    """One absent input: what it is, where it must be, and how to get it."""

    what: str
    path: Path
    command: str


def preflight_items(cfg) -> list[Missing]:
    """Inputs the profile needs that are not on disk (empty list: ready to run)."""
    if not cfg.scale.uses_census:
        return []
    cache = cache_for(cfg)
    prof = cfg.name
    base = f"python -m scconcepts.census download --profile {prof}"
    items: list[Missing] = []
    for role in ("main", "second", "perturbation"):
        ds = _dataset_of(cfg, role)
        if is_census_dataset_id(ds) and not cache.dataset(str(ds)).exists():
            title = PAPER_DATASETS.get(_BY_ID.get(str(ds), ""), {}).get("title", "Census dataset")
            items.append(Missing(f"{title} ({ds}, {role} dataset)", cache.dataset(str(ds)),
                                 f"{base} --what {role}_dataset"))
    if _census_scvi(cfg) and not (
            cache.scvi_model_dir() / "model.pt").exists():
        items.append(Missing(
            f"Census scVI model ({_static_scvi_link(cache.version)})",
            cache.scvi_model_dir() / "model.pt",
            f"{base} --what scvi_model   (or: aws s3 cp --no-sign-request "
            f"{_static_scvi_link(cache.version)} {cache.scvi_model_dir()}/)"))
    for ckpt in _checkpoints(cfg):
        from .models.scgpt import REQUIRED_FILES

        folder = _repo_path(ckpt)
        if not all((folder / f).is_file() for f in REQUIRED_FILES):
            items.append(Missing("scGPT whole-human checkpoint (args.json, vocab.json, "
                                 "best_model.pt)", folder, f"manual: {SCGPT_HELP} {folder}/"))
    name = str(cfg.gsea.gene_sets or "")
    from .data import BUNDLED_GENE_SETS

    if name and name not in BUNDLED_GENE_SETS and not Path(name).exists() and not cache.gene_set(
            name).exists():
        items.append(Missing(f"Enrichr gene-set library {name} (gseapy.get_library)",
                             cache.gene_set(name), f"{base} --what gene_sets"))
    return items


def _missing_message(items: Sequence[Missing], profile: str = "paper") -> str:
    lines = [f"The '{profile}' profile needs {len(items)} input(s) that are not on this machine "
             "(they need internet; see README 'Run at paper scale'):"]
    for i, m in enumerate(items, 1):
        lines += [f"  {i}. {m.what}", f"     expected at: {m.path}", f"     get it with:  {m.command}"]
    lines += [f"Install the download client first: {INSTALL_HINT}",
              f"Everything downloadable at once: python -m scconcepts.census download --profile "
              f"{profile}",
              "Use another cache folder with --set scale.cache_dir=/big/disk (or $SCCONCEPTS_CACHE)."]
    return "\n".join(lines)


def preflight(cfg) -> None:
    """Raise :class:`PaperInputsMissing` listing every absent input of a Census profile.

    Does nothing for profiles without ``census_version``/``cache_dir`` (default, smoke). Checks
    files only (no import of the Census client, no network): runs in well under a second.
    """
    items = preflight_items(cfg)
    if items:
        raise PaperInputsMissing(_missing_message(items, cfg.name))


# --------------------------------------------------------------------------------------------
# command line


def download_all(cfg, what: Sequence[str] = ()) -> list[Path]:
    """Download the profile's inputs (``what`` ⊂ {main_dataset, second_dataset, scvi_model,
    gene_sets, embeddings}; empty: all but embeddings). Returns the paths written."""
    cache = cache_for(cfg)
    what = set(what) or {"main_dataset", "second_dataset", "perturbation_dataset", "scvi_model",
                         "gene_sets"}
    out = []
    for role in ("main", "second", "perturbation"):
        ds = _dataset_of(cfg, role)
        if f"{role}_dataset" in what and is_census_dataset_id(ds):
            out.append(download_dataset(str(ds), cache,
                                        chunk_size=50_000))
    if "scvi_model" in what and _census_scvi(cfg):
        out.append(download_scvi_model(cache))
    if "gene_sets" in what and cfg.gsea.gene_sets:
        from .data import BUNDLED_GENE_SETS

        if str(cfg.gsea.gene_sets) not in BUNDLED_GENE_SETS:
            out.append(fetch_gene_set(str(cfg.gsea.gene_sets), cache))
    if "embeddings" in what:
        for role in ("main", "second"):
            ds = _dataset_of(cfg, role)
            if is_census_dataset_id(ds):
                out.append(download_census_embeddings(str(ds), cache, "scvi"))
                out.append(download_census_embeddings(str(ds), cache, "scgpt"))
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m scconcepts.census {check,download} --profile paper [--what ...]``."""
    from .config import ConfigError, load_config, parse_overrides

    p = argparse.ArgumentParser(prog="python -m scconcepts.census",
                                description="Check or download the paper profile's inputs.")
    p.add_argument("command", choices=["check", "download"])
    p.add_argument("--profile", default="paper")
    p.add_argument("--params-dir", default=None)
    p.add_argument("--what", action="append", default=[],
                   choices=["main_dataset", "second_dataset", "perturbation_dataset",
                            "scvi_model", "gene_sets", "embeddings"])
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = load_config(args.profile, parse_overrides(args.overrides),
                          params_dir=args.params_dir)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    if args.command == "check":
        try:
            preflight(cfg)
        except PaperInputsMissing as err:
            print(err, file=sys.stderr)
            return 2
        print(f"profile {args.profile!r}: every input is present.")
        return 0
    for path in download_all(cfg, args.what):
        print(path)
    try:
        preflight(cfg)
    except PaperInputsMissing as err:  # e.g. scGPT, which has no scripted download
        print(err, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
