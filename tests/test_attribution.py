"""Counterfactual occlusion attribution (:mod:`scconcepts.attribution`, Eq 1–3).

Known-answer tests on constructed inputs (counterfactual search, prototypes, a linear model
where Eq 2 has a closed form) and equivalence of the fast path with the literal per-gene loop
on real cells encoded by a tiny scVI with a small SAE (``conftest.py``).
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from scconcepts.attribution import (AttributionResult, NeuronReadout, SAEReadout, UnitFunction,
                                    attribute_units, find_counterfactuals, occlusion_fast,
                                    occlusion_literal, ranked_genes, select_prototypes)
from scconcepts.models.scvi import encoder_fn

# ------------------------------------------------------------------------------ Eq 1


def test_select_prototypes_order():
    act = np.array([0.1, 3.0, -1.0, 2.0, 3.0, 0.0, 0.5])
    np.testing.assert_array_equal(select_prototypes(act, 10), [1, 4, 3, 6, 0])  # ties: stable
    np.testing.assert_array_equal(select_prototypes(act, 2), [1, 4])
    assert select_prototypes(np.array([0.0, -2.0, 0.0]), 3).size == 0
    np.testing.assert_array_equal(select_prototypes(act[:, None], 1), [1])  # column vector


def test_counterfactuals_on_a_line():
    # cell:        0    1    2    3    4     5     6     7
    pos = np.array([0.0, 1.0, 2.5, 4.5, 7.0, 10.0, 13.5, 4.6])[:, None]
    act = np.array([3.0, 0.0, 0.0, 2.0, 0.0, -0.5, -1.0, 0.5])
    protos = select_prototypes(act, 2)
    np.testing.assert_array_equal(protos, [0, 3])
    cf = find_counterfactuals(pos, act, protos, 3)
    assert cf.shape == (2, 3)
    # cell 0 at 0: non-activating cells 1 (d=1), 2 (2.5), 4 (7)
    # cell 3 at 4.5: 2 (d=2), 4 (2.5), 1 (3.5); cell 7 (d=0.1) activates and is skipped
    np.testing.assert_array_equal(cf, [[1, 2, 4], [2, 4, 1]])
    # negative activations count as non-activating
    cf5 = find_counterfactuals(pos, act, [3], 5)
    np.testing.assert_array_equal(cf5, [[2, 4, 1, 5, 6]])
    with pytest.raises(ValueError, match="Only 5 non-activating cells"):
        find_counterfactuals(pos, act, protos, 6)


def test_counterfactuals_use_euclidean_distance():
    emb = np.array([[0.0, 0.0], [2.9, 0.0], [1.5, 1.5]])
    act = np.array([1.0, 0.0, 0.0])
    # L2: cell 2 (2.12) before cell 1 (2.9); L1 would give the opposite order (3.0 vs 2.9)
    np.testing.assert_array_equal(find_counterfactuals(emb, act, [0], 2), [[2, 1]])


# ------------------------------------------------------------------------------ Eq 2, linear


class Linear:
    """f(x) = x @ W (integer W, so that float32 sums are exact)."""

    def __init__(self, W):
        self.W = torch.as_tensor(W, dtype=torch.float32)

    def __call__(self, x):
        return x @ self.W


@pytest.fixture
def linear_case():
    rng = np.random.default_rng(0)
    m, d, n = 30, 4, 12
    W = rng.integers(-3, 4, size=(m, d)).astype(np.float32)
    x = rng.integers(0, 8, size=(n, m)).astype(np.float32)
    x[:, :3] = 5  # genes 0-2 equal in every cell
    unit_fn = UnitFunction(Linear(W), NeuronReadout(np.zeros(d)))
    return W, x, unit_fn


def test_occlusion_linear_known_answer(linear_case):
    W, x, unit_fn = linear_case
    for j in range(W.shape[1]):
        expected = (x[0] - x[1]) * W[:, j]
        np.testing.assert_array_equal(occlusion_literal(unit_fn, x[0], x[1], j), expected)
        np.testing.assert_array_equal(occlusion_fast(unit_fn, x[0], x[1], j), expected)
        pairs = occlusion_fast(unit_fn, x[:4], x[4:8], j, batch_size=7)
        np.testing.assert_array_equal(pairs, (x[:4] - x[4:8]) * W[:, j])
    assert (pairs[:, :3] == 0).all()


def test_attribute_units_linear_known_answer(linear_case):
    W, x, _ = linear_case
    emb = x @ W
    # centred neurons (integer median keeps float32 sums exact); the centring cancels in Eq 2
    median = np.floor(np.median(emb, axis=0))
    unit_fn = UnitFunction(Linear(W), NeuronReadout(median))
    acts = emb - median
    for j in (0, 2):
        assert (acts[:, j] > 0).sum() >= 2 and (acts[:, j] <= 0).sum() >= 3
    genes = [f"G{i}" for i in range(x.shape[1])]
    res = attribute_units(unit_fn, sp.csr_matrix(x), emb, acts, [0, 2], genes,
                          n_prototypes=2, n_counterfactuals=3, batch_size=16, progress=False)
    for r, j in enumerate([0, 2]):
        p = select_prototypes(acts[:, j], 2)
        np.testing.assert_array_equal(res.prototypes[r], p)
        c = find_counterfactuals(emb, acts[:, j], p, 3)
        np.testing.assert_array_equal(res.counterfactuals[r], c)
        # Eq 3 with Eq 2 in closed form: mean over counterfactuals then prototypes
        per_proto = np.stack([((x[pi] - x[ci]) * W[:, j]).mean(0) for pi, ci in zip(p, c)])
        np.testing.assert_allclose(res.per_prototype[r], per_proto, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(res.scores[r], per_proto.mean(0), rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(res.prototype_activation[r], acts[p, j])
        assert (res.scores[r, :3] == 0).all()
    assert res.kind == "neuron"


# ------------------------------------------------------------------------------ real cells


@pytest.fixture(scope="module")
def real(scvi_ref, sae_small):
    x = scvi_ref.adata.X  # raw counts, CSR
    f = encoder_fn(scvi_ref.model)
    codes = sae_small.codes.toarray()
    n_act = (codes > 0).sum(0)
    # concepts with enough activating and non-activating cells, most active first
    order = np.argsort(-n_act, kind="stable")
    concepts = [int(u) for u in order if 5 <= n_act[u] <= codes.shape[0] - 10][:3]
    assert len(concepts) == 3
    neuron = NeuronReadout.from_embeddings(scvi_ref.z)
    return dict(x=x, f=f, z=scvi_ref.z, codes=codes, concepts=concepts, neuron=neuron,
                genes=list(scvi_ref.adata.var_names), sae=sae_small.sae)


def _pairs(x, emb, act, n_p, n_c):
    p = select_prototypes(act, n_p)
    c = find_counterfactuals(emb, act, p, n_c)
    xp = x[np.repeat(p, n_c)].toarray()
    xc = x[c.ravel()].toarray()
    return xp, xc


@pytest.mark.parametrize("kind", ["concept", "neuron"])
def test_fast_equals_literal_on_real_cells(real, kind):
    if kind == "concept":
        unit = real["concepts"][0]
        unit_fn = UnitFunction(real["f"], SAEReadout(real["sae"]))
        act = real["codes"][:, unit]
    else:
        unit = 7
        unit_fn = UnitFunction(real["f"], real["neuron"])
        act = real["z"][:, unit] - real["neuron"].median.numpy()[unit]
    xp, xc = _pairs(real["x"], real["z"], act, 2, 2)  # 4 (prototype, counterfactual) pairs
    sel = [0, 1, 3] if kind == "concept" else [0, 2]
    fast = occlusion_fast(unit_fn, xp[sel], xc[sel], unit, batch_size=500)
    assert fast.shape == (len(sel), xp.shape[1])
    for row, i in enumerate(sel):
        lit = occlusion_literal(unit_fn, xp[i], xc[i], unit)
        assert np.abs(fast[row] - lit).max() <= 1e-5
        equal = xp[i] == xc[i]
        assert equal.any() and (~equal).any()
        assert (fast[row][equal] == 0).all() and (lit[equal] == 0).all()
        assert np.abs(lit).max() > 1e-3  # a non-trivial comparison
    # the 1-D call gives the same as a row of the batched call
    np.testing.assert_allclose(occlusion_fast(unit_fn, xp[sel[0]], xc[sel[0]], unit), fast[0],
                               atol=1e-5)


@pytest.fixture(scope="module")
def real_result(real):
    unit_fn = UnitFunction(real["f"], SAEReadout(real["sae"]))
    codes = real["codes"].copy()
    dead = int(np.flatnonzero((codes > 0).sum(0) == 0)[0]) if ((codes > 0).sum(0) == 0).any() \
        else None
    units = real["concepts"] + ([dead] if dead is not None else [])
    res = attribute_units(unit_fn, real["x"], real["z"], sp.csr_matrix(codes), units,
                          real["genes"], n_prototypes=3, n_counterfactuals=2, batch_size=2048,
                          progress=False)
    return res, unit_fn, units, dead


def test_attribute_units_shapes_and_means(real, real_result):
    res, unit_fn, units, dead = real_result
    n_u, m = len(units), len(real["genes"])
    assert res.scores.shape == (n_u, m)
    assert res.per_prototype.shape == (n_u, 3, m)
    assert res.prototypes.shape == (n_u, 3)
    assert res.counterfactuals.shape == (n_u, 3, 2)
    assert res.prototype_activation.shape == (n_u, 3)
    assert res.kind == "concept" and list(res.genes) == real["genes"]
    np.testing.assert_array_equal(res.units, units)
    # recompute unit 1 by hand: Eq 1 then Eq 2 (fast path), mean over N_c then N_p
    r = 1
    unit = units[r]
    act = real["codes"][:, unit]
    p = select_prototypes(act, 3)
    c = find_counterfactuals(real["z"], act, p, 2)
    np.testing.assert_array_equal(res.prototypes[r], p)
    np.testing.assert_array_equal(res.counterfactuals[r], c)
    a = np.stack([np.stack([occlusion_fast(unit_fn, real["x"][pi].toarray()[0],
                                           real["x"][ci].toarray()[0], unit) for ci in c_row])
                  for pi, c_row in zip(p, c)])  # (N_p, N_c, m)
    np.testing.assert_allclose(res.per_prototype[r], a.mean(1), atol=1e-6)
    np.testing.assert_allclose(res.scores[r], a.mean(1).mean(0), atol=1e-6)
    # prototype activation: (ψ∘f)(x^p), which matches the codes computed from the embeddings
    np.testing.assert_allclose(res.prototype_activation[r], act[p], atol=1e-4)
    assert np.all(np.diff(res.prototype_activation[r]) <= 1e-4)
    assert np.isfinite(res.scores[:len(real["concepts"])]).all()
    if dead is not None:
        assert np.isnan(res.scores[-1]).all() and (res.prototypes[-1] == -1).all()


def test_attribute_units_dead_unit_gives_nan_row(real):
    unit_fn = UnitFunction(real["f"], SAEReadout(real["sae"]))
    codes = real["codes"].copy()
    u = real["concepts"][0]
    codes[:, u] = 0.0  # this unit now never activates
    res = attribute_units(unit_fn, real["x"][:50], real["z"][:50], codes[:50], [u],
                          real["genes"], n_prototypes=2, n_counterfactuals=2, progress=False)
    assert np.isnan(res.scores).all() and np.isnan(res.per_prototype).all()
    assert (res.prototypes == -1).all() and (res.counterfactuals == -1).all()
    assert np.isnan(res.gene_set_sizes()).all()


def test_attribute_units_gene_count_mismatch(real):
    unit_fn = UnitFunction(real["f"], SAEReadout(real["sae"]))
    with pytest.raises(ValueError, match="gene names"):
        attribute_units(unit_fn, real["x"], real["z"], real["codes"], [0], real["genes"][:-1],
                        progress=False)


def test_attribution_result_save_load(tmp_path, real_result):
    res = real_result[0]
    path = tmp_path / "att.npz"
    res.save(path)
    back = AttributionResult.load(path)
    assert back.kind == res.kind and isinstance(back.kind, str)
    for name in ("units", "genes", "scores", "per_prototype", "prototypes", "counterfactuals",
                 "prototype_activation"):
        np.testing.assert_array_equal(getattr(back, name), getattr(res, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(res, name).dtype, name
    u = int(res.units[0])
    assert back.ranked(u).equals(res.ranked(u))


def test_ranked_sorted_decreasingly(real_result):
    res = real_result[0]
    u = int(res.units[0])
    s = res.ranked(u)
    assert (np.diff(s.to_numpy()) <= 0).all()
    assert set(s.index) == set(res.genes) and s.index.name == "gene"
    np.testing.assert_allclose(s.loc[res.genes].to_numpy(), res.scores[0])
    # ties keep gene order
    r = ranked_genes(np.array([0.1, 0.5, -0.2, 0.5]), ["a", "b", "c", "d"])
    assert list(r.index) == ["b", "d", "a", "c"]


def test_top_genes_with_prototype_scores():
    # 2 units, 3 prototype slots (unit 7 used 2 of them), genes a..d
    pp = np.array([[[0.1, 0.9, 0.3, 0.0], [0.3, 0.7, 0.1, 0.0], [np.nan] * 4],
                   [[0.2, 0.2, 0.2, 0.2]] * 3], dtype=np.float32)
    scores = np.nanmean(pp, axis=1)
    res = AttributionResult(
        units=np.array([7, 3]), genes=np.array(list("abcd")), scores=scores,
        per_prototype=pp, prototypes=np.array([[0, 1, -1], [2, 3, 4]]),
        counterfactuals=np.zeros((2, 3, 1), dtype=np.int64),
        prototype_activation=np.ones((2, 3), dtype=np.float32), kind="concept")
    top, per_proto = res.top_genes(7, n=2)
    assert list(top.index) == ["b", "a"]
    np.testing.assert_allclose(top.to_numpy(), [0.8, 0.2], rtol=1e-6)
    # the unused prototype (all NaN) is dropped; columns follow the order of ``top``
    np.testing.assert_allclose(per_proto, [[0.9, 0.1], [0.7, 0.3]], rtol=1e-6)
    np.testing.assert_allclose(per_proto.mean(0), top.to_numpy(), rtol=1e-6)
    top3, pp3 = res.top_genes(3, n=4)
    assert list(top3.index) == list("abcd") and pp3.shape == (3, 4)


@pytest.mark.filterwarnings("ignore:Mean of empty slice")
def test_gene_set_sizes():
    scores = np.array([[0.10, 0.01, 0.06, -1.0, 0.05],
                       [0.30, 0.20, 0.00, 0.00, 0.00],
                       [np.nan] * 5], dtype=np.float32)
    res = AttributionResult(
        units=np.array([4, 9, 11]), genes=np.array(list("abcde")), scores=scores,
        per_prototype=scores[:, None, :].repeat(2, 1),
        prototypes=np.array([[0, 1], [2, -1], [-1, -1]]),
        counterfactuals=np.zeros((3, 2, 1), dtype=np.int64),
        prototype_activation=np.array([[1.0, 3.0], [2.0, np.nan], [np.nan, np.nan]],
                                      dtype=np.float32),
        kind="concept")
    sizes = res.gene_set_sizes(threshold=0.05)  # strictly greater than the threshold
    np.testing.assert_array_equal(sizes[:2], [2, 2])
    assert np.isnan(sizes[2])
    np.testing.assert_array_equal(res.gene_set_sizes(threshold=0.0)[:2], [4, 2])
    # relative: divide by the mean prototype activation (2.0 and 2.0) -> 0.05, 0.03, 0.025 ...
    rel = res.gene_set_sizes(threshold=0.04, relative=True)
    np.testing.assert_array_equal(rel[:2], [1, 2])
    assert list(res.ranked(9).index[:2]) == ["a", "b"]


def test_marker_report_and_example_concepts_constructed():
    """Known answers: concept 0 (B) has CD79A in its top genes, concept 1 (B) does not but covers
    more B cells, concept 2 (NK) has GNLY; the control counts markers of other types' concepts."""
    import pandas as pd
    import scipy.sparse as sp

    from scconcepts.attribution import AttributionResult, example_concepts, marker_report

    genes = np.array(["CD79A", "GNLY", "ACTB", "FTH1"])
    scores = np.array([[0.9, 0.0, 0.1, 0.2],   # C0: CD79A first
                       [0.0, 0.0, 0.5, 0.4],   # C1: no marker in the top 2
                       [0.0, 0.8, 0.1, 0.0],   # C2: GNLY first
                       [0.2, 0.1, 0.9, 0.8]], np.float32)  # C3: 'other'
    res = AttributionResult(units=np.arange(4), genes=genes, scores=scores,
                            per_prototype=scores[:, None], prototypes=np.zeros((4, 1), int),
                            counterfactuals=np.zeros((4, 1, 1), int),
                            prototype_activation=np.ones((4, 1), np.float32), kind="concept")
    cats = pd.DataFrame({"category": ["cell_type-specific"] * 3 + ["other"],
                         "cell_type_label": ["B", "B", "NK", "B"],
                         "cell_type_ratio": [0.9, 0.8, 0.95, 0.5], "n_cells": [10, 20, 5, 7]})
    summary, tables = marker_report(res, cats, {"B": ["CD79A"], "NK": ["GNLY"]}, n=2)
    assert summary.loc["B", "specific concepts"] == 2
    assert summary.loc["B", "with a marker in top 10"] == 1
    assert summary.loc["NK", "share"] == 1.0
    assert summary.loc["B", "control: other-type concepts with one of these markers"] == 0.0
    assert list(tables["B"]["unit"]) == [0, 1]
    # cells 0-3 are B, 4-5 NK; C1 fires in 3 B cells, C0 in 1, C2 in both NK cells
    codes = sp.csr_matrix(np.array([[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0],
                                    [0, 0, 1, 0], [0, 0, 1, 0]], float))
    ex = example_concepts(codes, pd.Series(["B"] * 4 + ["NK"] * 2), tables)
    assert ex[["cell_type", "unit", "rule", "cells", "has_marker"]].values.tolist() == [
        ["B", 1, "main concept", 3, False], ["B", 0, "with a marker", 1, True],
        ["NK", 2, "main concept", 2, True]]
    # a cell type without any specific concept (e.g. on a sample of concepts): empty rows
    summary, tables = marker_report(res, cats, {"B": ["CD79A"], "T": ["CD3E"]}, n=2)
    assert summary.loc["T", "specific concepts"] == 0 and np.isnan(summary.loc["T", "share"])
    assert list(tables["T"].columns[:3]) == ["unit", "hits", "n_hits"] and tables["T"].empty


