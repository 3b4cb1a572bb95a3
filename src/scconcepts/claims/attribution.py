"""Claims of chapter 04: how many genes drive a concept (Fig 2C), concepts vs neurons, and
canonical markers among the top attribution genes of cell-type-specific concepts.

Every function takes what the chapter measured (per-unit gene-set sizes from
:meth:`scconcepts.attribution.AttributionResult.gene_set_sizes`, the marker report of
:func:`scconcepts.attribution.marker_report`) and the paper's statement from
:mod:`scconcepts.reference.interpretability` (None for a model the paper does not study: the
claim is then inconclusive), and returns a :class:`~scconcepts.claims.Claim` whose key is the
glue prefix the reproduction page reads (``ch04_<model>_...``). Thresholds are the module
constants below, written nowhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.stats import fisher_exact

from . import ABOVE, Claim, decide, stats, verdict
from . import conclusion as _conclusion

__all__ = ["MOST", "MIN_UNITS", "ALPHA", "share_interval", "share_above", "neurons_vs_concepts",
           "sizes_most", "canonical_markers", "count_above", "perturbation_space",
           "planted_recovery"]

#: "most concepts" (Fig 2C) read as more than this share
MOST = 0.5
#: a share or a comparison needs at least this many units to be decided
MIN_UNITS = 3
#: level of the exact tests (Fisher) and 1 − confidence of the intervals
ALPHA = 0.05

def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.0%}"


def share_interval(k: int, n: int, level: float = 1 - ALPHA) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of the share ``k / n`` (1 − :data:`ALPHA` by default);
    (nan, nan) when n = 0."""
    return stats.exact(k, n, level)


def count_above(sizes, min_genes: int) -> tuple[int, int]:
    """(units with more than ``min_genes`` genes above the threshold, units): NaN sizes (units
    that never activate) are left out."""
    s = np.asarray(sizes, dtype=float)
    s = s[np.isfinite(s)]
    return int((s > min_genes).sum()), int(s.size)


def _most(k: int, n: int, level: float = 1 - ALPHA) -> tuple[str, tuple[float, float]]:
    """'holds' / 'fails' / 'undecided' for "most of n units" with its interval."""
    lo, hi = share_interval(k, n, level)
    v, _ = decide((lo, hi), (MOST, ABOVE), n=n, min_n=MIN_UNITS)
    return {"agrees": "holds", "disagrees": "fails"}.get(v, "undecided"), (lo, hi)


def share_above(model: str, label: str, sizes, threshold: float, min_genes: int,
                paper: str | None = None) -> Claim:
    """Fig 2C: most concepts of the default SAE (more than :data:`MOST`) have more than
    ``min_genes`` genes with attribution above ``threshold``.

    ``sizes``: genes above the threshold per attributed concept (NaN = never active). Value: the
    share; n: concepts; interval: exact 95 % interval. Agrees when the interval lies above
    :data:`MOST`, disagrees when it lies below; inconclusive with fewer than :data:`MIN_UNITS`
    concepts, an interval containing :data:`MOST`, or no paper statement for the model."""
    k, n = count_above(sizes, min_genes)
    share = k / n if n else float("nan")
    state, (lo, hi) = _most(k, n)
    v = "inconclusive" if paper is None else {"holds": "agrees", "fails": "disagrees"}.get(
        state, "inconclusive")
    reason = ("no paper result for this model" if paper is None else
              f"only {n} concept{'s' * (n != 1)}" if n < MIN_UNITS else
              f"the interval contains {MOST:.0%}")
    ci = f" (95 % interval {_pct(lo)}–{_pct(hi)})" if n else ""
    sentence = (f"**{label}.** {_pct(share)} of the {n} attributed concepts of the default SAE"
                f"{ci} have more than {min_genes} genes with attribution > {threshold}; the paper "
                f"finds that most concepts do (Fig 2C): {_conclusion(v, reason)}.")
    return Claim(key=f"ch04_{model}_share3", value=float(share), n=n,
                 test=f"exact 95 % interval of the share above {MOST:.0%}", verdict=v,
                 sentence=sentence, interval=(lo, hi) if n else None, paper=paper,
                 region=(MOST, ABOVE), unit="attributed concepts", fmt=".0%")


