"""Figures of the book (matplotlib / seaborn). Each function returns the matplotlib Figure.

Style: importing this module applies the book's figure style (:func:`use_style`, from
:mod:`scconcepts.figstyle`: fonts ≥ 9 pt at the book's content width, Okabe–Ito colours, one
colour per cell type in every chapter via :func:`cell_type_colors`), and every figure here is
drawn with constrained layout at most :data:`~scconcepts.figstyle.FULL_WIDTH_IN` inches wide, so
the page never scales it down. Chapters 01–06 are drawn here, chapters 07–11 in
:mod:`scconcepts.plotting_results` (re-exported).
"""

from __future__ import annotations

import inspect
from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from scipy.cluster.hierarchy import leaves_list, linkage

from .figstyle import (FULL_WIDTH_IN, UNKNOWN_COLOR, category_colors, cell_type_colors,
                       subplots, use_style, wrap)
from .plotting_results import (claim_intervals, confusion_panels, cross_r2_bars,
                               deletion_curves_plot, label_f1_plot, matching_hist,
                               r2_sparsity_scatter, separation_scatter)

__all__ = ["use_style", "cell_type_colors", "umap_panels", "r2_bars", "training_curves",
           "category_bars", "ratio_heatmap", "gene_set_size_hist", "attribution_cdf",
           "top_genes_bars", "stacked_fraction_bars", "annotation_bars", "pretraining_curve",
           "r2_overview", "pair_diagnostics",
           "cross_r2_bars", "matching_hist", "confusion_panels", "deletion_curves_plot",
           "separation_scatter", "claim_intervals", "label_f1_plot", "r2_sparsity_scatter"]

use_style()

#: ``obs`` columns holding cell types: coloured by :func:`cell_type_colors`.
CELL_TYPE_KEYS = ("cell_type", "author_cell_type", "cell_type_label")

_CAT_COLORS = {  # Sec 3.1 categories (chapter 03), Okabe–Ito
    "cell_type-specific": "#0072B2",
    "tissue-specific": "#009E73",
    "donor_id-specific": "#D55E00",
    "condition-specific": "#CC79A7",
    "other": "#F0E442",
    "not enough data": UNKNOWN_COLOR,
    "dead": "#000000",
}


def _text_color(background) -> str:
    """Black or white, whichever reads on ``background`` (seaborn's luminance, as its heatmap)."""
    return "black" if sns.utils.relative_luminance(background) > 0.4 else "white"


def umap_panels(adata, keys: Sequence[str], basis: str = "X_umap", title: str = "",
                max_legend: int = 20):
    """UMAP scatter coloured by each ``obs`` key (Fig 6/7), two panels per row.

    Parameters
    ----------
    adata
        AnnData with ``obsm[basis]`` of shape (n_cells, 2); keys missing from ``obs`` are skipped.
    keys
        Categorical ``obs`` columns, one panel each. Cell-type columns (:data:`CELL_TYPE_KEYS`)
        use :func:`cell_type_colors`, others the colour-blind-safe categorical palette.
    basis, title
        Coordinates and figure title.
    max_legend
        Largest number of legend entries (the most frequent labels; the legend title says how
        many are listed when some are left out).

    Returns
    -------
    matplotlib Figure
        Each legend (9 pt, label and cell count) sits below its panel.
    """
    keys = [k for k in keys if k in adata.obs]
    xy = np.asarray(adata.obsm[basis])
    cols = [adata.obs[k].astype(str).astype("category") for k in keys]
    n_entries = max([min(len(c.cat.categories), max_legend) for c in cols] or [1])
    ncol = 1 if n_entries <= 10 else 2
    legend_rows = -(-n_entries // ncol)
    fig, axes = subplots(len(keys), 2, panel_height=3.3 + 0.2 * legend_rows * 1.3)
    size = float(np.clip(3e4 / max(len(xy), 1), 0.5, 8))
    # one scatter in a seeded random order, so that no label is drawn over all the others
    perm = np.random.default_rng(0).permutation(len(xy))
    for ax, key, lab in zip(axes, keys, cols):
        counts = lab.value_counts()
        cats = list(lab.cat.categories)
        colors = (cell_type_colors(cats) if key in CELL_TYPE_KEYS else category_colors(cats))
        ax.scatter(xy[perm, 0], xy[perm, 1], s=size, linewidths=0, rasterized=True,
                   c=lab.astype(object).map(colors).to_numpy()[perm])
        frequent = set(counts.index[:max_legend])
        shown = [c for c in cats if c in frequent]
        handles = [Line2D([], [], ls="", marker="o", ms=6, color=colors[c]) for c in shown]
        labels = [wrap(f"{c} ({counts[c]:,})", 38 if ncol == 1 else 18) for c in shown]
        ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.02), ncol=ncol,
                  title=(f"{len(shown)} most frequent of {len(cats)}"
                         if len(shown) < len(cats) else None),
                  handletextpad=0.2, columnspacing=0.8, borderaxespad=0)
        ax.set_title(key)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.spines[["top", "right"]].set_visible(True)  # a frame, as scanpy draws embeddings
        ax.set_aspect("equal", adjustable="datalim")
    if title:
        fig.suptitle(title)
    return fig


