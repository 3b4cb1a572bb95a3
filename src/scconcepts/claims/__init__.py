"""Claims of the paper tested by the book: one function per row of the reproduction page.

Each claim function takes what a chapter measured (plain numbers, arrays, tables) and returns a
:class:`Claim`: the value, its sample size n, an interval where one is computed, the test that
decides, the verdict — ``"agrees"``, ``"disagrees"`` or ``"inconclusive"`` — and the sentence
the chapter prints. The paper's numbers come from :mod:`scconcepts.reference`; thresholds are
written once, here. Chapters glue :meth:`Claim.glue` values and write their conclusions in
markdown with ``{glue:text}``; the reproduction page glues the same keys, so prose and page
cannot disagree.

Modules: :mod:`.models` (chapter 01), :mod:`.scale` (02–03), :mod:`.attribution` (04),
:mod:`.interpretability` (05–06), :mod:`.stability` (07), :mod:`.usefulness` (08–09),
:mod:`.dgea` (10) and :mod:`.perturbation` (11).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Literal

from .stats import ABOVE, BELOW, decide

__all__ = ["Claim", "Verdict", "verdict", "conclusion", "glue_claim", "glue_sentences", "decide",
           "ABOVE", "BELOW"]

Verdict = Literal["agrees", "disagrees", "inconclusive"]


@dataclass(frozen=True)
class Claim:
    """One tested claim.

    Attributes
    ----------
    key
        Glue prefix, e.g. ``"ch02_scvi_r2_default"``.
    value
        The measured value (a number, or a short text such as a list of genes).
    n
        Units behind the value (concepts, cells, SAEs, pairs, ...); None when not a sample.
    interval
        (low, high) of the value where the claim computes one (e.g. a bootstrap or exact CI).
    test
        How the verdict was decided, in words ("R² > 0.95", "Fisher exact p < 0.05", ...).
    verdict
        ``"agrees"``, ``"disagrees"`` or ``"inconclusive"`` (too few units, or within the
        uncertainty of the threshold).
    sentence
        The sentence the chapter prints (markdown, no trailing space).
    paper
        The paper's value for the same claim (from :mod:`scconcepts.reference`), if it has one.
    region
        The values of ``value`` that agree with the paper, (low, high) with ±inf for a half-line
        (see :mod:`scconcepts.claims.stats`). With ``interval`` it fixes the verdict:
        "agrees" only with the interval inside the region, "disagrees" only with the interval
        wholly outside it; anything else raises :class:`ValueError` (a bug in a claim function).
    unit
        What n counts, in words ("held-out cells", "concepts + neurons", "SAE sizes").
    fmt
        Format spec of ``value`` and ``interval`` for :attr:`evidence` (e.g. ``".3f"``, ``".0%"``).
    """

    key: str
    value: Any
    n: int | None
    test: str
    verdict: Verdict
    sentence: str
    interval: tuple[float, float] | None = None
    paper: Any = None
    region: tuple[float, float] | None = None
    unit: str = ""
    fmt: str = ".3g"

    def __post_init__(self):
        if self.verdict not in ("agrees", "disagrees", "inconclusive"):
            raise ValueError(f"{self.key}: verdict {self.verdict!r} is not agrees / disagrees / "
                             "inconclusive")
        if self.interval is not None:
            object.__setattr__(self, "interval", tuple(float(x) for x in self.interval))
        if self.region is None or self.interval is None or self.verdict == "inconclusive":
            return
        lo, hi = self.interval
        a, b = self.region
        if not (math.isfinite(lo) and math.isfinite(hi)):
            raise ValueError(f"{self.key}: a verdict {self.verdict!r} needs a finite interval")
        if self.verdict == "agrees" and not (a < lo and hi < b):
            raise ValueError(f"{self.key}: 'agrees' but the interval ({lo:g}, {hi:g}) is not "
                             f"inside the paper's region ({a:g}, {b:g})")
        if self.verdict == "disagrees" and not (hi < a or lo > b):
            raise ValueError(f"{self.key}: 'disagrees' but the interval ({lo:g}, {hi:g}) "
                             f"reaches the paper's region ({a:g}, {b:g})")

    @property
    def evidence(self) -> str:
        """n, the value with its 95 % interval, and the test, as one line of plain text (the
        reproduction page's "evidence" column), e.g. ``"n = 1,211 held-out cells; 0.912 (95 %
        interval 0.910 to 0.915); R² > 0.95"``."""
        def fmt(x):
            try:
                return format(x, self.fmt)
            except (TypeError, ValueError):
                return str(x)
        parts = [f"n = {self.n:,}" + (f" {self.unit}" if self.unit else "")
                 if self.n is not None else "n: not a sample"]
        ci = (f" (95 % interval {fmt(self.interval[0])} to {fmt(self.interval[1])})"
              if self.interval is not None and all(map(math.isfinite, self.interval))
              else " (no interval)")
        parts.append(f"{fmt(self.value)}{ci}")
        parts.append(self.test)
        return "; ".join(parts)

    def glue(self, glue_fn=None) -> dict[str, Any]:
        """Glue ``<key>`` (value), ``<key>_n``, ``<key>_agree`` (verdict), ``<key>_low`` /
        ``<key>_high`` (interval), ``<key>_evidence`` (:attr:`evidence`) and ``<key>_sentence`` (markdown, for ``{glue:md}``) with
        myst-nb (``display=False``); returns what was glued."""
        from IPython.display import Markdown

        out: dict[str, Any] = {self.key: self.value, f"{self.key}_agree": self.verdict,
                               f"{self.key}_sentence": Markdown(self.sentence),
                               f"{self.key}_evidence": self.evidence}
        if self.n is not None:
            out[f"{self.key}_n"] = int(self.n)
        if self.interval is not None:
            out[f"{self.key}_low"], out[f"{self.key}_high"] = map(float, self.interval)
        if glue_fn is None:
            from myst_nb import glue as glue_fn
        for k, v in out.items():
            glue_fn(k, v, display=False)
        return out

    def as_row(self) -> dict[str, Any]:
        return asdict(self)


def verdict(holds: bool, n: int | None = None, min_n: int = 1,
            uncertain: bool = False) -> Verdict:
    """``"agrees"``/``"disagrees"`` from ``holds``; ``"inconclusive"`` when fewer than
    ``min_n`` units back it or the caller marks it ``uncertain``."""
    if (n is not None and n < min_n) or uncertain:
        return "inconclusive"
    return "agrees" if holds else "disagrees"


def conclusion(v: Verdict, reason: str) -> str:
    """The verdict as the end of a claim's sentence: "**agrees** with the paper", "**disagrees**
    with the paper", or "**inconclusive** (<reason>)"."""
    return {"agrees": "**agrees** with the paper",
            "disagrees": "**disagrees** with the paper"}.get(v, f"**inconclusive** ({reason})")


def glue_sentences(key: str, claims, glue_fn=None) -> str:
    """Glue the claims' sentences as one markdown paragraph under ``key`` (for a chapter's
    ``{glue:md}`` results paragraph that covers every model of the profile); glues each claim
    too. Returns the paragraph."""
    from IPython.display import Markdown

    if glue_fn is None:
        from myst_nb import glue as glue_fn
    claims = list(claims)
    for c in claims:
        c.glue(glue_fn)
    text = " ".join(c.sentence for c in claims) or "Nothing to report for this profile."
    glue_fn(key, Markdown(text), display=False)
    return text


def glue_claim(claim: Claim) -> Claim:
    """Glue a claim's values (see :meth:`Claim.glue`) and return it (for one-line cells)."""
    claim.glue()
    return claim
