"""One figure style for the book: sizes, fonts, colour-blind-safe colours, cell-type colours.

How a figure reaches the reader
-------------------------------
The kernels use the inline backend (:data:`scconcepts.book_kernel.KERNEL_ENV`), which writes
each figure as a PNG at ``figure.dpi`` (:data:`DPI` = 100 px per inch) with
``bbox_inches="tight"``; the book page shows it at that pixel width, scaled down to the
sphinx-book-theme content column (:data:`CONTENT_WIDTH_PX`, about 760 CSS px) when wider. A
font of ``s`` pt is therefore read at ``s × DPI / 96 × scale`` CSS pt, where
``scale = min(1, CONTENT_WIDTH_PX / png width)``. Figures are at most :data:`FULL_WIDTH_IN`
(7.4 in = 740 px, 760 px with the margins) wide, so they are not scaled, and every font is at
least :data:`MIN_FONT_PT` (9 pt, read as 9.4); :func:`rendered_font_pt` measures the result on a
drawn figure.

Colours
-------
:data:`OKABE_ITO` (Okabe & Ito 2008) is the default colour cycle (≤ 8 categories).
:data:`CATEGORICAL` extends it, for more categories, with five colours of Paul Tol's "muted"
and "light" sets (https://personal.sron.nl/~pault/) chosen so that every pair stays apart under
simulated protanopia, deuteranopia and tritanopia (Machado et al. 2009): smallest CIE76 ΔE about
13.5, against 1.2 for matplotlib's ``tab20`` (tests/test_plotting.py measures it). ``tab20`` is
not used: its light/dark pairs suggest kinship between unrelated categories.
:func:`cell_type_colors` gives every cell type the same colour in every figure.

Applying the style
------------------
:func:`use_style` updates ``matplotlib.rcParams`` once (idempotent); importing
:mod:`scconcepts.plotting` calls it, so every chapter that imports the plotting module draws its
own matplotlib figures in the same style too. Figures of :mod:`scconcepts.plotting` use
constrained layout, passed per figure (:func:`subplots`), not through ``rcParams``: a global
``figure.constrained_layout.use`` would make every ``fig.tight_layout()`` of a chapter warn.
"""

from __future__ import annotations

import hashlib
import textwrap
from typing import Iterable

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np
from cycler import cycler
from matplotlib.text import Text

__all__ = ["DPI", "CONTENT_WIDTH_PX", "FULL_WIDTH_IN", "MIN_FONT_PT", "OKABE_ITO",
           "CATEGORICAL", "CELL_TYPE_COLORS", "UNKNOWN_COLOR", "STYLE", "use_style",
           "categorical_colors", "cell_type_colors", "category_colors", "subplots", "wrap",
           "text_artists", "rendered_width_px", "rendered_font_pt"]

#: Pixels per inch of the PNGs the inline backend writes (``figure.dpi``).
DPI = 100
#: Width of the book's content column in CSS px (sphinx-book-theme, desktop, both sidebars).
CONTENT_WIDTH_PX = 760
#: Widest figure (inches): 740 px at :data:`DPI` (760 with the PNG margins), shown unscaled.
FULL_WIDTH_IN = 7.4
#: Smallest font (pt) any figure of the book may use.
MIN_FONT_PT = 9.0
#: pdf/png ``bbox_inches="tight"`` padding (inches), matplotlib's default ``savefig.pad_inches``.
_PAD_IN = 0.1

#: Okabe & Ito (2008) colour-blind-safe set, in the order of the colour cycle (yellow, faint as
#: a line or marker on white, last).
OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000",
             "#F0E442")
#: Okabe–Ito, then Tol muted indigo, wine, green, olive and Tol light pale cyan (see module doc).
CATEGORICAL = OKABE_ITO + ("#332288", "#882255", "#117733", "#999933", "#99DDFF")
#: Colour of unknown / unassigned labels.
UNKNOWN_COLOR = "#BBBBBB"

#: Cell types of the bundled datasets (Cell Ontology names, ``data/README.md``) → colour, fixed
#: so that a type has one colour in every chapter. T cells are blues, monocytes orange /
#: vermillion (related types, related hues); all colours come from :data:`CATEGORICAL`.
CELL_TYPE_COLORS = {
    "CD4-positive, alpha-beta T cell": "#0072B2",
    "CD8-positive, alpha-beta T cell": "#56B4E9",
    "B cell": "#009E73",
    "natural killer cell": "#CC79A7",
    "classical monocyte": "#E69F00",
    "non-classical monocyte": "#D55E00",
    "dendritic cell": "#000000",
    "megakaryocyte": "#882255",
    "mononuclear phagocyte": "#999933",
    "unknown": UNKNOWN_COLOR,
}
_UNKNOWN_LABELS = {"unknown", "?", "nan", "none", "unassigned", ""}

#: The book's rcParams (see module docstring). Font sizes are ≥ :data:`MIN_FONT_PT`.
STYLE = {
    "figure.dpi": DPI,
    "savefig.dpi": "figure",
    "savefig.bbox": "tight",
    "figure.figsize": (FULL_WIDTH_IN, 3.6),
    "figure.constrained_layout.use": False,
    "font.size": 10.0,
    "axes.titlesize": 11.0,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.0,
    "ytick.labelsize": 9.0,
    "legend.fontsize": 9.0,
    "legend.title_fontsize": 9.5,
    "figure.titlesize": 12.0,
    "figure.labelsize": 10.0,
    "legend.frameon": False,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": cycler(color=list(OKABE_ITO)),
    "image.cmap": "viridis",
}


