"""Stability of concept dictionaries across datasets and seeds (Sec 4.4, Fig 4).

Three questions, as in Sec 4.4 of Claye et al. (2025), plus the reviewers' seed question:

* **Generalisation** (Fig 4A): an SAE trained on dataset X reconstructs the embeddings of dataset
  Y with R² (:func:`cross_r2_table`), next to its R² on its own dataset's held-out cells (cells
  its training never saw); :func:`cross_r2_replicates` gives paired bootstrap replicates of
  every R² for the 95 % intervals of the claims.
* **Dictionary matching** (Fig 4B): the decoder atoms (concept vectors, columns of D, unit norm)
  of two SAEs are paired one-to-one by the Hungarian algorithm on their cosine similarity, the
  procedure of Fel et al. (2025, "Archetypal SAE" / "Sparks of instability"), and the mean cosine
  of the matched pairs measures how well the dictionaries agree (1 = identical up to a
  permutation) (:func:`match_dictionaries`). Always read it next to the same score for random
  dictionaries of the same shape (:func:`random_dictionary_null`): with c ≫ d, even random atoms
  find fairly similar partners.
* **Gene-level agreement** (Fig 4C): the top-10 attribution genes of matched pairs, side by side
  (:func:`matched_gene_table`).
* **Seeds** (not in the paper): the same data, several seeds: mean ± std of R², active
  concepts and matching scores between seeds (:func:`seed_stability`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment

from . import sae as sae_mod

__all__ = ["Matching", "decoder_atoms", "cosine_matrix", "match_dictionaries",
           "random_dictionary", "random_dictionary_null", "cross_r2_table", "cross_r2_replicates",
           "seed_stability",
           "matched_gene_table", "top_pairs", "attributed_units", "dataset_comparison",
           "initial_dictionary", "moved_from_init"]


@dataclass
class Matching:
    """One-to-one matching of the atoms of two dictionaries.

    Attributes
    ----------
    rows, cols
        Matched atom indices in dictionary 1 and 2 (into the *original* atom numbering, also when
        only a subset, e.g. the active atoms, was matched), shape (n_pairs,), n_pairs =
        min(c1, c2).
    cosine
        Cosine similarity of each matched pair, shape (n_pairs,), in [−1, 1].
    """

    rows: np.ndarray
    cols: np.ndarray
    cosine: np.ndarray

    @property
    def score(self) -> float:
        """Mean cosine of the matched pairs (Fig 4B); 1 = identical up to a permutation."""
        return float(self.cosine.mean()) if self.cosine.size else float("nan")

    def table(self) -> pd.DataFrame:
        """Pairs sorted by decreasing cosine: columns ``atom_1``, ``atom_2``, ``cosine``."""
        df = pd.DataFrame({"atom_1": self.rows, "atom_2": self.cols, "cosine": self.cosine})
        return df.sort_values("cosine", ascending=False, kind="stable").reset_index(drop=True)


def decoder_atoms(sae) -> np.ndarray:
    """Concept vectors of a :class:`~scconcepts.sae.TopKSAE`: its decoder D, shape (d, c)."""
    return sae.D.detach().cpu().numpy().astype(np.float64)


def cosine_matrix(D1: np.ndarray, D2: np.ndarray) -> np.ndarray:
    """Cosine similarity between the columns of ``D1`` (d, c1) and ``D2`` (d, c2): (c1, c2).

    Raises
    ------
    ValueError
        If the dictionaries live in spaces of different dimension d, or a column has zero norm.
    """
    D1 = np.asarray(D1, dtype=np.float64)
    D2 = np.asarray(D2, dtype=np.float64)
    if D1.ndim != 2 or D2.ndim != 2 or D1.shape[0] != D2.shape[0]:
        raise ValueError(f"Dictionaries must be (d, c) with the same d; got {D1.shape} and "
                         f"{D2.shape}. Atoms of different models cannot be compared.")
    n1 = np.linalg.norm(D1, axis=0)
    n2 = np.linalg.norm(D2, axis=0)
    if (n1 == 0).any() or (n2 == 0).any():
        raise ValueError("A dictionary has an all-zero atom; its cosine is undefined.")
    return (D1 / n1).T @ (D2 / n2)


def match_dictionaries(D1: np.ndarray, D2: np.ndarray, atoms_1=None, atoms_2=None) -> Matching:
    """Hungarian matching of two dictionaries by cosine similarity (Fel et al. 2025; Fig 4B).

    The assignment maximises the total cosine of one-to-one pairs
    (``scipy.optimize.linear_sum_assignment`` on −cosine; rectangular when c1 ≠ c2, then
    min(c1, c2) pairs).

    Parameters
    ----------
    D1, D2
        Dictionaries, shapes (d, c1) and (d, c2): columns are atoms (any norm).
    atoms_1, atoms_2
        Optional indices (or boolean masks) of the atoms to match, e.g. the active concepts; the
        returned indices refer to the full dictionaries.

    Returns
    -------
    Matching
    """
    idx1 = _indices(atoms_1, D1.shape[1])
    idx2 = _indices(atoms_2, D2.shape[1])
    cos = cosine_matrix(D1[:, idx1], D2[:, idx2])
    r, c = linear_sum_assignment(cos, maximize=True)
    return Matching(rows=idx1[r], cols=idx2[c], cosine=cos[r, c])


def _indices(sel, c: int) -> np.ndarray:
    if sel is None:
        return np.arange(c)
    sel = np.asarray(sel)
    idx = np.flatnonzero(sel) if sel.dtype == bool else sel.astype(int)
    if idx.size == 0:
        raise ValueError("No atom selected for matching (is every concept dead?).")
    return idx


def random_dictionary(d: int, c: int, seed: int = 0) -> np.ndarray:
    """c atoms drawn uniformly on the unit sphere of R^d (normalised Gaussians), shape (d, c)."""
    rng = np.random.default_rng(seed)
    D = rng.standard_normal((d, c))
    return D / np.linalg.norm(D, axis=0)


def random_dictionary_null(D1: np.ndarray, c2: int, n_repeats: int = 3, seed: int = 0,
                           atoms_1=None) -> np.ndarray:
    """Matching scores of ``D1`` against random dictionaries of shape (d, c2) (the null of Fig 4B).

    Parameters
    ----------
    D1
        The real dictionary, (d, c1).
    c2
        Atoms of the random dictionaries (that of the real partner dictionary).
    n_repeats
        Random dictionaries drawn (seeds ``seed``, ``seed + 1``, ...).
    atoms_1
        Atoms of ``D1`` to match, as in :func:`match_dictionaries`.

    Returns
    -------
    numpy.ndarray
        Mean matched cosine for each random dictionary, shape (n_repeats,).
    """
    d = D1.shape[0]
    return np.array([match_dictionaries(D1, random_dictionary(d, c2, seed + i), atoms_1).score
                     for i in range(n_repeats)])


def _eval_cells(train: str, test: str, n: int, histories) -> tuple[np.ndarray, bool]:
    """Cells of dataset ``test`` (n cells) on which the SAE trained on ``train`` is evaluated:
    its held-out cells when ``test`` is its own dataset and its history has them, else all."""
    if train == test and histories is not None and train in histories:
        val = sae_mod.cell_split(histories[train], n)[1]
        if val.size > 1:
            return val, True
    return np.arange(n), False


def cross_r2_table(saes: dict[str, object], embeddings: dict[str, np.ndarray],
                   histories: dict[str, dict] | None = None) -> pd.DataFrame:
    """R² of every SAE on every dataset's embeddings (Fig 4A).

    On its own dataset an SAE is evaluated on the cells its training held out (the validation
    split of its :func:`scconcepts.sae.train_sae` history, see :func:`scconcepts.sae.cell_split`)
    — cells it never trained on, like every cell of the other dataset — so that "own" and
    "other" are both out-of-sample. Without a history (or with no held-out cells) the own-data
    R² falls back to every cell, in-sample, and the row says so (``held_out`` False).

    Parameters
    ----------
    saes
        Training-dataset name → SAE trained on it.
    embeddings
        Dataset name → embeddings (n_cells, d) of the same model.
    histories
        Training-dataset name → the SAE's training history (``meta["history"]`` of
        :meth:`scconcepts.workflow.Workflow.sae`), holding ``val_cells``.

    Returns
    -------
    DataFrame
        One row per (trained on, evaluated on): ``trained on``, ``evaluated on``, ``own data``
        (bool), ``held_out`` (bool: own data evaluated on held-out cells only), ``r2``
        (variance-weighted, :func:`scconcepts.sae.r2_score`), ``cells`` (cells evaluated).
    """
    rows = []
    for train, sae in saes.items():
        for test, A in embeddings.items():
            A = np.asarray(A, dtype=np.float32)
            idx, held = _eval_cells(train, test, A.shape[0], histories)
            a = A[idx]
            rows.append({"trained on": train, "evaluated on": test, "own data": train == test,
                         "held_out": held,
                         "r2": sae_mod.r2_score(a, sae_mod.reconstruct(sae, a)),
                         "cells": int(idx.size)})
    return pd.DataFrame(rows)


def cross_r2_replicates(saes: dict[str, object], embeddings: dict[str, np.ndarray],
                        histories: dict[str, dict] | None = None, n_boot: int | None = None,
                        seed: int = 0) -> pd.DataFrame:
    """Bootstrap replicates of every R² of :func:`cross_r2_table` (paired over cells).

    Each evaluated dataset gets **one** multinomial weight matrix over all its cells
    (:func:`scconcepts.claims.stats.bootstrap_weights`, seed ``seed + i`` for the i-th dataset
    in sorted name order); every SAE evaluated on that dataset is scored on the same replicate,
    the own SAE on the replicate's held-out cells (the weights of those columns), the other SAEs
    on all of them. Differences of R² on one dataset are thus resampled jointly (a paired
    bootstrap), and the embeddings of another model of the same cells, given the same ``seed``,
    get the same weights, so models are paired too.

    Parameters
    ----------
    saes, embeddings, histories
        As :func:`cross_r2_table`.
    n_boot
        Replicates (default :data:`scconcepts.claims.stats.N_BOOT`).
    seed
        Base seed; the same seed gives bit-identical replicates.

    Returns
    -------
    DataFrame
        Shape (n_boot, n_saes × n_datasets): rows are replicates, columns a MultiIndex
        (``trained on``, ``evaluated on``) in the order of :func:`cross_r2_table`'s rows;
        values are R² (:func:`scconcepts.claims.stats.r2_replicates`).
    """
    from .claims import stats

    n_boot = stats.N_BOOT if n_boot is None else int(n_boot)
    order = {name: i for i, name in enumerate(sorted(embeddings))}
    weights = {test: stats.bootstrap_weights(int(np.shape(A)[0]), n_boot, seed + order[test])
               for test, A in embeddings.items()}
    cols = {}
    for train, sae in saes.items():
        for test, A in embeddings.items():
            A = np.asarray(A, dtype=np.float32)
            idx, _ = _eval_cells(train, test, A.shape[0], histories)
            a = A[idx]
            w = weights[test] if idx.size == A.shape[0] else weights[test][:, idx]
            cols[(train, test)] = stats.r2_replicates(a, sae_mod.reconstruct(sae, a), w)
    out = pd.DataFrame(cols)
    out.columns = pd.MultiIndex.from_tuples(list(cols), names=["trained on", "evaluated on"])
    return out


def seed_stability(saes: dict[int, object], A: np.ndarray, n_null: int = 3, seed: int = 0
                   ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Seed stability of SAEs trained on the same embeddings (a reviewer's ask).

    Parameters
    ----------
    saes
        Seed → SAE, all of the same size, trained on ``A``.
    A
        Training embeddings, (n_cells, d).
    n_null
        Random dictionaries per pair for the null.

    Returns
    -------
    (per_seed, pairs, summary)
        ``per_seed``: seed, r2, active concepts, L0; ``pairs``: for each pair of seeds the
        matching score over active atoms and the null's mean; ``summary``: mean and std (ddof=1)
        over seeds / pairs of R², active concepts, matching score and null score.
    """
    per_seed, active = [], {}
    for s, sae in saes.items():
        m = sae_mod.sae_metrics(sae, A)
        active[s] = np.asarray(sae_mod.encode(sae, A).getnnz(axis=0) > 0)
        per_seed.append({"seed": s, "r2": m["r2"], "active_concepts": m["active_concepts"],
                         "l0": m["l0"]})
    pairs = []
    for s1, s2 in combinations(sorted(saes), 2):
        D1, D2 = decoder_atoms(saes[s1]), decoder_atoms(saes[s2])
        match = match_dictionaries(D1, D2, active[s1], active[s2])
        null = random_dictionary_null(D1, int(active[s2].sum()), n_null, seed, active[s1])
        pairs.append({"seeds": f"{s1} vs {s2}", "matching score": match.score,
                      "pairs with cosine > 0.9": float((match.cosine > 0.9).mean()),
                      "null (random dictionaries)": float(null.mean())})
    per_seed, pairs = pd.DataFrame(per_seed), pd.DataFrame(pairs)
    summary = pd.DataFrame({
        "mean": [per_seed["r2"].mean(), per_seed["active_concepts"].mean(),
                 pairs["matching score"].mean(), pairs["null (random dictionaries)"].mean()],
        "std": [per_seed["r2"].std(), per_seed["active_concepts"].std(),
                pairs["matching score"].std(), pairs["null (random dictionaries)"].std()]},
        index=["R²", "active concepts", "matching score between seeds",
               "null: random dictionaries"])
    return per_seed, pairs, summary


