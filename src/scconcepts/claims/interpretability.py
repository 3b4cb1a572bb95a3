"""Claims of chapters 05–06: concepts vs neurons, by attribution-based GO annotation (Fig 3A.b)
and by expert ratings (Fig 3A.a), with the shuffled-ranking null of chapter 05.

Every function takes counts (annotated units / units, interpretable ratings / ratings) and the
paper's statement from :mod:`scconcepts.reference.interpretability` (None for a model the paper
does not study: the claim is then inconclusive), and returns a
:class:`~scconcepts.claims.Claim` whose key is the glue prefix the reproduction page reads
(``ch05_<model>...``, ``ch06_<model>...``). Two rates are compared by Fisher's exact test
(:class:`RateComparison`, computed once and shown next to the verdict); thresholds are the module
constants below, written nowhere else.
"""

from __future__ import annotations

from dataclasses import dataclass

from scipy.stats import fisher_exact

from . import Claim, conclusion

__all__ = ["ALPHA", "MIN_UNITS", "RateComparison", "annotation_vs_neurons", "above_null",
           "expert_vs_neurons"]

#: level of Fisher's exact test
ALPHA = 0.05
#: each rate needs at least this many units to be compared
MIN_UNITS = 3

def _pct(x: float) -> str:
    return "n/a" if x != x else f"{x:.0%}"


@dataclass(frozen=True)
class RateComparison:
    """Two rates ``k1 / n1`` (e.g. concepts) and ``k2 / n2`` (e.g. neurons) and Fisher's exact
    test (two-sided) of the 2×2 table."""

    k1: int
    n1: int
    k2: int
    n2: int

    @classmethod
    def from_rates(cls, rate1: float, n1: int, rate2: float, n2: int) -> "RateComparison":
        """From shares of ``n1`` and ``n2`` units (counts rounded)."""
        return cls(int(round(rate1 * n1)), int(n1), int(round(rate2 * n2)), int(n2))

    @property
    def rate1(self) -> float:
        return self.k1 / self.n1 if self.n1 else float("nan")

    @property
    def rate2(self) -> float:
        return self.k2 / self.n2 if self.n2 else float("nan")

    @property
    def diff(self) -> float:
        """rate1 − rate2."""
        return self.rate1 - self.rate2

    @property
    def p(self) -> float:
        """Two-sided Fisher exact p (nan when a group is empty)."""
        if not (self.n1 and self.n2):
            return float("nan")
        return float(fisher_exact([[self.k1, self.n1 - self.k1],
                                   [self.k2, self.n2 - self.k2]]).pvalue)

    def decide(self) -> tuple[str, str]:
        """(verdict for "rate1 > rate2", reason when inconclusive)."""
        if min(self.n1, self.n2) < MIN_UNITS:
            return "inconclusive", f"fewer than {MIN_UNITS} units in a group"
        if self.p >= ALPHA:
            return "inconclusive", f"the difference is within chance, p ≥ {ALPHA}"
        return ("agrees" if self.diff > 0 else "disagrees"), ""


def _claim(key: str, cmp: RateComparison, paper: str | None, text: str, test: str,
           value: float | None = None) -> Claim:
    v, reason = cmp.decide()
    if paper is None:
        v, reason = "inconclusive", "no paper result for this model"
    sentence = text + " " + conclusion(v, reason) + "."
    return Claim(key=key, value=float(cmp.diff if value is None else value),
                 n=cmp.n1 + cmp.n2, test=test, verdict=v, sentence=sentence, paper=paper)


def annotation_vs_neurons(model: str, label: str, cmp: RateComparison, paper: str | None = None,
                          fdr: tuple[float, float] | None = None) -> Claim:
    """Fig 3A.b: concepts get an attribution-based GO annotation (at least weak) more often than
    neurons.

    ``cmp``: annotated concepts / concepts vs annotated neurons / neurons. Value: the difference
    of the two rates (concepts − neurons); n: concepts + neurons. Agrees when concepts are ahead
    and Fisher's exact p < :data:`ALPHA`, disagrees when neurons are ahead with p < ALPHA,
    inconclusive within chance, with fewer than :data:`MIN_UNITS` units per group or without a
    paper statement. ``fdr``: shares of concepts / neurons whose best term has FDR ≤ 0.05, for
    the sentence."""
    extra = ("" if fdr is None else f" With the FDR q-value of the best term (≤ 0.05) instead: "
             f"{_pct(fdr[0])} of the concepts, {_pct(fdr[1])} of the neurons.")
    text = (f"**{label}.** {_pct(cmp.rate1)} of {cmp.n1} sampled concepts and {_pct(cmp.rate2)} "
            f"of {cmp.n2} neurons get at least a weak GO annotation, a difference of "
            f"{cmp.diff:+.0%} (Fisher's exact test p = {cmp.p:.2g}).{extra} The paper finds "
            f"concepts more aligned with pathways than neurons (Fig 3A.b):")
    return _claim(f"ch05_{model}", cmp, paper, text,
                  f"Fisher's exact test (two-sided) of the two rates, p < {ALPHA}")


def above_null(model: str, label: str, cmp: RateComparison, paper: str | None = None) -> Claim:
    """Control (not in the paper): concepts are annotated more often than the same concepts
    with their attribution scores shuffled across genes, the false-positive baseline of the
    best of many pathways by nominal p. Fig 3A.b reads annotations as biology, so this is its
    premise.

    ``cmp``: annotated concepts / concepts vs annotated shuffled / shuffled. Value: the null's
    annotation rate; n: concepts + shuffled. Decided as :func:`annotation_vs_neurons`."""
    text = (f"**{label}, shuffled null.** The same procedure on the {cmp.n2} concepts with "
            f"shuffled rankings annotates {_pct(cmp.rate2)} of them, against {_pct(cmp.rate1)} "
            f"with the real rankings (Fisher's exact test p = {cmp.p:.2g}), the false-positive "
            "baseline of nominal p-values on the best of many pathways. Reading the annotations "
            "as biology, as the paper does, needs the real rate above it:")
    return _claim(f"ch05_{model}_null_annotated", cmp, paper, text,
                  f"Fisher's exact test (two-sided), real vs shuffled rankings, p < {ALPHA}",
                  value=cmp.rate2)


def expert_vs_neurons(model: str, label: str, cmp: RateComparison,
                      paper: str | None = None) -> Claim:
    """Fig 3A.a: experts rate concepts interpretable more often than neurons.

    ``cmp``: interpretable ratings / ratings of concepts vs of neurons (each rater's rating of an
    item counts once; with several raters the ratings of one item are not independent and the
    p-value is optimistic). Value: the difference of the rates; n: ratings. Decided as
    :func:`annotation_vs_neurons`."""
    text = (f"**{label}.** {_pct(cmp.rate1)} of {cmp.n1} concept ratings and {_pct(cmp.rate2)} "
            f"of {cmp.n2} neuron ratings are interpretable, a difference of {cmp.diff:+.0%} "
            f"(Fisher's exact test p = {cmp.p:.2g}). The paper's expert finds concepts more "
            "interpretable than neurons (Fig 3A.a):")
    return _claim(f"ch06_{model}_interpretable", cmp, paper, text,
                  f"Fisher's exact test (two-sided) of the two rates, p < {ALPHA}")
