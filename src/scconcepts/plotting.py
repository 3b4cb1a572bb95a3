"""Figures of the book (matplotlib / seaborn / scanpy). Each returns the matplotlib Figure."""

from __future__ import annotations

from typing import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

__all__ = ["umap_panels", "r2_bars", "training_curves", "category_bars", "ratio_heatmap",
           "gene_set_size_hist", "attribution_cdf", "top_genes_bars", "annotation_bars",
           "pretraining_curve", "cross_r2_bars", "matching_hist", "confusion_panels",
           "claim_intervals", "label_f1_plot"]

_CAT_COLORS = {
    "cell_type-specific": "#4C72B0",
    "tissue-specific": "#55A868",
    "donor_id-specific": "#C44E52",
    "condition-specific": "#8172B2",
    "other": "#CCB974",
    "not enough data": "#BBBBBB",
    "dead": "#444444",
}


def umap_panels(adata, keys: Sequence[str], basis: str = "X_umap", title: str = ""):
    """UMAP scatter coloured by each ``obs`` key (Fig 6/7). ``adata.obsm[basis]`` is (n, 2)."""
    keys = [k for k in keys if k in adata.obs]
    fig, axes = plt.subplots(1, len(keys), figsize=(5.2 * len(keys), 4.4), squeeze=False)
    xy = adata.obsm[basis]
    for ax, key in zip(axes[0], keys):
        lab = adata.obs[key].astype("category")
        pal = sns.color_palette("tab20", len(lab.cat.categories))
        for i, cat in enumerate(lab.cat.categories):
            m = (lab == cat).to_numpy()
            ax.scatter(xy[m, 0], xy[m, 1], s=2, color=pal[i], label=f"{cat} ({m.sum()})",
                       rasterized=True, linewidths=0)
        ax.set_title(key)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.legend(fontsize=6, markerscale=4, loc="upper left", bbox_to_anchor=(1, 1),
                  frameon=False)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def r2_bars(table: pd.DataFrame, paper: pd.DataFrame | None = None):
    """Fig 2A: R² per SAE size; ``table`` has columns ``c``, ``k``, ``r2``; ``paper`` optional."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    labels = [f"c={c}\nk={k}" for c, k in zip(table["c"], table["k"])]
    x = np.arange(len(table))
    w = 0.38 if paper is not None else 0.7
    ax.bar(x - (w / 2 if paper is not None else 0), table["r2"], w, label="this book")
    if paper is not None:
        ax.bar(x + w / 2, paper["r2"], w, label="paper (TS Immune)", color="#BBBBBB")
    for xi, v in zip(x, table["r2"]):
        ax.text(xi - (w / 2 if paper is not None else 0), v + 0.003, f"{v:.3f}", ha="center",
                fontsize=7)
    ax.set_xticks(x, labels)
    ax.set_ylabel("R² (variance-weighted)")
    lo = min(table["r2"].min(), paper["r2"].min() if paper is not None else 1)
    ax.set_ylim(max(0, lo - 0.05), 1.0)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def training_curves(histories: dict[str, dict]):
    """Per epoch, for several SAEs (``label -> history`` of :func:`scconcepts.sae.train_sae`):
    training R² (solid, running over the epoch) and held-out R² (dashed), with the epoch where
    the stopping rule was met marked by a dot; and the dead concepts."""
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10, 3.4))
    lo = 1.0
    for i, (label, h) in enumerate(histories.items()):
        col = f"C{i}"
        a1.plot(h["epoch"], h["r2"], color=col, lw=1, label=label)
        if h.get("r2_val"):
            a1.plot(h["epoch"], h["r2_val"], color=col, lw=1, ls="--")
            if h.get("converged"):
                a1.plot(h["epoch"][-1], h["r2_val"][-1], "o", color=col, ms=4)
        lo = min(lo, float(np.nanmin(h["r2"][len(h["r2"]) // 4:] or [1.0])))
        a2.plot(h["epoch"], h["dead"], color=col, label=label)
    a1.set(xlabel="epoch", ylabel="R² (solid: training, dashed: held out)",
           ylim=(max(0.0, lo - 0.05), 1))
    a2.set(xlabel="epoch", ylabel="dead concepts")
    a1.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def category_bars(counts: pd.DataFrame):
    """Fig 2B: concepts per Sec 3.1 category (rows: SAE sizes, columns: categories)."""
    cols = [c for c in _CAT_COLORS if c in counts.columns]
    fig, ax = plt.subplots(figsize=(7, 0.6 * len(counts) + 1.4))
    frac = counts[cols].div(counts[cols].sum(1), axis=0)
    left = np.zeros(len(frac))
    for col in cols:
        ax.barh(frac.index.astype(str), frac[col], left=left, color=_CAT_COLORS[col], label=col)
        for i, (l, v, n) in enumerate(zip(left, frac[col], counts[col])):
            if v > 0.06:
                ax.text(l + v / 2, i, str(int(n)), ha="center", va="center", fontsize=7,
                        color="white")
        left += frac[col].to_numpy()
    ax.set_xlabel("fraction of concepts")
    ax.invert_yaxis()
    ax.legend(ncol=3, fontsize=7, frameon=False, loc="upper center", bbox_to_anchor=(0.5, -0.25))
    fig.tight_layout()
    return fig


def ratio_heatmap(ratios: pd.DataFrame, title: str = ""):
    """Metadata ratios r (concepts × labels) as a heatmap."""
    fig, ax = plt.subplots(figsize=(0.5 * ratios.shape[1] + 3, 0.18 * len(ratios) + 1.8))
    sns.heatmap(ratios, vmin=0, vmax=1, cmap="viridis", ax=ax, cbar_kws={"label": "ratio r"},
                yticklabels=True)
    ax.set_ylabel("concept")
    ax.tick_params(axis="y", labelsize=6)
    ax.set_title(title)
    fig.tight_layout()
    return fig


def gene_set_size_hist(sizes: dict[str, np.ndarray], threshold_label: str):
    """Fig 2C: distribution of genes per unit with attribution above the threshold."""
    fig, ax = plt.subplots(figsize=(6.5, 3.4))
    bins = [0, 1, 2, 3, 4, 6, 11, 21, 51, 10_000]
    names = ["0", "1", "2", "3", "4-5", "6-10", "11-20", "21-50", ">50"]
    width = 0.8 / max(1, len(sizes))
    for i, (label, s) in enumerate(sizes.items()):
        s = np.asarray(s)
        s = s[~np.isnan(s)]
        h, _ = np.histogram(s, bins=bins)
        ax.bar(np.arange(len(names)) + i * width, h / max(1, len(s)), width, label=label)
    ax.set_xticks(np.arange(len(names)) + 0.4 - width / 2, names)
    ax.set_xlabel(f"genes with {threshold_label}")
    ax.set_ylabel("fraction of units")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    return fig


def attribution_cdf(scores: dict[str, np.ndarray]):
    """Fig 11: cumulative distribution of attribution scores (all genes of all units)."""
    fig, ax = plt.subplots(figsize=(6, 3.4))
    for label, s in scores.items():
        v = np.sort(np.asarray(s)[np.isfinite(s)].ravel())
        ax.plot(v, np.arange(1, v.size + 1) / v.size, label=label)
    ax.set_xscale("symlog", linthresh=1e-3)
    ax.set_xlabel("attribution score (activation drop)")
    ax.set_ylabel("cumulative fraction")
    ax.axvline(0.05, ls="--", c="grey", lw=0.8)
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def top_genes_bars(panels: dict[str, pd.Series], per_prototype: dict[str, np.ndarray] | None = None,
                   ncols: int = 3):
    """Top attribution genes of several units; dots show per-prototype values."""
    n = len(panels)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, (title, s) in zip(axes.ravel(), panels.items()):
        ax.barh(s.index[::-1], s.values[::-1], color="#4C72B0")
        if per_prototype and title in per_prototype:
            pp = per_prototype[title]  # (n_prototypes, n_genes shown), same order as s
            for j in range(pp.shape[1]):
                y = len(s) - 1 - j
                ax.scatter(pp[:, j], np.full(pp.shape[0], y), s=6, color="k", alpha=0.5, zorder=3)
        ax.set_title(title, fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
        ax.set_xlabel("attribution")
    for ax in axes.ravel()[n:]:
        ax.axis("off")
    fig.tight_layout()
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
    fig, ax = plt.subplots(figsize=(6.5, 0.7 * len(table) + 1.5))
    if labels is None:
        labels = [" / ".join(map(str, i)) if isinstance(i, tuple) else str(i)
                  for i in table.index]
    left = np.zeros(len(table))
    for col, color in colors.items():
        v = table[col].to_numpy(dtype=float)
        ax.barh(labels, v, left=left, color=color, label=col)
        for i, (l0, x) in enumerate(zip(left, v)):
            if x > 0.05:
                ax.text(l0 + x / 2, i, f"{x:.0%}", ha="center", va="center", fontsize=8)
        left += v
    ax.set_xlim(0, 1)
    ax.set_xlabel(xlabel)
    ax.invert_yaxis()
    ax.set_title(title)
    ax.legend(ncol=3, frameon=False, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.3))
    fig.tight_layout()
    return fig


def annotation_bars(table: pd.DataFrame, title: str = ""):
    """Fig 3A.b: fraction of units with strong / weak / no GSEA annotation."""
    return stacked_fraction_bars(
        table, {"strong": "#2E7D32", "weak": "#A5D6A7", "none": "#DDDDDD"}, title=title)


def pretraining_curve(log: dict):
    """Training curve of the project scGPT (``training_log.json``): GEP and MVC losses per step."""
    fig, ax = plt.subplots(figsize=(7, 3.2))
    step = np.asarray(log["step"])
    for key, label in (("loss_gep", "masked value prediction (GEP)"),
                       ("loss_mvc", "cell-embedding value prediction (MVC)")):
        v = pd.Series(log[key]).rolling(25, min_periods=1).mean()
        ax.plot(step, v, label=label)
    ax.set(xlabel="optimisation step (batch 32)", ylabel="masked MSE (bin units², 25-step mean)")
    ax.set_yscale("log")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    return fig


def cross_r2_bars(tables: dict[str, pd.DataFrame]):
    """Fig 4A: R² of SAEs on their own data and on the other dataset, one panel per model.

    ``tables``: model → :func:`scconcepts.stability.cross_r2_table` output.
    """
    fig, axes = plt.subplots(1, len(tables), figsize=(4.6 * len(tables), 3.4), squeeze=False)
    for ax, (model, t) in zip(axes[0], tables.items()):
        trains = list(dict.fromkeys(t["trained on"]))
        x = np.arange(len(trains))
        for j, own in enumerate((True, False)):
            sub = t[t["own data"] == own].set_index("trained on").reindex(trains)
            ax.bar(x + (j - 0.5) * 0.38, sub["r2"], 0.38,
                   label="own data (held-out cells)" if own else "the other dataset",
                   color="#4C72B0" if own else "#DD8452")
            for xi, v in zip(x, sub["r2"]):
                ax.text(xi + (j - 0.5) * 0.38, v + 0.005, f"{v:.3f}", ha="center", fontsize=7)
        ax.set_xticks(x, [f"SAE trained on\n{tr}" for tr in trains], fontsize=8)
        ax.set_ylim(max(0, t["r2"].min() - 0.1), 1.0)
        ax.set_title(model)
        ax.set_ylabel("R² (variance-weighted)")
    axes[0][0].legend(frameon=False, fontsize=8, loc="lower left")
    fig.tight_layout()
    return fig


def matching_hist(real: dict[str, np.ndarray], null: dict[str, np.ndarray]):
    """Fig 4B: matched-pair cosines of real dictionaries vs a random dictionary, per model."""
    fig, axes = plt.subplots(1, len(real), figsize=(4.6 * len(real), 3.2), squeeze=False)
    bins = np.linspace(-0.2, 1, 49)
    for ax, (model, cos) in zip(axes[0], real.items()):
        ax.hist(cos, bins=bins, alpha=0.7, label=f"main vs second (mean {np.mean(cos):.2f})",
                color="#4C72B0")
        ax.hist(null[model], bins=bins, alpha=0.6, color="#BBBBBB",
                label=f"main vs random (mean {np.mean(null[model]):.2f})")
        ax.set(title=model, xlabel="cosine of matched atoms", ylabel="pairs")
        ax.legend(frameon=False, fontsize=7, loc="upper left")
    fig.tight_layout()
    return fig


def confusion_panels(confusions: dict[str, pd.DataFrame], title: str = ""):
    """Fig 10: row-normalised confusion matrices (true × predicted), one panel per entry."""
    n = len(confusions)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.6), squeeze=False)
    for ax, (name, cm) in zip(axes[0], confusions.items()):
        frac = cm.div(cm.sum(1).replace(0, 1), axis=0)
        sns.heatmap(frac, vmin=0, vmax=1, cmap="Blues", annot=cm.to_numpy(), fmt="d", ax=ax,
                    cbar=False, annot_kws={"fontsize": 6})
        ax.set_title(name, fontsize=9)
        ax.tick_params(labelsize=6)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ chapters 10-11 (DGEA, perturbation)
_CURVE_STYLE = {
    "attribution": ("#C44E52", "-"),
    "DGEA": ("#4C72B0", "-"),
    "attribution, zero-masked": ("#C44E52", "--"),
    "DGEA, zero-masked": ("#4C72B0", "--"),
    "random": ("#888888", ":"),
    "attribution, held-out pairs": ("#8C1C13", "-."),
    "DGEA, held-out pairs": ("#1F3B73", "-."),
}


def deletion_curves_plot(curves: dict[str, pd.DataFrame], title: str = ""):
    """Fig 8: relative concept activation vs genes removed, mean ± std over concepts.

    ``curves``: panel name → long table with ``unit``, ``curve``, ``step``, ``activation``
    (:func:`scconcepts.dgea.deletion_curves`).
    """
    n = len(curves)
    fig, axes = plt.subplots(1, n, figsize=(5.0 * n, 3.8), squeeze=False)
    for ax, (name, df) in zip(axes[0], curves.items()):
        for curve, sub in df.groupby("curve", sort=False):
            g = sub.groupby("step")["activation"]
            m, s = g.mean(), g.std(ddof=0).fillna(0)
            color, ls = _CURVE_STYLE.get(curve, (None, "-"))
            ax.plot(m.index, m, ls, color=color, label=curve, lw=1.6)
            ax.fill_between(m.index, m - s, m + s, color=color, alpha=0.12, linewidth=0)
        n_units = df["unit"].nunique()
        ax.set(title=f"{name} ({n_units} concepts)", xlabel="genes removed",
               ylabel="activation / prototype activation")
        ax.axhline(0, color="k", lw=0.5)
        ax.legend(frameon=False, fontsize=7)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def separation_scatter(table: pd.DataFrame, highlight: Sequence[int] = (), title: str = ""):
    """Chapter 11: activation frequency in control vs stimulated cells, coloured by AUROC.

    ``table``: :func:`scconcepts.perturbation.separating_concepts` output.
    """
    fig, ax = plt.subplots(figsize=(5.2, 4.2))
    sc_ = ax.scatter(table["freq_neg"], table["freq_pos"], c=table["auroc"], cmap="coolwarm",
                     vmin=0, vmax=1, s=12, linewidths=0)
    for u in highlight:
        if u in table.index:
            ax.annotate(f"C{u}", (table.loc[u, "freq_neg"], table.loc[u, "freq_pos"]),
                        fontsize=8, xytext=(4, 2), textcoords="offset points")
    lim = max(table["freq_neg"].max(), table["freq_pos"].max()) * 1.05
    ax.plot([0, lim], [0, lim], color="k", lw=0.5)
    ax.set(xlabel="share of control cells activating", ylabel="share of stimulated cells activating",
           title=title)
    fig.colorbar(sc_, ax=ax, label="AUROC (stimulated vs control)")
    fig.tight_layout()
    return fig


def claim_intervals(panels: dict, xlabel: str = "value (95 % interval)"):
    """Claims' values with their 95 % intervals, one row per claim and one panel per group,
    with a dashed line at 0 (chapter 05: the concepts − neurons gap under each counterfactual
    pool).

    ``panels``: title → {row label → :class:`~scconcepts.claims.Claim`}; a claim without an
    interval is drawn as a point only."""
    n = max(len(panels), 1)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 2.8), squeeze=False)
    for ax, (title, rows) in zip(axes[0], panels.items()):
        for y, c in enumerate(rows.values()):
            lo, hi = c.interval if c.interval is not None else (c.value, c.value)
            ax.errorbar([c.value], [y], xerr=[[c.value - lo], [hi - c.value]], fmt="o",
                        capsize=4, color="#4C72B0")
        ax.set_yticks(range(len(rows)), list(rows), fontsize=8)
        ax.axvline(0, color="grey", lw=0.8, ls="--")
        ax.set(xlabel=xlabel, title=title)
    fig.tight_layout()
    return fig


def label_f1_plot(per_label: dict[str, pd.DataFrame], f1_min: float = 0.5):
    """Chapter 09 (InterPLM protocol): the test F1 of the best unit per label, one dot per label
    and one row per method, a panel per model.

    ``per_label``: panel title → :func:`scconcepts.alignment.alignment_table`'s per-label table
    (columns ``method``, ``f1_test``); the dashed line marks ``f1_min``."""
    n = max(len(per_label), 1)
    fig, axes = plt.subplots(1, n, figsize=(6 * n, 3.6), squeeze=False)
    for ax, (title, per) in zip(axes[0], per_label.items()):
        methods = list(dict.fromkeys(per["method"]))
        for i, method in enumerate(methods):
            f1 = per.loc[per["method"] == method, "f1_test"].to_numpy(float)
            ax.scatter(f1, i + np.linspace(-0.2, 0.2, len(f1)), s=18)
        ax.set_yticks(range(len(methods)), methods)
        ax.axvline(f1_min, color="grey", lw=0.8, ls="--")
        ax.set(xlabel="test F1 of the best unit (one dot per label)", xlim=(0, 1), title=title)
    fig.tight_layout()
    return fig