def neurons_vs_concepts(model: str, label: str, concept_sizes, neuron_sizes, threshold: float,
                        min_genes: int) -> Claim:
    """Neurons vs concepts: the share of neurons with more than ``min_genes`` genes above
    ``threshold``, compared with the concepts' by Fisher's exact test (two-sided).

    The paper reports no such count for neurons, so the verdict is always inconclusive; the
    sentence states the comparison. Value: the neurons' share; n: neurons; interval: exact."""
    kc, nc = count_above(concept_sizes, min_genes)
    kn, nn = count_above(neuron_sizes, min_genes)
    share = kn / nn if nn else float("nan")
    lo, hi = share_interval(kn, nn)
    if min(nc, nn) < MIN_UNITS:
        cmp = f"too few units to compare ({nc} concepts, {nn} neurons)"
    else:
        p = float(fisher_exact([[kc, nc - kc], [kn, nn - kn]]).pvalue)
        sc = kc / nc
        cmp = (f"Fisher's exact test p = {p:.2g}: " + (
            "within chance" if p >= ALPHA else
            "concepts rely on fewer genes than neurons" if sc < share else
            "concepts rely on more genes than neurons"))
    sentence = (f"**{label} neurons.** {_pct(share)} of the {nn} neurons (95 % interval "
                f"{_pct(lo)}–{_pct(hi)}) have more than {min_genes} genes with attribution > "
                f"{threshold}, against {_pct(kc / nc if nc else float('nan'))} of the {nc} "
                f"concepts ({cmp}). The paper reports no such count for neurons: "
                f"{_conclusion('inconclusive', 'nothing to compare with')}.")
    return Claim(key=f"ch04_{model}_neurons_share3", value=float(share), n=nn,
                 test="Fisher's exact test (two-sided), concepts vs neurons",
                 verdict="inconclusive", unit="neurons", fmt=".0%",
                 sentence=sentence, interval=(lo, hi) if nn else None, paper=None)


def sizes_most(model: str, label: str, sizes: Mapping[str, Sequence[float]], threshold: float,
               min_genes: int, paper: str | None = None) -> Claim:
    """Fig 2C: most concepts have more than ``min_genes`` genes above ``threshold`` at every
    SAE size.

    ``sizes``: SAE size name (e.g. ``"c=200, k=8"``) → genes above the threshold per attributed
    concept of that SAE. Value: the smallest share over the sizes, with a simultaneous interval
    (exact intervals at level 1 − :data:`ALPHA`/sizes, Bonferroni; the minimum's interval runs
    from the smallest lower to the smallest upper bound); region (:data:`MOST`, ∞): agrees when
    every size clearly holds, disagrees when one clearly fails, inconclusive otherwise (or with
    fewer than :data:`MIN_UNITS` concepts at a size, or without a paper statement). n: concepts
    over all sizes."""
    parts, states, shares, intervals, n_total = [], [], [], [], 0
    level = 1 - ALPHA / max(len(sizes), 1)
    for name, s in sizes.items():
        k, n = count_above(s, min_genes)
        state, ci = _most(k, n, level)
        states.append(state)
        n_total += n
        if n:
            shares.append(k / n)
            intervals.append(ci)
        parts.append(f"{name}: {_pct(k / n if n else float('nan'))} of {n}"
                     + ("" if state != "undecided" else " (undecided)"))
    held, n_sizes = states.count("holds"), len(states)
    interval = stats.min_of(intervals) if intervals else None
    value = min(shares) if shares else float("nan")
    if paper is None or not n_sizes:
        v = "inconclusive"
    elif "undecided" in states and "fails" not in states:
        v = "inconclusive"
    else:
        v, _ = decide(interval, (MOST, ABOVE))
    reason = ("no paper result for this model" if paper is None else
              "no SAE size" if not n_sizes else
              f"undecided at {states.count('undecided')} size(s): fewer than {MIN_UNITS} "
              f"concepts or an interval containing {MOST:.0%}")
    sentence = (f"**{label}.** Most attributed concepts clearly (simultaneous 95 % interval "
                f"above {MOST:.0%}) have more than {min_genes} genes with attribution > "
                f"{threshold} at {held} of {n_sizes} SAE sizes ({'; '.join(parts)}); the paper "
                f"finds most concepts do at every size (Fig 2C): {_conclusion(v, reason)}.")
    return Claim(key=f"ch04_{model}_sizes", value=value, n=n_total,
                 test=f"smallest share over the sizes above {MOST:.0%} (exact intervals, "
                      "Bonferroni over sizes)",
                 verdict=v, sentence=sentence, paper=paper, interval=interval,
                 region=(MOST, ABOVE), unit=f"attributed concepts over {n_sizes} SAE sizes",
                 fmt=".0%")


_OWN, _HITS = "specific concepts", "with a marker in top 10"


