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
# # Top-K sparse autoencoders at different scales
#
# Concept extraction is a dictionary-learning problem (Sec 2 of {cite}`claye2025`): the
# embeddings $A \in \mathbb{R}^{n \times d}$ of $n$ cells are approximated as $A \approx U D^\top$
# with a dictionary $D \in \mathbb{R}^{d \times c}$ of $c$ concepts and sparse codes
# $U \in \mathbb{R}^{n \times c}$. A Top-K sparse autoencoder {cite}`gao2024` computes the codes
# with an encoder $\psi$,
#
# $$U = \psi(A) = \mathrm{ReLU}(\mathrm{TopK}((A - b_{dec}) W + b)), \qquad A' = U D^\top + b_{dec},$$
#
# keeping exactly $k$ candidate concepts per cell. As in Gao et al., the decoder columns have unit
# norm, the inputs are centred by $b_{dec}$, and an auxiliary loss (AuxK) makes the
# $k_{aux} = 512$ most active *dead* latents reconstruct the residual, which brings them back.
# A concept *activates* in a cell when its code is $> 0$.
#
# The paper trains SAEs on scVI embeddings ($d = 50$) with $c = 200, 500, 1000, 2000, 5000$ and
# $k = 3, 8, 16, 32, 80$ (Sec 4.2), and keeps $c = 500$, $k = 8$ (expansion factor 10) for the
# rest of the study. We train the same grid up to $c = 1000$ on the scVI embeddings of the main
# dataset (the two largest sizes are left out to keep the whole book within 20 minutes on a CPU;
# the exact grid is in the parameters table below).
#
# ```{admonition} What differs from the paper here
# :class: warning
# The paper trains on 592,317 cells for 1,000–3,000 epochs at learning rates $10^{-4}$ to
# $5 \cdot 10^{-4}$ (batch 1,024). Our main dataset has about 50 times fewer cells, so one epoch
# is about 12 optimisation steps; we train for more epochs at a higher learning rate (see the
# run-parameters table) to reach a comparable number of steps in a few minutes on a CPU.
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from scconcepts import plotting
from scconcepts.pipeline import Pipeline, load_config
from scconcepts.reference import PAPER_TABLE3

cfg = load_config(profile, params)
pipe = Pipeline(cfg)
cfg.table(["main_dataset", "sae_grid", "default_c", "default_k", "sae_lr", "sae_epochs",
           "sae_batch_size", "sae_aux_k", "seed"])

# %% [markdown]
# ## Training
#
# Each SAE is trained once and cached under `artifacts/<profile>/sae/`; the file name carries a
# hash of every hyper-parameter, so rerunning this chapter reuses the weights and changing a
# parameter retrains.

# %%
A = pipe.scvi_adata("main").obsm["X_scvi"]
saes = {(c, k): pipe.sae(c, k) for c, k in cfg.sae_grid}

# %% [markdown]
# ## Reconstruction and sparsity (Table 3 and Fig 2A analogues)
#
# R² is $1 - \sum \lVert a - a' \rVert^2 / \sum \lVert a - \bar a \rVert^2$ with $\bar a$ the
# per-dimension mean embedding (variance-weighted R²): 1 is a perfect reconstruction and 0 is no
# better than the mean cell. *Active* concepts fire in at least one cell of the training data;
# L0 is the mean number of non-zero codes per cell.

# %%
table = pipe.sae_table("main")
paper = PAPER_TABLE3.query("model == 'scVI' and dataset == 'Tabula Sapiens Immune'")
merged = table.merge(paper[["c", "k", "r2", "active_concepts"]].rename(
    columns={"r2": "paper R²", "active_concepts": "paper active"}), on=["c", "k"], how="left")
merged

# %%
fig = plotting.r2_bars(table, paper.set_index(["c", "k"]).reindex(
    list(zip(table["c"], table["k"])))[["r2"]].reset_index(drop=True))
plt.show()

