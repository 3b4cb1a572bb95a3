# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   scconcepts:
#     start_first: true
#     summary: "the methods as scverse-style tools on your own AnnData and model (scconcepts.tl, scconcepts.pl)."
# ---

# %% [markdown]
# (ch12)=
# # Use it on your own data
#
# The chapters run the paper's study through a cached workflow. To find concepts in *your*
# cells and model, the same methods are available as scverse-style tools on an AnnData
# (`scconcepts.tl`, `scconcepts.pl`), in four calls:
#
# 1. `tl.sae` trains a Top-K SAE $\psi$ on the model's embeddings `obsm["X_scvi"]` and stores the
#    concept activations $U = \psi(A)$ as sparse codes in `obsm["X_concepts"]` (its weights and
#    metrics in `uns["concepts"]`);
# 2. `tl.concept_metadata` labels each concept by the metadata of the cells that activate it
#    (Sec 3.1 of {cite}`claye2025`);
# 3. `tl.attribute` explains concepts by genes with counterfactual occlusion attribution (Eq 1–3),
#    reading raw counts from `layers["counts"]`;
# 4. `tl.enrich` labels each attributed concept with attribution-ranked GSEA (Sec 3.4).
#
# We use a bundled dataset as a user would have it: the 10x Genomics PBMC 4k cells with raw
# counts in `layers["counts"]` and log-normalised expression in `X`, and an scVI model trained
# with scvi-tools on that layer. Any model works whose encoder maps counts to the embeddings:
# `tl.attribute` takes an scvi-tools model, a `scconcepts` model adapter or a plain function.

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
import scanpy as sc
import scvi
from myst_nb import glue

import scconcepts as scc
from scconcepts import figures
from scconcepts.config import load_config
from scconcepts.data import load_dataset
from scconcepts.figstyle import cell_type_colors
from scconcepts.tables import show

# %%
cfg = load_config(profile, params)
ms = cfg.models["scvi"]
show(cfg.table(["data.second.dataset", "models.scvi.max_epochs", "models.scvi.c",
                "models.scvi.k", "models.scvi.n_prototypes", "models.scvi.n_counterfactuals",
                "sae.epochs", "sae.lr", "concepts.min_cells", "gsea.gene_sets",
                "gsea.permutations", "gsea.min_size", "seed"]), index=True)

# %% [markdown]
# ## An AnnData as scverse keeps it
#
# Raw counts go to `layers["counts"]`; `X` holds library-size-normalised log1p values, as after
# the usual `sc.pp.normalize_total` and `sc.pp.log1p`. As in the scvi-tools tutorials, the model
# sees the {glue:text}`ch12_n_hvg` most variable genes (`sc.pp.highly_variable_genes`, Seurat
# flavour), not all {glue:text}`ch12_n_measured` measured ones: training, attribution and
# memory scale with the number of genes, and these genes are also the universe of the
# enrichment below. Each cell type gets the colour it has in every chapter
# (`scconcepts.figstyle.cell_type_colors`), kept in `uns["cell_type_colors"]` as scanpy expects.

# %%
adata = load_dataset(cfg.data.second.dataset)
n_measured, n_hvg = adata.n_vars, 2000
adata.layers["counts"] = adata.X.copy()
sc.pp.normalize_total(adata, target_sum=1e4)
sc.pp.log1p(adata)
sc.pp.highly_variable_genes(adata, n_top_genes=n_hvg, subset=True)
adata.obs["cell_type"] = adata.obs["cell_type"].astype("category")
colors = cell_type_colors(adata.obs["cell_type"].cat.categories)
adata.uns["cell_type_colors"] = [colors[c] for c in adata.obs["cell_type"].cat.categories]
adata

# %% tags=["remove-input"]
glue("ch12_n_measured", f"{n_measured:,}", display=False)
glue("ch12_n_hvg", f"{n_hvg:,}", display=False)
glue("ch12_n_cells", f"{adata.n_obs:,}", display=False)

# %% [markdown]
# ## The model: scVI on the counts layer
#
# scvi-tools reads the counts from the layer (`setup_anndata(layer="counts")`); its posterior
# mean is the embedding the SAE decomposes.

# %%
scvi.settings.seed = cfg.seed
scvi.model.SCVI.setup_anndata(adata, layer="counts")
model = scvi.model.SCVI(adata, n_latent=50, n_layers=2, gene_likelihood="nb")
model.train(max_epochs=ms.max_epochs, enable_progress_bar=False)
adata.obsm["X_scvi"] = model.get_latent_representation()
sc.pp.neighbors(adata, use_rep="X_scvi", random_state=cfg.seed)
sc.tl.umap(adata, random_state=cfg.seed)

# %% [markdown]
# ## 1. Concepts: a Top-K SAE on the embeddings

# %%
codes = scc.tl.sae(adata, use_rep="X_scvi", c=ms.c, k=ms.k, epochs=cfg.sae.epochs,
                   lr=cfg.sae.lr, seed=cfg.seed)
metrics = adata.uns["concepts"]["metrics"]
show(pd.Series({key: metrics[key] for key in ("r2", "active_concepts", "l0")}, name="value")
     .rename_axis("metric").rename(index={"r2": "R²", "active_concepts": "active concepts",
                                           "l0": "codes per cell (L0)"}))

