"""scGPT (Cui et al. 2024) through the ``scgpt`` package: checkpoint loading, tokenisation,
deterministic binning, CLS cell embeddings, and the encoder f used by attribution.

Install
-------
``pip install scgpt`` breaks this environment (it pins scvi-tools < 1 and torchtext, whose C++
ops cannot load with torch >= 2.4). Install the package alone plus the runtime dependencies it
really imports::

    pip install --no-deps scgpt==0.2.4
    pip install ipython datasets

and let :func:`import_scgpt` register the pure-Python ``torchtext.vocab`` stand-in
(:mod:`scconcepts.models._torchtext_stub`) before importing it. flash-attn is not needed: the
model is built with PyTorch attention (``use_fast_transformer=False``) and the flash-attention
parameter names of the official checkpoint are mapped (``Wqkv`` → ``in_proj``).

Checkpoint format (scGPT "whole-human", ``scGPT_human``)
--------------------------------------------------------
A folder with ``args.json`` (run hyper-parameters: ``embsize``, ``nheads``, ``d_hid``,
``nlayers``, ``n_layers_cls``, ``dropout``, ``pad_token``, ``pad_value``, ``n_bins``,
``input_emb_style``, ...), ``vocab.json`` (gene symbol → token id, consecutive ids, with the
specials ``<pad>``, ``<cls>``, ``<eoc>``) and ``best_model.pt`` (a ``state_dict``). The model is
built as ``scgpt.tasks.cell_emb.embed_data`` builds it. :func:`load_checkpoint` loads it
**strictly** (unlike ``scgpt.utils.load_pretrained``, which silently skips missing, unknown or
mis-shaped parameters).

The embedding path, as in ``scgpt.tasks.cell_emb.embed_data`` / ``get_batch_cell_embeddings``
----------------------------------------------------------------------------------------------
1. Genes are matched to the vocabulary by symbol; unmatched genes are dropped.
2. Each cell keeps only its **non-zero** genes (``include_zero_gene=False``).
3. Their values are **binned per cell** into ``n_bins - 1 = 50`` quantile bins of that cell's
   non-zero values (bins 1..50; zeros would be bin 0). ``embed_data`` bins ``adata.X`` as given:
   the embed path applies no ``normalize_total``/``log1p``. Per-cell quantile binning is
   invariant to any strictly increasing per-cell transform, so raw counts, size-factor normalised
   counts and log1p of either give *identical* bins: we bin raw counts.
4. A ``<cls>`` token is prepended with value ``pad_value`` (−2 for whole-human); it is not
   binned.
5. Sequences longer than ``max_length`` (1200, *including* ``<cls>``) are cut to a random subset
   of ``max_length - 1`` genes (binning happens before this cut); shorter ones are padded with
   ``<pad>`` / ``pad_value`` up to the longest sequence of the batch and masked in attention.
6. The cell embedding is the transformer output at the ``<cls>`` position, **L2-normalised**
   per cell (``cell_embeddings / np.linalg.norm(cell_embeddings, axis=1, keepdims=True)``).

Two steps of scGPT are random and are made deterministic here (see :func:`bin_expression` and
:func:`tokenize`): ties between equal values are spread over bins at random (with raw counts,
most non-zero values are 1 or 2, so this is most genes of a cell), and over-long cells are
sub-sampled with ``torch.randperm``. ``embed_data`` also runs under fp16 autocast on CUDA; we run
float32 unless ``amp=True``.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp
import torch

from ..utils import resolve_device

__all__ = [
    "INSTALL_COMMAND",
    "REQUIRED_FILES",
    "import_scgpt",
    "build_model",
    "load_checkpoint",
    "match_genes",
    "select_hvgs",
    "bin_expression",
    "tokenize",
    "embed",
    "encoder_fn",
]

INSTALL_COMMAND = "pip install --no-deps scgpt==0.2.4 && pip install ipython datasets"
REQUIRED_FILES = ("args.json", "vocab.json", "best_model.pt")
SPECIAL_TOKENS = ("<pad>", "<cls>", "<eoc>")
#: Parameters that may be absent from a checkpoint and are then left at their initialisation.
#: ``cls_decoder.*`` is the cell-type classification head (``ClsDecoder``): TransformerModel
#: always creates it, but the whole-human pretraining ran without the CLS objective
#: (``USE_CLS: false``), so ``best_model.pt`` has no such keys. It is unused for embeddings.
OPTIONAL_MISSING_PREFIXES = ("cls_decoder.",)
_REQUIRED_ARGS = ("embsize", "nheads", "d_hid", "nlayers")
_DEFAULTS = {"pad_token": "<pad>", "pad_value": -2, "n_bins": 51, "n_layers_cls": 3,
             "dropout": 0.2, "input_emb_style": "continuous", "cell_emb_style": "cls"}
_WHOLE_HUMAN_HELP = (
    "A scGPT whole-human-format checkpoint folder must contain: args.json (run "
    "hyper-parameters: embsize, nheads, d_hid, nlayers, n_layers_cls, pad_value, n_bins, ...), "
    "vocab.json (gene symbol -> token id, with <pad> and <cls>) and best_model.pt (the model "
    "state_dict). Get the official one ('scGPT_human', 205 MB) from the model zoo linked in the "
    "scGPT README (https://github.com/bowang-lab/scGPT) and pass its folder unchanged."
)


# --------------------------------------------------------------------------------------------
# import


def import_scgpt():
    """Import and return the ``scgpt`` package, registering the torchtext stand-in first.

    Returns
    -------
    module
        The ``scgpt`` package (0.2.4).

    Raises
    ------
    ImportError
        If ``scgpt`` (or one of the modules it imports at import time) is not installed; the
        message gives the exact install command (:data:`INSTALL_COMMAND`).
    """
    from . import _torchtext_stub

    _torchtext_stub.install()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="flash_attn is not installed")
            import scgpt
    except ImportError as exc:
        missing = getattr(exc, "name", None) or str(exc)
        raise ImportError(
            f"scGPT could not be imported ({missing!s} missing). Install it without its pinned "
            f"dependencies (they would replace torch and scvi-tools), plus what it imports:\n"
            f"    {INSTALL_COMMAND}\n"
            "(`make test` / `make book` do this for you.)"
        ) from exc
    return scgpt


# --------------------------------------------------------------------------------------------
# checkpoint


def _read_json(path: Path, what: str) -> dict:
    try:
        with open(path) as fh:
            obj = json.load(fh)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"Cannot read {what} {path}: {exc}. {_WHOLE_HUMAN_HELP}") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path} must hold a JSON object ({what}); got {type(obj).__name__}.")
    return obj


def _check_vocab(vocab: Mapping[str, int], path: Path | str = "vocab") -> dict[str, int]:
    """Validate gene → id (consecutive ids 0..n-1) and append missing specials, as
    ``embed_data`` does (``vocab.append_token`` for ``<pad>``, ``<cls>``, ``<eoc>``)."""
    vocab = {str(k): int(v) for k, v in vocab.items()}
    ids = np.sort(np.fromiter(vocab.values(), dtype=np.int64, count=len(vocab)))
    if len(ids) == 0 or not np.array_equal(ids, np.arange(len(ids))):
        raise ValueError(
            f"{path}: token ids must be unique and consecutive 0..{len(vocab) - 1} (as in "
            "scGPT's GeneVocab); this file is not a scGPT vocabulary.")
    for tok in SPECIAL_TOKENS:
        if tok not in vocab:
            vocab[tok] = len(vocab)
    return vocab


def _model_kwargs(args: Mapping, vocab: Mapping[str, int]) -> dict:
    missing = [k for k in _REQUIRED_ARGS if k not in args]
    if missing:
        raise ValueError(f"args.json lacks {missing}. {_WHOLE_HUMAN_HELP}")
    a = {**_DEFAULTS, **args}
    style = a["input_emb_style"]
    n_input_bins = a.get("n_input_bins")
    if n_input_bins is None and style == "category":  # scGPT tutorials: n_bins + 2
        n_input_bins = int(a["n_bins"]) + 2
    return dict(
        ntoken=len(vocab), d_model=int(a["embsize"]), nhead=int(a["nheads"]),
        d_hid=int(a["d_hid"]), nlayers=int(a["nlayers"]), nlayers_cls=int(a["n_layers_cls"]),
        n_cls=1, vocab=vocab, dropout=float(a["dropout"]), pad_token=a["pad_token"],
        pad_value=a["pad_value"], do_mvc=bool(a.get("MVC", True)), do_dab=False,
        use_batch_labels=False, domain_spec_batchnorm=False, input_emb_style=style,
        n_input_bins=n_input_bins, cell_emb_style=a["cell_emb_style"],
        mvc_decoder_style=a.get("mvc_decoder_style", "inner product"),
        explicit_zero_prob=bool(a.get("explicit_zero_prob", False)),
        use_fast_transformer=False, fast_transformer_backend="flash", pre_norm=False,
    )


def build_model(args: Mapping, vocab: Mapping[str, int]):
    """A fresh ``scgpt.model.TransformerModel`` as ``embed_data`` builds it from ``args.json``.

    Parameters
    ----------
    args
        Run hyper-parameters (``embsize``, ``nheads``, ``d_hid``, ``nlayers`` required;
        ``n_layers_cls`` 3, ``dropout`` 0.2, ``pad_token`` ``"<pad>"``, ``pad_value`` −2,
        ``input_emb_style`` ``"continuous"``, ``cell_emb_style`` ``"cls"``, ``MVC`` True by
        default).
    vocab
        Gene → token id; ``ntoken = len(vocab)``.

    Returns
    -------
    scgpt.model.TransformerModel
        In training mode, randomly initialised, on CPU, with PyTorch attention
        (``use_fast_transformer=False``, parameter names ``self_attn.in_proj_*``), ``n_cls=1``,
        ``do_mvc=MVC``, ``do_dab=False``, no batch labels, no DSBN, ``explicit_zero_prob=False``,
        post-norm.
    """
    scgpt = import_scgpt()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="enable_nested_tensor is True")
        return scgpt.model.TransformerModel(**_model_kwargs(args, vocab))


def _rename_flash(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """flash-attn names → PyTorch names, exactly as ``scgpt.utils.load_pretrained`` does when
    ``use_fast_transformer=False``: ``k.replace("Wqkv.", "in_proj_")`` (so
    ``...self_attn.Wqkv.weight`` → ``...self_attn.in_proj_weight``; same for bias)."""
    return {k.replace("Wqkv.", "in_proj_"): v for k, v in state.items()}


def _fmt_keys(keys: Sequence[str], n: int = 8) -> str:
    keys = list(keys)
    more = f" ... (+{len(keys) - n} more)" if len(keys) > n else ""
    return ", ".join(keys[:n]) + more


def load_checkpoint(folder: str | os.PathLike, device: str | torch.device | None = None):
    """Load a scGPT whole-human-format checkpoint folder, strictly.

    Parameters
    ----------
    folder
        Folder with ``args.json``, ``vocab.json`` and ``best_model.pt`` (e.g. the official
        ``scGPT_human`` download, unchanged, or the project's CPU-size model under ``models/``).
    device
        ``None``/``"auto"``: CUDA when available, else CPU.

    Returns
    -------
    model : scgpt.model.TransformerModel
        In eval mode on ``device``. ``model.scconcepts_args`` holds ``args``;
        ``model.scconcepts_load_report`` says which parameters were left at their
        initialisation (only :data:`OPTIONAL_MISSING_PREFIXES`, e.g. ``cls_decoder.*``).
    vocab : dict
        Gene symbol → token id (``len(vocab)`` = rows of the gene embedding; ``<pad>``,
        ``<cls>``, ``<eoc>`` appended if absent, as ``embed_data`` does).
    args : dict
        The parsed ``args.json``.

    Raises
    ------
    FileNotFoundError
        If the folder or one of :data:`REQUIRED_FILES` is missing (the message lists what a
        whole-human folder must contain and where to get it).
    ValueError
        If ``best_model.pt`` cannot be read or is not a state_dict; if ``vocab.json`` does not
        match the gene-embedding size ("vocab mismatch"); if any model parameter is not in the
        checkpoint (other than :data:`OPTIONAL_MISSING_PREFIXES`), any checkpoint key is unknown
        to the model, or any shape differs. The message names the keys.

    Notes
    -----
    Parameter names saved with flash-attention (``self_attn.Wqkv.weight``/``.bias``) are mapped
    to PyTorch's (``self_attn.in_proj_weight``/``in_proj_bias``) as
    ``scgpt.utils.load_pretrained`` does. Unlike ``load_pretrained``, nothing is skipped
    silently.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"scGPT checkpoint folder {folder} does not exist. "
                                f"{_WHOLE_HUMAN_HELP}")
    missing_files = [f for f in REQUIRED_FILES if not (folder / f).is_file()]
    if missing_files:
        raise FileNotFoundError(f"{folder} lacks {missing_files}. {_WHOLE_HUMAN_HELP}")

    args = _read_json(folder / "args.json", "args.json")
    vocab = _check_vocab(_read_json(folder / "vocab.json", "vocab.json"), folder / "vocab.json")

    ckpt = folder / "best_model.pt"
    try:
        state = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception as exc:  # truncated zip, pickle error, not a torch file, ...
        raise ValueError(f"Cannot read {ckpt} as a PyTorch state_dict ({type(exc).__name__}: "
                         f"{exc}). The file is corrupt or incomplete: download it again.") from exc
    if not isinstance(state, Mapping) or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise ValueError(f"{ckpt} is not a state_dict (a mapping of parameter names to "
                         "tensors); save it with torch.save(model.state_dict(), path).")
    state = _rename_flash(state)

    emb = state.get("encoder.embedding.weight")
    if emb is not None and emb.shape[0] != len(vocab):
        raise ValueError(
            f"vocab mismatch: {folder / 'vocab.json'} has {len(vocab):,} tokens (with "
            f"specials) but best_model.pt's encoder.embedding.weight has {emb.shape[0]:,} rows. "
            "vocab.json and best_model.pt must come from the same scGPT run.")

    model = build_model(args, vocab)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    optional = [k for k in missing if k.startswith(OPTIONAL_MISSING_PREFIXES)]
    missing = [k for k in missing if k not in optional]
    unexpected = [k for k in state if k not in expected]
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
              for k, v in expected.items() if k in state and state[k].shape != v.shape]
    problems = []
    if missing:
        problems.append(f"{len(missing)} model parameter(s) not in the checkpoint (they would "
                        f"stay random): {_fmt_keys(missing)}")
    if unexpected:
        problems.append(f"{len(unexpected)} checkpoint key(s) unknown to the model: "
                        f"{_fmt_keys(unexpected)}")
    if shapes:
        problems.append(f"{len(shapes)} shape mismatch(es): {_fmt_keys(shapes, 5)}")
    if problems:
        raise ValueError(
            f"{ckpt} does not match the TransformerModel built from args.json:\n- "
            + "\n- ".join(problems)
            + "\nFix: use args.json, vocab.json and best_model.pt from the same scGPT run, "
              "unchanged (flash-attention names self_attn.Wqkv.* are accepted and mapped to "
              "self_attn.in_proj_*).")
    result = model.load_state_dict(state, strict=False)
    assert not result.unexpected_keys and set(result.missing_keys) == set(optional)

    model.scconcepts_args = dict(args)
    model.scconcepts_load_report = {"folder": str(folder), "n_loaded": len(state),
                                    "left_at_init": optional}
    return model.to(resolve_device(device)).eval(), vocab, args


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
        Gene symbol → token id (from :func:`load_checkpoint`).
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


