"""scconcepts: interpretable biological concepts in single-cell RNA-seq foundation models.

Reproduction and extension of Claye et al. (2025), "Discovering Interpretable Biological Concepts
in Single-cell RNA-seq Foundation Models". One module per idea of the paper:

- :mod:`scconcepts.data` — bundled real datasets, gene sets, gene names; validation;
- :mod:`scconcepts.models.scvi` — scVI reference model, query mapping, encoder f;
- :mod:`scconcepts.sae` — Top-K sparse autoencoders ψ (Sec 2, 4.2);
- :mod:`scconcepts.concepts` — cell-level overview with metadata (Sec 3.1);
- :mod:`scconcepts.attribution` — counterfactual occlusion attribution (Sec 3.2, Eq 1–3);
- :mod:`scconcepts.enrichment` — attribution-based GSEA (Sec 3.4);
- :mod:`scconcepts.config` — typed, layered run profiles (``params/<profile>.yaml``);
- :mod:`scconcepts.store` — the content-addressed artefact store (every cache);
- :mod:`scconcepts.models` — model adapters (scVI, scGPT, PCA) behind one interface;
- :mod:`scconcepts.workflow` — thin cached steps that the notebooks call;
- :mod:`scconcepts.plotting` — the book's figures.
"""

__version__ = "0.1.0"

from . import pl, tl  # noqa: E402  (scverse-style entry points: scconcepts.tl, scconcepts.pl)
