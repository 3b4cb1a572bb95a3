"""Claims of chapters 02–03: SAE reconstruction and dead concepts across sizes, concept types.

Every function takes what the chapter measured (the model's SAE table, the default size, counts)
and the paper's values from :mod:`scconcepts.reference.scale` (None for a model the paper does
not study: the claim is then inconclusive), and returns a :class:`~scconcepts.claims.Claim` whose
key is the glue prefix the reproduction page reads (``ch02_<model>_...``, ``ch03_<model>_...``).
The thresholds are the module constants below, written nowhere else.
"""

from __future__ import annotations

import math

from collections.abc import Sequence

import numpy as np
import pandas as pd

from . import ABOVE, Claim, decide, stats
from . import conclusion as _conclusion

__all__ = ["R2_MIN", "ACTIVE_TOLERANCE", "CELLTYPE_LARGE", "MIN_SIZES", "MIN_CONCEPTS",
           "wilson_interval", "bootstrap_r2", "r2_step_replicates", "page_values", "r2_default",
           "r2_trend", "active_share", "dead_growth", "celltype_share", "claims_table"]

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

def wilson_interval(successes: float, n: int) -> tuple[float, float]:
    """Wilson score 95 % interval of a proportion ``successes / n``; (nan, nan) when n = 0
    (:func:`scconcepts.claims.stats.wilson`)."""
    return stats.wilson(successes, n)


