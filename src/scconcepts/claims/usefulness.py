"""Claims of chapters 08 (downstream tasks, Sec 4.5, Fig 5 and Fig 10 of the paper) and 09
(semi-NMF, PCA and ICA baselines, Appendix B Tables 4 and 5).

Accuracies come with a 95 % normal interval of their difference from the held-out cells
(binomial standard errors of the two accuracies, treated as independent: conservative, since
both are scored on the same cells); a verdict is ``"inconclusive"`` when that interval crosses
the claim's threshold. The paper's numbers come from :mod:`scconcepts.reference.usefulness`; a
model the paper lacks (e.g. ``pca``) gets ``"inconclusive"``.
"""

from __future__ import annotations

import numpy as np

from ..reference.usefulness import PAPER_FIG5, paper_accuracy, paper_baseline
from . import ABOVE, Claim, decide, stats, verdict

__all__ = ["WITHIN", "R2_TIE", "LOWRANK_DENSE", "concepts_vs_neurons", "markers_vs_neurons",
           "label_alignment",
           "fig5", "any_agrees", "r2_greater", "accuracy_at_least", "lowrank_baselines"]

WITHIN = 0.05        # "concepts classify as well as neurons": accuracies within this
R2_TIE = 0.001       # R² differences below this (the tables' rounding) cannot be ordered
LOWRANK_DENSE = 0.1  # share of zero codes below which a decomposition's codes are "dense"
MIN_UNITS = 3


def _diff_interval(a: float, b: float, n: int) -> tuple[float, float]:
    """95 % normal interval of a − b for two accuracies on ``n`` held-out cells each."""
    se = np.sqrt(max(a * (1 - a), 0) / n + max(b * (1 - b), 0) / n) if n else np.nan
    return (a - b - stats.Z95 * se, a - b + stats.Z95 * se)


def _no_paper(label: str) -> str:
    return f" The paper has no value for {label}, so there is nothing to compare with."


def concepts_vs_neurons(key: str, model: str, label: str, task: str, concepts: float,
                        neurons: float, n_test: int, features: str = "concepts") -> Claim:
    """Fig 10 / Tables 4–5: a classifier on concept codes is within :data:`WITHIN` of one on the
    neurons (the embedding dimensions).

    Value: concepts − neurons accuracy; n: held-out cells; interval: 95 % of the difference.
    Agrees when |difference| ≤ WITHIN and the interval lies inside ±WITHIN, disagrees when it
    lies outside, inconclusive when it crosses ±WITHIN or the paper has no value for the model.
    """
    c, u, n = float(concepts), float(neurons), int(n_test)
    diff = c - u
    lo, hi = _diff_interval(c, u, n)
    paper = paper_accuracy(model, task)
    v, _ = decide((lo, hi), (-WITHIN, WITHIN), n=n, min_n=MIN_UNITS, paper=paper is not None)
    ptxt = ("" if paper is None else
            f"; paper {paper['concepts']:.3f} vs {paper['neurons']:.3f}")
    tail = {"agrees": f"within {WITHIN}, as in the paper",
            "disagrees": f"**unlike the paper**, more than {WITHIN} apart",
            "inconclusive": (f"the interval crosses ±{WITHIN}, too close to decide"
                             if paper is not None else "no paper value")}[v]
    sentence = (f"{label}, {task}: {features} {c:.3f} vs neurons {u:.3f} (difference "
                f"{diff:+.3f}, 95 % interval {lo:+.3f} to {hi:+.3f}, {n} held-out cells{ptxt}): "
                f"{tail}.")
    return Claim(key=key, value=diff, n=n, interval=(float(lo), float(hi)),
                 test=f"|{features} − neurons| ≤ {WITHIN} (95 % interval inside ±{WITHIN})",
                 verdict=v, sentence=sentence, region=(-WITHIN, WITHIN),
                 unit="held-out cells", fmt="+.3f",
                 paper=None if paper is None else paper["concepts"] - paper["neurons"])


