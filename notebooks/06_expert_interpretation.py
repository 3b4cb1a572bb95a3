# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
#   scconcepts:
#     summary: "an offline concept viewer with a blinded rating mode, and Fig. 3A.a computed from exported expert ratings (paper §3.3, App. D)."
# ---

# %% [markdown]
# (ch06)=
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
# For every item the open viewer shows:
#
# * the attribution of its top genes: the mean over the prototype cells (bars), each
#   prototype's value (dots) and a per-prototype table; ribosomal, mitochondrial and
#   housekeeping genes carry a badge (genes expressed in nearly every cell, whose attribution may
#   reflect counts rather than a cell programme), and hovering a gene gives its full name and
#   type (bundled NCBI gene table);
# * the Sec 3.1 metadata ratios of the activating cells and their activation histogram;
# * the activating cells on the UMAP, beside the same UMAP coloured by cell type;
# * the best GO pathways of the attribution-based GSEA ({numref}`chapter %s <ch05>`).
#
# The list on the left searches by gene, pathway or label and filters by model, unit type,
# Sec 3.1 category or best pathway; *previous* and *next* walk the filtered list. The form
# beside the evidence asks the questions of Fig 9 that the dataset's metadata make meaningful,
# here {glue:text}`ch06_questions:s` (the tissue question appears only when the cells come from
# more than one tissue). A rating is saved only under a rater id; answers stay in the browser
# and are exported as JSON.
#
# ```{admonition} What differs from the paper here
# :class: warning
# * **Which units**: the same seeded sample as {numref}`chapter %s <ch05>`
#   ({glue:text}`ch06_n_units` concepts of the default SAE and as many neurons, for every model
#   of the profile), so that the expert and the GSEA labels describe the same units. The paper's
#   tool is private; this one is rebuilt from Fig 9.
# * **Blinding and several raters**: the paper's study had a single expert, which its reviewers
#   criticised. The viewer has a **blinded rating mode** in the style of InterProt
#   {cite}`adams2025`: the concepts and neurons of every model are shuffled with a seed and get
#   opaque ids, and the blinded page drops the model, the unit type and index, the Sec 3.1
#   category, the activating-cell counts, the metadata ratios, the histogram and the pathways.
#   What would still tell a neuron from a concept is equalised: every item shows
#   {glue:text}`ch06_shown_prototypes` prototype dots and its {glue:text}`ch06_shown_cells:,`
#   most activating cells (of the cells drawn) on one UMAP shared by all items and coloured by
#   cell type, and attributions are shown relative to the prototypes' mean activation. The cues
#   that remain are the genes themselves (each model reads its own gene panel) and the scale of
#   the relative attribution. The key that maps the ids back stays with this chapter.
# * **No ratings ship with the book.** Fig 3A.a and Table 7 below are computed only from
#   annotation files that real raters exported; the chapter never invents answers.
# ```

# %% tags=["parameters"]
profile = "default"
params = {}
annotations = None  # path (or list of paths, or a folder) of annotation JSON files from the viewer

# %%
from IPython.display import HTML, Markdown, display
from myst_nb import glue

from scconcepts import figures, plotting, viewer
from scconcepts.claims import glue_sentences, interpretability as claims
from scconcepts.config import load_config
from scconcepts.reference import interpretability as ref
from scconcepts.tables import show
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
counts = export.items.groupby(["model", "kind"]).size().reindex(wf.models, level="model")
show(counts.rename("items").reset_index().assign(model=lambda t: t["model"].map(names)),
     columns={"kind": "unit type"})

# %% tags=["remove-input"]
for k, v in {"study": str(payload["study"]), "blinded_study": str(export.key["study"]),
             "n_items": len(export.items), "n_units": int(cfg.gsea.n_units),
             "shown_prototypes": int(export.key["shown"]["prototypes"]),
             "shown_cells": int(export.key["shown"]["cells"]),
             "questions": " and ".join(q["legend"].lower() for q in payload["questions"])
             }.items():
    glue(f"ch06_{k}", v, display=False)

# %% [markdown]
# The viewer holds {glue:text}`ch06_n_items` items (per model and unit type above). Open study
# id {glue:text}`ch06_study:s`; blinded study id {glue:text}`ch06_blinded_study:s`, shuffled
# with the profile's seed (parameter table above).

# %% [markdown]
# ## The viewer
#
# Pick an item on the left, hover the genes, and fill in the form beside the evidence. **Blinded
# rating mode** switches to the blinded page, which is a separate document holding only
# anonymised data.

# %%
display(HTML(viewer.embed_html(export)))

# %% [markdown]
# A static preview, for readers without JavaScript: the top-10 genes of the first concept and
# the first neuron of each model, as the viewer draws them.

# %%
panels, dots = viewer.preview_panels(payload, n_genes=10)
_ = figures.glue_figure("ch06_fig_preview", plotting.top_genes_bars(panels, dots, ncols=2))

# %% [markdown]
# ```{glue:figure} ch06_fig_preview
# :name: fig-ch06-preview
# :alt: Horizontal bars of the top-10 attribution genes of the first concept and the first neuron of each model, with dots for each prototype cell's value.
#
# **What the viewer shows for an item (static preview).** One panel per model and unit type
# (the first concept and the first neuron of the viewer's list). Bars: the mean attribution of
# each of the top-10 genes over the prototype cells and their counterfactuals (Eq 3); dots: each
# prototype cell's value.
# ```

