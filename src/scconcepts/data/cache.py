"""Where the paper's inputs live and what they are: the Census release, the paper's datasets,
the cache layout (:class:`CensusCache`) and the error raised when an input is missing.

No network, no optional dependency: this module only names things. Downloads are in
:mod:`scconcepts.data.download`, preflight and the command line in :mod:`scconcepts.data.census`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "INSTALL_HINT",
    "PAPER_CENSUS_VERSION",
    "PAPER_DATASETS",
    "SCGPT_EMBEDDINGS_CENSUS_VERSION",
    "OBS_COLUMNS",
    "PaperInputsMissing",
    "CensusCache",
    "cache_for",
    "is_census_dataset_id",
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
    from ..config import repo_root

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


def _static_scvi_link(version: str) -> str:
    """The Census scVI ``model.pt`` of a release in the public bucket (paper, footnote 2)."""
    return f"s3://cellxgene-contrib-public/models/scvi/{version}/homo_sapiens/model.pt"
