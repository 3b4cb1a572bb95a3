# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   scconcepts:
#     summary: "the bundled PBMC datasets, the scVI model trained on the main dataset, the project-pretrained scGPT, and how much cell-type information their embeddings carry (paper §4.1, App. A)."
# ---

# %% [markdown]
# (ch01)=
# # Data and models
#
# The paper studies cell embeddings of two single-cell foundation models, scVI {cite}`lopez2018`
# and scGPT {cite}`cui2024`, on two immune atlases, Tabula Sapiens Immune and the Cross-tissue
# Immune Cell Atlas (Sec 4.1 and Appendix A of {cite}`claye2025`). This chapter builds the
# analogue that runs offline on a laptop: the real datasets bundled with the book, an scVI
# model trained by the book itself with the CELLxGENE Census recipe, and a small scGPT that the
# project pretrained.
#
# ```{admonition} What differs from the paper here
# :class: warning
# * **Data.** The main ("training atlas") dataset is Kang et al. 2018 {cite}`kang2018`:
#   {glue:text}`ch01_main_cells:,d` control PBMCs from {glue:text}`ch01_main_donors:d` donors
#   and {glue:text}`ch01_main_genes:,d` genes, instead of Tabula Sapiens Immune (592,317 cells,
#   74 tissues, 28 donors). The second dataset is 10x PBMC 4k {cite}`tenx2018pbmc4k`
#   ({glue:text}`ch01_second_cells:,d` cells from {glue:text}`ch01_second_donors:d` donor),
#   instead of the Cross-tissue Immune Cell Atlas (329,762 cells). All cells are blood, so
#   *tissue* carries no signal.
# * **scVI.** scVI is trained here on the main dataset (Census recipe: 2 layers, 50 latent
#   dimensions, negative binomial, covariates not encoded, batch = donor) instead of the Census
#   model trained on millions of cells and 8,000 genes; ours sees the main dataset's
#   {glue:text}`ch01_main_genes:,d` genes. The other datasets are mapped to it as *query* data,
#   exactly as a user maps data onto the Census model.
# * **scGPT.** The whole-human checkpoint (33M cells, 12 layers, 512 dimensions) cannot be
#   downloaded here. The book uses a small scGPT-architecture model
#   ({glue:text}`ch01_scgpt_params` parameters) that the project pretrained on the bundled
#   cells (below), saved in the whole-human folder format so that the same loader takes a user's
#   real checkpoint. Every later chapter repeats each analysis for scVI and this scGPT (and for
#   any other model a profile adds).
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import pandas as pd
from IPython.display import display
from myst_nb import glue

from scconcepts import data, figures, plotting
from scconcepts.claims import glue_sentences
from scconcepts.claims.models import KNN_TARGET, checkpoint_facts, knn_accuracy
from scconcepts.config import load_config, repo_root
from scconcepts.models import scgpt as scgpt_model
from scconcepts.models.base import ModelSpec
from scconcepts.models.adapters.scgpt import ScGPTSpec
from scconcepts.tables import show
from scconcepts.workflow import Workflow

# %%
cfg = load_config(profile, params)
wf = Workflow(cfg)
roles = ["main", "second", "perturbation"]
# each adapter's own settings (the SAE settings are in the later chapters' tables)
own = [f"models.{m}.{k}" for m in wf.models
       for k in type(wf.settings(m)).model_fields if k not in ModelSpec.model_fields]
show(cfg.table([f"data.{r}.{key}" for r in roles for key in ("dataset", "subsample")]
               + own + ["seed"]))

# %% [markdown]
# ## Datasets (Table 1 analogue)
#
# All three datasets hold raw integer UMI counts, HGNC gene symbols and Cell Ontology cell-type
# names; `scconcepts.data.load_dataset` checks this and fails with a message naming the fix when
# a user's file does not (log-normalised values, Ensembl ids, missing columns, too few cells).
# Provenance and licences are in `data/README.md`.

# %%
datasets = {f"{getattr(cfg.data, role).dataset} ({role})": wf.dataset(role)
            for role in roles}
rows = {"# cells": "cells", "# genes": "genes", "# donor_id": "donors",
        "# tissue": "tissues", "# cell_type": "cell types", "# condition": "conditions"}
show(data.describe(datasets).rename(index=rows))