def _ticks_up_to_one(ax) -> None:
    """Keep only y ticks ≤ 1 (R² axes get head room above 1 for the value labels)."""
    ax.set_yticks([t for t in ax.get_yticks() if ax.get_ylim()[0] <= t <= 1 + 1e-9])


def r2_bars(table: pd.DataFrame, paper: pd.DataFrame | None = None):
    """Fig 2A: R² per SAE size; ``table`` has columns ``c``, ``k``, ``r2``; ``paper`` optional
    (same rows), drawn grey beside each bar. Values are printed on this book's bars."""
    fig, (ax,) = subplots(1, width=6.5, panel_height=3.4)
    labels = [f"c={c}\nk={k}" for c, k in zip(table["c"], table["k"])]
    x = np.arange(len(table))
    w = 0.38 if paper is not None else 0.7
    shift = w / 2 if paper is not None else 0
    ax.bar(x - shift, table["r2"], w, label="this book")
    if paper is not None:
        ax.bar(x + shift, paper["r2"], w, label="paper (TS Immune)", color=UNKNOWN_COLOR)
    lo = min(table["r2"].min(), paper["r2"].min() if paper is not None else 1)
    lo = max(0.0, lo - 0.05)
    ax.set_ylim(lo, 1 + 0.1 * (1 - lo))
    for xi, v in zip(x, table["r2"]):
        ax.annotate(f"{v:.3f}", (xi - shift, v), xytext=(0, 2), textcoords="offset points",
                    ha="center", va="bottom", fontsize=9)
    _ticks_up_to_one(ax)
    ax.set_xticks(x, labels)
    ax.set_ylabel("R² (variance-weighted)")
    fig.legend(loc="outside upper center", ncol=2)
    return fig


