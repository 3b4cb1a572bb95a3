"""Metadata ratios and Sec 3.1 categories (:mod:`scconcepts.concepts`) on constructed cases
with known answers."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from scconcepts.concepts import (CATEGORY_ORDER, categorize_concepts, metadata_ratios,
                                 top_labels)


@pytest.fixture
def six_cells():
    obs = pd.DataFrame({"cell_type": ["T", "T", "T", "B", "B", "Mono"],
                        "donor_id": ["d1", "d2", "d1", "d2", "d1", "d2"]},
                       index=[f"c{i}" for i in range(6)])
    codes = np.zeros((6, 3), dtype=np.float32)
    codes[[0, 1, 2, 3], 0] = [1.0, 0.5, 2.0, 0.1]   # 3 T + 1 B
    codes[[3, 4, 5], 1] = [0.3, 0.2, 0.7]           # 2 B + 1 Mono
    codes[0, 1] = -1.0                              # ≤ 0 is not "activating"
    # concept 2 never activates
    return codes, obs


@pytest.mark.parametrize("as_sparse", [False, True])
def test_metadata_ratios_known_answer(six_cells, as_sparse):
    codes, obs = six_cells
    r = metadata_ratios(sp.csr_matrix(codes) if as_sparse else codes, obs, "cell_type")
    assert r.shape == (3, 3)
    assert list(r.columns) == ["B", "Mono", "T"]
    np.testing.assert_allclose(r.loc[0, ["T", "B", "Mono"]].to_numpy(), [0.75, 0.25, 0.0])
    np.testing.assert_allclose(r.loc[1, ["T", "B", "Mono"]].to_numpy(), [0.0, 2 / 3, 1 / 3])
    assert r.loc[2].isna().all()
    np.testing.assert_allclose(r.loc[[0, 1]].sum(1), 1.0)

    d = metadata_ratios(codes, obs, "donor_id")
    np.testing.assert_allclose(d.loc[0, ["d1", "d2"]].to_numpy(), [0.5, 0.5])
    np.testing.assert_allclose(d.loc[1, ["d1", "d2"]].to_numpy(), [1 / 3, 2 / 3])


def test_top_labels(six_cells):
    codes, obs = six_cells
    t = top_labels(codes, obs, "cell_type")
    assert t.loc[0, "label"] == "T" and t.loc[0, "ratio"] == 0.75
    assert t.loc[1, "label"] == "B" and t.loc[1, "ratio"] == pytest.approx(2 / 3)
    assert t.loc[2, "label"] is None and np.isnan(t.loc[2, "ratio"])


def test_metadata_ratios_errors(six_cells):
    codes, obs = six_cells
    with pytest.raises(KeyError, match="tissue"):
        metadata_ratios(codes, obs, "tissue")
    with pytest.raises(ValueError, match="5 cells"):
        metadata_ratios(codes[:5], obs, "cell_type")


def _blocks():
    """Concepts activated in disjoint blocks of cells with chosen label mixtures.

    concept 0: 100 cells, 70 % T               -> cell_type-specific (0.7 counts)
    concept 1: 100 cells, 69 % T, one donor    -> donor_id-specific (0.69 does not count)
    concept 2:  99 cells, all T                -> not enough data (min_cells = 100)
    concept 3:   0 cells                       -> dead
    concept 4: 100 cells, 80 % B, 90 % donor d4 -> specific to both keys
    concept 5: 100 cells, 50/50 T/B and donors  -> other
    """
    blocks = [  # (concept, cell types, donors)
        (0, ["T"] * 70 + ["B"] * 30, ["d1"] * 50 + ["d2"] * 50),
        (1, ["T"] * 69 + ["B"] * 31, ["d3"] * 100),
        (2, ["T"] * 99, ["d1"] * 99),
        (4, ["B"] * 80 + ["T"] * 20, ["d4"] * 90 + ["d1"] * 10),
        (5, ["T"] * 50 + ["B"] * 50, ["d1", "d2"] * 50),
    ]
    n = sum(len(b[1]) for b in blocks)
    codes = sp.lil_matrix((n, 6), dtype=np.float32)
    ct, donor = [], []
    start = 0
    for concept, types, donors in blocks:
        codes[start:start + len(types), concept] = 1.5
        ct += types
        donor += donors
        start += len(types)
    obs = pd.DataFrame({"cell_type": ct, "donor_id": donor, "tissue": "blood"})
    return codes.tocsr(), obs


def test_categories_threshold_min_cells_and_dead():
    codes, obs = _blocks()
    cat = categorize_concepts(codes, obs, keys=("cell_type", "tissue", "donor_id", "absent"),
                              threshold=0.7, min_cells=100)
    assert list(cat["n_cells"]) == [100, 100, 99, 0, 100, 100]
    assert list(cat["category"]) == ["cell_type-specific", "donor_id-specific", "not enough data",
                                     "dead", "cell_type-specific", "other"]
    assert cat.loc[0, "cell_type_ratio"] == 0.7 and cat.loc[0, "cell_type_label"] == "T"
    assert cat.loc[1, "cell_type_ratio"] == 0.69
    assert cat.loc[1, "donor_id_label"] == "d3" and cat.loc[1, "donor_id_ratio"] == 1.0
    # a concept with too few cells is "not enough data" even though it is 100 % T
    assert cat.loc[2, "specific_to"] == "cell_type,donor_id"
    assert cat.loc[3, "specific_to"] == "" and np.isnan(cat.loc[3, "cell_type_ratio"])
    assert cat.loc[4, "specific_to"] == "cell_type,donor_id"
    assert cat.loc[5, "specific_to"] == ""
    # single-valued and absent keys are skipped, with no columns
    assert cat.attrs["skipped"] == ["tissue", "absent"]
    assert "tissue_ratio" not in cat.columns and "absent_ratio" not in cat.columns
    assert cat.attrs["threshold"] == 0.7 and cat.attrs["min_cells"] == 100
    assert set(cat["category"]) <= set(CATEGORY_ORDER)


def test_categories_threshold_and_min_cells_are_parameters():
    codes, obs = _blocks()
    cat = categorize_concepts(codes, obs, keys=("cell_type", "donor_id"), threshold=0.69,
                              min_cells=99)
    assert cat.loc[1, "category"] == "cell_type-specific"  # 0.69 now counts
    assert cat.loc[2, "category"] == "cell_type-specific"  # 99 cells now enough
    strict = categorize_concepts(codes, obs, keys=("cell_type", "donor_id"), threshold=0.71)
    assert strict.loc[0, "category"] == "other"  # 0.7 < 0.71, donors 50/50


def test_categories_key_priority():
    codes, obs = _blocks()
    first_ct = categorize_concepts(codes, obs, keys=("cell_type", "donor_id"))
    first_donor = categorize_concepts(codes, obs, keys=("donor_id", "cell_type"))
    assert first_ct.loc[4, "category"] == "cell_type-specific"
    assert first_donor.loc[4, "category"] == "donor_id-specific"
    assert first_donor.loc[4, "specific_to"] == "donor_id,cell_type"
    # concepts specific to one key only do not depend on the order
    for i in (0, 1):
        assert first_ct.loc[i, "category"] == first_donor.loc[i, "category"]


def test_category_counts_rows_per_sae():
    import pandas as pd

    from scconcepts.concepts import category_counts

    cats = {(10, 2): pd.DataFrame({"category": ["dead", "dead", "other"]}),
            (20, 4): pd.DataFrame({"category": ["cell_type-specific", "other"]})}
    t = category_counts(cats)
    assert list(t.index) == ["c=10, k=2", "c=20, k=4"]
    assert t.loc["c=10, k=2", "dead"] == 2 and t.loc["c=20, k=4", "dead"] == 0
    assert t.loc["c=20, k=4", "cell_type-specific"] == 1 and t.values.dtype.kind == "i"


def test_specific_share_ignores_dead_and_small_concepts():
    import numpy as np
    import pandas as pd

    from scconcepts.concepts import specific_share

    cats = pd.DataFrame({"category": ["dead", "not enough data", "cell_type-specific",
                                      "cell_type-specific", "other", "donor_id-specific"]})
    assert specific_share(cats) == (4, 0.5)
    assert specific_share(cats, "donor_id-specific") == (4, 0.25)
    n, share = specific_share(cats.iloc[:2])
    assert n == 0 and np.isnan(share)