def top_pairs(matching: Matching, n: int, allowed_1=None, allowed_2=None) -> pd.DataFrame:
    """The ``n`` matched pairs with the highest cosine, optionally restricted to allowed atoms.

    ``allowed_1``/``allowed_2`` (index arrays) keep pairs whose atom is in them, e.g. units with
    a cached attribution.
    """
    t = matching.table()
    if allowed_1 is not None:
        t = t[t["atom_1"].isin(np.asarray(allowed_1))]
    if allowed_2 is not None:
        t = t[t["atom_2"].isin(np.asarray(allowed_2))]
    return t.head(n).reset_index(drop=True)


def matched_gene_table(att_1, att_2, pairs: pd.DataFrame, n: int = 10,
                       labels: tuple[str, str] = ("main", "second")) -> pd.DataFrame:
    """Top-``n`` attribution genes of matched concept pairs side by side (Fig 4C).

    Parameters
    ----------
    att_1, att_2
        :class:`~scconcepts.attribution.AttributionResult` of the SAEs of each dataset; must hold
        ``pairs["atom_1"]`` and ``pairs["atom_2"]`` respectively.
    pairs
        Columns ``atom_1``, ``atom_2``, ``cosine`` (:meth:`Matching.table`).

    Returns
    -------
    DataFrame
        One row per pair: the two concepts, cosine, each side's top genes (comma-joined), shared
        genes and their number. A concept that never activates on its own data has no
        attribution: its genes are empty.
    """
    rows = []
    for p in pairs.itertuples():
        g1 = _top(att_1, int(p.atom_1), n)
        g2 = _top(att_2, int(p.atom_2), n)
        shared = [g for g in g1 if g in set(g2)]
        rows.append({f"concept ({labels[0]})": f"C{int(p.atom_1)}",
                     f"concept ({labels[1]})": f"C{int(p.atom_2)}",
                     "cosine": float(p.cosine),
                     f"top {n} genes ({labels[0]})": ", ".join(g1),
                     f"top {n} genes ({labels[1]})": ", ".join(g2),
                     "shared": ", ".join(shared), "n shared": len(shared)})
    return pd.DataFrame(rows)


