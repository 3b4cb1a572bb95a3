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


# --- init_cosine: the rule looks at every SAE and states what is measured (the chapter once
# said "moved well away" when three of four SAEs kept cosine 0.79–0.92 to their initialisation,
# and later for mean cosines of 0.50–0.72, which are not "well away") -------------------------

def test_init_cosine_none_kept_agrees_without_overstating():
    c = cs.init_cosine({"scVI": {"main": 0.50, "second": 0.66}, "scGPT": {"main": 0.69}})
    assert (c.verdict, c.n, c.value) == ("agrees", 3, 0)
    assert "scVI (main) 0.500" in c.sentence and "scGPT (main) 0.690" in c.sentence
    assert "No SAE keeps a mean cosine above 0.7" in c.sentence
    assert "well away" not in c.sentence and "part of the way" in c.sentence


def test_init_cosine_far_only_when_every_sae_is_near_orthogonal():
    c = cs.init_cosine({"scVI": {"main": 0.1, "second": cs.FAR_COSINE}})
    assert (c.verdict, c.value) == ("agrees", 0) and "far from their random start" in c.sentence
    c = cs.init_cosine({"scVI": {"main": 0.1, "second": 0.31}})
    assert "part of the way" in c.sentence and "far from" not in c.sentence


def test_init_cosine_one_kept_singular():
    c = cs.init_cosine({"scVI": {"main": 0.5, "second": 0.75}})
    assert "1 of 2 SAEs keeps a mean cosine above 0.7" in c.sentence
    assert "so its matching scores below are pulled towards" in c.sentence


def test_init_cosine_all_kept_disagrees():
    c = cs.init_cosine({"scVI": {"main": 0.96, "second": 0.98}, "scGPT": {"main": 0.92}})
    assert (c.verdict, c.n, c.value) == ("disagrees", 3, 3)
    assert "Every SAE keeps a mean cosine above 0.7" in c.sentence and "0.980" in c.sentence
    assert "At or below" not in c.sentence


def test_init_cosine_mixed_names_every_sae():
    # min cosine 0.69 ≤ 0.7 must not make the sentence say anything for all SAEs
    c = cs.init_cosine({"scVI": {"main": 0.69, "second": 0.92}, "scGPT": {"main": 0.85,
                                                                          "second": 0.72}})
    assert (c.verdict, c.n, c.value) == ("disagrees", 4, 3)
    assert "3 of 4 SAEs keep a mean cosine above 0.7" in c.sentence
    assert "scVI (second) 0.920" in c.sentence
    assert "At or below 0.7: scVI (main) 0.690" in c.sentence
    assert "well away" not in c.sentence


def test_init_cosine_threshold_is_strict():
    c = cs.init_cosine({"scVI": {"main": cs.KEPT_COSINE}})
    assert (c.verdict, c.value) == ("agrees", 0)


def test_init_cosine_empty_inconclusive():
    c = cs.init_cosine({"scVI": {"main": float("nan")}})
    assert (c.verdict, c.n) == ("inconclusive", 0)


# --- Fig 4A -----------------------------------------------------------------------------------

