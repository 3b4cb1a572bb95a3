"""Claims of chapter 10: attribution vs differential expression (App C, Fig 8, Table 6).

Every function takes what :func:`scconcepts.dgea.compare_with_dgea` measured for one model (its
``curves`` or ``metrics`` table) and the paper's value from :mod:`scconcepts.reference.dgea`
(None for a model the paper does not study: the claim is then inconclusive), and returns a
:class:`~scconcepts.claims.Claim` whose key is the glue prefix the reproduction page reads
(``ch10_<model>_del``, ``_enriched``, ``_maxfc``, ``_maxatt``, ``_iou``). A claim over fewer than
:data:`MIN_CONCEPTS` concepts, or whose 95 % interval includes the threshold, is inconclusive.
The thresholds are the module constants below, written nowhere else.

Intervals: a Student-t interval for a mean of per-concept differences, none when the values do
not vary (a t interval of zero width on a few concepts is not evidence, and the claim is then
inconclusive); for the mean IoU, which lies in [0, 1], the distribution-free Hoeffding interval
(:func:`bounded_mean_interval`), which keeps its width when every concept has the same IoU;
for the difference of enriched shares, Bonett and Price's interval for paired proportions
(:func:`paired_difference_interval`), which keeps its width when every concept is alike.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import ABOVE, BELOW, Claim, decide, stats

__all__ = ["MIN_CONCEPTS", "IOU_MAX", "ALPHA", "mean_interval", "bounded_mean_interval",
           "paired_difference_interval",
           "page_values", "table6",
           "deletion_claim", "enriched_claim", "maxfc_claim", "maxatt_claim", "iou_claim",
           "chapter_claims"]

#: a claim over concepts needs at least this many concepts (deletion curves, GSEA comparisons)
MIN_CONCEPTS = 3
#: "the two methods find mostly different pathways": mean pathway IoU below this
IOU_MAX = 0.5
#: two-sided level of the intervals (95 %) and of the exact McNemar test
ALPHA = 0.05

_CURVES = ("unit", "curve", "step", "activation")
_METRICS = ("unit", "n_att", "n_dgea", "maxfc_att", "maxfc_dgea", "maxatt_att", "maxatt_dgea",
            "iou_pathways", "iou_genes")


def _conclusion(v: str, reason: str, paper: str = "the paper") -> str:
    """The end of a claim's sentence, after its finding (no final period)."""
    return {"agrees": f", as in {paper} (**agrees**)",
            "disagrees": f", unlike {paper} (**disagrees**)"}.get(
        v, f"; the comparison is **inconclusive** ({reason})")


def _units(n: int, what: str = "concept") -> str:
    return f"{n} {what}{'' if n == 1 else 's'}"


def _reason(n: int, paper, interval, threshold: float) -> str:
    if paper is None:
        return "the paper has no value for this model"
    if n < MIN_CONCEPTS:
        return f"n = {_units(n)}, fewer than {MIN_CONCEPTS}"
    return (f"the 95 % interval {interval[0]:.3f} to {interval[1]:.3f} includes "
            f"{threshold:g}") if interval is not None else (
        f"the {n} values are all equal, so a t interval has no width and is no evidence")


def mean_interval(values, level: float = 1 - ALPHA
                  ) -> tuple[float, tuple[float, float] | None, int]:
    """Mean of the finite ``values``, its Student-t interval and their number
    (:func:`scconcepts.claims.stats.t_interval`).

    The interval is None for fewer than 2 values and when the values do not vary: a t interval
    of zero width says nothing about the mean of the concepts not sampled.
    """
    m, ci, n = stats.t_interval(values, level)
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if ci is not None and np.ptp(x) <= 1e-12 * max(1.0, abs(m)):   # equal up to rounding
        ci = None
    return m, ci, n


def bounded_mean_interval(values, level: float = 1 - ALPHA, low: float = 0.0,
                          high: float = 1.0) -> tuple[float, tuple[float, float] | None, int]:
    """Mean of the finite ``values`` (each in [``low``, ``high``]), its Hoeffding (1963)
    interval and their number.

    The half-width (high − low) · √(ln(2 / α) / 2n) holds for any distribution on the bounded
    range, so it does not shrink to 0 when the values happen to be equal (for IoUs in [0, 1]
    at the 95 % level: ±0.78 for 3 concepts, ±0.48 for 8, ±0.14 for 100); clipped to the range.
    None when there is no value.
    """
    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, None, 0
    m = float(x.mean())
    h = (high - low) * math.sqrt(math.log(2 / (1 - level)) / (2 * len(x)))
    return m, (max(low, m - h), min(high, m + h)), len(x)


