"""scGPT's input side: genes matched to the vocabulary, highly variable genes, deterministic
per-cell value binning and the token/value sequences of the CLS-embedding path.

Split from :mod:`scconcepts.models.scgpt` (which re-exports the public names); see its module
docstring for the embedding path these functions reproduce step by step (genes matched by
symbol, non-zero genes only, per-cell quantile binning, ``<cls>`` first, deterministic
sub-sampling of over-long cells, padding).
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

__all__ = ["SPECIAL_TOKENS", "match_genes", "select_hvgs", "bin_expression", "tokenize"]

SPECIAL_TOKENS = ("<pad>", "<cls>", "<eoc>")
#: ``args.json`` values a checkpoint may omit (whole-human values).
_DEFAULTS = {"pad_token": "<pad>", "pad_value": -2, "n_bins": 51, "n_layers_cls": 3,
             "dropout": 0.2, "input_emb_style": "continuous", "cell_emb_style": "cls"}


def _fmt_keys(keys: Sequence[str], n: int = 8) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


# --------------------------------------------------------------------------------------------
# genes


def _gene_names(adata_or_genes, gene_col: str | None = None) -> list[str]:
    if isinstance(adata_or_genes, ad.AnnData):
        names = adata_or_genes.var[gene_col] if gene_col else adata_or_genes.var_names
        return [str(g) for g in names]
    return [str(g) for g in adata_or_genes]


def _upper_index(vocab: Mapping[str, int]) -> dict[str, str]:
    """Upper-cased token → token, for tokens whose upper-case form is unique."""
    counts: dict[str, int] = {}
    for t in vocab:
        counts[t.upper()] = counts.get(t.upper(), 0) + 1
    return {t.upper(): t for t in vocab if counts[t.upper()] == 1}


def _resolve_tokens(genes: Sequence[str], vocab: Mapping[str, int]) -> list[str | None]:
    upper = None
    out: list[str | None] = []
    for g in genes:
        if g in vocab:
            out.append(g)
            continue
        if upper is None:
            upper = _upper_index(vocab)
        out.append(upper.get(g.upper()))
    return out


def _gene_token_ids(genes: Sequence[str], vocab: Mapping[str, int]) -> np.ndarray:
    tokens = _resolve_tokens(genes, vocab)
    bad = [g for g, t in zip(genes, tokens) if t is None]
    if bad:
        raise ValueError(f"{len(bad)} gene(s) are not in the scGPT vocabulary: "
                         f"{_fmt_keys(bad)}. Restrict to match_genes(...)['found'] first.")
    return np.array([vocab[t] for t in tokens], dtype=np.int64)


def match_genes(adata, vocab: Mapping[str, int], *, gene_col: str | None = None,
                min_fraction: float = 0.1) -> dict:
    """Match a dataset's genes to the scGPT vocabulary by symbol.

    Parameters
    ----------
    adata
        AnnData (gene symbols in ``var_names`` or ``var[gene_col]``) or a sequence of symbols.
    vocab
        Gene symbol → token id (from :func:`~scconcepts.models.scgpt.load_checkpoint`).
    gene_col
        Column of ``adata.var`` with the symbols; default ``var_names``.
    min_fraction
        Raise if fewer than this fraction of genes match.

    Returns
    -------
    dict
        ``n_genes``, ``n_found``, ``n_missing``, ``fraction_found``, ``found`` (dataset names
        found, dataset order), ``missing`` (names not found), ``tokens`` (vocabulary token of
        each found gene: the name itself, or its case-insensitive match). Special tokens
        (``<pad>`` ...) never match.

    Raises
    ------
    ValueError
        If fewer than ``min_fraction`` of the genes match; the usual cause is Ensembl ids
        (``ENSG...``) instead of symbols.
    """
    genes = _gene_names(adata, gene_col)
    vocab_genes = {k: v for k, v in vocab.items() if k not in SPECIAL_TOKENS}
    tokens = _resolve_tokens(genes, vocab_genes)
    found = [g for g, t in zip(genes, tokens) if t is not None]
    missing = [g for g, t in zip(genes, tokens) if t is None]
    report = {"n_genes": len(genes), "n_found": len(found), "n_missing": len(missing),
              "fraction_found": len(found) / max(len(genes), 1), "found": found,
              "missing": missing, "tokens": [t for t in tokens if t is not None]}
    if report["fraction_found"] < min_fraction:
        n_ens = sum(g.upper().startswith("ENS") for g in genes)
        cause = (f"{n_ens:,} of {len(genes):,} names look like Ensembl ids: scGPT's vocabulary "
                 "is gene symbols; put symbols in var_names or pass gene_col (e.g. "
                 "'feature_name'; scconcepts.data.load_gene_info maps Ensembl ↔ symbol)"
                 if n_ens > len(genes) / 2 else
                 "scGPT's vocabulary is human HGNC gene symbols: are these human symbols?")
        raise ValueError(f"Only {len(found):,} of {len(genes):,} genes "
                         f"({report['fraction_found']:.1%}) are in the scGPT vocabulary "
                         f"(e.g. missing: {_fmt_keys(missing, 5)}). {cause}.")
    return report


def _counts(adata: ad.AnnData, layer: str | None):
    return adata.layers[layer] if layer is not None else adata.X


def select_hvgs(adata: ad.AnnData, n_top_genes: int = 1200, *,
                vocab: Mapping[str, int] | None = None, layer: str | None = None,
                flavor: str = "seurat_v3", batch_key: str | None = None) -> list[str]:
    """Highly variable genes among those in the scGPT vocabulary (paper: 1,200).

    Parameters
    ----------
    adata
        Raw integer counts in ``X`` (or ``layers[layer]``), shape (n_cells, n_genes).
    n_top_genes
        Number of genes to keep; if no more genes than that match, all matched genes are kept.
    vocab
        When given, only genes found by :func:`match_genes` are candidates.
    flavor
        ``"seurat_v3"`` (scanpy, on raw counts; needs ``scikit-misc``) or ``"seurat"`` (on
        ``log1p(normalize_total(counts))``). ``"seurat_v3"`` falls back to ``"seurat"`` with a
        warning if scikit-misc is missing.
    batch_key
        Optional ``obs`` column passed to scanpy.

    Returns
    -------
    list of str
        Gene names as in ``adata.var_names``, in dataset order (not rank order).
        Deterministic: both flavours involve no randomness.
    """
    import scanpy as sc

    genes = match_genes(adata, vocab)["found"] if vocab is not None else list(adata.var_names)
    if len(genes) <= n_top_genes:
        return list(genes)
    sub = ad.AnnData(X=_counts(adata[:, genes], layer).copy(), obs=adata.obs[[]].copy(),
                     var=adata[:, genes].var[[]].copy())
    if batch_key is not None:
        sub.obs[batch_key] = adata.obs[batch_key].values
    if flavor == "seurat_v3":
        try:
            import skmisc.loess  # noqa: F401
        except ImportError:
            warnings.warn("scikit-misc is not installed: using flavor='seurat' on log1p of "
                          "normalised counts instead of 'seurat_v3'.", stacklevel=2)
            flavor = "seurat"
    if flavor != "seurat_v3":
        sc.pp.normalize_total(sub, target_sum=1e4)
        sc.pp.log1p(sub)
    hv = sc.pp.highly_variable_genes(sub, n_top_genes=n_top_genes, flavor=flavor,
                                     batch_key=batch_key, inplace=False)
    mask = np.asarray(hv["highly_variable"], dtype=bool)
    return [g for g, keep in zip(genes, mask) if keep]


# --------------------------------------------------------------------------------------------
# binning and tokenisation


def _bin_values(values: np.ndarray, n_bins: int, ties: str = "mid") -> np.ndarray:
    """Bins (1..n_bins-1) of one cell's non-zero values; see :func:`bin_expression`."""
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    edges = np.quantile(values, np.linspace(0, 1, n_bins - 1))
    left = np.digitize(values, edges)               # edges[i-1] <= v < edges[i]
    if ties == "high":
        return left.astype(np.int64)
    right = np.digitize(values, edges, right=True)  # edges[i-1] <  v <= edges[i]
    low = np.minimum(right + 1, left)               # scGPT draws uniformly from low..left
    if ties == "low":
        return low.astype(np.int64)
    if ties != "mid":
        raise ValueError(f"ties must be 'mid', 'low' or 'high', got {ties!r}")
    return ((low + left) // 2).astype(np.int64)


def _check_values(values: np.ndarray) -> None:
    if values.size and (not np.all(np.isfinite(values)) or values.min() < 0):
        raise ValueError("Expression values must be finite and non-negative (raw counts).")


def bin_expression(counts, n_bins: int = 51, *, ties: str = "mid") -> np.ndarray:
    """Deterministic version of scGPT's per-cell value binning.

    Parameters
    ----------
    counts
        Raw counts of one cell (1-D) or of cells × genes (2-D; dense or scipy sparse). Any
        strictly increasing per-cell transform (``normalize_total``, ``log1p``) gives the same
        bins.
    n_bins
        51 for whole-human: zeros → 0, non-zero values → 1..``n_bins - 1``.
    ties
        How to place values equal to a bin edge shared by several edges (i.e. tied values):
        ``"mid"`` (default), ``"low"`` or ``"high"``; see Notes.

    Returns
    -------
    numpy.ndarray
        int64, same shape as ``counts`` (dense), values in [0, ``n_bins - 1``].

    Raises
    ------
    ValueError
        On negative or non-finite values.

    Notes
    -----
    For each cell, with ``v`` its non-zero values (``scgpt.preprocess.binning``)::

        edges = np.quantile(v, np.linspace(0, 1, n_bins - 1))
        left  = np.digitize(v, edges)               # edges[i-1] <= v <  edges[i]
        right = np.digitize(v, edges, right=True)   # edges[i-1] <  v <= edges[i]

    scGPT's ``_digitize`` returns ``ceil(u * (right - left) + left)`` with ``u ~ U[0, 1)``
    drawn per value, i.e. ``left`` when ``v`` lies strictly inside a bin or on one edge, and a
    uniform random integer in ``right+1 .. left`` when ``v`` equals several (tied) edges, which
    happens exactly when values are tied. We return instead ``(low + left) // 2`` with
    ``low = min(right + 1, left)``: the (lower) median of the bins scGPT draws from
    (``ties="low"``/``"high"`` give the ends; ``"high"`` is scGPT's ``_digitize(side="one")``).
    Without ties ``low == left`` and the result equals scGPT's binning exactly. An all-zero cell
    gives all zeros (scGPT: same, with a warning).
    """
    if sp.issparse(counts):
        X = sp.csr_matrix(counts, dtype=np.float64)
        X.eliminate_zeros()
        _check_values(X.data)
        out = np.zeros(X.shape, dtype=np.int64)
        for i in range(X.shape[0]):
            lo, hi = X.indptr[i], X.indptr[i + 1]
            out[i, X.indices[lo:hi]] = _bin_values(X.data[lo:hi], n_bins, ties)
        return out
    x = np.asarray(counts, dtype=np.float64)
    if x.ndim not in (1, 2):
        raise ValueError(f"counts must be 1-D or 2-D, got shape {x.shape}")
    _check_values(x)
    rows = x[None] if x.ndim == 1 else x
    out = np.zeros(rows.shape, dtype=np.int64)
    for i, row in enumerate(rows):
        nz = np.flatnonzero(row)
        out[i, nz] = _bin_values(row[nz], n_bins, ties)
    return out[0] if x.ndim == 1 else out


class _Tokenizer:
    """Per-cell (gene id, value) sequences exactly as ``get_batch_cell_embeddings`` builds them,
    with deterministic binning and sub-sampling."""

    def __init__(self, gene_ids: np.ndarray, cls_id: int, pad_id: int, pad_value: float,
                 n_bins: int, max_len: int, seed: int, ties: str):
        if max_len < 2:
            raise ValueError("max_len must be >= 2 (<cls> plus at least one gene).")
        self.gene_ids, self.cls_id, self.pad_id = gene_ids, int(cls_id), int(pad_id)
        self.pad_value, self.n_bins, self.max_len, self.ties = pad_value, n_bins, max_len, ties
        # One fixed random priority per gene of the panel: an over-long cell keeps its
        # max_len-1 non-zero genes of highest priority: a uniform random subset, as scGPT's
        # randperm, but a deterministic function of the cell that changes by at most one gene
        # when one gene of the cell is perturbed.
        self.priority = np.random.default_rng(seed).random(len(gene_ids))

    def length(self, nnz: int) -> int:
        return min(nnz + 1, self.max_len)

    def cell(self, idx: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        bins = _bin_values(values, self.n_bins, self.ties)  # over ALL non-zero genes, as scGPT
        if len(idx) > self.max_len - 1:
            keep = np.sort(np.argsort(-self.priority[idx], kind="stable")[: self.max_len - 1])
            idx, bins = idx[keep], bins[keep]
        ids = np.concatenate([[self.cls_id], self.gene_ids[idx]])
        vals = np.concatenate([[self.pad_value], bins]).astype(np.float32)
        return ids, vals

    def batch(self, X: sp.csr_matrix, rows: Sequence[int]):
        cells = [self.cell(X.indices[X.indptr[r]:X.indptr[r + 1]],
                           X.data[X.indptr[r]:X.indptr[r + 1]]) for r in rows]
        L = max(len(c[0]) for c in cells)
        ids = np.full((len(cells), L), self.pad_id, dtype=np.int64)
        vals = np.full((len(cells), L), self.pad_value, dtype=np.float32)
        for j, (i, v) in enumerate(cells):
            ids[j, : len(i)] = i
            vals[j, : len(v)] = v
        ids_t = torch.from_numpy(ids)
        return ids_t, torch.from_numpy(vals), ids_t.eq(self.pad_id)


def _as_csr(X) -> sp.csr_matrix:
    if isinstance(X, torch.Tensor):
        X = X.detach().cpu().numpy()
    X = sp.csr_matrix(X, dtype=np.float64)
    X.eliminate_zeros()
    X.sort_indices()
    _check_values(X.data)
    return X


def _settings(model, vocab: Mapping[str, int], n_bins, pad_value) -> dict:
    args = {**_DEFAULTS, **getattr(model, "scconcepts_args", {})} if model is not None \
        else dict(_DEFAULTS)
    pad_token = args["pad_token"]
    for tok in (pad_token, "<cls>"):
        if tok not in vocab:
            raise ValueError(f"The vocabulary has no {tok!r} token; is it a scGPT vocab.json?")
    return {"n_bins": int(n_bins if n_bins is not None else args["n_bins"]),
            "pad_value": float(pad_value if pad_value is not None else args["pad_value"]),
            "pad_id": vocab[pad_token], "cls_id": vocab["<cls>"]}


def _matrix_and_genes(data, genes, vocab, layer):
    if isinstance(data, ad.AnnData):
        if genes is None:
            genes = match_genes(data, vocab)["found"]
        idx = data.var_names.get_indexer(list(genes))
        if (idx < 0).any():
            bad = [g for g, i in zip(genes, idx) if i < 0]
            raise ValueError(f"genes not in adata.var_names: {_fmt_keys(bad)}")
        return _as_csr(_counts(data, layer)[:, idx]), list(genes)
    if genes is None:
        raise ValueError("genes (the column names of the matrix) are required for a matrix.")
    X = _as_csr(data)
    if X.shape[1] != len(genes):
        raise ValueError(f"matrix has {X.shape[1]} columns but {len(genes)} genes were given.")
    return X, list(genes)


def tokenize(data, genes: Sequence[str] | None, vocab: Mapping[str, int], max_len: int = 1200,
             *, n_bins: int = 51, pad_value: float = -2, pad_token: str = "<pad>",
             seed: int = 0, ties: str = "mid", layer: str | None = None) -> dict:
    """Token and value sequences of cells, as scGPT's CLS-embedding path builds them.

    Parameters
    ----------
    data
        AnnData (raw counts in ``X`` or ``layers[layer]``) or a matrix (n_cells, len(genes)) of
        raw counts (numpy, scipy sparse or torch).
    genes
        Genes to use (the matrix's columns; for AnnData, names in ``var_names``; ``None`` = all
        genes of the AnnData found in ``vocab``). Matched to ``vocab`` by symbol.
    vocab
        Gene symbol → token id, with ``<cls>`` and ``pad_token``.
    max_len
        Maximum sequence length *including* ``<cls>`` (whole-human: 1200).
    n_bins, ties
        Binning (:func:`bin_expression`).
    pad_value
        Value of the ``<cls>`` token and of padding (whole-human ``args.json``: −2).
    seed
        Seeds the fixed per-gene priority used to sub-sample over-long cells.

    Returns
    -------
    dict
        ``gene_ids`` (LongTensor, n_cells × L), ``values`` (FloatTensor, n_cells × L; bins),
        ``padding_mask`` (BoolTensor, True at padding), ``lengths`` (numpy int, tokens per cell
        incl. ``<cls>``), with ``L = min(max_len, longest cell)``.

    Notes
    -----
    Per cell: its non-zero genes (``include_zero_gene=False``) in ``genes`` order, values
    binned over *all* of them; ``<cls>`` prepended with value ``pad_value``; if longer than
    ``max_len``, the ``max_len - 1`` non-zero genes of highest fixed random priority are kept
    (scGPT: ``torch.randperm``, a uniform random subset, different at each call); padded with
    ``pad_token`` / ``pad_value``. Gene order inside a sequence does not change the CLS output
    (no positional encoding).
    """
    X, genes = _matrix_and_genes(data, genes, vocab, layer)
    s = _settings(None, vocab, n_bins, pad_value)
    s["pad_id"] = vocab[pad_token]
    tok = _Tokenizer(_gene_token_ids(genes, vocab), s["cls_id"], s["pad_id"], s["pad_value"],
                     s["n_bins"], max_len, seed, ties)
    ids, vals, mask = tok.batch(X, range(X.shape[0]))
    return {"gene_ids": ids, "values": vals, "padding_mask": mask,
            "lengths": np.array([tok.length(n) for n in np.diff(X.indptr)])}
