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
# # Stability of concepts across datasets and seeds
#
# SAEs are known to be unstable: trained on other data, or only with another seed, they can
# extract other concepts (Sec 4.4 of {cite}`claye2025`). The paper trains one set of SAEs on each
# of two immune atlases and asks three questions, which this chapter repeats on our two PBMC
# datasets for both models:
#
# 1. **Generalisation** (Fig 4A): does an SAE trained on one dataset reconstruct the embeddings of
#    the other? R² on the other dataset next to R² on its own training data.
# 2. **Dictionary matching** (Fig 4B): the concept vectors (decoder atoms, columns of $D$) of the
#    two SAEs are paired one-to-one with the Hungarian algorithm on their cosine similarity, as
#    proposed by Fel et al. (2025); the mean cosine of the pairs is 1 when the dictionaries are
#    identical up to a permutation. Because an SAE has many more atoms than dimensions, even a
#    random dictionary finds partners with a sizeable cosine, so every score is shown next to the
#    score of a random dictionary of the same shape (atoms uniform on the unit sphere).
# 3. **Genes** (Fig 4C): the top-10 attribution genes of well-matched pairs, side by side.
#
# A reviewer also asked for **seed stability**: the same data, three seeds, mean ± std of R²,
# active concepts and matching scores between seeds.
#
# ```{admonition} What differs from the paper here
# :class: warning
# * **Datasets**: the main dataset is Kang et al.'s 12,261 control PBMCs and the second is the
#   10x PBMC 4k (2,170 cells), both blood, instead of Tabula Sapiens Immune (592,317 cells) and
#   the Cross-tissue Immune Cell Atlas (329,762 cells). The second dataset is 6 times smaller
#   than the main one (the paper's ratio is 2), so its SAE sees fewer optimisation steps.
# * **Models**: scVI trained by the project on the main dataset (the second is mapped as query
#   data) and the small project-pretrained scGPT; the scVI input is the main dataset's 1,287
#   genes for both datasets, while scGPT reads every gene of its vocabulary a cell expresses.
# * **Matching over active atoms**: dead atoms (never active on their own training data) carry no
#   concept, so they are left out of the matching; the table gives both counts.
# * **scGPT genes**: scGPT attribution is costly on a CPU, most of all on the second dataset,
#   whose cells express about twice as many vocabulary genes as the main one's; Fig 4C for
#   scGPT shows the `stability_scgpt_pairs` best pairs among the concepts attributed in
#   chapter 04 (the paper shows a handful of hand-picked pairs).
# * **Seeds**: the second dataset's SAE starts from another seed than the main one (see below).
# * **Seeds**: the seed study uses the `stability_seed_role` dataset (the smaller one in the
#   default profile) with `stability_epochs` epochs (null = the SAE epochs of chapter 02).
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import Markdown, display

from scconcepts import plotting, stability
from scconcepts.pipeline import Pipeline, load_config

cfg = load_config(profile, params)
pipe = Pipeline(cfg)
cfg.table(["main_dataset", "second_dataset", "default_c", "default_k", "scgpt_default_c",
           "scgpt_default_k", "sae_epochs", "stability_seeds", "stability_seed_role",
           "stability_epochs", "stability_null_repeats", "stability_pairs",
           "stability_scgpt_pairs", "seed"])

# %% [markdown]
# ## SAEs on each dataset
#
# One SAE of the default size per model and dataset (cached; the main-dataset SAEs are those of
# chapters 02–06). The second dataset's SAE is trained from another seed (`seed` + 1): the
# decoder of a Top-K SAE moves away from its random initialisation only where its atoms fire, so
# two SAEs started from the *same* seed share many nearly untouched atoms, which then "match"
# with cosine ≈ 1 at the same index whatever the data. The last column measures this: the mean
# cosine between each active trained atom and the same atom at initialisation.

# %%
models = {"scVI": "scvi", "scGPT": "scgpt"}
comp = {name: stability.dataset_comparison(pipe, m, int(cfg.stability_null_repeats),
                                          cfg.stability_epochs) for name, m in models.items()}
pd.DataFrame({name: {"d": pipe.embeddings("main", m).shape[1],
                     "c": pipe.model_settings(m)["c"], "k": pipe.model_settings(m)["k"],
                     "active atoms (main SAE)": int(comp[name]["active"]["main"].sum()),
                     "active atoms (second SAE)": int(comp[name]["active"]["second"].sum()),
                     "seeds (main / second)": f"{comp[name]['seeds']['main']} / "
                                              f"{comp[name]['seeds']['second']}",
                     "atoms vs own init (cosine, main / second)":
                         f"{comp[name]['moved']['main']:.2f} / {comp[name]['moved']['second']:.2f}",
                     "cells (main / second)": f"{pipe.embeddings('main', m).shape[0]} / "
                                              f"{pipe.embeddings('second', m).shape[0]}"}
              for name, m in models.items()}).T

