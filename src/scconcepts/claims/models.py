"""Claims of chapter 01: do the embeddings of each model carry cell-type information?

The book targets a 15-NN (5-fold) cell-type accuracy of at least :data:`KNN_TARGET` for the
embeddings of every model, the project-pretrained scGPT included; the paper has no such number
(its scGPT is the whole-human checkpoint), so the test is against the book's own target.
"""

from __future__ import annotations

from . import ABOVE, Claim, decide
from .scale import wilson_interval

__all__ = ["KNN_TARGET", "MIN_CELLS", "knn_accuracy"]

#: the book's target for the cell-type k-NN accuracy of a model's embeddings
KNN_TARGET = 0.80
#: fewer cells than this leave the accuracy untested
MIN_CELLS = 30


def knn_accuracy(model: str, label: str, accuracy: float, n_cells: int,
                 baseline: float | None = None) -> Claim:
    """The embeddings of ``model`` predict the cell type with k-NN accuracy ≥ :data:`KNN_TARGET`.

    Every cell is predicted once by the cross-validation, so n = ``n_cells`` and the interval is
    Wilson's; inconclusive when it contains the target or fewer than :data:`MIN_CELLS` cells.
    ``baseline``: the accuracy of PCA of log-normalised counts, quoted for scale."""
    interval = wilson_interval(accuracy * n_cells, n_cells)
    v, _ = decide(interval, (KNN_TARGET, ABOVE), n=n_cells, min_n=MIN_CELLS)
    target = f"the book's target of {KNN_TARGET:.2f}"
    conclusion = {
        "agrees": f"meets {target} (**agrees**)",
        "disagrees": f"misses {target} (**disagrees**)",
    }.get(v, f"**inconclusive** against {target}, which the interval contains"
          if n_cells >= MIN_CELLS else f"**inconclusive** ({n_cells} cells, {MIN_CELLS} needed)")
    base = f"; PCA of log-normalised counts: {baseline:.4f}" if baseline is not None else ""
    sentence = (f"**{label}** embeddings predict the cell type with accuracy {accuracy:.4f} "
                f"(95 % interval {interval[0]:.3f}–{interval[1]:.3f}, {n_cells:,} cells{base}): "
                f"{conclusion}.")
    return Claim(key=f"ch01_knn_{model}", value=float(accuracy), n=int(n_cells),
                 test=f"15-NN cell-type accuracy ≥ {KNN_TARGET} (Wilson interval above it)",
                 verdict=v, sentence=sentence, interval=interval, paper=None,
                 region=(KNN_TARGET, ABOVE), unit="cells", fmt=".3f")