# %% tags=["remove-input"]
main, second = wf.dataset("main"), wf.dataset("second")
glue("ch01_main_cells", int(main.n_obs), display=False)
glue("ch01_main_genes", int(main.n_vars), display=False)
glue("ch01_main_donors", int(main.obs["donor_id"].nunique()), display=False)
glue("ch01_second_cells", int(second.n_obs), display=False)
glue("ch01_second_donors", int(second.obs["donor_id"].nunique()), display=False)
n_types = [int(a.obs["cell_type"].nunique()) for a in datasets.values() if "cell_type" in a.obs]
glue("ch01_celltypes_min", min(n_types), display=False)
glue("ch01_celltypes_max", max(n_types), display=False)

# %% [markdown]
# The paper's atlases have 45 cell types each; ours have {glue:text}`ch01_celltypes_min:d` to
# {glue:text}`ch01_celltypes_max:d` immune populations. Cell-type composition of the main
# dataset:

# %%
types = main.obs["cell_type"]
composition = pd.DataFrame({"cells": types.value_counts(),
                            "share": types.value_counts(normalize=True)})
show(composition, percent=["share"])

# %% [markdown]
# ## The models (Table 2 analogues)
#
# scVI is a variational autoencoder: the encoder maps the counts of a cell (log1p-transformed
# inside the network) to a Gaussian posterior over a 50-dimensional latent space; the cell
# embedding is the posterior mean. This mean is *f* in the paper's notation, the representation
# that the SAEs decompose and that attribution differentiates through. Each model of the
# profile next to the paper's model of the same kind:

# %%
described = {wf.label(m): wf.model(m).describe() for m in wf.models}  # Table 2
described = {label: t for label, t in described.items() if t is not None}
show(pd.concat(described, names=["model", "property"])) if described else None

# %% [markdown]
# The second and perturbation datasets are mapped as query data with
# `SCVI.prepare_query_anndata` (which zero-fills reference genes absent from the query) and
# `SCVI.load_query_data`. Gene coverage of the reference genes (the paper reports 3,896/8,000
# for the Cross-tissue atlas on the Census model):

# %%
if "scvi" in wf.models:
    scvi = wf.model("scvi")
    reports = {role: scvi.gene_report(wf.dataset(role), role) for role in roles}
    coverage = pd.DataFrame(reports).T[["n_reference", "n_found"]].astype(int)
    coverage["share"] = coverage["n_found"] / coverage["n_reference"]
    display(show(coverage.rename_axis("dataset"), percent=["share"]))

# %% [markdown]
# ## scGPT (project-pretrained)
#
# scGPT is a transformer over the genes a cell expresses: each token is a gene id plus its
# expression, binned per cell into {glue:text}`ch01_scgpt_bins:d` levels, and the embedding of a
# prepended `<cls>` token is the cell embedding. Our model uses scGPT's own `TransformerModel`
# class and its masked-expression pretraining objective (masked value prediction, GEP, and value
# prediction from the cell embedding, MVC), at a size that runs on a CPU. It was pretrained once
# by `python -m scconcepts.models.scgpt_pretrain` in {glue:text}`ch01_scgpt_runs:d` seeded runs
# (commands and numbers in `models/scgpt_pbmc_small/README.md`) and is committed with the book.
# **It is not the whole-human scGPT**: it has {glue:text}`ch01_scgpt_params` parameters, has
# seen {glue:text}`ch01_scgpt_cells:,d` PBMCs for {glue:text}`ch01_scgpt_cpu_hours:.1f`
# CPU-hours ({numref}`fig-ch01-pretraining`) and knows {glue:text}`ch01_scgpt_vocab:,d` genes.
# Binning is deterministic here (scGPT breaks ties at random).

# %% tags=["remove-input"]
# what the text states about the scGPT checkpoint (the intro glues these keys too); without
# scGPT in the profile, those of the bundled checkpoint
has_scgpt = "scgpt" in wf.models
folder = wf.model("scgpt").checkpoint() if has_scgpt else repo_root() / ScGPTSpec().checkpoint
net = wf.model("scgpt").loaded()[0] if has_scgpt else None
for key, value in checkpoint_facts(folder, net=net).items():
    glue(key, value, display=False)
glue("ch01_knn_target", KNN_TARGET, display=False)