# %%
moved = {n: c["moved"] for n, c in comp.items()}
display(Markdown(
    "Mean cosine of the active trained atoms with their own initialisation: "
    + "; ".join(f"{n} {m['main']:.2f} (main) and {m['second']:.2f} (second)" for n, m in moved.items())
    + ". " + ("Training moves the atoms little from their random start (cosine > 0.8), so these "
              "SAEs are far from the paper's 1,000–4,000 epochs on 300,000–600,000 cells; "
              "stability scores below are bounded by this."
              if min(min(m.values()) for m in moved.values()) > 0.8 else
              "Training moves the atoms well away from their random start.")))

# %% [markdown]
# ## Do SAEs generalise to the other dataset? (Fig 4A)

# %%
r2 = {name: c["r2"] for name, c in comp.items()}
fig = plotting.cross_r2_bars(r2)
plt.show()
pd.concat(r2, names=["model"]).droplevel(1).round(4)

# %%
def _gaps(t):
    own = t[t["own data"]].set_index("trained on")["r2"]
    other = t[~t["own data"]].set_index("trained on")["r2"]
    return own - other

gaps = {name: _gaps(t) for name, t in r2.items()}
all_lower = all((g > 0).all() for g in gaps.values())
main_smaller = all(g["main"] < g["second"] for g in gaps.values())
scgpt_larger = gaps["scGPT"].mean() > gaps["scVI"].mean()
display(Markdown(
    "R² drop on the other dataset (own − other): "
    + "; ".join(f"{n}: trained on main {g['main']:+.3f}, trained on second {g['second']:+.3f}"
                for n, g in gaps.items()) + ". "
    + ("As in the paper, every SAE reconstructs the other dataset less well than its own. "
       if all_lower else "**Unlike the paper**, not every SAE loses R² on the other dataset. ")
    + ("As in the paper, the gap is smaller for the SAEs trained on the larger (main) dataset. "
       if main_smaller else "**Unlike the paper**, the gap is not always smaller for the SAEs "
       "trained on the larger (main) dataset. ")
    + ("As in the paper, the drop is larger for scGPT than for scVI (the paper relates it to the "
       "different gene sets of the two datasets; here the second dataset measures many genes the "
       "main one lacks, which scGPT reads and scVI does not)."
       if scgpt_larger else "**Unlike the paper**, the drop is not larger for scGPT than for scVI.")))

# %% [markdown]
# ## Matching the dictionaries (Fig 4B)
#
# Hungarian matching of the active atoms of the main-dataset SAE with those of the
# second-dataset SAE (`scipy.optimize.linear_sum_assignment`, maximal total cosine). Grey: the
# same matching against a random dictionary with as many atoms as the second SAE has active ones.

# %%
fig = plotting.matching_hist({n: c["matching"].cosine for n, c in comp.items()},
                             {n: c["null_cosine"] for n, c in comp.items()})
plt.show()
match_table = pd.DataFrame({n: {
    "matching score (mean cosine)": c["matching"].score,
    "null: random dictionaries (mean ± std)": f"{c['null'].mean():.3f} ± {c['null'].std():.3f}",
    "pairs with cosine > 0.9": f"{(c['matching'].cosine > 0.9).mean():.1%}",
    "pairs above every null pair": f"{(c['matching'].cosine > c['null_cosine'].max()).mean():.1%}",
    "pairs": len(c["matching"].cosine)} for n, c in comp.items()}).T
match_table

# %%
sc_, sg_ = comp["scVI"]["matching"].score, comp["scGPT"]["matching"].score
above = all(c["matching"].score > c["null"].max() for c in comp.values())
display(Markdown(
    f"Matching scores: scVI {sc_:.3f}, scGPT {sg_:.3f} (random dictionaries: scVI "
    f"{comp['scVI']['null'].mean():.3f}, scGPT {comp['scGPT']['null'].mean():.3f}). "
    + ("Both models' dictionaries agree better than random ones, " if above else
       "**At least one model's dictionaries do not agree better than random ones**, ")
    + "but only " + ", ".join(f"{n} {(c['matching'].cosine > c['null_cosine'].max()).mean():.0%}"
                              for n, c in comp.items())
    + " of the pairs beat the best pair of a random dictionary. "
    + ("As in the paper, scVI concepts are more stable across datasets than scGPT concepts."
       if sc_ > sg_ else "**Unlike the paper**, scGPT concepts match at least as well as scVI's "
       "here.")
    + " The paper gives the distribution (Fig 4B) but no single number to compare with."))

# %% [markdown]
# ## Genes of matched concepts (Fig 4C)
#
# For the best-matched pairs, the top-10 attribution genes of the main-dataset concept (cached
# from chapter 04) and of its partner, attributed on the second dataset's cells. For scVI the
# pairs are the `stability_pairs` best among all active main concepts; for scGPT the
# `stability_scgpt_pairs` best among the concepts attributed in chapter 04.

