"""Paper scale: chunked, resumable embeddings on disk, and attribution sharded by unit range.

At the paper's scale (Tabula Sapiens Immune, 592,317 cells × ~60k genes) neither the count matrix
nor a single forward pass over all cells fits comfortably in memory, and a multi-hour GPU run
must survive being interrupted. This module holds the two mechanisms the pipeline needs for that;
both work with any encoder of the package and with the default profile's small data alike.

Chunked embeddings (:func:`embed_in_chunks`)
--------------------------------------------
The cells of a dataset (an ``.h5ad`` read *backed*, ``anndata.read_h5ad(path, backed="r")``, so
only one chunk of rows is ever in memory) are encoded ``chunk_size`` cells at a time by an
``encode(chunk: AnnData) -> ndarray (n_chunk, d)`` callable (:func:`scvi_chunk_encoder`,
:func:`scgpt_chunk_encoder`, or any other). Each finished chunk is written into a float32 ``.npy``
memory map (``embeddings.npy``, shape (n_cells, d)) and flushed, and only then recorded in a small
JSON manifest (``manifest.json``, written atomically). A run that is killed or raises resumes from
the manifest: finished chunks are never recomputed, a chunk that was being written when the run
died is simply recomputed. Peak memory is bounded by one chunk (its counts, the encoder's
activations) plus the memory map's dirty pages, not by the dataset.

Attribution sharding (:func:`shard_units`, :func:`run_shard`, :func:`merge_shards`)
-----------------------------------------------------------------------------------
Attribution (Eq 1–3) is independent per unit (concept or neuron), so several GPU jobs can each
take a contiguous range of the units — shard ``i`` of ``n`` (papermill parameters
``attribution_shard_index`` / ``attribution_shard_count``) — and write one
:class:`~scconcepts.attribution.AttributionResult` each; a final step merges them with
:meth:`AttributionResult.concat` after checking that every shard is present and that the union of
their units is exactly the requested set.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable, Sequence

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from .scale_shards import merge_shards, run_shard, shard_path, shard_units
from .utils import atomic_write, resolve_device

__all__ = [
    "MANIFEST_NAME",
    "EMBEDDINGS_NAME",
    "ChunkedEmbeddingError",
    "open_backed",
    "chunk_bounds",
    "embed_in_chunks",
    "embedding_progress",
    "scvi_chunk_encoder",
    "scgpt_chunk_encoder",
    "autocast_context",
    "shard_units",
    "shard_path",
    "run_shard",
    "merge_shards",
    "peak_rss_gb",
]

MANIFEST_NAME = "manifest.json"
EMBEDDINGS_NAME = "embeddings.npy"
_MANIFEST_VERSION = 1

Encoder = Callable[[ad.AnnData], np.ndarray]


class ChunkedEmbeddingError(RuntimeError):
    """A chunked-embedding folder cannot be resumed; the message says why and what to do."""


# --------------------------------------------------------------------------------------------
# reading


def open_backed(source: str | os.PathLike | ad.AnnData) -> ad.AnnData:
    """An AnnData whose rows can be read chunk by chunk.

    Parameters
    ----------
    source
        Path of an ``.h5ad`` file (opened with ``anndata.read_h5ad(path, backed="r")``: ``X``
        stays on disk) or an AnnData already in memory (returned as is).

    Raises
    ------
    FileNotFoundError
        If the path does not exist.
    ValueError
        If the file cannot be opened as AnnData (truncated or not an ``.h5ad``).
    """
    if isinstance(source, ad.AnnData):
        return source
    path = Path(source)
    if not path.is_file():
        raise FileNotFoundError(f"No such .h5ad file: {path}")
    try:
        return ad.read_h5ad(path, backed="r")
    except Exception as exc:  # h5py raises many types for corrupt files
        raise ValueError(f"Cannot open {path} as a backed AnnData ({type(exc).__name__}: {exc}). "
                         "The file is incomplete or corrupt: download or write it again.") from exc


def chunk_bounds(n_obs: int, chunk_size: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n_obs)`` in chunks of ``chunk_size`` rows."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    return [(s, min(s + chunk_size, n_obs)) for s in range(0, n_obs, chunk_size)]


def _read_rows(adata: ad.AnnData, start: int, stop: int) -> ad.AnnData:
    chunk = adata[start:stop]
    return chunk.to_memory() if adata.isbacked else chunk.copy()


# --------------------------------------------------------------------------------------------
# chunked embedding with a resumable on-disk store


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ChunkedEmbeddingError(
            f"{path} is unreadable ({exc}). It is written atomically, so this is not an "
            f"interrupted run: delete the folder {folder} and run again.") from exc


def _write_manifest(folder: Path, manifest: dict) -> None:
    atomic_write(folder / MANIFEST_NAME,
                 lambda tmp: Path(tmp).write_text(json.dumps(manifest, indent=1, sort_keys=True)))


def embedding_progress(folder: str | os.PathLike) -> dict:
    """State of a chunked-embedding folder: ``{"done", "total", "complete", "n_obs", "dim"}``.

    Returns ``{"done": 0, "total": None, "complete": False, ...}`` when nothing was written yet.
    """
    m = _read_manifest(Path(folder))
    if m is None:
        return {"done": 0, "total": None, "complete": False, "n_obs": None, "dim": None}
    total = len(chunk_bounds(m["n_obs"], m["chunk_size"]))
    return {"done": len(m["done"]), "total": total, "complete": len(m["done"]) == total,
            "n_obs": m["n_obs"], "dim": m["dim"]}


def embed_in_chunks(
    source: str | os.PathLike | ad.AnnData,
    encode: Encoder,
    out_dir: str | os.PathLike,
    *,
    chunk_size: int = 10_000,
    key: dict | str | None = None,
    progress: bool = True,
) -> np.ndarray:
    """Embed every cell of ``source`` chunk by chunk into ``out_dir``, resuming a previous run.

    Parameters
    ----------
    source
        ``.h5ad`` path (read backed: one chunk of rows in memory at a time) or an AnnData.
        Whatever the encoder needs must be in it (raw counts in ``X`` for scVI and scGPT).
    encode
        ``encode(chunk) -> array (n_chunk, d)``: float embeddings of the chunk's cells in order
        (e.g. :func:`scvi_chunk_encoder`, :func:`scgpt_chunk_encoder`). It must be deterministic
        per cell (not depend on which other cells share the chunk) for a resumed run to equal an
        uninterrupted one; the package's scVI and scGPT encoders are.
    out_dir
        Folder of the store: ``embeddings.npy`` (float32 memory map, (n_cells, d)) and
        ``manifest.json`` (``n_obs``, ``dim``, ``chunk_size``, ``key``, finished chunk indices).
    chunk_size
        Cells per chunk; memory is bounded by one chunk. Resuming requires the same value.
    key
        What identifies the computation (model checkpoint, dataset, seed, ...); JSON-serialisable.
        A folder made with another key is never reused silently.
    progress
        tqdm bar over chunks.

    Returns
    -------
    numpy.memmap
        Read-only float32 array of shape (n_cells, d), row i = cell i of ``source``.

    Raises
    ------
    ChunkedEmbeddingError
        If ``out_dir`` holds a store made for another dataset size, chunk size or key, or its
        ``embeddings.npy`` is missing, truncated or of another shape (the message says to delete
        the folder or pick another one).
    ValueError
        If ``encode`` returns the wrong number of rows, another width than earlier chunks, or
        non-finite values.

    Notes
    -----
    Order of writes per chunk: rows into the memory map, ``flush()`` (msync), then the manifest
    (temporary file + ``os.replace``). A crash between the two recomputes that chunk; a crash
    can never mark a chunk done whose rows were not written.
    """
    from tqdm import tqdm

    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    adata = open_backed(source)
    n_obs = int(adata.n_obs)
    bounds = chunk_bounds(n_obs, chunk_size)
    key_json = json.loads(json.dumps(key, sort_keys=True, default=str))
    data_path = folder / EMBEDDINGS_NAME

    manifest = _read_manifest(folder)
    mm = None
    if manifest is not None:
        expected = {"n_obs": n_obs, "chunk_size": int(chunk_size), "key": key_json}
        found = {k: manifest.get(k) for k in expected}
        if found != expected:
            raise ChunkedEmbeddingError(
                f"{folder} holds embeddings of another run ({found}) than this one "
                f"({expected}). Delete the folder to recompute, or choose another out_dir.")
        try:
            mm = np.load(data_path, mmap_mode="r+")
        except (OSError, ValueError) as exc:
            raise ChunkedEmbeddingError(
                f"{data_path} is missing or corrupt ({type(exc).__name__}: {exc}) while "
                f"{MANIFEST_NAME} lists {len(manifest['done'])} finished chunks. Delete {folder} "
                "and run again.") from exc
        if mm.shape != (n_obs, manifest["dim"]) or mm.dtype != np.float32:
            raise ChunkedEmbeddingError(
                f"{data_path} has shape {mm.shape} ({mm.dtype}) but the manifest says "
                f"({n_obs}, {manifest['dim']}) float32. Delete {folder} and run again.")
    done = set(manifest["done"]) if manifest else set()
    todo = [i for i in range(len(bounds)) if i not in done]
    bar = tqdm(todo, desc="embedding chunks", unit="chunk", disable=not progress,
               initial=len(done), total=len(bounds))
    for i in bar:
        start, stop = bounds[i]
        z = np.asarray(encode(_read_rows(adata, start, stop)), dtype=np.float32)
        if z.ndim != 2 or z.shape[0] != stop - start:
            raise ValueError(f"encode returned shape {z.shape} for chunk {i} of {stop - start} "
                             "cells; it must return one row per cell, in order.")
        if not np.isfinite(z).all():
            raise ValueError(f"encode returned NaN/inf for chunk {i} (cells {start}..{stop - 1}); "
                             "check the input counts of those cells.")
        if mm is None:  # first chunk of a fresh store: now the width is known
            mm = np.lib.format.open_memmap(data_path, mode="w+", dtype=np.float32,
                                           shape=(n_obs, z.shape[1]))
            manifest = {"version": _MANIFEST_VERSION, "n_obs": n_obs, "dim": int(z.shape[1]),
                        "chunk_size": int(chunk_size), "key": key_json, "done": [],
                        "source": str(source) if not isinstance(source, ad.AnnData) else None}
        elif z.shape[1] != mm.shape[1]:
            raise ValueError(f"encode returned width {z.shape[1]} for chunk {i} but earlier "
                             f"chunks have {mm.shape[1]}.")
        mm[start:stop] = z
        mm.flush()
        done.add(i)
        manifest["done"] = sorted(done)
        manifest["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        _write_manifest(folder, manifest)
    if mm is None:  # n_obs == 0
        raise ValueError("source has no cells to embed.")
    del mm
    return np.load(data_path, mmap_mode="r")


# --------------------------------------------------------------------------------------------
# encoders for chunks


def autocast_context(device: torch.device, amp: bool):
    """Mixed-precision context: fp16 autocast on CUDA, bf16 on CPU, or nothing if ``amp`` is off."""
    if not amp:
        return nullcontext()
    dtype = torch.float16 if device.type == "cuda" else torch.bfloat16
    return torch.autocast(device_type=device.type, dtype=dtype)


def _selection_matrix(source_genes: Sequence[str], model_genes: Sequence[str]) -> tuple[sp.csr_matrix, int]:
    """Sparse P (n_source, n_model) with P[i, j] = 1 when source gene i is model gene j."""
    pos = {g: i for i, g in enumerate(source_genes)}
    cols = [j for j, g in enumerate(model_genes) if g in pos]
    rows = [pos[model_genes[j]] for j in cols]
    P = sp.csr_matrix((np.ones(len(cols), np.float32), (rows, cols)),
                      shape=(len(source_genes), len(model_genes)))
    return P, len(cols)


def scvi_chunk_encoder(model, model_genes: Sequence[str] | None = None, *,
                       gene_column: str | None = None, layer: str | None = None,
                       device: str | torch.device | None = None, amp: bool = False,
                       batch_size: int = 4096, min_overlap: float = 0.2) -> Encoder:
    """Chunk encoder for a trained (or Census) scVI: raw counts → posterior means (n, n_latent).

    The encoder network is :func:`scconcepts.models.scvi.encoder_fn` (``qz.loc``, batch-free as
    ``encode_covariates=False``), the same f that attribution uses; it equals
    ``SCVI.get_latent_representation(give_mean=True)`` on the same cells. Query genes are aligned
    to the model's genes as ``SCVI.prepare_query_anndata`` does (model order, missing genes
    zero-filled) but with a sparse column selection computed once, because
    ``prepare_query_anndata`` copies and pads a whole AnnData per call.

    Parameters
    ----------
    model
        ``scvi.model.SCVI`` (reference or query model from ``load_query_data``).
    model_genes
        The model's input genes in order (default ``model.adata.var_names``; for the Census
        model these are Ensembl ids, see :func:`scconcepts.models.scvi.reference_genes`).
    gene_column
        ``var`` column of the chunks holding ids of the model's kind (e.g. ``"feature_id"`` for
        the Census model); ``None`` uses ``var_names``.
    layer
        Layer with raw counts; ``None`` uses ``X``.
    device
        ``None``/``"auto"``: CUDA when available, else CPU.
    amp
        Mixed precision (fp16 on CUDA, bf16 on CPU). Tolerance: measured on the project's scVI
        (tests/test_scale.py), bf16 autocast changes posterior means by at most 5e-2 in absolute
        value (latent values have standard deviation ~1), i.e. below 5 % of one latent unit; fp16
        (10-bit mantissa, 3 more than bf16) is tighter. Off by default: attribution drops are
        small differences and need float32.
    batch_size
        Cells per forward pass inside a chunk.
    min_overlap
        Minimum fraction of model genes found among the chunk's genes.

    Returns
    -------
    callable
        ``encode(chunk: AnnData) -> ndarray`` float32, shape (n_cells, n_latent).

    Raises
    ------
    scconcepts.data.DataValidationError
        (when called) if the counts are not raw integers (log-normalised data), or fewer than
        ``min_overlap`` of the model genes are found — typically gene symbols where the model
        wants Ensembl ids or the reverse; the message names the fix.
    """
    from .data import DataValidationError, validate_counts
    from .models import scvi as ms

    dev = resolve_device(device)
    f = ms.encoder_fn(model)          # puts the module in eval mode (on CPU) ...
    model.module.to(dev)              # ... and f uses that same module object, now on dev
    genes = list(model_genes) if model_genes is not None else list(model.adata.var_names)
    cache: dict[int, sp.csr_matrix] = {}

    def encode(chunk: ad.AnnData) -> np.ndarray:
        validate_counts(chunk, layer)
        src = (chunk.var_names if gene_column is None else chunk.var[gene_column]).astype(str)
        sig = hash(tuple(src))
        if sig not in cache:
            P, n_found = _selection_matrix(list(src), genes)
            if n_found < min_overlap * len(genes):
                where = "var_names" if gene_column is None else f"var[{gene_column!r}]"
                raise DataValidationError(
                    f"Only {n_found}/{len(genes)} scVI model genes found in the chunk's {where} "
                    f"(e.g. {list(src[:3])}); the model expects ids like {genes[:3]}. For the "
                    "Census scVI model use Ensembl ids: gene_column='feature_id'; for a model "
                    "trained on symbols use var_names.")
            cache[sig] = P
        X = chunk.X if layer is None else chunk.layers[layer]
        X = sp.csr_matrix(X, dtype=np.float32) @ cache[sig]
        out = np.empty((X.shape[0], model.module.n_latent), np.float32)
        with torch.no_grad(), autocast_context(dev, amp):
            for s in range(0, X.shape[0], batch_size):
                x = torch.from_numpy(X[s:s + batch_size].toarray()).to(dev)
                out[s:s + batch_size] = f(x).float().cpu().numpy()
        return out

    return encode


def scgpt_chunk_encoder(model, vocab, genes: Sequence[str] | None = None, *, seed: int = 0,
                        batch_size: int = 32, device: str | torch.device | None = None,
                        amp: bool = False, max_len: int = 1200) -> Encoder:
    """Chunk encoder for scGPT: raw counts → L2-normalised CLS embeddings (n, d_model).

    A thin wrapper of :func:`scconcepts.models.scgpt.embed` (deterministic binning, fixed-priority
    sub-sampling of over-long cells), so each cell's embedding does not depend on its chunk.

    Parameters
    ----------
    model, vocab
        From :func:`scconcepts.models.scgpt.load_checkpoint` (whole-human or the project's).
    genes
        Genes to use (``None``: every gene of the chunk found in ``vocab``, by symbol).
    amp
        fp16 autocast on CUDA (as ``scgpt.tasks.embed_data``); embeddings move by ~1e-3 (unit-norm
        vectors; stated in :func:`scconcepts.models.scgpt.embed`). Ignored on CPU.
    seed, batch_size, device, max_len
        As in :func:`scconcepts.models.scgpt.embed`.

    Returns
    -------
    callable
        ``encode(chunk: AnnData) -> ndarray`` float32, shape (n_cells, d_model).
    """
    from .models import scgpt as ms

    def encode(chunk: ad.AnnData) -> np.ndarray:
        return ms.embed(model, vocab, chunk, genes=genes, batch_size=batch_size, device=device,
                        max_len=max_len, seed=seed, amp=amp, progress=False)

    return encode


# --------------------------------------------------------------------------------------------
# measurement


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far, in GB (10^9 bytes; ``getrusage``)."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb * (1 if sys.platform == "darwin" else 1024) / 1e9
