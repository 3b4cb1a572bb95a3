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
# # Baselines: semi-NMF, PCA and ICA next to the Top-K SAE
#
# Other decompositions can extract concepts. Appendix B of {cite}`claye2025` compares the Top-K
# SAE with **semi-NMF** (non-negative codes, mixed-sign dictionary; Ding, Li & Jordan 2010) in
# the over-complete ($c > d$) and under-complete ($c < d$) settings, on reconstruction, sparsity
# and the two tasks of chapter 08 (Tables 4 and 5). A reviewer asked for the plain low-rank
# baselines too: **PCA** and **ICA** (scikit-learn) with as many components as the
# under-complete semi-NMF.
#
# Each decomposition is fitted on the training cells of a task (at most `baselines.fit_cells`)
# and evaluated on its held-out cells: reconstruction (variance-weighted R²) and sparsity on the
# main dataset's test cells, accuracies with the logistic regressions of chapter 08.
#
# ```{admonition} What differs from the paper here
# :class: warning
# * **Semi-NMF implementation**: the paper used the Overcomplete library; it does not install
#   cleanly on a CPU machine (it needs torchvision, which replaces the pinned CPU torch with a
#   CUDA build), so `scconcepts.baselines.semi_nmf` implements Ding et al.'s multiplicative
#   updates (centred inputs, seeded uniform start, `baselines.nmf_iter` iterations).
# * **Sparsity of dense methods**: multiplicative updates shrink codes towards 0 without reaching
#   it; a code counts as zero below `baselines.zero_tol` × its cell's largest code. Our plain
#   semi-NMF codes come out dense, while the paper's are 97–99 % sparse, so the table adds a
#   variant that keeps each cell's $k$ largest codes (the SAE's $k$): "comparable sparsity".
# * **The SAE saw the test cells**: the Top-K SAE is the book's, trained on all cells of its
#   dataset; the baselines never see the test cells.
# * **Cell cycle** on the second dataset, as in chapter 08; $c < d$
#   (`models.<model>.baseline_low_rank_c`) is 20 for scVI as in the paper and 25 for our
#   64-dimensional scGPT (the paper's ratio 200/512).
# ```

# %% tags=["parameters"]
profile = "default"
params = {}

# %%
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from scconcepts import baselines, downstream
from scconcepts.config import load_config
from scconcepts.workflow import Workflow

cfg = load_config(profile, params)
wf = Workflow(cfg)

# %%
models, labels = wf.models, {m: wf.label(m) for m in wf.models}
cfg.table([f"models.{m}.{f}" for m in models for f in ("c", "k", "baseline_low_rank_c")]
          + ["baselines.nmf_iter", "baselines.fit_cells", "baselines.zero_tol",
             "usefulness.celltype_per_class", "usefulness.cycle_per_class", "seed"])

# %%
tasks = downstream.usefulness_tasks({r: wf.dataset(r) for r in ("main", "second")},
                                    cfg.usefulness, int(cfg.seed))
roles = list(dict.fromkeys(t["role"] for t in tasks.values()))
b = cfg.baselines
tables, details = {}, {}
for m in models:
    tables[m], details[m] = baselines.baseline_table(
        {r: wf.embeddings(r, m) for r in roles}, {r: wf.sae(m, role=r)[0] for r in roles},
        tasks, int(b.nmf_iter), int(b.fit_cells), int(wf.settings(m).baseline_low_rank_c),
        float(b.zero_tol), int(cfg.seed))

# %% [markdown]
# ## Tables 4 and 5 analogues, one per model
#
# Paper, scGPT (Table 4; $d$ = 512, Tabula Sapiens Immune): R² 0.995 (Top-K SAE, $c$ = 5000),
# 0.933 (semi-NMF, $c$ = 5000), 0.858 (semi-NMF, $c$ = 200); cell type 0.869 (neurons), 0.860,
# 0.734, 0.300; cell cycle 0.482, 0.487, 0.477, 0.436.
#
# Paper, scVI (Table 5; $d$ = 50): R² 0.980 (Top-K SAE, $c$ = 500), 0.849 (semi-NMF,
# $c$ = 500), 0.713 (semi-NMF, $c$ = 20); cell type 0.853 (neurons), 0.853, 0.779, 0.692; cell
# cycle 0.493, 0.485, 0.468, 0.462.
#
# A model without a table in the paper (e.g. PCA as the foundation model) has no reference.

