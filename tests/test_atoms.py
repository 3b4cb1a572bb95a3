"""Atom-level seed stability (best cosine across seeds; Paulo & Belrose 2025)."""

import numpy as np
import pytest

from scconcepts import atoms
from scconcepts.stability import random_dictionary


def _rand(d, c, seed):
    # offset so that no test dictionary equals a null draw (random_dictionary(d, c, 0..n_null))
    return random_dictionary(d, c, 1000 + seed)


def test_identical_dictionaries_score_one():
    D = _rand(16, 50, 1)
    best = atoms.best_cosine(D, D)
    assert best.shape == (50,) and np.allclose(best, 1)
    pairs, summary = atoms.atom_seed_stability({0: D, 1: D.copy()}, n_null=2)
    row = pairs.iloc[0]
    assert row["mean_best_cosine"] == pytest.approx(1.0)
    assert row["share_above"] == pytest.approx(1.0)
    assert row["null_mean_best_cosine"] < 0.9 and row["null_share_above"] == 0
    assert summary.loc["mean_best_cosine", "mean"] == pytest.approx(1.0)


def test_permuted_rescaled_copy_scores_one_and_sign_flip_does_not():
    D = _rand(12, 30, 2)
    perm = np.random.default_rng(0).permutation(30)
    scale = np.random.default_rng(1).uniform(0.5, 3.0, 30)
    ab, ba = atoms.best_cosine_both(D, D[:, perm] * scale)
    assert np.allclose(ab, 1) and np.allclose(ba, 1)
    flipped = atoms.best_cosine(D, -D)  # signed cosine: the negation is another concept
    assert (flipped < 0.99).all()


def test_noisy_copy_scores_high():
    D = _rand(64, 100, 3)
    noisy = D + 0.05 * np.random.default_rng(4).standard_normal(D.shape)
    pairs, _ = atoms.atom_seed_stability({0: D, 1: noisy}, n_null=2)
    row = pairs.iloc[0]
    assert row["mean_best_cosine"] > 0.9 and row["share_above"] > 0.8
    assert row["mean_best_cosine"] > row["null_mean_best_cosine"] + 0.3


def test_independent_dictionaries_look_like_the_null():
    decs = {s: _rand(32, 200, 10 + s) for s in range(3)}
    pairs, summary = atoms.atom_seed_stability(decs, n_null=3, seed=0)
    assert list(pairs[["seed_a", "seed_b"]].itertuples(index=False, name=None)) == \
        [(0, 1), (0, 2), (1, 2)]
    assert (pairs["share_above"] == 0).all() and (pairs["null_share_above"] == 0).all()
    assert np.allclose(pairs["mean_best_cosine"], pairs["null_mean_best_cosine"], atol=0.03)
    assert set(summary.columns) == {"mean", "std"}
    assert {"mean_best_cosine", "share_above", "null_mean_best_cosine",
            "null_share_above"} <= set(summary.index)


def test_both_directions_differ_for_a_superset():
    D = _rand(16, 40, 5)
    extra = _rand(16, 40, 6)
    big = np.hstack([D, extra])  # B contains A plus unrelated atoms
    ab, ba = atoms.best_cosine_both(D, big)
    assert np.allclose(ab, 1)  # every atom of A is found in B
    assert np.allclose(ba[:40], 1) and (ba[40:] < 0.99).all()
    pairs, _ = atoms.atom_seed_stability({0: D, 1: big}, n_null=1)
    r = pairs.iloc[0]
    assert r["mean_best_cosine_ab"] == pytest.approx(1.0)
    assert r["share_above_ba"] == pytest.approx(0.5)
    assert r["share_above"] == pytest.approx(0.75)
    assert (r["n_active_a"], r["n_active_b"]) == (40, 80)


