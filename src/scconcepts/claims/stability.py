"""Claims of chapter 07 (stability across datasets and seeds, Sec 4.4 and Fig 4 of the paper).

Every function takes what the chapter measured (R² tables, matching scores, shared-gene counts)
and returns a :class:`~scconcepts.claims.Claim`. Models are named by the profile's model names;
the paper's findings come from :mod:`scconcepts.reference.stability`. A claim that compares two
models is ``"inconclusive"`` when the profile lacks one of them.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from ..reference.stability import PAPER_FIG4, PAPER_MODELS, PAPER_TRAINING
from . import Claim, verdict

__all__ = ["MOVED_COSINE", "SHARED_SHARE", "SEED_SPREAD", "r2_gaps", "init_cosine",
           "all_lower", "main_smaller", "larger_drop", "matching_vs_null", "every",
           "more_stable", "shared_genes", "seed_vs_dataset"]

MOVED_COSINE = 0.8   # mean cosine of trained atoms with their initialisation above: "barely moved"
SHARED_SHARE = 0.5   # "often": at least half of the matched pairs share a top-10 gene
SEED_SPREAD = 2.0    # cross-dataset score within this many seed-to-seed stds of their mean
Z95 = 1.959964       # two-sided 95 % normal quantile
MIN_UNITS = 3        # fewer pairs / seeds than this cannot decide


def _finite(x) -> bool:
    return x is not None and np.isfinite(float(x))


def _label(labels: Mapping[str, str], model: str) -> str:
    return labels.get(model) or PAPER_MODELS.get(model, model)


def r2_gaps(r2: pd.DataFrame) -> pd.Series:
    """R² on the SAE's own dataset minus R² on the other one, per training dataset.

    ``r2``: :func:`scconcepts.stability.cross_r2_table` (columns ``trained on``, ``own data``,
    ``r2``). Returns a Series indexed by the training dataset (``main``, ``second``)."""
    own = r2[r2["own data"]].set_index("trained on")["r2"]
    other = r2[~r2["own data"]].set_index("trained on")["r2"]
    return (own - other).rename("R² own − other")


def init_cosine(moved: Mapping[str, Mapping[str, float]], key: str = "ch07_init") -> Claim:
    """Did training move the atoms away from their random start, in *every* SAE?

    ``moved``: model label → training dataset → mean cosine of the active trained atoms with the
    same atoms at initialisation (:func:`scconcepts.stability.moved_from_init`). Every SAE is
    looked at (not the smallest cosine only): the sentence names those that barely moved
    (cosine > :data:`MOVED_COSINE`) and those that did. A check of this book's training; the paper
    reports no such number.
    """
    items = [(f"{lab} ({role})", float(v)) for lab, d in moved.items() for role, v in d.items()
             if _finite(v)]
    n = len(items)
    still = [(name, v) for name, v in items if v > MOVED_COSINE]
    away = [(name, v) for name, v in items if v <= MOVED_COSINE]
    value = max((v for _, v in items), default=float("nan"))
    fmt = lambda xs: ", ".join(f"{name} {v:.2f}" for name, v in xs)  # noqa: E731
    lo_ep, hi_ep = PAPER_TRAINING["epochs"]
    far = (f"these SAEs are trained far less than the paper's ({lo_ep:,}–{hi_ep:,} epochs on "
           f"{min(PAPER_TRAINING['cells']):,}–{max(PAPER_TRAINING['cells']):,} cells)")
    if n == 0:
        sentence = "No SAE to compare with its initialisation."
    elif not still:
        sentence = (f"Training moves the atoms well away from their random start in every SAE "
                    f"(mean cosine of the active atoms with their initialisation: {fmt(away)}; "
                    f"all ≤ {MOVED_COSINE}).")
    elif not away:
        sentence = (f"Training moves the atoms little from their random start in every SAE (mean "
                    f"cosine of the active atoms with their initialisation: {fmt(still)}; all > "
                    f"{MOVED_COSINE}): {far}, and the stability scores below are bounded by this.")
    else:
        sentence = (f"Training moves the atoms little from their random start in {len(still)} of "
                    f"{n} SAEs (mean cosine of the active atoms with their initialisation > "
                    f"{MOVED_COSINE}: {fmt(still)}): {far}, and their stability scores are "
                    f"bounded by this. The atoms moved well away only in {fmt(away)}.")
    return Claim(key=key, value=value, n=n,
                 test=f"every SAE's mean atom cosine with its initialisation ≤ {MOVED_COSINE} "
                      "(a check of training; no paper value)",
                 verdict=verdict(not still, n, 1), sentence=sentence)


def _gap_text(gaps: Mapping[str, pd.Series], labels: Mapping[str, str]) -> str:
    return "; ".join(f"{labels.get(m, m)} {g['main']:+.3f} (trained on main), "
                     f"{g['second']:+.3f} (trained on second)" for m, g in gaps.items())


def all_lower(gaps: Mapping[str, pd.Series], labels: Mapping[str, str],
              key: str = "ch07_all_lower") -> Claim:
    """Fig 4A: every SAE reconstructs the other dataset less well than its own (gap > 0).

    ``gaps``: model → :func:`r2_gaps`. Value: the number of SAEs with a positive gap; n: SAEs.
    """
    vals = [float(v) for g in gaps.values() for v in g.values if _finite(v)]
    n, lower = len(vals), int(sum(v > 0 for v in vals))
    v = verdict(lower == n, n, 2)
    tail = {"agrees": "as in the paper, every SAE reconstructs the other dataset less well than "
                      "its own.",
            "disagrees": "**unlike the paper**, not every SAE loses R² on the other dataset.",
            "inconclusive": "too few SAEs to test the paper's finding."}[v]
    sentence = (f"R² drop on the other dataset (own − other): {_gap_text(gaps, labels)}. "
                f"{lower} of {n} SAEs drop: {tail}")
    return Claim(key=key, value=lower, n=n, test="R² own − other > 0 for every SAE", verdict=v,
                 sentence=sentence, paper=PAPER_FIG4["all_lower"])


def main_smaller(gaps: Mapping[str, pd.Series], labels: Mapping[str, str],
                 key: str = "ch07_main_smaller") -> Claim:
    """Fig 4A: the gap is smaller for the SAE trained on the larger (main) dataset, per model.

    Value: the number of models where it holds; n: models with both gaps."""
    ok = {m: g["main"] < g["second"] for m, g in gaps.items()
          if _finite(g.get("main")) and _finite(g.get("second"))}
    n, k = len(ok), int(sum(ok.values()))
    v = verdict(k == n, n, 1)
    tail = {"agrees": "as in the paper, the gap is smaller for the SAEs trained on the larger "
                      "(main) dataset",
            "disagrees": "**unlike the paper**, the gap is not always smaller for the SAEs "
                         "trained on the larger (main) dataset",
            "inconclusive": "no model has both gaps"}[v]
    return Claim(key=key, value=k, n=n, test="gap (trained on main) < gap (trained on second), "
                 "every model", verdict=v, paper=PAPER_FIG4["main_smaller"],
                 sentence=f"The gap of the main-dataset SAE is the smaller one for {k} of {n} "
                          f"models: {tail}.")


def larger_drop(gaps: Mapping[str, pd.Series], labels: Mapping[str, str],
                key: str = "ch07_scgpt_larger") -> Claim:
    """Fig 4A: the mean R² drop is larger for one model (scGPT) than for the other (scVI).

    Value: mean gap of the larger-drop model minus that of the other; inconclusive when the
    profile lacks one of the two models."""
    big, small = PAPER_FIG4["larger_drop"]
    lb, ls = _label(labels, big), _label(labels, small)
    if big not in gaps or small not in gaps:
        missing = " and ".join(_label(labels, m) for m in (big, small) if m not in gaps)
        return Claim(key=key, value=float("nan"), n=sum(m in gaps for m in (big, small)),
                     test=f"mean gap {lb} > {ls}", verdict="inconclusive", paper=(big, small),
                     sentence=f"The paper finds a larger R² drop for {lb} than for {ls}; this "
                              f"profile has no {missing}, so the comparison is not made.")
    gb, gs = float(gaps[big].mean()), float(gaps[small].mean())
    diff = gb - gs
    v = verdict(diff > 0, 2, 2, uncertain=not np.isfinite(diff))
    tail = (f"as in the paper, the drop is larger for {lb} than for {ls}" if v == "agrees" else
            f"**unlike the paper**, the drop is not larger for {lb} than for {ls}"
            if v == "disagrees" else "the drops cannot be compared")
    return Claim(key=key, value=diff, n=2, test=f"mean gap {lb} > {ls}", verdict=v,
                 paper=(big, small),
                 sentence=f"Mean R² drop {lb} {gb:+.3f} vs {ls} {gs:+.3f} (difference "
                          f"{diff:+.3f}): {tail}.")


def matching_vs_null(key: str, label: str, cosine, null_scores, null_cosine=None) -> Claim:
    """Fig 4B: the matched dictionaries agree better than random dictionaries of the same shape.

    ``cosine``: cosines of the matched pairs (:class:`~scconcepts.stability.Matching`);
    ``null_scores``: matching scores against random dictionaries; ``null_cosine``: the pair
    cosines of one random dictionary (for the share of pairs beating its best pair). Value: the
    matching score (mean cosine); n: pairs. Agrees when the score exceeds every null score.
    """
    cosine = np.asarray(cosine, dtype=float)
    null = np.asarray(null_scores, dtype=float)
    n = int(cosine.size)
    score = float(cosine.mean()) if n else float("nan")
    ok = n > 0 and null.size > 0 and score > null.max()
    v = verdict(ok, n, MIN_UNITS, uncertain=null.size == 0)
    beat = ""
    if null_cosine is not None and np.size(null_cosine) and n:
        share = float((cosine > np.max(null_cosine)).mean())
        beat = f"; {share:.0%} of its pairs beat the best pair of a random dictionary"
    null_txt = (f"{null.mean():.3f} ± {null.std():.3f} over {null.size} random dictionaries"
                if null.size else "no random dictionary")
    tail = {"agrees": "above every random dictionary",
            "disagrees": "**not above** every random dictionary",
            "inconclusive": "too few pairs to decide"}[v]
    return Claim(key=key, value=score, n=n, test="matching score > every random-dictionary score",
                 verdict=v, sentence=f"{label}: matching score {score:.3f} over {n} pairs "
                                     f"(random {null_txt}), {tail}{beat}.")


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
    95 % normal interval from the pairs' standard errors; inconclusive when the interval holds 0,
    or when the profile lacks one of the two models."""
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
    ci = (diff - Z95 * se, diff + Z95 * se)
    v = verdict(diff > 0, n, MIN_UNITS, uncertain=ci[0] <= 0 <= ci[1])
    tail = {"agrees": f"as in the paper, {lh} concepts are more stable across datasets than "
                      f"{ll} concepts",
            "disagrees": f"**unlike the paper**, {ll} concepts match at least as well as {lh}'s",
            "inconclusive": "the difference is within its uncertainty"}[v]
    return Claim(key=key, value=diff, n=n, interval=ci, test=test, verdict=v, paper=(hi, lo),
                 sentence=f"Matching score {lh} {a.mean():.3f} vs {ll} {b.mean():.3f} "
                          f"(difference {diff:+.3f}, 95 % interval {ci[0]:+.3f} to "
                          f"{ci[1]:+.3f}): {tail}.")


