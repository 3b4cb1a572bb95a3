"""Bundled real datasets, gene sets and gene descriptions, with input validation.

Every dataset that enters the pipeline goes through :func:`load_dataset`, which checks the
things the models and the metadata analysis rely on and fails with an error that names the
problem *and* the fix:

* raw integer UMI counts (in ``X`` or in a named layer) — scVI models counts with a negative
  binomial likelihood and scGPT bins raw expression, so log-normalised input is wrong;
* gene symbols as ``var_names`` (attribution, GSEA and gene descriptions use HGNC symbols);
* the ``obs`` columns a chapter needs (``cell_type``, ``donor_id``, ...);
* enough cells.

The bundled files live in ``data/`` of the repository (see ``data/README.md`` for provenance and
licences); nothing is downloaded.

The paper profile's own inputs (CELLxGENE Census atlases, the Census scVI model, scGPT
whole-human, GO_Biological_Process_2025) live in the submodules, imported on demand:

* :mod:`scconcepts.data.census` — cache layout, :data:`~scconcepts.data.census.PAPER_DATASETS`,
  preflight, resolution of a profile's inputs, and the command line
  (``python -m scconcepts.data.census check|download --profile paper``);
* :mod:`scconcepts.data.download` — the Census client, resumable downloads;
* :mod:`scconcepts.data.census_scvi` — the Census scVI query model and scGPT whole-human;
* :mod:`scconcepts.data.synthetic` — synthetic data in the Census schema (fixtures, benchmark).
"""

from __future__ import annotations

import gzip
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = [
    "BUNDLED_DATASETS",
    "DataValidationError",
    "bundled_file",
    "data_dir",
    "load_dataset",
    "validate_counts",
    "read_gmt",
    "load_gene_sets",
    "load_gene_info",
    "load_cell_cycle_genes", "subsample"]

BUNDLED_DATASETS = {
    "kang2018_pbmc_ctrl": "scrna/kang2018_pbmc_ctrl.h5ad",
    "pbmc4k_10x": "scrna/pbmc4k_10x.h5ad",
    "kang2018_pbmc_ifnb": "scrna/kang2018_pbmc_ifnb.h5ad",
}

BUNDLED_GENE_SETS = {
    "GO_Biological_Process_2023": "genesets/GO_Biological_Process_2023.gmt",
    "PanglaoDB_2020_human": "genesets/PanglaoDB_2020_human.gmt",
}

_ENSEMBL_RE = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")


class DataValidationError(ValueError):
    """Raised when an input dataset cannot be used; the message says how to fix it."""


def data_dir() -> Path:
    """Folder of the bundled data.

    Resolution order: ``$SCCONCEPTS_DATA`` if set, else ``<repo>/data`` next to ``src/``
    (this file is ``<repo>/src/scconcepts/data/__init__.py``).

    Raises
    ------
    FileNotFoundError
        If the folder does not exist (e.g. the package was installed without the repository).
    """
    env = os.environ.get("SCCONCEPTS_DATA")
    path = Path(env) if env else Path(__file__).resolve().parents[3] / "data"
    if not path.is_dir():
        raise FileNotFoundError(
            f"Bundled data folder not found at {path}. Run from a clone of the scconcepts "
            "repository (pip install -e .) or set SCCONCEPTS_DATA to its data/ folder."
        )
    return path


#: checksums of the bundled files (``sha256sum`` format; check by hand with
#: ``cd data && sha256sum -c SHA256SUMS``)
CHECKSUMS = "SHA256SUMS"
_VERIFIED: set[tuple[str, int, int]] = set()


