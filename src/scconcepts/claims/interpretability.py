"""Claims of chapters 05–06: concepts vs neurons, by attribution-based GO annotation (Fig 3A.b)
and by expert ratings (Fig 3A.a), with the shuffled-ranking null of chapter 05.

Every function takes counts (annotated units / units, interpretable ratings / ratings) and the
paper's statement from :mod:`scconcepts.reference.interpretability` (None for a model the paper
does not study: the claim is then inconclusive), and returns a
:class:`~scconcepts.claims.Claim` whose key is the glue prefix the reproduction page reads
(``ch05_<model>...``, ``ch06_<model>...``). Two rates are compared by Newcombe's 95 % interval of
their difference (:class:`RateComparison`); the verdict comes from that interval (region: a
difference above 0), Fisher's exact p is shown beside it; thresholds are the module constants
below, written nowhere else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy.stats import fisher_exact

from . import ABOVE, Claim, conclusion, decide, stats

__all__ = ["ALPHA", "MIN_UNITS", "POWER", "RateComparison", "annotation_vs_neurons",
           "fdr_vs_neurons", "above_null", "fig3ab_claims", "pool_sensitivity",
           "adjusted_kind", "concepts_vs_units",
           "expert_vs_neurons"]

#: 1 − the level of the intervals (and the level of Fisher's exact test, reported beside them)
ALPHA = 0.05
#: each rate needs at least this many units to be compared
MIN_UNITS = 3
#: the power at which a comparison's detectable difference is stated
POWER = 0.8

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
    def interval(self) -> tuple[float, float]:
        """Newcombe's hybrid score 95 % interval of rate1 − rate2
        (:func:`scconcepts.claims.stats.newcombe`)."""
        return stats.newcombe(self.k1, self.n1, self.k2, self.n2)

    @property
    def detectable(self) -> float:
        """The smallest lead of rate1 over rate2 this comparison detects with :data:`POWER`
        (two-sided, level :data:`ALPHA`, at rate2; :func:`scconcepts.claims.stats.
        detectable_difference`)."""
        return stats.detectable_difference(self.n1, self.n2, self.rate2, POWER, 1 - ALPHA)

    @classmethod
    def from_tables(cls, first, second) -> "RateComparison":
        """Annotated units (``annotation`` ≠ "none") of two GSEA summary tables."""
        return cls(int((first["annotation"] != "none").sum()), len(first),
                   int((second["annotation"] != "none").sum()), len(second))

    def summary(self) -> dict:
        """The comparison as one table row: both rates and n, the difference, its interval and
        the verdict for "rate1 > rate2"."""
        lo, hi = self.interval
        return {"rate 1": self.rate1, "n 1": self.n1, "rate 2": self.rate2, "n 2": self.n2,
                "difference": self.diff, "95 % interval": f"{lo:+.0%} to {hi:+.0%}",
                "verdict": self.decide()[0]}

    def stats_text(self) -> str:
        """"a difference of +x% (95 % interval …; Fisher's exact test p = …)" for sentences."""
        lo, hi = self.interval
        return (f"a difference of {self.diff:+.0%} (95 % interval {lo:+.0%} to {hi:+.0%}; "
                f"Fisher's exact test p = {self.p:.2g})")

    def power_text(self) -> str:
        d = self.detectable
        return ("" if d != d else
                f" With {self.n1} and {self.n2} units the comparison detects a lead of "
                f"{d:.0%} or more with {POWER:.0%} power.")

    @property
    def p(self) -> float:
        """Two-sided Fisher exact p (nan when a group is empty)."""
        if not (self.n1 and self.n2):
            return float("nan")
        return float(fisher_exact([[self.k1, self.n1 - self.k1],
                                   [self.k2, self.n2 - self.k2]]).pvalue)

    def decide(self) -> tuple[str, str]:
        """(verdict for "rate1 > rate2", reason when inconclusive): from :attr:`interval` and the
        region (0, ∞), with at least :data:`MIN_UNITS` units per group."""
        if min(self.n1, self.n2) < MIN_UNITS:
            return "inconclusive", f"fewer than {MIN_UNITS} units in a group"
        v, _ = decide(self.interval, (0.0, ABOVE))
        lo, hi = self.interval
        return v, ("" if v != "inconclusive" else
                   f"the 95 % interval of the difference, {lo:+.0%} to {hi:+.0%}, holds 0")


def _claim(key: str, cmp: RateComparison, paper: str | None, text: str, test: str,
           unit: str) -> Claim:
    v, reason = cmp.decide()
    if paper is None:
        v, reason = "inconclusive", "no paper result for this model"
    sentence = text + " " + conclusion(v, reason) + "."
    return Claim(key=key, value=float(cmp.diff), n=cmp.n1 + cmp.n2, test=test, verdict=v,
                 sentence=sentence, paper=paper, interval=cmp.interval, region=(0.0, ABOVE),
                 unit=unit, fmt="+.0%")


def annotation_vs_neurons(model: str, label: str, cmp: RateComparison, paper: str | None = None,
                          fdr: tuple[float, float] | None = None) -> Claim:
    """Fig 3A.b: concepts get an attribution-based GO annotation (at least weak) more often than
    neurons.

    ``cmp``: annotated concepts / concepts vs annotated neurons / neurons. Value: the difference
    of the two rates (concepts − neurons) with Newcombe's 95 % interval; n: concepts + neurons.
    Agrees when the interval is above 0, disagrees when it is below 0, inconclusive when it
    holds 0, with fewer than :data:`MIN_UNITS` units per group or without a
    paper statement. ``fdr``: shares of concepts / neurons whose best term has FDR ≤ 0.05, for
    the sentence."""
    extra = ("" if fdr is None else f" With the FDR q-value of the best term (≤ 0.05) instead: "
             f"{_pct(fdr[0])} of the concepts, {_pct(fdr[1])} of the neurons.")
    text = (f"**{label}.** {_pct(cmp.rate1)} of {cmp.n1} concepts and {_pct(cmp.rate2)} "
            f"of {cmp.n2} neurons get at least a weak GO annotation, {cmp.stats_text()}."
            f"{cmp.power_text()}{extra} The paper finds "
            f"concepts more aligned with pathways than neurons (Fig 3A.b):")
    return _claim(f"ch05_{model}", cmp, paper, text,
                  "concepts − neurons annotation rate > 0 (Newcombe interval)",
                  "concepts + neurons")


def fdr_vs_neurons(model: str, label: str, cmp: RateComparison,
                   paper: str | None = None) -> Claim:
    """Fig 3A.b, FDR-controlled variant: a unit counts as annotated only when its best GO term
    has a Benjamini–Hochberg q-value ≤ 0.05 over the testable sets (GSEApy's FDR), so that the
    "best of many sets by nominal p" cannot make the label. ``cmp``: such concepts / concepts vs
    such neurons / neurons; decided as :func:`annotation_vs_neurons`; key ``ch05_<model>_fdr``."""
    text = (f"**{label}, FDR ≤ 0.05.** Counting a unit as annotated only when its best term "
            f"survives the false-discovery control over the testable sets: {_pct(cmp.rate1)} of "
            f"{cmp.n1} concepts and {_pct(cmp.rate2)} of {cmp.n2} neurons, {cmp.stats_text()}:")
    return _claim(f"ch05_{model}_fdr", cmp, paper, text,
                  "concepts − neurons rate of best term FDR ≤ 0.05 > 0 (Newcombe interval)",
                  "concepts + neurons")


def above_null(model: str, label: str, cmp: RateComparison, paper: str | None = None,
               kind: str = "concept") -> Claim:
    """Control (not in the paper): concepts are annotated more often than the same concepts
    with their attribution scores shuffled across genes, the false-positive baseline of the
    best of many pathways by nominal p. Fig 3A.b reads annotations as biology, so this is its
    premise.

    ``cmp``: annotated units / units vs annotated shuffled / shuffled, for ``kind``
    (``"concept"``: key ``ch05_<model>_null``; ``"neuron"``: ``ch05_<model>_neuron_null``).
    Value: the real minus the null's annotation rate; n: units + shuffled. Decided as
    :func:`annotation_vs_neurons`."""
    what = "concepts" if kind == "concept" else "neurons"
    text = (f"**{label} {what}, shuffled null.** The same procedure on the {cmp.n2} {what} with "
            f"shuffled rankings annotates {_pct(cmp.rate2)} of them, against {_pct(cmp.rate1)} "
            f"with the real rankings (difference {cmp.diff:+.0%}, 95 % interval "
            f"{cmp.interval[0]:+.0%} to {cmp.interval[1]:+.0%}; Fisher's exact test p = "
            f"{cmp.p:.2g}), the false-positive "
            "baseline of nominal p-values on the best of many pathways. Reading the annotations "
            "as biology, as the paper does, needs the real rate above it:")
    return _claim(f"ch05_{model}_null" if kind == "concept" else f"ch05_{model}_neuron_null",
                  cmp, paper, text, "real − shuffled annotation rate > 0 (Newcombe interval)",
                  f"{what} + shuffled {what}")


def fig3ab_claims(model: str, label: str, runs, paper: str | None = None
                  ) -> tuple[list[Claim], dict]:
    """Every Fig 3A.b claim of one model from its GSEA runs.

    ``runs``: ``(kind, shuffled) → GSEA summary`` (:meth:`scconcepts.workflow.Workflow.
    gsea_comparison`, columns ``annotation`` and ``fdr``) for kinds ``"concept"`` and
    ``"neuron"``, real and shuffled. Returns the claims (:func:`annotation_vs_neurons`,
    :func:`fdr_vs_neurons`, :func:`above_null` for both kinds, where the shuffled run exists)
    and the page values ``ch05_<model>_{concepts, neurons}_annotated``, ``_{concepts,
    neurons}_fdr`` (shares with best term FDR ≤ 0.05), ``_fisher_p``,
    ``_n_concepts``, ``_n_neurons``, ``_detectable``, ``_null_annotated`` (concepts) and
    ``_neuron_null_annotated``.
    """
    def rate(t, fdr=False):
        hit = (t["fdr"] <= 0.05) if fdr else (t["annotation"] != "none")
        return int(hit.sum()), len(t)

    c, n = runs[("concept", False)], runs[("neuron", False)]
    main = RateComparison(*rate(c), *rate(n))
    strict = RateComparison(*rate(c, True), *rate(n, True))
    out = [annotation_vs_neurons(model, label, main, paper),
           fdr_vs_neurons(model, label, strict, paper)]
    values = {"concepts_annotated": main.rate1, "neurons_annotated": main.rate2,
              "concepts_fdr": strict.rate1, "neurons_fdr": strict.rate2,
              "fisher_p": main.p, "n_concepts": main.n1, "n_neurons": main.n2,
              "detectable": main.detectable}
    for kind, name in (("concept", "null_annotated"), ("neuron", "neuron_null_annotated")):
        if (kind, True) in runs:
            null = RateComparison(*rate(runs[(kind, False)]), *rate(runs[(kind, True)]))
            out.append(above_null(model, label, null, paper, kind))
            values[name] = null.rate2
    return out, {f"ch05_{model}_{k}": v for k, v in values.items()}


def expert_vs_neurons(model: str, label: str, cmp: RateComparison,
                      paper: str | None = None) -> Claim:
    """Fig 3A.a: experts rate concepts interpretable more often than neurons.

    ``cmp``: interpretable ratings / ratings of concepts vs of neurons (each rater's rating of an
    item counts once; with several raters the ratings of one item are not independent and the
    p-value is optimistic). Value: the difference of the rates; n: ratings. Decided as
    :func:`annotation_vs_neurons`."""
    text = (f"**{label}.** {_pct(cmp.rate1)} of {cmp.n1} concept ratings and {_pct(cmp.rate2)} "
            f"of {cmp.n2} neuron ratings are interpretable, a difference of {cmp.diff:+.0%} "
            f"(95 % interval {cmp.interval[0]:+.0%} to {cmp.interval[1]:+.0%}; Fisher's exact "
            f"test p = {cmp.p:.2g}). The paper's expert finds concepts more "
            "interpretable than neurons (Fig 3A.a):")
    return _claim(f"ch06_{model}_interpretable", cmp, paper, text,
                  "concepts − neurons interpretable rate > 0 (Newcombe interval)", "ratings")


def pool_sensitivity(model: str, label: str, settings, paper: str | None = None
                     ) -> list[Claim]:
    """Fig 3A.b under other counterfactual pools (issue 13, item 3): concepts vs neurons
    annotated, once per pool setting.

    ``settings``: name → (concept GSEA table, neuron GSEA table) (column ``annotation``), e.g.
    the paper's pools, neurons centred at the concepts' firing rate, concepts split at their
    median pre-activation. One :func:`annotation_vs_neurons`-style claim per setting, key
    ``ch05_<model>_pools<i>`` (i = position), value: concepts − neurons annotation rate with
    Newcombe's interval; the sentence names the setting, so that how the gap moves can be read
    across them."""
    out = []
    for i, (name, (c, n)) in enumerate(settings.items()):
        cmp = RateComparison(int((c["annotation"] != "none").sum()), len(c),
                             int((n["annotation"] != "none").sum()), len(n))
        text = (f"**{label}, {name}.** Concepts {_pct(cmp.rate1)} of {cmp.n1}, neurons "
                f"{_pct(cmp.rate2)} of {cmp.n2}: a difference of {cmp.diff:+.0%} (95 % interval "
                f"{cmp.interval[0]:+.0%} to {cmp.interval[1]:+.0%}). Concepts annotated more "
                "often than neurons:")
        out.append(_claim(f"ch05_{model}_pools{i}", cmp, paper, text,
                          f"concepts − neurons annotation rate > 0, {name} (Newcombe interval)",
                          "concepts + neurons"))
    return out


def adjusted_kind(model: str, label: str, coefficients, paper: str | None = None) -> Claim:
    """Does "concept vs neuron" still predict annotation once the counterfactual pairs are
    described (issue 13, item 3)?

    ``coefficients``: :func:`scconcepts.pools.annotation_model`. Value: the log-odds
    coefficient of being a concept in the model with the pair covariates, with its 95 % Wald
    interval; region (0, ∞) (the paper's direction: concepts annotated more often); the
    sentence also gives the coefficient without covariates and the covariates' own. Key
    ``ch05_<model>_adjusted``."""
    t = coefficients.set_index(["model", "term"])
    adj, raw = t.loc[("kind + pairs", "concept")], t.loc[("kind only", "concept")]
    ci = (float(adj["low"]), float(adj["high"]))
    v, reason = decide(ci, (0.0, ABOVE), n=int(adj["n"]), min_n=10, paper=paper is not None,
                       fmt="+.2f")
    covs = "; ".join(f"{term} {r['coef']:+.2f} ({r['low']:+.2f} to {r['high']:+.2f})"
                     for (mdl, term), r in t.iterrows() if mdl == "kind + pairs"
                     and term != "concept")
    if all(map(math.isfinite, (raw["coef"], adj["coef"], *ci))):
        sentence = (f"**{label}, adjusted.** Log-odds of an annotation for a concept rather "
                    f"than a neuron: {raw['coef']:+.2f} ({raw['low']:+.2f} to "
                    f"{raw['high']:+.2f}) alone, {adj['coef']:+.2f} ({ci[0]:+.2f} to "
                    f"{ci[1]:+.2f}) with the pair covariates (per standard deviation: {covs}; "
                    f"{int(adj['n'])} units, logistic regression): {conclusion(v, reason)}.")
    else:   # too few units, or a perfectly separated fit: no coefficient to print
        sentence = (f"**{label}, adjusted.** The logistic regression of an annotation on the "
                    f"kind of unit and the pair covariates has no finite estimate on "
                    f"{int(adj['n'])} units (too few, or perfectly separated): "
                    f"{conclusion('inconclusive', reason or 'no interval could be computed')}.")
    return Claim(key=f"ch05_{model}_adjusted", value=float(adj["coef"]), n=int(adj["n"]),
                 interval=ci, region=(0.0, ABOVE), verdict=v, unit="units", fmt="+.2f",
                 test="log-odds of annotation, concept vs neuron, adjusted for the "
                      "counterfactual pairs > 0 (Wald interval)", sentence=sentence, paper=paper)


def concepts_vs_units(model: str, label: str, units: str, cmp: RateComparison,
                      paper: str | None = None) -> Claim:
    """Fig 3A.b against another baseline (issue 13, item 8): concepts are annotated more often
    than ``units`` (e.g. capacity-matched principal or independent components). ``cmp``:
    annotated concepts / concepts vs annotated units / units; decided as
    :func:`annotation_vs_neurons`; key ``ch05_<model>_vs_<first word of units>``."""
    text = (f"**{label}, concepts vs {units}.** {_pct(cmp.rate1)} of {cmp.n1} concepts and "
            f"{_pct(cmp.rate2)} of {cmp.n2} {units} get at least a weak GO annotation, "
            f"{cmp.stats_text()}.{cmp.power_text()} Concepts annotated more often:")
    key = f"ch05_{model}_vs_{units.split()[0].lower()}"
    return _claim(key, cmp, paper, text,
                  f"concepts − {units} annotation rate > 0 (Newcombe interval)",
                  f"concepts + {units}")

