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


def _fake_attribute(calls):
    from scconcepts.attribution import AttributionResult

    def attribute(kind, units):
        calls.append((kind, None if units is None else list(units)))
        u = np.asarray(units if units is not None else [0, 1, 2], dtype=int)
        z = np.zeros((len(u), 3), np.float32)
        return AttributionResult(units=u, genes=np.array(["A", "B", "C"]), scores=z,
                                 per_prototype=z[:, None, :],
                                 prototypes=np.zeros((len(u), 1), np.int64),
                                 counterfactuals=np.zeros((len(u), 1, 1), np.int64),
                                 prototype_activation=np.ones((len(u), 1), np.float32),
                                 kind=kind)

    return attribute


def test_unit_attribution_budget_goes_to_classes_with_markers():
    """With a sampled attribution (``attribution_units`` = n), the budget of extra units goes
    first to the classes that have a marker list (Fig 5's marker test needs them), then by
    rank; with ``"active"`` every top unit is attributed."""
    from types import SimpleNamespace

    top = pd.DataFrame({"class": ["G1", "G1", "G2M", "G2M", "S", "S"],
                        "rank": [1, 2, 1, 2, 1, 2], "unit": [7, 8, 3, 4, 5, 6]})
    sampled = SimpleNamespace(attribution_units=20, usefulness_attribution_units=3)
    calls = []
    att = downstream.unit_attribution(_fake_attribute(calls), "concepts", "second", top,
                                      sampled, classes=["S", "G2M"])
    assert calls == [("concept", [3, 4, 5])]
    assert sorted(att.units.tolist()) == [3, 4, 5]
    calls = []  # without classes: by rank only, G1's rank-1 unit included
    budget2 = SimpleNamespace(attribution_units=20, usefulness_attribution_units=2)
    downstream.unit_attribution(_fake_attribute(calls), "neurons", "second", top, budget2)
    assert calls == [("neuron", [3, 7])]
    calls = []  # on main, chapter 04's sample is reused and only the others computed
    budget1 = SimpleNamespace(attribution_units=20, usefulness_attribution_units=1)
    downstream.unit_attribution(_fake_attribute(calls), "concepts", "main", top, budget1,
                                classes=["S"])
    assert calls == [("concept", None), ("concept", [5])]
    calls = []  # budget 0 on another role: nothing attributed
    none = SimpleNamespace(attribution_units=20, usefulness_attribution_units=0)
    assert downstream.unit_attribution(_fake_attribute(calls), "concepts", "second", top,
                                       none) is None and calls == []
    active = SimpleNamespace(attribution_units="active", usefulness_attribution_units=0)
    calls = []
    downstream.unit_attribution(_fake_attribute(calls), "concepts", "main", top, active)
    assert calls == [("concept", None)]
    calls = []
    downstream.unit_attribution(_fake_attribute(calls), "neurons", "second", top, active)
    assert calls == [("neuron", [3, 4, 5, 6, 7, 8])]


def test_usefulness_tasks_and_cycle_role(kang_full):
    from types import SimpleNamespace

    from scconcepts.data import load_dataset

    pbmc = load_dataset("pbmc4k_10x")[:600].copy()
    main = kang_full[:800].copy()
    settings = SimpleNamespace(celltype_per_class=40, celltype_min_cells=40, cycle_per_class=50,
                               cycle_min_genes=10, test_fraction=0.25, celltype_max_iter=50,
                               cycle_max_iter=100)
    role, cov = downstream.cycle_role({"main": main, "second": pbmc})
    assert role == "second" and list(cov.index) == ["main", "second"]
    with pytest.raises(ValueError, match="No dataset"):
        downstream.cycle_role({"main": main})
    tasks = downstream.usefulness_tasks({"main": main, "second": pbmc}, settings, seed=0)
    assert tasks["cell type"]["role"] == "main" and tasks["cell cycle"]["role"] == "second"
    assert len(tasks["cell cycle"]["labels"]) == pbmc.n_obs
    assert not set(tasks["cell type"]["train"]) & set(tasks["cell type"]["test"])
    feats = downstream.task_features(np.zeros((5, 2)), np.zeros((5, 4)))
    assert set(feats) == {"neurons", "concepts"}
    with pytest.raises(ValueError, match="same cells"):
        downstream.task_features(np.zeros((5, 2)), np.zeros((4, 4)))
