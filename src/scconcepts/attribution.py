"""Counterfactual occlusion attribution of genes to concepts and neurons (Sec 3.2, Eq 1–3).

Notation (paper): f is the single-cell model (expression → embedding), ψ the SAE encoder,
(ψ∘f)_i the activation of concept i. For a prototype cell x^p (one of the N_p cells with the
highest activation) and a counterfactual cell x^c,

* Eq 1 — counterfactual: x^c = argmin_{x^j} ‖f(x^p) − f(x^j)‖₂ subject to (ψ∘f)_i(x^j) = 0;
  we keep the N_c nearest such cells;
* Eq 2 — occlusion (Zeiler & Fergus 2014) with the counterfactual as baseline: for each gene l,
  x̃^p = x^p with x̃^p_l = x^c_l, and a_l = (ψ∘f)_i(x^p) − (ψ∘f)_i(x̃^p);
* Eq 3 — C_i: the scores averaged over the N_c counterfactuals and the N_p prototypes, with the
  m genes sorted by decreasing score.

Perturbations happen in the model's own input space (raw counts for scVI, whose encoder applies
log1p itself).

**Neurons.** The baseline "units" are the embedding dimensions themselves. A dense neuron j has
no natural zero, so we define once, and use everywhere, its activation as the centred value
``h_j(x) − median_j`` (median over the cells of the dataset): the neuron *activates* in a cell
when this is > 0 and is *non-activating* when it is ≤ 0. Prototypes are the N_p cells with the
largest value; counterfactuals are the N_c nearest non-activating cells. The centring does not
change any attribution score (it cancels in Eq 2); it only defines the counterfactual pool.

**Fast path.** A gene with x^p_l = x^c_l gives x̃^p = x^p, hence a_l = 0 exactly: no forward pass
is spent on it. The remaining perturbed copies of all (prototype, counterfactual) pairs of a unit
are stacked and run through f and ψ in batches. An encoder object with an ``occlude`` method
(scGPT: :class:`scconcepts.models.scgpt_occlusion.ScGPTOcclusion`) computes the copies of each
prototype itself, exactly but incrementally. :func:`occlusion_literal` is the literal per-gene
loop of Eq 2 used to test this (``tests/test_attribution.py``, ``benchmarks/attribution.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.neighbors import NearestNeighbors
from tqdm import tqdm

from .attribution_report import (
    example_concepts,
    gene_set_summary,
    housekeeping_genes,
    housekeeping_share,
    marker_overlap,
    marker_report,
    top_genes_table,
)

__all__ = [
    "SAEReadout",
    "NeuronReadout",
    "UnitFunction",
    "select_prototypes",
    "find_counterfactuals",
    "occlusion_literal",
    "occlusion_fast",
    "AttributionResult",
    "attribute_units",
    "ranked_genes",
    "gene_set_summary",
    "housekeeping_genes",
    "housekeeping_share",
    "top_genes_table",
    "marker_overlap",
    "marker_report",
    "example_concepts",
]

Encoder = Callable[[torch.Tensor], torch.Tensor]


class SAEReadout:
    """ψ: embeddings (n, d) → concept activations (n, c) of a Top-K SAE."""

    kind = "concept"

    def __init__(self, sae):
        self.sae = sae

    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        return self.sae.encode(emb)


class NeuronReadout:
    """Neurons as units: embeddings (n, d) → centred values h − median, (n, d).

    ``median`` (d,) is the per-neuron median over the dataset's cells (see module docstring).
    """

    kind = "neuron"

    def __init__(self, median: np.ndarray):
        self.median = torch.as_tensor(np.asarray(median, dtype=np.float32))

    @classmethod
    def from_embeddings(cls, embeddings: np.ndarray) -> "NeuronReadout":
        return cls(np.median(np.asarray(embeddings, dtype=np.float32), axis=0))

    def __call__(self, emb: torch.Tensor) -> torch.Tensor:
        return emb - self.median.to(emb.device)


class UnitFunction:
    """(ψ∘f): expression (n, m) → unit activations (n, n_units), without gradients.

    Parameters
    ----------
    encoder
        f, maps a float tensor of expression in the model's input space (n, m) to embeddings
        (n, d); e.g. :func:`scconcepts.models.scvi.encoder_fn`.
    readout
        ψ, a :class:`SAEReadout` or :class:`NeuronReadout`.
    """

    def __init__(self, encoder: Encoder, readout):
        self.encoder = encoder
        self.readout = readout

    @torch.no_grad()
    def __call__(self, x: torch.Tensor, unit: int | None = None) -> torch.Tensor:
        act = self.readout(self.encoder(x))
        return act if unit is None else act[:, unit]


def _dense_rows(x, idx) -> np.ndarray:
    rows = x[idx]
    return np.asarray(rows.toarray() if sp.issparse(rows) else rows, dtype=np.float32)


def select_prototypes(activation: np.ndarray, n_prototypes: int) -> np.ndarray:
    """Indices of the N_p cells with the highest activation among activating cells (> 0).

    Parameters
    ----------
    activation
        Activation of one unit in every cell, shape (n_cells,).
    n_prototypes
        N_p (10 in the paper).

    Returns
    -------
    ndarray of int
        At most N_p indices, by decreasing activation; empty if the unit never activates.
    """
    activation = np.asarray(activation).ravel()
    pos = np.flatnonzero(activation > 0)
    order = pos[np.argsort(-activation[pos], kind="stable")]
    return order[:n_prototypes]


def find_counterfactuals(
    embeddings: np.ndarray,
    activation: np.ndarray,
    prototypes: Sequence[int],
    n_counterfactuals: int,
) -> np.ndarray:
    """Eq 1: the N_c nearest non-activating cells (activation ≤ 0) of each prototype.

    Parameters
    ----------
    embeddings
        f(x) for every cell, shape (n_cells, d); distances are Euclidean (L2) in this space.
    activation
        The unit's activation in every cell, shape (n_cells,).
    prototypes
        Prototype cell indices, shape (n_p,).
    n_counterfactuals
        N_c (3 in the paper).

    Returns
    -------
    ndarray of int, shape (n_p, N_c)
        Counterfactual cell indices, nearest first.

    Raises
    ------
    ValueError
        If fewer than N_c cells are non-activating.
    """
    activation = np.asarray(activation).ravel()
    pool = np.flatnonzero(activation <= 0)
    if pool.size < n_counterfactuals:
        raise ValueError(
            f"Only {pool.size} non-activating cells, fewer than N_c={n_counterfactuals}: the unit "
            "activates almost everywhere, so no counterfactual exists. Lower N_c or skip it."
        )
    nn = NearestNeighbors(n_neighbors=n_counterfactuals).fit(embeddings[pool])
    _, idx = nn.kneighbors(np.asarray(embeddings)[np.asarray(prototypes)])
    return pool[idx]


@torch.no_grad()
def occlusion_literal(unit_fn: UnitFunction, x_p: np.ndarray, x_c: np.ndarray, unit: int
                      ) -> np.ndarray:
    """Eq 2 as written: one forward pass per gene, every gene, one cell at a time.

    Parameters
    ----------
    x_p, x_c
        Prototype and counterfactual expression, shape (m,), model input space (e.g. counts).

    Returns
    -------
    ndarray, shape (m,)
        a_l = (ψ∘f)_i(x^p) − (ψ∘f)_i(x̃^p) for every gene l.
    """
    xp = torch.as_tensor(np.asarray(x_p, dtype=np.float32))[None]
    base = unit_fn(xp, unit)[0]
    out = np.zeros(xp.shape[1], dtype=np.float32)
    for gene in range(xp.shape[1]):
        x_tilde = xp.clone()
        x_tilde[0, gene] = float(x_c[gene])
        out[gene] = float(base - unit_fn(x_tilde, unit)[0])
    return out


@torch.no_grad()
def occlusion_fast(
    unit_fn: UnitFunction,
    x_p: np.ndarray,
    x_c: np.ndarray,
    unit: int,
    batch_size: int = 4096,
    device: torch.device | str = "cpu",
) -> np.ndarray:
    """Eq 2 for many (prototype, counterfactual) pairs at once, skipping equal genes.

    Parameters
    ----------
    x_p, x_c
        Prototype and counterfactual expression, shape (n_pairs, m) (or (m,)).
    unit
        Index of the unit (concept or neuron) in the readout's output.
    batch_size
        Perturbed copies per forward pass.

    Returns
    -------
    ndarray, shape (n_pairs, m) (or (m,))
        Attribution of every gene for every pair; exactly 0 where x^p_l = x^c_l.
    """
    single = np.ndim(x_p) == 1
    xp = np.atleast_2d(np.asarray(x_p, dtype=np.float32))
    xc = np.atleast_2d(np.asarray(x_c, dtype=np.float32))
    n_pairs, m = xp.shape
    out = np.zeros((n_pairs, m), dtype=np.float32)
    occlude = getattr(unit_fn.encoder, "occlude", None)
    if occlude is not None:
        # Encoders with their own exact fast occlusion (scGPT: re-binning + incremental
        # attention, scconcepts.models.scgpt_occlusion): one call per distinct prototype, with
        # the (gene, new value) copies of all its counterfactuals deduplicated, plus one copy
        # that changes nothing (gene 0 set to its own value): f(x^p) itself.
        groups: dict[bytes, list[int]] = {}
        for r in range(n_pairs):
            groups.setdefault(xp[r].tobytes(), []).append(r)
        for rows in groups.values():
            rows = np.asarray(rows)
            pi, gi = np.nonzero(xp[rows] != xc[rows])
            if pi.size == 0:
                continue
            vals = xc[rows[pi], gi]
            keys, inv = np.unique(np.stack([gi.astype(np.float64), vals.astype(np.float64)], 1),
                                  axis=0, return_inverse=True)
            emb = occlude(xp[rows[0]], np.append(keys[:, 0].astype(np.int64), 0),
                          np.append(keys[:, 1], xp[rows[0], 0]))
            act = unit_fn.readout(torch.from_numpy(emb).to(device))[:, unit].float().cpu().numpy()
            out[rows[pi], gi] = act[-1] - act[inv.ravel()]
        return out[0] if single else out
    xp_t = torch.from_numpy(xp).to(device)
    base = unit_fn(xp_t, unit)  # (n_pairs,)
    pair_idx, gene_idx = np.nonzero(xp != xc)
    for s in range(0, pair_idx.size, batch_size):
        p = torch.from_numpy(pair_idx[s:s + batch_size]).to(device)
        g = torch.from_numpy(gene_idx[s:s + batch_size]).to(device)
        x_tilde = xp_t[p].clone()
        x_tilde[torch.arange(p.numel(), device=device), g] = torch.from_numpy(
            xc[pair_idx[s:s + batch_size], gene_idx[s:s + batch_size]]).to(device)
        drop = base[p] - unit_fn(x_tilde, unit)
        out[pair_idx[s:s + batch_size], gene_idx[s:s + batch_size]] = drop.float().cpu().numpy()
    return out[0] if single else out


@dataclass
class AttributionResult:
    """Attribution of genes for a set of units (concepts or neurons) of one model.

    Attributes
    ----------
    units
        Unit indices, shape (n_units,).
    genes
        Gene symbols, shape (m,).
    scores
        Mean attribution (Eq 3, before sorting), shape (n_units, m); NaN rows for units that
        never activate. Units of the activation (e.g. SAE code units).
    per_prototype
        Scores averaged over counterfactuals only, shape (n_units, N_p, m); NaN where a unit
        has fewer than N_p activating cells.
    prototypes, counterfactuals
        Cell indices, shapes (n_units, N_p) and (n_units, N_p, N_c); −1 where absent.
    prototype_activation
        (ψ∘f)_i(x^p) of each prototype, shape (n_units, N_p).
    kind
        ``"concept"`` or ``"neuron"``.
    """

    units: np.ndarray
    genes: np.ndarray
    scores: np.ndarray
    per_prototype: np.ndarray
    prototypes: np.ndarray
    counterfactuals: np.ndarray
    prototype_activation: np.ndarray
    kind: str

    def save(self, path) -> None:
        from .utils import atomic_write

        def _w(tmp):
            with open(tmp, "wb") as fh:
                np.savez_compressed(fh, **{k: getattr(self, k) for k in self.__dataclass_fields__})

        atomic_write(path, _w)

    @classmethod
    def load(cls, path) -> "AttributionResult":
        with np.load(path, allow_pickle=False) as z:
            kw = {k: z[k] for k in cls.__dataclass_fields__}
        kw["kind"] = str(kw["kind"])
        return cls(**kw)

    @classmethod
    def concat(cls, parts: Sequence["AttributionResult"]) -> "AttributionResult":
        """Stack results for disjoint unit blocks of the same model, genes and kind."""
        if not parts:
            raise ValueError("nothing to concatenate")
        first = parts[0]
        for p in parts[1:]:
            if p.kind != first.kind or not np.array_equal(p.genes, first.genes):
                raise ValueError("cannot concatenate attribution results of different genes/kinds")
        arrays = {k: np.concatenate([getattr(p, k) for p in parts])
                  for k in ("units", "scores", "per_prototype", "prototypes", "counterfactuals",
                            "prototype_activation")}
        return cls(genes=first.genes, kind=first.kind, **arrays)

    def digest(self) -> str:
        """Content key of the result (SHA-1 of its units, genes and scores; 16 hex digits),
        for the cache keys of steps that read it (GSEA, DGEA)."""
        import hashlib

        h = hashlib.sha1(np.ascontiguousarray(self.units).tobytes())
        h.update("\n".join(map(str, self.genes)).encode())
        h.update(np.ascontiguousarray(self.scores).tobytes())
        return h.hexdigest()[:16]

    def ranked(self, unit: int) -> pd.Series:
        """C_i of Eq 3: gene → mean attribution, sorted decreasingly, for unit index ``unit``."""
        row = int(np.flatnonzero(self.units == unit)[0])
        return ranked_genes(self.scores[row], self.genes)

    def top_genes(self, unit: int, n: int = 10) -> tuple[pd.Series, np.ndarray]:
        """The ``n`` genes with the highest C_i and each prototype's own score for them.

        Returns
        -------
        (top, per_prototype)
            ``top``: gene → C_i (Eq 3), the first ``n`` of :meth:`ranked`; ``per_prototype``:
            shape (n_used_prototypes, n), the per-prototype means over counterfactuals (Eq 2) of
            the same genes, prototypes left unused (all NaN) dropped. Activation units. The bars
            and dots of :func:`scconcepts.plotting.top_genes_bars`.
        """
        top = self.ranked(unit).head(n)
        row = int(np.flatnonzero(self.units == unit)[0])
        col = pd.Index(self.genes).get_indexer(top.index)
        pp = self.per_prototype[row][:, col]
        return top, pp[~np.isnan(pp).all(1)]

    def gene_set_sizes(self, threshold: float = 0.05, relative: bool = False) -> np.ndarray:
        """Genes per unit with attribution > ``threshold`` (Fig 2C), shape (n_units,).

        ``relative=True`` divides scores by the unit's mean prototype activation first, so the
        threshold is a fraction of the activation instead of an absolute activation drop.
        """
        s = self.scores
        if relative:
            act = np.nanmean(np.where(self.prototypes >= 0, self.prototype_activation, np.nan), 1)
            s = s / act[:, None]
        return np.where(np.isnan(s).all(1), np.nan, (s > threshold).sum(1))


def ranked_genes(scores: np.ndarray, genes: Sequence[str]) -> pd.Series:
    """Sort genes by decreasing attribution (Eq 3). Ties keep gene order."""
    s = pd.Series(np.asarray(scores, dtype=np.float64), index=pd.Index(genes, name="gene"))
    return s.sort_values(ascending=False, kind="stable")


def attribute_units(
    unit_fn: UnitFunction,
    expression,
    embeddings: np.ndarray,
    activations,
    units: Sequence[int],
    genes: Sequence[str],
    *,
    n_prototypes: int = 10,
    n_counterfactuals: int = 3,
    batch_size: int = 4096,
    device: torch.device | str = "cpu",
    progress: bool = True,
    match_library: bool = False,
    baseline: str = "counterfactual",
) -> AttributionResult:
    """Attribution scores C_i (Eq 1–3) for several units with the fast path.

    Parameters
    ----------
    unit_fn
        (ψ∘f), see :class:`UnitFunction`.
    expression
        Model input for every cell, shape (n_cells, m), dense or sparse (counts for scVI).
    embeddings
        f(x) for every cell, shape (n_cells, d) (counterfactual distances, Eq 1).
    activations
        (ψ∘f)(x) for every cell, shape (n_cells, n_units_total), dense or sparse.
    units
        Unit indices to explain.
    genes
        Symbols of the m input genes.
    n_prototypes, n_counterfactuals
        N_p and N_c (paper: 10 and 3).
    match_library
        Scale each counterfactual's counts to its prototype's total before occlusion (x^c ·
        Σx^p / Σx^c), so that a replaced gene carries the counterfactual's *relative*
        expression at the prototype's library size: the perturbation space of a model whose
        inputs are size-normalised (issue 13, item 4). False: raw counts, Eq 2 as written.
    baseline
        ``"counterfactual"`` (Eq 2: gene l takes the counterfactual's value) or ``"zero"``
        (zero-masking: gene l is set to 0; the counterfactuals are still found, and recorded,
        but only their number matters), the common occlusion baseline the paper argues
        against; chapter 04's planted-programme test compares both.

    Raises
    ------
    ValueError
        For a gene-count mismatch or an unknown ``baseline``.

    Returns
    -------
    AttributionResult
    """
    units = np.asarray(list(units), dtype=int)
    if baseline not in ("counterfactual", "zero"):
        raise ValueError(f"baseline must be 'counterfactual' or 'zero', not {baseline!r}")
    m = len(genes)
    if expression.shape[1] != m:
        raise ValueError(f"expression has {expression.shape[1]} genes but {m} gene names given.")
    acts = activations.tocsc() if sp.issparse(activations) else np.asarray(activations)
    n_u = len(units)
    scores = np.full((n_u, m), np.nan, dtype=np.float32)
    per_proto = np.full((n_u, n_prototypes, m), np.nan, dtype=np.float32)
    protos = np.full((n_u, n_prototypes), -1, dtype=np.int64)
    cfs = np.full((n_u, n_prototypes, n_counterfactuals), -1, dtype=np.int64)
    proto_act = np.full((n_u, n_prototypes), np.nan, dtype=np.float32)
    for r, unit in enumerate(tqdm(units, desc=f"attribution ({unit_fn.readout.kind}s)",
                                  disable=not progress)):
        col = acts[:, unit]
        col = np.asarray(col.toarray() if sp.issparse(col) else col).ravel()
        p_idx = select_prototypes(col, n_prototypes)
        if p_idx.size == 0 or (col <= 0).sum() < n_counterfactuals:
            continue
        c_idx = find_counterfactuals(embeddings, col, p_idx, n_counterfactuals)
        xp = _dense_rows(expression, np.repeat(p_idx, n_counterfactuals))
        xc = _dense_rows(expression, c_idx.ravel())
        if match_library:
            xc = xc * (xp.sum(1, keepdims=True) / np.maximum(xc.sum(1, keepdims=True), 1e-12))
        if baseline == "zero":
            xc = np.zeros_like(xc)
        a = occlusion_fast(unit_fn, xp, xc, unit, batch_size=batch_size, device=device)
        a = a.reshape(p_idx.size, n_counterfactuals, m).mean(1)
        npr = p_idx.size
        per_proto[r, :npr] = a
        scores[r] = a.mean(0)
        protos[r, :npr] = p_idx
        cfs[r, :npr] = c_idx
        with torch.no_grad():
            proto_act[r, :npr] = unit_fn(
                torch.from_numpy(_dense_rows(expression, p_idx)).to(device), unit).cpu().numpy()
    return AttributionResult(units=units, genes=np.asarray(genes, dtype=str), scores=scores,
                             per_prototype=per_proto, prototypes=protos, counterfactuals=cfs,
                             prototype_activation=proto_act, kind=unit_fn.readout.kind)