def _top(att, unit: int, n: int) -> list[str]:
    if unit not in set(att.units.tolist()):
        raise KeyError(f"Unit {unit} has no attribution in this result (units "
                       f"{att.units[:5].tolist()}...); compute it first.")
    row = int(np.flatnonzero(att.units == unit)[0])
    if np.isnan(att.scores[row]).all():
        return []
    return list(att.ranked(unit).index[:n])


def initial_dictionary(d: int, c: int, k: int, seed: int) -> np.ndarray:
    """The decoder D (d, c) a :class:`~scconcepts.sae.TopKSAE` starts from with ``seed``
    (the same draw as :func:`scconcepts.sae.train_sae`: ``seed_everything`` then the module)."""
    from .utils import seed_everything

    seed_everything(int(seed))
    return decoder_atoms(sae_mod.TopKSAE(int(d), int(c), int(k)))


def moved_from_init(sae, seed: int, active=None) -> float:
    """Mean cosine between each (active) trained atom and the same atom at initialisation.

    Close to 1 means training barely moved the atoms: two SAEs started from the same seed then
    "match" because of their shared initialisation, not because of the data. That is why
    :func:`dataset_comparison` should be given SAEs trained from different seeds.
    """
    D = decoder_atoms(sae)
    D0 = initial_dictionary(sae.d, sae.c, sae.k, seed)
    idx = _indices(active, D.shape[1])
    return float(np.mean(np.sum(D[:, idx] * D0[:, idx], 0) /
                         (np.linalg.norm(D[:, idx], axis=0) * np.linalg.norm(D0[:, idx], axis=0))))


