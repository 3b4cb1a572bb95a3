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
import scanpy as sc
import scvi

import scconcepts as scc
from scconcepts.config import load_config
from scconcepts.data import load_dataset

cfg = load_config(profile, params)
ms = cfg.models["scvi"]
cfg.table(["data.second.dataset", "models.scvi.max_epochs", "models.scvi.c", "models.scvi.k",
           "sae.epochs", "seed"])

# %% [markdown]
# ## An AnnData as scverse keeps it
#
# Raw counts go to `layers["counts"]`; `X` holds library-size-normalised log1p values, as after
# the usual `sc.pp.normalize_total` and `sc.pp.log1p`. As in the scvi-tools tutorials, the model
# sees the 2,000 most variable genes (`sc.pp.highly_variable_genes`, Seurat flavour), not all
# 18,368 measured ones: training, attribution and memory scale with the number of genes, and
# these genes are also the universe of the enrichment below.

# %%
adata = load_dataset(cfg.data.second.dataset)
adata.layers["counts"] = adata.X.copy()
sc.pp.normalize_total(adata, target_sum=1e4)
sc.pp.log1p(adata)
sc.pp.highly_variable_genes(adata, n_top_genes=2000, subset=True)
adata

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
{key: round(float(metrics[key]), 3) for key in ("r2", "active_concepts", "l0")}

# %% [markdown]
# ## 2. What the activating cells have in common

# %%
categories = scc.tl.concept_metadata(adata, keys=["cell_type"], min_cells=cfg.concepts.min_cells)
specific = categories[categories["category"] == "cell type"]
specific = specific.sort_values("n_cells", ascending=False)
specific[["n_cells", "cell_type_label", "cell_type_ratio"]].head(8)

# %% [markdown]
# The concept active in the most cells among the cell-type-specific ones, on the UMAP of the
# scVI embeddings:

# %%
concept = int(specific.index[0]) if len(specific) else int(categories["n_cells"].idxmax())
fig, axes = plt.subplots(1, 2, figsize=(10, 4))
sc.pl.umap(adata, color="cell_type", ax=axes[0], show=False, legend_loc="on data",
           legend_fontsize=7)
scc.pl.concept_embedding(adata, concept, ax=axes[1])
fig.tight_layout()
plt.show()

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
fig, axes = plt.subplots(1, len(units), figsize=(4 * len(units), 3.6))
for ax, unit in zip(list(getattr(axes, "flat", [axes])), units):
    scc.pl.top_genes(adata, unit, ax=ax)
fig.tight_layout()
plt.show()

# %% [markdown]
# ## 4. Pathways: attribution-ranked GSEA

# %%
labels = scc.tl.enrich(adata, gene_sets=cfg.gsea.gene_sets, permutations=cfg.gsea.permutations,
                       min_size=cfg.gsea.min_size, seed=cfg.seed)
labels[["unit", "best_term", "NES", "pval", "fdr", "annotation"]]

# %% [markdown]
# Everything is stored in the AnnData and written with it (`adata.write_h5ad`): the codes in
# `obsm["X_concepts"]`, and the SAE weights, metrics, concept categories, attribution scores and
# GSEA labels under `uns["concepts"]`. For the chapters' cached, parametrised study of your data,
# run the book with your file instead: `python -m scconcepts.book execute --set
# data.main.dataset=my.h5ad --set data.main.counts_layer=counts`.
