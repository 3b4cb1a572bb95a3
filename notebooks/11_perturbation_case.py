# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   scconcepts:
#     summary: "do concepts learned on control cells find the IFN-β response in stimulated cells, and through which genes (not in the paper)."
# ---

# %% [markdown]
# (ch11)=
# # A perturbation case: interferon-β without labels
#
# Concepts are learned without labels; the paper characterises them afterwards with cell
# metadata, genes and pathways (Sec 3). Can they reveal a biological signal that no label
# describes? {cite:t}`kang2018` stimulated PBMCs with interferon-β (IFN-β); the bundled
# perturbation dataset holds {glue:text}`ch11_n_control` control and {glue:text}`ch11_n_stim`
# stimulated cells and **no cell-type labels**. The SAE we use is the one of the main dataset
# ({numref}`chapter %s <ch02>`), trained on the Kang **control** cells only: it has never seen a
# stimulated cell.
#
# 1. Encode the perturbation cells with the model and the main SAE.
# 2. Rank concepts by how well their activation separates stimulated from control cells (AUROC,
#    scikit-learn; 0.5 = no separation) and by the difference of activation frequencies. The
#    condition labels only *rank* concepts that were learned without them. A fully label-free
#    ranking, the rise of each concept's activation frequency from the main dataset to the
#    perturbation dataset, is shown next to it.
# 3. Explain the top concepts with the attribution of {numref}`chapter %s <ch04>` (prototypes
#    and counterfactuals among the perturbation cells) and attribution-based GSEA
#    ({numref}`chapter %s <ch05>`).
#
# An interferon response is expected: interferon-stimulated genes (ISGs: ISG15, IFI6, MX1, the
# IFIT family, …) and GO terms such as "response to virus" or "type I interferon signaling".
#
# ```{admonition} What differs from the paper here
# :class: warning
# * This case is **not in the paper**; the issue asked for it as evidence that concepts find
#   signals without labels.
# * **Models**: {glue:text}`ch11_models` (every model of the profile by default). Each model's
#   default SAE, trained on the control cells, is applied to the perturbation cells' embeddings.
#   The project scGPT saw the perturbation cells (without labels) during pretraining, scVI maps
#   them as query data.
# * **Gene universe**: our scVI reads the {glue:text}`ch11_scvi_n_genes` genes selected on the
#   control cells; of the classic ISGs checked here, {glue:text}`ch11_scvi_missing` are **not
#   among them**, so they cannot appear in any scVI attribution. The table below lists which
#   markers each model sees.
# * scVI maps the perturbation cells as query data onto the reference trained on control cells
#   ({numref}`chapter %s <ch01>`), as a user would apply the Census model.
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import contextlib
import io

import pandas as pd
from myst_nb import glue

# %%
from scconcepts import figures, plotting
from scconcepts.claims import glue_sentences
from scconcepts.claims.perturbation import (AUROC_ALONE, MAJORITY, interferon_claim,
                                            separation_claim)
from scconcepts.config import load_config
from scconcepts.enrichment import annotate_units
from scconcepts.perturbation import (concept_table, frequency_shift, interferon_evidence,
                                     marker_coverage, separating_concepts)
from scconcepts.tables import show
from scconcepts.workflow import Workflow

# %%
cfg = load_config(profile, params)
wf = Workflow(cfg)
show(cfg.table(["data.perturbation.dataset", "data.main.dataset", "perturbation.models",
           "perturbation.top_concepts", "perturbation.min_cells", "perturbation.markers",
           "gsea.gene_sets", "gsea.permutations", "gsea.strong_permutations",
           "gsea.strong_method", "gsea.min_size", "seed"]
               + [f"models.{m}.{key}" for m in cfg.perturbation.models
                  for key in ("c", "k", "n_prototypes", "n_counterfactuals")]), index=True)

# %%
cond = wf.dataset("perturbation").obs["condition"].astype(str).to_numpy()
stim = [c for c in pd.unique(cond) if c != "control"]
if len(stim) != 1 or "control" not in set(cond):
    raise ValueError(f"Expected conditions 'control' and one stimulus, found {sorted(set(cond))}.")
stim, n_top = stim[0], int(cfg.perturbation.top_concepts)
markers = list(cfg.perturbation.markers)
show(pd.Series(cond).value_counts().rename_axis("condition").rename("cells"))

