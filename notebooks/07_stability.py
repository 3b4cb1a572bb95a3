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
# datasets for every model of the profile:
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
#   whose cells express about twice as many vocabulary genes as the main one's; Fig 4C shows,
#   per model, the `models.<model>.stability_pairs` best pairs among the concepts attributed in
#   chapter 04 (every active concept for scVI, the interpretation sample for scGPT; the paper
#   shows a handful of hand-picked pairs).
# * **Seeds**: the second dataset's SAE starts from another seed than the main one (see below).
# * **Seeds**: the seed study uses the `stability.seed_role` dataset (the smaller one in the
#   default profile) with `stability.epochs` epochs (null = the SAE epochs of chapter 02).
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from scconcepts import plotting, stability
from scconcepts.config import load_config
from scconcepts.workflow import Workflow

cfg = load_config(profile, params)
wf = Workflow(cfg)

# %%
models, labels = wf.models, {m: wf.label(m) for m in wf.models}
cfg.table(["data.main.dataset", "data.second.dataset", "sae.epochs", "stability.seeds",
           "stability.seed_role", "stability.epochs", "stability.null_repeats", "seed"]
          + [f"models.{m}.{f}" for m in models for f in ("c", "k", "stability_pairs")])

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
seed, epochs = int(cfg.seed), cfg.stability.epochs
seeds = {"main": seed, "second": seed + 1}
comp = {}
for m in models:
    saes = {"main": wf.sae(m)[0],
            "second": wf.sae(m, role="second", seed=seeds["second"], epochs=epochs)[0]}
    emb = {r: wf.embeddings(r, m) for r in saes}
    comp[m] = stability.dataset_comparison(saes, emb, seeds, int(cfg.stability.null_repeats),
                                           seed)

# %%
pd.DataFrame({labels[m]: {
    "d": wf.embeddings("main", m).shape[1], "c": wf.settings(m).c, "k": wf.settings(m).k,
    "active atoms (main SAE)": int(c["active"]["main"].sum()),
    "active atoms (second SAE)": int(c["active"]["second"].sum()),
    "seeds (main / second)": f"{c['seeds']['main']} / {c['seeds']['second']}",
    "atoms vs own init (cosine, main / second)":
        f"{c['moved']['main']:.2f} / {c['moved']['second']:.2f}",
    "cells (main / second)": f"{wf.embeddings('main', m).shape[0]} / "
                             f"{wf.embeddings('second', m).shape[0]}"}
    for m, c in comp.items()}).T

# %%
moved = {labels[m]: c["moved"] for m, c in comp.items()}
display(Markdown(
    "Mean cosine of the active trained atoms with their own initialisation: "
    + "; ".join(f"{n} {v['main']:.2f} (main) and {v['second']:.2f} (second)"
                for n, v in moved.items())
    + ". " + ("Training moves the atoms little from their random start (cosine > 0.8), so these "
              "SAEs are far from the paper's 1,000–4,000 epochs on 300,000–600,000 cells; "
              "stability scores below are bounded by this."
              if min(min(v.values()) for v in moved.values()) > 0.8 else
              "Training moves the atoms well away from their random start.")))

# %% [markdown]
# ## Do SAEs generalise to the other dataset? (Fig 4A)

# %%
r2 = {labels[m]: c["r2"] for m, c in comp.items()}
fig = plotting.cross_r2_bars(r2)
plt.show()
pd.concat(r2, names=["model"]).droplevel(1).round(4)

# %%
gaps = {}  # R² on its own data − R² on the other dataset, per training dataset
for m, c in comp.items():
    t = c["r2"]
    gaps[m] = (t[t["own data"]].set_index("trained on")["r2"]
               - t[~t["own data"]].set_index("trained on")["r2"])
all_lower = all((g > 0).all() for g in gaps.values())
main_smaller = all(g["main"] < g["second"] for g in gaps.values())
# the paper compares scGPT with scVI; without both models in the profile there is no claim
has_pair = {"scvi", "scgpt"} <= set(models)
scgpt_larger = has_pair and gaps["scgpt"].mean() > gaps["scvi"].mean()
gap_text = "; ".join(f"{labels[m]}: trained on main {g['main']:+.3f}, trained on second "
                     f"{g['second']:+.3f}" for m, g in gaps.items())