# %% [markdown]
# ## Running a rating study
#
# 1. **Build** this chapter for the profile and models to rate. Its viewers are also written to
#    `artifacts/<profile>/viewer/`: `viewer_blinded.html` for the raters, `viewer_open.html`,
#    and `blinded_key_<study>.json`, the key from opaque ids to units, which raters must not
#    get. (The buttons above also save either page as a file.)
# 2. **Send** `viewer_blinded.html` to each expert. It is one self-contained file: it opens in
#    any recent browser, offline.
# 3. **Rate**: each expert enters a rater id at the top of the form (the viewer saves no
#    rating without one), answers the form for every item (the list marks rated items with ✓),
#    and presses *Export JSON*. Answers persist in the browser between sessions; *Import JSON*
#    restores them on another machine.
# 4. **Merge**: collect the exported files in one folder and run this chapter with its
#    `annotations` parameter set to that folder (or a list of files), e.g.
#    `python -m scconcepts.book execute --only 06 --set annotations=ratings/` (then
#    `python -m scconcepts.book build`), or with papermill `-p annotations ratings/`. The files
#    are checked against this build: a file from another study, or with unknown item ids, is
#    rejected with a message saying why.
#
# Each form becomes one level of Fig 3A.a: **interpretable** when the rater names a cell type, a
# tissue or a biological process (any "yes"), **signal but unclear** when the process answer is
# "signal but unclear" and nothing is named, and **not interpretable** otherwise.

# %% [markdown]
# ## Results: concepts vs neurons (Fig 3A.a analogue)

# %%
ann = None if annotations is None else viewer.load_annotations(annotations, export.studies)
if ann is not None:
    display(show(ann.groupby(["rater", "mode"]).agg(ratings=("id", "size"),
                                                    items=("id", "nunique")), index=True))

# %% tags=["remove-input"]
glue("ch06_n_ratings", 0 if ann is None else len(ann), display=False)
glue("ch06_n_raters", 0 if ann is None else int(ann["rater"].nunique()), display=False)

# %% [markdown]
# **Ratings loaded in this build: {glue:text}`ch06_n_ratings`, from {glue:text}`ch06_n_raters`
# raters.** When this is 0, as the book ships, no expert has rated these items: there is no
# Fig 3A.a and no Table 7 below, and the paper's Fig 3A.a finding (concepts more interpretable
# than neurons) is untested here. To test it, run a study as described above.

# %%
if ann is not None:
    fig3a = viewer.interpretability_table(ann)
    display(show(fig3a.rename(index=names, level="model"), index=True, percent=viewer.LEVELS,
                 columns={"kind": "unit type"}))
    figures.glue_figure("ch06_fig_expert", viewer.plot_interpretability(
        fig3a, title="Expert interpretation (Fig 3A.a analogue)", model_names=names))

# %% tags=["remove-input"]
expert = []  # Fig 3A.a claims (scconcepts.claims.interpretability), models rated on both kinds
for m in (wf.models if ann is not None else []):
    if {(m, "concept"), (m, "neuron")} <= set(fig3a.index):
        c, n = fig3a.loc[(m, "concept")], fig3a.loc[(m, "neuron")]
        expert.append(claims.expert_vs_neurons(m, names[m], claims.RateComparison.from_rates(
            c["interpretable"], c["n_ratings"], n["interpretable"], n["n_ratings"]),
            ref.FIG3A_A.get(m)))
_ = glue_sentences("ch06_text", expert)

# %% tags=["remove-input"]
# the numbered Fig 3A.a exists only with ratings: its glue:figure directive is glued with them
fig_block = ("```{glue:figure} ch06_fig_expert\n:name: fig-ch06-expert\n:alt: Stacked bars of "
             "the shares of ratings per interpretability level, concepts and neurons of each "
             "model.\n\n**Expert ratings (Fig 3A.a analogue).** Share of the ratings that are "
             "interpretable (green), signal but unclear (yellow) or not interpretable (grey), "
             "per model and unit type; n: ratings behind each bar.\n```")
glue("ch06_fig_block", Markdown("" if ann is None else fig_block), display=False)

# %% [markdown]
# ```{glue:md} ch06_fig_block
# :format: myst
# ```
#
# With ratings loaded, concepts and neurons of each model rated on both are compared by
# Fisher's exact test of their shares of interpretable ratings (each rater's rating of an item
# counts once; with several raters the ratings of one item are not independent, so the p-value
# is then optimistic):
#
# {glue:md}`ch06_text`

# %%
if ann is not None and ann["rater"].nunique() > 1:
    display(show(viewer.rater_agreement(ann).rename(index=names, level="model"), index=True,
                 columns={"kind": "unit type"},
                 caption="Agreement between raters (items rated by all of them)"))

# %% [markdown]
# ## Interpreted units (Table 7 analogue)
#
# Items rated interpretable, with the rater's label and description, the attribution-GSEA label
# of {numref}`chapter %s <ch05>` and the top-10 attribution genes (none without ratings).

# %%
rows = None if ann is None else viewer.table7_rows(ann, export.items)
if rows is not None and len(rows):
    display(show(rows, caption="Items rated interpretable"))

# %% [markdown]
# ## What this shows
#
# The book builds the expert-rating interface of the paper's Fig 9 as an offline page, with
# {glue:text}`ch06_n_items` items from the units that {numref}`chapter %s <ch05>` enriched, and
# a blinded copy for several raters that hides the model, the unit type and every count that
# would give them away, leaving the genes and the scale of their relative attribution as cues.
# Ratings loaded in this build: {glue:text}`ch06_n_ratings`, from {glue:text}`ch06_n_raters`
# raters. Without ratings the paper's Fig 3A.a finding (concepts more interpretable than
# neurons) stays untested; with them, the Fisher tests above decide it for each model.
