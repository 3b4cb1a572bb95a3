"""Claims of chapter 07 (scconcepts.claims.stability) on constructed inputs: every outcome."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from scconcepts.claims import stability as cs

LABELS = {"scvi": "scVI", "scgpt": "scGPT", "pca": "PCA"}


def gaps(main, second):
    return pd.Series({"main": main, "second": second})


def r2_table(own_main, other_main, own_second, other_second):
    return pd.DataFrame([
        {"trained on": "main", "evaluated on": "main", "own data": True, "r2": own_main},
        {"trained on": "main", "evaluated on": "second", "own data": False, "r2": other_main},
        {"trained on": "second", "evaluated on": "second", "own data": True, "r2": own_second},
        {"trained on": "second", "evaluated on": "main", "own data": False, "r2": other_second}])


def test_r2_gaps():
    g = cs.r2_gaps(r2_table(0.9, 0.8, 0.95, 0.7))
    assert g["main"] == pytest.approx(0.1) and g["second"] == pytest.approx(0.25)


# --- init_cosine: the rule looks at every SAE (the chapter once said "moved well away" when
# three of four SAEs kept cosine 0.79–0.92 to their initialisation) ----------------------------

def test_init_cosine_all_moved_agrees():
    c = cs.init_cosine({"scVI": {"main": 0.3, "second": 0.4}})
    assert (c.verdict, c.n, c.value) == ("agrees", 2, 0.4)
    assert "well away" in c.sentence and "0.40" in c.sentence and "little" not in c.sentence


def test_init_cosine_none_moved_disagrees():
    c = cs.init_cosine({"scVI": {"main": 0.96, "second": 0.98}, "scGPT": {"main": 0.92}})
    assert (c.verdict, c.n) == ("disagrees", 3) and c.value == pytest.approx(0.98)
    assert "in every SAE" in c.sentence and "little" in c.sentence and "0.98" in c.sentence


def test_init_cosine_mixed_names_every_sae():
    # the known bug: min cosine 0.79 < 0.8 must not make the sentence say "well away" for all
    c = cs.init_cosine({"scVI": {"main": 0.79, "second": 0.92}, "scGPT": {"main": 0.85,
                                                                          "second": 0.88}})
    assert (c.verdict, c.n) == ("disagrees", 4) and c.value == pytest.approx(0.92)
    assert "in 3 of 4 SAEs" in c.sentence
    assert "0.92" in c.sentence and "scVI (main) 0.79" in c.sentence
    assert "well away only in scVI (main) 0.79" in c.sentence


def test_init_cosine_empty_inconclusive():
    c = cs.init_cosine({"scVI": {"main": float("nan")}})
    assert (c.verdict, c.n) == ("inconclusive", 0)


# --- Fig 4A -----------------------------------------------------------------------------------

def test_all_lower_outcomes():
    c = cs.all_lower({"scvi": gaps(0.1, 0.2), "scgpt": gaps(0.3, 0.4)}, LABELS)
    assert (c.verdict, c.value, c.n) == ("agrees", 4, 4)
    assert "4 of 4" in c.sentence and "+0.100" in c.sentence
    c = cs.all_lower({"scvi": gaps(0.1, -0.2)}, LABELS)
    assert (c.verdict, c.value, c.n) == ("disagrees", 1, 2) and "1 of 2" in c.sentence
    assert "unlike the paper" in c.sentence
    c = cs.all_lower({"scvi": gaps(0.1, float("nan"))}, LABELS)
    assert (c.verdict, c.value, c.n) == ("inconclusive", 1, 1) and "1 of 1" in c.sentence


def test_main_smaller_outcomes():
    c = cs.main_smaller({"scvi": gaps(0.1, 0.2), "scgpt": gaps(0.3, 0.4)}, LABELS)
    assert (c.verdict, c.value, c.n) == ("agrees", 2, 2) and "2 of 2" in c.sentence
    assert isinstance(c.value, int)
    c = cs.main_smaller({"scvi": gaps(0.1, 0.2), "scgpt": gaps(0.5, 0.4)}, LABELS)
    assert (c.verdict, c.value, c.n) == ("disagrees", 1, 2) and "1 of 2" in c.sentence
    c = cs.main_smaller({"scvi": gaps(float("nan"), 0.2)}, LABELS)
    assert (c.verdict, c.value, c.n) == ("inconclusive", 0, 0)


def test_larger_drop_outcomes():
    c = cs.larger_drop({"scvi": gaps(0.1, 0.1), "scgpt": gaps(0.3, 0.5)}, LABELS)
    assert c.verdict == "agrees" and c.value == pytest.approx(0.3) and c.n == 2
    assert "+0.300" in c.sentence
    c = cs.larger_drop({"scvi": gaps(0.3, 0.5), "scgpt": gaps(0.1, 0.1)}, LABELS)
    assert c.verdict == "disagrees" and c.value == pytest.approx(-0.3)
    assert "-0.300" in c.sentence and "unlike the paper" in c.sentence


def test_larger_drop_missing_model_inconclusive():
    c = cs.larger_drop({"scvi": gaps(0.1, 0.1), "pca": gaps(0.3, 0.5)}, LABELS)
    assert c.verdict == "inconclusive" and np.isnan(c.value) and c.n == 1
    assert "no scGPT" in c.sentence


# --- Fig 4B -----------------------------------------------------------------------------------

def test_matching_vs_null_outcomes():
    cos = np.array([0.5, 0.6, 0.7, 0.4])
    c = cs.matching_vs_null("k", "scVI", cos, [0.3, 0.31], null_cosine=[0.2, 0.55])
    assert (c.verdict, c.n) == ("agrees", 4) and c.value == pytest.approx(0.55)
    assert "0.550" in c.sentence and "50% of its pairs" in c.sentence
    c = cs.matching_vs_null("k", "scVI", cos, [0.3, 0.6])
    assert (c.verdict, c.n) == ("disagrees", 4) and "not above" in c.sentence
    c = cs.matching_vs_null("k", "scVI", cos[:2], [0.3, 0.31])
    assert (c.verdict, c.n) == ("inconclusive", 2) and "0.550" in c.sentence


def test_every_outcomes():
    ok = cs.matching_vs_null("a", "A", [0.5, 0.6, 0.7], [0.1])
    bad = cs.matching_vs_null("b", "B", [0.5, 0.6, 0.7], [0.9])
    few = cs.matching_vs_null("c", "C", [0.5], [0.1])
    c = cs.every("all", [ok, ok], "x holds")
    assert (c.verdict, c.value, c.n) == ("agrees", 2, 2) and "2 of 2" in c.sentence
    c = cs.every("all", [ok, bad, few], "x holds")
    assert (c.verdict, c.value, c.n) == ("disagrees", 1, 3) and "1 of 3" in c.sentence
    c = cs.every("all", [ok, few], "x holds")
    assert (c.verdict, c.value, c.n) == ("inconclusive", 1, 2)
    assert cs.every("all", [], "x holds").verdict == "inconclusive"


def test_more_stable_outcomes():
    rng = np.random.default_rng(0)
    hi, lo = 0.6 + 0.01 * rng.standard_normal(50), 0.3 + 0.01 * rng.standard_normal(40)
    c = cs.more_stable({"scvi": hi, "scgpt": lo}, LABELS)
    assert c.verdict == "agrees" and c.n == 40
    assert c.value == pytest.approx(hi.mean() - lo.mean())
    assert f"{c.value:+.3f}" in c.sentence and c.interval[0] > 0
    c = cs.more_stable({"scvi": lo, "scgpt": hi}, LABELS)
    assert c.verdict == "disagrees" and f"{c.value:+.3f}" in c.sentence and c.interval[1] < 0
    noisy = 0.3 + 0.5 * rng.standard_normal(40)
    c = cs.more_stable({"scvi": noisy + 0.01, "scgpt": noisy[::-1]}, LABELS)
    assert c.verdict == "inconclusive" and c.interval[0] <= 0 <= c.interval[1]
    assert f"{c.value:+.3f}" in c.sentence


def test_more_stable_missing_model_inconclusive():
    c = cs.more_stable({"scvi": np.ones(10), "pca": np.ones(10)}, LABELS)
    assert c.verdict == "inconclusive" and np.isnan(c.value) and "no scGPT" in c.sentence


# --- Fig 4C -----------------------------------------------------------------------------------

def test_shared_genes_outcomes():
    c = cs.shared_genes({"scVI": np.array([2] * 18 + [0] * 2)})
    assert (c.verdict, c.n) == ("agrees", 20) and c.value == pytest.approx(0.9)
    assert "90%" in c.sentence and c.interval[0] > 0.5
    c = cs.shared_genes({"scVI": np.zeros(18), "scGPT": np.array([1, 0])})
    assert (c.verdict, c.n) == ("disagrees", 20) and c.value == pytest.approx(0.05)
    assert "5%" in c.sentence and "fewer than" in c.sentence
    c = cs.shared_genes({"scVI": np.array([1, 0]), "scGPT": np.array([0])})
    assert (c.verdict, c.n) == ("inconclusive", 3) and "33%" in c.sentence
    c = cs.shared_genes({"scVI": np.array([])})
    assert (c.verdict, c.n) == ("inconclusive", 0)


# --- seeds (reviewer ask) ---------------------------------------------------------------------

def seed_summary(mean, std):
    return pd.DataFrame({"mean": [0.9, 50.0, mean, 0.2], "std": [0.01, 2.0, std, 0.01]},
                        index=["R²", "active concepts", "matching score between seeds",
                               "null: random dictionaries"])


def test_seed_vs_dataset_outcomes():
    c = cs.seed_vs_dataset("k", "scVI", seed_summary(0.40, 0.01), 3, 0.39)
    assert (c.verdict, c.n) == ("agrees", 3) and c.value == pytest.approx(0.40)
    assert "0.400" in c.sentence and "no more than" in c.sentence
    c = cs.seed_vs_dataset("k", "scVI", seed_summary(0.40, 0.01), 3, 0.30)
    assert (c.verdict, c.n) == ("disagrees", 3) and "0.400" in c.sentence
    assert "more than a new seed" in c.sentence
    c = cs.seed_vs_dataset("k", "scVI", seed_summary(0.40, float("nan")), 2, 0.39)
    assert (c.verdict, c.n) == ("inconclusive", 2) and "0.400" in c.sentence


def test_claims_glue_keys():
    got = {}
    c = cs.all_lower({"scvi": gaps(0.1, 0.2)}, LABELS, key="ch07_all_lower")
    c.glue(lambda k, v, display=False: got.__setitem__(k, v))
    assert got["ch07_all_lower_agree"] == "agrees" and got["ch07_all_lower_n"] == 2