# %% tags=["remove-input"]
glue("ch12_r2", float(metrics["r2"]), display=False)
glue("ch12_active", int(metrics["active_concepts"]), display=False)
glue("ch12_c", int(ms.c), display=False)

# %% [markdown]
# ## 2. What the activating cells have in common

# %%
categories = scc.tl.concept_metadata(adata, keys=["cell_type"], min_cells=cfg.concepts.min_cells)
specific = categories[categories["category"] == "cell type"]
specific = specific.sort_values("n_cells", ascending=False)
show(specific[["n_cells", "cell_type_label", "cell_type_ratio"]].head(8).rename_axis("concept"))

# %% tags=["remove-input"]
glue("ch12_n_specific", len(specific), display=False)

# %% [markdown]
# The concept active in the most cells among the cell-type-specific ones, on the UMAP of the
# scVI embeddings:

# %%
concept = int(specific.index[0]) if len(specific) else int(categories["n_cells"].idxmax())
fig, axes = plt.subplots(1, 2, figsize=(7.4, 3.6))
sc.pl.umap(adata, color="cell_type", ax=axes[0], show=False, legend_loc="on data",
           legend_fontsize=9, title="cell type")
scc.pl.concept_embedding(adata, concept, ax=axes[1])
fig.tight_layout()
_ = figures.glue_figure("ch12_fig_umap", fig)
glue("ch12_concept", concept, display=False)

# %% [markdown]
# ```{glue:figure} ch12_fig_umap
# :name: fig-ch12-umap
# :alt: Two UMAPs of the PBMC 4k cells, the left coloured by cell type with labels on the clusters, the right coloured by the activation of one concept.
#
# **A concept on the UMAP of the scVI embeddings.** Left: the {glue:text}`ch12_n_cells` cells
# coloured by cell type (the book's colours); right: the same cells coloured by the activation of
# concept {glue:text}`ch12_concept` (darkest: not active), the cell-type-specific concept active
# in the most cells, or the concept active in the most cells when none is cell-type-specific.
# ```

# %% [markdown]
# ## 3. Which genes drive a concept: counterfactual occlusion attribution
#
# For each of the concept's $N_p$ most activating cells (prototypes) and its $N_c$ nearest cells
# that do not activate it (counterfactuals), each gene of the prototype is replaced by the
# counterfactual's value and the drop in activation is recorded (Eq 1–3).

# %%
units = [int(u) for u in specific.index[:3]] or [concept]
att = scc.tl.attribute(adata, model=model, units=units, layer="counts",
                       n_prototypes=ms.n_prototypes, n_counterfactuals=ms.n_counterfactuals)
fig, axes = plt.subplots(len(units), 1, figsize=(4.5, 3.2 * len(units)), squeeze=False)
for ax, unit in zip(axes[:, 0], units):
    scc.pl.top_genes(adata, unit, ax=ax)
fig.tight_layout()
_ = figures.glue_figure("ch12_fig_top_genes", fig)
glue("ch12_units", ", ".join(map(str, units)), display=False)

# %% [markdown]
# ```{glue:figure} ch12_fig_top_genes
# :name: fig-ch12-top-genes
# :alt: Horizontal bar charts, one per concept, of the ten genes with the largest attribution.
#
# **Which genes drive each concept.** For each attributed concept (here
# {glue:text}`ch12_units`), the ten genes with the largest attribution $C_i$ (Eq 3: the mean
# drop of the concept's activation when the gene of a prototype takes its counterfactual's
# value), largest on top, from `scc.pl.top_genes`.
# ```

# %% [markdown]
# ## 4. Pathways: attribution-ranked GSEA

# %%
labels = scc.tl.enrich(adata, gene_sets=cfg.gsea.gene_sets, permutations=cfg.gsea.permutations,
                       min_size=cfg.gsea.min_size, seed=cfg.seed)
show(labels[["unit", "best_term", "NES", "pval", "fdr", "annotation"]],
     n_permutations=cfg.gsea.permutations, columns={"unit": "concept"})

# %% tags=["remove-input"]
glue("ch12_n_annotated", int((labels["annotation"] != "none").sum()), display=False)
glue("ch12_n_enriched", len(labels), display=False)

# %% [markdown]
# Everything is stored in the AnnData and written with it (`adata.write_h5ad`): the codes in
# `obsm["X_concepts"]`, and the SAE weights, metrics, concept categories, attribution scores and
# GSEA labels under `uns["concepts"]`. For the chapters' cached, parametrised study of your data,
# run the book with your file instead: `python -m scconcepts.book execute --set
# data.main.dataset=my.h5ad --set data.main.counts_layer=counts`.

# %% [markdown]
# ## What this shows
#
# Four calls on an AnnData as scverse keeps it reproduce the study's steps on another dataset
# and model: an SAE of {glue:text}`ch12_c` concepts on the scVI embeddings of the
# {glue:text}`ch12_n_cells` PBMC 4k cells reconstructs them with R² {glue:text}`ch12_r2:.3f`
# with {glue:text}`ch12_active` concepts active, {glue:text}`ch12_n_specific` of them specific
# to a cell type; the attribution names the genes behind the attributed concepts
# ({glue:text}`ch12_units`), and the enrichment labels {glue:text}`ch12_n_annotated` of the
# {glue:text}`ch12_n_enriched` attributed concepts with a GO pathway. Everything stays in the
# AnnData, so the results travel with the cells.