def markers_vs_neurons(key: str, model: str, label: str, concept_markers: int,
                       concept_units: int, neuron_markers: int, neuron_units: int,
                       marker_list: str = "Regev cell-cycle markers", paper: str | None = None,
                       n_genes: int = 10) -> Claim:
    """Fig 5: the top-coefficient concepts' top genes hold more known markers than the top
    neurons'.

    ``*_markers``: markers among the units' top-``n_genes`` attribution genes; ``*_units``:
    units with a marker list and attribution genes. Value: the share of marker genes among the
    concepts' top-gene slots minus among the neurons' (``markers / (units × n_genes)``), with
    Newcombe's 95 % interval; region (0, ∞). n: units of both kinds. Inconclusive with fewer
    than :data:`MIN_UNITS` units of either kind (a marker or two among one or two units cannot
    say "as in the paper"), when the interval holds 0, or when the paper has no value for the
    model (``paper`` None: :data:`~scconcepts.reference.usefulness.PAPER_FIG5`).
    """
    cm, nm, cu, nu = int(concept_markers), int(neuron_markers), int(concept_units), \
        int(neuron_units)
    n = cu + nu
    slots_c, slots_n = cu * n_genes, nu * n_genes
    interval = stats.newcombe(cm, slots_c, nm, slots_n)
    diff = (cm / slots_c - nm / slots_n) if slots_c and slots_n else float("nan")
    v, reason = decide(interval, (0.0, ABOVE), paper=paper is not None, fmt="+.0%")
    if min(cu, nu) < MIN_UNITS and v != "inconclusive":   # "as in the paper" from 1 or 2 units
        v, reason = "inconclusive", (f"{min(cu, nu)} unit{'s' * (min(cu, nu) != 1)} of one kind, "
                                     f"fewer than {MIN_UNITS}")
    plural = lambda k: f"{k} unit{'s' if k != 1 else ''}"  # noqa: E731
    if cu == 0 or nu == 0:
        tail = "no top-coefficient unit of one kind has attribution genes in this profile"
    else:
        tail = {"agrees": f"the top concepts carry more markers, as in the paper ({paper})",
                "disagrees": f"**fewer** among the concepts, unlike the paper ({paper})",
                "inconclusive": (f"**inconclusive** ({reason})" if paper is not None
                                 else "the paper reports no such count for this model")}[v]
    ci = (f"; marker share {diff:+.0%}, 95 % interval {interval[0]:+.0%} to {interval[1]:+.0%}"
          if np.isfinite(diff) else "")
    return Claim(key=key, value=diff, n=n, test="marker share among top concepts' genes − among "
                 "top neurons' genes > 0 (Newcombe interval)", verdict=v, paper=paper,
                 interval=interval if np.isfinite(diff) else None, region=(0.0, ABOVE),
                 unit="top units (concepts + neurons)", fmt="+.0%",
                 sentence=f"{label}: {cm} {marker_list} among the top concepts' genes "
                          f"({plural(cu)}) vs {nm} among the top neurons' genes ({plural(nu)}"
                          f"{ci}): {tail}.")


def fig5(key: str, model: str, label: str, concept_markers: int, concept_units: int,
         neuron_markers: int, neuron_units: int) -> Claim:
    """:func:`markers_vs_neurons` for the cell-cycle task, with the paper's Fig 5 finding (scGPT
    only: other models are inconclusive)."""
    return markers_vs_neurons(key, model, label, concept_markers, concept_units, neuron_markers,
                              neuron_units, paper=PAPER_FIG5.get(model))


def any_agrees(key: str, claims, what: str) -> Claim:
    """Aggregate of per-model claims: agrees when one agrees, disagrees when none agrees and one
    disagrees, inconclusive otherwise. Value: the number that agree; n: claims."""
    claims = list(claims)
    k = sum(c.verdict == "agrees" for c in claims)
    v = ("agrees" if k else "disagrees" if any(c.verdict == "disagrees" for c in claims)
         else "inconclusive")
    return Claim(key=key, value=k, n=len(claims), test=f"some model: {what}", verdict=v,
                 sentence=f"{what[0].upper()}{what[1:]}: {k} of {len(claims)} models agree.")