# %%
for m, t in tables.items():
    display(Markdown(f"### {labels[m]}"))
    display(t)

# %% [markdown]
# Reconstruction against sparsity, per method and model (the trade-off the appendix argues from):
# a method up and to the right reconstructs better with sparser codes.

# %%
fig, axes = plt.subplots(1, len(tables), figsize=(5 * len(tables), 3.6), squeeze=False)
for ax, (m, t) in zip(axes[0], tables.items()):
    r2 = pd.to_numeric(t.loc["R² (held-out cells)"], errors="coerce")
    # the table shows "mean (std)"; the mean is the first number
    sp_ = pd.to_numeric(t.loc["sparsity"].astype(str).str.split(" ").str[0], errors="coerce")
    for method in t.columns[r2.notna() & sp_.notna()]:
        ax.scatter(sp_[method], r2[method], s=40)
        ax.annotate(method, (sp_[method], r2[method]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    ax.set(xlabel="sparsity (share of zero codes)", ylabel="R² (held-out cells)", title=labels[m])
fig.tight_layout()
plt.show()

# %%
claims = {}
for m, t in tables.items():
    r2 = pd.to_numeric(t.loc["R² (held-out cells)"], errors="coerce")
    ct = pd.to_numeric(t.loc["cell type accuracy"], errors="coerce")
    topk = [c for c in t.columns if "top" in c][0]
    claims[labels[m]] = {
        "SAE R² > semi-NMF (c > d), comparable sparsity (top k)": r2["Top-K SAE"] > r2[topk],
        "SAE R² > semi-NMF (c > d), dense codes": r2["Top-K SAE"] > r2["semi-NMF (c > d)"],
        "semi-NMF (c > d) R² > semi-NMF (c < d)": r2["semi-NMF (c > d)"] > r2["semi-NMF (c < d)"],
        "SAE cell type ≥ semi-NMF (c > d)": ct["Top-K SAE"] >= ct["semi-NMF (c > d)"],
        "SAE within 0.05 of neurons (cell type)": abs(ct["Top-K SAE"] - ct["neurons"]) <= 0.05}
claims = pd.DataFrame(claims).rename_axis("paper's claim (App B)")
claims

# %%
ok = claims.all(axis=None)
bad = [f"{c} ({m})" for c in claims.index for m in claims.columns if not claims.loc[c, m]]
display(Markdown(
    ("Every App B claim holds for every model here: the Top-K SAE reconstructs better than "
     "semi-NMF with as many concepts, the under-complete semi-NMF is worse again, and SAE "
     "concepts keep the neurons' cell-type accuracy while semi-NMF loses some. " if ok else
     "Not every App B claim holds here; **disagreeing**: " + "; ".join(bad) + ". ")
    + "PCA and ICA (the reviewer's low-rank baselines) reach R² "
    + ", ".join(f"{labels[m]} ({wf.settings(m).baseline_low_rank_c} components) PCA "
                f"{t.loc['R² (held-out cells)', 'PCA']}, ICA {t.loc['R² (held-out cells)', 'ICA']}"
                for m, t in tables.items())
    + "; they span the same subspace (ICA only rotates PCA's whitened components), so their R² "
    "agree, and their codes are dense (sparsity ≈ 0), which is what makes them hard to read as "
    "concepts."))

# %% tags=["remove-input"]
# values for the reproduction page (myst-nb glue)
from myst_nb import glue

for _m, _t in tables.items():
    _topk = [c for c in _t.columns if "top" in c][0]
    for _key, _col in (("sae", "Top-K SAE"), ("nmf_topk", _topk), ("nmf", "semi-NMF (c > d)"),
                       ("nmf_low", "semi-NMF (c < d)"), ("pca", "PCA")):
        glue(f"ch09_{_m}_r2_{_key}", float(_t.loc["R² (held-out cells)", _col]), display=False)
    for _key, _col in (("sae", "Top-K SAE"), ("nmf", "semi-NMF (c > d)"), ("neurons", "neurons")):
        glue(f"ch09_{_m}_ct_{_key}", float(_t.loc["cell type accuracy", _col]), display=False)
    for _key, _claim in zip(("r2_topk", "r2_dense", "r2_low", "ct", "ct_neurons"), claims.index):
        glue(f"ch09_{_m}_{_key}_agree", "yes" if claims.loc[_claim, labels[_m]] else "no",
             display=False)
