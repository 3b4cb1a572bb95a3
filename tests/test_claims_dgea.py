"""Tests of the chapter 10–11 claims (scconcepts.claims.dgea, scconcepts.claims.perturbation):
every claim function on constructed inputs, for every outcome (agrees, disagrees, inconclusive),
checking value, n, verdict and that the sentence quotes the value."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from scconcepts.claims import dgea as cd
from scconcepts.claims import perturbation as cp
from scconcepts.reference.dgea import PAPER_FIG8, PAPER_TABLE6, paper_table6

SCVI, SCGPT = PAPER_TABLE6["scvi"], PAPER_TABLE6["scgpt"]


def _curves(att_areas, dgea_areas, zero=None, random=None) -> pd.DataFrame:
    """Two-step curves (1 at step 0, then 2a − 1) whose mean over steps is each given area."""
    rows = []
    for u, (a, g) in enumerate(zip(att_areas, dgea_areas)):
        curves = {"attribution": a, "DGEA": g}
        if zero is not None:
            curves["attribution, zero-masked"] = zero
        if random is not None:
            curves["random"] = random
        for name, area in curves.items():
            rows += [{"unit": u, "curve": name, "step": 0, "activation": 1.0},
                     {"unit": u, "curve": name, "step": 1, "activation": 2 * area - 1}]
    return pd.DataFrame(rows, columns=["unit", "curve", "step", "activation"])


def _metrics(n_att, n_dgea, maxfc=None, maxatt=None, iou=None) -> pd.DataFrame:
    """Per-concept Table 6 metrics; maxfc/maxatt: (attribution, DGEA) per concept enriched by
    both (NaN for the others); iou: pathway IoU per concept enriched by both."""
    n = len(n_att)
    both = [a > 0 and d > 0 for a, d in zip(n_att, n_dgea)]
    k = sum(both)
    maxfc = maxfc or [(1.0, 3.0)] * k
    maxatt = maxatt or [(0.3, 0.1)] * k
    iou = iou if iou is not None else [0.1] * k
    cols = {c: [np.nan] * n for c in ("maxfc_att", "maxfc_dgea", "maxatt_att", "maxatt_dgea",
                                      "iou_pathways", "iou_genes")}
    j = 0
    for i, b in enumerate(both):
        if b:
            cols["maxfc_att"][i], cols["maxfc_dgea"][i] = maxfc[j]
            cols["maxatt_att"][i], cols["maxatt_dgea"][i] = maxatt[j]
            cols["iou_pathways"][i] = iou[j]
            cols["iou_genes"][i] = iou[j] / 2
            j += 1
    return pd.DataFrame({"unit": range(n), "n_att": n_att, "n_dgea": n_dgea, **cols})


def _check(claim, verdict, n, fmt=".3f"):
    assert claim.verdict == verdict
    assert claim.n == n
    if not (isinstance(claim.value, float) and math.isnan(claim.value)):
        assert format(claim.value, fmt) in claim.sentence
    assert f"**{verdict}**" in claim.sentence


# ------------------------------------------------------------------ chapter 10: deletion (Fig 8)
def test_deletion_agrees_disagrees_inconclusive():
    c = cd.deletion_claim("scvi", "scVI", _curves([0.5, 0.6, 0.55, 0.52], [0.9, 0.95, 0.92, 0.9],
                                                  zero=0.4, random=0.99), PAPER_FIG8["scvi"])
    _check(c, "agrees", 4)
    assert c.key == "ch10_scvi_del" and c.value == pytest.approx(-0.375)
    assert c.interval[1] < 0 and "Zero-masking" in c.sentence and "0.990" in c.sentence
    c = cd.deletion_claim("scvi", "scVI", _curves([0.9, 0.95, 0.92], [0.5, 0.6, 0.55]), "x")
    _check(c, "disagrees", 3)
    assert c.value > 0 and c.interval[0] > 0
    # 1 of 2 concepts lower (the scGPT case of the default profile): n = 2 is too few
    c = cd.deletion_claim("scgpt", "scGPT", _curves([0.49, 1.0], [1.0, 1.0]), "x")
    _check(c, "inconclusive", 2)
    assert "n = 2 concepts, fewer than 3" in c.sentence and "as in" not in c.sentence
    # the interval includes 0
    c = cd.deletion_claim("m", "M", _curves([0.5, 0.9, 0.6, 0.95], [0.6, 0.8, 0.7, 0.85]), "x")
    _check(c, "inconclusive", 4)
    assert "includes 0" in c.sentence
    # no paper value for the model
    c = cd.deletion_claim("pca", "PCA", _curves([0.5, 0.6, 0.55], [0.9, 0.95, 0.92]), None)
    _check(c, "inconclusive", 3)
    assert "no value for this model" in c.sentence
    c = cd.deletion_claim("pca", "PCA", _curves([], []), None)
    assert c.verdict == "inconclusive" and c.n == 0 and math.isnan(c.value)


# ------------------------------------------------------------------ chapter 10: Table 6
def test_enriched_agrees_disagrees_inconclusive():
    m = _metrics([1] * 2 + [0] * 8, [1] * 10)   # DGEA alone in 8 concepts: McNemar p < 0.01
    c = cd.enriched_claim("scvi", "scVI", m, SCVI)
    _check(c, "agrees", 10, "+.0%")
    assert c.value == pytest.approx(0.8) and c.interval[0] > 0
    assert "paper: 89 vs 72 of 100" in c.sentence and c.paper == (89, 72)
    c = cd.enriched_claim("scvi", "scVI", _metrics([1] * 10, [1] * 2 + [0] * 8), SCVI)
    _check(c, "disagrees", 10, "+.0%")
    assert c.value == pytest.approx(-0.8) and c.interval[1] < 0
    c = cd.enriched_claim("scvi", "scVI", _metrics([1, 0, 1, 0], [1, 1, 0, 1]), SCVI)
    _check(c, "inconclusive", 4, "+.0%")         # 2 vs 1 discordant concepts: holds 0
    assert "McNemar" in c.sentence and c.interval[0] < 0 < c.interval[1]
    c = cd.enriched_claim("scgpt", "scGPT", _metrics([0, 0], [1, 1]), SCGPT)
    _check(c, "inconclusive", 2, "+.0%")
    assert "n = 2 concepts, fewer than 3" in c.sentence and "62 vs 32" in c.sentence
    c = cd.enriched_claim("pca", "PCA", _metrics([1] * 2 + [0] * 8, [1] * 10), None)
    _check(c, "inconclusive", 10, "+.0%")
    # every concept enriched by DGEA alone, but only 3 of them: wide, inconclusive
    c = cd.enriched_claim("scvi", "scVI", _metrics([0] * 3, [1] * 3), SCVI)
    _check(c, "inconclusive", 3, "+.0%")
    assert c.value == 1.0 and c.interval[0] < 0 < c.interval[1]
    assert "+100% to +100%" not in c.sentence


@pytest.mark.parametrize("fn, name, good, bad", [
    (cd.maxfc_claim, "maxfc", {"maxfc": [(1.0, 3.0), (2.0, 5.0), (1.5, 4.0)]},
     {"maxfc": [(3.0, 1.0), (5.0, 2.0), (4.0, 1.5)]}),
    (cd.maxatt_claim, "maxatt", {"maxatt": [(0.3, 0.1), (0.5, 0.2), (0.4, 0.1)]},
     {"maxatt": [(0.1, 0.3), (0.2, 0.5), (0.1, 0.4)]}),
])
def test_pathway_gene_claims(fn, name, good, bad):
    c = fn("scvi", "scVI", _metrics([1, 1, 1], [1, 1, 1], **good), SCVI)
    _check(c, "agrees", 3)
    assert c.key == f"ch10_scvi_{name}" and c.value > 0 and c.interval[0] > 0
    c = fn("scvi", "scVI", _metrics([1, 1, 1], [1, 1, 1], **bad), SCVI)
    _check(c, "disagrees", 3)
    assert c.value < 0
    few = {k: v[:1] for k, v in good.items()}
    c = fn("scgpt", "scGPT", _metrics([1, 1, 0], [1, 0, 1], **few), SCGPT)
    _check(c, "inconclusive", 1)
    assert "n = 1 concept, fewer than 3" in c.sentence
    c = fn("scvi", "scVI", _metrics([0, 1], [1, 0]), SCVI)
    assert c.verdict == "inconclusive" and c.n == 0 and "no concept" in c.sentence


def test_iou_agrees_disagrees_inconclusive_with_own_paper_value():
    iou = [0.0, 0.1, 0.05, 0.0] * 3                      # 12 concepts: Hoeffding ±0.39
    c = cd.iou_claim("scgpt", "scGPT", _metrics([1] * 12, [1] * 12, iou=iou), SCGPT)
    _check(c, "agrees", 12)
    assert c.value == pytest.approx(0.0375) and c.interval[1] < cd.IOU_MAX
    # the model's own paper IoUs (scGPT: 0.068 pathways, 0.055 genes), never scVI's
    assert "paper, scGPT: 0.068 and 0.055" in c.sentence and "0.025" not in c.sentence
    assert c.paper == (0.068, 0.055) and "Hoeffding" in c.test
    c = cd.iou_claim("scvi", "scVI", _metrics([1] * 12, [1] * 12, iou=[0.9, 0.95, 0.92] * 4),
                     SCVI)
    _check(c, "disagrees", 12)
    assert "paper, scVI: 0.025 and 0.027" in c.sentence
    c = cd.iou_claim("scvi", "scVI", _metrics([1] * 3, [1] * 3, iou=[0.1, 0.9, 0.5]), SCVI)
    _check(c, "inconclusive", 3)                 # interval includes 0.5
    c = cd.iou_claim("scvi", "scVI", _metrics([1, 1], [1, 1], iou=[0.0, 0.0]), SCVI)
    _check(c, "inconclusive", 2)
    c = cd.iou_claim("pca", "PCA", _metrics([1] * 3, [1] * 3, iou=[0.0, 0.0, 0.0]), None)
    _check(c, "inconclusive", 3)
    assert "the paper has no value for PCA" in c.sentence


@pytest.mark.parametrize("n", [3, 5])
def test_iou_of_zero_on_few_concepts_is_not_evidence(n):
    """The default profile's case: every one of 3 (scVI) or 5 (scGPT) concepts has IoU 0. A t
    interval would be "0.000 to 0.000" and agree; the Hoeffding interval keeps its width, holds
    0.5 and leaves the claim inconclusive."""
    c = cd.iou_claim("scvi", "scVI", _metrics([1] * n, [1] * n, iou=[0.0] * n), SCVI)
    _check(c, "inconclusive", n)
    assert c.value == 0 and c.interval[0] == 0 and c.interval[1] > cd.IOU_MAX
    assert "0.000 to 0.000" not in c.sentence and "includes 0.5" in c.sentence
    assert "as in the paper" not in c.sentence and "find mostly different" not in c.sentence
    assert "On these concepts the mean IoU is below 0.5" in c.sentence
    # enough concepts, all with IoU 0: the interval closes below 0.5
    c = cd.iou_claim("scvi", "scVI", _metrics([1] * 8, [1] * 8, iou=[0.0] * 8), SCVI)
    _check(c, "agrees", 8)
    assert c.interval[1] < cd.IOU_MAX


def test_bounded_mean_interval():
    m, ci, n = cd.bounded_mean_interval([0.0, 0.0, 0.0, np.nan])
    assert (m, n) == (0.0, 3) and ci[0] == 0.0
    assert ci[1] == pytest.approx(math.sqrt(math.log(40) / 6))
    m, ci, n = cd.bounded_mean_interval([0.5] * 100)
    assert ci == pytest.approx((0.5 - math.sqrt(math.log(40) / 200),
                                0.5 + math.sqrt(math.log(40) / 200)))
    assert cd.bounded_mean_interval([])[1] is None
    # the range clips it
    assert cd.bounded_mean_interval([1.0, 1.0])[1][1] == 1.0


def test_zero_spread_gives_no_t_interval():
    """Equal per-concept differences: no t interval, so the claim cannot agree on them."""
    m, ci, n = cd.mean_interval([0.2, 0.2, 0.2])
    assert (m, ci, n) == (pytest.approx(0.2), None, 3)
    c = cd.maxfc_claim("scvi", "scVI", _metrics([1] * 3, [1] * 3, maxfc=[(1.0, 3.0)] * 3), SCVI)
    _check(c, "inconclusive", 3)
    assert "all equal" in c.sentence and c.interval is None


def test_paired_difference_interval():
    lo, hi = cd.paired_difference_interval(3, 0, 3)       # 3 of 3 one way: still wide
    assert lo < 0 < hi
    lo, hi = cd.paired_difference_interval(0, 0, 10)      # all concordant: centred on 0
    assert lo == pytest.approx(-hi) and hi > 0
    lo, hi = cd.paired_difference_interval(80, 0, 100)
    assert 0.6 < lo < 0.8 < hi <= 1.0


def test_chapter_claims_page_values_and_table6():
    res = {"curves": _curves([0.5, 0.6, 0.55], [0.9, 0.95, 0.92], zero=0.4),
           "metrics": _metrics([1, 1, 1, 0], [1, 1, 1, 1])}
    claims = cd.chapter_claims("scvi", "scVI", res, PAPER_FIG8["scvi"], SCVI)
    assert set(claims) == {"del", "del_heldout", "enriched", "maxfc", "maxatt", "iou"}
    assert {k: c.key for k, c in claims.items()}["iou"] == "ch10_scvi_iou"
    v = cd.page_values("scvi", res)
    assert v["ch10_scvi_del_attribution"] == pytest.approx(0.55)
    assert v["ch10_scvi_del_zero"] == pytest.approx(0.4)
    assert (v["ch10_scvi_n_concepts"], v["ch10_scvi_n_att"], v["ch10_scvi_n_dgea"],
            v["ch10_scvi_n_both"]) == (4, 3, 4, 3)
    assert v["ch10_scvi_iou_pathways"] == pytest.approx(0.1)
    # a model without DGEA in the profile (or without paper values): inconclusive, NaN / 0
    none = cd.chapter_claims("pca", "PCA", None, None, None)
    assert all(c.verdict == "inconclusive" and c.n == 0 for c in none.values())
    v = cd.page_values("pca", None)
    assert v["ch10_pca_n_both"] == 0 and math.isnan(v["ch10_pca_iou_genes"])
    t6 = cd.table6(res["metrics"])
    assert t6.loc["Number of concepts enriched"].tolist() == ["3", "4"]
    assert t6.loc["Max absolute log2 fold change", "DGEA-based"] == "3.000 (0.000)"
    assert paper_table6("scvi").loc["Number of concepts enriched"].tolist() == ["72", "89"]
    assert paper_table6("pca") is None


def test_mean_interval():
    m, ci, n = cd.mean_interval([1.0, 2.0, 3.0, np.nan])
    assert (m, n) == (2.0, 3) and ci[0] < 2 < ci[1]
    assert cd.mean_interval([np.nan])[2] == 0 and cd.mean_interval([1.0])[1] is None


# ------------------------------------------------------------------ chapter 11
def test_auroc_interval():
    lo, hi = cp.auroc_interval(0.8, 500, 500)
    assert lo < 0.8 < hi and hi - lo < 0.1
    assert cp.auroc_interval(1.0, 10, 10) == (1.0, 1.0)
    assert cp.auroc_interval(0.8, 5, 5)[1] - cp.auroc_interval(0.8, 5, 5)[0] > hi - lo


def _ranked(aurocs):
    return pd.DataFrame({"auroc": aurocs, "freq_pos": [0.9] * len(aurocs),
                         "freq_neg": [0.1] * len(aurocs)},
                        index=pd.Index(range(4, 4 + len(aurocs)), name="concept"))


def test_separation_claim_outcomes():
    shift = pd.Series([0.5, 0.1, 0.0], index=[5, 1, 4])
    c = cp.separation_claim("scvi", "scVI", _ranked([0.99, 0.8]), shift, 2, 500, 500)
    _check(c, "agrees", 1000, ".2f")
    assert c.key == "ch11_scvi_best_auroc" and c.value == 0.99 and c.interval[0] > 0.9
    assert "of 2 ranked concepts, the best, C4" in c.sentence and "1 of the top 2" in c.sentence
    c = cp.separation_claim("scvi", "scVI", _ranked([0.7, 0.6]), shift, 2, 500, 500)
    _check(c, "disagrees", 1000, ".2f")
    assert "part of the stimulated cells" in c.sentence
    c = cp.separation_claim("scvi", "scVI", _ranked([0.52]), shift, 2, 200, 200)
    _check(c, "disagrees", 400, ".2f")
    assert "chance" in c.sentence
    c = cp.separation_claim("scvi", "scVI", _ranked([0.9, 0.6]), shift, 2, 20, 20)
    _check(c, "inconclusive", 40, ".2f")
    c = cp.separation_claim("scvi", "scVI", _ranked([]), shift, 2, 20, 20)
    assert c.verdict == "inconclusive" and c.n == 0 and "no concept" in c.sentence


def _evidence(isg, ifn, best=None, top_genes=("ISG15", "IFI6", "MX1")):
    both = [i > 0 and f for i, f in zip(isg, ifn)]
    return {"units": list(range(len(isg))), "isg": isg, "ifn": ifn, "both": both,
            "n_concepts": len(isg), "with_isg": sum(i > 0 for i in isg),
            "ifn_best": sum(best or [0]), "ifn_any": sum(ifn), "with_both": sum(both),
            "annotated": len(isg), "n_markers": 9, "n_genes": 20, "top_genes": list(top_genes)}


def test_interferon_claim_outcomes():
    c = cp.interferon_claim("scvi", "scVI", _evidence([3] * 9 + [0], [True] * 9 + [False]))
    _check(c, "agrees", 10, ".0%")
    assert c.key == "ch11_scvi" and c.value == 0.9 and "9 of the 10" in c.sentence
    assert "ISG15, IFI6, MX1" in c.sentence and "top-20" in c.sentence
    c = cp.interferon_claim("scvi", "scVI", _evidence([0] * 10, [False] * 10))
    _check(c, "disagrees", 10, ".0%")
    assert c.value == 0 and c.interval[1] < 0.5
    # 2 of 3: the exact interval (9 % to 99 %) holds 50 %
    c = cp.interferon_claim("scvi", "scVI", _evidence([3, 2, 0], [True, True, False]))
    _check(c, "inconclusive", 3, ".0%")
    assert "2 of 3, 95 % interval" in c.sentence
    # the scGPT case of the default profile: two concepts, best concept's genes not ISGs
    c = cp.interferon_claim("scgpt", "scGPT", _evidence([1, 0], [True, True],
                                                        top_genes=("GZMB", "LTB", "GNLY")))
    _check(c, "inconclusive", 2, ".0%")
    assert "n = 2 concepts, fewer than 3" in c.sentence and "is found" not in c.sentence
    c = cp.interferon_claim("pca", "PCA", _evidence([], []))
    assert c.verdict == "inconclusive" and c.n == 0


def test_glue_keys_are_the_page_keys():
    """Claim.glue writes the `_agree` keys the reproduction page reads."""
    out = {}
    res = {"curves": _curves([0.5, 0.6, 0.55], [0.9, 0.95, 0.92]),
           "metrics": _metrics([1, 1, 1], [1, 1, 1])}
    for c in cd.chapter_claims("scvi", "scVI", res, "x", SCVI).values():
        c.glue(lambda k, v, display=False: out.__setitem__(k, v))
    cp.interferon_claim("scvi", "scVI", _evidence([1, 1, 1], [True] * 3)).glue(
        lambda k, v, display=False: out.__setitem__(k, v))
    for key in ("ch10_scvi_del_agree", "ch10_scvi_enriched_agree", "ch10_scvi_iou_agree",
                "ch11_scvi_agree"):
        assert out[key] in ("agrees", "disagrees", "inconclusive")


def test_deletion_claim_on_held_out_pairs():
    cur = _curves([0.5, 0.6, 0.55], [0.9, 0.95, 0.92])
    held = cur[cur["curve"].isin(["attribution", "DGEA"])].assign(
        curve=lambda d: d["curve"] + ", held-out pairs")
    c = cd.deletion_claim("scvi", "scVI", pd.concat([cur, held]), "x", held_out=True)
    assert (c.key, c.verdict, c.n) == ("ch10_scvi_del_heldout", "agrees", 3)
    assert "held-out pairs" in c.sentence and "never saw" in c.test
    none = cd.deletion_claim("scvi", "scVI", cur, "x", held_out=True)
    assert none.verdict == "inconclusive" and none.n == 0
