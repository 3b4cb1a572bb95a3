"""The paper's results on gene attribution, pathway enrichment and expert interpretation
(Claye et al. 2025, Sec 3.2–3.4 and 4.2–4.3: Fig 2C, Fig 3A.a/b, Table 7), for comparison only.

Most of these results are stated in words or drawn as bars without printed values; only what
the paper states is transcribed here (no value is read off a figure). Entries are keyed by the
profile's model name; a model the paper did not study (e.g. ``pca``) has no entry, and the
claims of :mod:`scconcepts.claims.attribution` and :mod:`scconcepts.claims.interpretability`
then return ``"inconclusive"``.
"""

from __future__ import annotations

from . import PAPER_TABLE3

__all__ = ["ATTRIBUTION_THRESHOLD", "MIN_GENES", "GSEA_WEAK_P", "GSEA_STRONG_P",
           "EXPERT_UNITS", "PAPER_MODELS", "FIG2C", "FIG3A_A", "FIG3A_B", "MARKERS",
           "paper_sizes"]

#: Fig 2C: an attribution score (drop of the concept's activation) counts above this value.
ATTRIBUTION_THRESHOLD = 0.05
#: Fig 2C / Sec 4.2: "most concepts have more than 3 genes" above the threshold.
MIN_GENES = 3
#: Fig 3A.b: nominal GSEA p-value of the best pathway for a weak / strong annotation.
GSEA_WEAK_P = 5e-3
GSEA_STRONG_P = 5e-5
#: Sec 4.3: random concepts and random neurons per model in the expert study (Fig 3A.a).
EXPERT_UNITS = 20

#: Profile model name → the paper's name of the model (the models the paper studied).
PAPER_MODELS = {"scvi": "scVI", "scgpt": "scGPT"}

#: Fig 2C: what the paper reports on the genes above the threshold, per model.
FIG2C = {
    "scvi": "most concepts have more than 3 genes with attribution > 0.05, at every SAE size",
    "scgpt": "most concepts have more than 3 genes with attribution > 0.05, at every SAE size",
}

#: Fig 3A.b: attribution-based GSEA annotations, concepts vs neurons (bars, no printed values).
FIG3A_B = {
    "scvi": "concepts are more aligned with pathways than neurons",
    "scgpt": "concepts are more aligned with pathways than neurons",
}

#: Fig 3A.a: expert study, 20 concepts and 20 neurons per model, one expert.
FIG3A_A = {
    "scvi": "concepts are more interpretable than neurons",
    "scgpt": "concepts are more interpretable than neurons",
}

#: Sec 4.2 / Table 7: concepts specific to a cell type carry its canonical markers among their
#: top attribution genes (shown on examples; no share is given).
MARKERS = {
    "scvi": "cell-type-specific concepts have canonical markers of their cell type among their "
            "top attribution genes",
    "scgpt": "cell-type-specific concepts have canonical markers of their cell type among their "
             "top attribution genes",
}


def paper_sizes(model: str) -> list[tuple[int, int]]:
    """The (c, k) SAE sizes of Fig 2C / Table 3 for ``model`` (empty for a model the paper
    did not study)."""
    name = PAPER_MODELS.get(model)
    rows = PAPER_TABLE3[PAPER_TABLE3["model"] == name] if name else PAPER_TABLE3.iloc[:0]
    return sorted({(int(c), int(k)) for c, k in zip(rows["c"], rows["k"])})
