# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   scconcepts:
#     summary: "differential expression on counterfactual cells, held-out deletion curves and GSEA of both rankings (App. C, Fig. 8, Table 6)."
# ---

# %% [markdown]
# (ch10)=
# # Attribution vs differential expression
#
# The usual way to find "the genes of a group of cells" is a differential gene expression
# analysis (DGEA): compare the cells that carry a concept with cells that do not, and rank genes
# by fold change. Appendix C of {cite}`claye2025` compares this with the counterfactual
# attribution of Sec 3.2 ({numref}`chapter %s <ch04>`), following the DGEA of
# {cite:t}`schuster2024`:
#
# * **DGEA gene set**: scanpy's `rank_genes_groups` between at most {glue:text}`ch10_max_cells`
#   cells that activate the concept most and at most {glue:text}`ch10_max_cells`
#   **counterfactual cells** (the paper's 1,000). We define the counterfactual cells
#   exactly as in Eq 1: for each top-activating cell, its nearest cell (L2 in the model's
#   embedding space) among the cells where the concept is 0; a cell chosen twice counts once.
# * **Deletion curves (Fig 8)**: starting from the attribution's prototypes ($N_p$ cells, each
#   with its $N_c$ counterfactuals), replace the top-$s$ genes by the counterfactual's values
#   (Eq 2 for $s$ genes at once), for $s = 0 \dots S$, and follow the concept activation. Genes
#   come either in attribution order ($C_i$) or in DGEA order (decreasing |log2 fold change|
#   among genes with $p \le 5 \cdot 10^{-3}$). The steeper the drop, the more the genes drive the
#   concept. A reviewer asked for **zero-masking** (set the gene's count to 0) as a baseline that
#   needs no counterfactual: dashed curves. A random gene order (dotted) is a null.
# * **GSEA (Table 6)**: GSEApy prerank on the attribution scores vs on the signed log2 fold
#   changes; a pathway is enriched when NES > 0 and nominal $p \le 0.005$.
#
# ```{admonition} What differs from the paper here
# :class: warning
# * **Data and models**: Kang 2018 control PBMCs with the project's scVI and scGPT (see the
#   introduction), not Tabula Sapiens Immune with Census scVI / scGPT whole-human.
# * **How many concepts**: for each model with DGEA enabled in the profile, a seeded random
#   sample of {glue:text}`ch10_n_concepts` concepts of {numref}`chapter %s <ch04>`'s attribution
#   of the model's default SAE for DGEA and deletion curves, and
#   {glue:text}`ch10_gsea_n_concepts` of them for the GSEA comparison (paper: the first
#   {glue:text}`ch10_paper_n_concepts`). For scGPT, {numref}`chapter %s <ch04>`'s attribution is
#   the interpretation sample, and its forward passes cost ~100× scVI's on a CPU, so fewer of its
#   concepts get deletion curves, with fewer (prototype, counterfactual) pairs and deletion steps.
#   The first table below gives, per model, what each comparison covers.
# * **DGEA test**: scanpy's {glue:text}`ch10_method` on normalised log1p counts (the paper does
#   not name its test; a Wilcoxon test is ~200× slower here and can be chosen in the profile).
#   The DGEA order keeps genes with nominal $p \le 5 \cdot 10^{-3}$, as the paper writes
#   "p-value" (after Benjamini–Hochberg far fewer pass: the top cells and their nearest
#   counterfactuals are very alike); when fewer genes pass than there are steps, the DGEA curve
#   stays flat after them.
# * **Curves** are relative: activation divided by the prototype's own activation, averaged over
#   the (prototype, counterfactual) pairs of a concept, then mean ± std over concepts.
# * **GSEA permutations**: {glue:text}`ch10_permutations` (resolution 1/permutations; 200 is the
#   least that resolves $p \le 0.005$). "Genes of a pathway" in the Table 6 metrics are its GSEA
#   leading-edge genes (the paper does not say which genes it uses).
# * **Gene universe**: {glue:text}`ch10_gene_sets` restricted to the model's genes (their number
#   per model is in the first table below).
# * **Fold changes** are scanpy's `logfoldchanges`, which use a 1e-9 pseudo-count: a gene absent
#   from one group gets |log2FC| of ~20–30, which inflates "max |log2FC|" when a group is small.
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import pandas as pd
from myst_nb import glue