# %%
log = wf.model("scgpt").training_log() if has_scgpt else None
if log:  # a checkpoint pretrained by the project
    figures.glue_figure("ch01_fig_pretraining", plotting.pretraining_curve(log))

# %% [markdown]
# ```{glue:figure} ch01_fig_pretraining
# :name: fig-ch01-pretraining
# :alt: Two falling loss curves, masked value prediction and cell-embedding value prediction, against the optimisation step on a log scale.
#
# **Pretraining of the project scGPT.** The two masked-expression losses (masked mean squared
# error in squared bin units, 25-step running mean, log scale) over the
# {glue:text}`ch01_scgpt_steps:,d` optimisation steps of {glue:text}`ch01_scgpt_runs:d` runs,
# batches of 32 cells: masked value prediction from the other genes (GEP) and from the cell
# embedding (MVC).
# ```

# %%
if has_scgpt:  # genes of the main dataset in the model's vocabulary
    gene_match = scgpt_model.match_genes(main, wf.model("scgpt").loaded()[1])
    display(show(pd.Series({"genes in the dataset": f"{gene_match['n_genes']:,}",
                            "in the vocabulary": f"{gene_match['n_found']:,}",
                            "examples left out": ", ".join(gene_match["missing"][:5])},
                           name="main dataset")))

# %% [markdown]
# Genes of the main dataset that are not in the model's vocabulary carry old symbols that the
# whole-human vocabulary spells differently; they are left out.

# %% [markdown]
# ## Cell embeddings (Fig 6/7 analogue)
#
# UMAPs of every model's embeddings of the main dataset, coloured by the metadata it has. In the
# paper's Figures 6 and 7, cell types separate in the scVI embeddings while donors mix (the model
# was trained with the donor as batch, and its encoder does not see the batch);
# {numref}`fig-ch01-umap-main-scvi` and {numref}`fig-ch01-umap-main-scgpt` show ours.

# %%
main_ad = wf.adata("main", umap=True)
for m in wf.models:
    fig = plotting.umap_panels(
        main_ad, ["cell_type", "donor_id"], basis=f"X_umap_{m}",
        title=f"{cfg.data.main.dataset}: {wf.label(m)} embeddings")
    figures.glue_figure(f"ch01_fig_umap_main_{m}", fig)

# %% [markdown]
# ```{glue:figure} ch01_fig_umap_main_scvi
# :name: fig-ch01-umap-main-scvi
# :alt: Two UMAP scatter plots of the main dataset's scVI embeddings, coloured by cell type and by donor.
#
# **scVI embeddings of the main dataset (Fig 6 analogue).** UMAP of the
# {glue:text}`ch01_main_cells:,d` cells, coloured by cell type (left) and by donor (right); the
# legends give the cells of each label.
# ```
#
# ```{glue:figure} ch01_fig_umap_main_scgpt
# :name: fig-ch01-umap-main-scgpt
# :alt: Two UMAP scatter plots of the main dataset's scGPT embeddings, coloured by cell type and by donor.
#
# **scGPT embeddings of the main dataset (Fig 7 analogue).** The same cells and colours as
# {numref}`fig-ch01-umap-main-scvi`, embedded by the project scGPT (`<cls>` embeddings).
# ```
#
# The second and perturbation datasets are mapped onto each model as query data (scVI: query
# mapping onto the reference model; scGPT: the same checkpoint, no fine-tuning).

# %%
for role, keys in {"second": ["cell_type"], "perturbation": ["condition"]}.items():
    role_ad = wf.adata(role, umap=True)
    for m in wf.models:
        name = getattr(cfg.data, role).dataset
        fig = plotting.umap_panels(
            role_ad, keys, basis=f"X_umap_{m}",
            title=f"{name}: {wf.label(m)} embeddings (query mapping)")
        figures.glue_figure(f"ch01_fig_umap_{role}_{m}", fig)

