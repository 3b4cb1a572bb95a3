"""Claims of chapter 11: do concepts learned on control cells find the IFN-β response?

Not a claim of the paper: the issue's expectation. The functions take what the chapter measured
(:func:`scconcepts.perturbation.separating_concepts`, :func:`~scconcepts.perturbation.
frequency_shift`, :func:`~scconcepts.perturbation.interferon_evidence`) and return a
:class:`~scconcepts.claims.Claim` whose key is the glue prefix the reproduction page reads
(``ch11_<model>`` for the interferon verdict, ``ch11_<model>_best_auroc`` for the separation).
The thresholds are the module constants below, written nowhere else.
"""

from __future__ import annotations

import math

import pandas as pd

from . import ABOVE, Claim, decide, stats

__all__ = ["MIN_CONCEPTS", "MAJORITY", "AUROC_ALONE", "auroc_interval", "separation_claim",
           "interferon_claim"]

#: the interferon claim needs at least this many explained concepts
MIN_CONCEPTS = 3
#: "found": at least this share of the explained concepts carry ISGs *and* an interferon/virus
#: GO term (the best-separating concepts should mostly be the response, not one by chance)
MAJORITY = 0.5
#: "one concept alone separates the conditions": the best concept's AUROC at least this
AUROC_ALONE = 0.9


def auroc_interval(auroc: float, n_pos: int, n_neg: int, z: float = 1.96
                   ) -> tuple[float, float]:
    """Hanley & McNeil (1982) normal interval (95 % by default) of an AUROC from ``n_pos``
    positive and ``n_neg`` negative cells, clipped to [0, 1]."""
    a = float(auroc)
    q1, q2 = a / (2 - a), 2 * a * a / (1 + a)
    var = (a * (1 - a) + (n_pos - 1) * (q1 - a * a) + (n_neg - 1) * (q2 - a * a)) / (n_pos * n_neg)
    h = z * math.sqrt(max(var, 0.0))
    return max(0.0, a - h), min(1.0, a + h)


def separation_claim(model: str, label: str, ranked: pd.DataFrame, shift: pd.Series,
                     n_top: int, n_pos: int, n_neg: int) -> Claim:
    """One concept alone separates stimulated from control cells (best AUROC ≥
    :data:`AUROC_ALONE`).

    Value: the best concept's AUROC with its Hanley–McNeil 95 % interval (over ``n_pos`` +
    ``n_neg`` cells; the best of many concepts, so the interval is optimistic); agrees when the
    interval is above AUROC_ALONE, disagrees when below, inconclusive when it includes it or no
    concept is ranked. The sentence adds the top ``n_top`` concepts' AUROC range and how many
    are among the top ``n_top`` of the label-free ``shift`` ranking.
    """
    key = f"ch11_{model}_best_auroc"
    test = (f"best concept's AUROC ≥ {AUROC_ALONE:g} (Hanley–McNeil 95 % interval above it)")
    top = ranked.head(n_top)
    if top.empty:
        return Claim(key, math.nan, 0, test, "inconclusive",
                     f"**{label}**: no concept is active in enough perturbation cells to be "
                     "ranked (**inconclusive**).")
    best = top.iloc[0]
    a = float(best["auroc"])
    ci = auroc_interval(a, n_pos, n_neg)
    v, _ = decide(ci, (AUROC_ALONE, ABOVE))
    overlap = len(set(shift.head(n_top).index) & set(top.index))
    s = (f"**{label}** (n = {n_pos} stimulated and {n_neg} control cells): of {len(ranked)} "
         f"ranked concepts, the best, C{top.index[0]}, has AUROC {a:.2f} (95 % interval {ci[0]:.2f} to {ci[1]:.2f}) and "
         f"activates in {best['freq_pos']:.0%} of stimulated vs {best['freq_neg']:.0%} of "
         f"control cells; the top {len(top)} have AUROC {top['auroc'].min():.2f}–"
         f"{top['auroc'].max():.2f}. "
         + {"agrees": f"One concept alone separates the conditions well: its AUROC is above "
                      f"{AUROC_ALONE:g} (**agrees**).",
            "disagrees": f"No single concept separates them well: the best AUROC is below "
                         f"{AUROC_ALONE:g} (**disagrees**); "
                         + ("each of these concepts marks only part of the stimulated cells "
                            "(e.g. one cell population's response)." if ci[0] > 0.5 else
                            "the best one is not distinguishable from chance (0.5)."),
            "inconclusive": f"Whether one concept alone separates them (AUROC ≥ "
                            f"{AUROC_ALONE:g}) is **inconclusive** (the interval includes it)."
            }[v]
         + f" {overlap} of the top {len(top)} are also among the top {len(top)} of the "
         "label-free ranking (largest rise in activation frequency from the main dataset to the "
         "perturbation dataset).")
    return Claim(key, a, n_pos + n_neg, test, v, s, ci, region=(AUROC_ALONE, ABOVE),
                 unit="stimulated + control cells", fmt=".2f")


