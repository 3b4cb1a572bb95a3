# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Attribution vs differential expression
#
# The usual way to find "the genes of a group of cells" is a differential gene expression
# analysis (DGEA): compare the cells that carry a concept with cells that do not, and rank genes
# by fold change. Appendix C of {cite}`claye2025` compares this with the counterfactual
# attribution of Sec 3.2 (chapter 4), following the DGEA of Schuster (2024):
#
# * **DGEA gene set**: scanpy's `rank_genes_groups` between at most 1,000 cells that activate the
#   concept most and at most 1,000 **counterfactual cells**. We define the counterfactual cells
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
# * **How many concepts**: a seeded random sample of `dgea_n_concepts` active concepts of the
#   default scVI SAE for DGEA and deletion curves, and `dgea_gsea_n_concepts` of them for the
#   GSEA comparison (paper: the first 100 concepts). scGPT uses chapter 4's scGPT attribution of
#   the interpretation sample (`gsea_n_units` random concepts, $N_p$ = `scgpt_n_prototypes`,
#   $N_c$ = `scgpt_n_counterfactuals`); its forward passes cost ~100× scVI's on a CPU, so only
#   `dgea_scgpt_deletion_concepts` concepts get deletion curves, with `dgea_scgpt_max_pairs`
#   (prototype, counterfactual) pairs and `dgea_scgpt_steps` steps (batched forward passes).
# * **DGEA test**: scanpy's default `t-test` on normalised log1p counts (the paper does not name
#   its test; `wilcoxon` is ~200× slower here and can be chosen with `dgea_method`). The DGEA
#   order keeps genes with nominal $p \le 5 \cdot 10^{-3}$, as the paper writes "p-value" (after
#   Benjamini–Hochberg far fewer pass: the top cells and their nearest counterfactuals are very
#   alike); when fewer genes pass than there are steps, the DGEA curve stays flat after them.
# * **Curves** are relative: activation divided by the prototype's own activation, averaged over
#   the (prototype, counterfactual) pairs of a concept, then mean ± std over concepts.
# * **GSEA permutations**: `dgea_gsea_permutations` (resolution 1/permutations; 200 is the least
#   that resolves $p \le 0.005$). "Genes of a pathway" in the Table 6 metrics are its GSEA
#   leading-edge genes (the paper does not say which genes it uses).
# * **Gene universe**: GO BP 2023 restricted to the model's genes (1,287 for our scVI).
# * **Fold changes** are scanpy's `logfoldchanges`, which use a 1e-9 pseudo-count: a gene absent
#   from one group gets |log2FC| of ~20–30, which inflates "max |log2FC|" when a group is small.
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from scconcepts import dgea, plotting
from scconcepts.pipeline import Pipeline, load_config

cfg = load_config(profile, params)
pipe = Pipeline(cfg)
cfg.table(["main_dataset", "default_c", "default_k", "n_prototypes", "n_counterfactuals",
           "dgea_n_concepts", "dgea_gsea_n_concepts", "dgea_max_cells", "dgea_method",
           "dgea_steps", "dgea_max_pairs", "dgea_gsea_permutations", "gene_sets", "gsea_min_size",
           "dgea_scgpt", "scgpt_default_c", "scgpt_default_k", "dgea_scgpt_deletion_concepts",
           "dgea_scgpt_steps", "dgea_scgpt_max_pairs", "seed"])

# %%
# the paper's Table 6 (mean (std) over the concepts enriched by both methods). In the paper's
# table the two rows of the attribution-based column appear swapped relative to its text ("mean
# 4.7 vs. 2.4" log2FC and "0.21 vs. 0.14" attribution for scVI); we show them as the text reads.
PAPER_T6 = pd.DataFrame(
    {("scVI", "attribution-based"): ["2.362 (1.812)", "0.211 (0.215)", "72", "0.027 (0.043)",
                                     "0.025 (0.060)"],
     ("scVI", "DGEA-based"): ["4.688 (2.211)", "0.135 (0.169)", "89", "", ""],
     ("scGPT", "attribution-based"): ["2.570 (2.261)", "0.323 (0.405)", "32", "0.055 (0.099)",
                                      "0.068 (0.138)"],
     ("scGPT", "DGEA-based"): ["4.040 (1.837)", "0.172 (0.407)", "62", "", ""]},
    index=["Max absolute log2 fold change", "Max attribution", "Number of concepts enriched",
           "IoU genes", "IoU biological processes"])

scvi = dgea.compare_with_dgea(
    pipe, "scvi", n_concepts=int(cfg.dgea_n_concepts), n_gsea=int(cfg.dgea_gsea_n_concepts),
    n_steps=int(cfg.dgea_steps), max_pairs=cfg.dgea_max_pairs, max_cells=int(cfg.dgea_max_cells),
    method=cfg.dgea_method, permutations=int(cfg.dgea_gsea_permutations))