# %% tags=["remove-input"]
glue("ch11_n_control", f"{int((cond == 'control').sum()):,}", display=False)
glue("ch11_n_stim", f"{int((cond == stim).sum()):,}", display=False)
glue("ch11_models", ", ".join(wf.label(m) for m in cfg.perturbation.models), display=False)
glue("ch11_min_cells", int(cfg.perturbation.min_cells), display=False)
glue("ch11_n_markers", len(markers), display=False)

# %% [markdown]
# ## Which concepts separate stimulated from control cells?
#
# The best separating concepts of each model's SAE (concepts active in at least
# {glue:text}`ch11_min_cells` perturbation cells), with their rank in the label-free ranking:
# the share of stimulated and of control cells in which each concept is active, its mean code
# in each group and the number of perturbation cells in which it is active.

# %%
ranked, shifts = {}, {}
for model in cfg.perturbation.models:
    U = wf.codes(model, role="perturbation", sae_role="main")
    ranked[model] = separating_concepts(U, cond, stim, min_cells=int(cfg.perturbation.min_cells))
    shifts[model] = frequency_shift(U, wf.codes(model))
top8 = pd.concat({wf.label(m): tab.head(8).assign(**{"label-free rank": shifts[m].rank(
    ascending=False).reindex(tab.head(8).index).astype(int)}) for m, tab in ranked.items()},
                 names=["model", "concept"])
show(top8.drop(columns="freq_diff"), percent=["freq_pos", "freq_neg"],
     columns={"freq_pos": "active in stimulated", "freq_neg": "active in control",
              "mean_pos": "mean code (stimulated)", "mean_neg": "mean code (control)"})

# %%
first = cfg.perturbation.models[0]
fig = plotting.separation_scatter(ranked[first], highlight=ranked[first].head(n_top).index,
                                  title=f"{wf.label(first)}, control-cell SAE")
_ = figures.glue_figure("ch11_fig_separation", fig)
glue("ch11_first_model", wf.label(first), display=False)
glue("ch11_n_top", n_top, display=False)

# %% [markdown]
# ```{glue:figure} ch11_fig_separation
# :name: fig-ch11-separation
# :alt: Scatter plot of each concept's activation frequency in control cells against stimulated cells, coloured by AUROC, with the best-separating concepts marked.
#
# **Concepts of the control-cell SAE on IFN-β-stimulated cells.** Each point is a concept of
# the {glue:text}`ch11_first_model` SAE active in at least {glue:text}`ch11_min_cells`
# perturbation cells: the share of control cells in which it is active against the share of
# stimulated cells, coloured by the AUROC of its activation for stimulated vs control; the
# {glue:text}`ch11_n_top` best-separating concepts are marked. Concepts above the diagonal fire
# more often after stimulation.
# ```

# %% tags=["remove-input"]
# separation claims, once per model (the prose below and the reproduction page read them)
glue_sentences("ch11_separation_text", [
    separation_claim(m, wf.label(m), tab, shifts[m], n_top, int((cond == stim).sum()),
                     int((cond != stim).sum())) for m, tab in ranked.items()])
glue("ch11_auroc_alone", AUROC_ALONE, display=False)

# %% [markdown]
# Does a single concept separate the conditions (AUROC of its activation at least
# {glue:text}`ch11_auroc_alone`, with a 95 % interval over the cells), or does each concept mark
# only part of the stimulated cells? How many of the best concepts does the label-free ranking
# find too?
#
# {glue:md}`ch11_separation_text`

# %% [markdown]
# ## Their genes (attribution) and pathways (GSEA)
#
# Attribution (Eq 1–3) of the top concepts on the perturbation cells, with the main SAE: the
# prototypes are the perturbation cells that activate the concept most, the counterfactuals the
# nearest perturbation cells where it is 0. First, which of the {glue:text}`ch11_n_markers`
# interferon-stimulated genes checked here each model sees; in the concept table they are marked
# with ★.

# %%
gene_sets, g, results, coverage = wf.gene_sets(), cfg.gsea, {}, {}
for model, tab in ranked.items():
    units = tab.head(n_top).index.to_numpy()
    with contextlib.redirect_stderr(io.StringIO()):  # progress bars, gseapy's tie warnings
        att = wf.attribution(model, "concept", role="perturbation", sae_role="main", units=units)
        summary, _ = annotate_units(att, gene_sets, units, permutations=g.permutations,
                                    strong_permutations=g.strong_permutations,
                                    strong_method=g.strong_method, min_size=g.min_size,
                                    seed=int(cfg.seed), threads=g.threads, progress=False)
    results[model] = (att, summary, [m for m in markers if m in set(att.genes)])
    coverage[model] = marker_coverage(markers, att.genes)
