"""Attribution-based GSEA (:mod:`scconcepts.enrichment`): a gene set planted at the top of a
ranking of real gene symbols must be recovered, annotated, and re-tested: by brute force at the
resolution of ``strong_permutations``, or by fgsea's multilevel estimate, which must agree with
brute force where brute force can resolve the p-value.

The planted GO terms were picked because no other GO BP 2023 term shares more than half of
their genes, so that no near-duplicate term can tie with them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scconcepts.attribution import AttributionResult
from scconcepts.data import load_gene_sets
from scconcepts.enrichment import STRONG_P, WEAK_P, annotate_units, annotation_summary, prerank

SET_A = "Pyroptosis (GO:0070269)"
SET_B = "Lipid Catabolic Process (GO:0016042)"


@pytest.fixture(scope="module")
def go():
    return load_gene_sets("GO_Biological_Process_2023")


@pytest.fixture(scope="module")
def universe(go):
    """~1000 real symbols from the library: the members of A and B plus random others."""
    rng = np.random.default_rng(0)
    library_genes = sorted({g for genes in go.values() for g in genes})
    planted = list(dict.fromkeys(go[SET_A] + go[SET_B]))
    others = rng.choice(sorted(set(library_genes) - set(planted)), 1000 - len(planted),
                        replace=False)
    genes = np.array(planted + list(others))
    assert len(genes) == 1000 and len(set(genes)) == 1000
    return genes


def _planted_scores(genes, members, rng, shift=None):
    """Small random scores, with ``members`` on top (or shifted up by ``shift``)."""
    s = rng.uniform(0.0, 0.1, len(genes))
    hit = np.isin(genes, members)
    if shift is None:
        s[hit] = rng.uniform(1.0, 2.0, hit.sum())
    else:
        s[hit] += shift
    return s.astype(np.float32)


def _result(genes, scores, units):
    n_u, m = scores.shape
    return AttributionResult(
        units=np.asarray(units), genes=np.asarray(genes), scores=scores,
        per_prototype=scores[:, None, :], prototypes=np.zeros((n_u, 1), np.int64),
        counterfactuals=np.zeros((n_u, 1, 1), np.int64),
        prototype_activation=np.ones((n_u, 1), np.float32), kind="concept")


def test_prerank_recovers_planted_set(go, universe):
    rng = np.random.default_rng(1)
    scores = _planted_scores(universe, go[SET_A], rng)
    # lower-case symbols and shuffled order: prerank upper-cases and sorts itself
    ranking = pd.Series(scores, index=[g.lower() for g in universe]).sample(frac=1, random_state=0)
    tab = prerank(ranking, go, permutations=1000, seed=0)
    assert list(tab.columns) == ["Term", "ES", "NES", "pval", "fdr", "lead_genes", "n_genes"]
    assert tab.loc[0, "Term"] == SET_A
    assert tab.loc[0, "pval"] <= 5e-3
    assert tab.loc[0, "n_genes"] == len(go[SET_A])
    assert (np.diff(tab["NES"].to_numpy()) <= 0).all()
    assert tab["n_genes"].between(5, 500).all()
    lead = set(tab.loc[0, "lead_genes"].split(";"))
    assert lead <= set(go[SET_A]) and len(lead) >= len(go[SET_A]) // 2


def test_prerank_edge_cases(go, universe):
    zero = pd.Series(np.zeros(len(universe)), index=universe)
    assert prerank(zero, go, permutations=10).empty
    few = pd.Series(np.arange(4.0), index=universe[:4])  # no set has ≥ 5 ranked genes
    assert prerank(few, go, permutations=10).empty


@pytest.fixture(scope="module")
def annotated(go, universe):
    rng = np.random.default_rng(2)
    scores = np.stack([_planted_scores(universe, go[SET_A], rng),
                       _planted_scores(universe, go[SET_B], rng),
                       rng.uniform(0.0, 0.1, len(universe)).astype(np.float32),  # noise
                       np.full(len(universe), np.nan, np.float32)])           # dead unit
    res = _result(universe, scores, [3, 5, 7, 11])
    summary, tables = annotate_units(res, go, permutations=200, strong_permutations=2000,
                                     seed=0, progress=False)
    return summary.set_index("unit"), tables


def test_annotate_units_planted_and_noise(annotated):
    s, tables = annotated
    assert list(s.index) == [3, 5, 7]  # the all-NaN unit is skipped
    assert set(tables) == {3, 5, 7}
    for unit, term in [(3, SET_A), (5, SET_B)]:
        assert s.loc[unit, "best_term"] == term
        assert s.loc[unit, "annotation"] in ("weak", "strong")
        assert s.loc[unit, "pval"] <= WEAK_P and s.loc[unit, "NES"] > 0
        assert s.loc[unit, "best_term"] == tables[unit].loc[0, "Term"]
    # The noise unit's best term is another one, less enriched. Its nominal p is *not* always
    # above the planted ones: the best of ~680 tested sets often reaches 0 of 200 permutations
    # (nominal p-values, no multiple-testing correction), so it may even be annotated.
    noise = s.loc[7]
    assert noise["best_term"] not in (SET_A, SET_B)
    assert noise["pval"] >= max(s.loc[3, "pval"], s.loc[5, "pval"])
    assert noise["NES"] < min(s.loc[3, "NES"], s.loc[5, "NES"]) - 0.1
    assert SET_A not in set(tables[7]["Term"].head(20))
    assert s.attrs["strong_permutations"] == 2000


def test_strong_retest_multilevel(annotated):
    s, _ = annotated
    assert s.attrs["strong_method"] == "multilevel"
    for unit, row in s.iterrows():
        if row["annotation"] == "none":
            assert np.isnan(row["pval_strong"])
            continue
        assert (row["annotation"] == "strong") == (row["pval_strong"] <= STRONG_P)
    # the planted sets sit at the very top of their rankings: multilevel resolves p far below
    # any brute-force resolution, so both are strong
    for unit in (3, 5):
        assert s.loc[unit, "annotation"] == "strong"
        assert 0 < s.loc[unit, "pval_strong"] < 1e-6


def test_strong_retest_permutation_resolution(go, universe):
    rng = np.random.default_rng(2)
    scores = np.stack([_planted_scores(universe, go[SET_A], rng),
                       _planted_scores(universe, go[SET_B], rng, shift=0.034)])
    s, _ = annotate_units(_result(universe, scores, [0, 1]), go, permutations=200,
                          strong_permutations=2000, strong_method="permutation", seed=0,
                          progress=False)
    for _, row in s.iterrows():
        if row["annotation"] == "none":
            continue
        p = row["pval_strong"]
        assert p == 0 or p >= 1 / 2000  # resolution of 2000 permutations
        assert (row["annotation"] == "strong") == (p <= STRONG_P)
    with pytest.raises(ValueError, match="strong_method"):
        annotate_units(_result(universe, scores, [0, 1]), go, strong_method="fgsea")


def test_multilevel_agrees_with_brute_force(go, universe):
    """Where 20,000 permutations resolve the p-value (~1e-3), the multilevel estimate of the
    same one-set test is within a factor of 2 of it."""
    rng = np.random.default_rng(0)
    ranking = pd.Series(_planted_scores(universe, go[SET_B], rng, shift=0.034), index=universe)
    one = {SET_B: go[SET_B]}
    brute = prerank(ranking, one, permutations=20000, seed=0).loc[0, "pval"]
    ml = prerank(ranking, one, permutations=1000, seed=0, method="multilevel").loc[0, "pval"]
    assert 1e-4 < brute < WEAK_P
    assert 0.5 < ml / brute < 2.0


def test_weak_when_retest_finds_a_better_permutation(go, universe):
    # B's members shifted up a little: 0 of 200 permutations beat it (weak), but 1 of ~2000
    # does in the re-test, so it stays weak with a p-value at the 2000-permutation resolution
    rng = np.random.default_rng(0)
    scores = _planted_scores(universe, go[SET_B], rng, shift=0.034)[None]
    two = {SET_A: go[SET_A], SET_B: go[SET_B]}
    s, _ = annotate_units(_result(universe, scores, [0]), two, permutations=200,
                          strong_permutations=2000, strong_method="permutation", seed=0,
                          progress=False)
    row = s.iloc[0]
    assert row["best_term"] == SET_B and row["pval"] <= WEAK_P
    assert row["annotation"] == "weak"
    assert 1 / 2000 <= row["pval_strong"] < WEAK_P
    direct = prerank(pd.Series(scores[0], index=universe), {SET_B: go[SET_B]},
                     permutations=2000, seed=0)
    assert row["pval_strong"] == direct.loc[0, "pval"]


def test_annotation_summary_fractions(annotated):
    s, _ = annotated
    s = s.reset_index()
    other = s.assign(kind="neuron", annotation=["none", "none", "weak"])
    tab = annotation_summary(s, other)
    assert list(tab.columns)[:4] == ["strong", "weak", "none", "n_units"]
    assert tab["best term FDR ≤ 0.05"].between(0, 1).all()
    np.testing.assert_allclose(tab[["strong", "weak", "none"]].sum(1), 1.0)
    assert tab.loc["neuron", "none"] == pytest.approx(2 / 3)
    assert tab.loc["neuron", "strong"] == 0.0
    assert tab.loc["concept", "n_units"] == 3 and tab.loc["neuron", "n_units"] == 3
    by_model = annotation_summary(s.assign(model="scvi"), other.assign(model="scgpt"))
    assert by_model.index.names == ["model", "kind"] and len(by_model) == 2


def test_shuffled_null_destroys_the_planted_signal(go, universe):
    """shuffle=True permutes each unit's scores across genes (seeded): the planted set is no
    longer the annotation, rows are flagged, and the same seed gives the same result."""
    rng = np.random.default_rng(3)
    scores = np.stack([_planted_scores(universe, go[SET_A], rng)])
    res = _result(universe, scores, [0])
    kw = dict(permutations=200, strong_permutations=400, seed=0, progress=False)
    real, _ = annotate_units(res, go, **kw)
    null1, _ = annotate_units(res, go, shuffle=True, **kw)
    null2, _ = annotate_units(res, go, shuffle=True, **kw)
    assert real.loc[0, "best_term"] == SET_A and not real.loc[0, "shuffled"]
    assert null1.loc[0, "shuffled"] and null1.loc[0, "best_term"] != SET_A
    pd.testing.assert_frame_equal(null1, null2)
    tab = annotation_summary(real, null1)
    assert set(tab.index) == {"concept", "concept (shuffled genes)"}


def test_strong_retest_falls_back_when_most_scores_are_zero(go, universe):
    """Attribution rankings often hold many genes with C_i exactly 0. gseapy's multilevel port
    panics when it can draw an all-zero gene set, so the re-test must fall back to brute force
    (enough permutations to resolve STRONG_P) instead of crashing; with few zeros it stays
    multilevel."""
    rng = np.random.default_rng(4)
    planted = _planted_scores(universe, go[SET_B], rng)
    zeros = planted.copy()
    off = np.flatnonzero(~np.isin(universe, go[SET_B]))
    zeros[off[: int(0.8 * len(universe))]] = 0.0  # 80 % of the genes score exactly 0
    res = _result(universe, np.stack([zeros, planted]), [0, 1])
    two = {SET_A: go[SET_A], SET_B: go[SET_B]}
    s, _ = annotate_units(res, two, permutations=200, seed=0, progress=False)
    s = s.set_index("unit")
    assert list(s["best_term"]) == [SET_B, SET_B]
    assert list(s["strong_method"]) == ["permutation", "multilevel"]
    p0 = s.loc[0, "pval_strong"]
    assert p0 == 0 or p0 >= 1 / 20000  # the fallback's brute-force resolution
    assert (s.loc[0, "annotation"] == "strong") == (p0 <= STRONG_P)
    assert s.loc[1, "annotation"] == "strong" and 0 < s.loc[1, "pval_strong"] < STRONG_P


def test_testable_sets_counts_sets_with_enough_genes_in_the_panel():
    """Constructed case: a set counts when min_size to max_size of its genes are in the panel."""
    from scconcepts.enrichment import testable_sets

    genes = [f"G{i}" for i in range(30)]
    sets = {"all_in": genes[:20], "half_in": genes[20:] + [f"X{i}" for i in range(10)],
            "none_in": [f"X{i}" for i in range(40)], "too_big": genes}
    assert testable_sets(sets, genes, min_size=10, max_size=25) == 2      # all_in, half_in
    assert testable_sets(sets, genes, min_size=11, max_size=25) == 1      # half_in has 10
    assert testable_sets(sets, genes, min_size=10, max_size=500) == 3     # too_big allowed