def _decide(ci, region, n: int, paper) -> str:
    return decide(ci, region, n=n, min_n=MIN_CONCEPTS, paper=paper is not None)[0]


def _curves(result) -> pd.DataFrame:
    return result["curves"] if result is not None else pd.DataFrame(columns=list(_CURVES))


def _metrics(result) -> pd.DataFrame:
    return result["metrics"] if result is not None else pd.DataFrame(columns=list(_METRICS))


def _areas(curves: pd.DataFrame) -> pd.DataFrame:
    """Area under each deletion curve (mean relative activation over steps), per concept."""
    per = curves.groupby(["curve", "unit"])["activation"].mean().unstack(0)
    for col in ("attribution", "DGEA"):
        if col not in per:
            per[col] = np.nan
    return per


def _both(metrics: pd.DataFrame) -> pd.DataFrame:
    """Concepts enriched by both methods (their Table 6 metrics are defined)."""
    return metrics.dropna(subset=["iou_pathways"]).apply(pd.to_numeric)


def page_values(model: str, result: dict | None) -> dict:
    """The measured values of chapter 10 that the reproduction page shows next to the verdicts:
    ``ch10_<model>_{del_attribution, del_dgea, del_zero}`` (mean areas under the deletion
    curves), ``_{n_concepts, n_att, n_dgea, n_both}`` (GSEA concepts: compared, enriched by
    attribution, by DGEA, by both) and ``_{iou_genes, iou_pathways}``; NaN / 0 without a
    result (a model without DGEA in the profile)."""
    per, mt = _areas(_curves(result)), _metrics(result)
    both = _both(mt)
    return {f"ch10_{model}_{k}": v for k, v in {
        "del_attribution": float(per["attribution"].mean()),
        "del_dgea": float(per["DGEA"].mean()),
        "del_zero": float(per["attribution, zero-masked"].mean())
        if "attribution, zero-masked" in per else math.nan,
        "n_concepts": int(len(mt)), "n_att": int((mt["n_att"] > 0).sum()),
        "n_dgea": int((mt["n_dgea"] > 0).sum()), "n_both": int(len(both)),
        "iou_genes": float(both["iou_genes"].mean()),
        "iou_pathways": float(both["iou_pathways"].mean())}.items()}


def table6(metrics: pd.DataFrame) -> pd.DataFrame:
    """Table 6 layout from per-concept :func:`scconcepts.dgea.gsea_comparison` metrics.

    Returns
    -------
    DataFrame
        Rows: max |log2FC|, max attribution, concepts enriched, IoU genes, IoU pathways;
        columns ``attribution-based``, ``DGEA-based``, as "mean (std)" over the concepts
        enriched by both methods, like the paper (:func:`scconcepts.reference.dgea.paper_table6`).
    """
    both = _both(metrics)

    def ms(col):
        v = both[col]
        return f"{v.mean():.3f} ({v.std(ddof=0):.3f})" if len(v) else "—"

    rows = {
        "Max absolute log2 fold change": (ms("maxfc_att"), ms("maxfc_dgea")),
        "Max attribution": (ms("maxatt_att"), ms("maxatt_dgea")),
        "Number of concepts enriched": (str(int((metrics["n_att"] > 0).sum())),
                                        str(int((metrics["n_dgea"] > 0).sum()))),
        "IoU genes": (ms("iou_genes"), ""),
        "IoU biological processes": (ms("iou_pathways"), ""),
    }
    return pd.DataFrame.from_dict(rows, orient="index",
                                  columns=["attribution-based", "DGEA-based"])


