"""Claims of chapter 07 (stability across datasets and seeds, Sec 4.4 and Fig 4 of the paper).

Every function takes what the chapter measured (R² tables, matching scores, shared-gene counts)
and returns a :class:`~scconcepts.claims.Claim`. Models are named by the profile's model names;
the paper's findings come from :mod:`scconcepts.reference.stability`. A claim that compares two
models is ``"inconclusive"`` when the profile lacks one of them.

The verdicts of Fig 4 come from :func:`scconcepts.claims.stats.decide`: the 95 % interval of the
value against the region that agrees with the paper. The R² gaps of Fig 4A (R² on the SAE's own
held-out cells − R² on every cell of the other dataset) get a percentile bootstrap over cells,
paired: one resampling of each dataset's cells serves every SAE and model
(:func:`scconcepts.stability.cross_r2_replicates`, :func:`r2_gap_replicates`).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..reference.stability import PAPER_FIG4, PAPER_MODELS
from . import ABOVE, BELOW, Claim, conclusion, decide, stats, verdict

__all__ = ["KEPT_COSINE", "FAR_COSINE", "SHARED_SHARE", "SEED_SPREAD", "atom_stability", "r2_gaps",
           "r2_gap_replicates",
           "r2_gap_cells", "init_cosine",
           "all_lower", "main_smaller", "larger_drop", "matching_vs_null", "every",
           "more_stable", "shared_genes", "seed_vs_dataset"]

KEPT_COSINE = 0.7    # mean cosine of trained atoms with their initialisation above: cos² > 0.49,
                     # more than half of an atom's direction still its random start
FAR_COSINE = 0.3     # at or below (cos² ≤ 0.09): the atoms moved far from their random start
SHARED_SHARE = 0.5   # "often": at least half of the matched pairs share a top-10 gene
SEED_SPREAD = 2.0    # cross-dataset score within this many seed-to-seed stds of their mean
MIN_UNITS = 3        # fewer pairs / seeds than this cannot decide


def _finite(x) -> bool:
    return x is not None and np.isfinite(float(x))


def _label(labels: Mapping[str, str], model: str) -> str:
    return labels.get(model) or PAPER_MODELS.get(model, model)


def r2_gaps(r2: pd.DataFrame) -> pd.Series:
    """R² on the SAE's own dataset minus R² on the other one, per training dataset.

    ``r2``: :func:`scconcepts.stability.cross_r2_table` (columns ``trained on``, ``own data``,
    ``r2``; own data on the SAE's held-out cells). Returns a Series indexed by the training
    dataset (``main``, ``second``)."""
    own = r2[r2["own data"]].set_index("trained on")["r2"]
    other = r2[~r2["own data"]].set_index("trained on")["r2"]
    return (own - other).rename("R² own − other")


def init_cosine(moved: Mapping[str, Mapping[str, float]], key: str = "ch07_init") -> Claim:
    """How far training moved each SAE's active atoms from their random start.

    ``moved``: model label → training dataset → mean cosine of the active trained atoms with the
    same atoms at initialisation (:func:`scconcepts.stability.moved_from_init`). The sentence
    states the measured cosine of *every* SAE and names those that keep a mean cosine above
    :data:`KEPT_COSINE` (cos² > 0.49: more than half of an average atom's direction is still its
    random start). Only when every SAE is at or below :data:`FAR_COSINE` does it say the atoms
    moved far (two unrelated directions have a cosine near 0); between the two it says they
    moved part of the way. Value: the number of SAEs above :data:`KEPT_COSINE`; n: SAEs.
    Verdict (a check of this book's training; the paper reports no such number): agrees when no
    SAE keeps more than :data:`KEPT_COSINE`, disagrees when one does, inconclusive with no SAE.
    """
    items = [(f"{lab} ({role})", float(v)) for lab, d in moved.items() for role, v in d.items()
             if _finite(v)]
    n = len(items)
    kept = [(name, v) for name, v in items if v > KEPT_COSINE]
    rest = [(name, v) for name, v in items if v <= KEPT_COSINE]
    fmt = lambda xs: ", ".join(f"{name} {v:.3f}" for name, v in xs)  # noqa: E731
    if n == 0:
        sentence = "No SAE to compare with its initialisation."
    elif not kept:
        how = ("far from their random start" if max(v for _, v in items) <= FAR_COSINE else
               "part of the way from their random start, which still shapes them")
        sentence = (f"Mean cosine of each SAE's active atoms with the same atoms at "
                    f"initialisation: {fmt(items)} (two unrelated directions: about 0). No SAE "
                    f"keeps a mean cosine above {KEPT_COSINE}: training moved the atoms {how}.")
    else:
        one = len(kept) == 1
        who = ("Every SAE keeps" if not rest else
               f"{len(kept)} of {n} SAE{'s' * (n != 1)} keep{'s' * one}")
        sentence = (f"Mean cosine of each SAE's active atoms with the same atoms at "
                    f"initialisation: {fmt(items)} (two unrelated directions: about 0). {who} a "
                    f"mean cosine above {KEPT_COSINE} ({fmt(kept)}): more than half of an "
                    f"average active atom's direction (cos² > {KEPT_COSINE ** 2:.2f}) is still "
                    f"its random start, so {'its' if one else 'their'} matching scores below are "
                    f"pulled towards those of random dictionaries.")
        if rest:
            sentence += f" At or below {KEPT_COSINE}: {fmt(rest)}."
    return Claim(key=key, value=len(kept), n=n, unit="SAEs", fmt="d",
                 test=f"no SAE keeps a mean active-atom cosine with its initialisation above "
                      f"{KEPT_COSINE} (a check of training; no paper value)",
                 verdict=verdict(not kept, n, 1), sentence=sentence)


def r2_gap_replicates(boot: pd.DataFrame) -> pd.DataFrame:
    """Bootstrap replicates of :func:`r2_gaps`, one column per training dataset.

    ``boot``: :func:`scconcepts.stability.cross_r2_replicates` (n_boot rows, columns
    (``trained on``, ``evaluated on``)). Returns (n_boot, training datasets): R² own − R²
    other in every replicate (paired: both R² of a replicate come from the same resampled
    cells of each dataset)."""
    out = {}
    for t in dict.fromkeys(boot.columns.get_level_values(0)):
        other = [e for tr, e in boot.columns if tr == t and e != t]
        if (t, t) not in boot.columns or len(other) != 1:
            raise ValueError(f"SAE trained on {t!r}: need its own dataset and exactly one "
                             f"other among {list(boot.columns)}")
        out[t] = boot[(t, t)].to_numpy(float) - boot[(t, other[0])].to_numpy(float)
    return pd.DataFrame(out)


def r2_gap_cells(r2: pd.DataFrame) -> pd.DataFrame:
    """Cells behind each gap of :func:`r2_gaps`: index the training dataset, columns ``own``
    (cells of its own dataset evaluated: the held-out ones) and ``other`` (every cell of the
    other dataset). ``r2``: :func:`scconcepts.stability.cross_r2_table`."""
    own = r2[r2["own data"]].set_index("trained on")["cells"]
    other = r2[~r2["own data"]].set_index("trained on")["cells"]
    return pd.DataFrame({"own": own, "other": other}).astype(int)


def _gap_reps(replicates, model: str) -> pd.DataFrame | None:
    """The gap replicates of one model (accepting :func:`r2_gap_replicates` output or the raw
    :func:`scconcepts.stability.cross_r2_replicates`), or None."""
    if replicates is None or model not in replicates:
        return None
    r = replicates[model]
    if isinstance(r, pd.DataFrame) and isinstance(r.columns, pd.MultiIndex):
        r = r2_gap_replicates(r)
    return pd.DataFrame(r)


def _stack(cols: list[np.ndarray]) -> np.ndarray:
    """(n_boot, len(cols)) from equal-length replicate vectors (one bootstrap, paired)."""
    if len({len(c) for c in cols}) != 1:
        raise ValueError("Replicates of different lengths cannot be paired; use one n_boot and "
                         "seed for every model.")
    return np.column_stack(cols)


def _both_datasets(cells, models) -> int | None:
    """Distinct cells of both datasets behind a model's two gaps (held-out own cells lie among
    the other SAE's 'other' cells), largest over ``models`` (they share the cells)."""
    if cells is None:
        return None
    ns = [int(cells[m]["other"].sum()) for m in models if m in cells]
    return max(ns) if ns else None


def _gap_text(gaps: Mapping[str, pd.Series], labels: Mapping[str, str]) -> str:
    return "; ".join(f"{labels.get(m, m)} {g['main']:+.3f} (trained on main), "
                     f"{g['second']:+.3f} (trained on second)" for m, g in gaps.items())


def _ci_text(ci, n, unit: str) -> str:
    """", 95 % interval a to b (paired bootstrap over n cells)" or ", no interval"."""
    over = f" over {n:,} {unit}" if n is not None else ""
    if ci is None or not all(np.isfinite(ci)):
        return f" (no bootstrap interval{over})"
    return f" (95 % paired bootstrap interval {ci[0]:+.3f} to {ci[1]:+.3f}{over})"


GAP_UNIT = "held-out + other-dataset cells"
BOTH_UNIT = "cells of both datasets (own data: held-out cells)"


def all_lower(gaps: Mapping[str, pd.Series], labels: Mapping[str, str],
              key: str = "ch07_all_lower", replicates: Mapping[str, pd.DataFrame] | None = None,
              cells: Mapping[str, pd.DataFrame] | None = None) -> Claim:
    """Fig 4A: every SAE reconstructs the other dataset less well than its own (gap > 0).

    Parameters
    ----------
    gaps
        Model → :func:`r2_gaps` (own − other, per training dataset).
    replicates
        Model → :func:`r2_gap_replicates` (n_boot, training datasets), or the raw
        :func:`scconcepts.stability.cross_r2_replicates`; every model with the same n_boot.
    cells
        Model → :func:`r2_gap_cells`, for n.

    Value: the smallest gap over all SAEs, with the percentile interval of its replicates (per
    replicate, the minimum over SAEs); region (0, ∞): agrees when even the smallest gap is
    clearly positive, disagrees when it is clearly negative. n: the held-out + other-dataset
    cells behind the smallest gap. Inconclusive with fewer than 2 SAEs or no replicates.
    """
    items = [(m, t, float(v)) for m, g in gaps.items() for t, v in g.items() if _finite(v)]
    value = min((v for *_, v in items), default=float("nan"))
    n = ci = None
    if items:
        m0, t0, _ = min(items, key=lambda x: x[2])
        if cells is not None and m0 in cells:
            n = int(cells[m0].loc[t0, ["own", "other"]].sum())
        reps = [_gap_reps(replicates, m) for m, *_ in items]
        if all(r is not None for r in reps):
            ci = stats.percentile(_stack([r[t].to_numpy(float) for r, (_, t, _) in
                                          zip(reps, items)]).min(1))
    region = (0.0, ABOVE)
    if len(items) < 2:
        v, reason = "inconclusive", f"{len(items)} SAE with a gap, at least 2 needed"
    else:
        v, reason = decide(ci, region, fmt="+.3f")
    tail = {"agrees": "as in the paper, every SAE reconstructs the other dataset less well than "
                      "its own",
            "disagrees": "**unlike the paper**, at least one SAE reconstructs the other dataset "
                         "better than its own held-out cells"}.get(v, conclusion(v, reason))
    sentence = (f"R² drop on the other dataset (R² on the SAE's own held-out cells − R² on every "
                f"cell of the other dataset): {_gap_text(gaps, labels)}. The smallest drop is "
                f"{value:+.3f}{_ci_text(ci, n, GAP_UNIT)}: {tail}.")
    return Claim(key=key, value=value, n=n, interval=ci, region=region, unit=GAP_UNIT,
                 fmt=".3f", test="smallest R² own − other > 0 (paired bootstrap interval above "
                 "0)", verdict=v, sentence=sentence, paper=PAPER_FIG4["all_lower"])


def main_smaller(gaps: Mapping[str, pd.Series], labels: Mapping[str, str],
                 key: str = "ch07_main_smaller",
                 replicates: Mapping[str, pd.DataFrame] | None = None,
                 cells: Mapping[str, pd.DataFrame] | None = None) -> Claim:
    """Fig 4A: the gap is smaller for the SAE trained on the larger (main) dataset, per model.

    ``gaps``, ``replicates``, ``cells``: as :func:`all_lower`. Value: the largest, over models
    with both gaps, of gap (trained on main) − gap (trained on second), with the percentile
    interval of its replicates (per replicate, the maximum over models); region (−∞, 0): agrees
    when even the largest difference is clearly negative. n: the cells of both datasets."""
    ok = [m for m, g in gaps.items() if _finite(g.get("main")) and _finite(g.get("second"))]
    diffs = {m: float(gaps[m]["main"] - gaps[m]["second"]) for m in ok}
    value = max(diffs.values(), default=float("nan"))
    n, ci = _both_datasets(cells, ok), None
    reps = [_gap_reps(replicates, m) for m in ok]
    if ok and all(r is not None for r in reps):
        ci = stats.percentile(_stack([(r["main"] - r["second"]).to_numpy(float)
                                      for r in reps]).max(1))
    region = (BELOW, 0.0)
    if not ok:
        v, reason = "inconclusive", "no model has both gaps"
    else:
        v, reason = decide(ci, region, fmt="+.3f")
    tail = {"agrees": "as in the paper, the gap is smaller for the SAEs trained on the larger "
                      "(main) dataset",
            "disagrees": "**unlike the paper**, the gap is not smaller for the SAEs trained on "
                         "the larger (main) dataset in every model"}.get(v, conclusion(v, reason))
    each = ", ".join(f"{_label(labels, m)} {d:+.3f}" for m, d in diffs.items()) or "none"
    return Claim(key=key, value=value, n=n, interval=ci, region=region, unit=BOTH_UNIT,
                 fmt=".3f", test="largest gap (trained on main) − gap (trained on second) < 0 "
                 "over models (paired bootstrap interval below 0)", verdict=v,
                 paper=PAPER_FIG4["main_smaller"],
                 sentence=f"Gap of the main-dataset SAE minus gap of the second-dataset SAE: "
                          f"{each}; the largest is {value:+.3f}{_ci_text(ci, n, 'cells')}: "
                          f"{tail}.")


def larger_drop(gaps: Mapping[str, pd.Series], labels: Mapping[str, str],
                key: str = "ch07_scgpt_larger",
                replicates: Mapping[str, pd.DataFrame] | None = None,
                cells: Mapping[str, pd.DataFrame] | None = None) -> Claim:
    """Fig 4A: the mean R² drop is larger for one model (scGPT) than for the other (scVI).

    ``gaps``, ``replicates``, ``cells``: as :func:`all_lower`. Value: mean gap of the
    larger-drop model minus that of the other, with the percentile interval of the same
    difference per replicate (both models resampled on the same cells); region (0, ∞).
    Inconclusive when the profile lacks one of the two models."""
    big, small = PAPER_FIG4["larger_drop"]
    lb, ls = _label(labels, big), _label(labels, small)
    test = f"mean gap {lb} − {ls} > 0 (paired bootstrap interval above 0)"
    region = (0.0, ABOVE)
    if big not in gaps or small not in gaps:
        missing = " and ".join(_label(labels, m) for m in (big, small) if m not in gaps)
        return Claim(key=key, value=float("nan"), n=_both_datasets(cells, [big, small]),
                     test=test, verdict="inconclusive", paper=(big, small), region=region,
                     unit=BOTH_UNIT, fmt=".3f",
                     sentence=f"The paper finds a larger R² drop for {lb} than for {ls}; this "
                              f"profile has no {missing}, so the comparison is not made.")
    gb, gs = float(gaps[big].mean()), float(gaps[small].mean())
    diff = gb - gs
    n, ci = _both_datasets(cells, [big, small]), None
    rb, rs = _gap_reps(replicates, big), _gap_reps(replicates, small)
    if rb is not None and rs is not None:
        both = _stack([rb.mean(1).to_numpy(float), rs.mean(1).to_numpy(float)])
        ci = stats.percentile(both[:, 0] - both[:, 1])
    v, reason = (decide(ci, region, fmt="+.3f") if np.isfinite(diff)
                 else ("inconclusive", "a gap is missing"))
    tail = {"agrees": f"as in the paper, the drop is larger for {lb} than for {ls}",
            "disagrees": f"**unlike the paper**, the drop is smaller for {lb} than for "
                         f"{ls}"}.get(v, conclusion(v, reason))
    return Claim(key=key, value=diff, n=n, interval=ci, region=region, unit=BOTH_UNIT,
                 fmt=".3f", test=test, verdict=v, paper=(big, small),
                 sentence=f"Mean R² drop {lb} {gb:+.3f} vs {ls} {gs:+.3f}: difference "
                          f"{diff:+.3f}{_ci_text(ci, n, 'cells')}: {tail}.")


def matching_vs_null(key: str, label: str, cosine, null_scores, null_cosine=None) -> Claim:
    """Fig 4B: the matched dictionaries agree better than random dictionaries of the same shape.

    ``cosine``: cosines of the matched pairs (:class:`~scconcepts.stability.Matching`);
    ``null_scores``: matching scores against random dictionaries; ``null_cosine``: the pair
    cosines of one random dictionary (for the share of pairs beating its best pair). Value: the
    matching score (mean cosine) with its Student-t 95 % interval over the n pairs; region
    (best null score, ∞): agrees when the interval lies above every null score, disagrees when
    it lies below the best one. Inconclusive with fewer than :data:`MIN_UNITS` pairs or no
    random dictionary.
    """
    cosine = np.asarray(cosine, dtype=float)
    null = np.asarray(null_scores, dtype=float)
    score, ci, n = stats.t_interval(cosine)
    region = (float(null.max()), ABOVE) if null.size else None
    if region is None:
        v, reason = "inconclusive", "no random dictionary"
    else:
        v, reason = decide(ci, region, n, MIN_UNITS, fmt=".3f")
    beat = ""
    if null_cosine is not None and np.size(null_cosine) and n:
        share = float((cosine > np.max(null_cosine)).mean())
        beat = f"; {share:.0%} of its pairs beat the best pair of a random dictionary"
    null_txt = (f"{null.mean():.3f} ± {null.std():.3f} over {null.size} random dictionaries, "
                f"best {null.max():.3f}" if null.size else "no random dictionary")
    ci_txt = (f", 95 % interval {ci[0]:.3f} to {ci[1]:.3f}" if ci is not None else "")
    tail = {"agrees": "above every random dictionary",
            "disagrees": "**not above** every random dictionary"}.get(v, conclusion(v, reason))
    return Claim(key=key, value=score, n=n, interval=ci, region=region, unit="matched pairs",
                 fmt=".3f", test="matching score > every random-dictionary score (Student-t "
                 "interval above the best)", verdict=v,
                 sentence=f"{label}: matching score {score:.3f} over {n} pairs{ci_txt} (random "
                          f"{null_txt}), {tail}{beat}.")


def every(key: str, claims, what: str) -> Claim:
    """Aggregate of per-model claims: agrees when every one agrees, disagrees when one
    disagrees, inconclusive otherwise (or with no claim). Value: the number that agree."""
    claims = list(claims)
    n = len(claims)
    k = sum(c.verdict == "agrees" for c in claims)
    if n and k == n:
        v = "agrees"
    elif any(c.verdict == "disagrees" for c in claims):
        v = "disagrees"
    else:
        v = "inconclusive"
    return Claim(key=key, value=k, n=n, test=f"every model: {what}", verdict=v,
                 sentence=f"{what[0].upper()}{what[1:]}: {k} of {n} models agree.")


def more_stable(scores: Mapping[str, np.ndarray], labels: Mapping[str, str],
                key: str = "ch07_scvi_more_stable") -> Claim:
    """Fig 4B: one model's (scVI's) concepts are more stable across datasets than the other's.

    ``scores``: model → matched-pair cosines. Value: difference of the matching scores, with a
    95 % normal interval from the pairs' standard errors; region (0, ∞), decided by
    :func:`~scconcepts.claims.stats.decide` (inconclusive when the interval reaches 0), and
    inconclusive when the profile lacks one of the two models."""
    hi, lo = PAPER_FIG4["more_stable"]
    lh, ll = _label(labels, hi), _label(labels, lo)
    test = f"matching score {lh} > {ll} (95 % interval of the difference above 0)"
    if hi not in scores or lo not in scores:
        missing = " and ".join(_label(labels, m) for m in (hi, lo) if m not in scores)
        return Claim(key=key, value=float("nan"), n=None, test=test, verdict="inconclusive",
                     paper=(hi, lo),
                     sentence=f"The paper finds {lh} concepts more stable across datasets than "
                              f"{ll} concepts; this profile has no {missing}, so the comparison "
                              "is not made.")
    a, b = (np.asarray(scores[m], dtype=float) for m in (hi, lo))
    n = int(min(a.size, b.size))
    if n < MIN_UNITS:
        return Claim(key=key, value=float("nan"), n=n, test=test, verdict="inconclusive",
                     paper=(hi, lo), sentence=f"Too few matched pairs ({n}) to compare {lh} with "
                                              f"{ll}.")
    diff = float(a.mean() - b.mean())
    se = float(np.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size))
    ci = (diff - stats.Z95 * se, diff + stats.Z95 * se)
    region = (0.0, ABOVE)
    v, reason = decide(ci, region, n, MIN_UNITS, fmt="+.3f")
    tail = {"agrees": f"as in the paper, {lh} concepts are more stable across datasets than "
                      f"{ll} concepts",
            "disagrees": f"**unlike the paper**, {ll} concepts match better than {lh}'s"
            }.get(v, conclusion(v, reason))
    return Claim(key=key, value=diff, n=n, interval=ci, test=test, verdict=v, paper=(hi, lo),
                 region=region, unit="matched pairs (the smaller model's)", fmt="+.3f",
                 sentence=f"Matching score {lh} {a.mean():.3f} vs {ll} {b.mean():.3f} "
                          f"(difference {diff:+.3f}, 95 % interval {ci[0]:+.3f} to "
                          f"{ci[1]:+.3f}): {tail}.")


def shared_genes(shared: Mapping[str, np.ndarray], key: str = "ch07_shared") -> Claim:
    """Fig 4C: well-matched pairs often (≥ :data:`SHARED_SHARE` of them) share a top-10 gene.

    ``shared``: model label → number of shared top-10 genes per attributed pair. Value: the
    share of pairs with at least one, with its exact (Clopper–Pearson) 95 % interval; region
    (:data:`SHARED_SHARE`, ∞), decided by :func:`~scconcepts.claims.stats.decide` (inconclusive
    with fewer than 3 pairs or when the interval reaches the threshold)."""
    allv = np.concatenate([np.asarray(v, dtype=float) for v in shared.values()] or [[]])
    n, k = int(allv.size), int((allv > 0).sum())
    if n == 0:
        return Claim(key=key, value=float("nan"), n=0, test=f"share ≥ {SHARED_SHARE}",
                     verdict="inconclusive", paper=PAPER_FIG4["shared"],
                     sentence="No matched pair was attributed in this profile, so Fig 4C is not "
                              "tested.")
    share = k / n
    ci = stats.exact(k, n)
    region = (SHARED_SHARE, ABOVE)
    v, reason = decide(ci, region, n, MIN_UNITS, fmt=".0%")
    tail = {"agrees": "as in the paper, well-matched concepts often have a few top genes in "
                      "common",
            "disagrees": f"**fewer than {SHARED_SHARE:.0%}** of the pairs share a top-10 gene, "
                         "weaker than the paper's 'often a few genes in common'"
            }.get(v, conclusion(v, reason))
    per = "; ".join(f"{lab}: {np.mean(s):.1f} shared genes per pair ({len(s)} "
                    f"pair{'s' if len(s) != 1 else ''})" for lab, s in shared.items() if len(s))
    return Claim(key=key, value=share, n=n, interval=ci, region=region, unit="matched pairs",
                 fmt=".0%", test=f"share of pairs sharing a top-10 gene > {SHARED_SHARE} (exact "
                 "95 % interval above it)", verdict=v, paper=PAPER_FIG4["shared"],
                 sentence=f"{k} of {n} matched pairs ({share:.0%}, exact 95 % interval "
                          f"{ci[0]:.0%} to {ci[1]:.0%}) share at least one of their top-10 "
                          f"genes, {allv.mean():.1f} on average ({per}): {tail}.")


def seed_vs_dataset(key: str, label: str, summary: pd.DataFrame, n_seeds: int,
                    cross_score: float) -> Claim:
    """Seed study (a reviewer's ask): does a new dataset change the dictionary more than a new
    seed does?

    ``summary``: :func:`scconcepts.stability.seed_stability`'s summary (rows ``R²``, ``active
    concepts``, ``matching score between seeds``, ``null: random dictionaries``; columns
    ``mean``, ``std``); ``cross_score``: the cross-dataset matching score. Value: the mean
    matching score between seeds; n: seeds. Agrees when the cross-dataset score is within
    :data:`SEED_SPREAD` stds below the seed-to-seed mean (or above it). The paper has no seed
    study; the verdict is this check's. No interval: mean ± 2 std is a spread, not a confidence
    interval, so it stays in the sentence.
    """
    s = summary
    mean, std = float(s.loc["matching score between seeds", "mean"]), float(
        s.loc["matching score between seeds", "std"])
    std = std if np.isfinite(std) else 0.0
    holds = float(cross_score) >= mean - SEED_SPREAD * std
    v = verdict(holds, n_seeds, MIN_UNITS, uncertain=not _finite(cross_score))
    tail = {"agrees": "the other dataset changes the dictionary no more than a new seed does",
            "disagrees": "the other dataset changes the dictionary more than a new seed does",
            "inconclusive": f"too few seeds ({n_seeds}) to measure the seed-to-seed spread"}[v]
    return Claim(key=key, value=mean, n=int(n_seeds),
                 test=f"cross-dataset score ≥ seed mean − {SEED_SPREAD:g} std (no paper value)",
                 verdict=v, interval=None, unit="seeds",
                 sentence=f"{label}: R² {s.loc['R²', 'mean']:.3f} ± {s.loc['R²', 'std']:.3f}, "
                          f"active concepts {s.loc['active concepts', 'mean']:.0f} ± "
                          f"{s.loc['active concepts', 'std']:.0f}, matching between seeds "
                          f"{mean:.3f} ± {std:.3f} (random "
                          f"{s.loc['null: random dictionaries', 'mean']:.3f}; across datasets "
                          f"{float(cross_score):.3f}): {tail}.")


def atom_stability(key: str, label: str, pairs: pd.DataFrame, pairs_07: pd.DataFrame | None = None
                   ) -> Claim:
    """Atom-level seed stability (a reviewer's ask; no paper value): are the atoms of one seed
    found again by another seed more often than atoms of a random dictionary?

    ``pairs``: :func:`scconcepts.atoms.atom_seed_stability`'s per-pair table at threshold 0.9
    (``pairs_07`` the same at 0.7, for the sentence). Value: the mean best cosine over seed
    pairs, with its Student-t 95 % interval over the pairs; region: above the null's largest
    mean best cosine. n: seed pairs."""
    x = pairs["mean_best_cosine"].to_numpy(float)
    null = float(pairs["null_mean_best_cosine"].max()) if len(pairs) else float("nan")
    m, ci, n = stats.t_interval(x)
    v, reason = decide(ci, (null, ABOVE), n=n, min_n=2, fmt=".3f")
    s07 = ("" if pairs_07 is None else
           f", above 0.7: {pairs_07['share_above'].mean():.0%} (random "
           f"{pairs_07['null_share_above'].mean():.0%})")
    tail = {"agrees": "a new seed finds the atoms again better than chance",
            "disagrees": "a new seed finds the atoms no better than chance",
            "inconclusive": f"inconclusive ({reason})"}[v]
    ci_txt = "" if ci is None else f", 95 % interval {ci[0]:.3f} to {ci[1]:.3f}"
    return Claim(key=key, value=m, n=n, interval=ci, region=(null, ABOVE), verdict=v,
                 unit="seed pairs", fmt=".3f",
                 test="mean best atom cosine across seeds > random dictionaries' (t interval "
                      "over seed pairs; no paper value)",
                 sentence=f"{label}: an active atom's best cosine with any atom of another seed "
                          f"is {m:.3f} on average ({n} seed pairs{ci_txt}; random dictionaries "
                          f"{pairs['null_mean_best_cosine'].mean():.3f}); share of atoms found "
                          f"again above 0.9: {pairs['share_above'].mean():.0%} (random "
                          f"{pairs['null_share_above'].mean():.0%}){s07}: {tail}.")