def bundled_file(relpath: str) -> Path:
    """``data_dir() / relpath``, verified against ``data/SHA256SUMS`` (once per process and
    file version).

    A bundled file that was truncated or altered stops the run here, before anything uses it;
    it is never rewritten (the repository holds the original). A data folder without
    ``SHA256SUMS`` (``$SCCONCEPTS_DATA`` pointing at one's own copy) is not checked.

    Raises
    ------
    DataValidationError
        The file's SHA-256 differs from the recorded one; the message says how to restore it.
    FileNotFoundError
        The file is missing.
    """
    import hashlib

    root = data_dir()
    path = root / relpath
    st = path.stat()
    memo = (str(path), st.st_size, st.st_mtime_ns)
    sums = root / CHECKSUMS
    if memo in _VERIFIED or not sums.is_file():
        return path
    expected = dict(reversed(line.split(None, 1)) for line in sums.read_text().splitlines()
                    if line.strip())
    want = expected.get(relpath)
    if want is not None:
        with open(path, "rb") as fh:
            digest = hashlib.file_digest(fh, "sha256").hexdigest()
        if digest != want:
            raise DataValidationError(
                f"bundled file {path} is corrupt: {st.st_size:,} bytes whose SHA-256 differs "
                f"from {sums.name} (truncated or altered copy). Restore it with "
                f"`git checkout -- data/{relpath}` (or re-clone); it was not modified.")
    _VERIFIED.add(memo)
    return path


def _is_integer_valued(x) -> bool:
    vals = x.data if sp.issparse(x) else np.asarray(x).ravel()
    if vals.size == 0:
        return True
    sample = vals[: min(vals.size, 2_000_000)]
    return bool(np.all(sample >= 0) and np.all(np.equal(np.mod(sample, 1), 0)))


def validate_counts(adata: ad.AnnData, layer: str | None = None) -> None:
    """Check that ``adata.X`` (or ``adata.layers[layer]``) holds raw non-negative integer counts.

    Parameters
    ----------
    adata
        AnnData of shape (n_cells, n_genes).
    layer
        Layer holding the counts; ``None`` means ``X``.

    Raises
    ------
    DataValidationError
        If the layer is missing, or values are negative or non-integer (e.g. log1p-normalised
        data), with the fix (point ``counts_layer`` to raw counts).
    """
    if layer is not None and layer not in adata.layers:
        raise DataValidationError(
            f"Counts layer {layer!r} not found; available layers: {list(adata.layers)}. "
            "Pass counts_layer=None to use X, or the name of the layer holding raw UMI counts."
        )
    x = adata.X if layer is None else adata.layers[layer]
    if x is None:
        raise DataValidationError("adata.X is empty; put raw UMI counts in X or in a layer.")
    if not _is_integer_valued(x):
        where = "X" if layer is None else f"layers[{layer!r}]"
        raise DataValidationError(
            f"{where} does not hold raw integer counts (found negative or non-integer values, "
            "as in log1p- or size-normalised data). scVI and scGPT need raw UMI counts: store "
            "them in a layer (e.g. adata.layers['counts'] = raw) and pass counts_layer='counts'."
        )


def _validate_symbols(adata: ad.AnnData) -> None:
    names = pd.Index(adata.var_names.astype(str))
    n_ens = int(sum(bool(_ENSEMBL_RE.match(n)) for n in names[:5000]))
    if n_ens > 0.5 * min(len(names), 5000):
        raise DataValidationError(
            "var_names look like Ensembl ids (e.g. "
            f"{names[0]!r}); scconcepts needs HGNC gene symbols as var_names. Map them with "
            "scconcepts.data.load_gene_info() (column 'ensembl_ids') or set "
            "adata.var_names = adata.var['feature_name']."
        )
    if names.has_duplicates:
        dup = names[names.duplicated()].unique()[:5].tolist()
        raise DataValidationError(
            f"Duplicated gene symbols in var_names, e.g. {dup}; call adata.var_names_make_unique() "
            "or aggregate duplicated genes first."
        )