def canonical_markers(model: str, label: str, report: pd.DataFrame, n_specific: int,
                      examples: pd.DataFrame | None = None, paper: str | None = None) -> Claim:
    """Sec 4.2 / Table 7: concepts specific to a cell type have its canonical markers among
    their top-10 attribution genes, more often than concepts specific to other cell types.

    ``report``: the summary of :func:`scconcepts.attribution.marker_report` (per cell type:
    ``specific concepts``, ``with a marker in top 10`` and, last column, the control share among
    concepts specific to other cell types); ``n_specific``: every attributed cell-type-specific
    concept (the control of a cell type is the others); ``examples``: the
    :func:`scconcepts.attribution.example_concepts` table, whose main concepts without a marker
    are named in the sentence. Per cell type: undecided with fewer than
    :data:`MIN_UNITS` specific concepts; holds when the share exceeds the control's (one-sided
    Fisher p < :data:`ALPHA`); fails when no concept has a marker or the share is not above a
    control of at least :data:`MIN_UNITS` concepts; undecided otherwise. Value: cell types that
    hold; n: specific concepts of these cell types. Agrees when every cell type holds, disagrees
    when one fails, inconclusive otherwise (1–2 concepts can never agree)."""
    parts, states = [], []
    for ct, r in report.iterrows():
        n, k = int(r[_OWN]), int(r[_HITS])
        n_ctrl = max(int(n_specific) - n, 0)
        ctrl = float(r.iloc[-1]) if n_ctrl else float("nan")
        k_ctrl = int(round(ctrl * n_ctrl)) if n_ctrl else 0
        if n == 0:
            states.append("undecided")
            parts.append(f"{ct}: no specific concept")
            continue
        if n < MIN_UNITS:
            state, why = "undecided", "too few to decide"
        elif k == 0:
            state, why = "fails", "none has a marker"
        else:
            p = float(fisher_exact([[k, n - k], [k_ctrl, n_ctrl - k_ctrl]],
                                   alternative="greater").pvalue)
            state = ("holds" if p < ALPHA else "fails"
                     if n_ctrl >= MIN_UNITS and k / n <= ctrl else "undecided")
            why = f"one-sided Fisher p = {p:.2g}"
        states.append(state)
        parts.append(f"{ct}: {k} of {n} specific concept{'s' * (n != 1)} ({_pct(k / n)}; "
                     f"control {_pct(ctrl)}; {why})")
    held, n_units = states.count("holds"), int(report[_OWN].sum()) if len(report) else 0
    v = ("inconclusive" if paper is None or not n_units else "disagrees" if "fails" in states
         else verdict(True, uncertain="undecided" in states))
    reason = ("no paper result for this model" if paper is None else
              "no attributed concept is specific to these cell types" if not n_units else
              f"fewer than {MIN_UNITS} specific concepts, or a share not clearly above the "
              "control, for some cell type")
    ex = examples if examples is not None else pd.DataFrame(
        columns=["cell_type", "unit", "rule", "has_marker"])
    without = [f"C{r.unit} ({r.cell_type})" for r in ex.itertuples()
               if r.rule == "main concept" and not r.has_marker]
    main = ("; main concepts without a marker in their top 10: " + ", ".join(without)
            if without else "")
    sentence = (f"**{label}.** Canonical markers are enriched among the top-10 attribution genes "
                f"of the specific concepts at {held} of {len(states)} cell types ("
                + "; ".join(parts) + f"){main}. The paper finds such markers among the top genes "
                f"of cell-type-specific concepts: {_conclusion(v, reason)}.")
    return Claim(key=f"ch04_{model}_markers", value=held, n=n_units,
                 test=f"one-sided Fisher exact test vs other-type concepts, p < {ALPHA}, "
                      f"at least {MIN_UNITS} concepts per cell type",
                 verdict=v, sentence=sentence, paper=paper)


