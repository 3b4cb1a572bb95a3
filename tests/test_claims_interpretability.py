"""Claims of chapters 04–06 (scconcepts.claims.attribution / .interpretability) on constructed
inputs: every outcome (agrees, disagrees, inconclusive), value, n and the sentence."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scconcepts.claims import attribution as ca
from scconcepts.claims import interpretability as ci
from scconcepts.reference import interpretability as ref

PAPER = "most concepts have more than 3 genes"


def _sizes(n_above: int, n_below: int, extra_nan: int = 0) -> np.ndarray:
    return np.array([10.0] * n_above + [1.0] * n_below + [np.nan] * extra_nan)


# --- chapter 04: share of concepts with > 3 genes -------------------------------------------

@pytest.mark.parametrize("above,below,paper,expected", [
    (45, 5, PAPER, "agrees"),            # 90 % of 50, interval above 50 %
    (5, 45, PAPER, "disagrees"),         # 10 % of 50, interval below 50 %
    (11, 9, PAPER, "inconclusive"),      # 55 % of 20, interval contains 50 %
    (2, 0, PAPER, "inconclusive"),       # 2 concepts: never "agrees"
    (1, 0, PAPER, "inconclusive"),
    (45, 5, None, "inconclusive"),       # no paper value (e.g. pca)
])
def test_share_above(above, below, paper, expected):
    c = ca.share_above("scvi", "scVI", _sizes(above, below, extra_nan=3), 0.05, ref.MIN_GENES,
                       paper)
    n = above + below
    assert c.key == "ch04_scvi_share3"
    assert c.n == n  # NaN (never active) left out
    assert c.value == pytest.approx(above / n)
    assert c.verdict == expected
    assert f"{c.value:.0%}" in c.sentence and f"{n} attributed concepts" in c.sentence
    assert f"**{expected}**" in c.sentence
    lo, hi = c.interval
    assert lo <= c.value <= hi


def test_share_above_empty():
    c = ca.share_above("pca", "PCA", np.array([np.nan]), 0.05, 3, PAPER)
    assert c.n == 0 and np.isnan(c.value) and c.verdict == "inconclusive" and c.interval is None


def test_neurons_vs_concepts():
    c = ca.neurons_vs_concepts("scvi", "scVI", _sizes(5, 45), _sizes(48, 2), 0.05, 3)
    assert c.key == "ch04_scvi_neurons_share3"
    assert c.n == 50 and c.value == pytest.approx(0.96)
    assert c.verdict == "inconclusive"  # the paper reports no neuron counts
    assert "96%" in c.sentence and "fewer genes than neurons" in c.sentence
    few = ca.neurons_vs_concepts("scgpt", "scGPT", _sizes(1, 1), _sizes(2, 0), 0.05, 3)
    assert "too few units" in few.sentence and few.n == 2


@pytest.mark.parametrize("grid,paper,expected,held,smallest", [
    ({"c=100, k=4": _sizes(45, 5), "c=200, k=8": _sizes(40, 10)}, PAPER, "agrees", 2, 0.8),
    ({"c=100, k=4": _sizes(45, 5), "c=200, k=8": _sizes(5, 45)}, PAPER, "disagrees", 1, 0.1),
    ({"c=100, k=4": _sizes(45, 5), "c=200, k=8": _sizes(2, 0)}, PAPER, "inconclusive", 1, 0.9),
    ({"c=100, k=4": _sizes(45, 5), "c=200, k=8": _sizes(40, 10)}, None, "inconclusive", 2, 0.8),
    ({}, PAPER, "inconclusive", 0, None),
])
def test_sizes_most(grid, paper, expected, held, smallest):
    c = ca.sizes_most("scgpt", "scGPT", grid, 0.05, 3, paper)
    assert c.key == "ch04_scgpt_sizes"
    assert c.n == sum(len(s) for s in grid.values())
    assert c.verdict == expected
    assert f"at {held} of {len(grid)} SAE sizes" in c.sentence
    if smallest is None:
        assert math.isnan(c.value) and c.interval is None
    else:   # the smallest share, inside its simultaneous (Bonferroni) interval
        assert c.value == pytest.approx(smallest)
        assert c.interval[0] <= smallest <= c.interval[1]


def _report(rows):
    """marker_report summary from (cell type, specific concepts, with a marker, control share)."""
    return pd.DataFrame(
        [{"cell type": ct, "specific concepts": n, "with a marker in top 10": k,
          "share": k / n if n else np.nan,
          "control: other-type concepts with one of these markers": ctrl}
         for ct, n, k, ctrl in rows]).set_index("cell type")


@pytest.mark.parametrize("rows,n_specific,paper,expected,held", [
    # every cell type well above its control
    ([("B cell", 10, 8, 0.1), ("NK", 10, 9, 0.1)], 40, PAPER, "agrees", 2),
    # one cell type has specific concepts but no marker in their top 10
    ([("B cell", 10, 8, 0.1), ("NK", 10, 0, 0.1)], 40, PAPER, "disagrees", 1),
    # one cell type's share is not above its control
    ([("B cell", 10, 8, 0.1), ("NK", 10, 2, 0.5)], 40, PAPER, "disagrees", 1),
    # 1-2 specific concepts, each with a marker: never "as in the paper"
    ([("B cell", 2, 2, 0.0), ("NK", 1, 1, 0.0)], 30, PAPER, "inconclusive", 0),
    # no attributed specific concept at all
    ([("B cell", 0, 0, np.nan)], 0, PAPER, "inconclusive", 0),
    # no paper statement for the model
    ([("B cell", 10, 8, 0.1), ("NK", 10, 9, 0.1)], 40, None, "inconclusive", 2),
])
def test_canonical_markers(rows, n_specific, paper, expected, held):
    examples = pd.DataFrame([{"cell_type": "NK", "unit": 7, "rule": "main concept",
                              "cells": 30, "has_marker": False}])
    c = ca.canonical_markers("scvi", "scVI", _report(rows), n_specific, examples, paper)
    assert c.key == "ch04_scvi_markers"
    assert c.value == held and c.n == sum(r[1] for r in rows)
    assert c.verdict == expected
    assert f"at {held} of {len(rows)} cell types" in c.sentence
    assert "C7 (NK)" in c.sentence


# --- chapters 05-06: concepts vs neurons -----------------------------------------------------

def test_rate_comparison():
    r = ci.RateComparison.from_rates(0.5, 20, 0.25, 20)
    assert (r.k1, r.n1, r.k2, r.n2) == (10, 20, 5, 20)
    assert r.diff == pytest.approx(0.25) and 0 < r.p <= 1
    assert np.isnan(ci.RateComparison(0, 0, 1, 2).p)


@pytest.mark.parametrize("cmp,paper,expected", [
    (ci.RateComparison(18, 20, 3, 20), "concepts ahead", "agrees"),
    (ci.RateComparison(3, 20, 18, 20), "concepts ahead", "disagrees"),
    (ci.RateComparison(9, 20, 7, 20), "concepts ahead", "inconclusive"),   # within chance
    (ci.RateComparison(2, 2, 0, 2), "concepts ahead", "inconclusive"),     # 2 units per group
    (ci.RateComparison(18, 20, 3, 20), None, "inconclusive"),              # no paper value
])
def test_annotation_vs_neurons(cmp, paper, expected):
    c = ci.annotation_vs_neurons("scvi", "scVI", cmp, paper, fdr=(0.1, 0.05))
    assert c.key == "ch05_scvi"
    assert c.value == pytest.approx(cmp.rate1 - cmp.rate2) and c.n == cmp.n1 + cmp.n2
    assert c.verdict == expected
    assert f"{c.value:+.0%}" in c.sentence and f"p = {cmp.p:.2g}" in c.sentence
    assert f"**{expected}**" in c.sentence and "FDR" in c.sentence


@pytest.mark.parametrize("cmp,expected", [
    (ci.RateComparison(15, 20, 2, 20), "agrees"),
    (ci.RateComparison(2, 20, 15, 20), "disagrees"),
    (ci.RateComparison(5, 20, 4, 20), "inconclusive"),
])
def test_above_null(cmp, expected):
    c = ci.above_null("scvi", "scVI", cmp, ref.FIG3A_B["scvi"])
    assert c.key == "ch05_scvi_null"
    assert c.value == pytest.approx(cmp.diff) and c.n == 40
    assert c.verdict == expected and c.interval == pytest.approx(cmp.interval)
    assert f"{cmp.rate2:.0%}" in c.sentence and f"{c.value:+.0%}" in c.sentence


@pytest.mark.parametrize("cmp,paper,expected", [
    (ci.RateComparison(30, 40, 8, 40), "concepts ahead", "agrees"),
    (ci.RateComparison(8, 40, 30, 40), "concepts ahead", "disagrees"),
    (ci.RateComparison(12, 20, 10, 20), "concepts ahead", "inconclusive"),
    (ci.RateComparison(30, 40, 8, 40), None, "inconclusive"),
])
def test_expert_vs_neurons(cmp, paper, expected):
    c = ci.expert_vs_neurons("scgpt", "scGPT", cmp, paper)
    assert c.key == "ch06_scgpt_interpretable"
    assert c.value == pytest.approx(cmp.diff) and c.n == cmp.n1 + cmp.n2
    assert c.verdict == expected
    assert f"{c.value:+.0%}" in c.sentence


def test_glue_keys_of_the_page():
    """The keys the reproduction page reads (value and _agree) come from these claims."""
    out = {}
    ca.share_above("scvi", "scVI", _sizes(45, 5), 0.05, 3, PAPER).glue(
        lambda k, v, display: out.__setitem__(k, v))
    ci.annotation_vs_neurons("scvi", "scVI", ci.RateComparison(18, 20, 3, 20), PAPER).glue(
        lambda k, v, display: out.__setitem__(k, v))
    assert out["ch04_scvi_share3_agree"] == "agrees" and out["ch05_scvi_agree"] == "agrees"
    assert out["ch04_scvi_share3"] == pytest.approx(0.9) and out["ch04_scvi_share3_n"] == 50


def test_reference():
    assert ref.paper_sizes("scvi")[0] == (200, 3) and (10000, 160) in ref.paper_sizes("scgpt")
    assert ref.paper_sizes("pca") == [] and ref.FIG2C.get("pca") is None


def test_detectable_difference_shrinks_with_more_units():
    from scconcepts.claims import stats

    d20 = stats.detectable_difference(20, 20, 0.5)
    d40 = stats.detectable_difference(40, 64, 0.5)
    assert 0.35 < d20 < 0.45 and 0.25 < d40 < 0.29 and d40 < d20
    assert math.isnan(stats.detectable_difference(0, 20, 0.5))
    cmp = ci.RateComparison(20, 40, 32, 64)
    assert cmp.detectable == pytest.approx(d40) and "80% power" in cmp.power_text()


def test_fig3ab_claims_cover_both_kinds_fdr_and_nulls():
    def table(annotated, n, fdr_ok):
        return pd.DataFrame({"annotation": ["weak"] * annotated + ["none"] * (n - annotated),
                             "fdr": [0.01] * fdr_ok + [0.5] * (n - fdr_ok)})

    runs = {("concept", False): table(80, 100, 40), ("neuron", False): table(10, 50, 2),
            ("concept", True): table(20, 100, 0), ("neuron", True): table(9, 50, 0)}
    found, values = ci.fig3ab_claims("scvi", "scVI", runs, ref.FIG3A_B["scvi"])
    by_key = {c.key: c for c in found}
    assert set(by_key) == {"ch05_scvi", "ch05_scvi_fdr", "ch05_scvi_null",
                           "ch05_scvi_neuron_null"}
    assert by_key["ch05_scvi"].verdict == "agrees" and by_key["ch05_scvi"].n == 150
    assert by_key["ch05_scvi_fdr"].value == pytest.approx(0.40 - 0.04)
    assert by_key["ch05_scvi_null"].verdict == "agrees"            # 80 % vs 20 % shuffled
    assert by_key["ch05_scvi_neuron_null"].verdict == "inconclusive"  # 20 % vs 18 %
    assert values["ch05_scvi_neuron_null_annotated"] == pytest.approx(0.18)
    assert values["ch05_scvi_n_concepts"] == 100 and values["ch05_scvi_n_neurons"] == 50
    assert 0 < values["ch05_scvi_detectable"] < 0.3
    # without the shuffled runs, no null claim
    found, values = ci.fig3ab_claims("scvi", "scVI", {k: v for k, v in runs.items() if not k[1]})
    assert len(found) == 2 and "ch05_scvi_null_annotated" not in values


def test_pool_sensitivity_one_claim_per_setting():
    def table(k, n):
        return pd.DataFrame({"annotation": ["weak"] * k + ["none"] * (n - k)})

    settings = {"the paper's pools": (table(60, 100), table(45, 50)),
                "neurons at the concepts' rate": (table(60, 100), table(10, 50))}
    found = ci.pool_sensitivity("scvi", "scVI", settings, ref.FIG3A_B["scvi"])
    assert [c.key for c in found] == ["ch05_scvi_pools0", "ch05_scvi_pools1"]
    assert found[0].verdict == "disagrees" and found[1].verdict == "agrees"
    assert "neurons at the concepts' rate" in found[1].sentence


def test_adjusted_kind_reads_the_adjusted_coefficient():
    coef = pd.DataFrame([
        {"model": "kind only", "term": "concept", "coef": -1.2, "low": -1.8, "high": -0.6,
         "p": 1e-4, "n": 300},
        {"model": "kind + pairs", "term": "concept", "coef": -0.1, "low": -0.7, "high": 0.5,
         "p": 0.7, "n": 300},
        {"model": "kind + pairs", "term": "other cell type", "coef": 1.1, "low": 0.6,
         "high": 1.6, "p": 1e-5, "n": 300}])
    c = ci.adjusted_kind("scvi", "scVI", coef, ref.FIG3A_B["scvi"])
    assert (c.key, c.verdict, c.n) == ("ch05_scvi_adjusted", "inconclusive", 300)
    assert c.value == -0.1 and "-1.20" in c.sentence and "other cell type +1.10" in c.sentence
    coef.loc[1, ["coef", "low", "high"]] = [0.9, 0.4, 1.4]
    assert ci.adjusted_kind("scvi", "scVI", coef, ref.FIG3A_B["scvi"]).verdict == "agrees"


def test_adjusted_kind_without_an_estimate_prints_no_nan():
    """Too few units (or a separated fit): NaN coefficients give a sentence without 'nan'."""
    coef = pd.DataFrame([{"model": m, "term": "concept", "coef": np.nan, "low": np.nan,
                          "high": np.nan, "p": np.nan, "n": 8}
                         for m in ("kind only", "kind + pairs")])
    c = ci.adjusted_kind("scvi", "scVI", coef, ref.FIG3A_B["scvi"])
    assert c.verdict == "inconclusive" and "nan" not in c.sentence.lower()
    assert "no finite estimate on 8 units" in c.sentence and "fewer than 10" in c.sentence


def test_perturbation_space_paired_over_concepts():
    raw = pd.Series([0.6, 0.5, 0.7, 0.4, 0.6], index=[1, 2, 3, 4, 5])
    matched = pd.Series([0.2, 0.1, 0.3, 0.2, 0.1], index=[1, 2, 3, 4, 5])
    mk = pd.DataFrame({"specific concepts": [4, 2], "with a marker in top 10": [1, 0]})
    mk2 = pd.DataFrame({"specific concepts": [4, 2], "with a marker in top 10": [3, 1]})
    c = ca.perturbation_space("scvi", "scVI", raw, matched, mk, mk2)
    assert (c.key, c.verdict, c.n) == ("ch04_scvi_space", "agrees", 5)
    assert c.value == pytest.approx(0.38) and "1 of 6 (17%) with raw" in c.sentence
    assert "4 of 6 (67%) library-matched" in c.sentence
    assert ca.perturbation_space("scvi", "scVI", matched, raw, mk, mk2).verdict == "disagrees"
    assert ca.perturbation_space("scvi", "scVI", raw, raw + [0.1, -0.1, 0.05, -0.05, 0],
                                 mk, mk2).verdict == "inconclusive"


def test_planted_recovery_pooled_over_replicates():
    def run(cf, zero, neuron):
        return pd.DataFrame({"unit kind": ["concept", "concept", "neuron", "neuron"],
                             "baseline": ["counterfactual", "zero"] * 2,
                             "auroc": [0.99, 0.99, 0.8, 0.8],
                             "precision@10": [cf, zero, neuron, 0.0], "random": 0.016})
    c = ca.planted_recovery("scvi", "scVI", [run(1.0, 0.7, 0.0), run(0.9, 0.6, 0.1)])
    assert (c.key, c.verdict, c.n) == ("ch04_scvi_planted", "agrees", 2)
    assert c.value == pytest.approx(0.95) and c.interval[0] > 0.7
    assert "concept, zero: 65%" in c.sentence and "neuron, counterfactual: 5%" in c.sentence
    c = ca.planted_recovery("scvi", "scVI", [run(0.0, 0.0, 0.0)])
    assert c.verdict == "inconclusive"          # 0 of 10: the exact interval reaches 1.6 %
    c = ca.planted_recovery("scvi", "scVI", [run(0.0, 0.0, 0.0)] * 30)
    assert c.verdict == "disagrees"             # 0 of 300: below the random rate


def test_rate_comparison_from_tables_and_summary():
    a = pd.DataFrame({"annotation": ["weak", "strong", "none", "weak"]})
    b = pd.DataFrame({"annotation": ["none", "none", "weak"]})
    cmp = ci.RateComparison.from_tables(a, b)
    assert (cmp.k1, cmp.n1, cmp.k2, cmp.n2) == (3, 4, 1, 3)
    row = cmp.summary()
    assert row["difference"] == pytest.approx(0.75 - 1 / 3) and row["verdict"] == "inconclusive"
    assert row["95 % interval"].endswith("%") and row["n 1"] == 4


def test_concepts_vs_units_key_and_verdict():
    c = ci.concepts_vs_units("scvi", "scVI", "principal components",
                             ci.RateComparison(200, 250, 3, 15), ref.FIG3A_B["scvi"])
    assert c.key == "ch05_scvi_vs_principal" and c.verdict == "agrees"
    assert "15 principal components" in c.sentence
    c = ci.concepts_vs_units("scvi", "scVI", "independent components",
                             ci.RateComparison(200, 250, 12, 15), ref.FIG3A_B["scvi"])
    assert c.key == "ch05_scvi_vs_independent" and c.verdict == "inconclusive"