def shared_genes(shared: Mapping[str, np.ndarray], key: str = "ch07_shared") -> Claim:
    """Fig 4C: well-matched pairs often (≥ :data:`SHARED_SHARE` of them) share a top-10 gene.

    ``shared``: model label → number of shared top-10 genes per attributed pair. Value: the
    share of pairs with at least one, with its exact (Clopper–Pearson) 95 % interval;
    inconclusive with fewer than 3 pairs or when the interval holds the threshold."""
    from scipy.stats import binomtest

    allv = np.concatenate([np.asarray(v, dtype=float) for v in shared.values()] or [[]])
    n, k = int(allv.size), int((allv > 0).sum())
    if n == 0:
        return Claim(key=key, value=float("nan"), n=0, test=f"share ≥ {SHARED_SHARE}",
                     verdict="inconclusive", paper=PAPER_FIG4["shared"],
                     sentence="No matched pair was attributed in this profile, so Fig 4C is not "
                              "tested.")
    share = k / n
    ci = tuple(binomtest(k, n).proportion_ci(0.95, method="exact"))
    v = verdict(share >= SHARED_SHARE, n, MIN_UNITS, uncertain=ci[0] < SHARED_SHARE <= ci[1])
    tail = {"agrees": "as in the paper, well-matched concepts often have a few top genes in "
                      "common",
            "disagrees": f"**fewer than {SHARED_SHARE:.0%}** of the pairs share a top-10 gene, "
                         "weaker than the paper's 'often a few genes in common'",
            "inconclusive": f"the 95 % interval ({ci[0]:.0%}–{ci[1]:.0%}) holds "
                            f"{SHARED_SHARE:.0%}, too few pairs to decide"}[v]
    per = "; ".join(f"{lab}: {np.mean(s):.1f} shared genes per pair ({len(s)} "
                    f"pair{'s' if len(s) != 1 else ''})" for lab, s in shared.items() if len(s))
    return Claim(key=key, value=share, n=n, interval=(float(ci[0]), float(ci[1])),
                 test=f"share of pairs sharing a top-10 gene ≥ {SHARED_SHARE} (exact 95 % "
                      "interval clear of it)", verdict=v, paper=PAPER_FIG4["shared"],
                 sentence=f"{k} of {n} matched pairs ({share:.0%}) share at least one of their "
                          f"top-10 genes, {allv.mean():.1f} on average ({per}): {tail}.")


