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
# # Expert interpretation
#
# Pathway enrichment labels a concept with curated knowledge; an expert labels it with their own
# (Sec 3.3 of {cite}`claye2025`). For concept $i$, a biologist reads the attribution ranking
# $C_i$ and answers a few questions, helped by an interactive interface that shows the most
# important genes with their NCBI Gene descriptions on hover (Appendix D, Fig 9). In the
# paper's study (Sec 4.3), a domain expert in immunology rated **20 random concepts and 20
# random neurons per model**, and concepts came out more interpretable than neurons for both
# scGPT and scVI (Fig 3A.a).
#
# The viewer below is that interface, built from this book's results and embedded in the page:
# it needs no server and no network (open it from `file://`, or save it as a file and send it).
# For every item it shows the attribution of the top genes (mean over the prototype cells and
# each prototype's value), each gene's full name and type on hover (bundled NCBI gene table),
# the Sec 3.1 metadata ratios of the activating cells, the activation histogram, the activating
# cells on the UMAP, and the best GO pathways of the attribution-based GSEA (chapter 05). The
# form asks the questions of Fig 9; answers are saved in the browser and exported as JSON.
#
# ```{admonition} What differs from the paper here
# :class: warning
# * **Which units**: the same seeded sample as chapter 05 (`gsea.n_units` concepts of the default
#   SAE and as many neurons, for every model of the profile), so that the expert and the GSEA
#   labels describe the same units. The paper's tool is private; this one is rebuilt from Fig 9.
# * **Blinding and several raters**: the paper's study had a single expert, which its reviewers
#   criticised. The viewer has a **blinded rating mode** in the style of InterProt (Adams et al.,
#   2025, cited in the paper): concepts and neurons are shuffled with a seed, carry opaque ids and no
#   kind or index, and their values are shown relative to their maximum. The key that maps the
#   ids back stays with this chapter. Blinding cannot hide everything: a neuron is centred at its
#   median (chapter 04), so about half the cells "activate" it, while a Top-K concept is sparse.
# * **No ratings ship with the book.** The figure and table at the end are computed only from
#   an annotation file that real raters exported; the chapter never invents answers.
# ```

# %% tags=["parameters"]
profile = "default"
params = {}
annotations = None  # path (or list of paths, or a folder) of annotation JSON files from the viewer

# %%
import matplotlib.pyplot as plt
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from scconcepts import plotting, viewer
from scconcepts.claims import glue_sentences, interpretability as claims
from scconcepts.config import load_config
from scconcepts.reference import interpretability as ref
from scconcepts.workflow import Workflow

# %%
cfg = load_config(profile, params)
wf = Workflow(cfg)
if annotations is None:  # the runner passes it as a profile value (--set annotations=...)
    annotations = cfg.annotations
names = {m: wf.label(m) for m in wf.models}
cfg.table(["data.main.dataset", "gsea.n_units", "data.metadata_keys", "seed"]
          + [f"models.{m}.{key}" for m in wf.models for key in (
              "c", "k", "n_prototypes", "n_counterfactuals", "attribution_units")])

# %%
outputs = {m: {"embeddings": wf.embeddings("main", m), "umap": wf.umap("main", m),
               "codes": wf.codes(m),
               "attribution": {kind: wf.attribution(m, kind) for kind in ("concept", "neuron")},
               "gsea": {kind: wf.gsea(m, kind) for kind in ("concept", "neuron")}}
           for m in wf.models}
payload = viewer.build_payload(
    outputs, wf.dataset("main").obs, model_names=names,
    title=f"Expert interpretation viewer ({cfg.name} profile)",
    metadata_keys=cfg.data.metadata_keys, threshold=cfg.concepts.specificity_threshold,
    min_cells=cfg.concepts.min_cells, seed=cfg.seed)

# %%
export = viewer.export_viewer(payload, cfg.artifacts / "viewer", seed=int(cfg.seed))
glue("ch06_study", str(payload["study"]), display=False)
glue("ch06_blinded_study", str(export.key["study"]), display=False)
glue("ch06_n_items", len(export.items), display=False)
export.items.groupby(["model", "kind"]).size().reindex(wf.models, level="model").rename("items")

# %% [markdown]
# The viewer holds {glue:text}`ch06_n_items` items (per model and unit type above). Open study
# id {glue:text}`ch06_study:s`, blinded study id {glue:text}`ch06_blinded_study:s` (shuffled with
# the profile's `seed`).