from scconcepts import dgea, figures, plotting
from scconcepts.claims import dgea as dgea_claims
from scconcepts.claims import glue_sentences
from scconcepts.config import load_config
from scconcepts.reference.dgea import PAPER_FIG8, PAPER_N_CONCEPTS, PAPER_TABLE6, paper_table6
from scconcepts.tables import show
from scconcepts.workflow import Workflow

# %%
cfg = load_config(profile, params)
wf = Workflow(cfg)
models = [m for m in wf.models if wf.settings(m).dgea.enabled]
show(cfg.table(["data.main.dataset", "dgea.n_concepts", "dgea.gsea_n_concepts",
                "dgea.max_cells", "dgea.method", "dgea.steps", "dgea.max_pairs",
                "dgea.gsea_permutations", "gsea.gene_sets", "gsea.min_size", "seed"]
               + [f"models.{m}.{key}" for m in wf.models for key in
                  ("c", "k", "n_prototypes", "n_counterfactuals", "attribution_units",
                   "dgea.enabled", "dgea.deletion_concepts", "dgea.steps", "dgea.max_pairs")]),
     index=True)

# %% tags=["remove-input"]
d = cfg.dgea
glue("ch10_n_concepts", int(d.n_concepts), display=False)
glue("ch10_gsea_n_concepts", int(d.gsea_n_concepts), display=False)
glue("ch10_paper_n_concepts", int(PAPER_N_CONCEPTS), display=False)
glue("ch10_method", str(d.method), display=False)
glue("ch10_max_cells", f"{int(d.max_cells):,}", display=False)
glue("ch10_gene_sets", str(cfg.gsea.gene_sets).replace("_", " "), display=False)
glue("ch10_permutations", int(d.gsea_permutations), display=False)
glue("ch10_max_hits", int(dgea.GSEA_P * d.gsea_permutations), display=False)

# %%
# per model: DGEA, deletion curves and GSEA comparison (a cached workflow step)
results = {m: wf.dgea_comparison(m) for m in models}

# %% [markdown]
# What each model's comparison covers: the concepts attributed in
# {numref}`chapter %s <ch04>`, the sampled concepts with a DGEA, those with deletion curves and
# those compared by GSEA; the prototypes $N_p$ and counterfactuals $N_c$ of the attribution, the
# (prototype, counterfactual) pairs each deletion curve averages over and the genes removed at
# its last step; and the genes the model reads (the GSEA universe).

# %%
cover = {}
for m, r in results.items():
    o, s_ = dgea.options(cfg.dgea, wf.settings(m).dgea), wf.settings(m)
    att, pairs = wf.attribution(m, "concept"), s_.n_prototypes * s_.n_counterfactuals
    cover[wf.label(m)] = {
        "concepts attributed": len(att.units), "with DGEA": len(r["dgea"]),
        "with deletion curves": r["curves"]["unit"].nunique(), "GSEA-compared": len(r["metrics"]),
        "prototypes": int(s_.n_prototypes), "counterfactuals": int(s_.n_counterfactuals),
        "pairs per curve": min(pairs, o["max_pairs"] or pairs), "deletion steps": o["n_steps"],
        "genes": len(att.genes)}
show(pd.DataFrame(cover).T.rename_axis("model"))

# %% tags=["remove-input"]
# the chapter's claims, once per model of the profile (a model without DGEA: inconclusive, NaN/0);
# the prose below and the reproduction page read these glued values
claims = {m: dgea_claims.chapter_claims(m, wf.label(m), results.get(m), PAPER_FIG8.get(m),
                                        PAPER_TABLE6.get(m)) for m in wf.models}
for name in ("del", "del_heldout", "enriched", "maxfc", "maxatt", "iou"):
    glue_sentences(f"ch10_{name}_text", [c[name] for c in claims.values()])
for m in wf.models:
    for k, v in dgea_claims.page_values(m, results.get(m)).items():
        glue(k, v, display=False)
glue("ch10_iou_min_n", next(n for n in range(1, 1000) if dgea_claims.bounded_mean_interval(
    [0.0] * n)[1][1] < dgea_claims.IOU_MAX), display=False)

# %% [markdown]
# The DGEA of each concept: the top-activating cells, the distinct counterfactual cells and the
# genes that pass nominal $p \le 5 \cdot 10^{-3}$ ("DGEA genes", out of the model's genes);
# minimum, median and maximum over the sampled concepts. When fewer genes pass than there are
# deletion steps, the concept's DGEA curve ends flat.