# %%
fig4c = {}
for name, m in models.items():
    n = int(cfg.stability_pairs if m == "scvi" else cfg.stability_scgpt_pairs)
    if n == 0:
        continue
    pairs, att_main, att_second = stability.matched_pairs_attribution(
        pipe, m, comp[name], n, cfg.stability_epochs)
    fig4c[name] = stability.matched_gene_table(att_main, att_second, pairs)
gene_pairs = pd.concat(fig4c, names=["model", "pair"]).round(3)
gene_pairs

# %%
shared = gene_pairs["n shared"]
display(Markdown(
    f"Matched pairs share on average {shared.mean():.1f} of their top-10 genes "
    f"({int((shared > 0).sum())} of {len(shared)} pairs share at least one). "
    + ("As in the paper, well-matched concepts often have a few top genes in common. "
       if (shared > 0).mean() >= 0.5 else
       "**Fewer than half** of the pairs share a top-10 gene, which is weaker than the paper's "
       "'often a few genes in common'. ")
    + "Note that the scVI input of both datasets is the same 1,287 genes, while scGPT sees "
    "different gene sets in the two datasets. "
    + ("" if "scGPT" in fig4c else "scGPT pairs are not attributed in this profile "
       "(`stability_scgpt_pairs` = 0). ")
    + " ".join(f"{name}: {s_.mean():.1f} shared genes per pair on average "
               f"({len(s_)} pair{'s' if len(s_) != 1 else ''})."
               for name, s_ in shared.groupby(level="model", sort=False))))

# %% [markdown]
# ## Seed stability (reviewer ask)
#
# Three SAEs of the default size per model, identical except for the seed (initialisation and
# batch order), on the same dataset. Matching is over active atoms, as above.

# %%
seed_role = cfg.stability_seed_role
seed_tables = {}
for name, m in models.items():
    saes = {s: stability.sae_for_seed(pipe, m, seed_role, int(s), cfg.stability_epochs)[0]
            for s in cfg.stability_seeds}
    seed_tables[name] = stability.seed_stability(saes, pipe.embeddings(seed_role, m),
                                                 int(cfg.stability_null_repeats), int(cfg.seed))
pd.concat({n: t[1] for n, t in seed_tables.items()}, names=["model"]).round(4)

# %%
summary = pd.concat({n: t[2] for n, t in seed_tables.items()}, names=["model"])
summary.assign(**{"mean ± std": [f"{a:.3f} ± {b:.3f}" for a, b in
                                  zip(summary["mean"], summary["std"])]})

# %%
seed_lines = []
for n, (_, _, s) in seed_tables.items():
    ms_, null_ = s.loc["matching score between seeds", "mean"], s.loc["null: random dictionaries", "mean"]
    x_data = comp[n]["matching"].score
    seed_lines.append(
        f"{n}: R² {s.loc['R²', 'mean']:.3f} ± {s.loc['R²', 'std']:.3f}, active concepts "
        f"{s.loc['active concepts', 'mean']:.0f} ± {s.loc['active concepts', 'std']:.0f}, matching "
        f"between seeds {ms_:.3f} ± {s.loc['matching score between seeds', 'std']:.3f} (random "
        f"{null_:.3f}; across datasets {x_data:.3f})")
display(Markdown(
    f"Seeds on the {seed_role} dataset — " + "; ".join(seed_lines) + ". R² barely moves "
    "with the seed, but the dictionaries do: the matching score between seeds is the yardstick "
    "for the cross-dataset score of Fig 4B (a cross-dataset score close to the seed-to-seed score "
    "means the datasets change the concepts no more than a new seed does). The paper reports no "
    "seed study."))

# %% tags=["remove-input"]
# values for the reproduction page (myst-nb glue)
from myst_nb import glue

for _n, _m in models.items():
    _m = _m.lower()
    glue(f"ch07_{_m}_gap_main", float(gaps[_n]["main"]), display=False)
    glue(f"ch07_{_m}_gap_second", float(gaps[_n]["second"]), display=False)
    glue(f"ch07_{_m}_gap_mean", float(gaps[_n].mean()), display=False)
    glue(f"ch07_{_m}_match", float(comp[_n]["matching"].score), display=False)
    glue(f"ch07_{_m}_null", float(comp[_n]["null"].mean()), display=False)
    glue(f"ch07_{_m}_seed_match",
         float(seed_tables[_n][2].loc["matching score between seeds", "mean"]), display=False)
glue("ch07_all_lower_agree", "yes" if all_lower else "no", display=False)
glue("ch07_main_smaller_agree", "yes" if main_smaller else "no", display=False)
glue("ch07_scgpt_larger_agree", "yes" if scgpt_larger else "no", display=False)
glue("ch07_above_null_agree", "yes" if above else "no", display=False)
glue("ch07_scvi_more_stable_agree", "yes" if sc_ > sg_ else "no", display=False)
glue("ch07_shared_mean", float(shared.mean()), display=False)
glue("ch07_shared_any", float((shared > 0).mean()), display=False)
glue("ch07_shared_agree", "yes" if (shared > 0).mean() >= 0.5 else "no", display=False)
