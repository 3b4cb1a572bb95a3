"""Tests of scconcepts.dgea (App C) and scconcepts.perturbation on constructed cases with known
answers, and one small real subsample."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from scconcepts import dgea
from scconcepts.attribution import AttributionResult, UnitFunction
from scconcepts.claims import dgea as dgea_claims
from scconcepts.perturbation import (concept_table, frequency_shift, marker_coverage, marker_hits,
                                     separating_concepts)


class _Identity:
    kind = "concept"

    def __call__(self, emb):
        return emb


def _linear_unit_fn(w: np.ndarray) -> UnitFunction:
    """(ψ∘f)(x) = ReLU(x · w): one concept, linear in the genes."""
    wt = torch.as_tensor(w, dtype=torch.float32)
    return UnitFunction(lambda x: torch.relu(x @ wt)[:, None], _Identity())


def _planted_counts(seed=0, n=120, m=60, planted=(3, 7, 11, 19, 42)):
    rng = np.random.default_rng(seed)
    x = rng.poisson(2.0, size=(n, m)).astype(np.float32)
    group = np.arange(n // 2)
    x[np.ix_(group, list(planted))] = rng.poisson(20.0, size=(len(group), len(planted)))
    return x, group, np.arange(n // 2, n), list(planted)


def test_rank_genes_recovers_planted_genes():
    x, group, ref, planted = _planted_counts()
    genes = [f"G{i}" for i in range(x.shape[1])]
    tab = dgea.rank_genes(sp.csr_matrix(x), genes, group, ref)
    assert list(tab.index) == genes
    order = dgea.dgea_order(tab)
    assert set(order[:len(planted)]) == {f"G{i}" for i in planted}
    assert (tab.loc[[f"G{i}" for i in planted], "log2fc"] > 2).all()  # ~log2(20/2)
    # null genes move only through library-size normalisation (compositional): the planted
    # genes have the smallest p-values
    assert set(tab["pval"].nsmallest(len(planted)).index) == {f"G{i}" for i in planted}


def test_rank_genes_errors():
    x, group, ref, _ = _planted_counts()
    genes = [f"G{i}" for i in range(x.shape[1])]
    with pytest.raises(ValueError, match="≥ 2 cells"):
        dgea.rank_genes(x, genes, group[:1], ref)
    with pytest.raises(ValueError, match="overlap"):
        dgea.rank_genes(x, genes, group, np.r_[ref, group[:1]])


def test_counterfactual_cells_are_nearest_non_activating():
    emb = np.array([[0.0], [1.0], [10.0], [0.4], [9.0], [20.0]])
    act = np.array([5.0, 4.0, 3.0, 0.0, 0.0, 0.0])
    cf = dgea.counterfactual_cells(emb, act, [0, 1, 2])
    np.testing.assert_array_equal(cf, [3, 4])  # cells 0 and 1 share cell 3: counted once


def test_concept_dgea_groups_and_planted_genes():
    x, group, ref, planted = _planted_counts(n=200)
    act = np.zeros(len(x))
    act[group] = np.linspace(1, 2, len(group))
    emb = np.c_[np.random.default_rng(3).normal(size=(len(x), 3)), act > 0]
    tab, top, cf = dgea.concept_dgea(x, [f"G{i}" for i in range(x.shape[1])], emb, act,
                                     max_cells=40)
    assert len(top) == 40 and set(top) <= set(group)  # the 40 highest activations
    assert np.all(act[top] >= np.sort(act)[-40]) and np.all(act[cf] == 0)
    assert set(dgea.dgea_order(tab)[:5]) == {f"G{i}" for i in planted}


def test_deletion_curve_linear_model_true_order_drops_fastest():
    rng = np.random.default_rng(1)
    m = 30
    w = np.zeros(m, dtype=np.float32)
    w[:6] = [5, 4, 3, 2, 1, 0.5]
    unit_fn = _linear_unit_fn(w)
    xp = rng.uniform(1, 2, size=(4, m)).astype(np.float32)
    xc = xp * 0.1
    true = np.arange(m)  # genes 0..5 carry the weight, in decreasing order
    worse = np.r_[np.arange(6, m), np.arange(6)]
    a_true = dgea.deletion_curve(unit_fn, 0, xp, xc, true, 6)
    a_bad = dgea.deletion_curve(unit_fn, 0, xp, xc, worse, 6)
    # exact values: step s removes Σ_{l<s} w_l (x_p - x_c)_l
    expected = (xp @ w)[:, None] - np.c_[np.zeros(4), np.cumsum(w[:6] * (xp - xc)[:, :6], 1)]
    np.testing.assert_allclose(a_true, expected, rtol=1e-5)
    assert np.all(np.diff(a_true, axis=1) < 0)
    np.testing.assert_allclose(a_bad, np.repeat(a_true[:, :1], 7, 1), rtol=1e-6)  # w = 0 genes
    zero = dgea.deletion_curve(unit_fn, 0, xp, None, true, 6)
    assert np.all(zero[:, -1] < a_true[:, -1])  # zero-masking removes more than x_c = 0.1 x_p
    short = dgea.deletion_curve(unit_fn, 0, xp, xc, [0, 1], 5)  # order shorter than steps: flat
    np.testing.assert_allclose(short[:, 2:], np.repeat(short[:, 2:3], 4, 1))
    with pytest.raises(ValueError, match="same shape"):
        dgea.deletion_curve(unit_fn, 0, xp, xc[:2], true, 3)


def _three_gene_case(seed: int, n: int, m: int = 20):
    """A linear unit driven by genes 2, 5, 9 (weights 3, 2, 1), random cells, and the
    attribution scores that rank exactly those genes."""
    w = np.zeros(m, dtype=np.float32)
    w[[2, 5, 9]] = [3, 2, 1]
    x = np.random.default_rng(seed).uniform(1, 3, size=(n, m)).astype(np.float32)
    return _linear_unit_fn(w), x, np.array([f"G{i}" for i in range(m)]), w[None].copy()


def test_deletion_curves_attribution_beats_wrong_dgea_order():
    unit_fn, x, genes, scores = _three_gene_case(2, 12)
    res = AttributionResult(
        units=np.array([0]), genes=genes, scores=scores, per_prototype=scores[:, None],
        prototypes=np.array([[0, 1]]), counterfactuals=np.array([[[5, 6], [7, -1]]]),
        prototype_activation=np.ones((1, 2), np.float32), kind="concept")
    curves = dgea.deletion_curves(unit_fn, x, res, {0: ["G0", "G1", "G3"]}, n_steps=3,
                                  random_seed=0)
    assert set(curves["curve"]) == {"attribution", "DGEA", "attribution, zero-masked",
                                    "DGEA, zero-masked", "random"}
    piv = curves.pivot(index="step", columns="curve", values="activation")
    assert np.allclose(piv.loc[0], 1.0)
    assert piv.loc[3, "attribution"] < piv.loc[3, "DGEA"] == pytest.approx(1.0)
    summ = dgea.curve_summary(curves, steps=(1, 3))
    assert summ.loc["attribution", "area under curve (mean over steps)"] < \
        summ.loc["DGEA", "area under curve (mean over steps)"]


def test_iou_and_enriched():
    assert dgea.iou({"a", "b"}, {"b", "c"}) == pytest.approx(1 / 3)
    assert dgea.iou([], ["x"]) == 0.0
    assert np.isnan(dgea.iou([], []))
    tab = pd.DataFrame({"Term": ["A", "B", "C"], "NES": [2.0, -2.0, 1.5],
                        "pval": [0.0, 0.0, 0.01], "lead_genes": ["X;Y", "Z", "W"]})
    assert list(dgea.enriched(tab)["Term"]) == ["A"]


def test_gsea_comparison_planted_pathways():
    rng = np.random.default_rng(0)
    genes = [f"GENE{i}" for i in range(300)]
    sets = {f"SET{j}": genes[j * 20:(j + 1) * 20] for j in range(15)}
    att = pd.Series(rng.normal(0, 0.01, 300), index=genes)
    att[sets["SET0"]] += 1.0          # attribution drives SET0
    fc = pd.Series(rng.normal(0, 0.1, 300), index=genes)
    fc[sets["SET1"]] += 5.0           # fold changes drive SET1
    m, e_a, e_d = dgea.gsea_comparison(att, fc, sets, permutations=200, min_size=10)
    assert "SET0" in set(e_a["Term"]) and "SET1" in set(e_d["Term"])
    assert "SET1" not in set(e_a["Term"]) and "SET0" not in set(e_d["Term"])
    assert m["iou_pathways"] == 0.0 and m["iou_genes"] == 0.0
    assert m["maxfc_dgea"] > m["maxfc_att"] and m["maxatt_att"] > m["maxatt_dgea"]
    t6 = dgea_claims.table6(pd.DataFrame([m]))
    assert t6.loc["Number of concepts enriched", "attribution-based"] == "1"
    u = dgea.unique_pathways({0: e_a}, {0: e_d})
    assert u.set_index("pathway").loc["SET0", "only attribution"] == 1
    assert u.set_index("pathway").loc["SET1", "only DGEA"] == 1


def test_compare_with_dgea_refuses_unresolvable_permutations():
    with pytest.raises(ValueError, match="cannot resolve"):
        dgea.compare_with_dgea(None, None, None, None, None, None, {}, permutations=100)


def _toy_comparison_inputs(seed=0):
    """Concept 0 = ReLU(planted genes - 10): active in the first half of the cells, whose planted
    genes are high; concept 1 is never active (no DGEA). The attribution puts the planted genes
    first; its pairs are (top cell, nearest inactive cell)."""
    x, group, ref, planted = _planted_counts(seed=seed, n=80, m=60)
    w = np.zeros(x.shape[1], np.float32)
    w[planted] = 1.0 / len(planted)
    unit_fn = UnitFunction(lambda t: torch.relu(t @ torch.as_tensor(np.c_[w, -w]) - 10.0),
                           _Identity())
    codes = unit_fn(torch.from_numpy(x)).numpy()
    genes = np.array([f"G{i}" for i in range(x.shape[1])])
    emb = np.c_[np.random.default_rng(seed).normal(size=(len(x), 3)), codes[:, 0] > 0]
    scores = np.zeros((2, x.shape[1]), np.float32)
    scores[0, planted] = np.arange(len(planted), 0, -1)
    scores[1] = np.nan
    protos = np.array([np.argsort(-codes[:, 0])[:3], [-1, -1, -1]])
    res = AttributionResult(
        units=np.array([0, 1]), genes=genes, scores=scores,
        per_prototype=np.repeat(scores[:, None], 3, 1), prototypes=protos,
        counterfactuals=np.where(protos[..., None] >= 0, ref[:3][None, :, None], -1),
        prototype_activation=np.ones((2, 3), np.float32), kind="concept")
    return x, genes, emb, codes, unit_fn, res, planted


def test_compare_with_dgea_toy_model(tmp_path):
    x, genes, emb, codes, unit_fn, res, planted = _toy_comparison_inputs()
    sets = {"PLANTED": [f"G{i}" for i in planted] + [f"G{i}" for i in range(20, 30)]}
    out = dgea.compare_with_dgea(sp.csr_matrix(x), genes, emb, sp.csr_matrix(codes), unit_fn,
                                 res, sets, n_concepts=None, n_gsea=1, n_steps=5,
                                 max_pairs=2, max_cells=20, permutations=200, min_size=5)
    assert set(out) == {"curves", "metrics", "dgea", "enriched"}
    assert list(out["dgea"]["unit"]) == [0]          # NaN-score concept 1 left out
    assert out["dgea"].loc[0, "n_top"] == 20
    top5 = set(out["dgea"].loc[0, "top_dgea_genes"].split(", ")[:5])
    assert len(top5 & {f"G{i}" for i in planted}) >= 4   # few cf cells: one noise gene may slip in
    piv = out["curves"].pivot(index="step", columns="curve", values="activation")
    assert "random" in piv and np.allclose(piv.loc[0], 1.0)
    assert piv.loc[5, "attribution"] < piv.loc[5, "random"]
    assert list(out["metrics"]["unit"]) == [0]
    dgea.save_comparison(out, str(tmp_path / "c.zip"))
    back = dgea.load_comparison(str(tmp_path / "c.zip"))
    for name, df in out.items():
        pd.testing.assert_frame_equal(back[name].reset_index(drop=True),
                                      df.reset_index(drop=True), check_dtype=False)
    g = dgea_claims.page_values("toy", out)
    assert g["ch10_toy_n_concepts"] == 1 and g["ch10_toy_del_attribution"] < 1.0
    # the deletion subset: no deletion curve at all
    none = dgea.compare_with_dgea(x, genes, emb, codes, unit_fn, res, sets, n_concepts=None,
                                  n_gsea=0, n_deletion=0, n_steps=3, max_cells=20)
    assert none["curves"].empty and none["metrics"].empty
    assert dgea_claims.deletion_claim("toy", "toy", none["curves"], "x").n == 0


def test_options_null_means_global():
    from types import SimpleNamespace as NS

    g = NS(n_concepts=20, gsea_n_concepts=8, max_cells=1000, method="t-test", steps=30,
           max_pairs=None, gsea_permutations=200)
    o = dgea.options(g, NS(deletion_concepts=None, steps=None, max_pairs=None))
    assert (o["n_deletion"], o["n_steps"], o["max_pairs"]) == (None, 30, None)
    assert (o["n_concepts"], o["n_gsea"], o["permutations"]) == (20, 8, 200)
    o = dgea.options(g, NS(deletion_concepts=2, steps=6, max_pairs=3))
    assert (o["n_deletion"], o["n_steps"], o["max_pairs"]) == (2, 6, 3)


def test_separating_concepts_and_shift():
    rng = np.random.default_rng(0)
    n = 200
    y = np.where(np.arange(n) < 100, "stim", "ctrl")
    U = np.zeros((n, 4), np.float32)
    U[:100, 0] = rng.uniform(1, 2, 100)          # perfect separator
    U[:, 1] = rng.uniform(0, 1, n)               # noise
    U[100:, 2] = rng.uniform(1, 2, 100)          # control marker: AUROC 0
    U[:3, 3] = 1.0                               # rare: filtered by min_cells
    tab = separating_concepts(sp.csr_matrix(U), y, "stim", min_cells=10)
    assert tab.index[0] == 0 and tab.loc[0, "auroc"] == 1.0 and tab.loc[2, "auroc"] == 0.0
    assert 3 not in tab.index and tab.loc[0, "freq_diff"] == 1.0
    with pytest.raises(ValueError, match="at least one other"):
        separating_concepts(U, np.full(n, "stim"), "stim")
    ref = np.zeros((50, 4), np.float32)
    ref[:, 2] = 1.0
    shift = frequency_shift(U, ref)
    assert shift.index[0] == 1 and shift.index[-1] == 2  # noise rises most; concept 2 falls
    assert marker_hits(pd.Series([3, 2, 1], index=["isg15", "ACTB", "IFI6"]), ["ISG15", "IFI6"],
                       2) == ["ISG15"]
    cov = marker_coverage(["ISG15", "MX1", "IFI6"], ["isg15", "ACTB", "IFI6"])
    assert (cov["n_seen"], cov["seen"], cov["missing"]) == (2, "ISG15, IFI6", "MX1")
    assert marker_coverage(["MX1"], ["ACTB"])["seen"] == "none"


def test_rank_genes_real_cells_finds_cell_type_markers(kang_small):
    """Real subsample: B cells vs monocytes; canonical markers lead each side."""
    ct = kang_small.obs["cell_type"].astype(str).to_numpy()
    b = np.flatnonzero(ct == "B cell")
    mono = np.flatnonzero(ct == "classical monocyte")
    X = kang_small.layers["counts"] if "counts" in kang_small.layers else kang_small.X
    tab = dgea.rank_genes(X, list(kang_small.var_names), b, mono)
    up = tab[tab["pval_adj"] <= dgea.DGEA_P].sort_values("log2fc", ascending=False)
    assert {"CD79A", "MS4A1", "CD79B"} & set(up.index[:30])
    assert {"LYZ", "S100A8", "S100A9", "CD14"} & set(up.index[-30:])


def test_interferon_evidence_counts():
    """Known answers: C1 has two ISGs in its top 2 and an interferon best term; C2 has none and
    a virus term only among its top terms; C3 nothing."""
    import json

    from scconcepts.perturbation import interferon_evidence

    genes = np.array(["ISG15", "MX1", "ACTB", "IFIT3", "CD3E"])
    scores = np.array([[0.9, 0.8, 0.1, 0.0, 0.0],
                       [0.0, 0.0, 0.9, 0.0, 0.8],
                       [0.0, 0.0, 0.5, 0.0, 0.9]], np.float32)
    att = AttributionResult(units=np.array([1, 2, 3]), genes=genes, scores=scores,
                            per_prototype=scores[:, None], prototypes=np.zeros((3, 1), int),
                            counterfactuals=np.zeros((3, 1, 1), int),
                            prototype_activation=np.ones((3, 1), np.float32), kind="concept")
    terms = lambda *t: json.dumps([{"term": x} for x in t])  # noqa: E731
    summary = pd.DataFrame({
        "unit": [1, 2, 3],
        "best_term": ["Response To Type I Interferon (GO:0034340)", "T Cell Activation", None],
        "top_terms": [terms("Response To Type I Interferon (GO:0034340)"),
                      terms("T Cell Activation", "Defense Response To Virus (GO:0051607)"),
                      terms()],
        "annotation": ["strong", "weak", "none"]})
    ev = interferon_evidence(att, summary, ["ISG15", "MX1", "IFIT3"], n=2)
    assert ev["isg"] == [2, 0, 0] and ev["with_isg"] == 1
    assert (ev["ifn_best"], ev["ifn_any"], ev["annotated"]) == (1, 2, 2)
    assert ev["ifn"] == [True, True, False] and ev["both"] == [True, False, False]
    assert ev["with_both"] == 1 and ev["n_concepts"] == 3 and ev["n_markers"] == 3
    assert ev["top_genes"] == ["ISG15", "MX1", "ACTB"] and ev["units"] == [1, 2, 3]
    # the summary is matched by unit, not by row order
    assert interferon_evidence(att, summary.iloc[::-1], ["ISG15", "MX1", "IFIT3"], n=2)["both"] \
        == [True, False, False]
    tab = concept_table(att, summary.assign(NES=[2.0, 1.0, 0.0]),
                        pd.Series([0.9, 0.7, 0.6], index=[1, 2, 3]), ["ISG15", "MX1", "IFIT3"],
                        n_genes=3, n_isg=2)
    assert list(tab.index) == [1, 2, 3] and tab.loc[1, "ISGs in top 2"] == 2
    assert tab.loc[1, "top-3 attribution genes"].startswith("ISG15★, MX1★")
    assert tab.loc[3, "best GO term (NES)"] == "none"
    assert tab.loc[2, "interferon/virus terms in top 5"] == 1
    ev = interferon_evidence(att, summary.assign(best_term=None, top_terms=terms()), ["ISG15"],
                             n=2)
    assert ev["with_isg"] == 1 and ev["with_both"] == 0  # ISGs in the genes, not the pathways


def test_held_out_pairs_and_curves():
    """Held-out deletion pairs (issue 13, item 6): prototypes ranked N_p + 1 … 2 N_p with their
    own counterfactuals, disjoint from the attributed prototypes, and curves on them."""
    n = 40
    unit_fn, x, genes, scores = _three_gene_case(3, n)
    act = np.r_[np.linspace(5, 1, 8), np.zeros(n - 8)]          # 8 activating cells
    emb = np.c_[act, np.random.default_rng(4).normal(size=n)]
    pairs = dgea.held_out_pairs(emb, act, n_prototypes=2, n_counterfactuals=2)
    assert [p for p, _ in pairs] == [2, 2, 3, 3]                  # ranks 3 and 4, not 1 and 2
    assert all(act[c] <= 0 for _, c in pairs)
    assert dgea.held_out_pairs(emb, np.ones(n), 2, 2) == []      # no non-activating cell
    res = AttributionResult(
        units=np.array([0]), genes=genes, scores=scores, per_prototype=scores[:, None],
        prototypes=np.array([[0, 1]]), counterfactuals=np.array([[[10, 11], [12, 13]]]),
        prototype_activation=np.ones((1, 2), np.float32), kind="concept")
    curves = dgea.deletion_curves(unit_fn, x, res, {0: ["G0", "G1", "G3"]}, n_steps=3,
                                  embeddings=emb, codes=act[:, None])
    piv = curves.pivot(index="step", columns="curve", values="activation")
    assert {"attribution, held-out pairs", "DGEA, held-out pairs"} <= set(piv.columns)
    assert piv.loc[3, "attribution, held-out pairs"] < piv.loc[3, "DGEA, held-out pairs"]