def dataset_comparison(saes: dict, embeddings: dict, seeds: dict, n_null: int = 3,
                       seed: int = 0, histories: dict | None = None,
                       n_boot: int | None = None) -> dict:
    """Fig 4A/4B: the default-size SAEs of the main and second datasets compared.

    Parameters
    ----------
    saes
        ``{"main": SAE, "second": SAE}``, each trained on its own dataset's embeddings of one
        model. The second should start from another seed than the main one, so that the two do
        not share their initial dictionary (see :func:`moved_from_init`).
    embeddings
        Role → embeddings (n_cells, d) of the same model.
    seeds
        Role → the seed each SAE was trained from (for :func:`moved_from_init`).
    n_null
        Random dictionaries drawn for the null.
    seed
        Seed of the random dictionaries and of the bootstrap.
    histories
        Role → the SAE's training history (``meta["history"]``): its held-out cells are the
        "own data" of :func:`cross_r2_table`. Without it, own data is every cell (in-sample).
    n_boot
        Bootstrap replicates (default :data:`scconcepts.claims.stats.N_BOOT`).

    Returns
    -------
    dict
        ``saes``, ``seeds``, ``r2`` (:func:`cross_r2_table`), ``r2_boot``
        (:func:`cross_r2_replicates`, (n_boot, 4)), ``matching`` (:class:`Matching`
        of main vs second over the atoms active on their own data), ``null`` (matching scores
        of the main dictionary against ``n_null`` random dictionaries with as many atoms as the
        second's active ones), ``null_cosine`` (matched cosines of the first random dictionary,
        for the histogram), ``active`` (role → mask), ``moved`` (role →
        :func:`moved_from_init`).
    """
    active = {r: np.asarray(sae_mod.encode(saes[r], embeddings[r]).getnnz(axis=0) > 0)
              for r in saes}
    D = {r: decoder_atoms(saes[r]) for r in saes}
    n2 = int(active["second"].sum())
    match = match_dictionaries(D["main"], D["second"], active["main"], active["second"])
    null = random_dictionary_null(D["main"], n2, n_null, seed, active["main"])
    null_cos = match_dictionaries(D["main"], random_dictionary(D["main"].shape[0], n2, seed),
                                  active["main"]).cosine
    return {"saes": dict(saes), "seeds": dict(seeds),
            "r2": cross_r2_table(saes, embeddings, histories),
            "r2_boot": cross_r2_replicates(saes, embeddings, histories, n_boot, seed),
            "matching": match, "null": null, "null_cosine": null_cos, "active": active,
            "moved": {r: moved_from_init(saes[r], seeds[r], active[r]) for r in saes}}


def attributed_units(att) -> np.ndarray:
    """Units of an :class:`~scconcepts.attribution.AttributionResult` with a (not all-NaN)
    attribution, e.g. to restrict :func:`top_pairs` to concepts explained in chapter 04."""
    return np.asarray(att.units)[~np.isnan(att.scores).all(1)]