def seed_vs_dataset(key: str, label: str, summary: pd.DataFrame, n_seeds: int,
                    cross_score: float) -> Claim:
    """Seed study (a reviewer's ask): does a new dataset change the dictionary more than a new
    seed does?

    ``summary``: :func:`scconcepts.stability.seed_stability`'s summary (rows ``R²``, ``active
    concepts``, ``matching score between seeds``, ``null: random dictionaries``; columns
    ``mean``, ``std``); ``cross_score``: the cross-dataset matching score. Value: the mean
    matching score between seeds; n: seeds. Agrees when the cross-dataset score is within
    :data:`SEED_SPREAD` stds below the seed-to-seed mean (or above it). The paper has no seed
    study; the verdict is this check's.
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
                 verdict=v, interval=(mean - SEED_SPREAD * std, mean + SEED_SPREAD * std),
                 sentence=f"{label}: R² {s.loc['R²', 'mean']:.3f} ± {s.loc['R²', 'std']:.3f}, "
                          f"active concepts {s.loc['active concepts', 'mean']:.0f} ± "
                          f"{s.loc['active concepts', 'std']:.0f}, matching between seeds "
                          f"{mean:.3f} ± {std:.3f} (random "
                          f"{s.loc['null: random dictionaries', 'mean']:.3f}; across datasets "
                          f"{float(cross_score):.3f}): {tail}.")