def perturbation_space(model: str, label: str, raw: pd.Series, matched: pd.Series,
                       markers_raw: pd.DataFrame, markers_matched: pd.DataFrame) -> Claim:
    """Chapter 04's perturbation-space check (issue 13, item 4): does occlusion with raw counts
    favour ribosomal, mitochondrial and the most expressed genes over occlusion at the
    prototype's library size?

    ``raw``, ``matched``: per-concept share of housekeeping genes among the top 10
    (:func:`scconcepts.attribution.housekeeping_share`) with raw and library-matched
    counterfactuals; ``markers_*``: :func:`scconcepts.attribution.marker_report` summaries
    (canonical-marker recovery, for the sentence). Value: mean over concepts of raw − matched,
    with its paired Student-t 95 % interval; region (0, ∞). No paper value: the verdict is this
    check's. Key ``ch04_<model>_space``."""
    both = pd.concat([raw.rename("raw"), matched.rename("matched")], axis=1).dropna()
    m, ci, n = stats.t_interval(both["raw"] - both["matched"])
    v, reason = decide(ci, (0.0, ABOVE), n=n, min_n=MIN_UNITS, fmt="+.3f")

    def recovered(t):
        k, tot = int(t[_HITS].sum()), int(t[_OWN].sum())
        return f"{k} of {tot}" + (f" ({k / tot:.0%})" if tot else "")

    tail = {"agrees": "raw counts favour these genes",
            "disagrees": "raw counts favour these genes less than library-matched ones",
            "inconclusive": f"inconclusive ({reason})"}[v]
    ci_txt = "" if ci is None else f", 95 % interval {ci[0]:+.3f} to {ci[1]:+.3f}"
    return Claim(key=f"ch04_{model}_space", value=m, n=n, interval=ci, region=(0.0, ABOVE),
                 verdict=v, unit="concepts", fmt="+.3f",
                 test="mean share of housekeeping genes in the top 10, raw − library-matched "
                      "counterfactuals > 0 (paired t interval; no paper value)",
                 sentence=f"**{label}** ({n} concepts): ribosomal, mitochondrial or top-expressed "
                          f"genes make up {both['raw'].mean():.0%} of the top-10 attribution "
                          f"genes with raw counterfactuals and {both['matched'].mean():.0%} at "
                          f"the prototype's library size (difference {m:+.3f}{ci_txt}): {tail}. "
                          f"Specific concepts with a canonical marker in their top 10: "
                          f"{recovered(markers_raw)} with raw counts, "
                          f"{recovered(markers_matched)} library-matched.")


def planted_recovery(model: str, label: str, runs: Sequence[pd.DataFrame], k: int = 10
                     ) -> Claim:
    """Chapter 04's ground truth (issue 13, item 11): the concept that marks cells carrying a
    planted gene programme ranks the programme's genes at the top of its counterfactual
    attribution.

    ``runs``: one :meth:`scconcepts.workflow.Workflow.planted` ``scores`` table per replicate
    (rows per unit kind × baseline, columns ``precision@<k>``, ``random``, ``auroc``). Value: the
    share of planted genes among the concept's top-k genes, pooled over replicates (k slots
    each), with its exact (Clopper–Pearson) 95 % interval; region: above the random
    expectation |G| / m. The sentence gives the same for zero-masking and for the best neuron.
    No paper value: the verdict is this check's. Key ``ch04_<model>_planted``."""
    col = f"precision@{k}"
    t = pd.concat([r.assign(replicate=i) for i, r in enumerate(runs)], ignore_index=True)
    if t.empty or col not in t:
        return Claim(key=f"ch04_{model}_planted", value=float("nan"), n=0, test="",
                     verdict="inconclusive", sentence=f"**{label}**: no planted programme run.")

    def pooled(kind, baseline):
        sel = t[(t["unit kind"] == kind) & (t["baseline"] == baseline)]
        hits = int(round((sel[col] * k).sum()))
        return hits, k * len(sel), float(sel["auroc"].mean())

    hits, slots, auroc = pooled("concept", "counterfactual")
    ci = stats.exact(hits, slots)
    rand = float(t["random"].mean())
    v, reason = decide(ci, (rand, ABOVE), n=len(runs), min_n=1, fmt=".2f")
    other = "; ".join(f"{kind}, {base}: {h / s:.0%}" for kind, base in
                      (("concept", "zero"), ("neuron", "counterfactual"), ("neuron", "zero"))
                      for h, s, _ in [pooled(kind, base)] if s)
    tail = {"agrees": "attribution recovers the planted programme",
            "disagrees": "attribution does not rank the planted genes above chance",
            "inconclusive": f"inconclusive ({reason})"}[v]
    return Claim(key=f"ch04_{model}_planted", value=hits / slots if slots else float("nan"),
                 n=len(runs), interval=ci, region=(rand, ABOVE), verdict=v,
                 unit=f"planted programmes ({slots} top-{k} slots)", fmt=".2f",
                 test=f"precision@{k} of the concept's counterfactual attribution > random "
                      f"|G|/m (exact interval over pooled slots; no paper value)",
                 sentence=f"**{label}** ({len(runs)} planted programme"
                          f"{'s' if len(runs) != 1 else ''}): the concept that marks the planted "
                          f"cells (AUROC {auroc:.3f}) has {hits} of its {slots} top-{k} genes "
                          f"in the programme, precision {hits / slots:.0%} (95 % interval "
                          f"{ci[0]:.0%} to {ci[1]:.0%}; random {rand:.1%}); {other}: {tail}.")