def deletion_claim(model: str, label: str, curves: pd.DataFrame, paper: str | None,
                   held_out: bool = False) -> Claim:
    """Fig 8: deleting a concept's genes in attribution order lowers its activation faster than
    in DGEA order.

    Value: mean over concepts of (area under the attribution curve − area under the DGEA curve)
    (areas = mean relative activation over the deletion steps), with its 95 % t interval; agrees
    when the interval is below 0, disagrees when above, inconclusive when it includes 0, for
    fewer than :data:`MIN_CONCEPTS` concepts, or without a paper value (``paper``:
    :data:`scconcepts.reference.dgea.PAPER_FIG8` entry). Zero-masking and the random order are
    reported, not tested. ``held_out``: the same test on the pairs the attribution order was not
    estimated from (curves ``attribution, held-out pairs`` and ``DGEA, held-out pairs``; key
    ``ch10_<model>_del_heldout``).
    """
    per = _areas(curves)
    if held_out:
        for col in ("attribution, held-out pairs", "DGEA, held-out pairs"):
            if col not in per:
                per[col] = np.nan
        per = per.assign(attribution=per["attribution, held-out pairs"],
                         DGEA=per["DGEA, held-out pairs"]).drop(
            columns=["attribution, zero-masked", "random"], errors="ignore")
    diff, ci, n = mean_interval(per["attribution"] - per["DGEA"])
    v = _decide(ci, (BELOW, 0.0), n, paper)
    key = f"ch10_{model}_del" + ("_heldout" if held_out else "")
    test = (f"mean paired difference of deletion-curve areas (attribution − DGEA) < 0, 95 % t "
            f"interval, n ≥ {MIN_CONCEPTS} concepts" + (", pairs the attribution never saw"
                                                        if held_out else ""))
    if n == 0:
        return Claim(key, math.nan, 0, test, "inconclusive",
                     f"**{label}**: no concept has deletion curves (**inconclusive**).",
                     paper=paper)
    a, g = per["attribution"], per["DGEA"]
    s = (f"**{label}{', held-out pairs' if held_out else ''}** (n = {_units(n)}): the mean "
         "area under the "
         f"deletion curve is {a.mean():.3f} in attribution order and {g.mean():.3f} in DGEA "
         f"order, a difference of {diff:.3f}"
         + (f" (95 % interval {ci[0]:.3f} to {ci[1]:.3f})" if ci is not None else "")
         + f"; the attribution curve is the lower one for {(a < g).mean():.0%} of the concepts. "
         + "Attribution genes lower the activation "
         + ("faster" if diff < 0 else "no faster")
         + _conclusion(v, _reason(n, paper, ci, 0.0), "the paper's Fig 8") + ".")
    if "attribution, zero-masked" in per:
        z = per["attribution, zero-masked"].mean()
        s += (f" Zero-masking the same genes gives {z:.3f}, "
              + ("more" if z < a.mean() else "less") + " activation removed than by the "
              "counterfactual's values.")
    if "random" in per:
        s += f" A random gene order gives {per['random'].mean():.3f} (null)."
    return Claim(key, diff, n, test, v, s, ci, paper, region=(BELOW, 0.0), unit="concepts",
                 fmt="+.3f")


def paired_difference_interval(only_1: int, only_2: int, n: int, level: float = 1 - ALPHA
                               ) -> tuple[float, float]:
    """Bonett & Price (2012) adjusted Wald interval of a difference of two paired proportions,
    p₁ − p₂, from ``only_1`` units positive under the first method only, ``only_2`` under the
    second only, out of ``n``; clipped to [−1, 1].

    Each discordant count gets 1 added (and n gets 2), so the interval keeps a width when every
    unit falls on the same side (a percentile bootstrap would give 0 to 0 on, e.g., 3 of 3
    concepts enriched by one method only).
    """
    from scipy.stats import norm

    a, b = (only_1 + 1) / (n + 2), (only_2 + 1) / (n + 2)
    h = norm.ppf(0.5 + level / 2) * math.sqrt(max(a + b - (a - b) ** 2, 0.0) / (n + 2))
    return max(-1.0, a - b - h), min(1.0, a - b + h)


