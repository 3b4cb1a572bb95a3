"""The paper's Appendix C numbers (Claye et al. 2025): attribution vs DGEA (Fig 8, Table 6).

These are *the paper's* results, transcribed for side-by-side comparison; nothing in the book is
computed from them. Models are keyed by the book's model names; a model that is not here (e.g.
``pca``) has no paper value, and its claims are "inconclusive".

Table 6 gives mean (std) over the concepts (of the first 100) enriched by both attribution-based
and DGEA-based GSEA. In the paper's table the two rows of the attribution-based column appear
swapped relative to its text ("mean 4.7 vs. 2.4" log2FC and "0.21 vs. 0.14" attribution for
scVI); they are given here as the text reads.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["PAPER_TABLE6", "PAPER_FIG8", "PAPER_N_CONCEPTS", "paper_table6"]

PAPER_N_CONCEPTS = 100  # Table 6: the first 100 concepts of each model

# model -> metric -> (mean, std) or count; "att" = attribution-based, "dgea" = DGEA-based GSEA
PAPER_TABLE6: dict[str, dict[str, tuple[float, float] | int]] = {
    "scvi": {"maxfc_att": (2.362, 1.812), "maxfc_dgea": (4.688, 2.211),
             "maxatt_att": (0.211, 0.215), "maxatt_dgea": (0.135, 0.169),
             "n_att": 72, "n_dgea": 89,
             "iou_genes": (0.027, 0.043), "iou_pathways": (0.025, 0.060)},
    "scgpt": {"maxfc_att": (2.570, 2.261), "maxfc_dgea": (4.040, 1.837),
              "maxatt_att": (0.323, 0.405), "maxatt_dgea": (0.172, 0.407),
              "n_att": 32, "n_dgea": 62,
              "iou_genes": (0.055, 0.099), "iou_pathways": (0.068, 0.138)},
}

# Fig 8: deleting genes in attribution order lowers the concept activation faster than in DGEA
# order, for both models (a figure, no number)
PAPER_FIG8: dict[str, str] = {
    "scvi": "attribution order below DGEA order",
    "scgpt": "attribution order below DGEA order",
}

_ROWS = [("Max absolute log2 fold change", "maxfc"), ("Max attribution", "maxatt"),
         ("Number of concepts enriched", "n"), ("IoU genes", "iou_genes"),
         ("IoU biological processes", "iou_pathways")]


def paper_table6(model: str) -> pd.DataFrame | None:
    """The paper's Table 6 column pair of ``model`` in the book's layout (rows as
    :func:`scconcepts.claims.dgea.table6`, columns ``attribution-based``, ``DGEA-based``, cells
    "mean (std)"); None when the paper has no value for the model."""
    t = PAPER_TABLE6.get(model)
    if t is None:
        return None

    def ms(v):
        return f"{v[0]:.3f} ({v[1]:.3f})"

    rows = {}
    for name, k in _ROWS:
        if k == "n":
            rows[name] = (str(t["n_att"]), str(t["n_dgea"]))
        elif k.startswith("iou"):
            rows[name] = (ms(t[k]), "")
        else:
            rows[name] = (ms(t[f"{k}_att"]), ms(t[f"{k}_dgea"]))
    return pd.DataFrame.from_dict(rows, orient="index", columns=["attribution-based",
                                                                  "DGEA-based"])
