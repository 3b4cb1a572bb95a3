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
from .scgpt_tokens import (  # noqa: F401  (public names re-exported; used below)
    _DEFAULTS,
    SPECIAL_TOKENS,
    _as_csr,
    _fmt_keys,
    _gene_token_ids,
    _matrix_and_genes,
    _settings,
    _Tokenizer,
    bin_expression,
    match_genes,
    select_hvgs,
    tokenize,
)

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
#: Parameters that may be absent from a checkpoint and are then left at their initialisation.
#: ``cls_decoder.*`` is the cell-type classification head (``ClsDecoder``): TransformerModel
#: always creates it, but the whole-human pretraining ran without the CLS objective
#: (``USE_CLS: false``), so ``best_model.pt`` has no such keys. It is unused for embeddings.
OPTIONAL_MISSING_PREFIXES = ("cls_decoder.",)
_REQUIRED_ARGS = ("embsize", "nheads", "d_hid", "nlayers")
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