# --------------------------------------------------------------------------------------------
# embedding


@contextmanager
def _mha_fastpath(enabled: bool):
    prev = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(enabled)
    try:
        yield
    finally:
        torch.backends.mha.set_fastpath_enabled(prev)


def _embed_csr(model, tok: _Tokenizer, X: sp.csr_matrix, batch_size: int,
               device: torch.device, normalize: bool, amp: bool, progress: bool) -> np.ndarray:
    from tqdm import tqdm

    n = X.shape[0]
    d = model.d_model
    out = np.zeros((n, d), dtype=np.float32)
    if n == 0:
        return out
    lengths = np.array([tok.length(k) for k in np.diff(X.indptr)])
    order = np.argsort(-lengths, kind="stable")  # longest first: little padding per batch
    batches = [order[i: i + batch_size] for i in range(0, n, batch_size)]
    model.eval()
    # PyTorch's MHA "fast path" (nested tensors) is 2x slower and uses 3x more memory on CPU.
    with _mha_fastpath(device.type != "cpu"), torch.inference_mode(), torch.autocast(
            device_type=device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
        for rows in tqdm(batches, desc="scGPT embedding", unit="batch", disable=not progress):
            ids, vals, mask = tok.batch(X, rows)
            h = model._encode(ids.to(device), vals.to(device), src_key_padding_mask=mask.to(device))
            cls = h[:, 0, :].float()
            if normalize:
                cls = torch.nn.functional.normalize(cls, p=2, dim=1)
            out[rows] = cls.cpu().numpy()
    return out


def _prepare(model, vocab, genes, n_bins, pad_value, max_len, seed, ties, device):
    s = _settings(model, vocab, n_bins, pad_value)
    tok = _Tokenizer(_gene_token_ids(genes, vocab), s["cls_id"], s["pad_id"], s["pad_value"],
                     s["n_bins"], max_len, seed, ties)
    dev = resolve_device(device)
    model.to(dev)
    return tok, dev


def embed(model, vocab: Mapping[str, int], adata: ad.AnnData, genes: Sequence[str] | None = None,
          batch_size: int = 32, device: str | torch.device | None = None, max_len: int = 1200,
          *, layer: str | None = None, key_added: str | None = None, normalize: bool = True,
          n_bins: int | None = None, pad_value: float | None = None, seed: int = 0,
          ties: str = "mid", amp: bool = False, progress: bool = True) -> np.ndarray:
    """CLS cell embeddings of scGPT, as ``scgpt.tasks.cell_emb.embed_data`` computes them, with
    deterministic binning and sub-sampling.

    Parameters
    ----------
    model, vocab
        From :func:`load_checkpoint`.
    adata
        Raw counts in ``X`` (or ``layers[layer]``), gene symbols in ``var_names``.
    genes
        Genes to use (e.g. :func:`select_hvgs`); ``None``: every gene found in ``vocab``
        (``embed_data``'s choice).
    batch_size
        Cells per forward pass. Cells are sorted by sequence length (longest first) into
        batches; the output keeps ``adata``'s order.
    device
        ``None``/``"auto"``: CUDA when available, else CPU. The model is moved there. On CPU the
        MHA fast path is switched off during the call.
    max_len
        Maximum tokens per cell including ``<cls>`` (whole-human: 1200).
    key_added
        If given (e.g. ``"X_scgpt"``), also store the result in ``adata.obsm[key_added]``.
    normalize
        L2-normalise each embedding, as ``embed_data`` does (default True).
    n_bins, pad_value
        Default: the checkpoint's ``args.json`` (51, −2 for whole-human).
    seed, ties
        See :func:`tokenize` and :func:`bin_expression`.
    amp
        fp16 autocast on CUDA (``embed_data`` uses it; faster, ~1e-3 different). Off by default.
    progress
        tqdm progress bar over batches.

    Returns
    -------
    numpy.ndarray
        float32, shape (n_cells, d_model) (whole-human: 512); unit L2 norm if ``normalize``.
    """
    X, genes = _matrix_and_genes(adata, genes, vocab, layer)
    tok, dev = _prepare(model, vocab, genes, n_bins, pad_value, max_len, seed, ties, device)
    z = _embed_csr(model, tok, X, batch_size, dev, normalize, amp, progress)
    if key_added:
        adata.obsm[key_added] = z
    return z


def encoder_fn(model, vocab: Mapping[str, int], genes: Sequence[str], n_bins: int | None = None,
               *, max_len: int = 1200, batch_size: int = 32,
               device: str | torch.device | None = None, normalize: bool = True,
               pad_value: float | None = None, seed: int = 0, ties: str = "mid"):
    """f for attribution: RAW COUNTS (n, len(genes)) → CLS embeddings (n, d_model).

    Binning happens *inside* f, so attribution can change a gene's count in a cell and the
    perturbed cell is re-binned and re-tokenised exactly as a real cell would be (a count set
    to 0 removes the gene from the sequence; any change can move other genes' bins).

    Parameters
    ----------
    model, vocab
        From :func:`load_checkpoint`.
    genes
        The columns of the matrices f will receive (all in ``vocab``).
    n_bins, max_len, pad_value, seed, ties, normalize
        As in :func:`embed`; with the same values ``f(counts)`` equals
        ``embed(model, vocab, adata, genes)`` on the same cells.
    batch_size, device
        As in :func:`embed`.

    Returns
    -------
    callable
        ``f(x: torch.Tensor) -> torch.Tensor``: float32 on ``x.device``. Deterministic.
    """
    tok, dev = _prepare(model, vocab, list(genes), n_bins, pad_value, max_len, seed, ties, device)
    n_genes = len(genes)

    def f(x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 2 or x.shape[1] != n_genes:
            raise ValueError(f"f expects (n, {n_genes}) raw counts, got {tuple(x.shape)}")
        z = _embed_csr(model, tok, _as_csr(x), batch_size, dev, normalize, False, False)
        return torch.from_numpy(z).to(x.device)

    return f
