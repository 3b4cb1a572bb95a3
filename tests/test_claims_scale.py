"""Claims of chapters 01–03 (:mod:`scconcepts.claims.models`, :mod:`scconcepts.claims.scale`) on
constructed inputs: every verdict (agrees, disagrees, inconclusive), value, n and sentence."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from scconcepts.claims import models as cm
from scconcepts.claims import scale as cs
from scconcepts.reference.scale import PAPER_CELLTYPE_SPECIFIC, paper_default, paper_grid

SCVI = paper_default("scVI")


def _grid(c, r2, dead):
    c = np.asarray(c)
    k = np.maximum(1, np.round(c * 0.016)).astype(int)   # the paper's k/c (200 → 3, 500 → 8)
    return pd.DataFrame({"c": c, "k": k, "r2": r2, "dead_concepts": dead,
                         "active_concepts": c - np.asarray(dead)})


# ------------------------------------------------------------------ reference


def test_reference_defaults_come_from_table3():
    assert SCVI == {"c": 500, "k": 8, "d": 50, "r2": 0.988, "active_concepts": 489,
                    "dead_concepts": 11, "active_share": 489 / 500}
    assert paper_default("scGPT")["active_concepts"] == 4381
    assert paper_default("PCA") is None
    g = paper_grid("scVI")
    assert list(g["c"]) == sorted(g["c"])
    assert (g["dead_concepts"] == g["c"] - g["active_concepts"]).all()
    assert paper_grid("PCA").empty


# ------------------------------------------------------------------ chapter 01


@pytest.mark.parametrize("acc, n, expected", [(0.95, 2000, "agrees"), (0.60, 2000, "disagrees"),
                                              (0.805, 1500, "inconclusive"),
                                              (0.95, 10, "inconclusive")])
def test_knn_accuracy(acc, n, expected):
    c = cm.knn_accuracy("scgpt", "scGPT", acc, n, baseline=0.9)
    assert c.key == "ch01_knn_scgpt" and c.value == acc and c.n == n
    assert c.verdict == expected
    assert f"{acc:.4f}" in c.sentence and "0.9000" in c.sentence
    assert c.interval[0] <= acc <= c.interval[1]



def test_checkpoint_facts_from_the_training_log(tmp_path):
    (tmp_path / "vocab.json").write_text(json.dumps({"<pad>": 0, "<cls>": 1, "<eoc>": 2,
                                                     "CD3E": 3, "MS4A1": 4}))
    (tmp_path / "training_log.json").write_text(json.dumps({
        "n_params": 277313, "seconds": 7200.0, "steps": 5468, "stages": [{}] * 6,
        "datasets": {"a": {"n_cells": 12261}, "b": {"n_cells": 4170}}}))
    facts = cm.checkpoint_facts(tmp_path)
    assert facts == {"ch01_scgpt_params": "0.28M", "ch01_scgpt_vocab": 2,
                     "ch01_scgpt_cells": 16431, "ch01_scgpt_cpu_hours": 2.0,
                     "ch01_scgpt_steps": 5468, "ch01_scgpt_runs": 6}


def test_checkpoint_facts_without_a_log_count_the_model(tmp_path):
    torch = pytest.importorskip("torch")
    (tmp_path / "vocab.json").write_text(json.dumps(["<pad>", "<cls>", "A", "B", "C"]))
    (tmp_path / "args.json").write_text(json.dumps({"n_bins": 51}))
    facts = cm.checkpoint_facts(tmp_path, net=torch.nn.Linear(289, 1000), prefix="x")
    assert facts == {"x_params": "0.29M", "x_vocab": 3, "x_bins": 51}   # nothing from a log


# ------------------------------------------------------------------ chapter 02


@pytest.mark.parametrize("r2, interval, paper, expected", [
    (0.982, (0.980, 0.984), SCVI, "agrees"),
    (0.850, (0.840, 0.860), SCVI, "disagrees"),
    (0.951, (0.940, 0.960), SCVI, "inconclusive"),   # the interval contains 0.95
    (0.982, (0.980, 0.984), None, "inconclusive"),   # no paper value for the model
])
def test_r2_default(r2, interval, paper, expected):
    c = cs.r2_default("scvi", "scVI", 500, 8, r2, interval, paper)
    assert c.key == "ch02_scvi_r2_default" and c.value == pytest.approx(r2) and c.n is None
    assert c.verdict == expected and f"{r2:.3f}" in c.sentence
    assert c.paper == (0.988 if paper else None)


def test_r2_default_on_held_out_cells_states_n():
    c = cs.r2_default("scvi", "scVI", 500, 8, 0.97, (0.96, 0.98), SCVI, held_out=1226)
    assert c.n == 1226 and "1226 held-out cells (never trained on)" in c.sentence


def test_bootstrap_r2_brackets_the_r2():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 5))
    a_hat = a + 0.1 * rng.normal(size=a.shape)
    lo, hi = cs.bootstrap_r2(a, a_hat, n_boot=100)
    r2 = 1 - ((a - a_hat) ** 2).sum() / ((a - a.mean(0)) ** 2).sum()
    assert lo < r2 < hi and hi - lo < 0.02


def _held_out(noise, n=800, d=6, seed=0):
    """Held-out cells and reconstructions whose error shrinks (or not) with c: R² ≈ 1 − σ²."""
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d))
    return a, [a + s * rng.normal(size=a.shape) for s in noise]


@pytest.mark.parametrize("noise, paper, expected", [
    ([0.5, 0.3, 0.1], paper_grid("scVI"), "agrees"),          # R² 0.75 → 0.91 → 0.99
    ([0.5, 0.1, 0.3], paper_grid("scVI"), "disagrees"),       # the last step clearly falls
    ([0.5, 0.3, 0.3], paper_grid("scVI"), "inconclusive"),    # a flat step: interval holds 0
    ([0.5, 0.3], paper_grid("scVI"), "inconclusive"),         # two sizes only
    ([0.5, 0.3, 0.1], None, "inconclusive"),                  # no paper values
])
def test_r2_trend_paired_bootstrap_on_held_out_cells(noise, paper, expected):
    a, recons = _held_out(noise)
    r2 = [1 - ((a - r) ** 2).sum() / ((a - a.mean(0)) ** 2).sum() for r in recons]
    sizes = [200, 500, 1000][:len(noise)]
    t = _grid(sizes, r2, [0] * len(r2)).assign(r2_val=r2).iloc[::-1]  # the claim sorts by c
    steps = cs.r2_step_replicates(a, recons, n_boot=300, seed=1)
    c = cs.r2_trend("scvi", "scVI", t, paper, steps, held_out=len(a))
    assert c.key == "ch02_scvi_r2_trend" and c.n == len(a)
    assert c.value == pytest.approx(min(np.diff(r2)))
    assert c.interval[0] <= c.value <= c.interval[1]
    assert c.verdict == expected and "held-out cells" in c.sentence
    if paper is not None and len(noise) > 2:   # shared sizes with the paper are compared
        assert "sizes both have" in c.sentence


def test_r2_step_replicates_are_paired_and_seeded():
    a, (r,) = _held_out([0.3])
    recons = [r, a + 0.98 * (r - a)]   # the second SAE errs like the first, slightly less
    steps = cs.r2_step_replicates(a, recons, n_boot=200, seed=3)
    # paired: the same cells for both fits, so the step varies far less than it would with the
    # two R² resampled independently
    from scconcepts.claims import stats
    r2 = [stats.r2_replicates(a, r, stats.bootstrap_weights(len(a), 200, seed))
          for seed, r in enumerate(recons)]
    assert steps.std() < 0.2 * (r2[1] - r2[0]).std()
    assert np.array_equal(steps, cs.r2_step_replicates(a, recons, n_boot=200, seed=3))


@pytest.mark.parametrize("active, paper, expected", [
    (490, SCVI, "agrees"), (300, SCVI, "disagrees"),
    (468, SCVI, "inconclusive"),   # the share's interval crosses the paper − 5 points bound
    (490, None, "inconclusive"),
])
def test_active_share(active, paper, expected):
    c = cs.active_share("scvi", "scVI", 500, 8, active, paper)
    assert c.key == "ch02_scvi_active" and c.n == 500
    assert c.value == pytest.approx(active / 500) and c.verdict == expected
    assert f"{active / 500:.0%}" in c.sentence and f"{active} of 500" in c.sentence


@pytest.mark.parametrize("dead, expected", [
    ([104, 181, 432], "agrees"),         # the scGPT grid: the default (largest) is compared
    ([150, 150, 152], "inconclusive"),   # +2 of 640: within the binomial interval
    ([150, 150, 100], "disagrees"),      # fewer dead in the largest dictionary
    ([104, 181], "inconclusive"),        # two sizes only
])
def test_dead_growth(dead, expected):
    t = _grid([128, 256, 640][:len(dead)], [0.9] * len(dead), dead)
    c = cs.dead_growth("scgpt", "scGPT", t, paper_grid("scGPT"))
    last = 640 if len(dead) == 3 else 256
    assert c.key == "ch02_scgpt_dead" and c.n == 128 + last
    assert c.value == dead[-1] - dead[0] and c.verdict == expected
    assert c.interval[0] <= c.value <= c.interval[1]
    assert f"{dead[-1] - dead[0]:+d}" in c.sentence and "1201" in c.sentence


def test_dead_growth_without_paper_is_inconclusive():
    t = _grid([100, 200, 400], [0.9] * 3, [1, 2, 3])
    c = cs.dead_growth("pca", "PCA", t, paper_grid("PCA"))
    assert c.verdict == "inconclusive" and c.paper is None


def test_page_values_sort_by_c():
    t = _grid([640, 128, 256], [0.85, 0.75, 0.80], [432, 104, 181])
    v = cs.page_values("scgpt", t, 640, 10)
    assert v["ch02_scgpt_r2_first"] == 0.75 and v["ch02_scgpt_r2_last"] == 0.85
    assert v["ch02_scgpt_c_largest"] == 640 and v["ch02_scgpt_dead_largest"] == 432
    assert v["ch02_scgpt_dead_default"] == 432 and v["ch02_scgpt_active_share"] == 208 / 640
    assert v["ch02_scgpt_c_smallest"] == 128 and v["ch02_scgpt_dead_smallest"] == 104
    assert v["ch02_scgpt_grid_c"] == "128, 256, 640" and v["ch02_scgpt_k_default"] == 10


def test_page_values_compare_smallest_and_largest_when_the_default_is_the_largest():
    # smoke profile: the default SAE is the largest of the grid; the dead-concept row must still
    # show two different SAEs (smallest and largest), as the claim compares them
    t = _grid([64, 128], [0.95, 0.96], [46, 98])
    v = cs.page_values("scgpt", t, 128, int(t["k"].iloc[-1]))
    assert (v["ch02_scgpt_c_smallest"], v["ch02_scgpt_dead_smallest"]) == (64, 46)
    assert (v["ch02_scgpt_c_largest"], v["ch02_scgpt_dead_largest"]) == (128, 98)
    c = cs.dead_growth("scgpt", "scGPT", t, paper_grid("scGPT"))
    assert c.value == 98 - 46


def test_claims_table_is_readable():
    claims = [("scVI", cs.r2_default("scvi", "scVI", 500, 8, 0.982, (0.980, 0.984), SCVI,
                                     held_out=1211)),
              ("scGPT", cs.dead_growth("scgpt", "scGPT", _grid([128, 256], [0.9] * 2, [1, 2]),
                                       paper_grid("scGPT")))]
    t = cs.claims_table(claims)
    assert list(t.columns) == ["model", "claim", "n", "value (95 % interval)", "verdict"]
    assert t.loc[0, "n"] == "1,211 held-out cells"
    assert t.loc[0, "value (95 % interval)"] == "0.982 (0.980 to 0.984)"
    assert t.loc[0, "verdict"] == "agrees" and t.loc[1, "verdict"] == "inconclusive"
    assert t.loc[1, "value (95 % interval)"].startswith("+1 (")


# ------------------------------------------------------------------ chapter 03


@pytest.mark.parametrize("n, share, paper, expected", [
    (100, 0.55, "a large proportion", "agrees"),
    (100, 0.10, "a large proportion", "disagrees"),
    (20, 0.45, "a large proportion", "inconclusive"),   # the interval contains 30 %
    (2, 1.0, "a large proportion", "inconclusive"),     # too few concepts
    (100, 0.55, None, "inconclusive"),                  # no paper value
])
def test_celltype_share(n, share, paper, expected):
    c = cs.celltype_share("scvi", "scVI", n, share, paper)
    assert c.key == "ch03_scvi_celltype" and c.n == n and c.value == pytest.approx(share)
    assert c.verdict == expected and f"{share:.0%}" in c.sentence


def test_celltype_share_without_characterised_concepts():
    c = cs.celltype_share("scvi", "scVI", 0, float("nan"), PAPER_CELLTYPE_SPECIFIC["scVI"])
    assert c.verdict == "inconclusive" and c.n == 0 and math.isnan(c.value)


def test_claim_glue_keys_match_the_reproduction_page():
    glued = {}
    cs.dead_growth("scgpt", "scGPT", _grid([128, 256, 640], [0.9] * 3, [1, 2, 300]),
                   paper_grid("scGPT")).glue(lambda k, v, display: glued.__setitem__(k, v))
    assert glued["ch02_scgpt_dead_agree"] == "agrees" and glued["ch02_scgpt_dead_n"] == 768
    assert glued["ch02_scgpt_dead_evidence"].startswith("n = 768 concepts of the smallest")