def bootstrap_r2(a: np.ndarray, a_hat: np.ndarray, n_boot: int = stats.N_BOOT, seed: int = 0,
                 level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval over cells of the variance-weighted R² of a reconstruction
    ``a_hat`` of ``a`` (both (n_cells, d)); :func:`scconcepts.claims.stats.r2_replicates`."""
    w = stats.bootstrap_weights(len(a), n_boot, seed)
    return stats.percentile(stats.r2_replicates(a, a_hat, w), level)


def r2_step_replicates(a: np.ndarray, reconstructions: Sequence[np.ndarray],
                       n_boot: int = stats.N_BOOT, seed: int = 0) -> np.ndarray:
    """Paired bootstrap of the smallest R² step along a grid of SAEs.

    ``a``: held-out embeddings (n_cells, d) that no SAE of the grid trained on;
    ``reconstructions``: each SAE's reconstruction of ``a``, ordered by c. Every replicate
    resamples the cells once for all SAEs and returns min over steps of (R²_{i+1} − R²_i);
    (n_boot,)."""
    w = stats.bootstrap_weights(len(a), n_boot, seed)
    r2 = np.stack([stats.r2_replicates(a, r, w) for r in reconstructions])
    return np.diff(r2, axis=0).min(0)


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    return table.sort_values("c").reset_index(drop=True)


def page_values(model: str, table: pd.DataFrame, c: int, k: int) -> dict:
    """The measured values of chapter 02 that the reproduction page and the chapter's text show
    next to the verdicts: ``ch02_<model>_{c_default, k_default, active_default, active_share,
    dead_default, r2_first, r2_last, c_smallest, dead_smallest, c_largest, dead_largest}``
    (first/last/smallest/largest by c; the dead-concept claim compares the smallest and the
    largest SAE of the grid), and the grid as text: ``grid_c``, ``grid_k`` ("128, 256, 640")."""
    t = _sorted(table)
    d = t.set_index(["c", "k"]).loc[(c, k)]
    return {f"ch02_{model}_{name}": v for name, v in {
        "c_default": int(c), "k_default": int(k), "active_default": int(d["active_concepts"]),
        "active_share": float(d["active_concepts"]) / c, "dead_default": int(d["dead_concepts"]),
        "r2_first": float(t["r2"].iloc[0]), "r2_last": float(t["r2"].iloc[-1]),
        "c_smallest": int(t["c"].iloc[0]), "dead_smallest": int(t["dead_concepts"].iloc[0]),
        "c_largest": int(t["c"].iloc[-1]), "dead_largest": int(t["dead_concepts"].iloc[-1]),
        "grid_c": ", ".join(str(int(x)) for x in t["c"]),
        "grid_k": ", ".join(str(int(x)) for x in t["k"]),
    }.items()}


def _format(x, fmt: str) -> str:
    try:
        return format(x, fmt)
    except (TypeError, ValueError):
        return str(x)


def claims_table(claims: Sequence[tuple[str, Claim]]) -> pd.DataFrame:
    """The claims of a chapter as a table a reader can read: one row per (model label, claim)
    with what was tested, n (with its unit), the value with its 95 % interval (formatted as the
    claim formats it) and the verdict."""
    rows = []
    for label, c in claims:
        value = _format(c.value, c.fmt)
        if c.interval is not None and all(map(math.isfinite, c.interval)):
            value += f" ({_format(c.interval[0], c.fmt)} to {_format(c.interval[1], c.fmt)})"
        n = "–" if c.n is None else f"{int(c.n):,}" + (f" {c.unit}" if c.unit else "")
        rows.append({"model": label, "claim": c.test, "n": n,
                     "value (95 % interval)": value, "verdict": c.verdict})
    return pd.DataFrame(rows, columns=["model", "claim", "n", "value (95 % interval)",
                                       "verdict"])


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
    v, reason = decide(interval, (R2_MIN, ABOVE), paper=paper is not None, fmt=".3f")
    ci = f" (95 % bootstrap interval {interval[0]:.3f}–{interval[1]:.3f})" if interval else ""
    ref = (f"paper's default SAE, *c* = {paper['c']}, *k* = {paper['k']}: {paper['r2']:.3f}"
           if paper else "no paper value for this model")
    cells = (f"the embeddings of {held_out} held-out cells (never trained on)" if held_out
             else "the embeddings")
    sentence = (f"**{label}.** At the default size (*c* = {c}, *k* = {k}) the SAE reconstructs "
                f"{cells} with R² = {r2:.3f}{ci}, {'above' if holds else 'not above'} the "
                f"{R2_MIN} that every SAE of the paper reaches ({ref}): "
                f"{_conclusion(v, reason)}.")
    return Claim(key=f"ch02_{model}_r2_default", value=float(r2), n=held_out,
                 test=f"R² > {R2_MIN} (bootstrap interval above it)", verdict=v,
                 sentence=sentence, interval=interval, paper=paper["r2"] if paper else None,
                 region=(R2_MIN, ABOVE), unit="held-out cells" if held_out else "", fmt=".3f")


def r2_trend(model: str, label: str, table: pd.DataFrame,
             paper_table: pd.DataFrame | None = None, steps: np.ndarray | None = None,
             held_out: int | None = None) -> Claim:
    """Fig 2A: R² increases with the number of concepts c, at every step of the grid.

    ``table`` has columns c, r2 and, when measured, r2_val (R² on held-out cells, used when
    present); ``paper_table`` the paper's rows of the same model
    (:func:`scconcepts.reference.scale.paper_grid`; empty or None when the paper does not study
    it); ``steps``: :func:`r2_step_replicates` on the ``held_out`` cells that no SAE of the grid
    trained on. Value: the smallest R² step between consecutive sizes, with the percentile
    bootstrap interval of ``steps``; region (0, ∞): agrees when every step is clearly positive,
    disagrees when one is clearly negative. Inconclusive with fewer than :data:`MIN_SIZES`
    sizes, no replicates or no paper values."""
    t = _sorted(table)
    col = "r2_val" if "r2_val" in t and t["r2_val"].notna().all() else "r2"
    r2 = t[col].to_numpy(float)
    gain, n_sizes = float(r2[-1] - r2[0]), len(t)
    step = float(np.diff(r2).min()) if n_sizes > 1 else float("nan")
    has_paper = paper_table is not None and len(paper_table) > 0
    interval = stats.percentile(steps) if steps is not None and n_sizes > 1 else None
    if n_sizes < MIN_SIZES:
        v, reason = "inconclusive", f"{n_sizes} SAE sizes, at least {MIN_SIZES} needed"
    else:
        v, reason = decide(interval, (0.0, ABOVE), paper=has_paper, fmt=".4f")
    where = "held-out cells" if col == "r2_val" else "training cells"
    steps_txt = ", ".join(f"{x:.3f}" for x in r2)
    sizes = ", ".join(str(int(x)) for x in t["c"])
    ci = (f", 95 % paired bootstrap interval {interval[0]:+.4f} to {interval[1]:+.4f} over "
          f"{held_out} held-out cells" if interval is not None else "")
    sentence = (f"**{label}.** Across the grid (*c* = {sizes}) R² on {where} is {steps_txt}: "
                f"the smallest step is {step:+.4f}{ci} ({gain:+.3f} from the smallest to the "
                "largest *c*")
    if has_paper:
        p = _sorted(paper_table)
        sentence += f"; paper: {p['r2'].iloc[0]:.3f} to {p['r2'].iloc[-1]:.3f}"
        both = t.merge(p[["c", "k", "r2"]], on=["c", "k"], suffixes=("", "_paper"))
        if len(both):
            lower = both.loc[both[col] < both["r2_paper"], "c"].astype(int).tolist()
            sentence += (f"; below the paper's R² at {len(lower)} of the {len(both)} sizes both "
                         "have" + (f", *c* = {', '.join(map(str, lower))}" if lower else ""))
    sentence += f"): {_conclusion(v, reason)}."
    return Claim(key=f"ch02_{model}_r2_trend", value=step, n=held_out,
                 test="smallest R² step between consecutive sizes > 0 (paired bootstrap over "
                      "held-out cells)", verdict=v, sentence=sentence, interval=interval,
                 region=(0.0, ABOVE), unit=f"held-out cells, {n_sizes} SAE sizes", fmt="+.4f",
                 paper=(float(_sorted(paper_table)["r2"].diff().min()) if has_paper
                        and len(paper_table) > 1 else None))


def active_share(model: str, label: str, c: int, k: int, active: int,
                 paper: dict | None = None) -> Claim:
    """Table 3: the share of active concepts of the default SAE is within
    :data:`ACTIVE_TOLERANCE` of the paper's default SAE of the same model.

    n = c; the interval is Wilson's; region: the paper's share ± ACTIVE_TOLERANCE (agrees with
    the interval inside it, disagrees with the interval outside); inconclusive when it crosses a
    bound or the paper has no value for the model."""
    active, c = int(active), int(c)
    share = active / c
    interval = wilson_interval(active, c)
    p_share = None if paper is None else paper["active_share"]
    region = (None if paper is None else
              (p_share - ACTIVE_TOLERANCE, p_share + ACTIVE_TOLERANCE))
    holds = region is not None and region[0] <= share <= region[1]
    v, reason = (("inconclusive", "no paper value for this model") if region is None else
                 decide(interval, region, n=c, min_n=MIN_CONCEPTS, fmt=".0%"))
    ref = (f"the paper's {p_share:.0%} ({paper['active_concepts']} of {paper['c']})"
           if paper else "no paper value")
    sentence = (f"**{label}.** {active} of {c} concepts of the default SAE are active, "
                f"{share:.0%} (95 % interval {interval[0]:.0%}–{interval[1]:.0%}), "
                f"{'within' if holds else 'not within'} {ACTIVE_TOLERANCE * 100:.0f} points of "
                f"{ref}: {_conclusion(v, reason)}.")
    return Claim(key=f"ch02_{model}_active", value=float(share), n=int(c),
                 test=f"|active share − paper's| ≤ {ACTIVE_TOLERANCE} (Wilson interval inside)",
                 verdict=v, sentence=sentence, interval=interval, paper=p_share, region=region,
                 unit="concepts", fmt=".0%")


def dead_growth(model: str, label: str, table: pd.DataFrame,
                paper_table: pd.DataFrame | None = None) -> Claim:
    """Sec 4.2 / Table 3: larger dictionaries keep more dead concepts (the paper counts them).

    Compared across the model's whole grid (never the default size with itself): the dead
    count at the largest c minus that at the smallest c. Its 95 % interval treats each concept of
    an SAE as dead or alive by chance of training (binomial with the SAE's dead share: variance
    Σ c·p(1 − p) over the two SAEs, normal approximation); region (0, ∞). n: concepts of the two
    SAEs. The sentence lists the dead counts and shares at every size. Inconclusive with fewer
    than :data:`MIN_SIZES` sizes, an interval containing 0, or no paper values."""
    t = _sorted(table)
    dead, cs = t["dead_concepts"].to_numpy(int), t["c"].to_numpy(int)
    n_sizes = len(t)
    rise = int(dead[-1] - dead[0]) if n_sizes else 0
    interval = None
    if n_sizes > 1:
        var = sum(c * (d / c) * (1 - d / c) for d, c in ((dead[0], cs[0]), (dead[-1], cs[-1])))
        h = stats.Z95 * math.sqrt(var)
        interval = (rise - h, rise + h)
    has_paper = paper_table is not None and len(paper_table) > 0
    if n_sizes < MIN_SIZES:
        v, reason = "inconclusive", f"{n_sizes} SAE sizes, at least {MIN_SIZES} needed"
    else:
        v, reason = decide(interval, (0.0, ABOVE), paper=has_paper, fmt=".0f")
    counts = " → ".join(f"{d} of {int(c)} ({d / c:.0%})" for d, c in zip(dead, t["c"]))
    ci = (f", 95 % interval {interval[0]:+.0f} to {interval[1]:+.0f}" if interval is not None
          else "")
    sentence = (f"**{label}.** Dead concepts across the grid: {counts}, "
                f"{'more' if rise > 0 else 'not more'} in the largest dictionary ({rise:+d}{ci}")
    if has_paper:
        p = _sorted(paper_table)
        sentence += (f"; paper: {int(p['dead_concepts'].iloc[0])} at *c* = {int(p['c'].iloc[0])}"
                     f" to {int(p['dead_concepts'].iloc[-1])} at *c* = {int(p['c'].iloc[-1])}")
    sentence += f"): {_conclusion(v, reason)}."
    pp = _sorted(paper_table) if has_paper else None
    return Claim(key=f"ch02_{model}_dead", value=rise, n=int(cs[0] + cs[-1]) if n_sizes else 0,
                 test="dead concepts at the largest c − at the smallest c > 0 (binomial "
                      "interval)", verdict=v, sentence=sentence, interval=interval,
                 region=(0.0, ABOVE), unit="concepts of the smallest and largest SAE",
                 fmt="+.0f",
                 paper=(int(pp["dead_concepts"].iloc[-1] - pp["dead_concepts"].iloc[0])
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
    v, reason = decide(interval, (CELLTYPE_LARGE, ABOVE), n=n, min_n=MIN_CONCEPTS,
                       paper=paper is not None, fmt=".0%")
    ci = f" (95 % interval {interval[0]:.0%}–{interval[1]:.0%})" if interval else ""
    shown = f"{share:.0%}" if ok else "no share"
    sentence = (f"**{label}.** {shown}{ci} of the {n} concepts that activate in enough cells are "
                f"cell-type-specific, {'at least' if holds else 'below'} "
                f"{CELLTYPE_LARGE:.0%}, the book's reading of the paper's "
                f"\"{paper or 'a large proportion'}\": {_conclusion(v, reason)}.")
    return Claim(key=f"ch03_{model}_celltype", value=float(share), n=n,
                 test=f"share of cell-type-specific concepts ≥ {CELLTYPE_LARGE} (Wilson "
                      "interval above it)", verdict=v,
                 sentence=sentence, interval=interval, paper=paper,
                 region=(CELLTYPE_LARGE, ABOVE), unit="concepts with enough cells", fmt=".0%")