# %%
show(pd.concat({wf.label(m): r["dgea"][["n_top", "n_cf", "n_dgea_genes"]].agg(
    ["min", "median", "max"]) for m, r in results.items()}, names=["model", "over concepts"]))

# %% [markdown]
# ## Deletion curves (Fig 8 analogue)

# %%
panels = {wf.label(m): res["curves"] for m, res in results.items()}
fig = plotting.deletion_curves_plot(panels)
_ = figures.glue_figure("ch10_fig_deletion", fig)

# %% [markdown]
# ```{glue:figure} ch10_fig_deletion
# :name: fig-ch10-deletion
# :alt: Line plots, one per model, of the concept activation relative to the prototype against the number of genes removed, for attribution, DGEA, zero-masked, held-out and random gene orders.
#
# **Deletion curves (Fig 8 analogue).** Concept activation divided by the prototype's own
# activation as a concept's top genes are replaced by the counterfactual's values, against the
# number of genes removed; mean over concepts (shaded: ± one standard deviation), one panel per
# model with its number of concepts in the title. Solid: genes in attribution order and in DGEA
# order; dashed: the same genes set to 0 (zero-masking); dash-dotted: both orders on held-out
# (prototype, counterfactual) pairs; dotted: a random gene order (null). A steeper drop means
# the genes drive the concept more.
# ```
#
# The same curves in numbers: relative activation after the first genes, and the area under
# each curve (its mean over the steps), mean ± std over the concepts.

# %%
summaries = {name: dgea.curve_summary(df) for name, df in panels.items() if len(df)}
show(pd.concat(summaries, names=["model", "curve"]))

# %% [markdown]
# In the paper, deleting a concept's genes in attribution order lowers its activation faster
# than in DGEA order (Fig 8). We test this on each concept's difference of areas under the two
# curves (attribution − DGEA: negative when the attribution order is faster), with a 95 %
# interval over the concepts; too few concepts, or an interval that includes 0, leave the
# comparison inconclusive. Zero-masking and the random order are shown for reference.
#
# {glue:md}`ch10_del_text`
#
# The attribution order was estimated from the very (prototype, counterfactual) pairs these
# curves delete on, which favours it. The dash-dotted curves repeat both orders on pairs it never
# saw: the prototypes ranked $N_p + 1$ to $2 N_p$ by activation, each with its own nearest
# non-activating cells (Eq 1). The same test on those held-out pairs (the DGEA order was computed
# on up to {glue:text}`ch10_max_cells` top cells, which include them; it is not held out):
#
# {glue:md}`ch10_del_heldout_text`

# %% [markdown]
# ## Attribution-based vs DGEA-based GSEA (Table 6 analogue)
#
# Metrics are over the concepts enriched by both methods (at least one pathway each with
# NES > 0 and $p \le 0.005$), mean (std), as in the paper; one table per model, with the paper's
# values for the same model beside ours (a model the paper does not study has none).

# %%
t6 = {}
for m, r in results.items():
    ours = dgea_claims.table6(r["metrics"]).add_suffix(", this book")
    paper = paper_table6(m)
    t6[wf.label(m)] = ours if paper is None else ours.join(paper.add_suffix(", paper"))
t6 = pd.concat(t6, names=["model", "metric"])
show(t6.where(~t6.isin(["", "—"])),
     columns={c: c.replace("-based", "") for c in t6.columns})

# %% [markdown]
# Table 6 makes four points, each compared with the paper's value for the same model (a model
# the paper does not study is inconclusive). The number of concepts each method enriches is
# compared by the difference of the two shares, with the 95 % interval of {cite:t}`bonett2012` for paired
# proportions (the exact McNemar test on the concepts enriched by one method only is given
# beside it); the maximal fold change and attribution by the mean per-concept difference with a
# 95 % t interval, none when every concept gives the same difference; the overlap of pathways
# (IoU, between 0 and 1) by its mean with a 95 % Hoeffding interval {cite}`hoeffding1963`, which holds for any
# distribution of values in [0, 1] and keeps its width when every concept has the same IoU.
#
# **DGEA-GSEA enriches more concepts than attribution-GSEA.** {glue:md}`ch10_enriched_text`
#
# **DGEA pathways hold genes with larger fold changes.** {glue:md}`ch10_maxfc_text`
#
# **Attribution pathways hold genes with larger attribution.** {glue:md}`ch10_maxatt_text`
#
# **The two methods find mostly different pathways.** {glue:md}`ch10_iou_text`
#
# With {glue:text}`ch10_permutations` permutations, $p \le 0.005$ means at most
# {glue:text}`ch10_max_hits` permutation(s) reached the observed enrichment; these are nominal
# p-values over ~200 tested pathways, so some enrichments are false positives
# ({numref}`chapter %s <ch05>` measures that rate on shuffled rankings).