def r2_greater(key: str, model: str, label: str, name_a: str, r2_a: float, name_b: str,
               r2_b: float, n_test: int | None = None, *,
               replicates: tuple | None = None) -> Claim:
    """Tables 4–5: method ``a`` reconstructs the held-out cells better than method ``b``.

    Value: R² a − b on the ``n_test`` cells held out from every method (from the baselines'
    fitting and from the SAE's training; :func:`scconcepts.baselines.baseline_table`).
    Interval: 95 % percentile bootstrap of the difference from ``replicates`` = (R² a, R² b)
    replicates computed with one shared weight matrix (a paired bootstrap over those cells,
    ``details[method]["r2_replicates"]`` of :func:`~scconcepts.baselines.baseline_table`).
    Region: a − b > 0. Decided by :func:`scconcepts.claims.stats.decide`: agrees when the
    interval lies above 0, disagrees when it lies below, inconclusive when it holds 0, when no
    replicates are given, when fewer than :data:`MIN_UNITS` cells back it, or when the paper has
    no value for the model (its values of a and b are quoted)."""
    from . import conclusion
    from .stats import ABOVE, decide, percentile

    a, b = float(r2_a), float(r2_b)
    diff = a - b
    pa, pb = paper_baseline(model, name_a, "R² (held-out cells)"), paper_baseline(
        model, name_b, "R² (held-out cells)")
    no_paper = pa is None or pb is None
    interval = None
    if replicates is not None:
        ra, rb = (np.asarray(r, dtype=float) for r in replicates)
        if ra.shape != rb.shape:
            raise ValueError(f"R² replicates of {name_a} and {name_b} must be paired (same "
                             f"shape); got {ra.shape} and {rb.shape}.")
        interval = percentile(ra - rb)
    region = (0.0, ABOVE)
    v, reason = decide(interval, region, n=n_test, min_n=MIN_UNITS, paper=not no_paper,
                       fmt=".3f")
    ci = ("no interval" if interval is None or not np.all(np.isfinite(interval))
          else f"95 % interval {interval[0]:+.3f} to {interval[1]:+.3f}")
    cells = "" if n_test is None else f", {int(n_test):,} held-out cells"
    ptxt = "" if no_paper else f"; paper {pa:.3f} vs {pb:.3f}"
    return Claim(key=key, value=diff, n=n_test, interval=interval,
                 test=f"R² {name_a} − {name_b} > 0 (95 % bootstrap interval above 0)",
                 verdict=v, paper=None if no_paper else pa - pb, region=region,
                 unit="held-out cells", fmt=".3f",
                 sentence=f"{label}: R² {name_a} {a:.3f} vs {name_b} {b:.3f} (difference "
                          f"{diff:+.3f}, {ci}{cells}{ptxt}): {conclusion(v, reason)}.")


def accuracy_at_least(key: str, model: str, label: str, name_a: str, acc_a: float,
                      name_b: str, acc_b: float, n_test: int, task: str = "cell type") -> Claim:
    """Tables 4–5: method ``a`` classifies ``task`` at least as well as method ``b``.

    Value: accuracy a − b; interval: its 95 % interval over the ``n_test`` held-out cells.
    Inconclusive when the interval holds 0 strictly inside, or the paper has no value for the
    model."""
    a, b, n = float(acc_a), float(acc_b), int(n_test)
    diff = a - b
    lo, hi = _diff_interval(a, b, n)
    row = f"{task} accuracy"
    pa, pb = paper_baseline(model, name_a, row), paper_baseline(model, name_b, row)
    no_paper = pa is None or pb is None
    v, _ = decide((lo, hi), (0.0, ABOVE), n=n, min_n=MIN_UNITS, paper=not no_paper)
    ptxt = "" if no_paper else f"; paper {pa:.3f} vs {pb:.3f}"
    tail = {"agrees": "as in the paper", "disagrees": "**unlike the paper**",
            "inconclusive": "no paper value" if no_paper else
                            "the interval reaches 0, too close to decide"}[v]
    return Claim(key=key, value=diff, n=n, interval=(float(lo), float(hi)),
                 test=f"{task} accuracy {name_a} > {name_b} (95 % interval above 0)",
                 verdict=v, paper=None if no_paper else pa - pb, region=(0.0, ABOVE),
                 unit="held-out cells", fmt="+.3f",
                 sentence=f"{label}, {task}: {name_a} {a:.3f} vs {name_b} {b:.3f} ({diff:+.3f}, "
                          f"95 % interval {lo:+.3f} to {hi:+.3f}, {n} held-out cells{ptxt}): "
                          f"{tail}.")


