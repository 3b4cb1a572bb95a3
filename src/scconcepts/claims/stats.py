"""The statistics behind every verdict: intervals, bootstrap replicates and the one decision rule.

A claim of the paper is a statement about a value: R² above 0.95, concepts annotated more often
than neurons (a difference above 0), two accuracies within ±0.05 of each other. Each such
statement is a **region** of values — the set that agrees with the paper, e.g. (0.95, ∞),
(0, ∞) or [−0.05, 0.05] — and each claim function measures the value with a 95 % interval.
:func:`decide` then states the verdict once for the whole book:

* **agrees** when the interval lies inside the region;
* **disagrees** when the interval lies wholly outside it (so "disagrees" never has an interval
  that includes the paper's direction);
* **inconclusive** when the interval overlaps the region's boundary or ends within
  :data:`RESOLUTION` of it (so that drift below the printed digits cannot flip a verdict), when
  fewer units than the claim's minimum back it, when the paper has no value for the model, or
  when no interval can be computed.

Intervals: Wilson score for a proportion (Wilson 1927), exact Clopper–Pearson where the sample is
small, Newcombe's hybrid score interval for a difference of two independent proportions
(Newcombe 1998, via :func:`statsmodels.stats.proportion.confint_proportions_2indep`), Student-t
for a mean of independent units, and a percentile bootstrap (Efron & Tibshirani 1993) over cells
where the value is a function of many cells (R² and differences of R²). Bootstrap replicates are
drawn as multinomial weights so that several values computed on the same cells are resampled
*jointly* (a paired bootstrap), seeded and therefore bit-identical for a given seed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["LEVEL", "N_BOOT", "Z95", "RESOLUTION", "ABOVE", "BELOW", "decide", "wilson", "exact",
           "newcombe", "t_interval", "bootstrap_weights", "r2_replicates", "percentile",
           "min_of", "region_text", "detectable_difference"]

#: confidence level of every interval of the book
LEVEL = 0.95
#: bootstrap replicates of every bootstrap interval
N_BOOT = 1000
#: two-sided 95 % normal quantile (normal-approximation intervals)
Z95 = 1.959964
#: relative resolution of a verdict: an interval bound closer than this (times the boundary,
#: at least 1) to a region's boundary touches it (inconclusive). Glued values show three
#: significant digits; README "Reproducibility" states the drift this absorbs.
RESOLUTION = 1e-3
#: open half-lines, for regions such as (0.95, ∞)
ABOVE, BELOW = math.inf, -math.inf


def _finite_interval(interval) -> bool:
    return (interval is not None and len(interval) == 2
            and all(isinstance(x, (int, float, np.floating, np.integer)) and math.isfinite(x)
                    for x in interval))


def region_text(region: tuple[float, float], fmt: str = ".3g") -> str:
    """The region in words: "> 0.95", "< 0", "between −0.05 and 0.05"."""
    lo, hi = region
    if hi == ABOVE:
        return f"> {lo:{fmt}}"
    if lo == BELOW:
        return f"< {hi:{fmt}}"
    return f"between {lo:{fmt}} and {hi:{fmt}}"


def decide(interval, region: tuple[float, float], n: int | None = None, min_n: int = 1,
           paper: bool = True, fmt: str = ".3g") -> tuple[str, str]:
    """The verdict of a claim from the 95 % interval of its value and the paper's region.

    Parameters
    ----------
    interval
        (low, high) of the measured value; None or non-finite when none could be computed.
    region
        (low, high) of the values that agree with the paper (use :data:`ABOVE` / :data:`BELOW`
        for a half-line). Bounds are boundaries: an interval touching one is inconclusive.
    n, min_n
        Units behind the value and the fewest that can decide.
    paper
        False when the paper has no value for this model (always inconclusive).

    Returns
    -------
    (verdict, reason)
        ``"agrees"``, ``"disagrees"`` or ``"inconclusive"``, and the reason when inconclusive
        (empty otherwise).
    """
    if not paper:
        return "inconclusive", "no paper value for this model"
    if n is not None and n < min_n:
        return "inconclusive", f"n = {n}, fewer than {min_n}"
    if not _finite_interval(interval):
        return "inconclusive", "no interval could be computed"
    lo, hi = map(float, interval)
    a, b = region
    # a bound within RESOLUTION of a boundary touches it: the verdict must not rest on digits
    # the book does not print, which numerical drift across threads or machines may move
    ma, mb = (RESOLUTION * max(1.0, abs(x)) if math.isfinite(x) else 0.0 for x in (a, b))
    if a + ma < lo and hi < b - mb:
        return "agrees", ""
    if hi < a - ma or lo > b + mb:
        return "disagrees", ""
    return "inconclusive", (f"the 95 % interval {lo:{fmt}} to {hi:{fmt}} reaches the boundary "
                            f"of {region_text(region, fmt)}")


def wilson(k: float, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of the proportion ``k / n``; (nan, nan) when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = proportion_confint(k, n, alpha=1 - level, method="wilson")
    return (float(lo), float(hi))


def exact(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact (Clopper–Pearson) interval of the proportion ``k / n``; (nan, nan) when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(level, method="exact")
    return (float(ci.low), float(ci.high))


def newcombe(k1: int, n1: int, k2: int, n2: int, level: float = LEVEL) -> tuple[float, float]:
    """Newcombe's hybrid score interval of ``k1/n1 − k2/n2`` (independent samples); (nan, nan)
    when a sample is empty."""
    if n1 <= 0 or n2 <= 0:
        return (math.nan, math.nan)
    from statsmodels.stats.proportion import confint_proportions_2indep

    lo, hi = confint_proportions_2indep(int(k1), int(n1), int(k2), int(n2), method="newcomb",
                                        compare="diff", alpha=1 - level)
    return (float(lo), float(hi))


def t_interval(values, level: float = LEVEL) -> tuple[float, tuple[float, float] | None, int]:
    """Mean of the finite ``values``, its Student-t interval (None for fewer than 2 values) and
    their number."""
    from scipy import stats

    x = np.asarray(values, dtype=float)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, None, 0
    m = float(x.mean())
    if len(x) < 2:
        return m, None, 1
    h = float(stats.t.ppf(0.5 + level / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, (m - h, m + h), len(x)


def detectable_difference(n1: int, n2: int, base: float, power: float = 0.8,
                          level: float = LEVEL) -> float:
    """The smallest rise of a proportion above ``base`` that a two-sided test of two
    independent proportions (n1 and n2 units, level 1 − ``level``) detects with ``power``:
    Cohen's effect size h solved with :class:`statsmodels.stats.power.NormalIndPower` and
    turned back into a difference at ``base`` (p1 = sin²(asin √base + h/2)); nan when a group
    is empty or the rise would pass 1."""
    if n1 <= 0 or n2 <= 0:
        return math.nan
    from statsmodels.stats.power import NormalIndPower

    h = NormalIndPower().solve_power(effect_size=None, nobs1=n1, alpha=1 - level, power=power,
                                     ratio=n2 / n1)
    angle = math.asin(math.sqrt(min(max(base, 0.0), 1.0))) + float(h) / 2
    return math.sin(angle) ** 2 - base if angle <= math.pi / 2 else math.nan


def bootstrap_weights(n: int, n_boot: int = N_BOOT, seed: int = 0) -> np.ndarray:
    """Multinomial bootstrap weights, (n_boot, n) float64: row b counts how often each of the n
    units is drawn in replicate b. Sharing one matrix across values resamples them jointly."""
    rng = np.random.default_rng(seed)
    return rng.multinomial(n, np.full(n, 1.0 / n), size=n_boot).astype(np.float64)


def r2_replicates(a: np.ndarray, a_hat: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Variance-weighted R² (as :func:`scconcepts.sae.r2_score`) of ``a_hat`` against ``a``, both
    (n_cells, d), in every bootstrap replicate of ``weights`` (n_boot, n_cells); (n_boot,).

    The total sum of squares is recomputed per replicate around the replicate's own mean."""
    a = np.asarray(a, np.float64)
    res = ((a - np.asarray(a_hat, np.float64)) ** 2).sum(1)
    sq = (a ** 2).sum(1)
    w = np.asarray(weights, np.float64)
    tot = w.sum(1)
    sst = w @ sq - ((w @ a) ** 2).sum(1) / tot
    return 1.0 - (w @ res) / sst


def percentile(replicates: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of finite ``replicates``."""
    r = np.asarray(replicates, dtype=float)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return (math.nan, math.nan)
    q = (1 - level) / 2
    return float(np.quantile(r, q)), float(np.quantile(r, 1 - q))


def min_of(intervals: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Interval of the minimum of several values from their simultaneous intervals: (min of the
    lows, min of the highs)."""
    lows, highs = zip(*intervals)
    return float(min(lows)), float(min(highs))
