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

The package :mod:`scconcepts.data` splits this by concern: :mod:`~scconcepts.data.cache` (the
cache layout and :data:`PAPER_DATASETS`), :mod:`~scconcepts.data.download` (the Census client and
downloads), :mod:`~scconcepts.data.census_scvi` (the Census scVI query model, scGPT
whole-human), :mod:`~scconcepts.data.synthetic` (data in the Census schema). This module holds
what a run needs — :func:`preflight`, :func:`resolve_dataset`, :func:`resolve_gene_sets` — and
the command line, and re-exports the public names of the others::

    python -m scconcepts.data.census check --profile paper      # lists anything still missing
    python -m scconcepts.data.census download --profile paper   # datasets, Census scVI, GO 2025
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import BUNDLED_GENE_SETS
from .cache import (
    _BY_ID,
    INSTALL_HINT,
    OBS_COLUMNS,
    PAPER_CENSUS_VERSION,
    PAPER_DATASETS,
    SCGPT_EMBEDDINGS_CENSUS_VERSION,
    SCGPT_HELP,
    CensusCache,
    PaperInputsMissing,
    _census_scvi,
    _checkpoints,
    _dataset_of,
    _repo_path,
    _static_scvi_link,
    cache_for,
    is_census_dataset_id,
)
from .census_scvi import census_scvi_encoder, load_census_scvi, load_scgpt_whole_human
from .download import (
    download_census_embeddings,
    download_dataset,
    download_scvi_model,
    fetch_gene_set,
    require_census,
    scvi_model_link,
    standardize_census_anndata,
)
from .synthetic import make_census_like_h5ad

__all__ = [
    "INSTALL_HINT",
    "PAPER_CENSUS_VERSION",
    "PAPER_DATASETS",
    "SCGPT_EMBEDDINGS_CENSUS_VERSION",
    "OBS_COLUMNS",
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
    "Missing",
    "preflight_items",
    "preflight",
    "download_all",
    "main",
]


# --------------------------------------------------------------------------------------------
# resolving a profile's inputs


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


def resolve_gene_sets(cfg) -> str:
    """What ``Workflow.gsea`` should pass to :func:`scconcepts.data.load_gene_sets`: the bundled
    name, or the cached GMT of a library fetched by name (paper: GO_Biological_Process_2025)."""
    name = str(cfg.gsea.gene_sets)
    if name in BUNDLED_GENE_SETS or Path(name).exists() or not cfg.scale.cache_dir:
        return name
    path = cache_for(cfg).gene_set(name)
    if not path.exists():
        raise PaperInputsMissing(_missing_message(preflight_items(cfg)))
    return str(path)


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
    base = f"python -m scconcepts.data.census download --profile {prof}"
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
        from ..models.scgpt import REQUIRED_FILES

        folder = _repo_path(ckpt)
        if not all((folder / f).is_file() for f in REQUIRED_FILES):
            items.append(Missing("scGPT whole-human checkpoint (args.json, vocab.json, "
                                 "best_model.pt)", folder, f"manual: {SCGPT_HELP} {folder}/"))
    name = str(cfg.gsea.gene_sets or "")
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
              "Everything downloadable at once: python -m scconcepts.data.census download "
              f"--profile {profile}",
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
    """``python -m scconcepts.data.census {check,download} --profile paper [--what ...]``."""
    from ..config import ConfigError, load_config, parse_overrides

    p = argparse.ArgumentParser(prog="python -m scconcepts.data.census",
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
