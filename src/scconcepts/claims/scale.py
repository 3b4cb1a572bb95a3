"""Claims of chapters 02–03: SAE reconstruction and dead concepts across sizes, concept types.

Every function takes what the chapter measured (the model's SAE table, the default size, counts)
and the paper's values from :mod:`scconcepts.reference.scale` (None for a model the paper does
not study: the claim is then inconclusive), and returns a :class:`~scconcepts.claims.Claim` whose
key is the glue prefix the reproduction page reads (``ch02_<model>_...``, ``ch03_<model>_...``).
The thresholds are the module constants below, written nowhere else.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from . import Claim, verdict
from . import conclusion as _conclusion

__all__ = ["R2_MIN", "ACTIVE_TOLERANCE", "CELLTYPE_LARGE", "MIN_SIZES", "MIN_CONCEPTS",
           "wilson_interval", "bootstrap_r2", "page_values", "r2_default", "r2_trend",
           "active_share", "dead_growth", "celltype_share"]

#: Fig 2A / Sec 4.2: every SAE of the paper reconstructs its embeddings with R² above this
R2_MIN = 0.95
#: the share of active concepts at the default size agrees within this many points of the paper's
ACTIVE_TOLERANCE = 0.05
#: "a large proportion" of cell-type-specific concepts (Fig 2B), read as at least this share
CELLTYPE_LARGE = 0.30
#: a trend over SAE sizes needs at least this many sizes to be tested
MIN_SIZES = 3
#: a share of concepts needs at least this many concepts to be tested
MIN_CONCEPTS = 3

def wilson_interval(successes: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval (95 % by default) of a proportion ``successes / n``; (nan, nan)
    when n = 0."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def bootstrap_r2(a: np.ndarray, a_hat: np.ndarray, n_boot: int = 200, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval over cells of the variance-weighted R² of a reconstruction
    ``a_hat`` of ``a`` (both (n_cells, d))."""
    a, a_hat = np.asarray(a, np.float64), np.asarray(a_hat, np.float64)
    rng = np.random.default_rng(seed)
    res = ((a - a_hat) ** 2).sum(1)
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(a), len(a))
        stats.append(1 - res[idx].sum() / ((a[idx] - a[idx].mean(0)) ** 2).sum())
    q = (1 - level) / 2
    return float(np.quantile(stats, q)), float(np.quantile(stats, 1 - q))


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("c").reset_index(drop=True)


def page_values(model: str, table: pd.DataFrame, c: int, k: int) -> dict:
    """The measured values of chapter 02 that the reproduction page shows next to the verdicts:
    ``ch02_<model>_{c_default, active_default, active_share, dead_default, r2_first, r2_last,
    c_largest, dead_largest}`` (first/last/largest by c)."""
    t = _sorted(table)
    d = t.set_index(["c", "k"]).loc[(c, k)]
    return {f"ch02_{model}_{name}": v for name, v in {
        "c_default": int(c), "active_default": int(d["active_concepts"]),
        "active_share": float(d["active_concepts"]) / c, "dead_default": int(d["dead_concepts"]),
        "r2_first": float(t["r2"].iloc[0]), "r2_last": float(t["r2"].iloc[-1]),
        "c_largest": int(t["c"].iloc[-1]), "dead_largest": int(t["dead_concepts"].iloc[-1]),
    }.items()}


def r2_default(model: str, label: str, c: int, k: int, r2: float,
               interval: tuple[float, float] | None = None, paper: dict | None = None,
               held_out: int | None = None) -> Claim:
    """Fig 2A / Table 3: the default SAE reconstructs the embeddings with R² > :data:`R2_MIN`.

    ``held_out``: R² and ``interval`` are measured on this many cells the SAE never trained on
    (the stopping rule's split, as the paper's 10 %); it is the claim's n. Inconclusive when the
    paper has no value for the model (``paper`` None, else
    :func:`scconcepts.reference.scale.paper_default`) or ``interval`` (e.g.
    :func:`bootstrap_r2`) contains the threshold."""
    holds = r2 > R2_MIN
    uncertain = interval is not None and interval[0] <= R2_MIN <= interval[1]
    v = verdict(holds, uncertain=uncertain or paper is None)
    ci = f" (95 % bootstrap interval {interval[0]:.3f}–{interval[1]:.3f})" if interval else ""
    ref = (f"paper's default SAE, *c* = {paper['c']}, *k* = {paper['k']}: {paper['r2']:.3f}"
           if paper else "no paper value for this model")
    reason = ("no paper value for this model" if paper is None
              else f"the interval contains {R2_MIN}")
    cells = (f"the embeddings of {held_out} held-out cells (never trained on)" if held_out
             else "the embeddings")
    sentence = (f"**{label}.** At the default size (*c* = {c}, *k* = {k}) the SAE reconstructs "
                f"{cells} with R² = {r2:.3f}{ci}, {'above' if holds else 'not above'} the "
                f"{R2_MIN} that every SAE of the paper reaches ({ref}): "
                f"{_conclusion(v, reason)}.")
    return Claim(key=f"ch02_{model}_r2_default", value=float(r2), n=held_out,
                 test=f"R² > {R2_MIN}", verdict=v, sentence=sentence, interval=interval,
                 paper=paper["r2"] if paper else None)