show(pd.DataFrame(coverage).T.rename(index=wf.label).rename_axis("model")[["n_seen", "seen",
                                                                           "missing"]])

# %%
show(pd.concat({wf.label(m): concept_table(att, summary, ranked[m]["auroc"], seen)
                for m, (att, summary, seen) in results.items()}, names=["model", "concept"]))

# %% tags=["remove-input"]
for m, (att, _, _) in results.items():
    glue(f"ch11_{m}_n_genes", f"{len(att.genes):,}", display=False)
    glue(f"ch11_{m}_missing", coverage[m]["missing"], display=False)

# %%
panels = {f"{wf.label(m)} C{u} (AUROC {ranked[m].loc[u, 'auroc']:.2f})":
          att.ranked(int(u)).head(15) for m, (att, _, _) in results.items() for u in att.units[:3]}
fig = plotting.top_genes_bars(panels)
_ = figures.glue_figure("ch11_fig_top_genes", fig)

# %% [markdown]
# ```{glue:figure} ch11_fig_top_genes
# :name: fig-ch11-top-genes
# :alt: Horizontal bar charts of the 15 genes with the largest attribution for each best-separating concept, two panels per row, for each model.
#
# **Genes of the best-separating concepts.** For each model, the best-separating concepts (panel
# title: model, concept and its AUROC) and the 15 genes with the largest attribution on the
# perturbation cells (Eq 3: the mean drop in the concept's activation when the gene takes the
# counterfactual's value), largest on top.
# ```

# %% tags=["remove-input"]
# the interferon claim, once per model, and the counts the reproduction page shows beside it
evidence = {m: interferon_evidence(att, summary, seen, 20)
            for m, (att, summary, seen) in results.items()}
glue_sentences("ch11_interferon_text",
               [interferon_claim(m, wf.label(m), ev) for m, ev in evidence.items()])
for m, ev in evidence.items():
    glue(f"ch11_{m}_n_concepts", int(ev["n_concepts"]), display=False)
    glue(f"ch11_{m}_isg_concepts", int(ev["with_isg"]), display=False)
    glue(f"ch11_{m}_ifn_terms", int(ev["ifn_any"]), display=False)
glue("ch11_majority", MAJORITY, display=False)

# %% [markdown]
# Do the best-separating concepts carry the interferon response? A concept carries it when,
# in the same concept, interferon-stimulated genes are among its top-20 attribution genes and an
# interferon or virus GO term is among its top 5 pathways; the response is found when at least
# {glue:text}`ch11_majority:.0%` of the explained concepts carry it. Too few explained
# concepts, or a signal in only some of them, leave the question inconclusive.
#
# {glue:md}`ch11_interferon_text`

# %% [markdown]
# ## What this shows
#
# A concept learned on control cells alone separates stimulated from control cells with AUROC
# up to {glue:text}`ch11_scvi_best_auroc:.2f` for scVI and {glue:text}`ch11_scgpt_best_auroc:.2f`
# for scGPT; the verdicts on whether one concept alone separates them (AUROC of at least
# {glue:text}`ch11_auroc_alone`) are {glue:text}`ch11_scvi_best_auroc_agree:s` (scVI) and
# {glue:text}`ch11_scgpt_best_auroc_agree:s` (scGPT). Among the
# {glue:text}`ch11_scvi_n_concepts` best-separating scVI concepts, the number with
# interferon-stimulated genes among their top genes is {glue:text}`ch11_scvi_isg_concepts` and
# the number with an interferon or virus GO term among their best five
# {glue:text}`ch11_scvi_ifn_terms` (scGPT: {glue:text}`ch11_scgpt_isg_concepts` and
# {glue:text}`ch11_scgpt_ifn_terms` of {glue:text}`ch11_scgpt_n_concepts`). The verdicts on
# "concepts find the interferon response without labels" are {glue:text}`ch11_scvi_agree:s`
# (scVI) and {glue:text}`ch11_scgpt_agree:s` (scGPT): a concept counts only when its own top
# genes and its own pathways both point to interferon, so a concept that separates the
# conditions through other genes does not.
