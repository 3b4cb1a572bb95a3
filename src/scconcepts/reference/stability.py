"""The paper's stability findings (Sec 4.4, Fig 4 of Claye et al. 2025), for the claims of
chapter 07.

Fig 4 gives distributions and bar charts without printed numbers, so what is transcribed here is
the direction of each finding: which model's R² drops more on the other dataset (Fig 4A), which
model's dictionaries match better across datasets (Fig 4B), and the qualitative statements the
claims cite. Model keys are the profile's model names (``scvi``, ``scgpt``).
"""

from __future__ import annotations

__all__ = ["PAPER_FIG4", "PAPER_TRAINING", "PAPER_MODELS"]

# the paper's names of its models, for sentences about a model the profile lacks
PAPER_MODELS = {"scvi": "scVI", "scgpt": "scGPT"}

PAPER_FIG4 = {
    # Fig 4A: every SAE reconstructs the other dataset's embeddings slightly less well
    "all_lower": "Fig 4A: R² slightly lower on the other dataset for all SAEs",
    # Fig 4A: the gap is smaller for the SAEs trained on the larger dataset (Tabula Sapiens)
    "main_smaller": "Fig 4A: gap smaller for the SAEs trained on the larger dataset",
    # Fig 4A: (model with the larger drop, model with the smaller drop)
    "larger_drop": ("scgpt", "scvi"),
    # Fig 4B: (more stable model, less stable model) across datasets
    "more_stable": ("scvi", "scgpt"),
    # Fig 4C: well-matched concepts "often" share a few of their top-10 genes
    "shared": "Fig 4C: matched concepts often have a few top genes in common",
}

# Table 3: the paper's SAEs were trained for 1,000–4,000 epochs on 300,000–600,000 cells
PAPER_TRAINING = {"epochs": (1000, 4000), "cells": (329_762, 592_317)}