def test_inactive_atoms_are_excluded():
    D = _rand(16, 40, 7)
    B = D.copy()
    B[:, :10] = _rand(16, 10, 8)  # the first 10 atoms of B are unrelated ...
    mask = np.arange(40) >= 10  # ... but inactive in both
    assert (atoms.best_cosine(D[:, :10], B[:, :10]) < 0.99).all()
    assert np.allclose(atoms.best_cosine(D, B, mask, mask), 1)
    assert atoms.best_cosine(D, B, mask, mask).shape == (30,)
    assert np.allclose(atoms.best_cosine(D, B, np.arange(10, 40), np.arange(10, 40)), 1)
    pairs, _ = atoms.atom_seed_stability({0: D, 1: B}, {0: mask, 1: mask}, n_null=1)
    assert pairs.iloc[0]["share_above"] == pytest.approx(1.0)
    assert pairs.iloc[0]["n_active_a"] == 30
    # a dead atom of B that equals an atom of A must not be its partner
    B2 = _rand(16, 40, 9)
    B2[:, 0] = D[:, 0]
    only_first_dead = np.arange(40) != 0
    assert atoms.best_cosine(D, B2)[0] == pytest.approx(1.0)
    assert atoms.best_cosine(D, B2, None, only_first_dead)[0] < 0.99


def test_chunking_matches_one_block():
    A, B = _rand(24, 257, 11), _rand(24, 131, 12)
    full = atoms.best_cosine_both(A, B, chunk=10_000)
    for ch in (1, 7, 64):
        part = atoms.best_cosine_both(A, B, chunk=ch)
        assert np.allclose(full[0], part[0], atol=1e-12)
        assert np.allclose(full[1], part[1], atol=1e-12)
    cos = (A.T @ B)  # unit atoms already
    assert np.allclose(full[0], cos.max(1)) and np.allclose(full[1], cos.max(0))


def test_null_is_seeded_and_reproducible():
    decs = {0: _rand(16, 60, 20), 1: _rand(16, 60, 21)}
    p1, _ = atoms.atom_seed_stability(decs, n_null=3, seed=5)
    p2, _ = atoms.atom_seed_stability(decs, n_null=3, seed=5)
    p3, _ = atoms.atom_seed_stability(decs, n_null=3, seed=6)
    assert p1.equals(p2)
    assert p1["null_mean_best_cosine"].iloc[0] != p3["null_mean_best_cosine"].iloc[0]
    assert p1["mean_best_cosine"].iloc[0] == p3["mean_best_cosine"].iloc[0]


def test_null_uses_the_books_random_dictionaries():
    D0, D1 = _rand(8, 20, 30), _rand(8, 15, 31)
    m1 = np.arange(15) < 12
    pairs, _ = atoms.atom_seed_stability({0: D0, 1: D1}, {1: m1}, n_null=2, seed=3)
    expect = []
    for i in range(2):
        expect.append(atoms.best_cosine(D0, random_dictionary(8, 12, 3 + i)).mean())
        expect.append(atoms.best_cosine(D1, random_dictionary(8, 20, 3 + i), m1).mean())
    assert pairs.iloc[0]["null_mean_best_cosine"] == pytest.approx(np.mean(expect))


def test_threshold_is_strict():
    D = _rand(8, 5, 40)
    pairs, _ = atoms.atom_seed_stability({0: D, 1: D}, n_null=1, threshold=1.0)
    assert pairs.iloc[0]["share_above"] == 0


def test_validation_errors():
    with pytest.raises(ValueError, match=r"\(16, 10\).*\(8, 10\)"):
        atoms.best_cosine(_rand(16, 10, 0), _rand(8, 10, 1))
    with pytest.raises(ValueError, match=r"\(16, 10\).*\(8, 10\)"):
        atoms.atom_seed_stability({0: _rand(16, 10, 0), 1: _rand(8, 10, 1)})
    with pytest.raises(ValueError, match="2-D"):
        atoms.best_cosine(np.ones(5), _rand(5, 3, 0))
    with pytest.raises(ValueError, match="No active atom"):
        atoms.best_cosine(_rand(4, 3, 0), _rand(4, 3, 1), np.zeros(3, bool))
    with pytest.raises(ValueError, match="shape"):
        atoms.best_cosine(_rand(4, 3, 0), _rand(4, 3, 1), np.ones(4, bool))
    with pytest.raises(ValueError, match="out of range"):
        atoms.best_cosine(_rand(4, 3, 0), _rand(4, 3, 1), [0, 3])
    Z = _rand(4, 3, 0)
    Z[:, 1] = 0
    with pytest.raises(ValueError, match="all-zero"):
        atoms.best_cosine(Z, _rand(4, 3, 1))
    with pytest.raises(ValueError, match="two seeds"):
        atoms.atom_seed_stability({0: _rand(4, 3, 0)})
    with pytest.raises(ValueError, match="n_null"):
        atoms.atom_seed_stability({0: _rand(4, 3, 0), 1: _rand(4, 3, 1)}, n_null=0)
