"""Tools on an AnnData, scverse-style: concepts of your own data and model in four calls.

.. code-block:: python

    import scconcepts as scc
    scc.tl.sae(adata, use_rep="X_scvi", c=500, k=8)          # obsm["X_concepts"], uns["concepts"]
    scc.tl.concept_metadata(adata, keys=["cell_type", "donor_id"])   # Sec 3.1 categories
    scc.tl.attribute(adata, model=scvi_model, layer="counts")          # Eq 1-3, genes per concept
    scc.tl.enrich(adata, gene_sets="GO_Biological_Process_2023")       # Sec 3.4 GSEA labels

Storage: ``obsm["X_<key>"]`` holds the sparse codes U = ψ(A) (n_cells × c, CSR, activations
≥ 0); ``uns[key]`` holds ``params``, ``metrics``, the SAE weights (``W_enc`` (d × c), ``b_enc``
(c,), ``dictionary`` D (c × d, unit-norm rows), ``b_dec`` (d,)), and after the later tools
``categories`` (DataFrame, one row per concept), ``attribution`` (DataFrame units × genes of
C_i scores) and ``enrichment`` (DataFrame, one row per unit). Each function returns what it
stored. The same pure methods run the book (:mod:`scconcepts.sae`, :mod:`.concepts`,
:mod:`.attribution`, :mod:`.enrichment`).
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

__all__ = ["sae", "concept_metadata", "attribute", "enrich", "get_sae"]


def _state(adata: ad.AnnData, key: str) -> dict:
    if key not in adata.uns:
        raise KeyError(f"adata.uns[{key!r}] not found: run scconcepts.tl.sae(adata, "
                       f"key_added={key!r}) first.")
    return adata.uns[key]


def sae(adata: ad.AnnData, use_rep: str = "X_scvi", c: int = 500, k: int = 8, *,
        epochs: int = 100, lr: float = 1e-3, batch_size: int = 1024, aux_k: int = 512,
        seed: int = 0, val_fraction: float = 0.1, tol: float = 1e-4, patience: int = 10,
        key_added: str = "concepts", progress: bool = False) -> sp.csr_matrix:
    """Train a Top-K SAE ψ on ``obsm[use_rep]`` and store its concept activations.

    Parameters
    ----------
    adata
        Cells with embeddings ``obsm[use_rep]`` of shape (n_cells, d).
    c, k
        Concepts in the dictionary and concepts active per cell (paper default for scVI:
        500 and 8, expansion factor c/d = 10; Sec 4.2).
    epochs, lr, batch_size, aux_k, seed
        Optimiser settings (Gao et al. 2024; paper Appendix B: batch 1024, aux_k 512);
        ``epochs`` is the cap of the stopping rule.
    val_fraction, tol, patience
        Stopping rule (:mod:`scconcepts.sae_train`): a seeded ``val_fraction`` of the cells is
        held out, and training stops when their R² has not gained more than ``tol`` over
        ``patience`` epochs. The metrics give R² on the training (``r2``) and held-out
        (``r2_val``) cells.

    Returns
    -------
    scipy.sparse.csr_matrix
        U = ψ(A), (n_cells, c), activations ≥ 0, also in ``obsm[f"X_{key_added}"]``.

    Raises
    ------
    KeyError
        If ``use_rep`` is not in ``obsm``.
    ValueError
        If k > c.
    """
    from . import sae as sae_mod

    if use_rep not in adata.obsm:
        raise KeyError(f"obsm[{use_rep!r}] not found (have {list(adata.obsm)}); compute the "
                       "model's embeddings first, e.g. adata.obsm['X_scvi'] = "
                       "model.get_latent_representation().")
    if not 0 < k <= c:
        raise ValueError(f"need 0 < k <= c, got c={c}, k={k}")
    A = np.asarray(adata.obsm[use_rep], dtype=np.float32)
    config = sae_mod.SAEConfig(d=A.shape[1], c=int(c), k=int(k), aux_k=int(aux_k), lr=float(lr),
                               epochs=int(epochs), batch_size=int(batch_size), seed=int(seed),
                               val_fraction=float(val_fraction), tol=float(tol),
                               patience=int(patience))
    model, hist = sae_mod.train_sae(A, config, progress=progress)
    codes = sae_mod.encode(model, A)
    state = {k_: v.detach().cpu().numpy() for k_, v in model.state_dict().items()}
    adata.obsm[f"X_{key_added}"] = codes
    adata.uns[key_added] = {"params": {**config.__dict__, "use_rep": use_rep},
                            "metrics": sae_mod.split_metrics(model, A, hist), "weights": state}
    return codes


def get_sae(adata: ad.AnnData, key: str = "concepts"):
    """The trained :class:`~scconcepts.sae.TopKSAE` stored by :func:`sae`."""
    import torch

    from .sae import TopKSAE

    st = _state(adata, key)
    p = st["params"]
    model = TopKSAE(int(p["d"]), int(p["c"]), int(p["k"]))
    model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in st["weights"].items()})
    return model.eval()


def concept_metadata(adata: ad.AnnData, keys: Sequence[str] = ("cell_type", "tissue", "donor_id"),
                     *, key: str = "concepts", threshold: float = 0.7,
                     min_cells: int = 100) -> pd.DataFrame:
    """Sec 3.1: each concept's category from the metadata of the cells that activate it.

    A concept is specific to a key when ≥ ``threshold`` of its activating cells share one
    label; concepts with fewer than ``min_cells`` activating cells are "not enough data".

    Returns
    -------
    DataFrame, (c, ...)
        :func:`scconcepts.concepts.categorize_concepts`; also ``uns[key]["categories"]``.
    """
    from .concepts import categorize_concepts

    _state(adata, key)
    codes = adata.obsm[f"X_{key}"]
    table = categorize_concepts(codes, adata.obs, keys=list(keys), threshold=threshold,
                                min_cells=min_cells)
    _state(adata, key)["categories"] = table
    return table


def _encoder(model: Any, genes: Sequence[str]) -> Callable:
    """f for attribution from an scvi-tools model, an adapter, or a callable."""
    if hasattr(model, "encoder") and hasattr(model, "fingerprint"):  # a FoundationModel adapter
        return model.encoder(genes)
    if hasattr(model, "module") and hasattr(model.module, "z_encoder"):  # scvi-tools
        from .models.scvi import encoder_fn

        return encoder_fn(model)
    if callable(model):
        return model
    raise TypeError(f"model must be an scvi-tools model, a scconcepts adapter or a callable "
                    f"f: counts tensor (n, m) -> embedding (n, d); got {type(model).__name__}.")


def attribute(adata: ad.AnnData, model: Any, *, units: Sequence[int] | None = None,
              key: str = "concepts", layer: str | None = "counts", genes: Sequence[str] | None = None,
              n_prototypes: int = 10, n_counterfactuals: int = 3, progress: bool = False):
    """Counterfactual occlusion attribution C_i of concepts to genes (Sec 3.2, Eq 1–3).

    Parameters
    ----------
    model
        f: an scvi-tools model (its encoder's posterior mean), a
        :class:`~scconcepts.models.base.FoundationModel` adapter, or a callable mapping a counts
        tensor (n, m) to embeddings (n, d) — the same embeddings as ``obsm[use_rep]``.
    units
        Concepts to explain; default every concept that fires at least once.
    layer
        Raw counts (``layers[layer]``; None = ``X``), the model's input (n_cells, m).
    genes
        The m genes f reads, in order (default ``var_names``).
    n_prototypes, n_counterfactuals
        N_p and N_c (paper: 10 and 3).

    Returns
    -------
    scconcepts.attribution.AttributionResult
        Also stored as ``uns[key]["attribution"]`` (DataFrame units × genes of C_i).

    Raises
    ------
    KeyError
        If ``layer`` is missing.
    """
    from .attribution import SAEReadout, UnitFunction, attribute_units

    st = _state(adata, key)
    if layer is not None and layer not in adata.layers:
        raise KeyError(f"layers[{layer!r}] not found (have {list(adata.layers)}); pass "
                       "layer=None if X holds the raw counts.")
    genes = list(genes) if genes is not None else list(map(str, adata.var_names))
    X = adata.layers[layer] if layer is not None else adata.X
    X = sp.csr_matrix(X[:, adata.var_names.get_indexer(genes)], dtype=np.float32)
    A = np.asarray(adata.obsm[st["params"]["use_rep"]], dtype=np.float32)
    codes = adata.obsm[f"X_{key}"]
    if units is None:
        units = np.flatnonzero(sp.csr_matrix(codes).getnnz(axis=0) > 0)
    ψ = get_sae(adata, key)
    res = attribute_units(UnitFunction(_encoder(model, genes), SAEReadout(ψ)), X, A, codes,
                          np.asarray(units, dtype=int), genes, n_prototypes=n_prototypes,
                          n_counterfactuals=n_counterfactuals, progress=progress)
    st["attribution"] = pd.DataFrame(res.scores, index=res.units.astype(str), columns=genes)
    return res


def enrich(adata: ad.AnnData, gene_sets: str | dict = "GO_Biological_Process_2023", *,
           key: str = "concepts", units: Sequence[int] | None = None, permutations: int = 500,
           min_size: int = 15, seed: int = 0, threads: int = 1) -> pd.DataFrame:
    """Attribution-ranked GSEA of each attributed concept (Sec 3.4; gseapy prerank).

    Parameters
    ----------
    gene_sets
        A bundled library name, a GMT path, or a mapping term → genes.

    Returns
    -------
    DataFrame
        One row per unit (best term, NES, nominal p, annotation level); also
        ``uns[key]["enrichment"]``.

    Raises
    ------
    KeyError
        If :func:`attribute` has not been run.
    """
    from .attribution import AttributionResult
    from .data import load_gene_sets, read_gmt
    from .enrichment import annotate_units

    st = _state(adata, key)
    if "attribution" not in st:
        raise KeyError(f"uns[{key!r}]['attribution'] not found: run scconcepts.tl.attribute "
                       "first.")
    scores = st["attribution"]
    n = len(scores)
    att = AttributionResult(
        units=scores.index.astype(int).to_numpy(), genes=np.asarray(scores.columns, dtype=str),
        scores=scores.to_numpy(np.float32), per_prototype=np.zeros((n, 0, scores.shape[1]),
                                                                     np.float32),
        prototypes=np.zeros((n, 0), np.int64), counterfactuals=np.zeros((n, 0, 0), np.int64),
        prototype_activation=np.zeros((n, 0), np.float32), kind="concept")
    if isinstance(gene_sets, str):
        gene_sets = read_gmt(gene_sets) if gene_sets.endswith(".gmt") else load_gene_sets(gene_sets)
    summary, _ = annotate_units(att, gene_sets, units, permutations=permutations,
                                min_size=min_size, seed=seed, threads=threads, progress=False)
    st["enrichment"] = summary
    return summary