# %%
dflt = table.set_index(["c", "k"]).loc[(cfg.default_c, cfg.default_k)]
both = merged.dropna(subset=["paper R²"])
lower = int((both["r2"] < both["paper R²"]).sum())
trend = ("As in the paper, R² increases with the number of concepts."
         if table["r2"].is_monotonic_increasing else
         "Unlike the paper, R² does not increase monotonically with the number of concepts here.")
display(Markdown(
    f"At the default size ($c$ = {cfg.default_c}, $k$ = {cfg.default_k}) the SAE reconstructs the "
    f"scVI embeddings with R² = **{dflt['r2']:.3f}** and {int(dflt['active_concepts'])} active "
    f"concepts (paper, scVI on Tabula Sapiens Immune: 0.988 and 489). {trend} "
    f"At the smallest size, R² = {table['r2'].iloc[0]:.3f} (paper: 0.936 at c = 200, k = 3). "
    f"Our R² is below the paper's at {lower} of the {len(both)} sizes both have"
    + (" (the small dictionaries): with few active concepts per cell, our 50-dimensional scVI "
       "trained on 12k cells is harder to compress than the Census model; this is a plausible "
       "reason that the book does not test." if lower else ".")))

# %% [markdown]
# ## Training curves and dead concepts
#
# The paper observes that the learning rate mostly controls the number of dead concepts, and
# that scVI SAEs with large dictionaries ($c \geq 2000$) keep many dead concepts. The right
# panel counts latents that have not fired for the last 100,000 training samples (the AuxK
# criterion).

# %%
fig = plotting.training_curves({f"c={c}, k={k}": meta["history"]
                                for (c, k), (_, meta) in saes.items()})
plt.show()

# %% [markdown]
# The default size is chosen as the paper chooses it: the expansion factor $c/d = 10$
# ($c = 500$, $k = 8$ for $d = 50$), where reconstruction is already high and the number of dead
# concepts is still small; the larger dictionaries add little R² and many dead concepts.

# %% [markdown]
# ## scGPT: the same study on the transformer's CLS embeddings (Fig 2, top row)
#
# The paper trains four SAEs on scGPT's 512-dimensional CLS embeddings, $c$ = 1000, 2000, 5000,
# 10000 with $k$ = 16, 32, 80, 160 (expansion factors ≈ 2 to 20, $k$ = 1.6 % of $c$), and keeps
# $c$ = 5000, $k$ = 80 (expansion ≈ 10). Our scGPT is the project-pretrained model of chapter 1
# ($d$ = 64), so we keep the paper's expansion factors and $k/c$ ratio: $c$ = 128, 256, 640 with
# $k$ = 2, 4, 10 (the 20× size, $c$ = 1280, $k$ = 20, is left out for time), default $c$ = 640,
# $k$ = 10. The optimiser settings are those of the
# scVI SAEs above.

# %%
cfg.table(["scgpt_checkpoint", "scgpt_sae_grid", "scgpt_default_c", "scgpt_default_k"])

# %%
saes_gpt = {(c, k): pipe.sae(c, k, model="scgpt") for c, k in cfg.scgpt_sae_grid}
table_gpt = pipe.sae_table("main", model="scgpt")
paper_gpt = PAPER_TABLE3.query("model == 'scGPT' and dataset == 'Tabula Sapiens Immune'")
table_gpt.assign(**{"c/d": table_gpt["c"] / pipe.embeddings("main", "scgpt").shape[1]})

# %%
paper_gpt[["c", "k", "r2", "active_concepts"]].assign(**{"c/d": paper_gpt["c"] / 512}).rename(
    columns={"r2": "paper R²", "active_concepts": "paper active"}).set_index(["c", "k"])

# %%
fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
for ax, (name, t) in zip(axes, {"scGPT (project, d = 64)": table_gpt,
                                "scVI (d = 50)": table}.items()):
    ax.bar([f"{c}/{k}" for c, k in zip(t["c"], t["k"])], t["r2"], color="#4c72b0")
    ax.set_ylim(min(0.5, float(t["r2"].min()) - 0.05), 1.0)
    ax.set_title(f"{name}: R²")
    ax.set_xlabel("c / k")