def interferon_claim(model: str, label: str, evidence: dict) -> Claim:
    """Concepts learned on control cells find the interferon response without labels.

    Value: the share of the n explained (best-separating) concepts that carry, in the *same*
    concept, an interferon-stimulated gene among their top attribution genes and an
    interferon/virus GO term among their top terms (``evidence``:
    :func:`scconcepts.perturbation.interferon_evidence`), with its exact (Clopper–Pearson) 95 %
    interval; region (:data:`MAJORITY`, ∞): agrees when the interval lies above MAJORITY,
    disagrees when below, inconclusive when it holds MAJORITY or n < :data:`MIN_CONCEPTS`.
    """
    ev = evidence
    n, k = int(ev["n_concepts"]), int(ev["with_both"])
    key = f"ch11_{model}"
    test = (f"≥ {MAJORITY:.0%} of n ≥ {MIN_CONCEPTS} best-separating concepts carry ISGs and an "
            "interferon/virus GO term (same concept)")
    if n == 0:
        return Claim(key, math.nan, 0, test, "inconclusive",
                     f"**{label}**: no concept was explained (**inconclusive**).")
    ci = stats.exact(k, n)
    v, _ = decide(ci, (MAJORITY, ABOVE), n=n, min_n=MIN_CONCEPTS)
    reason = (f"n = {n} concept{'s' if n != 1 else ''}, fewer than {MIN_CONCEPTS}"
              if n < MIN_CONCEPTS else f"{k} of {n}, 95 % interval {ci[0]:.0%} to {ci[1]:.0%}, "
              f"holds {MAJORITY:.0%}")
    s = (f"**{label}** (n = {n} best-separating concept{'s' if n != 1 else ''}): {k} of the {n} "
         f"({k / n:.0%}, 95 % interval {ci[0]:.0%} to {ci[1]:.0%}) carry both an interferon-stimulated gene among their top-{ev['n_genes']} attribution "
         "genes and an "
         f"interferon/virus GO term among their top 5. ISGs are among the top genes of "
         f"{ev['with_isg']} (up to {max(ev['isg'])} of the {ev['n_markers']} ISGs the model "
         f"sees); an interferon/virus term is the best pathway of {ev['ifn_best']} and among "
         f"the top 5 of {ev['ifn_any']}; {ev['annotated']} are at least weakly annotated "
         "(p ≤ 0.005). The "
         f"top-3 genes of the best concept are {', '.join(ev['top_genes'])}. "
         + {"agrees": "**An interferon signal is found without labels**, as expected "
                      "(**agrees**).",
            "disagrees": f"**Fewer than {MAJORITY:.0%}** of these concepts carry the "
                         "interferon signature, against the expectation (**disagrees**).",
            "inconclusive": f"Whether they find the interferon response is **inconclusive** "
                            f"({reason})."}[v])
    return Claim(key, k / n, n, test, v, s, ci, region=(MAJORITY, ABOVE),
                 unit="best-separating concepts", fmt=".0%")
