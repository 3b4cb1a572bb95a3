"""Interactive viewer for the expert interpretation of concepts and neurons (Sec 3.3, App D).

Section 3.3 of Claye et al. (2025) has a biologist label each concept from its gene attribution
C_i, helped by an interactive interface that shows the most important genes and their NCBI Gene
descriptions on hover; Appendix D (Fig 9) shows the interface and its annotation form, and
Fig 3A.a compares the expert's answers for 20 random concepts and 20 random neurons per model.
This module rebuilds that interface as **one self-contained HTML file** (vanilla JavaScript,
inline SVG and a canvas; no CDN, no network, works from ``file://``):

* a list of items with search and filters (model, unit type, Sec 3.1 category, best pathway);
  previous / next move within the filtered list;
* per item: attribution bar chart of the top genes (mean over prototypes, dots = each
  prototype's value, and a per-prototype table), ribosomal / mitochondrial / housekeeping genes
  flagged with a badge (:func:`scconcepts.genes.gene_flags`), gene full name and type on hover
  (bundled NCBI gene info, :func:`scconcepts.data.load_gene_info`), the Sec 3.1 metadata ratios
  of the activating cells, the activation histogram, the UMAP coloured by cell type beside the
  activating cells, and the best attribution-GSEA pathways with NES, p and FDR (Sec 3.4);
* the annotation form of Fig 9, beside the evidence (one scrolling page; in the book the frame
  grows to its content), with only the questions the dataset's metadata make meaningful
  (:func:`form_questions`: no tissue question for an all-blood dataset); answers need a rater
  id, are saved in the browser's ``localStorage`` and exported / imported as JSON.

**Blinded mode** (in the style of InterProt, Adams et al. 2025): a second file in which concepts
and neurons of every model are shuffled with a seed and get opaque ids (``item-01``, ...). The
blinded payload holds only genes, relative attribution, an equal number of prototype dots and
an equal number of most-activating cells per item on one UMAP shared by all items: no kind,
unit, model, Sec 3.1 category, cell count, metadata ratio, histogram or pathway
(:func:`blind_payload` lists what is equalised and what remains). The key that maps opaque ids
back to units is returned to the caller (and written to a separate JSON file) and never enters
the page.

The annotations are read back by :func:`load_annotations` and summarised as Fig 3A.a
(:func:`interpretability_table`, :func:`plot_interpretability`) and Table 7
(:func:`table7_rows`).

The package: :mod:`~scconcepts.viewer.payload` collects the items and builds the open payload,
:mod:`~scconcepts.viewer.blind` the blinded one, :mod:`~scconcepts.viewer.render` turns them
into the HTML pages (assets in ``scconcepts/viewer_assets``),
:mod:`~scconcepts.viewer.annotations` reads the exported annotations back. Every public name is
importable from :mod:`scconcepts.viewer`.
"""

from __future__ import annotations

from .annotations import (
    ANNOTATION_SCHEMA,
    LEVELS,
    QUESTIONS,
    form_questions,
    interpretability_level,
    interpretability_table,
    load_annotations,
    plot_interpretability,
    rater_agreement,
    table7_rows,
)
from .blind import BLIND_FIELDS, BLIND_ITEM_FIELDS, blind_payload
from .payload import (
    VIEWER_SCHEMA,
    build_payload,
    collect_items,
    drawn_cells,
    preview_panels,
)
from .payload import _gene_info, _gsea_terms, _quantise_xy, _study_id  # noqa: F401  (tests)
from .render import ViewerExport, embed_html, export_viewer, render_html

__all__ = [
    "VIEWER_SCHEMA",
    "ANNOTATION_SCHEMA",
    "LEVELS",
    "QUESTIONS",
    "BLIND_FIELDS",
    "BLIND_ITEM_FIELDS",
    "ViewerExport",
    "collect_items",
    "build_payload",
    "blind_payload",
    "drawn_cells",
    "form_questions",
    "render_html",
    "export_viewer",
    "embed_html",
    "load_annotations",
    "interpretability_level",
    "interpretability_table",
    "plot_interpretability",
    "table7_rows",
    "rater_agreement",
    "preview_panels",
]