def r2_trend(model: str, label: str, table: pd.DataFrame,
             paper_table: pd.DataFrame | None = None) -> Claim:
    """Fig 2A: R² increases with the number of concepts c, at every step of the grid.

    ``table`` has columns c, r2 (the model's SAE table); ``paper_table`` the paper's rows of the
    same model (:func:`scconcepts.reference.scale.paper_grid`; empty or None when the paper does
    not study it). Value: R² gain from the smallest to the largest c; n: sizes. Inconclusive
    with fewer than :data:`MIN_SIZES` sizes or no paper values."""
    t = _sorted(table)
    r2 = t["r2"].to_numpy(float)
    gain, n = float(r2[-1] - r2[0]), len(t)
    holds = bool(np.all(np.diff(r2) > 0))
    has_paper = paper_table is not None and len(paper_table) > 0
    v = verdict(holds, n=n, min_n=MIN_SIZES, uncertain=not has_paper)
    reason = (f"{n} SAE sizes, at least {MIN_SIZES} needed" if n < MIN_SIZES
              else "no paper value for this model")
    steps = ", ".join(f"{x:.3f}" for x in r2)
    sizes = ", ".join(str(int(x)) for x in t["c"])
    sentence = (f"**{label}.** Across the grid (*c* = {sizes}) R² is {steps}: it "
                f"{'rises at every step' if holds else 'does not rise at every step'} "
                f"({gain:+.3f} from the smallest to the largest *c*")
    if has_paper:
        p = _sorted(paper_table)
        sentence += f"; paper: {p['r2'].iloc[0]:.3f} to {p['r2'].iloc[-1]:.3f}"
        both = t.merge(p[["c", "k", "r2"]], on=["c", "k"], suffixes=("", "_paper"))
        if len(both):
            lower = both.loc[both["r2"] < both["r2_paper"], "c"].astype(int).tolist()
            sentence += (f"; below the paper's R² at {len(lower)} of the {len(both)} sizes both "
                         "have" + (f", *c* = {', '.join(map(str, lower))}" if lower else ""))
    sentence += f"): {_conclusion(v, reason)}."
    return Claim(key=f"ch02_{model}_r2_trend", value=gain, n=n,
                 test="R² strictly increasing with c at every step of the grid", verdict=v,
                 sentence=sentence,
                 paper=(float(_sorted(paper_table)["r2"].iloc[-1] - _sorted(paper_table)["r2"]
                              .iloc[0]) if has_paper else None))


def active_share(model: str, label: str, c: int, k: int, active: int,
                 paper: dict | None = None) -> Claim:
    """Table 3: the share of active concepts of the default SAE is within
    :data:`ACTIVE_TOLERANCE` of the paper's default SAE of the same model.

    n = c; the interval is Wilson's; inconclusive when it crosses a tolerance bound or the paper
    has no value for the model."""
    active, c = int(active), int(c)
    share = active / c
    interval = wilson_interval(active, c)
    if paper is None:
        holds, uncertain, p_share = False, True, None
    else:
        p_share = paper["active_share"]
        lo, hi = p_share - ACTIVE_TOLERANCE, p_share + ACTIVE_TOLERANCE
        holds = lo <= share <= hi
        uncertain = any(interval[0] <= b <= interval[1] for b in (lo, hi))
    v = verdict(holds, n=c, min_n=MIN_CONCEPTS, uncertain=uncertain)
    reason = ("no paper value for this model" if paper is None
              else "the 95 % interval of the share crosses a bound of the tolerance")
    ref = (f"the paper's {p_share:.0%} ({paper['active_concepts']} of {paper['c']})"
           if paper else "no paper value")
    sentence = (f"**{label}.** {active} of {c} concepts of the default SAE are active, "
                f"{share:.0%} (95 % interval {interval[0]:.0%}–{interval[1]:.0%}), "
                f"{'within' if holds else 'not within'} {ACTIVE_TOLERANCE * 100:.0f} points of "
                f"{ref}: {_conclusion(v, reason)}.")
    return Claim(key=f"ch02_{model}_active", value=float(share), n=int(c),
                 test=f"|active share − paper's| ≤ {ACTIVE_TOLERANCE}", verdict=v,
                 sentence=sentence, interval=interval, paper=p_share)


