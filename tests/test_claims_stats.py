"""The decision rule and intervals behind every verdict (:mod:`scconcepts.claims.stats`) and the
consistency the :class:`~scconcepts.claims.Claim` objects enforce, on cases with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from scconcepts.claims import ABOVE, BELOW, Claim, decide
from scconcepts.claims import stats


@pytest.mark.parametrize("interval, region, expected", [
    ((0.96, 0.98), (0.95, ABOVE), "agrees"),
    ((0.90, 0.94), (0.95, ABOVE), "disagrees"),
    ((0.94, 0.96), (0.95, ABOVE), "inconclusive"),     # reaches the boundary
    ((0.95, 0.97), (0.95, ABOVE), "inconclusive"),     # touching counts as reaching
    ((-0.2, -0.1), (BELOW, 0.0), "agrees"),
    ((-0.03, 0.02), (-0.05, 0.05), "agrees"),           # "within ±0.05"
    ((0.06, 0.09), (-0.05, 0.05), "disagrees"),
    ((-0.07, -0.06), (-0.05, 0.05), "disagrees"),
    ((0.01, 0.08), (-0.05, 0.05), "inconclusive"),
    (None, (0.0, ABOVE), "inconclusive"),
    ((math.nan, 1.0), (0.0, ABOVE), "inconclusive"),
    ((0.9505, 0.97), (0.95, ABOVE), "inconclusive"),   # within RESOLUTION: not printed digits
    ((0.9515, 0.97), (0.95, ABOVE), "agrees"),
    ((0.90, 0.9495), (0.95, ABOVE), "inconclusive"),
    ((1e-4, 0.3), (0.0, ABOVE), "inconclusive"),        # at least 1e-3 absolute near zero
    ((2e-3, 0.3), (0.0, ABOVE), "agrees"),
])
def test_decide(interval, region, expected):
    v, reason = decide(interval, region)
    assert v == expected and (reason == "") == (expected != "inconclusive")


def test_decide_minimum_units_and_paper():
    assert decide((0.5, 0.6), (0.0, ABOVE), n=2, min_n=3) == ("inconclusive",
                                                             "n = 2, fewer than 3")
    assert decide((0.5, 0.6), (0.0, ABOVE), paper=False)[0] == "inconclusive"


def test_claim_refuses_a_verdict_its_interval_does_not_support():
    ok = Claim("k", 0.3, 40, "t", "disagrees", "s", (0.2, 0.4), region=(0.5, ABOVE))
    assert ok.verdict == "disagrees"
    with pytest.raises(ValueError, match="reaches the paper's region"):
        Claim("k", 0.45, 40, "t", "disagrees", "s", (0.3, 0.6), region=(0.5, ABOVE))
    with pytest.raises(ValueError, match="not inside"):
        Claim("k", 0.55, 40, "t", "agrees", "s", (0.45, 0.65), region=(0.5, ABOVE))
    with pytest.raises(ValueError, match="verdict"):
        Claim("k", 0.55, 40, "t", "as in the paper", "s")
    # inconclusive is always allowed
    assert Claim("k", 0.55, 40, "t", "inconclusive", "s", (0.45, 0.65), region=(0.5, ABOVE))


def test_evidence_states_n_value_interval_and_test():
    c = Claim("k", 0.912, 1211, "R² > 0.95", "disagrees", "s", (0.910, 0.915),
              region=(0.95, ABOVE), unit="held-out cells", fmt=".3f")
    assert c.evidence == ("n = 1,211 held-out cells; 0.912 (95 % interval 0.910 to 0.915); "
                          "R² > 0.95")
    glued = c.glue(lambda k, v, display: None)
    assert glued["k_evidence"] == c.evidence and glued["k_n"] == 1211
    assert "no interval" in Claim("k", 3, 4, "t", "inconclusive", "s").evidence


def test_intervals_match_published_values():
    # Wilson (1927) score interval of 15/148 as in Newcombe (1998), Table I: 0.0624–0.1605
    assert stats.wilson(15, 148) == pytest.approx((0.0624, 0.1605), abs=1e-4)
    # Newcombe (1998) difference example 56/70 − 48/80, hybrid score (method 10):
    # 0.0524 to 0.3339
    assert stats.newcombe(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=1e-4)
    # exact Clopper–Pearson of 0/10: upper 1 − 0.025^(1/10) = 0.3085
    assert stats.exact(0, 10) == pytest.approx((0.0, 0.3085), abs=1e-4)
    m, ci, n = stats.t_interval([1.0, 2.0, 3.0, np.nan])
    assert (m, n) == (2.0, 3) and ci == pytest.approx((2 - 2.4842, 2 + 2.4842), abs=1e-3)


def test_bootstrap_r2_replicates_are_seeded_and_cover_the_estimate():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(400, 4))
    a_hat = a + 0.5 * rng.normal(size=a.shape)
    w = stats.bootstrap_weights(len(a), 500, seed=7)
    assert w.shape == (500, 400) and (w.sum(1) == 400).all()
    assert np.array_equal(w, stats.bootstrap_weights(len(a), 500, seed=7))
    reps = stats.r2_replicates(a, a_hat, w)
    r2 = 1 - ((a - a_hat) ** 2).sum() / ((a - a.mean(0)) ** 2).sum()
    lo, hi = stats.percentile(reps)
    assert lo < r2 < hi
    # a weight row of ones is the full sample
    assert stats.r2_replicates(a, a_hat, np.ones((1, 400)))[0] == pytest.approx(r2)


def test_min_of_intervals():
    assert stats.min_of([(0.6, 0.8), (0.55, 0.9), (0.7, 0.75)]) == (0.55, 0.75)