# %% [markdown]
# ## The viewer
#
# Pick an item on the left (search by gene, pathway or label; filter by model, unit type,
# Sec 3.1 category or best pathway), hover the genes, and fill in the form. **Blinded rating
# mode** switches to the blinded page, which is a separate document holding only anonymised
# data.

# %%
display(HTML(viewer.embed_html(export)))

# %% [markdown]
# A static preview, for readers without JavaScript: the top-10 genes of the first concept and
# the first neuron of each model, as the viewer draws them (bars: mean; dots: prototypes).

# %%
panels, dots = viewer.preview_panels(payload, n_genes=10)
fig = plotting.top_genes_bars(panels, dots, ncols=2)
plt.show()

# %% [markdown]
# ## Running a rating study
#
# 1. **Build** this chapter for the profile and models to rate. Its viewers are also written to
#    `artifacts/<profile>/viewer/`: `viewer_blinded.html` for the raters, `viewer_open.html`,
#    and `blinded_key_<study>.json`, the key from opaque ids to units, which raters must not
#    get. (The buttons above also save either page as a file.)
# 2. **Send** `viewer_blinded.html` to each expert. It is one self-contained file: it opens in
#    any recent browser, offline.
# 3. **Rate**: each expert enters a name in *Rater*, answers the form for every item (the list
#    marks rated items with ✓), and presses *Export JSON*. Answers persist in the browser
#    between sessions; *Import JSON* restores them on another machine.
# 4. **Merge**: collect the exported files in one folder and run this chapter with the
#    `annotations` parameter set to that folder (or a list of files), e.g.
#    `python -m scconcepts.book execute --only 06 --set annotations=ratings/` (then
#    `python -m scconcepts.book build`), or with papermill
#    `-p annotations ratings/`. The files are checked
#    against this build: a file from another study, or with unknown item ids, is rejected with a
#    message saying why.
#
# Each form becomes one level of Fig 3A.a: **interpretable** when the rater names a cell type, a
# tissue or a biological process (any "yes"), **signal but unclear** when the process answer is
# "signal but unclear" and nothing is named, and **not interpretable** otherwise.

# %% [markdown]
# ## Results: concepts vs neurons (Fig 3A.a analogue)

# %%
ann = None
if annotations is None:
    display(Markdown(
        "**No annotations are loaded yet.** No expert has rated these items for this build, so "
        "there is no Fig 3A.a here and no Table 7 rows: run a study as described above and pass "
        "the exported files as the `annotations` parameter."))
else:
    ann = viewer.load_annotations(annotations, export.studies)
    display(ann.groupby(["rater", "mode"]).agg(ratings=("id", "size"), items=("id", "nunique")))

# %%
if ann is not None:
    fig3a = viewer.interpretability_table(ann)
    display(fig3a.round(3))
    fig = viewer.plot_interpretability(fig3a, title="Expert interpretation (Fig 3A.a analogue)",
                                      model_names=names)
    plt.show()

# %% tags=["remove-input"]
expert = []  # Fig 3A.a claims (scconcepts.claims.interpretability), models rated on both kinds
for m in (wf.models if ann is not None else []):
    if {(m, "concept"), (m, "neuron")} <= set(fig3a.index):
        c, n = fig3a.loc[(m, "concept")], fig3a.loc[(m, "neuron")]
        expert.append(claims.expert_vs_neurons(m, names[m], claims.RateComparison.from_rates(
            c["interpretable"], c["n_ratings"], n["interpretable"], n["n_ratings"]),
            ref.FIG3A_A.get(m)))
glue_sentences("ch06_text", expert)

# %% [markdown]
# With ratings loaded, concepts and neurons of each model rated on both are compared by
# Fisher's exact test of their shares of interpretable ratings (each rater's rating of an item
# counts once; with several raters the ratings of one item are not independent, so the p-value
# is then optimistic):
#
# {glue:md}`ch06_text`

# %%
if ann is not None and ann["rater"].nunique() > 1:
    display(Markdown("Agreement between raters (items rated by all of them):"))
    display(viewer.rater_agreement(ann).round(3))

# %% [markdown]
# ## Interpreted units (Table 7 analogue)
#
# Items rated interpretable, with the rater's label and description, the attribution-GSEA label
# of chapter 05 and the top-10 attribution genes.

# %%
if ann is None:
    display(Markdown("No annotations are loaded yet, so there are no rows to show."))
else:
    rows = viewer.table7_rows(ann, export.items)
    display(rows.set_index("ID") if len(rows) else Markdown("No item was rated interpretable."))