def training_curves(histories: dict[str, dict], title: str = ""):
    """Per epoch, for several SAEs (``label -> history`` of :func:`scconcepts.sae.train_sae`):
    training R² (solid, running over the epoch) and held-out R² (dashed), with the epoch where
    the stopping rule was met marked by a dot; and the dead concepts.

    ``title``: figure title. (Under constrained layout a title added afterwards with
    ``fig.suptitle(..., y=1.02)`` is not given room and overlaps the panels; without ``y`` it
    is.)"""
    fig, (a1, a2) = subplots(2, panel_height=3.0)
    lo = 1.0
    handles = []
    for i, (label, h) in enumerate(histories.items()):
        col = f"C{i}"
        handles += a1.plot(h["epoch"], h["r2"], color=col, lw=1.2, label=label)
        if h.get("r2_val"):
            a1.plot(h["epoch"], h["r2_val"], color=col, lw=1.2, ls="--")
            if h.get("converged"):
                a1.plot(h["epoch"][-1], h["r2_val"][-1], "o", color=col, ms=4)
        lo = min(lo, float(np.nanmin(h["r2"][len(h["r2"]) // 4:] or [1.0])))
        a2.plot(h["epoch"], h["dead"], color=col, lw=1.2)
    handles += [Line2D([], [], color="k", lw=1.2, label="training"),
                Line2D([], [], color="k", lw=1.2, ls="--", label="held out")]
    a1.set(xlabel="epoch", ylabel="R²", ylim=(max(0.0, lo - 0.05), 1))
    a2.set(xlabel="epoch", ylabel="dead concepts")
    fig.legend(handles=handles, loc="outside lower center", ncol=3)
    if title:
        fig.suptitle(title)
    return fig


def category_bars(counts: pd.DataFrame):
    """Fig 2B: concepts per Sec 3.1 category (rows: SAE sizes, columns: categories); counts
    are printed on shares above 6 %."""
    cols = [c for c in _CAT_COLORS if c in counts.columns]
    fig, (ax,) = subplots(1, panel_height=0.45 * len(counts) + 1.9)
    frac = counts[cols].div(counts[cols].sum(1), axis=0)
    left = np.zeros(len(frac))
    for col in cols:
        ax.barh(frac.index.astype(str), frac[col], left=left, color=_CAT_COLORS[col], label=col)
        for i, (l0, v, n) in enumerate(zip(left, frac[col], counts[col])):
            if v > 0.06:
                ax.text(l0 + v / 2, i, str(int(n)), ha="center", va="center", fontsize=9,
                        color=_text_color(_CAT_COLORS[col]))
        left += frac[col].to_numpy()
    ax.set_xlabel("fraction of concepts")
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    fig.legend(loc="outside lower center", ncol=4)
    return fig


def ratio_heatmap(ratios: pd.DataFrame, title: str = "", n_top: int = 30,
                  order: str = "cluster"):
    """Metadata ratios r (concepts × labels) of the ``n_top`` concepts with the highest ratio.

    Parameters
    ----------
    ratios
        Shape (n_concepts, n_labels), values in [0, 1]; NaN (never-active) rows count as 0.
    title
        First title line; the second says how many concepts are shown of how many.
    n_top
        Rows shown: the concepts with the largest maximum ratio (ties: the given order).
    order
        ``"cluster"``: rows in the leaf order of an average-linkage clustering of their ratio
        profiles (SciPy, optimal leaf ordering), so concepts of one label sit together;
        ``"given"``: the order of ``ratios``.

    Returns
    -------
    matplotlib Figure
    """
    if order not in ("cluster", "given"):
        raise ValueError(f"order must be 'cluster' or 'given', not {order!r}")
    filled = ratios.fillna(0.0)
    top = filled.max(axis=1).sort_values(ascending=False, kind="stable").index[:n_top]
    keep = set(top)
    shown = filled.loc[[i for i in filled.index if i in keep]]
    if order == "cluster" and len(shown) > 2:
        shown = shown.iloc[leaves_list(linkage(shown.to_numpy(), "average",
                                               optimal_ordering=True))]
    n_rows, n_cols = shown.shape
    fig, (ax,) = subplots(1, width=min(FULL_WIDTH_IN, 0.45 * n_cols + 3.2),
                          panel_height=0.19 * n_rows + 2.9)
    sns.heatmap(shown, vmin=0, vmax=1, cmap="viridis", ax=ax, yticklabels=True,
                cbar_kws={"label": "ratio r", "shrink": min(1.0, 3.0 / (0.19 * n_rows + 1)),
                          "aspect": 12})
    ax.set_ylabel("concept")
    ax.set_xlabel("")
    ax.tick_params(axis="y", labelsize=9, rotation=0)
    ax.set_xticks(ax.get_xticks(), [wrap(c, 22) for c in shown.columns], rotation=90)
    what = (f"the {n_rows} of {len(ratios)} concepts with the highest ratio"
            if n_rows < len(ratios) else f"all {n_rows} concepts")
    ax.set_title("\n".join(s for s in (wrap(title, 60), what + (
        ", clustered" if order == "cluster" else "")) if s), fontsize=10)
    return fig


def gene_set_size_hist(sizes: dict[str, np.ndarray], threshold_label: str):
    """Fig 2C: distribution of genes per unit with attribution above the threshold; one bar
    series per entry of ``sizes`` (label → genes per unit, NaN ignored)."""
    fig, (ax,) = subplots(1, panel_height=3.4)
    bins = [0, 1, 2, 3, 4, 6, 11, 21, 51, 10_000]
    names = ["0", "1", "2", "3", "4-5", "6-10", "11-20", "21-50", ">50"]
    width = 0.8 / max(1, len(sizes))
    for i, (label, s) in enumerate(sizes.items()):
        s = np.asarray(s)
        s = s[~np.isnan(s)]
        h, _ = np.histogram(s, bins=bins)
        ax.bar(np.arange(len(names)) + i * width, h / max(1, len(s)), width, label=label)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_xlabel(wrap(f"genes with {threshold_label}", 80))
    ax.set_ylabel("fraction of units")
    ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return fig


def attribution_cdf(scores: dict[str, np.ndarray]):
    """Fig 11: cumulative distribution of attribution scores (all genes of all units), on a
    symmetric log axis (linear within ±10⁻³); the dashed line marks 0.05."""
    fig, (ax,) = subplots(1, width=6.5, panel_height=3.4)
    for label, s in scores.items():
        v = np.sort(np.asarray(s)[np.isfinite(s)].ravel())
        ax.plot(v, np.arange(1, v.size + 1) / v.size, label=label)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("attribution score (activation drop)")
    ax.set_ylabel("cumulative fraction")
    ax.axvline(0.05, ls="--", c="grey", lw=0.8)
    ax.legend(loc="upper left")
    return fig


def top_genes_bars(panels: dict[str, pd.Series], per_prototype: dict[str, np.ndarray] | None = None,
                   ncols: int = 2):
    """Top attribution genes of several units; dots show per-prototype values.

    Parameters
    ----------
    panels
        Panel title → attribution per gene (index: gene names, shown top to bottom).
    per_prototype
        Panel title → array (n_prototypes, n_genes shown), in the order of the panel's genes.
    ncols
        Panels per row, at most 2 (wider rows would shrink gene names below 9 pt).

    Returns
    -------
    matplotlib Figure
    """
    n = len(panels)
    ncols = max(1, min(int(ncols), 2, n))
    n_genes = max([len(s) for s in panels.values()] or [1])
    fig, axes = subplots(n, ncols, panel_height=0.17 * n_genes + 1.4,
                         width=FULL_WIDTH_IN if ncols > 1 else 4.5)
    for ax, (title, s) in zip(axes, panels.items()):
        ax.barh(s.index[::-1], s.values[::-1], color="C0")
        if per_prototype and title in per_prototype:
            pp = per_prototype[title]
            for j in range(pp.shape[1]):
                y = len(s) - 1 - j
                ax.scatter(pp[:, j], np.full(pp.shape[0], y), s=6, color="k", alpha=0.5, zorder=3)
        ax.set_title(wrap(title, 40 if ncols > 1 else 55), fontsize=10)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.set_ylim(-0.6, len(s) - 0.4)
        ax.set_xlabel("attribution")
    return fig


def stacked_fraction_bars(table: pd.DataFrame, colors: dict[str, str], labels=None,
                          xlabel: str = "fraction of units", title: str = ""):
    """Horizontal stacked bars of fractions (one bar per row of ``table``).

    Parameters
    ----------
    table
        Rows = bars; the columns named in ``colors`` hold fractions that sum to ≤ 1 per row.
    colors
        Column → colour, in stacking order; shares above 5 % are printed on the bar.
    labels
        Bar labels (default: the index, tuples joined with " / ").

    Returns
    -------
    matplotlib Figure
    """
    fig, (ax,) = subplots(1, panel_height=0.5 * len(table) + 1.9)
    if labels is None:
        labels = [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i)
                  for i in table.index]
    left = np.zeros(len(table))
    for col, color in colors.items():
        v = table[col].to_numpy(dtype=float)
        ax.barh([wrap(lab, 30) for lab in labels], v, left=left, color=color, label=col)
        for i, (l0, x) in enumerate(zip(left, v)):
            if x > 0.05:
                ax.text(l0 + x / 2, i, f"{x:.0%}", ha="center", va="center", fontsize=9,
                        color=_text_color(color))
        left += v
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    ax.set_title(wrap(title, 70))
    fig.legend(loc="outside lower center", ncol=3)
    return fig


def annotation_bars(table: pd.DataFrame, title: str = ""):
    """Fig 3A.b: fraction of units with strong / weak / no GSEA annotation."""
    return stacked_fraction_bars(
        table, {"strong": "#2E7D32", "weak": "#A5D6A7", "none": "#DDDDDD"}, title=title)


def pretraining_curve(log: dict):
    """Training curve of the project scGPT (``training_log.json``): GEP and MVC losses per step."""
    fig, (ax,) = subplots(1, width=7.0, panel_height=3.4)
    step = np.asarray(log["step"])
    for key, label in (("loss_gep", "masked value prediction (GEP)"),
                       ("loss_mvc", "cell-embedding value prediction (MVC)")):
        v = pd.Series(log[key]).rolling(25, min_periods=1).mean()
        ax.plot(step, v, label=label)
    ax.set(xlabel="optimisation step (batch 32)",
           ylabel="masked MSE (bin units²,\n25-step mean)")
    ax.set_yscale("log")
    ax.legend()
    return fig


def r2_overview(tables: dict[str, pd.DataFrame]):
    """Chapter 02: R² of every SAE size, one panel per model (two per row).

    ``tables``: panel title → table with columns ``c``, ``k``, ``r2`` (one row per SAE).
    """
    fig, axes = subplots(max(len(tables), 1), 2, panel_height=3.0)
    for ax, (title, t) in zip(axes, tables.items()):
        ax.bar([f"{c}/{k}" for c, k in zip(t["c"], t["k"])], t["r2"], color="C0")
        ax.set_ylim(min(0.5, float(t["r2"].min()) - 0.05), 1.0)
        ax.set(title=wrap(title, 40), xlabel="c / k", ylabel="R²")
    return fig


def pair_diagnostics(diag: pd.DataFrame, title: str = "",
                     columns: Sequence[str] = ("log distance ratio", "other cell type",
                                               "abs log library ratio")):
    """Chapter 05: how the counterfactual pairs of each kind of unit and pool look.

    Parameters
    ----------
    diag
        One row per unit (or pair), with ``kind`` and ``pools`` as columns or index levels and
        the ``columns`` as values (:meth:`scconcepts.workflow.Workflow.pair_diagnostics`
        tables, concatenated).
    title
        Figure title.
    columns
        One panel per column: a horizontal box (no outliers) per (kind, pools) group.

    Returns
    -------
    matplotlib Figure
        Panels side by side sharing the group labels, written horizontally on the first.
    """
    groups = [(f"{kind}, {pools}", g) for (kind, pools), g in diag.groupby(["kind", "pools"])]
    fig, axes = subplots(len(columns), 3, panel_height=0.45 * len(groups) + 1.5, sharey=True)
    # matplotlib 3.10 replaced vert=False by orientation= (vert warns from 3.11, and so does
    # seaborn 0.13's boxplot, which passes vert)
    horizontal = ({"orientation": "horizontal"} if "orientation" in
                  inspect.signature(axes[0].boxplot).parameters else {"vert": False})
    line = {"color": "C0", "linewidth": 1.4}
    for ax, col in zip(axes, columns):
        ax.boxplot([g[col].dropna().to_numpy(float) for _, g in groups],
                   positions=range(len(groups)), widths=0.6, showfliers=False, boxprops=line,
                   whiskerprops=line, capprops=line, medianprops={"color": "C3", "linewidth": 2},
                   **horizontal)
        ax.set_yticks(range(len(groups)), [wrap(name, 20) for name, _ in groups])
        ax.set_ylim(len(groups) - 0.5, -0.5)  # first group on top
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4))
        ax.set(xlabel=wrap(col, 22))
    if title:
        fig.suptitle(wrap(title, 70))
    return fig
