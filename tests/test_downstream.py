"""Usefulness tasks (Sec 4.5, App G): splits, logistic regression, coefficients, cell cycle."""

import numpy as np
import pandas as pd
import pytest

from scconcepts import downstream


def test_balanced_split():
    labels = np.array(["a"] * 50 + ["b"] * 30 + ["c"] * 5)
    tr, te, cl = downstream.balanced_split(labels, per_class=100, test_fraction=0.2,
                                           min_cells=10, seed=0)
    assert cl == ["a", "b"]
    assert pd.Series(labels[te]).value_counts().tolist() == [6, 6]
    assert pd.Series(labels[tr]).value_counts().tolist() == [24, 24]
    assert not set(tr) & set(te)
    with pytest.raises(ValueError, match="2 classes"):
        downstream.balanced_split(labels, 10, min_cells=40)


def test_logistic_regression_on_separable_codes_and_coefficients():
    rng = np.random.default_rng(0)
    y = np.repeat(["x", "y", "z"], 60)
    X = rng.uniform(0, 0.1, (180, 6))
    X[y == "x", 1] += 1
    X[y == "y", 4] += 1
    X[y == "z", 2] += 1
    tr, te, _ = downstream.balanced_split(y, 60, 0.25, seed=0)
    res = downstream.fit_task(X, y, tr, te)
    assert res.accuracy == 1.0
    assert np.trace(res.confusion.to_numpy()) == len(te)
    top = downstream.top_coefficients(res, n=1)
    assert dict(zip(top["class"], top["unit"])) == {"x": 1, "y": 4, "z": 2}
    shuffled = downstream.fit_task(X, rng.permutation(y), tr, te)
    assert shuffled.accuracy < 0.7  # the same pipeline on shuffled labels is near chance


def test_cell_cycle_phases_on_real_cells(kang_full):
    from scconcepts.data import load_dataset

    with pytest.raises(ValueError, match="cell-cycle genes"):
        downstream.cell_cycle_phases(kang_full[:200])  # Kang keeps almost no Regev gene
    pbmc = load_dataset("pbmc4k_10x")
    cov = downstream.cell_cycle_coverage({"kang": kang_full, "pbmc4k": pbmc})
    assert cov.loc["kang", "S genes"] < 10 <= cov.loc["pbmc4k", "S genes"]
    ph = downstream.cell_cycle_phases(pbmc[:400])
    assert set(ph["phase"]) <= {"G1", "S", "G2M"} and len(ph) == 400


def test_unit_attribution_scgpt_budget_goes_to_classes_with_markers():
    """With a budget of scGPT units, the classes that have a marker list are attributed first
    (Fig 5's marker test needs them), then the others by rank; scVI attributes every unit."""
    from scconcepts.attribution import AttributionResult

    class FakePipe:
        def __init__(self):
            self.calls = []

        def attribution(self, kind, model="scvi", role="main", units=None):
            self.calls.append((kind, model, role, None if units is None else list(units)))
            u = np.asarray(units if units is not None else [0, 1, 2], dtype=int)
            z = np.zeros((len(u), 3), np.float32)
            return AttributionResult(units=u, genes=np.array(["A", "B", "C"]), scores=z,
                                     per_prototype=z[:, None, :],
                                     prototypes=np.zeros((len(u), 1), np.int64),
                                     counterfactuals=np.zeros((len(u), 1, 1), np.int64),
                                     prototype_activation=np.ones((len(u), 1), np.float32),
                                     kind=kind)

    top = pd.DataFrame({"class": ["G1", "G1", "G2M", "G2M", "S", "S"],
                        "rank": [1, 2, 1, 2, 1, 2], "unit": [7, 8, 3, 4, 5, 6]})
    pipe = FakePipe()
    att = downstream.unit_attribution(pipe, "scgpt", "concepts", "second", top, 3,
                                      classes=["S", "G2M"])
    assert pipe.calls == [("concept", "scgpt", "second", [3, 4, 5])]
    assert sorted(att.units.tolist()) == [3, 4, 5]
    pipe = FakePipe()  # without classes: by rank only, G1's rank-1 unit included
    downstream.unit_attribution(pipe, "scgpt", "neurons", "second", top, 2)
    assert pipe.calls == [("neuron", "scgpt", "second", [3, 7])]
    pipe = FakePipe()  # on main, chapter 04's sample is reused and only the others computed
    downstream.unit_attribution(pipe, "scgpt", "concepts", "main", top, 1, classes=["S"])
    assert pipe.calls == [("concept", "scgpt", "main", None), ("concept", "scgpt", "main", [5])]
