"""The paper's numbers for chapters 01–03 (models, SAE scale, concepts), for comparison only.

Keyed by the model's display label (``wf.label(m)``: "scVI", "scGPT"), the names the paper
uses; a model the paper does not study (e.g. ``pca``) has no entry, and its claims are
inconclusive. Values are from Table 3 (Tabula Sapiens Immune, the paper's training atlas), Sec 4.2
and Fig 2B of Claye et al. 2025.
"""

from __future__ import annotations

import pandas as pd

from . import PAPER_TABLE3

__all__ = ["PAPER_DATASET", "PAPER_DEFAULT_SAE", "PAPER_CELLTYPE_SPECIFIC", "PAPER_TABLE2_SCGPT",
           "paper_grid", "paper_default"]

#: the atlas whose Table 3 rows the book compares with (the paper's training atlas)
PAPER_DATASET = "Tabula Sapiens Immune"

#: the paper's default SAE size (c, k) and the embedding size d, per model (Sec 4.2, Table 2)
PAPER_DEFAULT_SAE: dict[str, dict[str, int]] = {
    "scVI": {"c": 500, "k": 8, "d": 50},
    "scGPT": {"c": 5000, "k": 80, "d": 512},
}

#: Fig 2B / Sec 4.2: what the paper says of the share of cell-type-specific concepts
PAPER_CELLTYPE_SPECIFIC: dict[str, str] = {
    "scVI": "a large proportion",
    "scGPT": "a large proportion",
}


def paper_grid(label: str, dataset: str = PAPER_DATASET) -> pd.DataFrame:
    """Table 3 rows of one model (sorted by c): c, k, r2, active_concepts, dead_concepts.

    Empty (same columns) for a model the paper does not study."""
    t = PAPER_TABLE3[(PAPER_TABLE3["dataset"] == dataset) & (PAPER_TABLE3["model"] == label)]
    t = t[["c", "k", "r2", "active_concepts"]].sort_values("c").reset_index(drop=True)
    return t.assign(dead_concepts=t["c"] - t["active_concepts"])


def paper_default(label: str, dataset: str = PAPER_DATASET) -> dict | None:
    """The paper's default SAE of one model: c, k, d, r2, active_concepts, dead_concepts,
    active_share; None for a model the paper does not study."""
    if label not in PAPER_DEFAULT_SAE:
        return None
    size = PAPER_DEFAULT_SAE[label]
    grid = paper_grid(label, dataset).set_index(["c", "k"])
    row = grid.loc[(size["c"], size["k"])]
    return {**size, "r2": float(row["r2"]), "active_concepts": int(row["active_concepts"]),
            "dead_concepts": int(row["dead_concepts"]),
            "active_share": float(row["active_concepts"]) / size["c"]}


#: Table 2: the whole-human scGPT the paper uses (chapter 01 sets it next to the project scGPT)
PAPER_TABLE2_SCGPT: dict[str, str] = {
    "Model architecture": "Transformer", "Parameters": "50M (100M)",
    "Genes in vocabulary": "60 698", "Gene expression preprocessing": "binning",
    "Sequence length": "1200 HVG", "Cell embedding strategy": "CLS token",
    "Cell embedding size": "512", "Pretraining": "33M cells",
}