def _resolve_path(name_or_path: str | os.PathLike) -> Path:
    key = str(name_or_path)
    if key in BUNDLED_DATASETS:
        return bundled_file(BUNDLED_DATASETS[key])
    path = Path(key)
    if path.suffix != ".h5ad":
        raise DataValidationError(
            f"Unknown dataset {key!r}: give a bundled name ({', '.join(BUNDLED_DATASETS)}) "
            "or the path of an .h5ad file."
        )
    if not path.exists():
        raise FileNotFoundError(f"No such .h5ad file: {path}")
    return path


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    required_obs: Sequence[str] = (),
    counts_layer: str | None = None,
    min_cells: int = 50,
) -> ad.AnnData:
    """Load a bundled dataset by name, or any ``.h5ad`` file, and validate it.

    Parameters
    ----------
    name_or_path
        One of :data:`BUNDLED_DATASETS` (``"kang2018_pbmc_ctrl"``, ``"pbmc4k_10x"``,
        ``"kang2018_pbmc_ifnb"``) or a path to an ``.h5ad`` file.
    required_obs
        ``obs`` columns the caller needs (e.g. ``("cell_type", "donor_id")``).
    counts_layer
        Layer holding raw counts; ``None`` means ``X``. After loading, the counts are always in
        ``X`` (float32 CSR) *and* in ``layers["counts"]``.
    min_cells
        Minimum number of cells.

    Returns
    -------
    AnnData
        Shape (n_cells, n_genes); ``X`` raw counts (float32 CSR), gene symbols as ``var_names``.

    Raises
    ------
    DataValidationError
        Unknown name, non-count data, Ensembl ids instead of symbols, duplicated symbols,
        missing ``obs`` columns or too few cells. Each message names the fix.
    FileNotFoundError
        If the path does not exist.
    """
    path = _resolve_path(name_or_path)
    try:
        adata = ad.read_h5ad(path)
    except Exception as exc:  # h5py raises many types for corrupt files
        raise DataValidationError(
            f"Could not read {path} as AnnData ({type(exc).__name__}: {exc}). Check that the "
            "file is a complete .h5ad (re-download or re-export it with adata.write_h5ad)."
        ) from exc
    validate_counts(adata, counts_layer)
    _validate_symbols(adata)
    missing = [c for c in required_obs if c not in adata.obs.columns]
    if missing:
        raise DataValidationError(
            f"obs column(s) {missing} missing from {path.name}; available: "
            f"{list(adata.obs.columns)}. Add them (adata.obs[{missing[0]!r}] = ...) or rename "
            "the matching column, or use a chapter parameter that does not need them."
        )
    if adata.n_obs < min_cells:
        raise DataValidationError(
            f"{path.name} has {adata.n_obs} cells; at least {min_cells} are needed. Use a "
            "larger dataset or lower min_cells."
        )
    counts = adata.X if counts_layer is None else adata.layers[counts_layer]
    counts = sp.csr_matrix(counts, dtype=np.float32)
    adata.X = counts
    adata.layers["counts"] = counts.copy()
    adata.var_names = adata.var_names.astype(str)
    adata.obs_names = adata.obs_names.astype(str)
    adata.uns["scconcepts_source"] = str(name_or_path)
    return adata