def use_style() -> None:
    """Apply :data:`STYLE` to ``matplotlib.rcParams`` (idempotent: same state however often)."""
    mpl.rcParams.update(STYLE)


def categorical_colors(n: int) -> list[str]:
    """``n`` colours for categories without a fixed colour (hex strings).

    Okabe–Ito for ``n`` ≤ 8, then :data:`CATEGORICAL` (13 colours, colour-blind safe); beyond
    13 the colours repeat, so figures with more categories should label them directly.
    """
    return [CATEGORICAL[i % len(CATEGORICAL)] for i in range(int(n))]


def category_colors(categories: Iterable) -> dict[str, str]:
    """Category → colour in the given order (:func:`categorical_colors`); unknown labels grey."""
    cats = [str(c) for c in categories]
    known = [c for c in cats if c.strip().lower() not in _UNKNOWN_LABELS]
    out = dict(zip(known, categorical_colors(len(known))))
    return {c: out.get(c, UNKNOWN_COLOR) for c in cats}


def cell_type_colors(categories: Iterable) -> dict[str, str]:
    """Cell type → colour, the same in every chapter whatever the order or subset passed.

    Parameters
    ----------
    categories
        Cell-type names (any iterable; converted with ``str``).

    Returns
    -------
    dict
        Name → hex colour: :data:`CELL_TYPE_COLORS` for the bundled datasets' types (matched
        case-insensitively), grey for unknown labels, and for any other name a colour of
        :data:`CATEGORICAL` picked by a stable hash (MD5) of the lower-cased name — stable across
        runs and machines, unlike ``hash()``. Two unlisted types can share a colour.
    """
    fixed = {k.lower(): v for k, v in CELL_TYPE_COLORS.items()}
    out = {}
    for c in categories:
        name = str(c)
        key = name.strip().lower()
        if key in fixed:
            out[name] = fixed[key]
        elif key in _UNKNOWN_LABELS:
            out[name] = UNKNOWN_COLOR
        else:
            digest = int(hashlib.md5(key.encode("utf-8")).hexdigest()[:8], 16)
            out[name] = CATEGORICAL[digest % len(CATEGORICAL)]
    return out


def subplots(n: int = 1, max_cols: int = 2, *, panel_height: float = 3.0,
             width: float = FULL_WIDTH_IN, **kwargs):
    """A constrained-layout figure of ``n`` panels, at most ``max_cols`` per row.

    Parameters
    ----------
    n
        Number of panels; spare grid cells are removed, so ``fig.axes`` has ``n`` axes.
    max_cols
        Panels per row (rows are added beyond it).
    panel_height
        Height of one row of panels (inches).
    width
        Figure width (inches), at most :data:`FULL_WIDTH_IN` for an unscaled figure.
    **kwargs
        Passed to :func:`matplotlib.pyplot.subplots` (e.g. ``sharey``).

    Returns
    -------
    (Figure, list of Axes)
        The axes in reading order, length ``n``.
    """
    n = max(int(n), 1)
    ncols = min(n, max(int(max_cols), 1))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, panel_height * nrows),
                             squeeze=False, layout="constrained", **kwargs)
    flat = list(axes.ravel())
    for ax in flat[n:]:
        ax.remove()
    return fig, flat[:n]


def wrap(text: str, width: int) -> str:
    """``text`` broken into lines of at most ``width`` characters (:func:`textwrap.fill`)."""
    return textwrap.fill(str(text), width=max(int(width), 1), break_long_words=False)


# --------------------------------------------------------------------------------- measurement
def text_artists(fig) -> list[Text]:
    """The text a reader sees in ``fig``: visible, non-empty :class:`~matplotlib.text.Text`
    artists (titles, labels, tick labels in view, legends, annotations, colour-bar ticks).

    Draws the figure first. Tick labels outside the axis' view interval are left out (matplotlib
    keeps such ticks but does not draw them).
    """
    fig.canvas.draw()
    drawn_ticks, all_ticks = set(), set()
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            lo, hi = sorted(axis.get_view_interval())
            span = (hi - lo) or 1.0
            for ticks in (axis.get_major_ticks(), axis.get_minor_ticks()):
                for t in ticks:
                    labels = (t.label1, t.label2)
                    all_ticks.update(map(id, labels))
                    if lo - 1e-9 * span <= t.get_loc() <= hi + 1e-9 * span:
                        drawn_ticks.update(id(lab) for lab in labels)
    out = []
    for t in fig.findobj(Text):
        if not t.get_visible() or not t.get_text().strip():
            continue
        if id(t) in all_ticks and id(t) not in drawn_ticks:
            continue
        if t.axes is not None and not t.axes.get_visible():
            continue
        out.append(t)
    return out


def rendered_width_px(fig) -> float:
    """Width (px) of the PNG the inline backend writes for ``fig`` (tight bounding box)."""
    fig.canvas.draw()
    bbox = fig.get_tightbbox(fig.canvas.get_renderer())
    return float((bbox.width + 2 * _PAD_IN) * fig.dpi)


def rendered_font_pt(fig, content_width_px: float = CONTENT_WIDTH_PX) -> float:
    """Smallest font of ``fig`` as the reader sees it in the book (CSS pt).

    ``fontsize × dpi / 96 × min(1, content_width_px / PNG width)`` over :func:`text_artists`
    (96 CSS px per inch); ``inf`` for a figure without text.
    """
    texts = text_artists(fig)
    if not texts:
        return float("inf")
    scale = min(1.0, content_width_px / rendered_width_px(fig))
    return float(np.min([t.get_fontsize() for t in texts]) * fig.dpi / 96 * scale)