axes[0].set_ylabel("R²")
fig.tight_layout()
plt.show()

# %%
fig = plotting.training_curves({f"scGPT c={c}, k={k}": meta["history"]
                                for (c, k), (_, meta) in saes_gpt.items()})
plt.show()

# %%
dg = table_gpt.set_index(["c", "k"]).loc[(cfg.scgpt_default_c, cfg.scgpt_default_k)]
gpt_trend = ("increases" if table_gpt["r2"].is_monotonic_increasing else
             "does not increase monotonically")
display(Markdown(
    f"On scGPT embeddings the default SAE ($c$ = {cfg.scgpt_default_c}, $k$ = "
    f"{cfg.scgpt_default_k}) reaches R² = **{dg['r2']:.3f}** with {int(dg['active_concepts'])} of "
    f"{cfg.scgpt_default_c} concepts active (paper, scGPT $c$ = 5000, $k$ = 80: 0.995 and 4381 of "
    f"5000). R² {gpt_trend} with the dictionary size, from {table_gpt['r2'].iloc[0]:.3f} to "
    f"{table_gpt['r2'].iloc[-1]:.3f} (paper: 0.981 to 0.996). Dead concepts at the largest size: "
    f"{int(table_gpt['dead_concepts'].iloc[-1])} of {int(table_gpt['c'].iloc[-1])}. "
    + (f"The share of active concepts at the default size, {dg['active_concepts'] / cfg.scgpt_default_c:.0%}, "
       "is below the paper's 88 %: **this disagrees with the paper** (a plausible reason, not "
       "tested here: 12k cells embedded by a small 64-dimensional model give the SAE less to "
       "spread over 640 concepts). "
       if dg["active_concepts"] / cfg.scgpt_default_c < 0.83 else "")
    + "These are SAEs on a 64-dimensional model trained by the project on 16k cells, not on the "
    "whole-human scGPT; the comparison is of trends, not of values."))

# %% tags=["remove-input"]
# values for the reproduction page (myst-nb glue); paper defaults: scVI c = 500, k = 8 and
# scGPT c = 5000, k = 80 (Table 3, Tabula Sapiens Immune)
from myst_nb import glue

for _m, _t, _d, _c, _p, _pc in (("scvi", table, dflt, cfg.default_c, paper, (500, 8)),
                                ("scgpt", table_gpt, dg, cfg.scgpt_default_c, paper_gpt,
                                 (5000, 80))):
    _pact = int(_p.set_index(["c", "k"]).loc[_pc, "active_concepts"])
    glue(f"ch02_{_m}_r2_default", float(_d["r2"]), display=False)
    glue(f"ch02_{_m}_r2_default_agree", "yes" if _d["r2"] > 0.95 else "no", display=False)
    glue(f"ch02_{_m}_r2_first", float(_t["r2"].iloc[0]), display=False)
    glue(f"ch02_{_m}_r2_last", float(_t["r2"].iloc[-1]), display=False)
    glue(f"ch02_{_m}_r2_trend_agree", "yes" if _t["r2"].is_monotonic_increasing else "no",
         display=False)
    glue(f"ch02_{_m}_c_default", int(_c), display=False)
    glue(f"ch02_{_m}_active_default", int(_d["active_concepts"]), display=False)
    glue(f"ch02_{_m}_active_share", float(_d["active_concepts"]) / _c, display=False)
    glue(f"ch02_{_m}_active_agree",
         "yes" if abs(float(_d["active_concepts"]) / _c - _pact / _pc[0]) <= 0.05 else "no",
         display=False)
    glue(f"ch02_{_m}_c_largest", int(_t["c"].iloc[-1]), display=False)
    glue(f"ch02_{_m}_dead_largest", int(_t["dead_concepts"].iloc[-1]), display=False)
    glue(f"ch02_{_m}_dead_default", int(_d["dead_concepts"]), display=False)
    glue(f"ch02_{_m}_dead_agree",
         "yes" if _t["dead_concepts"].iloc[-1] > _d["dead_concepts"] else "no", display=False)
