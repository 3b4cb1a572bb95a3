"""The book's figure style and figures (:mod:`scconcepts.figstyle`, :mod:`scconcepts.plotting`).

Every plotting function is drawn on constructed inputs shaped like the chapters' (cell types of
the bundled data, long panel titles, 134-concept ratio tables, ...) and checked as a reader sees
it: every text at least 9 pt at the book's content width, and no two texts overlapping.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")

import anndata as ad  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import to_rgb  # noqa: E402

from scconcepts import figstyle, plotting  # noqa: E402
from scconcepts.claims import ABOVE, Claim  # noqa: E402

KANG_TYPES = ["CD4-positive, alpha-beta T cell", "classical monocyte", "B cell",
              "CD8-positive, alpha-beta T cell", "natural killer cell", "non-classical monocyte",
              "dendritic cell", "megakaryocyte"]
GENES = ["OASL", "ACTB", "ISG15", "FTL", "ISG20", "CD74", "LY6E", "RARRES3", "CCL5", "ACTG1",
         "HLA-DPB1", "TMSB4X", "ARPC1B", "CSTB", "GAPDH"]


# ------------------------------------------------------------------------- constructed inputs
def _umap_adata(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    types = rng.choice(KANG_TYPES, size=n, p=[.4, .2, .1, .09, .08, .07, .04, .02])
    centres = {t: rng.normal(0, 8, 2) for t in KANG_TYPES}
    xy = np.stack([centres[t] for t in types]) + rng.normal(0, 1, (n, 2))
    obs = pd.DataFrame({"cell_type": types, "donor_id": rng.choice(
        ["101", "1015", "1016", "1039", "107", "1244", "1256", "1488"], n)},
        index=[f"c{i}" for i in range(n)])
    return ad.AnnData(np.zeros((n, 1), np.float32), obs=obs, obsm={"X_umap": xy})


def _history(seed, n=30):
    rng = np.random.default_rng(seed)
    r2 = list(1 - 0.5 * np.exp(-np.arange(n) / 5) - rng.uniform(0, .01, n))
    return {"epoch": list(range(n)), "r2": r2, "r2_val": [v - .01 for v in r2],
            "dead": list(np.maximum(0, 40 - 2 * np.arange(n))), "converged": True}


def _claim(v, lo, hi):
    return Claim("k", v, 50, "t", "inconclusive", "s", (lo, hi), region=(0, ABOVE))


def _cross_r2():
    rows = [("main", True, .913), ("main", False, .652), ("second", True, .997),
            ("second", False, .310)]
    return pd.DataFrame(rows, columns=["trained on", "own data", "r2"])


def _deletion_curves(seed):
    rng = np.random.default_rng(seed)
    rows = [(u, c, s, float(np.exp(-s / (3 + i)) + rng.normal(0, .05)))
            for i, c in enumerate(["attribution", "DGEA", "random", "attribution, held-out pairs"])
            for u in range(5) for s in range(11)]
    return pd.DataFrame(rows, columns=["unit", "curve", "step", "activation"])


def _baseline_table(model):
    cols = ["neurons", "Top-K SAE", "semi-NMF (c > d)", "semi-NMF (c > d), top 10 codes",
            "semi-NMF (c < d)", "PCA", "ICA"]
    return pd.DataFrame([["—", "0.984 (0.000)", "0.001 (0.002)", "0.984 (0.000)",
                          "0.049 (0.036)", "0.003 (0.011)", "0.002 (0.010)"],
                         ["—", 0.909, 0.993, 0.453, 0.973, 0.986, 0.986]],
                        index=["sparsity", "R² (held-out cells)"], columns=cols).rename_axis(model)


def _pair_diag():
    rng = np.random.default_rng(4)
    parts = {(k, p): pd.DataFrame(rng.uniform(0, 1, (30, 3)), columns=[
        "log distance ratio", "other cell type", "abs log library ratio"]).rename_axis("unit")
        for k, p in (("concept", "paper"), ("neuron", "paper"),
                     ("neuron", "firing-rate quantile"), ("concept", "median split"))}
    return pd.concat(parts, names=["kind", "pools"])


def _top_genes(seed, n_genes):
    rng = np.random.default_rng(seed)
    return pd.Series(np.sort(rng.uniform(0.01, 0.17, n_genes))[::-1], index=GENES[:n_genes])


def _ratios(n=134, seed=0):
    rng = np.random.default_rng(seed)
    r = rng.dirichlet(np.full(len(KANG_TYPES), 0.2), n)
    return pd.DataFrame(r, index=[f"C{i}" for i in range(n)], columns=KANG_TYPES)


def _confusion(classes, seed):
    rng = np.random.default_rng(seed)
    m = rng.integers(0, 40, (len(classes), len(classes))) + np.diag(np.full(len(classes), 900))
    return pd.DataFrame(m, index=pd.Index(classes, name="true"),
                        columns=pd.Index(classes, name="predicted"))


FIGURES = {
    "umap_panels": lambda: plotting.umap_panels(_umap_adata(), ["cell_type", "donor_id"],
                                                title="kang2018_pbmc_ctrl: scVI embeddings"),
    "r2_bars": lambda: plotting.r2_bars(
        pd.DataFrame({"c": [200, 500, 1000, 2000], "k": [3, 8, 16, 32],
                      "r2": [.86, .93, .972, .997]}),
        pd.DataFrame({"r2": [.80, .90, .95, .98]})),
    "training_curves": lambda: plotting.training_curves(
        {f"c={c}, k={k}": _history(i) for i, (c, k) in enumerate(
            [(200, 3), (500, 8), (1000, 16), (2000, 32)])}, title="scVI (d = 50)"),
    "category_bars": lambda: plotting.category_bars(pd.DataFrame(
        {"cell_type-specific": [40, 120, 300], "donor_id-specific": [3, 10, 50],
         "other": [100, 300, 500], "not enough data": [20, 40, 100], "dead": [0, 30, 50]},
        index=["c=200, k=3", "c=500, k=8", "c=1000, k=16"])),
    "ratio_heatmap": lambda: plotting.ratio_heatmap(_ratios(), title=(
        "scVI: cell-type ratios, c=1000, k=16")),
    "gene_set_size_hist": lambda: plotting.gene_set_size_hist(
        {f"c={c}": np.random.default_rng(c).integers(0, 80, 200).astype(float)
         for c in (200, 500, 1000, 2000)},
        "attribution > 5% of the prototype activation (relative), scVI"),
    "attribution_cdf": lambda: plotting.attribution_cdf(
        {f"{m} {k}": np.random.default_rng(i).standard_t(2, 5000) * 0.01
         for i, (m, k) in enumerate(itertools.product(["scVI", "scGPT"],
                                                      ["concepts", "neurons"]))}),
    "top_genes_bars_ch04": lambda: plotting.top_genes_bars(
        {f"scVI C{u}: {t}, main concept ({n} cells)": _top_genes(u, 10) for u, t, n in
         [(295, "B cell", 626), (42, "natural killer cell", 833),
          (218, "classical monocyte", 1608), (7, "CD4-positive, alpha-beta T cell", 2210)]},
        {f"scVI C{u}: {t}, main concept ({n} cells)":
         np.random.default_rng(u).normal(0.05, 0.05, (10, 10)) for u, t, n in
         [(295, "B cell", 626), (42, "natural killer cell", 833)]}, ncols=2),
    "top_genes_bars_ch11": lambda: plotting.top_genes_bars(
        {f"scVI C{u} (AUROC 0.{u % 100:02d})": _top_genes(u, 15) for u in (406, 40, 139)}),
    "stacked_fraction_bars": lambda: plotting.annotation_bars(pd.DataFrame(
        {"strong": [.3, .2], "weak": [.3, .25], "none": [.4, .55]},
        index=pd.MultiIndex.from_tuples([("scVI", "concepts"), ("scVI", "neurons")])),
        title="GSEA annotation of the attributed units"),
    "pretraining_curve": lambda: plotting.pretraining_curve(
        {"step": list(range(500)), "loss_gep": list(np.linspace(2, .5, 500)),
         "loss_mvc": list(np.linspace(3, .8, 500))}),
    "cross_r2_bars": lambda: plotting.cross_r2_bars({"scVI": _cross_r2(), "scGPT": _cross_r2()}),
    "matching_hist": lambda: plotting.matching_hist(
        {m: np.random.default_rng(i).normal(.55, .1, 400) for i, m in enumerate(["scVI",
                                                                                 "scGPT"])},
        {m: np.random.default_rng(9 + i).normal(.35, .05, 400)
         for i, m in enumerate(["scVI", "scGPT"])}),
    "confusion_panels": lambda: plotting.confusion_panels(
        {f"scVI {f}": _confusion(KANG_TYPES, i) for i, f in enumerate(["neurons", "concepts"])},
        title="scVI, cell type (held-out cells)"),
    "confusion_panels_phases": lambda: plotting.confusion_panels(
        {f"scGPT {f}": _confusion(["G1", "G2M", "S"], i)
         for i, f in enumerate(["neurons", "concepts"])}, title="scGPT, cell cycle"),
    "deletion_curves_plot": lambda: plotting.deletion_curves_plot(
        {"scVI": _deletion_curves(0), "scGPT": _deletion_curves(1)}),
    "separation_scatter": lambda: plotting.separation_scatter(
        pd.DataFrame({"freq_neg": np.linspace(0, .5, 40), "freq_pos": np.linspace(0, .9, 40),
                      "auroc": np.linspace(.2, .9, 40)}), highlight=[39, 10],
        title="scVI concepts of the control-cell SAE on Kang IFN-β cells"),
    "claim_intervals": lambda: plotting.claim_intervals(
        {m: {"paper's pools": _claim(.1, .05, .2), "matched library size": _claim(.02, -.03, .07),
             "same cell type": _claim(-.01, -.05, .03)} for m in ("scVI", "scGPT")},
        xlabel="concepts − neurons annotated (95 % interval)"),
    "label_f1_plot": lambda: plotting.label_f1_plot(
        {f"{m}: PCA/ICA rank 15": pd.DataFrame(
            {"method": np.repeat(["concepts", "neurons", "PCA (matched)", "ICA (matched)"], 12),
             "f1_test": np.random.default_rng(3).uniform(0, 1, 48)}) for m in ("scVI", "scGPT")}),
    "r2_overview": lambda: plotting.r2_overview(
        {f"{m} (d = {d}): R²": pd.DataFrame({"c": [200, 500, 1000, 2000], "k": [3, 8, 16, 32],
                                             "r2": [.86, .93, .972, .997]})
         for m, d in (("scVI", 50), ("scGPT", 512))}),
    "pair_diagnostics": lambda: plotting.pair_diagnostics(_pair_diag(), title=(
        "scVI: the counterfactual pairs of each kind of unit and pool")),
    "r2_sparsity_scatter": lambda: plotting.r2_sparsity_scatter(
        {"scvi": _baseline_table("scvi"), "scgpt": _baseline_table("scgpt")},
        {"scvi": "scVI", "scgpt": "scGPT"}),
}


def _overlapping_texts(fig, tol_px=0.5):
    """Pairs of visible texts whose drawn bounding boxes overlap (by more than ``tol_px``)."""
    texts = figstyle.text_artists(fig)
    renderer = fig.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer).expanded(1, 1) for t in texts]
    out = []
    for (a, ba), (b, bb) in itertools.combinations(zip(texts, boxes), 2):
        w = min(ba.x1, bb.x1) - max(ba.x0, bb.x0)
        h = min(ba.y1, bb.y1) - max(ba.y0, bb.y0)
        if w > tol_px and h > tol_px:
            out.append((a.get_text(), b.get_text()))
    return out


@pytest.fixture(params=sorted(FIGURES))
def figure(request):
    fig = FIGURES[request.param]()
    yield request.param, fig
    plt.close(fig)


# ------------------------------------------------------------------------------ style, colours
def test_style_fonts_at_least_9pt_and_applied_idempotently():
    figstyle.use_style()
    first = {k: matplotlib.rcParams[k] for k in figstyle.STYLE}
    figstyle.use_style()
    assert {k: matplotlib.rcParams[k] for k in figstyle.STYLE} == first
    for key in ("font.size", "axes.titlesize", "axes.labelsize", "xtick.labelsize",
                "ytick.labelsize", "legend.fontsize", "legend.title_fontsize",
                "figure.titlesize"):
        assert float(matplotlib.rcParams[key]) >= figstyle.MIN_FONT_PT, key
    # the default figure fits the content column without being scaled down
    assert matplotlib.rcParams["figure.figsize"][0] * matplotlib.rcParams["figure.dpi"] <= (
        figstyle.CONTENT_WIDTH_PX)
    cycle = [c["color"] for c in matplotlib.rcParams["axes.prop_cycle"]]
    assert cycle == list(figstyle.OKABE_ITO)


# Machado, Oliveira & Fernandes (2009) dichromacy matrices (severity 1), on linear RGB. No CVD
# simulator is among the dependencies, so the 20 lines below do what colorspacious would.
_MACHADO = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216],
                   [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413],
                     [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602],
                   [0.004733, 0.691367, 0.303900]],
}


def _lab(linear_rgb):
    """CIELAB (D65) of linear sRGB rows."""
    m = np.array([[0.4124564, 0.3575761, 0.1804375], [0.2126729, 0.7151522, 0.0721750],
                  [0.0193339, 0.1191920, 0.9503041]])
    xyz = linear_rgb @ m.T / np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])],
                    axis=1)


def min_delta_e(colors) -> dict[str, float]:
    """Smallest CIE76 ΔE between two of ``colors``, for normal vision and each dichromacy."""
    srgb = np.array([to_rgb(c) for c in colors])
    lin = np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)
    out = {}
    for name, mat in [("normal", np.eye(3))] + list(_MACHADO.items()):
        lab = _lab(np.clip(lin @ np.asarray(mat).T, 0, 1))
        out[name] = min(float(np.linalg.norm(lab[i] - lab[j]))
                        for i, j in itertools.combinations(range(len(lab)), 2))
    return out


def test_palettes_distinct_and_colour_blind_safe():
    # the check itself: matplotlib's tab20 has near-identical pairs under deuteranopia
    assert min_delta_e(plt.get_cmap("tab20").colors)["deuteranopia"] < 5
    for palette in (figstyle.OKABE_ITO, figstyle.CATEGORICAL,
                    list(dict.fromkeys(figstyle.CELL_TYPE_COLORS.values()))):
        assert len(set(map(str.lower, palette))) == len(palette)
        assert min(min_delta_e(palette).values()) > 12, min_delta_e(palette)
    assert set(figstyle.OKABE_ITO) == {"#000000", "#E69F00", "#56B4E9", "#009E73", "#F0E442",
                                        "#0072B2", "#D55E00", "#CC79A7"}
    assert figstyle.categorical_colors(3) == list(figstyle.OKABE_ITO[:3])
    assert figstyle.categorical_colors(13) == list(figstyle.CATEGORICAL)


def test_cell_type_colors_stable_across_orders_and_subsets():
    full = figstyle.cell_type_colors(KANG_TYPES + ["mononuclear phagocyte", "unknown", "Tuft cell"])
    rev = figstyle.cell_type_colors(list(reversed(KANG_TYPES)) + ["Tuft cell"])
    sub = figstyle.cell_type_colors(["megakaryocyte", "B cell", "Tuft cell"])
    for name, col in {**rev, **sub}.items():
        assert full[name] == col
    # the bundled types: all different colours, from the fixed table, case-insensitive
    assert len({full[t] for t in KANG_TYPES + ["mononuclear phagocyte"]}) == 9
    assert figstyle.cell_type_colors(["b CELL"])["b CELL"] == full["B cell"]
    assert full["unknown"] == figstyle.UNKNOWN_COLOR
    assert full["Tuft cell"] in figstyle.CATEGORICAL
    # a pandas Categorical / Index works as well as a list
    cats = pd.Categorical(["B cell", "megakaryocyte"]).categories
    assert figstyle.cell_type_colors(cats) == {"B cell": full["B cell"],
                                               "megakaryocyte": full["megakaryocyte"]}


def test_umap_panels_colour_cell_types_by_the_fixed_table():
    fig = FIGURES["umap_panels"]()
    ax = fig.axes[0]
    legend = ax.get_legend()
    colours = {t.get_text().replace("\n", " ").rsplit(" (", 1)[0]: h.get_color()
               for t, h in zip(legend.get_texts(), legend.legend_handles)}
    for t in KANG_TYPES:
        assert matplotlib.colors.same_color(colours[t], figstyle.CELL_TYPE_COLORS[t]), t
    # the points too: the scatter's colours are exactly the fixed colours of the eight types
    drawn = {matplotlib.colors.to_hex(c).upper() for c in ax.collections[0].get_facecolors()}
    assert drawn == {figstyle.CELL_TYPE_COLORS[t] for t in KANG_TYPES}
    assert legend.get_texts()[0].get_fontsize() >= 9
    # the legend sits outside (below) the axes
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert legend.get_window_extent(r).y1 <= ax.get_window_extent(r).y0 + 1
    plt.close(fig)


def test_importing_plotting_applies_the_style():
    code = ("import matplotlib; matplotlib.use('Agg'); import scconcepts.plotting; "
            "from scconcepts.figstyle import STYLE; "
            "bad = [k for k, v in STYLE.items() if matplotlib.rcParams[k] != "
            "(list(v) if isinstance(v, tuple) else v)]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


def test_umap_legend_lists_the_most_frequent_of_many_types():
    rng = np.random.default_rng(1)
    types = [f"type {i:02d}" for i in range(30)]
    obs = pd.DataFrame({"cell_type": rng.choice(types, 900, p=np.arange(30, 0, -1) / 465)},
                       index=[f"c{i}" for i in range(900)])
    adata = ad.AnnData(np.zeros((900, 1), np.float32), obs=obs,
                       obsm={"X_umap": rng.normal(size=(900, 2))})
    fig = plotting.umap_panels(adata, ["cell_type", "not a column"])
    assert len(fig.axes) == 1
    legend = fig.axes[0].get_legend()
    assert len(legend.get_texts()) == 20
    assert legend.get_title().get_text() == "20 most frequent of 30"
    assert not _overlapping_texts(fig)
    assert figstyle.rendered_font_pt(fig) >= figstyle.MIN_FONT_PT
    # unlisted types: colours from the hash, the same as cell_type_colors gives
    first = legend.get_texts()[0].get_text().replace("\n", " ").rsplit(" (", 1)[0]
    assert matplotlib.colors.same_color(legend.legend_handles[0].get_color(),
                                        figstyle.cell_type_colors([first])[first])
    plt.close(fig)


# ------------------------------------------------------------------------------------- figures
def test_every_figure_reads_at_9pt_or_more_without_overlapping_text(figure):
    name, fig = figure
    assert figstyle.rendered_width_px(fig) <= figstyle.CONTENT_WIDTH_PX + 20, name
    sizes = {t.get_text(): t.get_fontsize() for t in figstyle.text_artists(fig)}
    small = {k: v for k, v in sizes.items() if v < figstyle.MIN_FONT_PT}
    assert not small, (name, small)
    assert figstyle.rendered_font_pt(fig) >= figstyle.MIN_FONT_PT, name
    overlaps = _overlapping_texts(fig)
    assert not overlaps, (name, overlaps[:5])


def test_measurement_sees_small_and_overlapping_text():
    """The checks above fail on the faults they look for."""
    fig, ax = plt.subplots(figsize=(12, 3))       # 1200 px: shown at 760 / 1200 of its size
    ax.set_xticks(range(40), [f"label {i}" for i in range(40)], fontsize=9)
    ax.text(0.5, 0.5, "tiny", fontsize=6)
    assert figstyle.rendered_font_pt(fig) < 6
    assert _overlapping_texts(fig)
    plt.close(fig)


def test_rendered_font_accounts_for_scaling():
    fig, ax = plt.subplots(figsize=(7.5, 3), dpi=100)
    ax.set_title("x", fontsize=9)
    ax.set_xticks([])
    ax.set_yticks([])
    assert figstyle.rendered_font_pt(fig) == pytest.approx(9 * 100 / 96)
    fig.set_size_inches(15.2, 3)                  # wider than the column: shown scaled down
    width = figstyle.rendered_width_px(fig)
    assert width > 1.5 * figstyle.CONTENT_WIDTH_PX
    assert figstyle.rendered_font_pt(fig) == pytest.approx(
        9 * 100 / 96 * figstyle.CONTENT_WIDTH_PX / width)
    plt.close(fig)


def test_cross_r2_bars_proportions_and_legend_outside_the_bars():
    fig = FIGURES["cross_r2_bars"]()
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    w, h = fig.get_size_inches()
    assert 1.5 <= w / h <= 2.6                       # not 910 × 182
    legend = fig.legends[0]
    lb = legend.get_window_extent(r)
    for ax in fig.axes:
        assert not lb.overlaps(ax.get_window_extent(r))
        # every value label inside its axes (head room above R² = 1)
        ab = ax.get_window_extent(r)
        for t in ax.texts:
            tb = t.get_window_extent(r)
            assert tb.y1 <= ab.y1 + 1 and tb.y0 >= ab.y0 - 1, t.get_text()
        assert max(ax.get_yticks()) <= 1
    plt.close(fig)


def test_ratio_heatmap_shows_top_rows_clustered_with_a_short_colour_bar():
    ratios = _ratios(134)
    ratios.iloc[5] = np.nan                          # a never-active concept
    fig = plotting.ratio_heatmap(ratios, title="scVI", n_top=30)
    ax, cbar = fig.axes
    rows = [t.get_text() for t in ax.get_yticklabels()]
    assert len(rows) == 30 and "30 of 134" in ax.get_title()
    top = set(ratios.fillna(0).max(axis=1).sort_values(ascending=False, kind="stable")
              .index[:30])
    assert set(rows) == top
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    assert cbar.get_window_extent(r).height <= 0.8 * ax.get_window_extent(r).height
    assert fig.get_size_inches()[1] < 10
    # clustered: two concepts with identical profiles end up next to each other
    twin = _ratios(40, seed=2)
    twin.iloc[30] = twin.iloc[3].to_numpy()
    shown = [t.get_text() for t in plotting.ratio_heatmap(twin, n_top=40).axes[0]
             .get_yticklabels()]
    assert abs(shown.index("C3") - shown.index("C30")) == 1
    given = plotting.ratio_heatmap(twin, n_top=40, order="given")
    assert [t.get_text() for t in given.axes[0].get_yticklabels()] == list(twin.index)
    with pytest.raises(ValueError, match="order"):
        plotting.ratio_heatmap(twin, order="alphabetical")
    plt.close("all")


def test_r2_sparsity_scatter_has_a_legend_and_no_text_labels():
    fig = FIGURES["r2_sparsity_scatter"]()
    ax = fig.axes[0]
    assert not ax.texts
    names = [t.get_text().rsplit(" (", 1)[0] for t in ax.get_legend().get_texts()]
    assert names == ["Top-K SAE", "semi-NMF (c > d)", "semi-NMF (c > d), top 10 codes",
                     "semi-NMF (c < d)", "PCA", "ICA"]  # "neurons" has no sparsity: left out
    assert ax.get_legend().get_texts()[0].get_text() == "Top-K SAE (0.98, 0.909)"
    xy = np.vstack([c.get_offsets() for c in ax.collections])
    assert xy[0].tolist() == pytest.approx([0.984, 0.909])
    assert ax.get_title() == "scVI"
    plt.close(fig)


def test_top_genes_bars_at_most_two_panels_per_row_gene_names_9pt():
    fig = FIGURES["top_genes_bars_ch11"]()          # called with the old default ncols=3
    fig.canvas.draw()
    xs = sorted({round(ax.get_position().x0, 3) for ax in fig.axes})
    assert len(fig.axes) == 3 and len(xs) == 2
    for ax in fig.axes:
        assert all(t.get_fontsize() >= 9 for t in ax.get_yticklabels())
        assert [t.get_text() for t in ax.get_yticklabels()][0] == "GAPDH"  # last gene at the bottom
    plt.close(fig)


def test_claim_intervals_one_row_per_claim_with_its_interval():
    c1 = Claim("a", 0.1, 10, "t", "agrees", "s", (0.05, 0.2), region=(0, ABOVE))
    c2 = Claim("b", -0.02, 10, "t", "inconclusive", "s")   # no interval: a point
    fig = plotting.claim_intervals({"scVI": {"paper's pools": c1, "matched": c2}})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["paper's pools", "matched"]
    assert ax.get_title() == "scVI" and ax.get_xlim()[0] < 0.05 and ax.get_xlim()[1] > 0.2
    plt.close(fig)


def test_pair_diagnostics_one_box_per_group_labels_on_the_first_panel():
    fig = FIGURES["pair_diagnostics"]()
    assert len(fig.axes) == 3
    labels = [t.get_text().replace("\n", " ") for t in fig.axes[0].get_yticklabels()]
    assert labels == ["concept, median split", "concept, paper", "neuron, firing-rate quantile",
                      "neuron, paper"]
    # one box per group on every panel, the same groups (shared y)
    # (box, median, two whiskers, two caps: six lines per box); medians are the groups'
    medians = [ln.get_xdata()[0] for ln in fig.axes[1].lines if ln.get_color() == "C3"]
    d = _pair_diag().groupby(["kind", "pools"])["other cell type"].median()
    assert medians == pytest.approx(d.to_list())
    assert [len(ax.lines) for ax in fig.axes] == [4 * 6] * 3
    assert fig.axes[1].get_shared_y_axes().joined(fig.axes[0], fig.axes[1])
    plt.close(fig)


def test_label_f1_plot_one_row_per_method():
    per = pd.DataFrame({"method": ["concepts"] * 3 + ["neurons"] * 3,
                        "f1_test": [0.2, 0.6, 0.9, 0.1, 0.3, 0.7]})
    fig = plotting.label_f1_plot({"scVI": per, "scGPT": per})
    assert len(fig.axes) == 2
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["concepts", "neurons"]
    assert sum(len(c.get_offsets()) for c in ax.collections) == 6
    plt.close(fig)