# %% [markdown]
# ## Pathways found by only one method
#
# A reviewer asked which pathways each method finds that the other misses. Counts are numbers of
# concepts, per model: first how many pathways each method finds alone in some concept, then the
# pathways with the largest counts.

# %%
uniq = {wf.label(m): dgea.unique_pathways(dgea.enriched_by_unit(r["enriched"], "attribution"),
                                          dgea.enriched_by_unit(r["enriched"], "DGEA"))
        for m, r in results.items()}
show(pd.DataFrame({name: {"pathways enriched by a method": len(u),
                          "by attribution-GSEA alone": int((u["only attribution"] > 0).sum()),
                          "by DGEA-GSEA alone": int((u["only DGEA"] > 0).sum())}
                   for name, u in uniq.items()}).T.rename_axis("model"))

# %%
show(pd.concat({name: u.head(15).set_index("pathway") for name, u in uniq.items()},
               names=["model", "pathway"]),
     columns={"only attribution": "attribution alone", "only DGEA": "DGEA alone"})

# %% [markdown]
# ## Example concepts
#
# The top attribution genes and the top DGEA genes (by |log2FC|, nominal $p \le 5 \cdot
# 10^{-3}$) of the first concepts of each model's sample, with their best pathway by each method
# ("–": none enriched).

# %%
examples = {}
for m, res in results.items():
    att = wf.attribution(m, "concept")
    best = (res["enriched"].sort_values("NES", ascending=False).groupby(["unit", "method"])["Term"]
            .first().unstack())
    ex = res["dgea"].head(8).set_index("unit")
    ex["top attribution genes"] = [", ".join(att.ranked(u).index[:10]) for u in ex.index]
    for meth in ("attribution", "DGEA"):
        ex[f"best pathway ({meth})"] = best.reindex(ex.index).get(meth)
    examples[wf.label(m)] = ex[["top attribution genes", "top_dgea_genes",
                                "best pathway (attribution)", "best pathway (DGEA)"]]
show(pd.concat(examples, names=["model", "concept"]))

# %% [markdown]
# ## What this shows
#
# Deleting a concept's top genes in attribution order lowers the scVI concepts' activation to a
# mean area of {glue:text}`ch10_scvi_del_attribution:.3f`, against
# {glue:text}`ch10_scvi_del_dgea:.3f` in DGEA order (verdict on the paper's Fig 8:
# {glue:text}`ch10_scvi_del_agree:s`; on held-out pairs:
# {glue:text}`ch10_scvi_del_heldout_agree:s`), and the scGPT concepts' to
# {glue:text}`ch10_scgpt_del_attribution:.3f` against {glue:text}`ch10_scgpt_del_dgea:.3f`
# (verdict: {glue:text}`ch10_scgpt_del_agree:s`; concepts with deletion curves:
# {glue:text}`ch10_scgpt_del_n`). DGEA-GSEA enriches {glue:text}`ch10_scvi_n_dgea` and
# attribution-GSEA {glue:text}`ch10_scvi_n_att` of the {glue:text}`ch10_scvi_n_concepts`
# compared scVI concepts (verdict on Table 6's "DGEA enriches more":
# {glue:text}`ch10_scvi_enriched_agree:s`; scGPT: {glue:text}`ch10_scgpt_enriched_agree:s`). On
# the concepts both methods enrich, the mean pathway IoU is
# {glue:text}`ch10_scvi_iou_pathways:.3f` for scVI ({glue:text}`ch10_scvi_n_both` concepts) and
# {glue:text}`ch10_scgpt_iou_pathways:.3f` for scGPT ({glue:text}`ch10_scgpt_n_both`), and the
# verdicts on "mostly different pathways" are {glue:text}`ch10_scvi_iou_agree:s` and
# {glue:text}`ch10_scgpt_iou_agree:s`. A low observed IoU is not enough for that claim: it
# agrees only once the interval of the mean IoU lies below 0.5, which takes at least
# {glue:text}`ch10_iou_min_n` concepts even when every one of them has IoU 0.