def enriched_claim(model: str, label: str, metrics: pd.DataFrame,
                   paper: dict | None) -> Claim:
    """Table 6: DGEA-based GSEA enriches more concepts than attribution-based GSEA.

    Value: the share of the n compared concepts enriched by DGEA-GSEA minus the share enriched
    by attribution-GSEA (at least one pathway with NES > 0 and p ≤ 0.005), with the
    Bonett–Price 95 % interval for paired proportions (:func:`paired_difference_interval`);
    region (0, ∞). The exact
    McNemar p on the concepts enriched by one method only is reported beside it. Inconclusive
    when the interval holds 0, for fewer than :data:`MIN_CONCEPTS` concepts, or without a paper
    value (``paper``: :data:`scconcepts.reference.dgea.PAPER_TABLE6` entry).
    """
    from scipy.stats import binomtest

    n = int(len(metrics))
    att, dg = metrics["n_att"].to_numpy(float) > 0, metrics["n_dgea"].to_numpy(float) > 0
    only_a, only_d = int((att & ~dg).sum()), int((dg & ~att).sum())
    p = binomtest(only_d, only_a + only_d, 0.5).pvalue if only_a + only_d else 1.0
    test = ("share enriched by DGEA-GSEA − by attribution-GSEA > 0 (Bonett–Price 95 % "
            f"interval for paired proportions), n ≥ {MIN_CONCEPTS}")
    if n == 0:
        return Claim(f"ch10_{model}_enriched", math.nan, 0, test,
                     "inconclusive", f"**{label}**: no concept was compared by GSEA "
                     "(**inconclusive**).", paper=paper and (paper["n_dgea"], paper["n_att"]))
    diff = float(dg.mean() - att.mean())
    ci = paired_difference_interval(only_d, only_a, n)
    v = _decide(ci, (0.0, ABOVE), n, paper)
    ref = (f"paper: {paper['n_dgea']} vs {paper['n_att']} of 100" if paper is not None
           else "no paper value")
    reason = _reason(n, paper, ci, 0.0)
    s = (f"**{label}** (n = {_units(n)}): DGEA-GSEA enriches {int(dg.sum())} of them and "
         f"attribution-GSEA {int(att.sum())} ({ref}), {int((att & dg).sum())} both; a "
         f"difference of {diff:+.0%} (95 % interval {ci[0]:+.0%} to {ci[1]:+.0%}; exact McNemar "
         f"p = {p:.2g} on {only_a + only_d} discordant concepts). DGEA-GSEA enriches "
         + ("more" if diff > 0 else "no more") + " concepts" + _conclusion(v, reason) + ".")
    return Claim(f"ch10_{model}_enriched", diff, n, test, v, s, ci,
                 paper and (paper["n_dgea"], paper["n_att"]), region=(0.0, ABOVE),
                 unit="concepts", fmt="+.0%")


def _paired(model, label, metrics, paper, name, larger, smaller, what, unit_fmt):
    both = _both(metrics)
    diff, ci, n = mean_interval(both[larger] - both[smaller]) if len(both) else (math.nan, None, 0)
    v = _decide(ci, (0.0, ABOVE), n, paper)
    lw, sw = ("DGEA", "attribution") if larger.endswith("dgea") else ("attribution", "DGEA")
    test = (f"{lw} pathways hold genes with larger {what}: mean paired difference > 0, 95 % t "
            f"interval, n ≥ {MIN_CONCEPTS} concepts enriched by both")
    key = f"ch10_{model}_{name}"
    if n == 0:
        return Claim(key, math.nan, 0, test, "inconclusive",
                     f"**{label}**: no concept is enriched by both methods, so the max {what} "
                     "of their pathways cannot be compared (**inconclusive**).", paper=paper)
    ref = (f"paper: {paper[larger][0]:{unit_fmt}} vs {paper[smaller][0]:{unit_fmt}}"
           if paper is not None else "no paper value")
    s = (f"**{label}** (n = {_units(n)} enriched by both): the {lw}-enriched pathways hold "
         f"genes with max {what} {both[larger].mean():{unit_fmt}} vs "
         f"{both[smaller].mean():{unit_fmt}} for the {sw}-enriched ones ({ref}), a difference "
         f"of {diff:.3f}"
         + (f" (95 % interval {ci[0]:.3f} to {ci[1]:.3f})" if ci is not None else "")
         + f". The {lw} pathways' genes have " + ("larger" if diff > 0 else "no larger")
         + f" {what}" + _conclusion(v, _reason(n, paper, ci, 0.0)) + ".")
    return Claim(key, diff, n, test, v, s, ci,
                 paper and (paper[larger][0], paper[smaller][0]), region=(0.0, ABOVE),
                 unit="concepts enriched by both", fmt="+.3f")


def maxfc_claim(model: str, label: str, metrics: pd.DataFrame, paper: dict | None) -> Claim:
    """Table 6: the DGEA-enriched pathways hold genes with larger |log2FC| than the
    attribution-enriched ones (max over the leading-edge genes, per concept enriched by both).
    Value: mean paired difference (DGEA − attribution), 95 % t interval; inconclusive when it
    includes 0, for fewer than :data:`MIN_CONCEPTS` concepts, or without a paper value."""
    return _paired(model, label, metrics, paper, "maxfc", "maxfc_dgea", "maxfc_att",
                   "|log2FC|", ".2f")