def test_gene_set_summary_known_counts():
    from scconcepts.attribution import gene_set_summary

    absolute = {"concepts": np.array([0, 2, 4, 10, np.nan]), "neurons": np.array([5.0, 6.0])}
    relative = {"concepts": np.array([4, 4, 4, 1, np.nan]), "neurons": np.array([0.0, 0.0])}
    t = gene_set_summary(absolute, relative)
    assert t.loc["concepts", "units"] == 4                       # NaN (never active) left out
    assert t.loc["concepts", "median genes (absolute)"] == 3.0
    assert t.loc["concepts", "share with > 3 genes (absolute)"] == 0.5
    assert t.loc["concepts", "share with > 3 genes (relative)"] == 0.75
    assert t.loc["neurons", "share with > 3 genes (absolute)"] == 1.0
    assert t.loc["neurons", "share with > 3 genes (relative)"] == 0.0


def test_attribute_units_library_matched_counterfactuals(linear_case):
    """match_library (issue 13, item 4): each counterfactual is scaled to its prototype's total
    before occlusion, so a_l = (x^p_l − x^c_l · Σx^p / Σx^c) · W_lj (linear f, known answer)."""
    W, x, _ = linear_case
    emb = x @ W
    median = np.floor(np.median(emb, axis=0))
    unit_fn = UnitFunction(Linear(W), NeuronReadout(median))
    acts = emb - median
    genes = [f"G{i}" for i in range(x.shape[1])]
    res = attribute_units(unit_fn, x, emb, acts, [1], genes, n_prototypes=2,
                          n_counterfactuals=2, progress=False, match_library=True)
    p = res.prototypes[0]
    c = res.counterfactuals[0]
    expected = np.stack([np.mean([(x[pi] - x[ci] * x[pi].sum() / x[ci].sum()) * W[:, 1]
                                  for ci in cs], axis=0) for pi, cs in zip(p, c)])
    np.testing.assert_allclose(res.per_prototype[0], expected, rtol=1e-4, atol=1e-3)
    raw = attribute_units(unit_fn, x, emb, acts, [1], genes, n_prototypes=2,
                          n_counterfactuals=2, progress=False)
    assert not np.allclose(raw.per_prototype[0], res.per_prototype[0])


def test_housekeeping_genes_and_share():
    from scconcepts.attribution import AttributionResult, housekeeping_genes, housekeeping_share

    genes = np.array(["RPL3", "RPS6", "MT-CO1", "CD3E", "MS4A1", "ACTB", "LYZ"])
    hk = housekeeping_genes(genes, np.array([1, 1, 1, 0.1, 0.2, 50, 0.3]), n_top=1)
    assert hk == {"RPL3", "RPS6", "MT-CO1", "ACTB"}
    scores = np.array([[5, 4, 0, 3, 2, 1, 0], [0, 0, 0, 9, 8, 0, 7]], dtype=np.float32)
    res = AttributionResult(units=np.array([3, 8]), genes=genes, scores=scores,
                            per_prototype=scores[:, None], prototypes=np.zeros((2, 1), int),
                            counterfactuals=np.zeros((2, 1, 1), int),
                            prototype_activation=np.ones((2, 1)), kind="concept")
    share = housekeeping_share(res, [3, 8], hk, n=2)
    assert share.loc[3] == 1.0 and share.loc[8] == 0.0
