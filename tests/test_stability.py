"""Stability helpers (Sec 4.4): Hungarian matching, random null, seed/cross-data tables."""

import numpy as np
import pytest

from scconcepts import stability
from scconcepts.sae import SAEConfig, train_sae


def test_permuted_dictionary_matches_with_cosine_one():
    D = stability.random_dictionary(16, 40, seed=1)
    perm = np.random.default_rng(0).permutation(40)
    m = stability.match_dictionaries(D, D[:, perm] * 3.0)  # scaling does not matter
    assert m.score == pytest.approx(1.0)
    assert np.array_equal(perm[m.cols], m.rows)


def test_sign_flip_and_subset_indices():
    D = stability.random_dictionary(8, 10, seed=2)
    m = stability.match_dictionaries(D, -D)
    assert m.score < 0.9  # anti-aligned atoms are not a match (the cosine is signed)
    assert (m.cosine > -1 + 1e-9).all()
    sub = stability.match_dictionaries(D, D, atoms_1=[2, 5, 7], atoms_2=np.arange(10) != 0)
    assert set(sub.rows) == {2, 5, 7} and np.allclose(sub.cosine, 1)


def test_null_is_below_real_match_and_errors():
    D = stability.random_dictionary(32, 20, seed=3)
    null = stability.random_dictionary_null(D, 20, n_repeats=3, seed=0)
    assert null.shape == (3,) and (null < 0.7).all()
    with pytest.raises(ValueError, match="same d"):
        stability.cosine_matrix(np.ones((3, 2)), np.ones((4, 2)))


def test_init_diagnostic_and_seed_tables():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(300, 8)).astype(np.float32)
    saes = {s: train_sae(A, SAEConfig(d=8, c=16, k=2, epochs=2, lr=1e-3, seed=s),
                         progress=False)[0] for s in (0, 1)}
    # two epochs barely move the atoms: the init diagnostic sees it, and another seed's init
    # does not match
    assert stability.moved_from_init(saes[0], 0) > 0.9
    assert stability.moved_from_init(saes[0], 1) < 0.5
    per_seed, pairs, summary = stability.seed_stability(saes, A, n_null=2)
    assert len(per_seed) == 2 and len(pairs) == 1
    assert set(summary.index) >= {"R²", "matching score between seeds"}
    cross = stability.cross_r2_table({"a": saes[0]}, {"a": A, "b": A[:100]})
    assert cross["own data"].tolist() == [True, False]


def test_dataset_comparison_and_attributed_units():
    rng = np.random.default_rng(1)
    emb = {"main": rng.normal(size=(300, 8)).astype(np.float32),
           "second": rng.normal(size=(150, 8)).astype(np.float32)}
    seeds = {"main": 0, "second": 1}
    saes = {r: train_sae(emb[r], SAEConfig(d=8, c=16, k=2, epochs=2, lr=1e-3, seed=seeds[r]),
                         progress=False)[0] for r in emb}
    comp = stability.dataset_comparison(saes, emb, seeds, n_null=2, seed=0)
    assert set(comp) >= {"r2", "matching", "null", "null_cosine", "active", "moved"}
    assert len(comp["r2"]) == 4 and comp["null"].shape == (2,)
    assert len(comp["matching"].cosine) == min(comp["active"]["main"].sum(),
                                               comp["active"]["second"].sum())
    assert comp["moved"]["main"] > 0.9  # two epochs: still near the initial dictionary

    class Att:
        units = np.array([3, 5, 9])
        scores = np.array([[1.0, 2.0], [np.nan, np.nan], [0.0, np.nan]])

    assert stability.attributed_units(Att()).tolist() == [3, 9]
    pairs = stability.top_pairs(comp["matching"], 3, allowed_1=comp["matching"].rows[:2])
    assert len(pairs) <= 2 and set(pairs["atom_1"]) <= set(comp["matching"].rows[:2])