def boot(main, second, sd=0.01, n_boot=1000, seed=0):
    """Gap replicates centred on (main, second) with standard deviation ``sd``."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame({"main": main + sd * rng.standard_normal(n_boot),
                         "second": second + sd * rng.standard_normal(n_boot)})


def cells(own_main=100, own_second=50, n_main=1000, n_second=500):
    return pd.DataFrame({"own": [own_main, own_second], "other": [n_second, n_main]},
                        index=["main", "second"])


def gap_args(**models):
    """gaps, replicates and cells of {model: (gap main, gap second, sd)}."""
    g = {m: gaps(a, b) for m, (a, b, _) in models.items()}
    r = {m: boot(a, b, sd, seed=i) for i, (m, (a, b, sd)) in enumerate(models.items())}
    return g, {"replicates": r, "cells": {m: cells() for m in models}}


def test_r2_gap_replicates_and_cells():
    cols = pd.MultiIndex.from_tuples([("main", "main"), ("main", "second"),
                                      ("second", "second"), ("second", "main")])
    raw = pd.DataFrame([[0.9, 0.8, 0.95, 0.7], [0.8, 0.8, 0.9, 0.5]], columns=cols)
    r = cs.r2_gap_replicates(raw)
    assert list(r.columns) == ["main", "second"]
    assert np.allclose(r["main"], [0.1, 0.0]) and np.allclose(r["second"], [0.25, 0.4])
    t = r2_table(0.9, 0.8, 0.95, 0.7).assign(cells=[100, 500, 50, 1000])
    assert cs.r2_gap_cells(t).to_dict("index") == {"main": {"own": 100, "other": 500},
                                                    "second": {"own": 50, "other": 1000}}
    # the raw replicates are accepted by the claims too
    c1 = cs.all_lower({"scvi": gaps(0.1, 0.25)}, LABELS, replicates={"scvi": raw})
    c2 = cs.all_lower({"scvi": gaps(0.1, 0.25)}, LABELS, replicates={"scvi": r})
    assert c1.interval == c2.interval


def test_all_lower_agrees():
    g, kw = gap_args(scvi=(0.1, 0.2, 0.01), scgpt=(0.3, 0.4, 0.01))
    c = cs.all_lower(g, LABELS, **kw)
    assert c.verdict == "agrees" and c.value == pytest.approx(0.1)
    assert c.region == (0.0, np.inf) and 0 < c.interval[0] < 0.1 < c.interval[1] < 0.2
    assert c.n == 600 and c.unit and c.fmt == ".3f"  # held-out main + every second cell
    assert "+0.100" in c.sentence and "600" in c.sentence and "held-out" in c.sentence
    assert f"{c.interval[0]:+.3f}" in c.sentence and "as in the paper" in c.sentence
    assert "n = 600" in c.evidence


def test_all_lower_disagrees():
    g, kw = gap_args(scvi=(0.1, -0.2, 0.01))
    c = cs.all_lower(g, LABELS, **kw)
    assert c.verdict == "disagrees" and c.value == pytest.approx(-0.2) and c.interval[1] < 0
    assert c.n == 1050 and "unlike the paper" in c.sentence and "1,050" in c.sentence


def test_all_lower_inconclusive():
    # the smallest gap's interval crosses 0
    g, kw = gap_args(scvi=(0.1, 0.005, 0.01))
    c = cs.all_lower(g, LABELS, **kw)
    assert c.verdict == "inconclusive" and c.interval[0] < 0 < c.interval[1]
    assert "inconclusive" in c.sentence and "+0.005" in c.sentence
    # the minimum over SAEs is taken per replicate: two gaps near 0.02 make it lower than either
    g, kw = gap_args(scvi=(0.02, 0.02, 0.01))
    c = cs.all_lower(g, LABELS, **kw)
    assert c.interval[1] < np.quantile(kw["replicates"]["scvi"]["main"], 0.975)
    # no replicates, too few SAEs
    c = cs.all_lower({"scvi": gaps(0.1, 0.2)}, LABELS)
    assert c.verdict == "inconclusive" and c.interval is None and c.n is None
    assert "no interval" in c.sentence
    c = cs.all_lower({"scvi": gaps(0.1, float("nan"))}, LABELS,
                     replicates={"scvi": boot(0.1, 0.2)})
    assert c.verdict == "inconclusive" and "at least 2" in c.sentence


def test_main_smaller_outcomes():
    g, kw = gap_args(scvi=(0.1, 0.2, 0.01), scgpt=(0.3, 0.4, 0.01))
    c = cs.main_smaller(g, LABELS, **kw)
    assert c.verdict == "agrees" and c.value == pytest.approx(-0.1) and c.interval[1] < 0
    assert c.region == (-np.inf, 0.0) and c.n == 1500  # every cell of both datasets
    assert "-0.100" in c.sentence and "as in the paper" in c.sentence
    g, kw = gap_args(scvi=(0.1, 0.2, 0.01), scgpt=(0.5, 0.4, 0.01))
    c = cs.main_smaller(g, LABELS, **kw)
    assert c.verdict == "disagrees" and c.value == pytest.approx(0.1) and c.interval[0] > 0
    assert "unlike the paper" in c.sentence and "scGPT +0.100" in c.sentence
    g, kw = gap_args(scvi=(0.1, 0.2, 0.01), scgpt=(0.4, 0.41, 0.01))
    c = cs.main_smaller(g, LABELS, **kw)
    assert c.verdict == "inconclusive" and c.interval[0] < 0 < c.interval[1]
    c = cs.main_smaller({"scvi": gaps(float("nan"), 0.2)}, LABELS)
    assert c.verdict == "inconclusive" and "no model has both gaps" in c.sentence


def test_larger_drop_outcomes():
    g, kw = gap_args(scvi=(0.1, 0.1, 0.01), scgpt=(0.3, 0.5, 0.01))
    c = cs.larger_drop(g, LABELS, **kw)
    assert c.verdict == "agrees" and c.value == pytest.approx(0.3) and c.interval[0] > 0
    assert c.n == 1500 and "+0.300" in c.sentence and "1,500" in c.sentence
    g, kw = gap_args(scvi=(0.3, 0.5, 0.01), scgpt=(0.1, 0.1, 0.01))
    c = cs.larger_drop(g, LABELS, **kw)
    assert c.verdict == "disagrees" and c.value == pytest.approx(-0.3) and c.interval[1] < 0
    assert "-0.300" in c.sentence and "unlike the paper" in c.sentence
    g, kw = gap_args(scvi=(0.1, 0.1, 0.05), scgpt=(0.11, 0.1, 0.05))
    c = cs.larger_drop(g, LABELS, **kw)
    assert c.verdict == "inconclusive" and c.interval[0] < 0 < c.interval[1]
    c = cs.larger_drop({"scvi": gaps(0.1, 0.1), "scgpt": gaps(0.3, 0.5)}, LABELS)
    assert c.verdict == "inconclusive" and c.interval is None


def test_larger_drop_missing_model_inconclusive():
    c = cs.larger_drop({"scvi": gaps(0.1, 0.1), "pca": gaps(0.3, 0.5)}, LABELS)
    assert c.verdict == "inconclusive" and np.isnan(c.value)
    assert "no scGPT" in c.sentence


def test_gap_replicates_must_pair():
    g = {"scvi": gaps(0.1, 0.2), "scgpt": gaps(0.3, 0.4)}
    r = {"scvi": boot(0.1, 0.2, n_boot=100), "scgpt": boot(0.3, 0.4, n_boot=50)}
    with pytest.raises(ValueError, match="paired"):
        cs.all_lower(g, LABELS, replicates=r)


# --- Fig 4B -----------------------------------------------------------------------------------

def test_matching_vs_null_outcomes():
    cos = np.array([0.5, 0.6, 0.7, 0.4])
    c = cs.matching_vs_null("k", "scVI", cos, [0.3, 0.31], null_cosine=[0.2, 0.55])
    assert (c.verdict, c.n) == ("agrees", 4) and c.value == pytest.approx(0.55)
    assert c.region == (0.31, np.inf) and c.interval[0] > 0.31
    # Student-t: mean ± t(3) · sd / sqrt(4)
    h = 3.182446 * cos.std(ddof=1) / 2
    assert c.interval == pytest.approx((0.55 - h, 0.55 + h), abs=1e-5)
    assert "0.550" in c.sentence and "50% of its pairs" in c.sentence
    assert f"{c.interval[0]:.3f}" in c.sentence
    c = cs.matching_vs_null("k", "scVI", cos, [0.3, 0.6])  # the interval holds 0.6
    assert (c.verdict, c.n) == ("inconclusive", 4) and "inconclusive" in c.sentence
    c = cs.matching_vs_null("k", "scVI", cos, [0.3, 0.95])
    assert (c.verdict, c.n) == ("disagrees", 4) and "not above" in c.sentence
    c = cs.matching_vs_null("k", "scVI", cos[:2], [0.3, 0.31])
    assert (c.verdict, c.n) == ("inconclusive", 2) and "0.550" in c.sentence
    c = cs.matching_vs_null("k", "scVI", cos, [])
    assert c.verdict == "inconclusive" and "no random dictionary" in c.sentence


def test_every_outcomes():
    ok = cs.matching_vs_null("a", "A", [0.5, 0.6, 0.7], [0.1])
    bad = cs.matching_vs_null("b", "B", [0.5, 0.6, 0.7], [0.95])
    few = cs.matching_vs_null("c", "C", [0.5], [0.1])
    assert (ok.verdict, bad.verdict, few.verdict) == ("agrees", "disagrees", "inconclusive")
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
    assert c.verdict == "agrees" and c.n == 40 and c.region == (0.0, np.inf)
    assert c.value == pytest.approx(hi.mean() - lo.mean())
    assert f"{c.value:+.3f}" in c.sentence and c.interval[0] > 0
    c = cs.more_stable({"scvi": lo, "scgpt": hi}, LABELS)
    assert c.verdict == "disagrees" and f"{c.value:+.3f}" in c.sentence and c.interval[1] < 0
    noisy = 0.3 + 0.5 * rng.standard_normal(40)
    c = cs.more_stable({"scvi": noisy + 0.01, "scgpt": noisy[::-1]}, LABELS)
    assert c.verdict == "inconclusive" and c.interval[0] <= 0 <= c.interval[1]
    assert f"{c.value:+.3f}" in c.sentence and "inconclusive" in c.sentence


def test_more_stable_missing_model_inconclusive():
    c = cs.more_stable({"scvi": np.ones(10), "pca": np.ones(10)}, LABELS)
    assert c.verdict == "inconclusive" and np.isnan(c.value) and "no scGPT" in c.sentence


# --- Fig 4C -----------------------------------------------------------------------------------

def test_shared_genes_outcomes():
    c = cs.shared_genes({"scVI": np.array([2] * 18 + [0] * 2)})
    assert (c.verdict, c.n) == ("agrees", 20) and c.value == pytest.approx(0.9)
    assert "90%" in c.sentence and c.interval[0] > 0.5 and c.region == (0.5, np.inf)
    c = cs.shared_genes({"scVI": np.zeros(18), "scGPT": np.array([1, 0])})
    assert (c.verdict, c.n) == ("disagrees", 20) and c.value == pytest.approx(0.05)
    assert "5%" in c.sentence and "fewer than" in c.sentence
    c = cs.shared_genes({"scVI": np.array([1, 0]), "scGPT": np.array([0])})
    assert (c.verdict, c.n) == ("inconclusive", 3) and "33%" in c.sentence
    # 60 % of 20 pairs: above the threshold, but the exact interval reaches it
    c = cs.shared_genes({"scVI": np.array([1] * 12 + [0] * 8)})
    assert c.verdict == "inconclusive" and c.interval[0] < 0.5 < c.interval[1]
    assert "inconclusive" in c.sentence
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
    assert c.interval is None and "0.400 ± 0.010" in c.sentence  # a spread, not a CI
    assert "0.400" in c.sentence and "no more than" in c.sentence
    c = cs.seed_vs_dataset("k", "scVI", seed_summary(0.40, 0.01), 3, 0.30)
    assert (c.verdict, c.n) == ("disagrees", 3) and "0.400" in c.sentence
    assert "more than a new seed" in c.sentence
    c = cs.seed_vs_dataset("k", "scVI", seed_summary(0.40, float("nan")), 2, 0.39)
    assert (c.verdict, c.n) == ("inconclusive", 2) and "0.400" in c.sentence


def test_claims_glue_keys():
    got = {}
    g, kw = gap_args(scvi=(0.1, 0.2, 0.01))
    c = cs.all_lower(g, LABELS, key="ch07_all_lower", **kw)
    c.glue(lambda k, v, display=False: got.__setitem__(k, v))
    assert got["ch07_all_lower_agree"] == "agrees" and got["ch07_all_lower_n"] == 600
    assert got["ch07_all_lower_low"] > 0 and "held-out" in got["ch07_all_lower_evidence"]
    keys = {f(g, LABELS, **kw).key for f in (cs.all_lower, cs.main_smaller, cs.larger_drop)}
    assert keys == {"ch07_all_lower", "ch07_main_smaller", "ch07_scgpt_larger"}


def test_atom_stability_against_the_null():
    pairs = pd.DataFrame({"mean_best_cosine": [0.61, 0.62, 0.60],
                          "null_mean_best_cosine": [0.41, 0.40, 0.41],
                          "share_above": [0.0, 0.0, 0.0], "null_share_above": [0.0] * 3})
    c = cs.atom_stability("ch07_scvi_atoms", "scVI", pairs, pairs.assign(share_above=0.14))
    assert (c.verdict, c.n, c.unit) == ("agrees", 3, "seed pairs")
    assert c.interval[0] > 0.41 and "above 0.7: 14%" in c.sentence
    same = pairs.assign(mean_best_cosine=[0.40, 0.42, 0.41])
    assert cs.atom_stability("k", "scVI", same).verdict == "inconclusive"
    below = pairs.assign(mean_best_cosine=[0.20, 0.21, 0.20])
    assert cs.atom_stability("k", "scVI", below).verdict == "disagrees"
    assert cs.atom_stability("k", "scVI", pairs.head(1)).verdict == "inconclusive"  # 1 pair
