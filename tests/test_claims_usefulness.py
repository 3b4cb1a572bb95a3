"""Claims of chapters 08–09 (scconcepts.claims.usefulness) on constructed inputs: every outcome,
and the paper's numbers (scconcepts.reference.usefulness)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scconcepts.claims import usefulness as cu
from scconcepts.reference.usefulness import paper_accuracy, paper_baseline


def test_reference_values():
    assert paper_accuracy("scgpt", "cell type") == {"concepts": 0.86, "neurons": 0.87}
    assert paper_accuracy("scvi", "cell cycle") == {"concepts": 0.485, "neurons": 0.493}
    assert paper_accuracy("pca", "cell type") is None
    assert paper_baseline("scvi", "Top-K SAE", "R² (held-out cells)") == 0.980
    assert paper_baseline("scgpt", "semi-NMF (c > d), top 80 codes",
                          "R² (held-out cells)") == 0.933
    assert paper_baseline("scvi", "neurons", "R² (held-out cells)") is None
    assert paper_baseline("scvi", "PCA", "R² (held-out cells)") is None


# --- concepts vs neurons (Fig 10, Tables 4-5) -------------------------------------------------

def test_concepts_vs_neurons_agrees():
    c = cu.concepts_vs_neurons("k", "scgpt", "scGPT", "cell type", 0.86, 0.87, 20000)
    assert (c.verdict, c.n) == ("agrees", 20000) and c.value == pytest.approx(-0.01)
    assert "-0.010" in c.sentence and "paper 0.860 vs 0.870" in c.sentence
    assert -0.05 < c.interval[0] < c.value < c.interval[1] < 0.05


def test_concepts_vs_neurons_disagrees():
    c = cu.concepts_vs_neurons("k", "scvi", "scVI", "cell type", 0.60, 0.85, 5000)
    assert (c.verdict, c.n) == ("disagrees", 5000) and c.value == pytest.approx(-0.25)
    assert "-0.250" in c.sentence and "unlike the paper" in c.sentence


def test_concepts_vs_neurons_inconclusive():
    # too few held-out cells: the interval crosses ±0.05
    c = cu.concepts_vs_neurons("k", "scvi", "scVI", "cell type", 0.73, 0.82, 120)
    assert (c.verdict, c.n) == ("inconclusive", 120) and "-0.090" in c.sentence
    assert c.interval[0] < -0.05 < c.interval[1]
    # no paper value for the model
    c = cu.concepts_vs_neurons("k", "pca", "PCA", "cell type", 0.86, 0.86, 20000)
    assert c.verdict == "inconclusive" and c.paper is None and "+0.000" in c.sentence


# --- Fig 5 markers ----------------------------------------------------------------------------

def test_fig5_outcomes():
    # 12 markers in 8 concepts' top-10 genes (15 % of 80 slots) vs none in 8 neurons'
    c = cu.fig5("k", "scgpt", "scGPT", 12, 8, 0, 8)
    assert (c.verdict, c.n) == ("agrees", 16) and "12 Regev" in c.sentence
    assert c.value == pytest.approx(0.15) and c.interval[0] > 0 and c.region == (0, math.inf)
    c = cu.fig5("k", "scgpt", "scGPT", 0, 8, 12, 8)
    assert (c.verdict, c.n) == ("disagrees", 16) and c.interval[1] < 0
    c = cu.fig5("k", "scgpt", "scGPT", 3, 2, 0, 2)   # 3 of 20 vs 0 of 20: interval holds 0
    assert c.verdict == "inconclusive" and c.interval[0] < 0 < c.interval[1]
    c = cu.fig5("k", "scgpt", "scGPT", 5, 1, 0, 1)   # 2 units < 3, whatever the interval
    assert (c.verdict, c.n) == ("inconclusive", 2) and "fewer than 3" in c.sentence
    # 9 markers among 2 concepts vs 0 among 8 neurons: the interval lies above 0, but two
    # units of one kind cannot say "as in the paper"
    c = cu.fig5("k", "scgpt", "scGPT", 9, 2, 0, 8)
    assert c.interval[0] > 0 and (c.verdict, c.n) == ("inconclusive", 10)
    assert "2 units of one kind, fewer than 3" in c.sentence
    assert "as in the paper" not in c.sentence
    c = cu.fig5("k", "scgpt", "scGPT", 40, 8, 0, 1)
    assert c.interval[0] > 0 and c.verdict == "inconclusive"
    assert "1 unit of one kind" in c.sentence
    c = cu.fig5("k", "scvi", "scVI", 12, 8, 0, 8)    # the paper's Fig 5 is scGPT only
    assert c.verdict == "inconclusive" and "12 Regev" in c.sentence
    c = cu.fig5("k", "scgpt", "scGPT", 0, 0, 0, 4)
    assert c.verdict == "inconclusive" and "no top-coefficient unit" in c.sentence


def test_any_agrees_outcomes():
    yes = cu.fig5("a", "scgpt", "scGPT", 12, 8, 0, 8)
    no = cu.fig5("b", "scgpt", "scGPT", 0, 8, 12, 8)
    unk = cu.fig5("c", "scvi", "scVI", 3, 2, 0, 2)
    c = cu.any_agrees("all", [yes, no, unk], "concepts carry markers")
    assert (c.verdict, c.value, c.n) == ("agrees", 1, 3) and "1 of 3" in c.sentence
    c = cu.any_agrees("all", [no, unk], "concepts carry markers")
    assert (c.verdict, c.value, c.n) == ("disagrees", 0, 2) and "0 of 2" in c.sentence
    c = cu.any_agrees("all", [unk], "concepts carry markers")
    assert (c.verdict, c.value, c.n) == ("inconclusive", 0, 1)


# --- App B (Tables 4-5) -----------------------------------------------------------------------

def _paired_r2(a, b, n=500, spread=0.01, seed=0, n_boot=1000):
    """Paired replicates of two R² around a and b: shared noise plus a small own part."""
    rng = np.random.default_rng(seed)
    shared = rng.normal(0, spread, n_boot)
    return (a + shared + rng.normal(0, spread / 4, n_boot),
            b + shared + rng.normal(0, spread / 4, n_boot))


def test_r2_greater_outcomes():
    reps = _paired_r2(0.98, 0.85)
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.98, "semi-NMF (c > d)", 0.85, 500,
                      replicates=reps)
    assert (c.verdict, c.n) == ("agrees", 500) and c.value == pytest.approx(0.13)
    assert c.interval[0] > 0 and c.interval[0] < 0.13 < c.interval[1]
    assert c.region == (0, float("inf"))  # R² a − b > 0
    assert (c.unit, c.fmt) == ("held-out cells", ".3f")
    assert "+0.130" in c.sentence and "paper 0.980 vs 0.849" in c.sentence
    assert f"95 % interval {c.interval[0]:+.3f} to {c.interval[1]:+.3f}" in c.sentence
    assert "500 held-out cells" in c.sentence and "**agrees**" in c.sentence
    assert c.paper == pytest.approx(0.131)
    c = cu.r2_greater("k", "scgpt", "scGPT", "semi-NMF (c > d)", 0.80,
                      "semi-NMF (c < d)", 0.90, 500, replicates=_paired_r2(0.80, 0.90))
    assert c.verdict == "disagrees" and c.interval[1] < 0
    assert "-0.100" in c.sentence and "**disagrees**" in c.sentence


def test_r2_greater_inconclusive():
    # the interval holds 0 although the point difference is positive (no tie rule any more)
    reps = _paired_r2(0.985, 0.98, spread=0.02)
    reps = (reps[0], reps[1] + np.random.default_rng(1).normal(0, 0.02, reps[1].size))
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.985, "semi-NMF (c > d)", 0.98, 500,
                      replicates=reps)
    assert c.interval[0] < 0 < c.interval[1]
    assert c.verdict == "inconclusive" and "reaches the boundary" in c.sentence
    # a difference below the printed digits (+0.000) does not decide, however tight its
    # interval: drift across threads or machines could flip it (stats.RESOLUTION)
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.9801, "semi-NMF (c > d)", 0.9800,
                      500, replicates=(np.full(200, 0.9801) + np.linspace(0, 1e-5, 200),
                                       np.full(200, 0.9800)))
    assert c.verdict == "inconclusive" and "+0.000" in c.sentence
    # one that shows is ordered with a tight paired interval: there is no tie rule
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.9820, "semi-NMF (c > d)", 0.9800,
                      500, replicates=(np.full(200, 0.9820) + np.linspace(0, 1e-5, 200),
                                       np.full(200, 0.9800)))
    assert c.verdict == "agrees" and "+0.002" in c.sentence
    # no paper value, too few cells, no replicates, NaN replicates
    c = cu.r2_greater("k", "pca", "PCA", "Top-K SAE", 0.98, "semi-NMF (c > d)", 0.5, 500,
                      replicates=_paired_r2(0.98, 0.5))
    assert c.verdict == "inconclusive" and "+0.480" in c.sentence and "no paper" in c.sentence
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.98, "semi-NMF (c > d)", 0.85, 2,
                      replicates=_paired_r2(0.98, 0.85))
    assert c.verdict == "inconclusive" and "fewer than" in c.sentence
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.98, "semi-NMF (c > d)", 0.85, 500)
    assert c.verdict == "inconclusive" and c.interval is None and "no interval" in c.sentence
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", float("nan"), "semi-NMF (c > d)", 0.85,
                      1, replicates=(np.full(10, np.nan), np.full(10, 0.85)))
    assert c.verdict == "inconclusive"
    with pytest.raises(ValueError, match="paired"):
        cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.98, "semi-NMF (c > d)", 0.85, 500,
                      replicates=(np.zeros(10), np.zeros(11)))


def test_accuracy_at_least_outcomes():
    c = cu.accuracy_at_least("k", "scvi", "scVI", "Top-K SAE", 0.85, "semi-NMF (c > d)", 0.70,
                             2000)
    assert (c.verdict, c.n) == ("agrees", 2000) and c.value == pytest.approx(0.15)
    assert "+0.150" in c.sentence and c.interval[0] > 0
    c = cu.accuracy_at_least("k", "scvi", "scVI", "Top-K SAE", 0.60, "semi-NMF (c > d)", 0.80,
                             2000)
    assert c.verdict == "disagrees" and "-0.200" in c.sentence and c.interval[1] < 0
    c = cu.accuracy_at_least("k", "scgpt", "scGPT", "Top-K SAE", 0.70, "semi-NMF (c > d)",
                             0.68, 100)
    assert c.verdict == "inconclusive" and "+0.020" in c.sentence
    c = cu.accuracy_at_least("k", "pca", "PCA", "Top-K SAE", 0.85, "semi-NMF (c > d)", 0.70,
                             2000)
    assert c.verdict == "inconclusive" and "no paper value" in c.sentence


def test_lowrank_baselines_outcomes():
    c = cu.lowrank_baselines("k", "scVI", 20, 0.95, 0.95, 0.0, 0.01)
    assert (c.verdict, c.n) == ("agrees", 20) and c.value == 0.95 and "0.950" in c.sentence
    c = cu.lowrank_baselines("k", "scVI", 20, 0.95, 0.94, 0.5, 0.01)
    assert c.verdict == "disagrees" and "0.950" in c.sentence and "not dense" in c.sentence
    c = cu.lowrank_baselines("k", "scVI", 20, 0.95, 0.94, float("nan"), 0.01)
    assert c.verdict == "inconclusive" and "0.950" in c.sentence


def test_verdicts_are_words():
    c = cu.r2_greater("k", "scvi", "scVI", "Top-K SAE", 0.98, "semi-NMF (c > d)", 0.85, 500)
    got = {}
    c.glue(lambda k, v, display=False: got.__setitem__(k, v))
    assert got["k_agree"] in {"agrees", "disagrees", "inconclusive"} and np.isclose(got["k"], 0.13)


def test_label_alignment_paired_over_labels():
    labels = [f"L{i}" for i in range(8)]
    per = pd.DataFrame({"method": ["concepts"] * 8 + ["neurons"] * 8,
                        "label": labels * 2,
                        "f1_test": [0.8, 0.7, 0.9, 0.6, 0.75, 0.85, 0.65, 0.7]
                        + [0.4, 0.5, 0.45, 0.3, 0.5, 0.35, 0.4, 0.45]})
    c = cu.label_alignment("k", "scVI", per)
    assert (c.verdict, c.n) == ("agrees", 8) and c.value == pytest.approx(0.325)
    assert c.interval[0] > 0 and "F1 > 0.5 for 8 vs 0 labels" in c.sentence
    swapped = per.assign(method=per["method"].map({"concepts": "neurons",
                                                   "neurons": "concepts"}))
    assert cu.label_alignment("k", "scVI", swapped).verdict == "disagrees"
    noisy = per.copy()
    noisy.loc[noisy["method"] == "neurons", "f1_test"] = [0.9, 0.6, 0.95, 0.5, 0.8, 0.8, 0.7, 0.6]
    assert cu.label_alignment("k", "scVI", noisy).verdict == "inconclusive"
    assert cu.label_alignment("k", "scVI", per, "concepts", "PCA").verdict == "inconclusive"