def read_gmt(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a GMT gene-set library (name, description, genes; tab-separated).

    Gene symbols are upper-cased (Enrichr libraries are upper case).

    Returns
    -------
    dict
        Gene-set name -> list of upper-case gene symbols.
    """
    # Not gseapy.read_gmt: we also upper-case (Enrichr vs dataset symbols) and de-duplicate
    # members, and fail loudly on a file with no sets.
    sets: dict[str, list[str]] = {}
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                parts = line.rstrip("\n").split("\t")
                if len(parts) < 3:
                    continue
                if "\0" in line:
                    raise UnicodeError("NUL byte")
                genes = [g.strip().upper() for g in parts[2:] if g.strip()]
                sets[parts[0]] = list(dict.fromkeys(genes))
    except UnicodeError as err:
        raise DataValidationError(
            f"{path} is not a text GMT file ({err}): it is corrupt or binary. Re-download it "
            "or pass another .gmt file (name, description, genes; tab-separated).") from err
    if not sets:
        raise DataValidationError(f"No gene sets parsed from {path}; is it a GMT file?")
    return sets


@lru_cache(maxsize=8)
def _load_gene_sets_cached(name: str) -> dict[str, list[str]]:
    if name in BUNDLED_GENE_SETS:
        return read_gmt(bundled_file(BUNDLED_GENE_SETS[name]))
    if Path(name).exists():
        return read_gmt(name)
    raise DataValidationError(
        f"Unknown gene-set library {name!r}: use one of {list(BUNDLED_GENE_SETS)} or the path "
        "to a .gmt file. (GO_Biological_Process_2025 needs internet: gseapy fetches it by name.)"
    )


def load_gene_sets(name: str = "GO_Biological_Process_2023") -> dict[str, list[str]]:
    """Bundled gene-set library by name (or a ``.gmt`` path): name -> upper-case symbols."""
    # copy the lists too: a caller that edits a set must not alter the cached library
    return {k: list(v) for k, v in _load_gene_sets_cached(name).items()}


@lru_cache(maxsize=1)
def load_gene_info() -> pd.DataFrame:
    """Human gene descriptions (org.Hs.eg.db 3.16 / NCBI Gene 2022-09).

    Returns
    -------
    DataFrame
        Indexed by symbol; columns ``entrez_id``, ``name`` (full name), ``gene_type``,
        ``chromosome``, ``cytoband``, ``ensembl_ids`` (``;``-joined), ``aliases``.
    """
    with gzip.open(bundled_file("genes/human_gene_info.tsv.gz"), "rt") as fh:
        df = pd.read_csv(fh, sep="\t", dtype=str)
    df = df.drop_duplicates("symbol").set_index("symbol")
    return df


def load_cell_cycle_genes() -> dict[str, list[str]]:
    """Regev-lab cell-cycle genes (Tirosh et al. 2016): ``{"S": [...43], "G2M": [...54]}``."""
    lines = bundled_file("genesets/regev_lab_cell_cycle_genes.txt").read_text().split()
    return {"S": lines[:43], "G2M": lines[43:]}


def gene_names(symbols: Iterable[str]) -> pd.Series:
    """Full gene names for ``symbols`` (``""`` where unknown), index = symbols."""
    info = load_gene_info()
    symbols = list(symbols)
    return pd.Series(
        [info["name"].get(s, "") if s in info.index else "" for s in symbols], index=symbols
    )


def describe(adatas: dict[str, ad.AnnData],
             keys: Sequence[str] = ("donor_id", "tissue", "cell_type", "condition")) -> pd.DataFrame:
    """Table 1 analogue: cells, genes and number of distinct metadata values per dataset.

    Returns
    -------
    DataFrame
        Rows: ``# cells``, ``# genes``, ``median UMIs / cell``, ``# <key>`` for each key
        (``—`` when the dataset lacks it); one column per dataset.
    """
    out = {}
    for name, a in adatas.items():
        counts = a.layers["counts"] if "counts" in a.layers else a.X
        col = {"# cells": f"{a.n_obs:,}", "# genes": f"{a.n_vars:,}",
               "median UMIs / cell": f"{np.median(np.asarray(counts.sum(1)).ravel()):,.0f}"}
        for k in keys:
            col[f"# {k}"] = str(a.obs[k].nunique()) if k in a.obs else "—"
        out[name] = col
    return pd.DataFrame(out)


def subsample(adata: ad.AnnData, n: int | None, seed: int, stratify: str | None) -> ad.AnnData:
    """At most ``n`` cells, seeded; proportional per ``obs[stratify]`` label when that column
    exists, so that rare cell types survive in small runs. Returns ``adata`` itself when it has
    no more than ``n`` cells (or ``n`` is None), else a copy."""
    if not n or adata.n_obs <= n:
        return adata
    rng = np.random.default_rng(seed)
    if stratify and stratify in adata.obs:
        groups = adata.obs.groupby(stratify, observed=True).indices
        frac = n / adata.n_obs
        idx = np.concatenate([rng.choice(ix, max(1, int(round(len(ix) * frac))), replace=False)
                              for ix in groups.values()])
    else:
        idx = rng.choice(adata.n_obs, n, replace=False)
    return adata[np.sort(idx)].copy()
