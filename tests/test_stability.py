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


# --- Fig 4A: own data on held-out cells, paired seeded bootstrap ------------------------------

def _fig4a_setup():
    import torch

    from scconcepts.sae import TopKSAE

    rng = np.random.default_rng(4)
    emb = {"main": rng.normal(size=(200, 6)).astype(np.float32),
           "second": rng.normal(size=(120, 6)).astype(np.float32)}
    torch.manual_seed(0)
    saes = {r: TopKSAE(6, 12, 3) for r in emb}
    hist = {"main": {"val_cells": list(range(0, 200, 5))},     # 40 held-out cells
            "second": {"val_cells": list(range(100, 120))}}    # 20 held-out cells
    return saes, emb, hist


def test_cross_r2_own_data_uses_only_held_out_cells():
    from scconcepts.sae import r2_score, reconstruct

    saes, emb, hist = _fig4a_setup()
    t = stability.cross_r2_table(saes, emb, hist).set_index(["trained on", "evaluated on"])
    assert list(t.columns) == ["own data", "held_out", "r2", "cells"]
    assert t.loc[("main", "main"), "cells"] == 40 and t.loc[("second", "second"), "cells"] == 20
    assert t.loc[("main", "second"), "cells"] == 120 and t.loc[("second", "main"), "cells"] == 200
    assert t["held_out"].tolist() == [True, False, False, True]
    val = np.arange(0, 200, 5)
    a = emb["main"][val]
    assert t.loc[("main", "main"), "r2"] == pytest.approx(r2_score(a, reconstruct(saes["main"], a)))
    # training cells do not count on own data: scrambling them leaves the own R² unchanged,
    # while the other SAE (every cell of this dataset) sees the change
    scrambled = dict(emb, main=emb["main"].copy())
    train = np.setdiff1d(np.arange(200), val)
    scrambled["main"][train] *= 50
    t2 = stability.cross_r2_table(saes, scrambled, hist).set_index(["trained on", "evaluated on"])
    assert t2.loc[("main", "main"), "r2"] == t.loc[("main", "main"), "r2"]
    assert t2.loc[("second", "main"), "r2"] != t.loc[("second", "main"), "r2"]
    # without histories: every cell, flagged as not held out
    t3 = stability.cross_r2_table(saes, emb)
    assert not t3["held_out"].any() and t3["cells"].tolist() == [200, 120, 200, 120]


def test_cross_r2_replicates_paired_and_seeded():
    from scconcepts.claims import stats
    from scconcepts.sae import reconstruct

    saes, emb, hist = _fig4a_setup()
    b = stability.cross_r2_replicates(saes, emb, hist, n_boot=300, seed=7)
    assert b.shape == (300, 4)
    assert list(b.columns) == [("main", "main"), ("main", "second"), ("second", "main"),
                               ("second", "second")]
    # seeded: bit-identical for the same seed, different for another
    assert b.equals(stability.cross_r2_replicates(saes, emb, hist, n_boot=300, seed=7))
    assert not b.equals(stability.cross_r2_replicates(saes, emb, hist, n_boot=300, seed=8))
    # paired: one weight matrix per evaluated dataset (seed + rank of its sorted name), shared
    # by the own SAE (its held-out columns) and the other SAE (every column)
    w = stats.bootstrap_weights(200, 300, 7 + 0)  # "main" is first in sorted order
    val = np.arange(0, 200, 5)
    a, ah = emb["main"], reconstruct(saes["second"], emb["main"])
    assert np.allclose(b[("second", "main")], stats.r2_replicates(a, ah, w))
    av = a[val]
    assert np.allclose(b[("main", "main")],
                       stats.r2_replicates(av, reconstruct(saes["main"], av), w[:, val]))
    w2 = stats.bootstrap_weights(120, 300, 7 + 1)
    a2 = emb["second"]
    assert np.allclose(b[("main", "second")],
                       stats.r2_replicates(a2, reconstruct(saes["main"], a2), w2))
    # the replicates centre on the table's values
    t = stability.cross_r2_table(saes, emb, hist).set_index(["trained on", "evaluated on"])["r2"]
    for col in b.columns:
        lo, hi = stats.percentile(b[col])
        assert lo < t[col] < hi


def test_gap_claims_from_dataset_comparison():
    from scconcepts.claims import stability as cs

    saes, emb, hist = _fig4a_setup()
    comp = stability.dataset_comparison(saes, emb, {"main": 0, "second": 0}, n_null=1,
                                        histories=hist, n_boot=200)
    assert comp["r2_boot"].shape == (200, 4) and comp["r2"]["held_out"].sum() == 2
    gaps = {"scvi": cs.r2_gaps(comp["r2"])}
    kw = {"replicates": {"scvi": cs.r2_gap_replicates(comp["r2_boot"])},
          "cells": {"scvi": cs.r2_gap_cells(comp["r2"])}}
    c = cs.all_lower(gaps, {"scvi": "scVI"}, **kw)
    assert c.value == pytest.approx(gaps["scvi"].min()) and c.interval is not None
    assert c.n in (40 + 120, 20 + 200)
    assert cs.main_smaller(gaps, {"scvi": "scVI"}, **kw).n == 320
