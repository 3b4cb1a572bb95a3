"""Figures of chapters 07–11 (stability, usefulness, baselines, DGEA, perturbation).

Re-exported by :mod:`scconcepts.plotting`, whose import applies the book's style; drawn with
:func:`scconcepts.figstyle.subplots` (constrained layout, at most two panels per row, never
wider than the content column) and fonts ≥ 9 pt. Each function returns the matplotlib Figure.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from .figstyle import FULL_WIDTH_IN, UNKNOWN_COLOR, subplots, wrap

__all__ = ["cross_r2_bars", "matching_hist", "confusion_panels", "deletion_curves_plot",
           "separation_scatter", "claim_intervals", "label_f1_plot", "r2_sparsity_scatter"]

#: Marker per method / series, so that series differ without colour too.
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _r2_axis(ax, values) -> None:
    """R² y axis: from 0.1 below the lowest value to 1, with head room above 1 for value
    labels; ticks only up to 1."""
    lo = max(0.0, float(np.nanmin(values)) - 0.1)
    ax.set_ylim(lo, 1 + 0.12 * (1 - lo))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=5))
    ax.set_yticks([t for t in ax.get_yticks() if lo - 1e-9 <= t <= 1 + 1e-9])


def cross_r2_bars(tables: dict[str, pd.DataFrame]):
    """Fig 4A: R² of SAEs on their own data and on the other dataset, one panel per model.

    Parameters
    ----------
    tables
        Model → :func:`scconcepts.stability.cross_r2_table` output (columns ``trained on``,
        ``own data``, ``r2``).

    Returns
    -------
    matplotlib Figure
        Two panels per row; one legend above the panels; each bar's R² printed above it.
    """
    fig, axes = subplots(len(tables), 2, panel_height=3.3)
    w = 0.38
    for ax, (model, t) in zip(axes, tables.items()):
        trains = list(dict.fromkeys(t["trained on"]))
        x = np.arange(len(trains))
        for j, own in enumerate((True, False)):
            sub = t[t["own data"] == own].set_index("trained on").reindex(trains)
            xs = x + (j - 0.5) * w
            ax.bar(xs, sub["r2"], w, color=f"C{j}",
                   label="own data (held-out cells)" if own else "the other dataset")
            for xi, v in zip(xs, sub["r2"]):
                if np.isfinite(v):
                    ax.annotate(f"{v:.3f}", (xi, v), xytext=(0, 2), textcoords="offset points",
                                ha="center", va="bottom", fontsize=9)
        ax.set_xticks(x, [f"SAE trained on\n{tr}" for tr in trains])
        ax.set_xlim(-0.6, len(trains) - 0.4)
        _r2_axis(ax, t["r2"])
        ax.set_title(model)
        ax.set_ylabel("R² (variance-weighted)")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside upper center", ncol=2)
    return fig


def matching_hist(real: dict[str, np.ndarray], null: dict[str, np.ndarray]):
    """Fig 4B: matched-pair cosines of real dictionaries vs a random dictionary, per model
    (legend, with the means, below each panel)."""
    fig, axes = subplots(len(real), 2, panel_height=3.4)
    bins = np.linspace(-0.2, 1, 49)
    for ax, (model, cos) in zip(axes, real.items()):
        ax.hist(cos, bins=bins, alpha=0.75, color="C0",
                label=f"main vs second (mean {np.mean(cos):.2f})")
        ax.hist(null[model], bins=bins, alpha=0.6, color=UNKNOWN_COLOR,
                label=f"main vs random (mean {np.mean(null[model]):.2f})")
        ax.set(title=model, xlabel="cosine of matched atoms", ylabel="pairs")
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.22))
    return fig


def confusion_panels(confusions: dict[str, pd.DataFrame], title: str = ""):
    """Fig 10: row-normalised confusion matrices (true × predicted), one panel per entry.

    Counts are printed in the cells (9 pt); with more than five classes each matrix gets its
    own row so that the counts fit. Long class names are wrapped.
    """
    n_classes = max([len(cm) for cm in confusions.values()] or [1])
    per_row = 2 if n_classes <= 5 else 1
    side = max(2.6, 0.5 * n_classes + 1.8)
    fig, axes = subplots(len(confusions), per_row, panel_height=side,
                         width=FULL_WIDTH_IN if per_row == 2 else min(FULL_WIDTH_IN, side + 1.5))
    for ax, (name, cm) in zip(axes, confusions.items()):
        frac = cm.div(cm.sum(1).replace(0, 1), axis=0)
        sns.heatmap(frac, vmin=0, vmax=1, cmap="Blues", annot=cm.to_numpy(), fmt="d", ax=ax,
                    cbar=False, annot_kws={"fontsize": 9})
        ax.set_title(wrap(name, 40), fontsize=10)
        long_names = max(len(str(c)) for c in cm.columns) > 5
        ax.set_xticks(ax.get_xticks(), [wrap(c, 16) for c in cm.columns],
                      rotation=90 if long_names else 0)
        ax.set_yticks(ax.get_yticks(), [wrap(c, 18) for c in cm.index], rotation=0)
    if title:
        fig.suptitle(title)
    return fig


_CURVE_STYLE = {  # Okabe–Ito / Tol colours; line styles tell the variants apart
    "attribution": ("#D55E00", "-"),
    "DGEA": ("#0072B2", "-"),
    "attribution, zero-masked": ("#D55E00", "--"),
    "DGEA, zero-masked": ("#0072B2", "--"),
    "random": ("#777777", ":"),
    "attribution, held-out pairs": ("#882255", "-."),
    "DGEA, held-out pairs": ("#332288", "-."),
}


def deletion_curves_plot(curves: dict[str, pd.DataFrame], title: str = ""):
    """Fig 8: relative concept activation vs genes removed, mean ± std over concepts.

    ``curves``: panel name → long table with ``unit``, ``curve``, ``step``, ``activation``
    (:func:`scconcepts.dgea.deletion_curves`). One legend for all panels, below them.
    """
    fig, axes = subplots(len(curves), 2, panel_height=3.2)
    for ax, (name, df) in zip(axes, curves.items()):
        for curve, sub in df.groupby("curve", sort=False):
            g = sub.groupby("step")["activation"]
            m, s = g.mean(), g.std(ddof=0).fillna(0)
            color, ls = _CURVE_STYLE.get(curve, (None, "-"))
            ax.plot(m.index, m, ls, color=color, label=curve, lw=1.6)
            ax.fill_between(m.index, m - s, m + s, color=color, alpha=0.12, linewidth=0)
        n_units = df["unit"].nunique()
        ax.set(title=wrap(f"{name} ({n_units} concepts)", 40), xlabel="genes removed",
               ylabel="activation / prototype")
        ax.axhline(0, color="k", lw=0.5)
    seen = {}
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            seen.setdefault(lab, h)
    fig.legend(list(seen.values()), list(seen), loc="outside lower center", ncol=3)
    if title:
        fig.suptitle(title)
    return fig


def separation_scatter(table: pd.DataFrame, highlight: Sequence[int] = (), title: str = ""):
    """Chapter 11: activation frequency in control vs stimulated cells, coloured by AUROC.

    ``table``: :func:`scconcepts.perturbation.separating_concepts` output; ``highlight``:
    concepts labelled ``C<id>``.
    """
    fig, (ax,) = subplots(1, width=6.0, panel_height=4.6)
    sc_ = ax.scatter(table["freq_neg"], table["freq_pos"], c=table["auroc"], cmap="coolwarm",
                     vmin=0, vmax=1, s=14, linewidths=0)
    for u in highlight:
        if u in table.index:
            ax.annotate(f"C{u}", (table.loc[u, "freq_neg"], table.loc[u, "freq_pos"]),
                        fontsize=9, xytext=(4, 2), textcoords="offset points")
    lim = max(table["freq_neg"].max(), table["freq_pos"].max()) * 1.05
    ax.plot([0, lim], [0, lim], color="k", lw=0.5)
    ax.set(xlabel="share of control cells activating",
           ylabel="share of stimulated cells activating", title=wrap(title, 55))
    fig.colorbar(sc_, ax=ax, label="AUROC (stimulated vs control)")
    return fig


def claim_intervals(panels: dict, xlabel: str = "value (95 % interval)"):
    """Claims' values with their 95 % intervals, one row per claim and one panel per group,
    with a dashed line at 0 (chapter 05: the concepts − neurons gap under each counterfactual
    pool).

    ``panels``: title → {row label → :class:`~scconcepts.claims.Claim`}; a claim without an
    interval is drawn as a point only."""
    n_rows = max([len(r) for r in panels.values()] or [1])
    fig, axes = subplots(max(len(panels), 1), 2, panel_height=0.45 * n_rows + 1.7)
    for ax, (title, rows) in zip(axes, panels.items()):
        for y, c in enumerate(rows.values()):
            lo, hi = c.interval if c.interval is not None else (c.value, c.value)
            ax.errorbar([c.value], [y], xerr=[[c.value - lo], [hi - c.value]], fmt="o",
                        capsize=4, color="C0")
        ax.set_yticks(range(len(rows)), [wrap(r, 22) for r in rows])
        ax.set_ylim(len(rows) - 0.5, -0.5)  # first row on top
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.xaxis.set_major_locator(MaxNLocator(nbins=5))
        ax.set(xlabel=wrap(xlabel, 30), title=wrap(title, 40))
    return fig


def label_f1_plot(per_label: dict[str, pd.DataFrame], f1_min: float = 0.5):
    """Chapter 09 (InterPLM protocol): the test F1 of the best unit per label, one dot per label
    and one row per method, a panel per model.

    ``per_label``: panel title → :func:`scconcepts.alignment.alignment_table`'s per-label table
    (columns ``method``, ``f1_test``); the dashed line marks ``f1_min``."""
    n_methods = max([per["method"].nunique() for per in per_label.values()] or [1])
    fig, axes = subplots(max(len(per_label), 1), 2, panel_height=0.55 * n_methods + 1.6)
    for ax, (title, per) in zip(axes, per_label.items()):
        methods = list(dict.fromkeys(per["method"]))
        for i, method in enumerate(methods):
            f1 = per.loc[per["method"] == method, "f1_test"].to_numpy(float)
            ax.scatter(f1, i + np.linspace(-0.2, 0.2, len(f1)), s=18, color=f"C{i}",
                       marker=MARKERS[i % len(MARKERS)])
        ax.set_yticks(range(len(methods)), [wrap(m, 18) for m in methods])
        ax.axvline(f1_min, color="grey", lw=0.8, ls="--")
        ax.set(xlabel=wrap("test F1 of the best unit (one dot per label)", 30), xlim=(0, 1),
               title=wrap(title, 40))
    return fig


def r2_sparsity_scatter(tables: dict[str, pd.DataFrame], labels: dict[str, str] | None = None,
                        r2_row: str = "R² (held-out cells)", sparsity_row: str = "sparsity"):
    """Chapter 09: reconstruction R² against sparsity, one point per method, a panel per model.

    Parameters
    ----------
    tables
        Model → :func:`scconcepts.baselines.baseline_table` (rows = metrics, columns =
        methods); cells may be numbers or text such as ``"0.984 (0.000)"`` (mean, then std) or
        ``"—"`` (not measured: the method is left out).
    labels
        Model → panel title (default: the model name).
    r2_row, sparsity_row
        Rows holding R² and the share of zero codes.

    Returns
    -------
    matplotlib Figure
        Methods differ by colour and marker (hollow, so coinciding points stay visible), named
        with their (sparsity, R²) in a legend below each panel instead of text next to the
        points.
    """
    labels = labels or {}
    fig, axes = subplots(max(len(tables), 1), 2, panel_height=3.2 + 0.2 * max(
        [t.shape[1] for t in tables.values()] or [1]))
    for ax, (m, t) in zip(axes, tables.items()):
        r2 = pd.to_numeric(t.loc[r2_row], errors="coerce")
        # "mean (std)" text: the mean is the first number
        sp_ = pd.to_numeric(t.loc[sparsity_row].astype(str).str.split(" ").str[0],
                            errors="coerce")
        for i, method in enumerate(t.columns):
            if not (np.isfinite(r2[method]) and np.isfinite(sp_[method])):
                continue
            ax.scatter(sp_[method], r2[method], s=55, marker=MARKERS[i % len(MARKERS)],
                       facecolors="none", edgecolors=f"C{i}", linewidths=1.6,
                       label=f"{method} ({sp_[method]:.2f}, {r2[method]:.3f})")
        ax.set(xlabel="sparsity (share of zero codes)", ylabel="R² (held-out cells)",
               title=wrap(labels.get(m, m), 40), xlim=(-0.05, 1.05))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), handletextpad=0.3,
                  labelspacing=0.3, title="method (sparsity, R²)")
    return fig