def lowrank_baselines(key: str, label: str, n_components: int, r2_pca: float, r2_ica: float,
                      sparsity_pca: float, sparsity_ica: float) -> Claim:
    """The reviewer's low-rank baselines: PCA and ICA with ``n_components`` components reach the
    same R² (ICA rotates PCA's whitened components) with dense codes, hard to read as concepts.

    Value: PCA's R². Agrees when both codes are dense (share of zeros < :data:`LOWRANK_DENSE`);
    the paper reports neither baseline, so the verdict is this check's."""
    rp, ri, sp_, si = map(float, (r2_pca, r2_ica, sparsity_pca, sparsity_ica))
    dense = max(sp_, si) < LOWRANK_DENSE
    v = verdict(dense, None, uncertain=not np.isfinite(max(sp_, si)))
    tail = ("their codes are dense, which is what makes them hard to read as concepts" if dense
            else "their codes are not dense here")
    return Claim(key=key, value=rp, n=int(n_components),
                 test=f"PCA and ICA sparsity < {LOWRANK_DENSE} (no paper value)", verdict=v,
                 sentence=f"{label} ({n_components} components): R² PCA {rp:.3f}, ICA {ri:.3f}; "
                          f"sparsity PCA {sp_:.3f}, ICA {si:.3f}: {tail}.")


def label_alignment(key: str, label: str, per_label, name_a: str = "concepts",
                    name_b: str = "neurons") -> Claim:
    """InterPLM protocol (a reviewer's ask; no paper value): the best single unit of method
    ``a`` matches a label (cell type, donor) better than the best unit of method ``b``.

    ``per_label``: :func:`scconcepts.alignment.alignment_table`'s per-label table (columns
    ``method``, ``label``, ``f1_test``) over the labels of interest. Value: mean over labels of
    the test F1 of a minus that of b (each unit and threshold chosen on validation cells), with
    its Student-t 95 % interval over labels (paired); region (0, ∞). n: labels."""
    t = per_label.pivot_table(index="label", columns="method", values="f1_test")
    if name_a not in t or name_b not in t:
        return Claim(key=key, value=float("nan"), n=0, test="", verdict="inconclusive",
                     sentence=f"{label}: {name_a} or {name_b} missing, nothing compared.")
    diff = (t[name_a] - t[name_b]).dropna()
    m, ci, n = stats.t_interval(diff)
    v, reason = decide(ci, (0.0, ABOVE), n=n, min_n=MIN_UNITS, fmt="+.3f")
    ci_txt = "" if ci is None else f", 95 % interval {ci[0]:+.3f} to {ci[1]:+.3f}"
    tail = {"agrees": f"single {name_a} match the labels better than single {name_b}",
            "disagrees": f"single {name_b} match the labels better than single {name_a}",
            "inconclusive": f"inconclusive ({reason})"}[v]
    a_hi = int((t[name_a] > 0.5).sum())
    b_hi = int((t[name_b] > 0.5).sum())
    return Claim(key=key, value=m, n=n, interval=ci, region=(0.0, ABOVE), verdict=v,
                 unit="labels", fmt="+.3f",
                 test=f"mean test F1 {name_a} − {name_b} over labels > 0 (t interval; no paper "
                      "value)",
                 sentence=f"{label}: over {n} labels the best single unit among the "
                          f"{name_a} reaches a test F1 of {t[name_a].mean():.2f} on average, "
                          f"among the {name_b} {t[name_b].mean():.2f} (difference {m:+.3f}"
                          f"{ci_txt}); F1 > 0.5 for {a_hi} vs {b_hi} labels: {tail}.")
