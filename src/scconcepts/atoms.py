"""Atom-level seed stability: best cosine of each concept to any concept of another SAE.

SAEs of the same size trained on the same embeddings from different seeds are compared atom by
atom, as in Paulo & Belrose (2025, "Sparse autoencoders trained on the same data learn different
features"): for each active decoder atom (concept vector) of SAE A, the highest cosine to *any*
active atom of SAE B. Unlike the one-to-one Hungarian matching of
:func:`scconcepts.stability.match_dictionaries` (the book's dataset-level score), several atoms
of A may share their best partner in B, so the score asks "is this concept found again?" rather
than "do the two dictionaries pair up?". Two numbers per direction:

* the **mean best cosine** over the active atoms of A;
* the **share of active atoms whose best cosine exceeds** ``threshold`` (0.9 by default; Paulo &
  Belrose also report 0.7).

Both directions (A→B and B→A) are computed; a pair's score is their mean. The null is the
book's: random dictionaries of unit Gaussian atoms (:func:`scconcepts.stability.random_dictionary`,
seeds ``seed``, ``seed + 1``, ...) with as many atoms as the partner's active ones, exactly as
:func:`scconcepts.stability.seed_stability` draws its matching null.

Layout: dictionaries are (d, c), atoms are **columns**, as the decoder ``D`` of
:class:`scconcepts.sae.TopKSAE` and :func:`scconcepts.stability.decoder_atoms`.

Sign: the cosine is **signed** (no absolute value). Top-K SAE codes are non-negative (ReLU), so a
concept's vector and its negation are different concepts; an atom equal to minus another is not a
match (its cosine is −1).
"""

from __future__ import annotations

from itertools import combinations

import numpy as np
import pandas as pd

from .stability import random_dictionary

__all__ = ["best_cosine", "best_cosine_both", "atom_seed_stability"]

_CHUNK = 1024  # atoms of A per block of the cosine matrix: (1024, c_b) float64 ≤ 41 MB at c=5000


def _atoms(D, name: str) -> np.ndarray:
    D = np.asarray(D, dtype=np.float64)
    if D.ndim != 2:
        raise ValueError(f"Dictionary {name} must be 2-D (d, c) with atoms as columns; got shape "
                         f"{D.shape}.")
    return D


def _mask(active, c: int, name: str) -> np.ndarray:
    """Indices of the selected atoms from a boolean mask (c,), an index array, or None (all)."""
    if active is None:
        return np.arange(c)
    sel = np.asarray(active)
    if sel.dtype == bool:
        if sel.shape != (c,):
            raise ValueError(f"Active mask of {name} has shape {sel.shape}, expected ({c},) for a "
                             f"dictionary of {c} atoms.")
        idx = np.flatnonzero(sel)
    else:
        idx = sel.astype(int).ravel()
        if idx.size and (idx.min() < 0 or idx.max() >= c):
            raise ValueError(f"Active indices of {name} out of range for {c} atoms.")
    if idx.size == 0:
        raise ValueError(f"No active atom in {name} (is every concept dead?).")
    return idx


def _normalised(D: np.ndarray, name: str) -> np.ndarray:
    n = np.linalg.norm(D, axis=0)
    if (n == 0).any():
        raise ValueError(f"Dictionary {name} has an all-zero atom (column "
                         f"{int(np.flatnonzero(n == 0)[0])}); its cosine is undefined.")
    return D / n


def _prepare(D_a, D_b, active_a, active_b) -> tuple[np.ndarray, np.ndarray]:
    D_a, D_b = _atoms(D_a, "A"), _atoms(D_b, "B")
    if D_a.shape[0] != D_b.shape[0]:
        raise ValueError(f"Dictionaries must be (d, c) with the same d; got A {D_a.shape} and "
                         f"B {D_b.shape}. Atoms of embeddings of different dimension cannot be "
                         f"compared.")
    A = _normalised(D_a[:, _mask(active_a, D_a.shape[1], "A")], "A")
    B = _normalised(D_b[:, _mask(active_b, D_b.shape[1], "B")], "B")
    return A, B