d = scvi["dgea"]
display(Markdown(
    f"scVI: DGEA for {len(d)} concepts, between a median of {d['n_top'].median():.0f} "
    f"top-activating cells (range {d['n_top'].min()}–{d['n_top'].max()}) and "
    f"{d['n_cf'].median():.0f} distinct counterfactual cells ({d['n_cf'].min()}–{d['n_cf'].max()}); "
    f"a median of {d['n_dgea_genes'].median():.0f} genes pass nominal $p \\le 5 \\cdot 10^{{-3}}$ "
    f"(of {len(pipe.attribution('concept').genes)}); for {(d['n_dgea_genes'] < cfg.dgea_steps).sum()} "
    f"concepts fewer genes pass than the {cfg.dgea_steps} deletion steps, so their DGEA curve "
    "ends flat."))

# %% [markdown]
# ## Deletion curves (Fig 8 analogue)

# %%
panels = {"scVI": scvi["curves"]}
if cfg.dgea_scgpt:
    gpt = dgea.compare_with_dgea(
        pipe, "scgpt", n_concepts=None, n_gsea=int(cfg.dgea_gsea_n_concepts),
        n_deletion=int(cfg.dgea_scgpt_deletion_concepts), n_steps=int(cfg.dgea_scgpt_steps),
        max_pairs=cfg.dgea_scgpt_max_pairs, max_cells=int(cfg.dgea_max_cells),
        method=cfg.dgea_method, permutations=int(cfg.dgea_gsea_permutations),
        random_curve=False)
    panels["scGPT (project)"] = gpt["curves"]
fig = plotting.deletion_curves_plot(panels)
plt.show()

# %%
summaries = {name: dgea.curve_summary(df) for name, df in panels.items()}
pd.concat(summaries, names=["model", "curve"])

# %%
def _verdict(df: pd.DataFrame, name: str) -> str:
    per = df.groupby(["curve", "unit"])["activation"].mean().unstack(0)
    a, g = per["attribution"], per["DGEA"]
    below = (a < g).mean()
    txt = (f"**{name}** ({len(per)} concepts): the mean area under the attribution curve is "
           f"{a.mean():.3f} against {g.mean():.3f} for the DGEA order, and the attribution curve "
           f"is the lower one for {below:.0%} of the concepts; ")
    txt += ("attribution genes lower the activation faster, **as in the paper** (Fig 8). "
            if a.mean() < g.mean() else
            "attribution genes do **not** lower the activation faster, **unlike the paper** "
            "(Fig 8). ")
    if "attribution, zero-masked" in per:
        z = per["attribution, zero-masked"]
        txt += (f"Zero-masking the same genes gives {z.mean():.3f}: "
                + ("setting genes to 0 removes *more* activation than copying the "
                   "counterfactual's values, so it also measures the effect of deleting "
                   "expression the counterfactual still has. "
                   if z.mean() < a.mean() else
                   "setting genes to 0 removes *less* activation than the counterfactual "
                   "replacement, so the counterfactual baseline is the more informative one here. "))
    if "random" in per:
        txt += f"A random gene order gives {per['random'].mean():.3f} (null)."
    return txt


display(Markdown("\n\n".join(_verdict(df, n) for n, df in panels.items())))

# %% [markdown]
# ## Attribution-based vs DGEA-based GSEA (Table 6 analogue)
#
# Metrics are over the concepts enriched by both methods (at least one pathway each with
# NES > 0 and $p \le 0.005$), mean (std), as in the paper.

# %%
ours = {"scVI": dgea.table6(scvi["metrics"])}
if cfg.dgea_scgpt:
    ours["scGPT (project)"] = dgea.table6(gpt["metrics"])
t6 = pd.concat({**{f"{k}, this book": v for k, v in ours.items()},
                **{f"{m}, paper": PAPER_T6[m] for m in ("scVI", "scGPT")}}, axis=1)
t6


# %%
def _t6_text(m: pd.DataFrame, name: str) -> str:
    both = m.dropna(subset=["iou_pathways"])
    n = len(m)
    if both.empty:
        return (f"**{name}**: of {n} concepts, {int((m['n_att'] > 0).sum())} are enriched by "
                f"attribution-GSEA and {int((m['n_dgea'] > 0).sum())} by DGEA-GSEA, but none by "
                "both, so the per-concept metrics cannot be computed.")
    fc_ok = both["maxfc_dgea"].mean() > both["maxfc_att"].mean()
    at_ok = both["maxatt_att"].mean() > both["maxatt_dgea"].mean()
    low = both["iou_pathways"].mean() < 0.5
    return (
        f"**{name}**: {int((m['n_att'] > 0).sum())} of {n} concepts are enriched by "
        f"attribution-GSEA and {int((m['n_dgea'] > 0).sum())} by DGEA-GSEA (paper, of 100: 72 vs "
        f"89 for scVI, 32 vs 62 for scGPT) and {len(both)} by both. DGEA pathways hold genes "
        f"with larger |log2FC| ({both['maxfc_dgea'].mean():.2f} vs "
        f"{both['maxfc_att'].mean():.2f}): "
        + ("as in the paper" if fc_ok else "**unlike the paper**")
        + f"; attribution pathways hold genes with larger attribution "
        f"({both['maxatt_att'].mean():.3f} vs {both['maxatt_dgea'].mean():.3f}): "
        + ("as in the paper" if at_ok else "**unlike the paper**")
        + f". The pathway IoU is {both['iou_pathways'].mean():.3f} and the gene IoU "
        f"{both['iou_genes'].mean():.3f} (paper, scVI: 0.025 and 0.027): "
        + ("the two methods mostly find different pathways, as in the paper."
           if low else "**the methods overlap much more than in the paper**."))