def dead_growth(model: str, label: str, table: pd.DataFrame,
                paper_table: pd.DataFrame | None = None) -> Claim:
    """Sec 4.2 / Table 3: larger dictionaries keep more dead concepts.

    Compared across the model's whole grid (never the default size with itself): the dead count
    never falls as c grows and is larger at the largest c than at the smallest. Value: dead at
    the largest minus dead at the smallest c; n: sizes. Inconclusive with fewer than
    :data:`MIN_SIZES` sizes or no paper values."""
    t = _sorted(table)
    dead = t["dead_concepts"].to_numpy(int)
    n, rise = len(t), int(dead[-1] - dead[0])
    holds = bool(np.all(np.diff(dead) >= 0) and rise > 0)
    has_paper = paper_table is not None and len(paper_table) > 0
    v = verdict(holds, n=n, min_n=MIN_SIZES, uncertain=not has_paper)
    reason = (f"{n} SAE sizes, at least {MIN_SIZES} needed" if n < MIN_SIZES
              else "no paper value for this model")
    counts = " → ".join(f"{d} (*c* = {int(c)})" for d, c in zip(dead, t["c"]))
    sentence = (f"**{label}.** Dead concepts across the grid: {counts}, "
                f"{'growing' if holds else 'not growing'} with *c* ({rise:+d} from the smallest to "
                "the largest")
    if has_paper:
        p = _sorted(paper_table)
        sentence += (f"; paper: {int(p['dead_concepts'].iloc[0])} at *c* = {int(p['c'].iloc[0])}"
                     f" to {int(p['dead_concepts'].iloc[-1])} at *c* = {int(p['c'].iloc[-1])}")
    sentence += f"): {_conclusion(v, reason)}."
    return Claim(key=f"ch02_{model}_dead", value=rise, n=n,
                 test="dead concepts non-decreasing with c over the grid, largest > smallest",
                 verdict=v, sentence=sentence,
                 paper=(int(_sorted(paper_table)["dead_concepts"].iloc[-1]
                            - _sorted(paper_table)["dead_concepts"].iloc[0])
                        if has_paper else None))


def celltype_share(model: str, label: str, n_enough: int, share: float,
                   paper: str | None = None) -> Claim:
    """Fig 2B: a large proportion (≥ :data:`CELLTYPE_LARGE`) of the concepts that activate in
    enough cells are cell-type-specific.

    ``n_enough``, ``share``: :func:`scconcepts.concepts.specific_share` of the default SAE;
    ``paper``: the paper's wording (:data:`scconcepts.reference.scale.PAPER_CELLTYPE_SPECIFIC`),
    None when it does not study the model. Inconclusive with fewer than :data:`MIN_CONCEPTS`
    concepts, when the Wilson 95 % interval contains the threshold, or without paper value."""
    n = int(n_enough)
    ok = n > 0 and not math.isnan(share)
    interval = wilson_interval(round(share * n), n) if ok else None
    holds = ok and share >= CELLTYPE_LARGE
    uncertain = (paper is None or not ok
                 or interval[0] <= CELLTYPE_LARGE <= interval[1])
    v = verdict(holds, n=n, min_n=MIN_CONCEPTS, uncertain=uncertain)
    reason = (f"{n} concepts with enough cells, at least {MIN_CONCEPTS} needed"
              if n < MIN_CONCEPTS else "no paper value for this model" if paper is None
              else f"the 95 % interval contains {CELLTYPE_LARGE:.0%}")
    ci = f" (95 % interval {interval[0]:.0%}–{interval[1]:.0%})" if interval else ""
    shown = f"{share:.0%}" if ok else "no share"
    sentence = (f"**{label}.** {shown}{ci} of the {n} concepts that activate in enough cells are "
                f"cell-type-specific, {'at least' if holds else 'below'} "
                f"{CELLTYPE_LARGE:.0%}, the book's reading of the paper's "
                f"\"{paper or 'a large proportion'}\": {_conclusion(v, reason)}.")
    return Claim(key=f"ch03_{model}_celltype", value=float(share), n=n,
                 test=f"share of cell-type-specific concepts ≥ {CELLTYPE_LARGE}", verdict=v,
                 sentence=sentence, interval=interval, paper=paper)