def maxatt_claim(model: str, label: str, metrics: pd.DataFrame, paper: dict | None) -> Claim:
    """Table 6: the attribution-enriched pathways hold genes with larger attribution than the
    DGEA-enriched ones. Value: mean paired difference (attribution − DGEA); as
    :func:`maxfc_claim`."""
    return _paired(model, label, metrics, paper, "maxatt", "maxatt_att", "maxatt_dgea",
                   "attribution", ".3f")


def iou_claim(model: str, label: str, metrics: pd.DataFrame, paper: dict | None) -> Claim:
    """Table 6: the two methods find mostly different pathways (mean pathway IoU <
    :data:`IOU_MAX`) over the concepts enriched by both.

    Value: mean pathway IoU with its 95 % Hoeffding interval (:func:`bounded_mean_interval`:
    IoUs lie in [0, 1]; a t interval would have zero width when the few concepts all have IoU
    0); agrees when the interval is below IOU_MAX, disagrees when above, inconclusive when it
    includes IOU_MAX, for fewer than :data:`MIN_CONCEPTS` concepts, or without a paper value.
    The sentence quotes the paper's IoUs of the same model (``paper``: its
    :data:`scconcepts.reference.dgea.PAPER_TABLE6` entry).
    """
    both = _both(metrics)
    m, ci, n = bounded_mean_interval(both["iou_pathways"]) if len(both) else (math.nan, None, 0)
    v = _decide(ci, (BELOW, IOU_MAX), n, paper)
    test = (f"mean pathway IoU < {IOU_MAX:g}, 95 % Hoeffding interval (IoU in [0, 1]), "
            f"n ≥ {MIN_CONCEPTS} concepts enriched by both")
    key = f"ch10_{model}_iou"
    if n == 0:
        return Claim(key, math.nan, 0, test, "inconclusive",
                     f"**{label}**: no concept is enriched by both methods, so their overlap "
                     "cannot be measured (**inconclusive**).", paper=paper)
    ref = (f"paper, {label}: {paper['iou_pathways'][0]:.3f} and {paper['iou_genes'][0]:.3f}"
           if paper is not None else f"the paper has no value for {label}")
    s = (f"**{label}** (n = {_units(n)} enriched by both): the pathway IoU is {m:.3f}"
         + (f" (95 % Hoeffding interval {ci[0]:.3f} to {ci[1]:.3f}, distribution-free for "
            "values in [0, 1])" if ci is not None else "")
         + f" and the gene IoU {both['iou_genes'].mean():.3f} ({ref}). "
         + (f"On these concepts the mean IoU is {'below' if m < IOU_MAX else 'not below'} "
            f"{IOU_MAX:g}" if v == "inconclusive" else "The two methods find "
            + ("mostly different" if m < IOU_MAX else "largely the same") + " pathways")
         + _conclusion(v, _reason(n, paper, ci, IOU_MAX)) + ".")
    return Claim(key, m, n, test, v, s, ci,
                 paper and (paper["iou_pathways"][0], paper["iou_genes"][0]),
                 region=(BELOW, IOU_MAX), unit="concepts enriched by both", fmt=".3f")


def chapter_claims(model: str, label: str, result: dict | None, fig8: str | None,
                   table6_paper: dict | None) -> dict[str, Claim]:
    """Every chapter-10 claim of one model: ``del``, ``del_heldout``, ``enriched``, ``maxfc``,
    ``maxatt``, ``iou`` (inconclusive, n = 0, without a result: a model without DGEA in the profile).

    ``fig8`` / ``table6_paper``: the model's :data:`~scconcepts.reference.dgea.PAPER_FIG8` and
    :data:`~scconcepts.reference.dgea.PAPER_TABLE6` entries (None when the paper has none).
    """
    mt = _metrics(result)
    return {"del": deletion_claim(model, label, _curves(result), fig8),
            "del_heldout": deletion_claim(model, label, _curves(result), fig8, held_out=True),
            "enriched": enriched_claim(model, label, mt, table6_paper),
            "maxfc": maxfc_claim(model, label, mt, table6_paper),
            "maxatt": maxatt_claim(model, label, mt, table6_paper),
            "iou": iou_claim(model, label, mt, table6_paper)}