# %% [markdown]
# ```{glue:figure} ch01_fig_umap_second_scvi
# :name: fig-ch01-umap-second-scvi
# :alt: UMAP scatter plot of the second dataset's scVI embeddings, coloured by cell type.
#
# **scVI embeddings of the second dataset** (query mapping), coloured by cell type, for the
# {glue:text}`ch01_second_cells:,d` cells of 10x PBMC 4k.
# ```
#
# ```{glue:figure} ch01_fig_umap_second_scgpt
# :name: fig-ch01-umap-second-scgpt
# :alt: UMAP scatter plot of the second dataset's scGPT embeddings, coloured by cell type.
#
# **scGPT embeddings of the second dataset**, coloured by cell type, as
# {numref}`fig-ch01-umap-second-scvi`.
# ```
#
# ```{glue:figure} ch01_fig_umap_perturbation_scvi
# :name: fig-ch01-umap-perturbation-scvi
# :alt: UMAP scatter plot of the perturbation dataset's scVI embeddings, coloured by condition (control or interferon-beta).
#
# **scVI embeddings of the perturbation dataset** (query mapping), coloured by condition:
# control and interferon-β-stimulated PBMCs of Kang et al. 2018 ({numref}`chapter %s <ch11>`
# studies them).
# ```
#
# ```{glue:figure} ch01_fig_umap_perturbation_scgpt
# :name: fig-ch01-umap-perturbation-scgpt
# :alt: UMAP scatter plot of the perturbation dataset's scGPT embeddings, coloured by condition.
#
# **scGPT embeddings of the perturbation dataset**, coloured by condition, as
# {numref}`fig-ch01-umap-perturbation-scvi`.
# ```

# %% [markdown]
# ## Do the embeddings carry cell-type information?
#
# A quick check before decomposing them: a 15-nearest-neighbour classifier of cell type,
# 5-fold cross-validated, on the embeddings of every model and, for reference, on the first 50
# principal components of log-normalised counts of the same cells.

# %%
knn = wf.knn_accuracy("main")
show(knn.rename_axis("embedding"))

# %% tags=["remove-input"]
# one claim per model (ch01_knn_<model>, _agree, _n, _sentence); ch01_knn_pca is PCA of counts
acc_pca, n_cells = float(knn["accuracy"]["PCA of log-normalised counts"]), main.n_obs
knn_claims = [knn_accuracy(m, wf.label(m), float(knn["accuracy"][f"{wf.label(m)} (X_{m})"]),
                           n_cells) for m in wf.models]
glue_sentences("ch01_knn_text", knn_claims)
glue("ch01_knn_pca", acc_pca, display=False)  # glued last: it wins over a `pca` model's value

# %% [markdown]
# The book targets a cross-validated accuracy of at least {glue:text}`ch01_knn_target:.2f` for
# every model's embeddings (PCA of log-normalised counts reaches
# {glue:text}`ch01_knn_pca:.4f`); the verdict is inconclusive when the 95 % interval of the
# accuracy ({cite:t}`wilson1927`, one prediction per cell) contains the target:
#
# ```{glue:md} ch01_knn_text
# :format: myst
# ```
#
# The project scGPT was pretrained for {glue:text}`ch01_scgpt_cpu_hours:.1f` CPU-hours on
# {glue:text}`ch01_scgpt_cells:,d` cells, and its accuracy flattened over the last pretraining
# runs (`models/scgpt_pbmc_small/README.md`): its `<cls>` embedding carries the cell-type
# information that the accuracies above measure, next to scVI's and PCA's.
#
# ## What this shows
#
# The book's main dataset holds {glue:text}`ch01_main_cells:,d` blood cells of
# {glue:text}`ch01_main_donors:d` donors, a small, single-tissue stand-in for the paper's
# atlases. A 15-NN classifier reads cell type from the scVI embeddings with accuracy
# {glue:text}`ch01_knn_scvi:.3f` (against the book's target of
# {glue:text}`ch01_knn_target:.2f`: {glue:text}`ch01_knn_scvi_agree:s`) and from the project
# scGPT's with {glue:text}`ch01_knn_scgpt:.3f` ({glue:text}`ch01_knn_scgpt_agree:s`), where PCA
# of counts reaches {glue:text}`ch01_knn_pca:.3f`. The scGPT is a
# {glue:text}`ch01_scgpt_params`-parameter model that has seen
# {glue:text}`ch01_scgpt_cells:,d` cells, not the whole-human checkpoint, so its results in the
# later chapters describe scGPT's architecture and objective rather than the paper's model.
# These embeddings are what the sparse autoencoders of {numref}`chapter %s <ch02>` decompose.
