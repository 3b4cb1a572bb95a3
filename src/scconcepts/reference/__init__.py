"""Numbers reported in the paper (Claye et al. 2025), for side-by-side comparison only.

These are *the paper's* results, transcribed from its tables; nothing in the book is computed
from them. Table 3: Top-K SAE hyper-parameters and metrics.
"""

from __future__ import annotations

import pandas as pd

__all__ = ["PAPER_TABLE3"]

_T3 = [
    # dataset, model, c, k, lr, epochs, r2, active
    ("Cross-tissue Immune Cell Atlas", "scGPT", 1000, 16, 1e-4, 1000, 0.985, 811),
    ("Cross-tissue Immune Cell Atlas", "scGPT", 2000, 32, 5e-5, 2500, 0.990, 1761),
    ("Cross-tissue Immune Cell Atlas", "scGPT", 5000, 80, 5e-5, 2500, 0.996, 3728),
    ("Cross-tissue Immune Cell Atlas", "scGPT", 10000, 160, 5e-5, 1850, 0.998, 6923),
    ("Cross-tissue Immune Cell Atlas", "scVI", 200, 3, 1e-4, 2000, 0.946, 198),
    ("Cross-tissue Immune Cell Atlas", "scVI", 500, 8, 1e-4, 2000, 0.982, 487),
    ("Cross-tissue Immune Cell Atlas", "scVI", 1000, 16, 1e-4, 2000, 0.992, 974),
    ("Cross-tissue Immune Cell Atlas", "scVI", 2000, 32, 5e-4, 2000, 0.997, 1607),
    ("Cross-tissue Immune Cell Atlas", "scVI", 5000, 80, 5e-4, 4000, 0.999, 3399),
    ("Cross-tissue Immune Cell Atlas", "scVI", 10000, 160, 5e-4, 3000, 0.998, 8803),
    ("Tabula Sapiens Immune", "scGPT", 1000, 16, 1e-4, 600, 0.981, 964),
    ("Tabula Sapiens Immune", "scGPT", 2000, 32, 7e-5, 1200, 0.988, 1887),
    ("Tabula Sapiens Immune", "scGPT", 5000, 80, 5e-5, 1500, 0.995, 4381),
    ("Tabula Sapiens Immune", "scGPT", 10000, 160, 5e-5, 1092, 0.996, 8799),
    ("Tabula Sapiens Immune", "scVI", 200, 3, 1e-4, 1000, 0.936, 199),
    ("Tabula Sapiens Immune", "scVI", 500, 8, 1e-4, 1500, 0.988, 489),
    ("Tabula Sapiens Immune", "scVI", 1000, 16, 1e-4, 1000, 0.991, 972),
    ("Tabula Sapiens Immune", "scVI", 2000, 32, 5e-4, 2000, 0.997, 1634),
    ("Tabula Sapiens Immune", "scVI", 5000, 80, 5e-4, 3000, 0.998, 4108),
    ("Tabula Sapiens Immune", "scVI", 10000, 160, 5e-4, 1300, 0.999, 8790),
]

PAPER_TABLE3 = pd.DataFrame(_T3, columns=["dataset", "model", "c", "k", "lr", "epochs", "r2",
                                          "active_concepts"])