display(Markdown("\n\n".join(
    [_t6_text(scvi["metrics"], "scVI")]
    + ([_t6_text(gpt["metrics"], "scGPT (project)")] if cfg.dgea_scgpt else []))
    + f"\n\nWith {cfg.dgea_gsea_permutations} permutations, $p \\le 0.005$ means at most "
    f"{int(0.005 * cfg.dgea_gsea_permutations)} permutation(s) reached the observed enrichment; "
    "these are nominal p-values over ~200 tested pathways, so some enrichments are false "
    "positives (chapter 5 measures that rate on shuffled rankings)."))

# %% [markdown]
# ## Pathways found by only one method
#
# A reviewer asked which pathways each method finds that the other misses. Counts are numbers of
# concepts (scVI, then scGPT).

# %%
for name, res in [("scVI", scvi)] + ([("scGPT (project)", gpt)] if cfg.dgea_scgpt else []):
    u = dgea.unique_pathways(dgea.enriched_by_unit(res["enriched"], "attribution"),
                             dgea.enriched_by_unit(res["enriched"], "DGEA"))
    display(Markdown(f"**{name}**: {len(u)} pathways enriched by at least one method; "
                     f"{int((u['only attribution'] > 0).sum()) if len(u) else 0} found by "
                     f"attribution-GSEA alone in some concept, "
                     f"{int((u['only DGEA'] > 0).sum()) if len(u) else 0} by DGEA-GSEA alone."))
    display(u.head(15))

# %% [markdown]
# ## Example concepts
#
# The top attribution genes and the top DGEA genes (by |log2FC|, nominal $p \le 5 \cdot
# 10^{-3}$) of the first concepts of the scVI sample, with their best pathway by each method.

# %%
att = pipe.attribution("concept")
best = (scvi["enriched"].sort_values("NES", ascending=False).groupby(["unit", "method"])["Term"]
        .first().unstack())
ex = scvi["dgea"].head(8).set_index("unit")
ex["top attribution genes"] = [", ".join(att.ranked(u).index[:10]) for u in ex.index]
ex["best pathway (attribution)"] = best.reindex(ex.index).get("attribution")
ex["best pathway (DGEA)"] = best.reindex(ex.index).get("DGEA")
ex.rename_axis("concept")[["top attribution genes", "top_dgea_genes",
                           "best pathway (attribution)", "best pathway (DGEA)"]]

# %% tags=["remove-input"]
# values for the reproduction page (myst-nb glue), by the comparisons of the prose above
from myst_nb import glue

for _m, _name in (("scvi", "scVI"), ("scgpt", "scGPT (project)")):
    _df = panels.get(_name)
    if _df is None:  # dgea_scgpt off in this profile
        _per = pd.DataFrame({"attribution": [np.nan], "DGEA": [np.nan]})
    else:
        _per = _df.groupby(["curve", "unit"])["activation"].mean().unstack(0)
    _a, _g = _per["attribution"].mean(), _per["DGEA"].mean()
    glue(f"ch10_{_m}_del_attribution", float(_a), display=False)
    glue(f"ch10_{_m}_del_dgea", float(_g), display=False)
    glue(f"ch10_{_m}_del_zero", float(_per["attribution, zero-masked"].mean())
         if "attribution, zero-masked" in _per else float("nan"), display=False)
    glue(f"ch10_{_m}_del_agree", "yes" if _a < _g else "no", display=False)
    _res = {"scvi": scvi, "scgpt": gpt if cfg.dgea_scgpt else None}[_m]
    _mt = _res["metrics"] if _res is not None else pd.DataFrame(
        columns=["n_att", "n_dgea", "iou_pathways", "iou_genes"])
    _both = _mt.dropna(subset=["iou_pathways"])
    glue(f"ch10_{_m}_n_concepts", int(len(_mt)), display=False)
    glue(f"ch10_{_m}_n_att", int((_mt["n_att"] > 0).sum()), display=False)
    glue(f"ch10_{_m}_n_dgea", int((_mt["n_dgea"] > 0).sum()), display=False)
    glue(f"ch10_{_m}_n_both", int(len(_both)), display=False)
    glue(f"ch10_{_m}_iou_genes", float(_both["iou_genes"].mean()), display=False)
    glue(f"ch10_{_m}_iou_pathways", float(_both["iou_pathways"].mean()), display=False)
    glue(f"ch10_{_m}_iou_agree",
         "yes" if len(_both) and _both["iou_pathways"].mean() < 0.5 else "no", display=False)
    glue(f"ch10_{_m}_enriched_agree",
         "yes" if (_mt["n_dgea"] > 0).sum() > (_mt["n_att"] > 0).sum() else "no", display=False)