# %%
display(Markdown(
    f"R² drop on the other dataset (own − other): {gap_text}. "
    + ("As in the paper, every SAE reconstructs the other dataset less well than its own. "
       if all_lower else "**Unlike the paper**, not every SAE loses R² on the other dataset. ")
    + ("As in the paper, the gap is smaller for the SAEs trained on the larger (main) dataset. "
       if main_smaller else "**Unlike the paper**, the gap is not always smaller for the SAEs "
       "trained on the larger (main) dataset. ")
    + ("" if not has_pair else
       "As in the paper, the drop is larger for scGPT than for scVI (the paper relates it to the "
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
fig = plotting.matching_hist({labels[m]: c["matching"].cosine for m, c in comp.items()},
                             {labels[m]: c["null_cosine"] for m, c in comp.items()})
plt.show()
pd.DataFrame({labels[m]: {
    "matching score (mean cosine)": c["matching"].score,
    "null: random dictionaries (mean ± std)": f"{c['null'].mean():.3f} ± {c['null'].std():.3f}",
    "pairs with cosine > 0.9": f"{(c['matching'].cosine > 0.9).mean():.1%}",
    "pairs above every null pair": f"{(c['matching'].cosine > c['null_cosine'].max()).mean():.1%}",
    "pairs": len(c["matching"].cosine)} for m, c in comp.items()}).T

# %%
above = all(c["matching"].score > c["null"].max() for c in comp.values())
scvi_more_stable = has_pair and comp["scvi"]["matching"].score > comp["scgpt"]["matching"].score
match_text = ", ".join(f"{labels[m]} {c['matching'].score:.3f} (random {c['null'].mean():.3f})"
                       for m, c in comp.items())
beat_text = ", ".join(f"{labels[m]} {(c['matching'].cosine > c['null_cosine'].max()).mean():.0%}"
                      for m, c in comp.items())

# %%
display(Markdown(
    f"Matching scores: {match_text}. "
    + ("Every model's dictionaries agree better than random ones, " if above else
       "**At least one model's dictionaries do not agree better than random ones**, ")
    + f"but only {beat_text}"
    + " of the pairs beat the best pair of a random dictionary. "
    + ("" if not has_pair else
       "As in the paper, scVI concepts are more stable across datasets than scGPT concepts. "
       if scvi_more_stable else "**Unlike the paper**, scGPT concepts match at least as well as "
       "scVI's here. ")
    + "The paper gives the distribution (Fig 4B) but no single number to compare with."))

# %% [markdown]
# ## Genes of matched concepts (Fig 4C)
#
# For the best-matched pairs, the top-10 attribution genes of the main-dataset concept (cached
# from chapter 04) and of its partner, attributed on the second dataset's cells. Per model, the
# pairs are the `models.<model>.stability_pairs` best among the main concepts attributed in
# chapter 04: every active concept when `attribution_units` is `active` (scVI), the
# interpretation sample otherwise (scGPT).

# %%
fig4c = {}
for m in models:
    n = int(wf.settings(m).stability_pairs)
    if n == 0:
        continue
    att_main = wf.attribution(m, "concept")
    pairs = stability.top_pairs(comp[m]["matching"], n,
                                allowed_1=stability.attributed_units(att_main))
    att_second = wf.attribution(m, "concept", role="second", seed=seeds["second"],
                                epochs=epochs, units=sorted(pairs["atom_2"].astype(int)))
    fig4c[labels[m]] = stability.matched_gene_table(att_main, att_second, pairs)
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
    + " ".join([f"{labels[m]}: no pair attributed in this profile "
                f"(`models.{m}.stability_pairs` = 0)." for m in models if labels[m] not in fig4c]
               + [f"{name}: {s_.mean():.1f} shared genes per pair on average "
                  f"({len(s_)} pair{'s' if len(s_) != 1 else ''})."
                  for name, s_ in shared.groupby(level="model", sort=False)])))

# %% [markdown]
# ## Seed stability (reviewer ask)
#
# Three SAEs of the default size per model, identical except for the seed (initialisation and
# batch order), on the same dataset. Matching is over active atoms, as above.

# %%
seed_role = cfg.stability.seed_role
seed_tables = {}
for m in models:
    saes = {s: wf.sae(m, role=seed_role, seed=int(s), epochs=epochs)[0]
            for s in cfg.stability.seeds}
    seed_tables[m] = stability.seed_stability(saes, wf.embeddings(seed_role, m),
                                              int(cfg.stability.null_repeats), seed)
pd.concat({labels[m]: t[1] for m, t in seed_tables.items()}, names=["model"]).round(4)

# %%
summary = pd.concat({labels[m]: t[2] for m, t in seed_tables.items()}, names=["model"])
summary.assign(**{"mean ± std": [f"{a:.3f} ± {b:.3f}" for a, b in
                                  zip(summary["mean"], summary["std"])]})

# %%
seed_lines = [
    f"{labels[m]}: R² {s.loc['R²', 'mean']:.3f} ± {s.loc['R²', 'std']:.3f}, active concepts "
    f"{s.loc['active concepts', 'mean']:.0f} ± {s.loc['active concepts', 'std']:.0f}, matching "
    f"between seeds {s.loc['matching score between seeds', 'mean']:.3f} ± "
    f"{s.loc['matching score between seeds', 'std']:.3f} (random "
    f"{s.loc['null: random dictionaries', 'mean']:.3f}; across datasets "
    f"{comp[m]['matching'].score:.3f})" for m, (_, _, s) in seed_tables.items()]
display(Markdown(
    f"Seeds on the {seed_role} dataset — " + "; ".join(seed_lines) + ". R² barely moves "
    "with the seed, but the dictionaries do: the matching score between seeds is the yardstick "
    "for the cross-dataset score of Fig 4B (a cross-dataset score close to the seed-to-seed score "
    "means the datasets change the concepts no more than a new seed does). The paper reports no "
    "seed study."))

# %% tags=["remove-input"]
# values for the reproduction page (myst-nb glue)
from myst_nb import glue
for _m in models:
    for _key, _v in (("gap_main", gaps[_m]["main"]), ("gap_second", gaps[_m]["second"]),
                     ("gap_mean", gaps[_m].mean()), ("match", comp[_m]["matching"].score),
                     ("null", comp[_m]["null"].mean()), ("seed_match", seed_tables[_m][2].loc[
                         "matching score between seeds", "mean"])):
        glue(f"ch07_{_m}_{_key}", float(_v), display=False)
_na = {} if has_pair else {"scgpt_larger": "n/a", "scvi_more_stable": "n/a"}  # need both
for _key, _v in (("all_lower", all_lower), ("main_smaller", main_smaller), ("above_null", above),
                 ("scgpt_larger", scgpt_larger), ("scvi_more_stable", scvi_more_stable),
                 ("shared", (shared > 0).mean() >= 0.5)):
    glue(f"ch07_{_key}_agree", _na.get(_key, "yes" if _v else "no"), display=False)
glue("ch07_shared_mean", float(shared.mean()), display=False)
glue("ch07_shared_any", float((shared > 0).mean()), display=False)