def best_cosine_both(D_a, D_b, active_a=None, active_b=None, chunk: int = _CHUNK
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Best signed cosine in both directions, from one chunked pass over the cosine matrix.

    Parameters
    ----------
    D_a, D_b
        Dictionaries, shapes (d, c_a) and (d, c_b); columns are atoms, any non-zero norm (they are
        normalised here).
    active_a, active_b
        Atoms to keep: boolean masks (c_a,) / (c_b,), index arrays, or None (all atoms).
    chunk
        Atoms of A per block; the largest block held is (chunk, n_active_b) float64.

    Returns
    -------
    (a_to_b, b_to_a)
        ``a_to_b`` (n_active_a,): for each active atom of A, in index order, the highest cosine to
        any active atom of B; ``b_to_a`` (n_active_b,) likewise for B against A. Values in
        [−1, 1].

    Raises
    ------
    ValueError
        A dictionary not 2-D, dictionaries of different d (the message names both shapes), a mask
        of the wrong shape or selecting nothing, an index out of range, or an all-zero atom.
    """
    A, B = _prepare(D_a, D_b, active_a, active_b)
    chunk = max(1, int(chunk))
    a_to_b = np.empty(A.shape[1])
    b_to_a = np.full(B.shape[1], -np.inf)
    for s in range(0, A.shape[1], chunk):
        cos = A[:, s:s + chunk].T @ B  # (chunk, n_active_b)
        a_to_b[s:s + chunk] = cos.max(axis=1)
        np.maximum(b_to_a, cos.max(axis=0), out=b_to_a)
    return np.clip(a_to_b, -1.0, 1.0), np.clip(b_to_a, -1.0, 1.0)


def best_cosine(D_a, D_b, active_a=None, active_b=None, chunk: int = _CHUNK) -> np.ndarray:
    """Best signed cosine of each active atom of A to any active atom of B.

    The directional score of Paulo & Belrose (2025): ``max_j cos(a_i, b_j)``, the cosine signed
    because Top-K SAE codes are non-negative (an atom and its negation are different concepts).
    Not one-to-one: several atoms of A may share a best partner (compare
    :func:`scconcepts.stability.match_dictionaries`). Computed as a matrix product of the
    normalised atoms, ``chunk`` atoms of A at a time.

    Parameters
    ----------
    D_a, D_b
        Dictionaries, shapes (d, c_a) and (d, c_b); columns are atoms (the decoder ``D`` of
        :class:`scconcepts.sae.TopKSAE`), any non-zero norm.
    active_a, active_b
        Atoms to keep: boolean masks (c_a,) / (c_b,), index arrays, or None (all atoms).
    chunk
        Atoms of A per block of the cosine matrix.

    Returns
    -------
    numpy.ndarray
        Shape (n_active_a,), in the order of A's active atoms, values in [−1, 1].

    Raises
    ------
    ValueError
        As :func:`best_cosine_both`; notably dictionaries of different d (naming both shapes).
    """
    return best_cosine_both(D_a, D_b, active_a, active_b, chunk)[0]


def _scores(best: np.ndarray, threshold: float) -> tuple[float, float]:
    return float(best.mean()), float((best > threshold).mean())


def atom_seed_stability(decoders: dict, active: dict | None = None, n_null: int = 3,
                        seed: int = 0, threshold: float = 0.9, chunk: int = _CHUNK
                        ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Atom-level stability of SAEs trained from different seeds (best cosine across seeds).

    For each pair of seeds (a, b), a < b: the mean best cosine and the share of active atoms
    above ``threshold`` in both directions (:func:`best_cosine_both`), and the same two numbers
    against a null: for each direction, ``n_null`` random dictionaries
    (:func:`scconcepts.stability.random_dictionary`, seeds ``seed`` … ``seed + n_null − 1``,
    unit Gaussian atoms) with as many atoms as the partner's active ones — the null of
    :func:`scconcepts.stability.seed_stability`.

    Parameters
    ----------
    decoders
        Seed → decoder of shape (d, c), atoms as columns (e.g.
        :func:`scconcepts.stability.decoder_atoms` of each SAE); at least two, all with the same d.
    active
        Seed → boolean mask (c,) of the atoms active on the training data (code > 0 in some cell),
        or None to use every atom. A seed missing from the dict uses every atom.
    n_null
        Random dictionaries per direction and pair (≥ 1).
    seed
        First seed of the random dictionaries; the same seed gives identical null columns.
    threshold
        Best cosine above which an atom counts as found again (strictly greater).
    chunk
        Atoms per block of the cosine matrices.

    Returns
    -------
    (pairs, summary)
        ``pairs``: one row per pair with ``seed_a``, ``seed_b``, ``n_active_a``, ``n_active_b``,
        ``mean_best_cosine`` and ``share_above`` (mean of the two directions), the directional
        ``mean_best_cosine_ab`` / ``_ba`` and ``share_above_ab`` / ``_ba``, and
        ``null_mean_best_cosine`` / ``null_share_above`` (mean over both directions and the
        ``n_null`` draws). ``summary``: index = the score columns, columns ``mean`` and ``std``
        (ddof=1; NaN with a single pair) over pairs.

    Raises
    ------
    ValueError
        Fewer than two decoders, ``n_null`` < 1, or any error of :func:`best_cosine_both`
        (different d, bad mask, no active atom, zero atom).
    """
    if len(decoders) < 2:
        raise ValueError(f"Need at least two seeds to compare, got {len(decoders)}.")
    if int(n_null) < 1:
        raise ValueError(f"n_null must be >= 1, got {n_null}.")
    active = {} if active is None else dict(active)
    D = {s: _atoms(v, f"of seed {s}") for s, v in decoders.items()}
    shapes = {s: v.shape for s, v in D.items()}
    if len({v[0] for v in shapes.values()}) > 1:
        raise ValueError(f"Decoders must share d (shape (d, c)); got shapes {shapes}.")
    idx = {s: _mask(active.get(s), D[s].shape[1], f"seed {s}") for s in D}
    d = next(iter(D.values())).shape[0]

    rows = []
    for sa, sb in combinations(sorted(D), 2):
        ab, ba = best_cosine_both(D[sa], D[sb], idx[sa], idx[sb], chunk)
        m_ab, s_ab = _scores(ab, threshold)
        m_ba, s_ba = _scores(ba, threshold)
        null_m, null_s = [], []
        for i in range(int(n_null)):
            for src, partner in ((sa, sb), (sb, sa)):
                R = random_dictionary(d, int(idx[partner].size), seed + i)
                m, s = _scores(best_cosine(D[src], R, idx[src], None, chunk), threshold)
                null_m.append(m)
                null_s.append(s)
        rows.append({"seed_a": sa, "seed_b": sb,
                     "n_active_a": int(idx[sa].size), "n_active_b": int(idx[sb].size),
                     "mean_best_cosine": (m_ab + m_ba) / 2, "share_above": (s_ab + s_ba) / 2,
                     "mean_best_cosine_ab": m_ab, "mean_best_cosine_ba": m_ba,
                     "share_above_ab": s_ab, "share_above_ba": s_ba,
                     "null_mean_best_cosine": float(np.mean(null_m)),
                     "null_share_above": float(np.mean(null_s))})
    pairs = pd.DataFrame(rows)
    cols = ["mean_best_cosine", "share_above", "null_mean_best_cosine", "null_share_above",
            "mean_best_cosine_ab", "mean_best_cosine_ba", "share_above_ab", "share_above_ba"]
    summary = pd.DataFrame({"mean": pairs[cols].mean(), "std": pairs[cols].std(ddof=1)})
    return pairs, summary
